"""ModelNet40 (course_utils/datasets/modelnet.py): the OFF reader on hand-written files (ModelNet's broken header,
comments, polygons, each error), area-weighted surface sampling, the twin in the real layout read back through the
Dataset, splits, the cache and the augmentation."""

import csv

import numpy as np
import pytest
import torch

from course_utils.datasets import modelnet
from course_utils.datasets.modelnet import ModelNet, augment, read_off, sample_surface

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread

SQUARE = "0 0 0\n1 0 0\n1 1 0\n0 1 0\n"  # four vertices of a unit square in the plane z = 0


def write(tmp_path, text: str, name: str = "mesh.off"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return modelnet.write_twin(tmp_path_factory.mktemp("modelnet") / "modelnet40", n_train=6, n_test=2)


# --- read_off ---------------------------------------------------------------------------------------

def test_read_off_reads_the_format_as_specified(tmp_path):
    vertices, faces = read_off(write(tmp_path, "OFF\n4 2 0\n" + SQUARE + "3 0 1 2\n3 0 2 3\n"))
    assert vertices.dtype == np.float32 and vertices.shape == (4, 3)
    assert faces.dtype == np.int64 and faces.tolist() == [[0, 1, 2], [0, 2, 3]]
    np.testing.assert_array_equal(vertices[2], [1, 1, 0])


def test_read_off_reads_modelnets_broken_one_line_header(tmp_path):
    # thousands of ModelNet files start "OFF490 518 0": no newline (or space) after OFF
    vertices, faces = read_off(write(tmp_path, "OFF4 2 0\n" + SQUARE + "3 0 1 2\n3 0 2 3\n"))
    assert vertices.shape == (4, 3) and faces.shape == (2, 3)


def test_read_off_skips_comments_and_blank_lines(tmp_path):
    text = ("# a square\nOFF # header\n\n# counts next\n4 1 0\n0 0 0 # first\n1 0 0\n\n1 1 0\n0 1 0\n"
            "# faces\n4 0 1 2 3\n")
    vertices, faces = read_off(write(tmp_path, text))
    assert vertices.shape == (4, 3) and faces.tolist() == [[0, 1, 2], [0, 2, 3]]


def test_read_off_cuts_polygons_into_fans_and_ignores_face_colours(tmp_path):
    pentagon = "OFF\n5 2 0\n0 0 0\n2 0 0\n2 1 0\n1 2 0\n0 1 0\n5 0 1 2 3 4\n3 0 1 2 255 0 0\n"
    vertices, faces = read_off(write(tmp_path, pentagon))
    assert faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 1, 2]]


@pytest.mark.parametrize("text, message", [
    ("COFF\n4 1 0\n" + SQUARE + "3 0 1 2\n", "expected an OFF mesh"),
    ("ply\nformat ascii 1.0\n", "expected an OFF mesh"),
    ("", "empty file"),
    ("OFF\n", "ends after 'OFF'"),
    ("OFF\n4 one 0\n" + SQUARE, "expected the counts"),
    ("OFF\n5 1 0\n" + SQUARE + "3 0 1 2\n", "the file is truncated"),
    ("OFF\n4 1 0\n" + SQUARE + "3 0 1 2\n3 0 2 3\n", "but 6 lines of data follow"),
    ("OFF\n4 1 0\n0 0 0\n1 0\n1 1 0 0\n0 1 0\n3 0 1 2\n", "a vertex line holds 3 numbers"),
    ("OFF\n4 1 0\n0 0 0\n1 0 x\n1 1 0\n0 1 0\n3 0 1 2\n", "line 4: a vertex line"),
    ("OFF\n4 1 0\n" + SQUARE + "3 0 1 4\n", "vertex id outside 0..3"),
    ("OFF\n4 1 0\n" + SQUARE + "4 0 1 2 -1\n", "uses vertex id -1"),
    ("OFF\n4 1 0\n" + SQUARE + "2 0 1\n", "count of at least 3"),
    ("OFF\n4 1 0\n" + SQUARE + "3 0 1\n", "count of at least 3"),
])
def test_read_off_errors_name_the_file_and_the_problem(tmp_path, text, message):
    path = write(tmp_path, text, "broken_0001.off")
    with pytest.raises(ValueError, match=message) as error:
        read_off(path)
    assert str(path) in str(error.value)


def test_a_written_mesh_reads_back(tmp_path):
    vertices = np.random.default_rng(0).normal(size=(5, 3))
    for one_line in (False, True):
        path = tmp_path / f"m{one_line}.off"
        modelnet.write_off(path, vertices, [[0, 1, 2, 3], [1, 2, 4]], one_line_header=one_line)
        assert path.read_text().startswith("OFF5 2 0\n" if one_line else "OFF\n5 2 0\n")
        v, f = read_off(path)
        np.testing.assert_allclose(v, vertices, atol=1e-6)
        assert f.tolist() == [[0, 1, 2], [0, 2, 3], [1, 2, 4]]


# --- sample_surface -----------------------------------------------------------------------------------

def test_sampled_points_lie_on_the_faces_in_proportion_to_their_area():
    # a big triangle (area 2) in the plane z = 0 and a small one (area 0.5) in z = 1; a zero-area face besides
    vertices = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1], [5, 5, 5]], np.float32)
    faces = np.array([[0, 1, 2], [3, 4, 5], [6, 6, 6], [0, 1, 1]])
    points, normals = sample_surface(vertices, faces, 20000, np.random.default_rng(0))
    assert points.shape == normals.shape == (20000, 3) and points.dtype == np.float32
    low = points[:, 2] == 0
    assert low.sum() + (points[:, 2] == 1).sum() == len(points), "every point is on one of the two triangles"
    assert abs(low.mean() - 0.8) < 0.01  # areas 2 : 0.5
    x, y = points[:, 0], points[:, 1]
    assert (x >= 0).all() and (y >= 0).all()
    assert (x[low] + y[low] <= 2 + 1e-6).all() and (x[~low] + y[~low] <= 1 + 1e-6).all()
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(np.abs(normals[:, 2]), 1, atol=1e-6)  # both faces lie flat
    # uniform inside a triangle (the square-root trick): a quarter of the big one's area is within x + y <= 1
    assert abs((x[low] + y[low] <= 1).mean() - 0.25) < 0.015


def test_sampling_is_deterministic_for_a_seed_and_refuses_a_mesh_without_surface():
    vertices, faces = np.eye(3), np.array([[0, 1, 2]])
    a = sample_surface(vertices, faces, 50, np.random.default_rng(3))
    b = sample_surface(vertices, faces, 50, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="no surface"):
        sample_surface(vertices, np.array([[0, 1, 1]]), 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="no surface"):
        sample_surface(vertices, np.zeros((0, 3), np.int64), 10, np.random.default_rng(0))


# --- the twin and the dataset ----------------------------------------------------------------------------

def test_the_twin_has_the_real_layout(twin):
    base = twin / "ModelNet40"
    classes = sorted(p.name for p in base.iterdir())
    assert classes == sorted(modelnet.TWIN_SHAPES) and set(classes) <= set(modelnet.CLASSES)
    assert len(modelnet.CLASSES) == 40
    for name in classes:
        assert sorted(p.name for p in (base / name).iterdir()) == ["test", "train"]
        for split, numbers in (("train", range(1, 7)), ("test", (7, 8))):  # numbered on from train to test
            names = [p.name for p in sorted((base / name / split).iterdir())]
            assert names == [f"{name}_{k:04d}.off" for k in numbers]
    with open(twin / "metadata_modelnet40.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 48 and rows[0] == {"object_id": "airplane_0001", "class": "airplane", "split": "train",
                                           "object_path": "airplane/train/airplane_0001.off"}
    assert all((base / row["object_path"]).is_file() for row in rows)


def test_the_twin_has_the_real_pitfalls(twin):
    files = sorted(twin.rglob("*.off"))
    first_lines = [f.read_text().split("\n", 1)[0] for f in files]
    assert any(line == "OFF" for line in first_lines)
    assert any(line.startswith("OFF") and line[3:4].isdigit() for line in first_lines), "the broken header"
    face_sizes = {int(line.split()[0]) for f in files for line in f.read_text().splitlines()[2:]
                  if len(line.split()) != 3}
    assert {3, 4} <= face_sizes and max(face_sizes) > 4, "triangles, quads and polygons (caps)"
    extents = [np.ptp(read_off(f)[0], axis=0).max() for f in files]
    assert max(extents) > 2 * min(extents) and min(extents) > 2, "model units, not normalised"


def test_the_twin_is_deterministic(tmp_path):
    a = modelnet.write_twin(tmp_path / "a", n_train=1, n_test=1)
    b = modelnet.write_twin(tmp_path / "b", n_train=1, n_test=1)
    for pa, pb in zip(sorted(a.rglob("*.off")), sorted(b.rglob("*.off")), strict=True):
        assert pa.name == pb.name and pa.read_bytes() == pb.read_bytes()


def test_items_are_unit_sphere_clouds_with_class_indices(twin, tmp_path):
    ds = ModelNet(twin, "all", n_points=256, cache=tmp_path)
    assert ds.classes == sorted(modelnet.TWIN_SHAPES) and len(ds) == 48
    for index in (0, 17, 47):
        points, label = ds[index]
        assert points.shape == (256, 3) and points.dtype == torch.float32
        assert isinstance(label, int) and ds.classes[label] == ds.files[index].parent.parent.name
        radius = points.norm(dim=1)
        assert abs(radius.max().item() - 1) < 1e-5 and points.mean(0).abs().max() < 1e-5
    with_normals = ModelNet(twin, "all", n_points=256, cache=tmp_path, normals=True)[0][0]
    assert with_normals.shape == (256, 6) and torch.allclose(with_normals[:, :3], ds[0][0])
    assert torch.allclose(with_normals[:, 3:].norm(dim=1), torch.ones(256), atol=1e-5)


def test_splits_monitor_is_carved_per_class_from_the_official_train(twin):
    split = {s: ModelNet(twin, s, cache=False, monitor_fraction=0.2) for s in ("train", "monitor", "test", "all")}
    assert [len(split[s]) for s in ("train", "monitor", "test", "all")] == [30, 6, 12, 48]
    assert all(p.parent.name == "train" for s in ("train", "monitor") for p in split[s].files)
    assert all(p.parent.name == "test" for p in split["test"].files)
    assert not set(split["train"].files) & set(split["monitor"].files)
    assert sorted(split["monitor"].labels) == list(range(6)), "one monitor mesh per class"
    assert ModelNet(twin, "monitor", cache=False, monitor_fraction=0.2, seed=1).files != split["monitor"].files
    assert len(ModelNet(twin, "train", cache=False, monitor_fraction=0)) == 36
    with pytest.raises(ValueError, match="needs monitor_fraction"):
        ModelNet(twin, "monitor", monitor_fraction=0)
    with pytest.raises(ValueError, match="split must be"):
        ModelNet(twin, "val")


def test_sampling_is_seeded_per_file_and_the_cache_gives_the_same_points(twin, tmp_path):
    fresh = ModelNet(twin, "test", n_points=128, cache=False)
    cached = ModelNet(twin, "test", n_points=128, cache=tmp_path)
    first = cached[3][0]
    assert len(list((tmp_path / "points").rglob("*.npy"))) == 1
    assert torch.equal(first, cached[3][0]) and torch.equal(first, fresh[3][0])
    assert not torch.equal(first, ModelNet(twin, "test", n_points=128, seed=1, cache=False)[3][0])
    # a changed file is sampled again, not read from a stale cache
    path = cached.files[3]
    vertices, faces = read_off(path)
    modelnet.write_off(path.with_name("moved.off"), vertices * 2 + 1, faces)
    path.with_name("moved.off").replace(path)
    cached[3]
    assert len(list((tmp_path / "points").rglob("*.npy"))) == 2


def test_a_damaged_mesh_is_named(twin, tmp_path):
    root = tmp_path / "copy"
    modelnet.write_twin(root, n_train=2, n_test=1, classes=("cone", "lamp"))
    bad = root / "ModelNet40" / "cone" / "test" / "cone_0003.off"
    bad.write_text(bad.read_text()[:200])  # truncated
    ds = ModelNet(root, "test", cache=False)
    with pytest.raises(ValueError, match="cone_0003.off"):
        ds[0]


def test_a_folder_without_modelnet_says_what_to_do(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="ModelNet40.zip"):
        ModelNet(tmp_path / "empty")


def test_augmentation_turns_about_the_up_axis_and_jitters_a_little():
    torch.manual_seed(0)
    cloud = torch.cat([torch.randn(500, 3), torch.nn.functional.normalize(torch.randn(500, 3), dim=1)], 1)
    torch.manual_seed(1)
    out = augment(sigma=0.01, clip=0.05)(cloud)
    assert out.shape == cloud.shape
    assert (out[:, 2] - cloud[:, 2]).abs().max() <= 0.05 + 1e-6, "z (up) only jittered"
    assert torch.allclose(out[:, 5], cloud[:, 5]) and torch.allclose(out[:, 3:].norm(dim=1), torch.ones(500))
    radial = (out[:, :2].norm(dim=1) - cloud[:, :2].norm(dim=1)).abs()
    assert radial.max() <= 0.05 * 2**0.5 + 1e-5 and (out[:, :2] - cloud[:, :2]).abs().max() > 0.1, "turned"
    torch.manual_seed(1)
    assert torch.equal(augment()(cloud), out), "drawn from torch's generator"


def test_info_is_the_registry_entry():
    info = modelnet.INFO
    assert info.name == "modelnet40" and info.notebook == "07" and info.write_twin is modelnet.write_twin
    assert info.url == "http://modelnet.cs.princeton.edu/ModelNet40.zip" and info.twin_version == modelnet.TWIN_VERSION
