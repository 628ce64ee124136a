"""ShapeNet-part (course_utils/datasets/shapenet_part.py): the shape reader on a real file, the twin in the real
layout and number format, items, seeded sampling, augmentation, and clear errors for broken copies."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import real_sample

from course_utils.data import has_marker
from course_utils.datasets import shapenet_part as sp
from course_utils.datasets.shapenet_part import (
    CATEGORIES,
    FOLDER,
    SEG_CLASSES,
    ShapeNetPart,
    check_parts,
    read_shape,
    sample_indices,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread

# "x y z nx ny nz label", each as C's %f writes it: the label too (45.000000)
LINE = re.compile(r"-?\d+\.\d{6}( -?\d+\.\d{6}){5} \d+\.000000")


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return sp.write_twin(tmp_path_factory.mktemp("shapenet") / "shapenet", n_per_category=6)


@pytest.fixture
def copy(twin, tmp_path):
    """A copy of the twin that a test may break; returns its FOLDER."""
    return shutil.copytree(twin, tmp_path / "copy") / FOLDER


def real_file():
    folder = real_sample("shapenet-part", "04225987")
    return next(folder.glob("*.txt"))


def test_read_shape_on_the_real_sample():
    path = real_file()
    points, normals, labels = read_shape(path)
    assert points.shape == normals.shape == (len(labels), 3) and len(labels) > 1000
    assert points.dtype == normals.dtype == np.float32 and labels.dtype == np.int64
    assert set(labels.tolist()) <= set(SEG_CLASSES["Skateboard"]) == {44, 45, 46}
    check_parts(labels, sp.category_of_synset(path.parent.name), path)
    assert sp.category_of_synset(path.parent.name) == "Skateboard"
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-3)
    lines = path.read_text().splitlines()
    assert all(LINE.fullmatch(line) for line in lines) and lines[0].endswith(" 45.000000")  # a float label
    assert np.ptp(points[:, 1]) < np.ptp(points[:, 0]) / 10  # a flat board: y is the up axis
    with pytest.raises(ValueError, match="parts of \\['Skateboard'\\]"):
        check_parts(labels, "Mug", path)


def test_the_twin_has_the_real_layout(twin):
    base = twin / FOLDER
    assert has_marker(twin, sp.INFO.marker) and sp.find_shapenet_root(twin) == base
    lines = (base / "synsetoffset2category.txt").read_text().splitlines()
    assert lines == [f"{name}\t{synset}" for name, synset in sp.SYNSETS.items()] and len(lines) == 16
    assert sp.read_categories(base / "synsetoffset2category.txt") == sp.SYNSETS
    lists = {s: json.loads((base / "train_test_split" / f"shuffled_{s}_file_list.json").read_text())
             for s in ("train", "val", "test")}
    assert [len(v) for v in lists.values()] == [16, 4, 4]
    entries = sum(lists.values(), [])
    assert len(set(entries)) == 24 and all(re.fullmatch(r"shape_data/\d{8}/[0-9a-f]{32}", e) for e in entries)
    assert {e.split("/")[1] for e in lists["val"]} == {sp.SYNSETS[c] for c in sp.TWIN_SHAPES}  # each in each list
    sizes, parts = [], {c: set() for c in sp.TWIN_SHAPES}
    for entry in entries:
        _, synset, shape_id = entry.split("/")
        path = base / synset / f"{shape_id}.txt"
        assert LINE.fullmatch(path.read_text().splitlines()[0])
        points, normals, labels = read_shape(path)
        category = sp.category_of_synset(synset)
        check_parts(labels, category, path)
        parts[category] |= set(labels.tolist())
        sizes.append(len(labels))
        low, high = points.min(0), points.max(0)  # as ShapeNetCore: the bounding box centred, its diagonal 1
        assert np.abs(low + high).max() < 0.03 and abs(np.linalg.norm(high - low) - 1) < 0.06  # + noise
        np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-4)
    assert 1500 <= min(sizes) < max(sizes) <= 3000
    assert parts["Mug"] == {36, 37} and parts["Airplane"] == {0, 1, 2, 3} and {24, 25, 27} <= parts["Lamp"]
    assert {47, 48} <= parts["Table"]


def test_the_twin_is_deterministic(tmp_path):
    a = sp.write_twin(tmp_path / "a", n_per_category=3, categories=("Mug",))
    b = sp.write_twin(tmp_path / "b", n_per_category=3, categories=("Mug",))
    files = sorted(p for p in a.rglob("*") if p.is_file())
    assert len(files) == 1 + 3 + 3
    for path in files:
        assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path


def test_items(twin):
    dataset = ShapeNetPart(twin.parent, "test", n_points=256)  # the folder is searched for below root
    assert len(dataset) == 4 and dataset.split_source == "the official test list"
    points, target = dataset[1]
    assert points.shape == (256, 3) and points.dtype == torch.float32
    assert target["labels"].shape == (256,) and target["labels"].dtype == torch.int64 and target["index"] == 1
    category = CATEGORIES[target["category"]]
    assert category == dataset.shape_categories[1] and set(target["labels"].tolist()) <= set(SEG_CLASSES[category])
    # normalised over all the shape's points: centred on their mean, the farthest at distance 1
    every, _ = ShapeNetPart(twin, "test", n_points=4000)[1]
    assert torch.linalg.norm(every, dim=1).max() == pytest.approx(1, abs=1e-5)
    assert torch.linalg.norm(points, dim=1).max() <= 1 + 1e-5 and points.mean(0).abs().max() < 0.1
    with_normals, again = ShapeNetPart(twin, "test", n_points=256, normals=True)[1]
    assert with_normals.shape == (256, 6) and torch.equal(with_normals[:, :3], points)
    assert torch.equal(again["labels"], target["labels"])
    torch.testing.assert_close(torch.linalg.norm(with_normals[:, 3:], dim=1), torch.ones(256), atol=1e-4, rtol=0)
    batch_points, batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch_points.shape == (4, 256, 3) and batch["labels"].shape == (4, 256) and batch["category"].shape == (4,)


def test_evaluation_samples_are_fixed_and_training_samples_fresh(twin):
    test_a, test_b = ShapeNetPart(twin, "test", n_points=128), ShapeNetPart(twin, "all", n_points=128)
    first, target = test_a[0]
    assert torch.equal(first, test_a[0][0])
    assert torch.equal(first, test_b[test_b.shapes.index(test_a.shapes[0])][0])  # the shape's, whatever the split
    assert not torch.equal(first, ShapeNetPart(twin, "test", n_points=128, seed=1)[0][0])
    train = ShapeNetPart(twin, "train", n_points=128)
    assert train.resample and not test_a.resample
    assert not torch.equal(train[0][0], train[0][0])  # a fresh sample at every access...
    torch.manual_seed(5)
    one = train[0]
    torch.manual_seed(5)
    assert torch.equal(one[0], train[0][0])  # ...from torch's generator, which fit() checkpoints
    cached = ShapeNetPart(twin, "test", n_points=128, cache=True)
    assert torch.equal(cached[0][0], first) and torch.equal(cached[0][0], first) and len(cached.cache) == 1


def test_fewer_points_than_asked(twin):
    dataset = ShapeNetPart(twin, "monitor", n_points=3500)
    points, normals, labels = dataset.read(0)
    cloud, target = dataset[0]
    assert cloud.shape == (3500, 3) and len(labels) < 3500
    distinct = torch.unique(cloud, dim=0)
    assert len(distinct) == len(np.unique(points, axis=0))  # every point is there, some twice
    assert torch.bincount(target["labels"]).nonzero().flatten().tolist() == sorted(set(labels.tolist()))


def test_sample_indices():
    generator = torch.Generator().manual_seed(0)
    some = sample_indices(10, 6, generator)
    assert len(some) == 6 and len(set(some.tolist())) == 6 and some.max() < 10
    padded = sample_indices(4, 10, generator)
    assert len(padded) == 10 and set(padded.tolist()) == {0, 1, 2, 3}
    assert torch.equal(sample_indices(7, 20, torch.Generator().manual_seed(3)),
                       sample_indices(7, 20, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="cannot sample"):
        sample_indices(0, 5)


@pytest.mark.parametrize("text, message", [
    ("0.1 0.2 0.3 0.0 1.0 0.0 45.000000\n0.1 0.2 0.3 0.0 1.0 0.0\n", "rows of numbers"),  # a line one short
    ("0.1 0.2 0.3 0.0 1.0 0.0\n", "6 columns in 1 lines"),
    ("0.1 0.2 0.3\n", "without _normal"),
    ("0.1 0.2 0.3 0.0 1.0 0.0 45.500000\n", "line 1: part label 45.5"),
    ("0.1 0.2 0.3 0.0 1.0 0.0 45.0\n0.1 0.2 0.3 0.0 1.0 0.0 50.0\n", "line 2: part label 50.0"),
    ("0.1 0.2 0.3 0.0 1.0 0.0 -1.0\n", "part label -1.0"),
    ("0.1 0.2 nan 0.0 1.0 0.0 45.0\n", "nan or inf"),
    ("", "is empty"),
])
def test_read_shape_errors(tmp_path, text, message):
    path = tmp_path / "1a2b.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        read_shape(path)
    assert str(path) in str(error.value)


def test_a_label_outside_the_category(copy):
    dataset = ShapeNetPart(copy.parent, "test", n_points=64)
    index = dataset.shape_categories.index("Mug")
    text = dataset.paths[index].read_text()
    dataset.paths[index].write_text(text.replace(" 36.000000", " 47.000000", 1))
    with pytest.raises(ValueError, match=r"a Mug shape, but it has part labels \[47\] \(parts of \['Table'\]\)") \
            as error:
        dataset[index]
    assert str(dataset.paths[index]) in str(error.value)


def test_splits_and_categories(twin):
    sizes = {s: len(ShapeNetPart(twin, s)) for s in sp.SPLITS}
    assert sizes == {"train": 16, "monitor": 4, "test": 4, "all": 24}
    mugs = ShapeNetPart(twin, "train", categories=["Mug"])
    assert len(mugs) == 4 and set(mugs.shape_categories) == {"Mug"}
    assert all(path.parent.name == sp.SYNSETS["Mug"] for path in mugs.paths)
    with pytest.raises(ValueError, match="unknown categories \\['Mugs'\\]"):
        ShapeNetPart(twin, "train", categories=["Mugs"])
    with pytest.raises(ValueError, match="split must be"):
        ShapeNetPart(twin, "val")
    with pytest.raises(ValueError, match="no shapes of categories \\['Chair'\\]"):
        ShapeNetPart(twin, "test", categories=["Chair"])


def test_broken_copies(copy, tmp_path):
    missing = next((copy / sp.SYNSETS["Lamp"]).glob("*.txt"))
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=f"missing, e.g. {re.escape(str(missing))}"):
        ShapeNetPart(copy, "all")
    lists = copy / "train_test_split"
    test = json.loads((lists / "shuffled_test_file_list.json").read_text())
    val = json.loads((lists / "shuffled_val_file_list.json").read_text())
    (lists / "shuffled_val_file_list.json").write_text(json.dumps(val + test[:1]))
    with pytest.raises(ValueError, match="in both the monitor and the test lists"):
        ShapeNetPart(copy, "train")
    (lists / "shuffled_val_file_list.json").unlink()
    with pytest.raises(FileNotFoundError, match="shuffled_val_file_list.json is missing"):
        ShapeNetPart(copy, "train")
    (copy / "synsetoffset2category.txt").write_text("Airplane 02691156 extra\n")
    with pytest.raises(ValueError, match="line 1"):
        sp.read_categories(copy / "synsetoffset2category.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="unzip it"):
        ShapeNetPart(tmp_path / "empty")
    v0 = tmp_path / "v0" / "shapenetcore_partanno_segmentation_benchmark_v0"
    (v0 / "train_test_split").mkdir(parents=True)
    (v0 / "02691156" / "points").mkdir(parents=True)
    (v0 / "synsetoffset2category.txt").write_text("Airplane\t02691156\n")
    with pytest.raises(ValueError, match="without normals"):
        ShapeNetPart(v0.parent)


def test_augmentation_turns_about_the_up_axis():
    torch.manual_seed(0)
    cloud = torch.randn(100, 6)
    cloud[:, 3:] /= torch.linalg.norm(cloud[:, 3:], dim=1, keepdim=True)
    turned = sp.augment(scale=(1, 1), sigma=0)(cloud)
    torch.testing.assert_close(turned[:, 1], cloud[:, 1])  # y is kept
    torch.testing.assert_close(torch.linalg.norm(turned[:, [0, 2]], dim=1), torch.linalg.norm(cloud[:, [0, 2]], dim=1))
    torch.testing.assert_close(turned[:, 3:] @ turned[:3, :3].T, cloud[:, 3:] @ cloud[:3, :3].T)  # normals turn too
    assert not torch.allclose(turned, cloud)
    torch.manual_seed(1)
    scaled = sp.augment(rotate=False, scale=(2, 2), sigma=0.01, clip=0.05)(cloud)
    assert (scaled[:, :3] - 2 * cloud[:, :3]).abs().max() <= 0.05 + 1e-6 and torch.equal(scaled[:, 3:], cloud[:, 3:])


def test_tables():
    assert tuple(SEG_CLASSES) == CATEGORIES and len(CATEGORIES) == 16
    ids = [part for category in CATEGORIES for part in SEG_CLASSES[category]]
    assert ids == list(range(50))  # each category owns a contiguous range, in the categories' order
    assert [len(sp.PART_NAMES[c]) for c in CATEGORIES] == [len(SEG_CLASSES[c]) for c in CATEGORIES]
    assert CATEGORIES[sp.PART_CATEGORY[45]] == "Skateboard" and CATEGORIES[sp.PART_CATEGORY[36]] == "Mug"
    with pytest.raises(KeyError, match="not one of the 16"):
        sp.category_of_synset("99999999")
    assert sp.INFO.name == "shapenet_part" and sp.INFO.write_twin is sp.write_twin and sp.INFO.url == sp.URL
