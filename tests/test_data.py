import dataclasses
import hashlib
import http.server
import io
import shutil
import tarfile
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest
from conftest import ROOT

from course_utils import data, runtime
from course_utils.datasets import kvasir_seg


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


@pytest.fixture
def http_server(tmp_path):
    """A static file server on 127.0.0.1 serving tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def zip_folder(folder: Path, archive: Path) -> str:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder))
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def test_registry_entries_are_complete():
    for name, ds in data.REGISTRY.items():
        assert ds.name == name and ds.title and ds.marker and ds.licence and ds.citation
        assert ds.kaggle or ds.url, f"{name} has no way to be downloaded"
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
    www, base = http_server
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
    www, base = http_server
    (www / "data.zip").write_bytes(b"not what was published")
    with pytest.raises(ValueError, match=f"{base}/data.zip"):
        data.download_url(f"{base}/data.zip", tmp_path / "out", sha256="0" * 64)
    assert not list((tmp_path / "out").rglob("data.zip"))


def test_not_found_error_lists_every_way_to_get_the_data(no_downloads):
    with pytest.raises(data.DataNotFoundError) as error:
        data.locate("kvasir_seg", kaggle_input=Path("/nonexistent"))
    message = str(error.value)
    for needle in ("debeshjha1/kvasirseg", "Add Input", "kaggle.json", "kvasir-seg.zip", "COURSE_DATA_DIR",
                   "COURSE_SMOKE=1", "no network in this test"):
        assert needle in message


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
    assert not list(root.parent.glob(".*tmp*"))
