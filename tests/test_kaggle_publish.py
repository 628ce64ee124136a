"""make kaggle: the kernel folders and the course kit follow Kaggle's rules, and the push path runs the kaggle CLI as
it should (a stand-in executable on PATH records its arguments; nothing leaves this machine)."""

import importlib.util
import json
import os
import stat
import sys

import nbformat
import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("kaggle_publish", ROOT / "scripts" / "kaggle_publish.py")
kaggle_publish = importlib.util.module_from_spec(spec)
sys.modules["kaggle_publish"] = kaggle_publish
spec.loader.exec_module(kaggle_publish)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture
def dist(tmp_path):
    wheels, weights = tmp_path / "wheels", tmp_path / "weights"
    wheels.mkdir()
    weights.mkdir()
    (wheels / "course_utils-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    (wheels / "pooch-1.8.2-py3-none-any.whl").write_bytes(b"wheel")
    (weights / "resnet34.imagenet.safetensors").write_bytes(b"weights")
    return wheels, weights


def test_every_notebook_gets_a_kernel_folder_that_follows_kaggle_s_rules(tmp_path, dist):
    folders = kaggle_publish.build("teacher", tmp_path / "kaggle", *dist)
    assert [f.name for f in folders] == [p.stem for p in NOTEBOOKS]
    for folder in folders:
        meta = json.loads((folder / "kernel-metadata.json").read_text())
        owner, slug = meta["id"].split("/")
        assert owner == "teacher" and slug == kaggle_publish.slugify(meta["title"]) and 5 <= len(meta["title"]) <= 50
        assert meta["code_file"] == f"{folder.name}.ipynb" and (folder / meta["code_file"]).is_file()
        assert meta["language"] == "python" and meta["kernel_type"] == "notebook" and meta["is_private"] is True
        assert meta["enable_gpu"] is True and meta["machine_shape"] == "NvidiaTeslaT4"  # T4 x2, never a P100
        assert meta["dataset_sources"][-1] == "teacher/segmentation-course-kit"
        assert "kernelspec" in nbformat.read(folder / meta["code_file"], as_version=4).metadata
    by_number = {f.name[:2]: json.loads((f / "kernel-metadata.json").read_text()) for f in folders}
    assert "debeshjha1/kvasirseg" in by_number["03"]["dataset_sources"]
    assert by_number["03"]["enable_internet"] is False  # its data and the weights come attached
    assert by_number["09"]["enable_internet"] is True  # COCO panoptic's annotations are downloaded
    assert by_number["05"]["dataset_sources"] == ["teacher/segmentation-course-kit"]  # LIP: a private upload


def test_without_weights_in_the_kit_the_kernels_may_download_them(tmp_path, dist):
    folders = kaggle_publish.build("teacher", tmp_path / "kaggle", dist[0], tmp_path / "no-weights")
    assert all(json.loads((f / "kernel-metadata.json").read_text())["enable_internet"] for f in folders)


def test_the_course_kit_is_flat_with_a_valid_dataset_metadata(tmp_path, dist):
    kaggle_publish.build("teacher", tmp_path / "kaggle", *dist)
    kit = tmp_path / "kaggle" / "course-kit"
    assert sorted(p.name for p in kit.iterdir()) == ["course_utils-0.1.0-py3-none-any.whl", "dataset-metadata.json",
                                                     "pooch-1.8.2-py3-none-any.whl", "resnet34.imagenet.safetensors"]
    meta = json.loads((kit / "dataset-metadata.json").read_text())
    assert meta["id"] == "teacher/segmentation-course-kit" and 6 <= len(meta["title"]) <= 50
    assert len(meta["licenses"]) == 1


def test_missing_wheels_and_bad_metadata_are_named(tmp_path, dist):
    with pytest.raises(kaggle_publish.PublishError, match="make kaggle-wheels"):
        kaggle_publish.build("teacher", tmp_path / "kaggle", tmp_path / "nowhere", dist[1])
    folder = tmp_path / "bare"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nbformat.write(nb, folder / "x.ipynb")
    meta = {"id": "teacher/other-slug", "title": "Seg", "code_file": "x.ipynb", "language": "python",
            "kernel_type": "notebook", "enable_gpu": True, "machine_shape": "NvidiaTeslaP100"}
    with pytest.raises(kaggle_publish.PublishError) as error:
        kaggle_publish.check_kernel_metadata(meta, folder)
    for needle in ("5-50 characters", "not the title's slug", "NvidiaTeslaT4", "kernelspec"):
        assert needle in str(error.value)
    with pytest.raises(kaggle_publish.PublishError, match="6-50"):
        kaggle_publish.check_kit_metadata({"title": "kit", "licenses": [{"name": "other"}]})


FAKE_KAGGLE = """#!{python}
import pathlib, sys
log, made = pathlib.Path({log!r}), pathlib.Path({log!r} + ".made")
args = sys.argv[1:]
with log.open("a") as f:
    f.write(" ".join(args) + "\\n")
if args[:2] == ["datasets", "status"]:  # like Kaggle: unknown until created, then ready
    print("ready" if made.exists() else "404 - Not Found")
    sys.exit(0 if made.exists() else 1)
if args[:2] in (["datasets", "create"], ["datasets", "version"]):
    made.touch()
if args[:2] == ["kernels", "push"] and {refuse!r} and {refuse!r} in args[-1]:
    print("Kernel push error: Notebook title is too long")  # reported with exit code 0, as the CLI does
"""


def write_fake_kaggle(tmp_path, monkeypatch, refuse=""):
    """A `kaggle` on PATH that logs its arguments and answers like the real CLI; it refuses kernel ``refuse``."""
    bin_dir, log = tmp_path / "bin", tmp_path / "kaggle.log"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "kaggle"
    script.write_text(FAKE_KAGGLE.format(python=sys.executable, log=str(log), refuse=refuse))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-config"))
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    return log


@pytest.fixture
def fake_kaggle(tmp_path, monkeypatch):
    return write_fake_kaggle(tmp_path, monkeypatch)


def test_push_uploads_the_kit_then_pushes_every_kernel(tmp_path, dist, fake_kaggle, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_USERNAME", "teacher")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    out = tmp_path / "kaggle"
    assert kaggle_publish.main(["--push", "--out", str(out), "--wheels", str(dist[0]), "--weights", str(dist[1])]) == 0
    calls = fake_kaggle.read_text().splitlines()
    kit = out / "course-kit"
    assert calls[:3] == ["datasets status teacher/segmentation-course-kit", f"datasets create -p {kit} --dir-mode zip",
                         "datasets status teacher/segmentation-course-kit"]  # first upload, then wait until ready
    assert calls[3:] == [f"kernels push -p {out / p.stem}" for p in NOTEBOOKS]
    printed = capsys.readouterr().out
    assert "https://www.kaggle.com/code/teacher/segmentation-05-human-parsing" in printed
    fake_kaggle.unlink()
    assert kaggle_publish.main(["--push", "--out", str(out), "--wheels", str(dist[0]), "--weights", str(dist[1])]) == 0
    assert fake_kaggle.read_text().splitlines()[1].startswith(f"datasets version -p {kit} -m ")  # it exists now


def test_a_refusal_printed_with_exit_code_0_stops_the_push(tmp_path, dist, monkeypatch, capsys):
    log = write_fake_kaggle(tmp_path, monkeypatch, refuse="03_medical")
    monkeypatch.setenv("KAGGLE_API_TOKEN", "token")
    args = ["--owner", "teacher", "--push", "--out", str(tmp_path / "kaggle"), "--wheels", str(dist[0]),
            "--weights", str(dist[1])]
    assert kaggle_publish.main(args) == 1
    assert "pushing 03_medical_polyp_segmentation failed" in capsys.readouterr().err
    assert not any("04_medical" in line for line in log.read_text().splitlines())  # stopped there


def test_extra_sources_attach_a_private_dataset_to_one_notebook(tmp_path, dist):
    folders = kaggle_publish.build("teacher", tmp_path / "kaggle", *dist, extra_sources={"05": ["teacher/lip"]})
    meta = json.loads((folders[4] / "kernel-metadata.json").read_text())
    assert folders[4].name.startswith("05") and meta["dataset_sources"] == ["teacher/lip",
                                                                            "teacher/segmentation-course-kit"]
    nine = json.loads((folders[8] / "kernel-metadata.json").read_text())
    assert "carlolepelaars/camvid" in nine["dataset_sources"]  # notebook 09 locates CamVid too


def test_without_credentials_nothing_is_pushed(tmp_path, dist, fake_kaggle, monkeypatch, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    args = ["--owner", "teacher", "--push", "--out", str(tmp_path / "kaggle"), "--wheels", str(dist[0]),
            "--weights", str(dist[1])]
    assert kaggle_publish.main(args) == 1
    assert "no Kaggle credentials" in capsys.readouterr().err
    assert not fake_kaggle.exists()
    assert (tmp_path / "kaggle" / "course-kit" / "dataset-metadata.json").is_file()  # ready for a later push
