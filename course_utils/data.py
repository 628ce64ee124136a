"""Find a dataset, wherever it is: a path you give, a Kaggle input mount, the local cache,
or a download. In smoke mode, the dataset's synthetic twin instead.

Each dataset declares its registry entry (Kaggle handle, official URL, the marker that identifies
its folder, licence, citation, twin writer) as ``INFO`` in ``course_utils/datasets/<name>.py``;
this module holds only the machinery: finding, downloading, extracting, twins.
``locate(name)`` tries, in order, and prints which one it used:

1. an explicit path (the ``path`` argument, or the ``COURSE_DATA_DIR`` folder);
2. a Kaggle input mount (``/kaggle/input/<slug>`` or ``/kaggle/input/datasets/<owner>/<slug>``);
3. the local cache ``data/<name>/``;
4. a download: ``kagglehub`` for the Kaggle handle, else ``pooch`` for the official URL;
5. otherwise an error that lists the ways to get the data.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

from course_utils import runtime
from course_utils.datasets import DatasetInfo, brats, camvid, kvasir_seg

# Every dataset declares its entry (``INFO``) in its own module, beside its loader and twin.
REGISTRY: dict[str, DatasetInfo] = {module.INFO.name: module.INFO for module in (kvasir_seg, camvid, brats)}


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset cannot be found or fetched; the message says what to do."""


def info(name: str) -> DatasetInfo:
    if name not in REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(REGISTRY)}")
    return REGISTRY[name]


def cache_dir() -> Path:
    """``data/`` of the repository checkout, else ``./data``; ``COURSE_CACHE_DIR`` overrides."""
    if os.environ.get("COURSE_CACHE_DIR"):
        return Path(os.environ["COURSE_CACHE_DIR"])
    root = runtime.project_root()
    return (root if root else Path.cwd()) / "data"


def derived_dir(name: str) -> Path:
    """A folder for files computed once from dataset ``name`` (labels converted to class ids,
    volumes preprocessed for fast loading). Never the dataset's own folder, which may be read-only
    (a Kaggle mount). On Kaggle it is the local disk's temporary folder, not /kaggle/working, whose
    20 GB are kept as the notebook's output; ``COURSE_DERIVED_DIR`` overrides."""
    if os.environ.get("COURSE_DERIVED_DIR"):
        base = Path(os.environ["COURSE_DERIVED_DIR"])
    elif runtime.on_kaggle():
        base = Path(tempfile.gettempdir()) / "course_utils"
    else:
        base = cache_dir() / "derived"
    folder = base / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def has_marker(folder: Path, marker: str, max_depth: int = 4) -> bool:
    """True if ``folder`` or a folder below it (up to ``max_depth``) ends with ``marker``.

    The marker is matched from the right, so ``Kvasir-SEG/masks`` is found in both the official
    zip (``Kvasir-SEG/masks``) and the Kaggle copy (``Kvasir-SEG/Kvasir-SEG/masks``), and also
    when the folder given is ``Kvasir-SEG`` itself.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return False
    base_depth = len(folder.parts)
    for current, subdirs, files in os.walk(folder):
        here = Path(current)
        if any((here / entry).match(marker) for entry in [*subdirs, *files]):
            return True
        if len(here.parts) - base_depth >= max_depth:
            subdirs.clear()  # do not descend further
        subdirs.sort()
    return False


def kaggle_mounts(info: DatasetInfo, kaggle_input: Path | None = None) -> list[Path]:
    """The folders of /kaggle/input where the dataset may be mounted, likeliest first.

    Kaggle mounts an attached dataset as ``/kaggle/input/<slug>`` (classic) or
    ``/kaggle/input/datasets/<owner>/<slug>`` (newer); a copy uploaded under another name can
    be anywhere, so every mount follows.
    """
    base = Path(kaggle_input or runtime.KAGGLE_INPUT)
    if not base.is_dir():
        return []
    likely = []
    if info.kaggle:
        owner, slug = info.kaggle.split("/")
        likely = [base / slug, base / "datasets" / owner / slug]
    others = sorted(p for p in base.iterdir() if p.is_dir() and p.name != "datasets")
    nested = base / "datasets"
    if nested.is_dir():
        others += sorted(p for owner in nested.iterdir() if owner.is_dir() for p in owner.iterdir() if p.is_dir())
    return [p for p in likely if p.is_dir()] + [p for p in others if p not in likely]


def find_local(name: str, path: str | Path | None = None, kaggle_input: Path | None = None) -> tuple[Path, str] | None:
    """Steps 1-3 of :func:`locate` (no download): ``(folder, where)`` or None.

    An explicit ``path`` that does not hold the dataset is an error, not a reason to look elsewhere.
    """
    ds = info(name)
    if path is not None:
        path = Path(path).expanduser()
        if not has_marker(path, ds.marker):
            raise DataNotFoundError(
                f"{path} does not look like {ds.title}: expected to find '{ds.marker}' in it or below it. "
                f"Point to the folder that holds the dataset (for example the unzipped archive).")
        return path, "the path you gave"
    env = os.environ.get("COURSE_DATA_DIR")
    if env:
        for candidate in (Path(env) / name, Path(env)):
            if has_marker(candidate, ds.marker):
                return candidate, "COURSE_DATA_DIR"
    for mount in kaggle_mounts(ds, kaggle_input):
        if has_marker(mount, ds.marker):
            return mount, "the Kaggle input mount"
    cached = cache_dir() / name
    if has_marker(cached, ds.marker):
        return cached, "the local cache"
    return None


def locate(name: str, path: str | Path | None = None, download: bool = True,
           kaggle_input: Path | None = None) -> Path:
    """The folder of dataset ``name``: its synthetic twin in smoke mode, else the real data.

    See the module docstring for the order. Prints which source it used.
    """
    ds = info(name)
    if runtime.SMOKE and path is None:
        root = twin_dir(name)
        print(f"{name}: smoke mode, using the synthetic twin in {root}")
        return root
    found = find_local(name, path, kaggle_input)
    if found:
        root, where = found
        print(f"{name}: found in {where}: {root}")
        return root
    problems = []
    if download:
        if ds.kaggle:
            try:
                root = download_kaggle(ds.kaggle)
                print(f"{name}: downloaded with kagglehub: {root}")
                return root
            except Exception as error:  # network, credentials, licence not accepted...
                problems.append(f"kagglehub download of {ds.kaggle} failed: {error}")
        if ds.url:
            try:
                root = download_url(ds.url, cache_dir() / name, sha256=ds.sha256)
                print(f"{name}: downloaded from {ds.url}: {root}")
                return root
            except Exception as error:
                problems.append(f"download of {ds.url} failed: {error}")
    raise DataNotFoundError(_not_found_message(ds, problems))


def _not_found_message(ds: DatasetInfo, problems: list[str]) -> str:
    lines = [f"Could not find {ds.title} ({ds.name}). Looked for '{ds.marker}' in COURSE_DATA_DIR, "
             f"{runtime.KAGGLE_INPUT} and {cache_dir() / ds.name}."]
    lines += [f"  - {p}" for p in problems]
    lines.append("Ways to get it:")
    if ds.kaggle:
        lines.append(f"  * on Kaggle: Add Input -> search '{ds.kaggle}' and attach it, then run again;")
        lines.append("  * elsewhere: Kaggle credentials (KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json) "
                     "let kagglehub download it;")
    if ds.url:
        lines.append(f"  * download {ds.url}, unzip it and pass the folder: locate('{ds.name}', path=...) "
                     f"or set COURSE_DATA_DIR;")
    lines.append("  * or run with COURSE_SMOKE=1 to use the small synthetic twin (a quick check, not real results).")
    return "\n".join(lines)


def download_kaggle(handle: str) -> Path:
    """Download (or reuse kagglehub's cache of) a Kaggle dataset; returns its folder."""
    import kagglehub

    return Path(kagglehub.dataset_download(handle))


def download_url(url: str, target: Path, sha256: str | None = None) -> Path:
    """Download ``url`` with pooch (progress bar, sha256 check) and unpack it safely into ``target``."""
    import pooch

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        archive = Path(pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None,
                                      path=target / "downloads", progressbar=True))
    except ValueError as error:  # pooch deletes a file whose checksum does not match
        raise ValueError(f"{url}: the download is not the expected file ({error}). Try again; if it "
                         f"persists the server's file changed: tell the course maintainers.") from error
    extract(archive, target)
    return target


def extract(archive: Path, target: Path) -> Path:
    """Unpack a zip or tar archive into ``target``, refusing any member that would land outside it
    (``../`` paths, absolute paths, links): a malicious archive must not write elsewhere."""
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    top = target.resolve()

    def check(member: str) -> None:
        dest = (top / member).resolve()
        if dest != top and top not in dest.parents:
            raise ValueError(f"{archive}: member {member!r} would be written outside {target}; "
                             f"refusing to extract this archive (it may be corrupt or malicious)")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                check(member)
            zf.extractall(target)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                check(member.name)
                if member.issym() or member.islnk():
                    raise ValueError(f"{archive}: member {member.name!r} is a link; refusing to extract")
            tf.extractall(target)
    else:
        raise ValueError(f"{archive} is neither a zip nor a tar archive; delete it and download again")
    return target


def twin_dir(name: str, root: Path | None = None) -> Path:
    """The synthetic twin of ``name`` in ``data/twins/<name>``, written on first use."""
    ds = info(name)
    if ds.write_twin is None:
        raise DataNotFoundError(f"{name} has no synthetic twin; smoke mode cannot run without one")
    folder = Path(root) if root else cache_dir() / "twins" / name
    stamp = folder / ".twin_version"
    if stamp.is_file() and stamp.read_text().strip() == str(ds.twin_version):
        return folder
    staging = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    write_twin(name, staging)
    (staging / ".twin_version").write_text(str(ds.twin_version))
    shutil.rmtree(folder, ignore_errors=True)
    try:
        os.replace(staging, folder)  # the twin appears whole or not at all
    except OSError:  # another run put its (identical) twin there first
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def write_twin(name: str, root: str | Path) -> Path:
    """Write the synthetic twin of dataset ``name`` into ``root``, in the real on-disk format."""
    ds = info(name)
    if ds.write_twin is None:
        raise KeyError(f"{name} has no twin writer")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ds.write_twin(root)
    return root
