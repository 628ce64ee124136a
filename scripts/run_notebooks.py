"""Execute the course notebooks headless (``make run``) and print a table of what they did.

Per notebook the mode is: full if ``--full``, smoke if ``--smoke``, otherwise full when every
dataset the notebook uses is found locally (a path in COURSE_DATA_DIR, a Kaggle mount, data/)
and smoke on the synthetic twins when one is not. Executed notebooks and their HTML go to build/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
SMOKE_BUDGET_S = 60


def choose_mode(number: str, force: str | None) -> tuple[str, str]:
    """(mode, why) for the notebook with this number."""
    if force:
        return force, f"--{force} given"
    from course_utils import data

    missing = [name for name, ds in data.REGISTRY.items() if ds.notebook == number and not data.find_local(name)]
    if missing:
        return "smoke", f"no real data found for {', '.join(missing)}: smoke mode on the synthetic twin"
    return "full", "real data found"


def run_one(path: Path, mode: str, build: Path) -> dict:
    os.environ["COURSE_SMOKE"] = "1" if mode == "smoke" else "0"
    result_file = build / "results" / f"{path.stem}.json"
    result_file.unlink(missing_ok=True)
    os.environ["COURSE_RESULT_FILE"] = str(result_file)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600 if mode == "smoke" else None, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:
        error = str(exc).strip().splitlines()[-1]
    seconds = time.perf_counter() - start
    nbformat.write(nb, build / path.name)
    html, _ = HTMLExporter().from_notebook_node(nb)
    (build / f"{path.stem}.html").write_text(html, encoding="utf-8")
    headline = json.loads(result_file.read_text()) if result_file.is_file() else {}
    headline.pop("mode", None)
    run = {"mode": mode, "seconds": round(seconds, 1), "error": error, "finished": time.strftime("%Y-%m-%d %H:%M")}
    (build / "results").mkdir(exist_ok=True)
    (build / "results" / f"{path.stem}.run.json").write_text(json.dumps(run))  # for make site
    return {"notebook": path.name, "mode": mode, "seconds": seconds, "headline": headline, "error": error}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nb", help="run only notebooks whose name starts with this, e.g. 03")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--full", action="store_const", const="full", dest="force")
    group.add_argument("--smoke", action="store_const", const="smoke", dest="force")
    parser.add_argument("--build", type=Path, default=ROOT / "build")
    args = parser.parse_args(argv)

    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.nb:
        notebooks = [p for p in notebooks if p.name.startswith(args.nb)]
    if not notebooks:
        print(f"no notebook matches {args.nb!r}", file=sys.stderr)
        return 2
    args.build.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in notebooks:
        mode, why = choose_mode(path.name[:2], args.force)
        print(f"== {path.name}: {mode} mode ({why})", flush=True)
        rows.append(run_one(path, mode, args.build))
        print(f"   {rows[-1]['seconds']:.1f} s, {'FAILED: ' + rows[-1]['error'] if rows[-1]['error'] else 'ok'}",
              flush=True)

    print(f"\nexecuted notebooks and HTML in {args.build}\n")
    print(f"{'notebook':<42} {'mode':<6} {'seconds':>8}  headline")
    for row in rows:
        headline = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row["headline"].items())
        over = "  (over the 60 s smoke budget)" if row["mode"] == "smoke" and row["seconds"] > SMOKE_BUDGET_S else ""
        print(f"{row['notebook']:<42} {row['mode']:<6} {row['seconds']:>8.1f}  "
              f"{'FAILED: ' + row['error'] if row['error'] else headline}{over}")
    return 1 if any(row["error"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
