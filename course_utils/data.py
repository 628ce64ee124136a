"""Find a dataset, wherever it is: a path you give, a Kaggle input mount, the local cache,
or a download. In smoke mode, the dataset's synthetic twin instead.

Each dataset declares its registry entry (Kaggle handle, official URL, the marker that identifies
its folder, licence, citation, twin writer) as ``INFO`` in ``course_utils/datasets/<name>.py``;
this module holds only the machinery: finding, downloading, extracting, twins.
``locate(name)`` tries, in order, and prints which one it used:

1. an explicit path (the ``path`` argument, or the ``COURSE_DATA_DIR`` folder);
2. a Kaggle input mount (``/kaggle/input/<slug>`` or ``/kaggle/input/datasets/<owner>/<slug>``);
3. the local cache ``data/<name>/``;
4. a download: ``kagglehub`` for the Kaggle handle, else ``pooch`` for the official URL (or URLs: see
   :func:`archives`);
5. otherwise an error that lists the ways to get the data.

Folders this module writes (an unpacked archive, a twin) appear whole or not at all: they are
written into a hidden staging folder beside their final place, under a lock, and renamed into
place when complete. A run killed halfway leaves only a hidden folder, which the search ignores
and the next write removes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from course_utils import runtime
from course_utils.datasets import (
    DamagedFileError,
    DatasetInfo,
    aisegment,
    brats,
    camvid,
    coco_panoptic,
    davis,
    human_parsing,
    kitti_flow,
    kvasir_seg,
    modelnet,
    pennfudan,
    shapenet_part,
    sintel,
)

try:
    import fcntl  # file locks; POSIX only
except ImportError:  # Windows
    fcntl = None

# Every dataset declares its entry (``INFO``) in its own module, beside its loader and twin.
MODULES = (aisegment, kvasir_seg, camvid, brats, human_parsing, pennfudan, coco_panoptic, sintel, kitti_flow, davis,
           shapenet_part, modelnet)
REGISTRY: dict[str, DatasetInfo] = {module.INFO.name: module.INFO for module in MODULES}
# A dataset that comes as several archives (COCO panoptic: the photos and the annotations) lists them there too,
# as ``ARCHIVES = {folder: (url, sha256)}``: each is downloaded and unpacked into that folder of data/<name>/.
ARCHIVES: dict[str, dict[str, tuple[str, str | None]]] = {
    module.INFO.name: module.ARCHIVES for module in MODULES if hasattr(module, "ARCHIVES")}

TWIN_STAMP = ".twin_version"  # in a twin's folder: the twin_version it was written with
EXTRACTED_MARK = ".extracted"  # in an unpacked archive's folder: the archive's file name


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset cannot be found or fetched; the message says what to do."""


class DownloadError(ConnectionError):
    """A download that did not complete (connection dropped, server error); names the URL."""


def info(name: str) -> DatasetInfo:
    if name not in REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; registered: {sorted(REGISTRY)}")
    return REGISTRY[name]


def archives(ds: DatasetInfo) -> dict[str, tuple[str, str | None]]:
    """``{folder: (url, sha256)}``: the archives of dataset ``ds`` in download order, each with the folder of
    ``data/<name>/`` it is unpacked into; most datasets have one, ``ds.url``, unpacked into the folder itself."""
    return ARCHIVES.get(ds.name) or {"": (ds.url, ds.sha256)}


def cache_dir() -> Path:
    """``data/`` of the repository checkout, else ``./data``; on Kaggle the local disk's temporary folder, since
    /kaggle/working keeps only 20 GB, all saved as the notebook's output (notebook 08's three archives and their
    contents need about 16 GB); ``COURSE_CACHE_DIR`` overrides."""
    if os.environ.get("COURSE_CACHE_DIR"):
        return Path(os.environ["COURSE_CACHE_DIR"])
    root = runtime.project_root()
    if root is None and runtime.on_kaggle():
        return Path(tempfile.gettempdir()) / "course_data"
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


# ---------------------------------------------------------------------------------------------
# Finding


def has_marker(folder: Path, marker: str, max_depth: int = 4) -> bool:
    """True if ``folder`` or a folder below it (up to ``max_depth``) ends with ``marker``.

    The marker is matched from the right, so ``Kvasir-SEG/masks`` is found in both the official
    zip (``Kvasir-SEG/masks``) and the Kaggle copy (``Kvasir-SEG/Kvasir-SEG/masks``), and also
    when the folder given is ``Kvasir-SEG`` itself. Hidden entries (names starting with ``.``) are
    skipped: they include the staging folders of unfinished writes, which must not pass for data.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return False
    base_depth = len(folder.parts)
    for current, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        here = Path(current)
        if any((here / entry).match(marker) for entry in [*subdirs, *files] if not entry.startswith(".")):
            return True
        if len(here.parts) - base_depth >= max_depth:
            subdirs.clear()  # do not descend further
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
    A ``COURSE_DATA_DIR`` that does not hold it is reported, then the other places are searched
    (the variable may be set for another dataset).
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
        candidates = (Path(env) / name, Path(env))
        for candidate in candidates:
            if has_marker(candidate, ds.marker):
                return candidate, "COURSE_DATA_DIR"
        print(f"{name}: COURSE_DATA_DIR is {env}, but neither {candidates[0]} nor {candidates[1]} holds "
              f"{ds.title} (expected '{ds.marker}' in it or below it); looking in the other places.")
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
            urls = " and ".join(url for url, _ in archives(ds).values())
            try:
                root = cache_dir() / name
                for folder, (url, sha256) in archives(ds).items():
                    download_url(url, root / folder, sha256=sha256)
                if not has_marker(root, ds.marker):
                    raise DataNotFoundError(f"it was unpacked into {root}, but '{ds.marker}' is not in it")
                print(f"{name}: downloaded from {urls}: {root}")
                return root
            except Exception as error:
                problems.append(f"download of {urls} failed: {error}")
    raise DataNotFoundError(_not_found_message(ds, problems, kaggle_input))


def _not_found_message(ds: DatasetInfo, problems: list[str], kaggle_input: Path | None = None) -> str:
    env = os.environ.get("COURSE_DATA_DIR")
    lines = [f"Could not find {ds.title} ({ds.name}). Looked for '{ds.marker}' in:",
             f"  - COURSE_DATA_DIR: {env} (it does not hold the dataset; check the folder)" if env
             else "  - COURSE_DATA_DIR: not set",
             f"  - the Kaggle input mounts under {kaggle_input or runtime.KAGGLE_INPUT}",
             f"  - the local cache {cache_dir() / ds.name}"]
    lines += [f"  - {p}" for p in problems]
    lines.append("Ways to get it:")
    if ds.kaggle:
        lines.append(f"  * on Kaggle: Add Input -> search '{ds.kaggle}' and attach it, then run again;")
        lines.append("  * elsewhere: Kaggle credentials (KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json) "
                     "let kagglehub download it;")
    if ds.url:
        urls = [url for url, _ in archives(ds).values()]
        lines.append(f"  * download {' and '.join(urls)}, unzip {'it' if len(urls) == 1 else 'them into one folder'} "
                     f"and pass the folder: locate('{ds.name}', path=...) or set COURSE_DATA_DIR;")
    if ds.manual:
        lines.append(f"  * {ds.manual};")
    lines.append("  * or run with COURSE_SMOKE=1 to use the small synthetic twin (a quick check, not real results).")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Downloading


def download_kaggle(handle: str) -> Path:
    """Download (or reuse kagglehub's cache of) a Kaggle dataset; returns its folder."""
    import kagglehub

    return Path(kagglehub.dataset_download(handle))


def download_url(url: str, target: Path, sha256: str | None = None) -> Path:
    """Download ``url`` with pooch (progress bar, sha256 check) and unpack it safely into ``target``.

    The archive is kept in ``downloads/`` beside ``target`` so that a later run need not fetch it
    again. pooch reuses a file it finds there without looking inside when no sha256 is known, so
    the archive is read through before unpacking: a damaged one (a download cut short, a corrupt
    copy) is deleted and fetched once more, and if the new copy is damaged too that is an error.
    """
    target = Path(target)
    downloads = target.parent / "downloads"
    archive = _fetch(url, downloads, sha256)
    problem = archive_problem(archive)
    if problem:
        print(f"{archive} is damaged ({problem}); deleting it and downloading it again.")
        archive.unlink(missing_ok=True)
        archive = _fetch(url, downloads, sha256)
        problem = archive_problem(archive)
        if problem:
            raise DamagedFileError(
                f"{url}: the downloaded file {archive} is damaged ({problem}), twice in a row. The server "
                f"may be sending a broken file: try again later, or download it yourself, unpack it and pass "
                f"the folder (locate(..., path=...) or COURSE_DATA_DIR).")
    return extract(archive, target)


def _fetch(url: str, folder: Path, sha256: str | None) -> Path:
    """``pooch.retrieve`` into ``folder``, with errors that name the URL and say what to do.

    pooch streams into a temporary file and keeps it only when it arrived whole (and matches the
    sha256), so after any of these errors nothing half-downloaded stays behind.
    """
    import pooch
    import requests

    try:
        return Path(pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None,
                                   path=folder, progressbar=True))
    except ValueError as error:  # pooch deletes a file whose checksum does not match
        raise ValueError(f"{url}: the download is not the expected file ({error}). Try again; if it "
                         f"persists the server's file changed: tell the course maintainers.") from error
    except requests.HTTPError as error:
        raise DownloadError(f"{url}: the server refused the download ({error}). The address may have "
                            f"moved: tell the course maintainers, or get the data another way (below).") from error
    except requests.RequestException as error:  # connection dropped, refused or timed out
        raise DownloadError(
            f"{url}: the download did not complete ({type(error).__name__}: {error}). Nothing was kept. "
            f"Check the Internet connection (on Kaggle: Settings -> Internet on) and run again; or download "
            f"the file yourself, unpack it and pass the folder (locate(..., path=...) or COURSE_DATA_DIR).") from error


def archive_problem(archive: Path) -> str | None:
    """What is wrong with the zip or tar ``archive``, or None when every member reads back intact.

    Reading every member is what proves an archive whole: a download cut short loses the zip's
    central directory (stored at its end) or the tar's last bytes, and a changed byte fails a zip
    member's CRC or the gzip checksum. This costs one read of the archive, small beside a download.
    (An uncompressed tar cut exactly between two members still reads as a shorter, whole archive.)
    """
    archive = Path(archive)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
            return f"member {bad!r} fails its CRC check" if bad else None
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                for member in tf:
                    if member.isfile():
                        with tf.extractfile(member) as stream:
                            while stream.read(1 << 20):
                                pass
            return None
    except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, zlib.error) as error:
        return f"{type(error).__name__}: {error}"
    return "it is neither a zip nor a tar archive, or it is cut short"


# ---------------------------------------------------------------------------------------------
# Extracting


def extract(archive: Path, target: Path) -> Path:
    """Unpack a zip or tar archive into ``target`` (which must be absent or empty); returns ``target``.

    The archive is unpacked into a hidden staging folder and renamed to ``target`` when complete
    (see :func:`_write_whole`), so a run killed halfway never leaves a half dataset that the next run
    takes for a whole one. Members that would land outside ``target`` (``../`` or absolute paths),
    links, devices, FIFOs and setuid/setgid files are refused: a malicious archive must not write
    elsewhere or plant special files.
    """
    archive, target = Path(archive), Path(target)

    def unpack(staging: Path) -> None:
        _unpack(archive, staging)
        (staging / EXTRACTED_MARK).write_text(archive.name)

    with _writer_lock(target):
        mark = target / EXTRACTED_MARK
        if mark.is_file() and mark.read_text() == archive.name:
            return target  # another run unpacked it while this one waited for the lock
        if target.exists() and any(target.iterdir()):
            raise FileExistsError(f"{target} already exists and is not an unpacked copy of {archive.name}; refusing "
                                  f"to unpack on top of it. Delete it (or pick an empty folder) and run again.")
        _write_whole(target, unpack)
    return target


def _unpack(archive: Path, folder: Path) -> None:
    """Check every member of ``archive``, then unpack it into ``folder``."""
    folder.mkdir(parents=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:  # zipfile makes neither links nor special files
            for member in zf.namelist():
                _check_inside(archive, member, folder)
            zf.extractall(folder)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                _check_inside(archive, member.name, folder)
                _check_tar_member(archive, member)
            # Python's own "data" filter (3.12, backported to 3.8.17+) refuses the same, again
            safety = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tf.extractall(folder, members, **safety)
    else:
        raise ValueError(f"{archive} is neither a zip nor a tar archive; delete it and download again")


def _check_inside(archive: Path, member: str, folder: Path) -> None:
    top = folder.resolve()
    dest = (top / member).resolve()
    if dest != top and top not in dest.parents:
        raise ValueError(f"{archive}: member {member!r} would be written outside the target folder; "
                         f"refusing to extract this archive (it may be corrupt or malicious)")


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Only plain files and folders: a dataset needs nothing else, and links, devices, FIFOs or
    setuid/setgid programs from a downloaded archive can reach outside it or be abused."""
    if member.issym() or member.islnk():
        problem = f"is a link (to {member.linkname!r})"
    elif member.isdev():
        problem = "is a device or FIFO"
    elif not (member.isfile() or member.isdir()):
        problem = f"is a special entry (tar type {member.type!r})"
    elif member.mode & (stat.S_ISUID | stat.S_ISGID):
        problem = f"has the setuid or setgid bit set (mode {member.mode:o})"
    else:
        return
    raise ValueError(f"{archive}: member {member.name!r} {problem}; a dataset holds only files and folders, "
                     f"so this archive is refused (it may be corrupt or malicious)")


# ---------------------------------------------------------------------------------------------
# Writing a folder whole: staging, lock, rename


def _staging(folder: Path) -> Path:
    """The hidden folder beside ``folder`` that this process writes into before the rename."""
    return folder.with_name(f".{folder.name}.incomplete-{os.getpid()}")


def _write_whole(folder: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(staging)``, then rename the staging folder to ``folder`` (replacing it).

    Call it inside :func:`_writer_lock`. One rename makes ``folder`` appear complete at once; if
    ``write`` fails, its staging folder is removed and the error passes on.
    """
    staging = _staging(folder)
    try:
        write(staging)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@contextlib.contextmanager
def _writer_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (the file ``.<name>.lock`` beside it) while writing it.

    Two runs (notebooks and tests side by side in CI) may want to write the same folder at once:
    the lock makes the second wait until the first is done, so it finds the finished folder rather
    than replacing it under a reader. The system releases the lock when its process exits or is
    killed, so a dead run never blocks the next, and any staging folder found while holding the
    lock was left by a killed run: it is removed. Without ``fcntl`` (Windows), or on a file system
    without locks, there is no lock: run one notebook at a time there.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(f".{folder.name}.lock"), "a") as handle:  # closing it releases the lock
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"waiting for another run that is writing {folder}...")
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError:  # the file system does not support locks
                pass
        for stale in folder.parent.glob(f".{folder.name}.incomplete-*"):
            print(f"removing {stale}, left by a run that was stopped while writing it")
            shutil.rmtree(stale, ignore_errors=True)
        yield


# ---------------------------------------------------------------------------------------------
# Synthetic twins


def twin_dir(name: str, root: Path | None = None) -> Path:
    """The synthetic twin of ``name`` in ``data/twins/<name>``, written on first use.

    Several runs may ask for it at once. The first takes the lock and writes the twin (staging
    folder, then rename); the others wait for the lock, see the finished twin's version stamp and
    use it. A complete twin of the current version is never removed, so no run deletes a twin
    that another is reading; only a twin of an older version is replaced.
    """
    ds = info(name)
    if ds.write_twin is None:
        raise DataNotFoundError(f"{name} has no synthetic twin; smoke mode cannot run without one")
    folder = Path(root) if root else cache_dir() / "twins" / name

    def write(staging: Path) -> None:
        write_twin(name, staging)
        (staging / TWIN_STAMP).write_text(str(ds.twin_version))  # last: the twin is complete

    if not _twin_is_current(folder, ds):
        with _writer_lock(folder):
            if not _twin_is_current(folder, ds):  # another run may have written it while we waited
                _write_whole(folder, write)
    return folder


def _twin_is_current(folder: Path, ds: DatasetInfo) -> bool:
    stamp = folder / TWIN_STAMP
    return stamp.is_file() and stamp.read_text().strip() == str(ds.twin_version)


def write_twin(name: str, root: str | Path) -> Path:
    """Write the synthetic twin of dataset ``name`` into ``root``, in the real on-disk format."""
    ds = info(name)
    if ds.write_twin is None:
        raise KeyError(f"{name} has no twin writer")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ds.write_twin(root)
    return root
