"""Prepare the course for Kaggle (``make kaggle``) and, with ``--push`` (``make kaggle PUSH=1``), publish it.

Writes under ``build/kaggle/``:

- ``<notebook>/``: the notebook and its ``kernel-metadata.json`` for ``kaggle kernels push``: a T4 x2
  (``machine_shape`` NvidiaTeslaT4; ``enable_gpu`` alone has been given a P100, which today's Kaggle torch
  cannot use), the section's Kaggle datasets and the course kit attached;
- ``course-kit/``: the course's own Kaggle dataset, flat: the wheels of ``make kaggle-wheels`` (course_utils and
  the packages Kaggle's image lacks, so the install cell works with the Internet off) and the pretrained weights
  of ``make kaggle-weights`` (``course_utils.weights`` finds them in ``/kaggle/input`` before downloading), with
  its ``dataset-metadata.json``.

Kaggle's rules checked here: a kernel title of at least 5 characters whose slug is the id's slug (the CLI only
warns otherwise, and the kernel gets another URL), a dataset title of 6-50 characters, one licence.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
KIT_SLUG = "segmentation-course-kit"
KIT_TITLE = "Segmentation course kit"  # 6-50 characters
MACHINE_SHAPE = "NvidiaTeslaT4"  # T4 x2


class PublishError(RuntimeError):
    """Something Kaggle would refuse, or that would publish the wrong thing; the message says what to do."""


def slugify(title: str) -> str:
    """Kaggle's slug of a title: lower case, every run of other characters one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def notebook_title(path: Path) -> str:
    """``05_human_parsing.ipynb`` -> "Segmentation 05 - human parsing" (Kaggle refuses titles over 50 characters)."""
    number, _, rest = path.stem.partition("_")
    return f"Segmentation {number} - {rest.replace('_', ' ')}"


def datasets_used(path: Path) -> list:
    """The registry entries a notebook locates (``data.locate("name")`` in its code): a dataset may serve several."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from course_utils import data

    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    return [data.REGISTRY[name] for name in dict.fromkeys(re.findall(r'locate\("([a-z0-9_]+)"', code))]


def section_datasets(path: Path) -> tuple[list[str], bool]:
    """The Kaggle handles of the notebook's datasets, and whether one of them must be downloaded from its
    official site (then the kernel needs the Internet)."""
    entries = datasets_used(path)
    return sorted(ds.kaggle for ds in entries if ds.kaggle), any(ds.url and not ds.kaggle for ds in entries)


def kernel_metadata(path: Path, owner: str, private: bool = True, weights_in_kit: bool = True,
                    extra_sources: tuple[str, ...] = ()) -> dict:
    """The notebook's kernel-metadata.json. The Internet is switched on only where something must be downloaded:
    a dataset that is not on Kaggle, or the pretrained weights when the kit holds none. ``extra_sources``: more
    Kaggle datasets to attach (your private upload of LIP for notebook 05)."""
    title = notebook_title(path)
    handles, needs_download = section_datasets(path)
    handles = [*handles, *extra_sources]
    needs_download = needs_download or not weights_in_kit
    return {"id": f"{owner}/{slugify(title)}", "title": title, "code_file": path.name, "language": "python",
            "kernel_type": "notebook", "is_private": private, "enable_gpu": True, "enable_tpu": False,
            "enable_internet": needs_download, "machine_shape": MACHINE_SHAPE,
            "dataset_sources": [*handles, f"{owner}/{KIT_SLUG}"], "competition_sources": [],
            "kernel_sources": [], "model_sources": []}


def check_kernel_metadata(meta: dict, folder: Path) -> None:
    owner, _, slug = meta["id"].partition("/")
    problems = []
    if not owner or not slug:
        problems.append(f"id {meta['id']!r} is not <owner>/<slug>")
    if not 5 <= len(meta["title"]) <= 50:
        problems.append(f"title {meta['title']!r} is not 5-50 characters long")
    if slug != slugify(meta["title"]):
        problems.append(f"the id's slug {slug!r} is not the title's slug {slugify(meta['title'])!r}")
    if meta["language"] != "python" or meta["kernel_type"] != "notebook":
        problems.append("language must be python and kernel_type notebook")
    if not meta["enable_gpu"] or meta["machine_shape"] != MACHINE_SHAPE:
        problems.append(f"a GPU kernel needs enable_gpu and machine_shape {MACHINE_SHAPE} (T4 x2; not a P100)")
    code = folder / meta["code_file"]
    if not code.is_file():
        problems.append(f"code_file {code} is missing")
    elif "kernelspec" not in nbformat.read(code, as_version=4).metadata:
        problems.append(f"{code} has no metadata.kernelspec (Kaggle's papermill needs it)")
    if problems:
        raise PublishError(f"{folder / 'kernel-metadata.json'}:\n  " + "\n  ".join(problems))


def kit_metadata(owner: str) -> dict:
    return {"title": KIT_TITLE, "id": f"{owner}/{KIT_SLUG}", "licenses": [{"name": "other"}],
            "description": "Wheels of course_utils and the packages Kaggle's image lacks, and the pretrained "
                           "weights the course notebooks load, so they run with the Internet off. The weights "
                           "keep the licences of their sources (torchvision: BSD-3-Clause; "
                           "segmentation-models-pytorch encoders: see smp-hub on Hugging Face)."}


def check_kit_metadata(meta: dict) -> None:
    if not 6 <= len(meta["title"]) <= 50:
        raise PublishError(f"a Kaggle dataset title has 6-50 characters, not {len(meta['title'])}: {meta['title']!r}")
    if len(meta["licenses"]) != 1:
        raise PublishError("a Kaggle dataset has exactly one licence")


def build(owner: str, out: Path, wheels: Path, weights: Path, private: bool = True,
          extra_sources: dict[str, list[str]] | None = None) -> list[Path]:
    """Write the kernel folders and the course kit; returns the kernel folders."""
    out.mkdir(parents=True, exist_ok=True)
    weights_in_kit = weights.is_dir() and any(p.is_file() for p in weights.iterdir())
    folders = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        folder = out / path.stem
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        shutil.copy(path, folder / path.name)
        extra = tuple((extra_sources or {}).get(path.stem[:2], []))
        meta = kernel_metadata(path, owner, private, weights_in_kit, extra)
        check_kernel_metadata(meta, folder)
        (folder / "kernel-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
        folders.append(folder)
    kit = out / "course-kit"
    shutil.rmtree(kit, ignore_errors=True)
    kit.mkdir()
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if not any(p.name.startswith("course_utils-") for p in found):
        raise PublishError(f"no course_utils wheel in {wheels}: run `make kaggle-wheels` first")
    files = found + (sorted(p for p in weights.iterdir() if p.is_file()) if weights.is_dir() else [])
    for file in files:
        shutil.copy(file, kit / file.name)  # flat: weights.find_file and the install cell look a few levels deep
    if not weights_in_kit:
        print(f"note: no weights in {weights} (`make kaggle-weights` needs the Internet): the kit holds only the "
              f"wheels, so the kernels are pushed with the Internet on, to download the weights")
    meta = kit_metadata(owner)
    check_kit_metadata(meta)
    (kit / "dataset-metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folders


def has_credentials() -> bool:
    """Any of the kaggle CLI's ways to log in: an API token (KAGGLE_API_TOKEN or ~/.kaggle/access_token, from
    `kaggle auth login`), or the older KAGGLE_USERNAME + KAGGLE_KEY or ~/.kaggle/kaggle.json."""
    folder = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return (bool(os.environ.get("KAGGLE_API_TOKEN")) or (folder / "access_token").is_file()
            or bool(os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"))
            or (folder / "kaggle.json").is_file())


def kaggle(*args: str, check: str | None = None) -> subprocess.CompletedProcess:
    """Run the kaggle CLI. With ``check`` (what is being done), a failure is an error: the CLI also reports some
    server-side refusals on stdout with exit code 0, so its output is read too."""
    command = shutil.which("kaggle")
    if command is None:
        raise PublishError("the kaggle command is not installed: `pip install -e '.[publish]'` (make kaggle PUSH=1 "
                           "does it)")
    print("$ kaggle " + " ".join(args), flush=True)
    done = subprocess.run([command, *args], capture_output=True, text=True)
    refused = re.search(r"\berror\b|not valid", done.stdout, re.IGNORECASE)
    if check and (done.returncode != 0 or refused):
        raise PublishError(f"{check} failed:\n{done.stdout}{done.stderr}")
    return done


def wait_until_ready(dataset: str, seconds: float = 900, every: float = 15) -> None:
    """Kaggle processes an uploaded dataset before kernels can use it."""
    deadline = time.monotonic() + seconds
    while "ready" not in kaggle("datasets", "status", dataset).stdout:
        if time.monotonic() > deadline:
            raise PublishError(f"{dataset} was not ready after {seconds:.0f} s; push the kernels later with "
                               "`kaggle kernels push -p build/kaggle/<notebook>`")
        time.sleep(every)


def push(out: Path, folders: list[Path], owner: str, message: str, public: bool = False) -> list[str]:
    """Upload the course kit (a new version, or the first) and push every kernel; returns their URLs."""
    if not has_credentials():
        raise PublishError("no Kaggle credentials: run `kaggle auth login`, or set KAGGLE_API_TOKEN (Kaggle -> "
                           "Settings -> API), or KAGGLE_USERNAME and KAGGLE_KEY. Nothing was pushed; the folders "
                           f"under {out} are ready.")
    kit, kit_id = str(out / "course-kit"), f"{owner}/{KIT_SLUG}"
    if kaggle("datasets", "status", kit_id).returncode == 0:  # it exists: a new version
        kaggle("datasets", "version", "-p", kit, "-m", message, "--dir-mode", "zip", check="uploading the course kit")
    else:
        kaggle("datasets", "create", "-p", kit, "--dir-mode", "zip", *(["--public"] if public else []),
               check="creating the course kit")
    wait_until_ready(kit_id)
    urls = []
    for folder in folders:
        kaggle("kernels", "push", "-p", str(folder), check=f"pushing {folder.name}")
        meta = json.loads((folder / "kernel-metadata.json").read_text())
        urls.append(f"https://www.kaggle.com/code/{meta['id']}")
    return urls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owner", default=os.environ.get("KAGGLE_USERNAME"),
                        help="Kaggle user name (default: $KAGGLE_USERNAME)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "kaggle")
    parser.add_argument("--wheels", type=Path, default=ROOT / "dist" / "kaggle")
    parser.add_argument("--weights", type=Path, default=ROOT / "dist" / "kaggle-weights")
    parser.add_argument("--public", action="store_true", help="publish the kernels as public (default: private)")
    parser.add_argument("--push", action="store_true", help="upload the kit and push the kernels with the kaggle CLI")
    parser.add_argument("--message", default="course update")
    parser.add_argument("--extra-source", action="append", default=[], metavar="NN=OWNER/SLUG",
                        help="attach another Kaggle dataset to notebook NN (e.g. 05=you/lip); repeatable")
    args = parser.parse_args(argv)
    if not args.owner:
        parser.error("no Kaggle owner: pass --owner NAME (make kaggle OWNER=NAME) or set KAGGLE_USERNAME")
    extra: dict[str, list[str]] = {}
    for item in args.extra_source:
        number, _, handle = item.partition("=")
        if not re.fullmatch(r"\d\d", number) or "/" not in handle:
            parser.error(f"--extra-source {item!r}: expected NN=OWNER/SLUG, e.g. 05=you/lip")
        extra.setdefault(number, []).append(handle)
    try:
        folders = build(args.owner, args.out, args.wheels, args.weights, private=not args.public, extra_sources=extra)
        print(f"{len(folders)} kernels and the course kit in {args.out}")
        if args.push:
            for url in push(args.out, folders, args.owner, args.message, public=args.public):
                print(url)
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
