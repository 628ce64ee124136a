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
    """``05_human_parsing.ipynb`` -> "Segmentation course 05 - human parsing"."""
    number, _, rest = path.stem.partition("_")
    return f"Segmentation course {number} - {rest.replace('_', ' ')}"


def section_datasets(number: str) -> tuple[list[str], bool]:
    """The Kaggle handles of the section's datasets, and whether one of them must be downloaded from its
    official site (then the kernel needs the Internet)."""
    sys.path.insert(0, str(ROOT))
    from course_utils import data

    entries = [ds for ds in data.REGISTRY.values() if ds.notebook == number]
    return sorted(ds.kaggle for ds in entries if ds.kaggle), any(ds.url and not ds.kaggle for ds in entries)


def kernel_metadata(path: Path, owner: str, private: bool = True, weights_in_kit: bool = True) -> dict:
    """The notebook's kernel-metadata.json. The Internet is switched on only where something must be downloaded:
    a dataset that is not on Kaggle, or the pretrained weights when the kit holds none."""
    number = path.stem.split("_")[0]
    title = notebook_title(path)
    handles, needs_download = section_datasets(number)
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
    if len(meta["title"]) < 5:
        problems.append(f"title {meta['title']!r} is shorter than 5 characters")
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


def build(owner: str, out: Path, wheels: Path, weights: Path, private: bool = True) -> list[Path]:
    """Write the kernel folders and the course kit; returns the kernel folders."""
    out.mkdir(parents=True, exist_ok=True)
    weights_in_kit = weights.is_dir() and any(p.is_file() for p in weights.iterdir())
    folders = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        folder = out / path.stem
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        shutil.copy(path, folder / path.name)
        meta = kernel_metadata(path, owner, private, weights_in_kit)
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
    config = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
    return bool(os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")) or config.is_file()


def kaggle(*args: str) -> subprocess.CompletedProcess:
    command = shutil.which("kaggle")
    if command is None:
        raise PublishError("the kaggle command is not installed: `pip install -e '.[publish]'` (make kaggle PUSH=1 "
                           "does it)")
    print("$ kaggle " + " ".join(args), flush=True)
    return subprocess.run([command, *args], capture_output=True, text=True)


def push(out: Path, folders: list[Path], owner: str, message: str) -> list[str]:
    """Upload the course kit (a new version, or the first) and push every kernel; returns their URLs."""
    if not has_credentials():
        raise PublishError("no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or put kaggle.json (Kaggle -> "
                           "Settings -> API -> Create New Token) in ~/.kaggle/. Nothing was pushed; the folders "
                           f"under {out} are ready.")
    kit = str(out / "course-kit")
    done = kaggle("datasets", "version", "-p", kit, "-m", message, "--dir-mode", "zip")
    if done.returncode != 0:  # the first upload: the dataset does not exist yet
        done = kaggle("datasets", "create", "-p", kit, "--dir-mode", "zip")
    if done.returncode != 0:
        raise PublishError(f"uploading the course kit failed:\n{done.stdout}{done.stderr}")
    urls = []
    for folder in folders:
        done = kaggle("kernels", "push", "-p", str(folder))
        if done.returncode != 0:
            raise PublishError(f"pushing {folder.name} failed:\n{done.stdout}{done.stderr}")
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
    args = parser.parse_args(argv)
    if not args.owner:
        parser.error("no Kaggle owner: pass --owner NAME (make kaggle OWNER=NAME) or set KAGGLE_USERNAME")
    try:
        folders = build(args.owner, args.out, args.wheels, args.weights, private=not args.public)
        print(f"{len(folders)} kernels and the course kit in {args.out}")
        if args.push:
            for url in push(args.out, folders, args.owner, args.message):
                print(url)
    except PublishError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
