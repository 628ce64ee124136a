import shutil

import albumentations as A
import numpy as np
import pytest
import torch
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


@pytest.mark.parametrize("classes, expected", [("11", 11), ("31", 31)])
def test_items_are_frames_and_class_ids(twin, classes, expected):
    ds = CamVid(twin, "train", classes=classes)
    assert ds.num_classes == expected and len(ds) == 3 and "Void" not in ds.class_names
    image, label = ds[0]
    assert image.shape == (90, 120, 3) and label.shape == (90, 120) and label.dtype == np.uint8
    values = set(np.unique(label))
    assert values <= set(range(expected)) | {IGNORE_INDEX} and IGNORE_INDEX in values  # the Void seams


def test_classes_are_named_after_what_they_give(twin):
    with pytest.warns(FutureWarning, match="classes='31'"):
        old_name = CamVid(twin, "val", classes="32")  # the old name of "31" still works
    assert old_name.num_classes == 31 and old_name.class_names == CamVid(twin, "val", classes="31").class_names
    with pytest.raises(ValueError, match="'11'.*'31'"):
        CamVid(twin, "val", classes="all")


def test_grouping_merges_the_member_classes(twin):
    full, grouped = CamVid(twin, "val", classes="31"), CamVid(twin, "val", classes="11")
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


# --- issue 7: damaged or ambiguous CamVid data is named, labels are cached, the twin works at any size

@pytest.fixture(autouse=True)
def derived_dir(tmp_path, monkeypatch):
    """Each test converts labels into its own cache folder."""
    monkeypatch.setenv("COURSE_DERIVED_DIR", str(tmp_path / "derived"))
    return tmp_path / "derived"


def copy_of(twin, tmp_path):
    return shutil.copytree(twin, tmp_path / "copy") / "CamVid"


def test_class_dict_with_a_byte_order_mark_is_read(twin, tmp_path):
    root = copy_of(twin, tmp_path)
    (root / "class_dict.csv").write_text(camvid.CLASS_DICT_CSV, encoding="utf-8-sig")
    assert (root / "class_dict.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_class_dict(root / "class_dict.csv") == read_class_dict(twin / "CamVid" / "class_dict.csv")
    assert CamVid(root, "val").num_classes == 11


@pytest.mark.parametrize("row, message", [
    ("Sky,128, 64, 128", r"colour \(128, 64, 128\) for Road on line 19 and Sky on line 23"),  # today Sky became Road
    ("Sky,1, 2, 3", r"name 'Sky' on lines \[23, 34\]"),
])
def test_duplicate_colours_and_names_are_refused(twin, tmp_path, row, message):
    root = copy_of(twin, tmp_path)
    text = camvid.CLASS_DICT_CSV
    text = text.replace("Sky,128, 128, 128", row) if "128" in row else text + row + "\n"
    (root / "class_dict.csv").write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        CamVid(root, "train")
    assert "class_dict.csv" in str(error.value) and "download" in str(error.value)


def rewrite(label, how: str) -> None:
    """Damage a colour-coded label the way students do: JPEG, a JPEG round trip, class ids, a palette."""
    rgb = Image.open(label).convert("RGB")
    if how == "jpeg":
        rgb.save(label, format="JPEG", quality=90)
    elif how == "jpeg round trip":
        rgb.save(label.with_suffix(".jpg"), quality=90)
        Image.open(label.with_suffix(".jpg")).save(label)
        label.with_suffix(".jpg").unlink()
    elif how == "greyscale ids":
        table = read_class_dict(label.parent.parent / "class_dict.csv")
        Image.fromarray(rgb_to_ids(np.asarray(rgb), {colour: i for i, (_, colour) in enumerate(table)})).save(label)
    elif how == "palette":
        rgb.quantize(8).save(label)


@pytest.mark.parametrize("how, named", [("jpeg", "JPEG data"), ("jpeg round trip", "RGB PNG"),
                                        ("greyscale ids", "greyscale PNG"), ("palette", "palette PNG")])
def test_labels_with_colours_of_no_class_are_refused(twin, tmp_path, how, named):
    root = copy_of(twin, tmp_path)
    labels = sorted((root / "train_labels").iterdir())
    for label in labels[:2]:
        rewrite(label, how)
    with pytest.raises(ValueError, match="2 of 3 labels cannot be used") as error:
        CamVid(root, "train")
    message = str(error.value)
    assert labels[0].name in message and labels[1].name in message and labels[2].name not in message
    assert "colours in no row of class_dict.csv, e.g. (" in message and named in message


def test_a_few_unknown_pixels_are_ignored_and_reported(twin, tmp_path, capsys):
    root = copy_of(twin, tmp_path)
    label = sorted((root / "train_labels").iterdir())[1]
    pixels = np.asarray(Image.open(label)).copy()
    pixels[5, 10:13] = (1, 2, 3)  # 3 of 10,800 pixels: under the tolerance
    Image.fromarray(pixels).save(label)
    for _ in range(2):  # converted, then read from the cache: reported both times, once each
        ds = CamVid(root, "train")
        out = capsys.readouterr().out
        assert out.count("colours of no class") == 1 and f"{label.name}: 3 px, e.g. (1, 2, 3) x3" in out
    assert (ds.read_label(1)[5, 10:13] == IGNORE_INDEX).all()


def test_frames_of_another_format_are_refused_and_stray_files_counted(twin, tmp_path, capsys):
    root = copy_of(twin, tmp_path)
    (root / "train" / "notes.txt").write_text("my notes")
    (root / "train_labels" / "0001TP_999999_L.png").write_bytes((root / "val_labels").iterdir().__next__().read_bytes())
    CamVid(root, "train")
    out = capsys.readouterr().out
    assert "1 entries that are not PNG frames, not used, e.g. ['notes.txt']" in out
    assert "1 labels of no frame in train/, not used, e.g. ['0001TP_999999_L.png']" in out
    frame = sorted((root / "train").glob("*.png"))[0]
    Image.open(frame).save(frame.with_suffix(".jpg"))
    with pytest.raises(ValueError, match=frame.with_suffix(".jpg").name):
        CamVid(root, "train")


def test_labels_are_cached_and_converted_again_when_they_change(twin, tmp_path, capsys):
    root = copy_of(twin, tmp_path)
    first = CamVid(root, "train")
    assert "converting 3 of 3" in capsys.readouterr().out
    assert all(p.is_file() and p.parent != root / "train_labels" for p in first.id_paths)
    again = CamVid(root, "train")
    assert "converting" not in capsys.readouterr().out and again.id_paths == first.id_paths
    label = first.label_paths[0]
    pixels = np.asarray(Image.open(label)).copy()
    pixels[:] = (128, 128, 128)  # now all Sky
    Image.fromarray(pixels).save(label)
    ds = CamVid(root, "train")
    assert "converting 1 of 3" in capsys.readouterr().out
    assert (ds[0][1] == ds.class_names.index("Sky")).all()
    CamVid(root, "train", classes="31")
    assert "converting 3 of 3" in capsys.readouterr().out
    (root / "class_dict.csv").write_text(camvid.CLASS_DICT_CSV.replace("Sky,128, 128, 128", "Sky,128, 128, 129"))
    with pytest.raises(ValueError, match="labels cannot be used"):  # the old Sky colour is now unknown
        CamVid(root, "train")


@pytest.mark.parametrize("size", [(960, 720), (33, 17)])
def test_twin_is_written_at_the_real_size_and_odd_ones(tmp_path, size):
    root = camvid.write_twin(tmp_path / "twin", counts={"train": 1}, size=size)
    image, label = CamVid(root, "train")[0]
    assert image.shape == (size[1], size[0], 3) and label.shape == (size[1], size[0])
    assert len(set(np.unique(label)) - {IGNORE_INDEX}) >= (5 if size == (960, 720) else 1)


def test_same_torch_seed_gives_the_same_augmented_sample(twin):
    tf = A.Compose([A.HorizontalFlip(), A.Affine(scale=(0.5, 1.5), rotate=(-20, 20), p=1),
                    A.ColorJitter(p=1)], seed=0)
    ds = CamVid(twin, "train", transform=tf)
    samples = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        samples.append(ds[0])
    assert (samples[0][0] == samples[1][0]).all() and (samples[0][1] == samples[1][1]).all()
    assert not (samples[0][0] == samples[2][0]).all()
