"""Print the installed versions as a pip constraints file, each line limited to this Python version.

Constraints pin what gets installed without asking for it; the marker keeps a machine with
another Python on the ranges of pyproject.toml instead of versions that may not exist there.
"""

import platform
import subprocess
import sys

version = ".".join(platform.python_version_tuple()[:2])
frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                        capture_output=True, text=True, check=True).stdout.split()
print(f"# Tested versions (make constraints), Python {version}, {platform.system()} {platform.machine()}.")
for line in sorted(frozen, key=str.lower):
    if "==" in line:
        print(f'{line}; python_version == "{version}"')
