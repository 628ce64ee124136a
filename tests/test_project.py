"""The project's own files agree with each other: dependencies, constraints, CI."""

import importlib.util
import re

import yaml
from conftest import ROOT
from packaging.requirements import Requirement

from course_utils import runtime

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def normalise(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement.strip().lower())


def name_of(requirement: str) -> str:
    return normalise(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])


def test_environment_yml_lists_the_same_dependencies():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pip = {normalise(r) for r in pip_section if not r.startswith("-e")}
    declared = {normalise(r) for r in PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["dev"]}
    assert conda_pip == declared


def test_constraints_pin_every_dependency():
    pinned = {name_of(line) for line in (ROOT / "constraints.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    for requirement in map(Requirement, PYPROJECT["dependencies"] + PYPROJECT["optional-dependencies"]["dev"]):
        if requirement.marker is None or requirement.marker.evaluate():
            assert name_of(requirement.name) in pinned, f"{requirement} has no tested version in constraints.txt"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme


def test_make_run_picks_full_mode_only_when_the_data_is_here(monkeypatch, tmp_path, kvasir_twin):
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setattr(runtime, "KAGGLE_INPUT", tmp_path / "no-kaggle")
    mode, why = runner.choose_mode("03", None)
    assert mode == "smoke" and "kvasir_seg" in why
    monkeypatch.setenv("COURSE_DATA_DIR", str(kvasir_twin.parent))
    assert runner.choose_mode("03", None)[0] == "full"
    assert runner.choose_mode("03", "smoke")[0] == "smoke"
