import shutil

import albumentations as A
import numpy as np
import pytest
from PIL import Image

from course_utils.datasets import camvid
from course_utils.datasets.camvid import GROUPS_11, IGNORE_INDEX, CamVid, read_class_dict, rgb_to_ids


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return camvid.write_twin(tmp_path_factory.mktemp("camvid") / "camvid", counts={"train": 3, "val": 2, "test": 1},
                             size=(120, 90))


def test_twin_has_the_kaggle_layout_and_the_spaced_csv(twin):
    root = twin / "CamVid"
    assert {p.name for p in root.iterdir()} == {"class_dict.csv", "train", "train_labels", "val", "val_labels",
                                                "test", "test_labels"}
    frames = sorted((root / "train").iterdir())
    assert all((root / "train_labels" / f"{p.stem}_L.png").is_file() for p in frames)
    text = (root / "class_dict.csv").read_text()
    assert text.startswith("name,r,g,b\n") and "Bicyclist,0,128, 192" in text and len(text.splitlines()) == 33


def test_class_dict_is_parsed_despite_the_spaces(twin):
    table = read_class_dict(twin / "CamVid" / "class_dict.csv")
    assert len(table) == 32 and ("Bicyclist", (0, 128, 192)) in table and ("SUVPickupTruck", (64, 128, 192)) in table


def test_colours_map_exactly_and_unknown_colours_are_ignored():
    colours = {(128, 128, 128): 0, (128, 0, 0): 1}
    label = np.array([[[128, 128, 128], [128, 0, 0], [128, 0, 1], [0, 0, 0]]], dtype=np.uint8)
    assert rgb_to_ids(label, colours).tolist() == [[0, 1, IGNORE_INDEX, IGNORE_INDEX]]


@pytest.mark.parametrize("classes, expected", [("11", 11), ("32", 31)])
def test_items_are_frames_and_class_ids(twin, classes, expected):
    ds = CamVid(twin, "train", classes=classes)
    assert ds.num_classes == expected and len(ds) == 3 and "Void" not in ds.class_names
    image, label = ds[0]
    assert image.shape == (90, 120, 3) and label.shape == (90, 120) and label.dtype == np.uint8
    values = set(np.unique(label))
    assert values <= set(range(expected)) | {IGNORE_INDEX} and IGNORE_INDEX in values  # the Void seams


def test_grouping_merges_the_member_classes(twin):
    full, grouped = CamVid(twin, "val", classes="32"), CamVid(twin, "val", classes="11")
    lab32, lab11 = full[0][1], grouped[0][1]
    road_members = [full.class_names.index(n) for n in GROUPS_11["Road"]]
    assert (lab11[np.isin(lab32, road_members)] == grouped.class_names.index("Road")).all()
    assert ((lab32 == IGNORE_INDEX) == (lab11 == IGNORE_INDEX)).all()


def test_labels_are_resized_with_nearest_neighbour(twin):
    ds = CamVid(twin, "train", transform=A.Compose([A.Resize(45, 60)]))
    _, label = ds[0]
    assert label.shape == (45, 60) and set(np.unique(label)) <= set(range(11)) | {IGNORE_INDEX}


def test_bad_inputs_name_the_file(twin, tmp_path):
    root = shutil.copytree(twin, tmp_path / "copy") / "CamVid"
    label = sorted((root / "train_labels").iterdir())[0]
    Image.open(label).resize((10, 10)).save(label)
    with pytest.raises(ValueError, match=label.name):
        CamVid(root, "train")[0]
    label.rename(label.with_name(label.name.replace("_L", "")))
    with pytest.raises(FileNotFoundError, match="_L.png"):
        CamVid(root, "train")
    (root / "class_dict.csv").write_text("class,red,green,blue\nSky,128,128,128\n")
    with pytest.raises(ValueError, match="name,r,g,b"):
        CamVid(root, "val")
    with pytest.raises(ValueError, match="split"):
        CamVid(root, "validation")
    with pytest.raises(FileNotFoundError, match="class_dict.csv"):
        CamVid(tmp_path / "copy" / "CamVid" / "train")
