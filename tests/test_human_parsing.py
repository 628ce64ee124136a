"""Human parsing: the label tables and their left/right pairs, flips that swap them, flip test-time augmentation,
the loader over LIP's and CIHP's layouts (nested copies, greyscale photos, bad labels) and the twin."""

import shutil

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from course_utils.datasets import DamagedFileError
from course_utils.datasets import human_parsing as hp

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return hp.write_twin(tmp_path_factory.mktemp("lip") / "LIP", n_train=20, n_val=6)


def test_label_tables_match_the_official_lists():
    assert hp.LIP.num_classes == 20 and hp.CIHP.num_classes == 20 and hp.ATR.num_classes == 18
    assert hp.PASCAL_PERSON_PART.num_classes == 7 and hp.PASCAL_PERSON_PART.flip_pairs == ()
    assert hp.LIP.names[13] == "Face" and hp.LIP.names[10] == "Jumpsuits" and hp.CIHP.names[10] == "Torso-skin"
    assert [a for a, b in zip(hp.LIP.names, hp.CIHP.names) if a != b] == ["Jumpsuits"]
    assert hp.ATR.names[16:] == ("Bag", "Scarf") and hp.ATR.names[11] == "Face"
    assert set(hp.LABEL_SETS) == {"LIP", "CIHP", "ATR", "Pascal-Person-Part"}


@pytest.mark.parametrize("labels", [hp.LIP, hp.CIHP, hp.ATR, hp.PASCAL_PERSON_PART], ids=lambda s: s.name)
def test_flip_pairs_join_a_left_part_with_its_right_part(labels):
    for left, right in labels.flip_pairs:
        assert labels.names[left] == labels.names[right].replace("Right", "Left")
        assert labels.names[left].startswith("Left-")
    sided = {i for i, n in enumerate(labels.names) if n.startswith(("Left", "Right"))}
    assert sided == {i for pair in labels.flip_pairs for i in pair}  # every sided label is in a pair
    table = labels.swap_table()
    assert table[table].tolist() == list(range(256)) and table[255] == 255  # swapping twice changes nothing
    order = labels.channel_order()
    assert sorted(order) == list(range(labels.num_classes)) and [order[c] for c in order] == list(range(len(order)))


def test_a_flipped_left_arm_is_a_right_arm_on_the_other_side():
    label = np.zeros((4, 6), np.uint8)
    label[:, :2] = 14  # Left-arm on the image's left
    label[0, 5] = 255  # ignored stays ignored
    label[3, 3] = 13  # Face has no side
    flipped = hp.flip_label(label, hp.LIP)
    assert (flipped[:, 4:] == 15).all() and flipped[0, 0] == 255 and flipped[3, 2] == 13
    assert (hp.flip_label(flipped, hp.LIP) == label).all()  # twice: the identity
    atr = np.full((2, 2), 16, np.uint8)  # ATR's Bag: a naive LIP table would turn it into a leg
    assert (hp.flip_label(atr, hp.ATR) == 16).all() and (hp.flip_label(atr, hp.LIP) == 17).all()


def test_the_albumentations_flip_swaps_the_ids_and_mirrors_the_photo():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (8, 10, 3), dtype=np.uint8)
    label = rng.integers(0, 20, (8, 10)).astype(np.uint8)
    out = A.Compose([hp.LeftRightFlip(hp.LIP, p=1.0)])(image=image, mask=label)
    assert (out["image"] == image[:, ::-1]).all()
    assert (out["mask"] == hp.flip_label(label, hp.LIP)).all()
    naive = A.Compose([A.HorizontalFlip(p=1.0)])(image=image, mask=label)["mask"]
    assert (naive != out["mask"]).any()  # what a plain flip gets wrong


def test_flip_tta_swaps_score_channels_and_is_flip_equivariant():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 20, 3, padding=1)  # scores that depend on what is left and right of a pixel
    x = torch.randn(2, 3, 6, 8)
    scores = model(x)
    assert torch.equal(hp.flip_scores(hp.flip_scores(scores, hp.LIP), hp.LIP), scores)
    assert torch.equal(hp.flip_scores(scores, hp.LIP)[:, 14], scores.flip(-1)[:, 15])
    tta = hp.predict_with_flip(model, x, hp.LIP)
    assert torch.allclose(hp.flip_scores(hp.predict_with_flip(model, x.flip(-1), hp.LIP), hp.LIP), tta, atol=1e-6)
    with pytest.raises(ValueError, match="ATR"):
        hp.flip_scores(scores, hp.ATR)  # 20 channels are not ATR's 18


def test_lip_twin_layout_splits_and_items(twin):
    assert (twin / "TrainVal_images" / "train_id.txt").is_file()
    assert len(list((twin / "TrainVal_parsing_annotations" / "val_segmentations").glob("*.png"))) == 6
    splits = {s: hp.HumanParsing(twin, s) for s in hp.SPLITS}
    ids = {s: {x.id for x in ds.samples} for s, ds in splits.items()}
    assert not (ids["train"] & ids["monitor"]) and len(ids["train"] | ids["monitor"]) == 20 and len(ids["val"]) == 6
    assert splits["train"].layout == "lip" and splits["train"].labels is hp.LIP
    grey = [p for p in (twin / "TrainVal_images" / "train_images").glob("*.jpg") if Image.open(p).mode == "L"]
    assert len(grey) == 1  # one greyscale photo, as some LIP photos are
    every = splits["train"].samples + splits["monitor"].samples
    item = hp.HumanParsing(twin, "monitor" if grey[0].stem in ids["monitor"] else "train")
    index = [x.id for x in item.samples].index(grey[0].stem)
    image, label = item[index]
    assert image.shape[0] == 3 and image.dtype == torch.float32 and label.dtype == torch.int64
    assert image.shape[1:] == label.shape and len(every) == 20
    sizes = {hp.HumanParsing(twin, "val")[k][1].shape for k in range(6)}
    assert len(sizes) > 1  # person crops of varied sizes, as LIP's


def test_twin_people_face_both_ways_with_the_person_s_left_on_either_side(twin):
    sides = []
    for image_path in sorted((twin / "TrainVal_parsing_annotations" / "train_segmentations").glob("*.png")):
        label = np.asarray(Image.open(image_path))
        assert set(np.unique(label)) <= set(range(20))
        left_x = np.nonzero(label == 14)[1].mean()
        right_x = np.nonzero(label == 15)[1].mean()
        facing = (label == 13).any()
        sides.append((facing, left_x > right_x))
    assert all(facing == left_on_image_right for facing, left_on_image_right in sides)  # the face tells the side
    assert 0.5 < np.mean([f for f, _ in sides]) < 1  # most face the camera, some are turned away


def test_nested_lip_copies_and_the_cihp_layout_are_read(twin, tmp_path):
    nested = tmp_path / "LIP"
    (nested / "TrainVal_images").mkdir(parents=True)
    shutil.copytree(twin / "TrainVal_images", nested / "TrainVal_images" / "TrainVal_images")
    shutil.copytree(twin / "TrainVal_parsing_annotations",
                    nested / "TrainVal_parsing_annotations" / "TrainVal_parsing_annotations")
    assert len(hp.HumanParsing(nested, "val")) == 6
    cihp = hp.write_twin(tmp_path / "CIHP", n_train=4, n_val=3, layout="cihp")
    ds = hp.HumanParsing(cihp, "val")
    assert ds.layout == "cihp" and ds.labels is hp.CIHP and len(ds) == 3
    assert (cihp / "instance-level_human_parsing" / "Training" / "Category_ids").is_dir()


def test_bad_labels_and_missing_files_are_named(twin, tmp_path):
    copy = shutil.copytree(twin, tmp_path / "LIP")
    labels = copy / "TrainVal_parsing_annotations" / "val_segmentations"
    first, second, third = sorted(labels.glob("*.png"))[:3]
    ds = hp.HumanParsing(copy, "val")
    order = [s.label for s in ds.samples]
    Image.fromarray(np.zeros((5, 5, 3), np.uint8), "RGB").save(first)  # a colour picture, not ids
    with pytest.raises(ValueError, match=f"{first.name}.*one channel of ids"):
        ds[order.index(first)]
    Image.fromarray(np.full((5, 5), 20, np.uint8), "L").save(second)  # id 20 is not LIP's
    with pytest.raises(ValueError, match=f"{second.name}.*ids \\[20\\]"):
        ds[order.index(second)]
    Image.fromarray(np.zeros((5, 5), np.uint8), "L").save(third)  # another size than its photo
    with pytest.raises(ValueError, match=f"{third.name}.*pixel for pixel"):
        ds[order.index(third)]
    third.write_bytes(b"not a png")
    with pytest.raises(DamagedFileError, match=third.name):
        ds[order.index(third)]
    palette = Image.fromarray(np.full((4, 4), 14, np.uint8), "L").convert("P")
    palette.save(first)
    assert (hp.read_label(first, hp.LIP) == 14).all()  # a palette PNG's ids, not its colours
    first.unlink()
    with pytest.raises(FileNotFoundError, match="1 files listed"):
        hp.HumanParsing(copy, "val")


def test_a_folder_without_either_layout_is_an_error(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(FileNotFoundError, match="neither LIP"):
        hp.HumanParsing(tmp_path, "train")


def test_load_can_be_overridden_to_change_what_the_transform_sees(twin):
    class Blanked(hp.HumanParsing):
        def load(self, index):
            photo, label = super().load(index)
            return photo, np.zeros_like(label)

    flip = A.Compose([hp.LeftRightFlip(hp.LIP, p=1)])
    image, label = Blanked(twin, "val", transform=flip)[0]
    photo, stored = hp.HumanParsing(twin, "val").load(0)
    assert photo.dtype == np.uint8 and photo.ndim == 3 and stored.dtype == np.uint8
    assert label.shape == stored.shape and not label.any()
