import contextlib
import dataclasses
import hashlib
import http.server
import io
import multiprocessing
import os
import random
import shutil
import signal
import stat
import tarfile
import tempfile
import threading
import time
import zipfile
from functools import partial
from pathlib import Path

import pytest
from conftest import ROOT

from course_utils import data, runtime
from course_utils.datasets import DamagedFileError, kvasir_seg


@pytest.fixture(autouse=True)
def full_mode(monkeypatch, tmp_path):
    """Full mode, an empty cache and no COURSE_DATA_DIR, unless a test says otherwise."""
    monkeypatch.setattr(runtime, "SMOKE", False)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)


@pytest.fixture
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("no network in this test")

    monkeypatch.setattr(data, "download_kaggle", refuse)
    monkeypatch.setattr(data, "download_url", refuse)


@contextlib.contextmanager
def serving(handler):
    """An HTTP server on 127.0.0.1 in a background thread, for the duration of the block."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files and records each GET path in ``requests`` (a list set by the fixture)."""

    requests: list[str] = []

    def do_GET(self):
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    """A static file server on 127.0.0.1 serving tmp_path/www; yields (www, base_url, requests)."""
    www = tmp_path / "www"
    www.mkdir()
    requests: list[str] = []
    handler = partial(type("Handler", (QuietFileHandler,), {"requests": requests}), directory=str(www))
    with serving(handler) as base:
        yield www, base, requests


def zip_folder(folder: Path, archive: Path) -> str:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def test_registry_entries_are_complete():
    for name, ds in data.REGISTRY.items():
        assert ds.name == name and ds.title and ds.marker and ds.licence and ds.citation
        assert ds.kaggle or ds.url or ds.manual, f"{name} has no way to be downloaded or got by hand"
        assert any((ROOT / "notebooks").glob(f"{ds.notebook}_*.ipynb")), f"{name}: no notebook {ds.notebook}"


def test_data_readme_lists_every_dataset():
    readme = (ROOT / "data" / "README.md").read_text()
    for ds in data.REGISTRY.values():
        assert f"`{ds.name}`" in readme and (ds.kaggle is None or ds.kaggle in readme)


@pytest.mark.parametrize("layout", ["kaggle", "official"])
def test_marker_is_found_in_both_nestings_and_from_inside(tmp_path, layout):
    kvasir_seg.write_twin(tmp_path, n_images=2, n_val=1, layout=layout)
    assert data.has_marker(tmp_path, "Kvasir-SEG/masks")
    inner = next(tmp_path.rglob("images")).parent
    assert data.has_marker(inner, "Kvasir-SEG/masks")  # the folder with images/ and masks/ given directly
    assert not data.has_marker(tmp_path / "Kvasir-SEG" / "nothing", "Kvasir-SEG/masks")


def test_explicit_path_wins_and_a_wrong_path_is_an_error(kvasir_twin, tmp_path):
    assert data.locate("kvasir_seg", path=kvasir_twin) == kvasir_twin
    with pytest.raises(data.DataNotFoundError, match="Kvasir-SEG/masks"):
        data.locate("kvasir_seg", path=tmp_path)


def test_course_data_dir(kvasir_twin, monkeypatch, no_downloads):
    monkeypatch.setenv("COURSE_DATA_DIR", str(kvasir_twin.parent))
    assert data.locate("kvasir_seg") == kvasir_twin.parent


@pytest.mark.parametrize("mount", ["kvasirseg", "datasets/debeshjha1/kvasirseg", "my-upload-of-kvasir"])
def test_kaggle_mounts(kvasir_twin, tmp_path, mount, no_downloads):
    kaggle_input = tmp_path / "kaggle" / "input"
    (kaggle_input / "some-other-dataset").mkdir(parents=True)
    shutil.copytree(kvasir_twin, kaggle_input / mount)
    assert data.locate("kvasir_seg", kaggle_input=kaggle_input) == kaggle_input / mount


def test_local_cache(kvasir_twin, no_downloads):
    shutil.copytree(kvasir_twin, data.cache_dir() / "kvasir_seg")
    assert data.locate("kvasir_seg", kaggle_input=Path("/nonexistent")) == data.cache_dir() / "kvasir_seg"


def test_kagglehub_download_is_used_when_nothing_is_local(kvasir_twin, monkeypatch):
    import kagglehub

    asked = []
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle: asked.append(handle) or str(kvasir_twin))
    assert data.locate("kvasir_seg", kaggle_input=Path("/nonexistent")) == kvasir_twin
    assert asked == ["debeshjha1/kvasirseg"]


def test_url_download_with_checksum_and_extraction(tmp_path, http_server, monkeypatch):
    www, base, _ = http_server
    kvasir_seg.write_twin(tmp_path / "src", n_images=3, n_val=1, layout="official")
    sha = zip_folder(tmp_path / "src", www / "kvasir-seg.zip")
    local = dataclasses.replace(data.REGISTRY["kvasir_seg"], kaggle=None, url=f"{base}/kvasir-seg.zip", sha256=sha)
    monkeypatch.setitem(data.REGISTRY, "kvasir_seg", local)
    root = data.locate("kvasir_seg", kaggle_input=Path("/nonexistent"))
    assert root == data.cache_dir() / "kvasir_seg"
    assert len(kvasir_seg.KvasirSeg(root, "all")) == 3
    # second call: found in the cache, no download
    assert data.find_local("kvasir_seg") == (root, "the local cache")


def test_checksum_mismatch_is_refused(tmp_path, http_server):
    www, base, _ = http_server
    (www / "data.zip").write_bytes(b"not what was published")
    with pytest.raises(ValueError, match=f"{base}/data.zip"):
        data.download_url(f"{base}/data.zip", tmp_path / "out", sha256="0" * 64)
    assert not list((tmp_path / "downloads").glob("*data.zip"))  # pooch deleted it


def test_not_found_error_lists_every_way_to_get_the_data(no_downloads):
    with pytest.raises(data.DataNotFoundError) as error:
        data.locate("kvasir_seg", kaggle_input=Path("/nonexistent"))
    message = str(error.value)
    for needle in ("debeshjha1/kvasirseg", "Add Input", "kaggle.json", "kvasir-seg.zip", "COURSE_DATA_DIR",
                   "COURSE_SMOKE=1", "no network in this test"):
        assert needle in message


def test_a_dataset_without_a_download_says_how_to_get_it_by_hand(no_downloads):
    with pytest.raises(data.DataNotFoundError) as error:
        data.locate("lip", kaggle_input=Path("/nonexistent"))
    message = str(error.value)
    for needle in ("sysu-hcp.net/lip", "TrainVal_parsing_annotations.zip", "private dataset", "COURSE_SMOKE=1"):
        assert needle in message
    assert "kagglehub" not in message  # no Kaggle copy to offer


def test_unknown_dataset():
    with pytest.raises(KeyError, match="registered"):
        data.locate("imagenet")


def make_zip(path: Path, member: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/file.txt", "fine")
        zf.writestr(member, "escaped")
    return path


@pytest.mark.parametrize("member", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil_abs.txt"])
def test_zip_member_outside_target_is_refused(tmp_path, member):
    target = tmp_path / "target"
    with pytest.raises(ValueError, match="outside"):
        data.extract(make_zip(tmp_path / "bad.zip", member), target)
    assert not (tmp_path / "evil.txt").exists() and not list(target.rglob("*.txt"))


def test_tar_with_dotdot_or_link_is_refused(tmp_path):
    for name, kind in (("../evil.txt", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        archive = tmp_path / "bad.tar.gz"
        with tarfile.open(archive, "w:gz") as tf:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            payload = b"" if kind == tarfile.SYMTYPE else b"escaped"
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))
        with pytest.raises(ValueError, match="outside|link"):
            data.extract(archive, tmp_path / "target")


def test_safe_archives_extract_and_junk_is_an_error(tmp_path):
    data.extract(make_zip(tmp_path / "good.zip", "ok/other.txt"), tmp_path / "t")
    assert (tmp_path / "t" / "ok" / "other.txt").read_text() == "escaped"
    (tmp_path / "junk.bin").write_bytes(b"12345")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        data.extract(tmp_path / "junk.bin", tmp_path / "t2")


def test_smoke_mode_writes_the_twin_once(monkeypatch):
    monkeypatch.setattr(runtime, "SMOKE", True)
    calls = []
    original = kvasir_seg.write_twin
    small = dataclasses.replace(data.REGISTRY["kvasir_seg"],
                                write_twin=lambda root: calls.append(root) or original(root, n_images=3, n_val=1))
    monkeypatch.setitem(data.REGISTRY, "kvasir_seg", small)
    root = data.locate("kvasir_seg")
    assert root == data.cache_dir() / "twins" / "kvasir_seg" and data.has_marker(root, small.marker)
    assert data.locate("kvasir_seg") == root and len(calls) == 1  # cached
    monkeypatch.setitem(data.REGISTRY, "kvasir_seg", dataclasses.replace(small, twin_version=small.twin_version + 1))
    data.locate("kvasir_seg")
    assert len(calls) == 2  # a new twin version rewrites it
    assert not list(root.parent.glob(".*incomplete*"))


# --- downloads: dropped connections, damaged archives ------------------------------------------


class DroppingHandler(http.server.BaseHTTPRequestHandler):
    """Promises 100 kB, sends 1 kB and closes the connection: a download cut off midway."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"x" * 1000)
        self.close_connection = True

    def log_message(self, *args):
        pass


def test_dropped_connection_names_the_url_and_keeps_nothing(tmp_path):
    with serving(DroppingHandler) as base:
        url = f"{base}/data.zip"
        with pytest.raises(data.DownloadError, match="Internet") as error:
            data.download_url(url, tmp_path / "out")
    assert url in str(error.value) and "did not complete" in str(error.value)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no half file for a later run to reuse


def text_zip(n: int = 5) -> bytes:
    """A zip of n text files, stored uncompressed so that a test can change one byte of a member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(n):
            zf.writestr(f"ds/file{i}.txt", f"content of file {i}. " * 50)
    return buffer.getvalue()


def damage(archive: bytes, how: str) -> bytes:
    if how == "short":  # a download cut short: the zip's central directory (at its end) is gone
        return archive[: len(archive) // 2]
    return archive.replace(b"content of file 3", b"CONTENT of file 3")  # one changed byte: the CRC fails


@pytest.mark.parametrize("how", ["short", "corrupt"])
def test_damaged_cached_archive_is_fetched_again(tmp_path, http_server, how):
    www, base, requests = http_server
    good = text_zip()
    (www / "ds.zip").write_bytes(good)
    url = f"{base}/ds.zip"
    root = data.download_url(url, tmp_path / "ds")
    [cached] = [p for p in tmp_path.rglob("*ds.zip") if www not in p.parents]
    cached.write_bytes(damage(good, how))  # as a killed or faulty earlier run left it
    for path in root.iterdir():  # keep only the download, as when unpacking it failed
        if path not in cached.parents:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    requests.clear()
    root = data.download_url(url, tmp_path / "ds")
    assert requests == ["/ds.zip"] and cached.read_bytes() == good  # fetched once more
    assert sorted(p.name for p in root.rglob("*.txt")) == [f"file{i}.txt" for i in range(5)]


def test_archive_damaged_twice_is_an_error_naming_url_and_file(tmp_path, http_server):
    www, base, requests = http_server
    (www / "ds.zip").write_bytes(damage(text_zip(), "short"))  # the server itself sends a broken file
    url = f"{base}/ds.zip"
    with pytest.raises(DamagedFileError, match="twice") as error:
        data.download_url(url, tmp_path / "ds")
    [cached] = [p for p in tmp_path.rglob("*ds.zip") if www not in p.parents]
    assert url in str(error.value) and str(cached) in str(error.value)
    assert len(requests) == 2 and not (tmp_path / "ds").exists()


@pytest.mark.parametrize("mode", ["w", "w:gz"])
def test_archive_problem_reads_every_tar_member(tmp_path, mode):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for i in range(3):
            payload = random.Random(i).randbytes(20_000)
            member = tarfile.TarInfo(f"ds/{i}.bin")
            member.size = len(payload)
            tf.addfile(member, io.BytesIO(payload))
    archive = tmp_path / "ds.tar"
    archive.write_bytes(buffer.getvalue())
    assert data.archive_problem(archive) is None
    archive.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])  # cut inside the second member
    assert data.archive_problem(archive)


def test_downloaded_archive_without_the_marker_is_an_error(tmp_path, http_server, monkeypatch):
    www, base, _ = http_server
    (www / "other.zip").write_bytes(text_zip())
    entry = dataclasses.replace(data.REGISTRY["kvasir_seg"], kaggle=None, url=f"{base}/other.zip", sha256=None)
    monkeypatch.setitem(data.REGISTRY, "kvasir_seg", entry)
    with pytest.raises(data.DataNotFoundError, match="'Kvasir-SEG/masks' is not in it"):
        data.locate("kvasir_seg", kaggle_input=tmp_path / "none")


# --- extraction: whole or not at all, special tar members --------------------------------------

needs_fork = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="the multi-process tests fork this process")


def extract_and_die(archive: Path, target: Path, at_member: int) -> None:
    """In a forked child: unpack ``archive``, but SIGKILL this process at the given member."""
    original = zipfile.ZipFile._extract_member
    count = 0

    def dying(self, *args, **kwargs):
        nonlocal count
        count += 1
        if count == at_member:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, *args, **kwargs)

    zipfile.ZipFile._extract_member = dying
    data.extract(archive, target)


@needs_fork
def test_extraction_killed_halfway_is_not_taken_for_the_dataset(kvasir_twin, tmp_path, no_downloads):
    archive = tmp_path / "kvasir.zip"
    zip_folder(kvasir_twin, archive)
    target = data.cache_dir() / "kvasir_seg"
    # member 17: the images, the masks folder (the marker) and two masks are out
    child = multiprocessing.get_context("fork").Process(target=extract_and_die, args=(archive, target, 17))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    [staging] = target.parent.glob(".kvasir_seg.incomplete-*")
    assert list(staging.rglob("masks/*.jpg"))  # half written
    assert data.find_local("kvasir_seg", kaggle_input=tmp_path / "none") is None
    assert not data.has_marker(data.cache_dir(), "Kvasir-SEG/masks")  # a hidden staging folder is no dataset
    with pytest.raises(data.DataNotFoundError):
        data.locate("kvasir_seg", kaggle_input=tmp_path / "none")
    data.extract(archive, target)  # the next run: removes the leftover, unpacks whole
    assert not staging.exists()
    assert data.find_local("kvasir_seg", kaggle_input=tmp_path / "none") == (target, "the local cache")
    assert len(kvasir_seg.KvasirSeg(target, "all")) == 10


def test_failed_extraction_leaves_neither_target_nor_staging(tmp_path):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(damage(text_zip(), "corrupt"))  # fails at its fourth member
    with pytest.raises(zipfile.BadZipFile):
        data.extract(archive, tmp_path / "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".t.lock", "bad.zip"]


def test_extract_does_not_unpack_on_top_of_other_files(tmp_path):
    archive = make_zip(tmp_path / "good.zip", "ok/other.txt")
    assert data.extract(archive, tmp_path / "t") == tmp_path / "t"
    assert data.extract(archive, tmp_path / "t") == tmp_path / "t"  # already unpacked: nothing to do
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="mine"):
        data.extract(archive, tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def tar_with(path: Path, special: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("ds/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        tf.addfile(special, io.BytesIO(b"#!" * (special.size // 2)))
    return path


@pytest.mark.parametrize("kind", ["fifo", "char device", "block device", "setuid", "setgid"])
def test_tar_devices_fifos_and_setuid_files_are_refused(tmp_path, kind):
    special = tarfile.TarInfo("ds/special")
    if kind == "fifo":
        special.type = tarfile.FIFOTYPE
    elif kind.endswith("device"):
        special.type = tarfile.CHRTYPE if kind == "char device" else tarfile.BLKTYPE
        special.devmajor, special.devminor = 1, 3
    else:
        special.mode = (stat.S_ISUID if kind == "setuid" else stat.S_ISGID) | 0o755
        special.size = 2
    with pytest.raises(ValueError, match="'ds/special'.*(device or FIFO|setuid or setgid)"):
        data.extract(tar_with(tmp_path / "special.tar", special), tmp_path / "t")
    assert not (tmp_path / "t").exists() and not list(tmp_path.glob(".t.incomplete-*"))


@pytest.mark.skipif(not hasattr(tarfile, "data_filter"), reason="this Python has no tarfile extraction filters")
def test_tar_extraction_also_uses_pythons_data_filter(tmp_path, monkeypatch):
    filters = []
    original = tarfile.TarFile.extractall

    def spy(self, *args, **kwargs):
        filters.append(kwargs.get("filter"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extractall", spy)
    plain = tarfile.TarInfo("ds/plain.txt")
    plain.size = 2
    data.extract(tar_with(tmp_path / "good.tar", plain), tmp_path / "t")
    assert filters == ["data"] and (tmp_path / "t" / "ds" / "ok.txt").read_text() == "ok"


# --- twins: concurrent runs, killed writers ------------------------------------------------------


def slow_twin_writer(log: Path):
    """A twin writer that takes a while (so that runs overlap) and logs each call."""

    def write(root: Path) -> None:
        with open(log, "a") as calls:
            calls.write(f"{os.getpid()}\n")
        for i in range(20):
            (root / f"{i:02d}.txt").write_text(str(i) * 1000)
            time.sleep(0.005)

    return write


def twin_reader(delay: float, results) -> None:
    """In a forked child: ask for the twin, then read it over and over, as a DataLoader does."""
    time.sleep(delay)
    try:
        folder = data.twin_dir("kvasir_seg")
        for _ in range(20):
            names = sorted(p.name for p in folder.glob("*.txt"))
            assert names == [f"{i:02d}.txt" for i in range(20)], f"found {len(names)} of 20 files"
            for name in names:
                (folder / name).read_text()
            time.sleep(0.005)
        results.put("ok")
    except Exception as error:
        results.put(f"{type(error).__name__}: {error}")


@needs_fork
def test_concurrent_runs_share_one_twin_and_no_reader_fails(tmp_path, monkeypatch):
    log = tmp_path / "writer_calls.txt"
    entry = dataclasses.replace(data.REGISTRY["kvasir_seg"], write_twin=slow_twin_writer(log))
    monkeypatch.setitem(data.REGISTRY, "kvasir_seg", entry)
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    runs = [fork.Process(target=twin_reader, args=(0.03 * i, results)) for i in range(8)]
    for run in runs:
        run.start()
    outcomes = [results.get(timeout=60) for _ in runs]
    for run in runs:
        run.join(10)
    assert outcomes == ["ok"] * len(runs)
    assert len(log.read_text().splitlines()) == 1  # one run wrote it, the others waited and used it
    assert sorted(p.name for p in (data.cache_dir() / "twins").iterdir()) == [".kvasir_seg.lock", "kvasir_seg"]


def die_while_writing(root: Path) -> None:
    (root / "half.txt").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)


@needs_fork
def test_twin_staging_left_by_a_killed_writer_is_removed(tmp_path, monkeypatch):
    entry = data.REGISTRY["kvasir_seg"]
    monkeypatch.setitem(data.REGISTRY, "kvasir_seg", dataclasses.replace(entry, write_twin=die_while_writing))
    writer = multiprocessing.get_context("fork").Process(target=data.twin_dir, args=("kvasir_seg",))
    writer.start()
    writer.join(60)
    assert writer.exitcode == -signal.SIGKILL  # killed while holding the lock, mid-write
    twins = data.cache_dir() / "twins"
    planted = twins / ".kvasir_seg.incomplete-999999"  # and one from a run killed earlier
    (planted / "Kvasir-SEG").mkdir(parents=True)
    assert len(list(twins.glob(".kvasir_seg.incomplete-*"))) == 2
    assert not (twins / "kvasir_seg").exists()
    working = dataclasses.replace(entry, write_twin=slow_twin_writer(tmp_path / "log"))
    monkeypatch.setitem(data.REGISTRY, "kvasir_seg", working)
    folder = data.twin_dir("kvasir_seg")  # does not wait for the dead writer, cleans up after it
    assert not list(twins.glob(".kvasir_seg.incomplete-*"))
    assert len(list(folder.glob("*.txt"))) == 20 and not (folder / "half.txt").exists()


# --- COURSE_DATA_DIR -----------------------------------------------------------------------------


def test_course_data_dir_without_the_dataset_is_reported(kvasir_twin, tmp_path, monkeypatch, capsys, no_downloads):
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    monkeypatch.setenv("COURSE_DATA_DIR", str(wrong))
    cached = data.cache_dir() / "kvasir_seg"
    shutil.copytree(kvasir_twin, cached)
    assert data.locate("kvasir_seg", kaggle_input=tmp_path / "none") == cached
    said = capsys.readouterr().out
    assert f"COURSE_DATA_DIR is {wrong}" in said and "'Kvasir-SEG/masks'" in said
    assert said.index(str(wrong)) < said.index("found in the local cache")  # said before falling back
    shutil.rmtree(cached)
    with pytest.raises(data.DataNotFoundError) as error:
        data.locate("kvasir_seg", kaggle_input=tmp_path / "none")
    assert f"COURSE_DATA_DIR: {wrong} (it does not hold the dataset" in str(error.value)


def test_cache_dir_on_kaggle_is_the_temporary_disk_not_the_saved_output(monkeypatch):
    monkeypatch.delenv("COURSE_CACHE_DIR", raising=False)
    monkeypatch.setattr(runtime, "project_root", lambda: None)  # installed as a package, as on Kaggle
    monkeypatch.setattr(runtime, "on_kaggle", lambda: True)
    assert data.cache_dir() == Path(tempfile.gettempdir()) / "course_data"
    assert not str(data.cache_dir()).startswith(str(runtime.KAGGLE_WORKING))
