"""Penn-Fudan (course_utils/datasets/pennfudan.py): the twin read back, the real layout and its pitfalls,
detection-format items, transforms that move boxes and masks together, splits and errors."""

import struct

import numpy as np
import pytest
import torch
from conftest import real_sample
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2

from course_utils.data import has_marker
from course_utils.datasets import DamagedFileError, pennfudan
from course_utils.datasets.pennfudan import PennFudan, collate, read_annotation, read_instance_mask

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return pennfudan.write_twin(tmp_path_factory.mktemp("pennfudan"), n_images=10)


def png_header(path):
    """(bit depth, colour type) from a PNG's IHDR chunk: 0 = greyscale, 2 = RGB, 3 = palette."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">BB", data[24:26])


def write_copy(root, masks, nested=("kaggle", "PennFudanPed", "PennFudanPed")):
    """A copy in the real layout (nested as some downloads are) with the given ``{name: PIL mask}``."""
    folder = root.joinpath(*nested)
    for sub in ("PNGImages", "PedMasks", "Annotation"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, mask in masks.items():
        width, height = mask.size
        photo = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(photo).save(folder / "PNGImages" / f"{name}.png")
        mask.save(folder / "PedMasks" / f"{name}_mask.png")
    return folder


# The real FudanPed00001.txt's format, for a 20 x 12 image with objects 1 and 2
ANNOTATION = """# Compatible with PASCAL Annotation Version 1.00
Image filename : "PennFudanPed/PNGImages/FudanPed00001.png"
Image size (X x Y x C) : 20 x 12 x 3
Database : "The Penn-Fudan-Pedestrian Database"
Objects with ground truth : 2 { "PASpersonWalking" "PASpersonStanding" }
# Note there may be some objects not included in the ground truth list for they are severe-occluded
# or have very small size.
# Top left pixel co-ordinates : (1, 1)
# Details for pedestrian 1 ("PASpersonWalking")
Original label for object 1 "PASpersonWalking" : "PennFudanPed"
Bounding box for object 1 "PASpersonWalking" (Xmin, Ymin) - (Xmax, Ymax) : (2, 3) - (5, 10)
Pixel mask for object 1 "PASpersonWalking" : "PennFudanPed/PedMasks/FudanPed00001_mask.png"

# Details for pedestrian 2 ("PASpersonStanding")
Original label for object 2 "PASpersonStanding" : "PennFudanPed"
Bounding box for object 2 "PASpersonStanding" (Xmin, Ymin) - (Xmax, Ymax) : (12, 2) - (18, 12)
Pixel mask for object 2 "PASpersonStanding" : "PennFudanPed/PedMasks/FudanPed00001_mask.png"

"""


def two_pedestrians(mode="P", ids=(1, 3)):
    """A 20 x 12 mask with pedestrians ``ids`` (columns 1-4, rows 2-9; columns 11-17, rows 1-11, 0-based),
    as a palette PNG (red and blue, like a coloured copy) or greyscale like the real masks."""
    array = np.zeros((12, 20), np.uint8)
    array[2:10, 1:5], array[1:12, 11:18] = ids
    mask = Image.fromarray(array, "L")
    if mode == "P":
        mask = mask.convert("P")  # the same indices
        mask.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    return mask


def test_twin_has_the_real_layout_names_and_encodings(twin):
    folder = twin / "PennFudanPed"
    assert {p.name for p in folder.iterdir()} == {"PNGImages", "PedMasks", "Annotation", "readme.txt",
                                                   "added-object-list.txt"}
    names = sorted(p.stem for p in (folder / "PNGImages").iterdir())
    assert names[:2] == ["FudanPed00001", "FudanPed00002"] and names[-1] == "PennPed00006"  # 74 : 96, as the real
    assert sorted(p.name for p in (folder / "PedMasks").iterdir()) == [f"{n}_mask.png" for n in names]
    assert sorted(p.name for p in (folder / "Annotation").iterdir()) == [f"{n}.txt" for n in names]
    sizes = set()
    for name in names:
        image, mask = folder / "PNGImages" / f"{name}.png", folder / "PedMasks" / f"{name}_mask.png"
        assert png_header(image) == (8, 2) and png_header(mask) == (8, 0)  # RGB photo, 8-bit greyscale ids
        assert Image.open(mask).mode == "L" and Image.open(image).size == Image.open(mask).size
        sizes.add(Image.open(image).size)
    assert len(sizes) == len(names) and all(128 <= w <= 200 and 120 <= h <= 170 for w, h in sizes)
    added = (folder / "added-object-list.txt").read_text().splitlines()
    assert added[0] == "# image name (\\t) object index"
    for line in added[1:]:  # "<name>.png<TAB><object>", an object that exists
        image_name, k = line.split("\t")
        mask = folder / "PedMasks" / image_name.replace(".png", "_mask.png")
        assert int(k) in np.unique(np.asarray(Image.open(mask)))


def test_twin_items_are_in_torchvision_detection_format(twin):
    ds = PennFudan(twin, "all")
    counts, touching_border = [], 0
    for i in range(len(ds)):
        image, target = ds[i]
        height, width = image.shape[-2:]
        assert image.dtype == torch.float32 and image.shape[0] == 3 and image.min() >= 0 and image.max() <= 1
        masks, boxes = target["masks"], target["boxes"]
        n = len(masks)
        counts.append(n)
        assert masks.dtype == torch.uint8 and masks.shape == (n, height, width)
        assert set(masks.unique().tolist()) == {0, 1}
        assert (masks.sum(0) <= 1).all(), "a pixel belongs to one pedestrian at most"
        assert boxes.dtype == torch.float32 and boxes.shape == (n, 4) and tuple(boxes.canvas_size) == (height, width)
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
        assert (boxes[:, :2] < boxes[:, 2:]).all()
        assert torch.equal(boxes, masks_to_boxes(masks) + torch.tensor([0, 0, 1, 1]))  # x2 = last column + 1
        for box, mask in zip(boxes.long(), masks):  # the box holds the whole mask, and each side touches it
            x1, y1, x2, y2 = box.tolist()
            assert mask[y1:y2, x1:x2].sum() == mask.sum()
            assert mask[y1, x1:x2].any() and mask[y2 - 1, x1:x2].any()
            assert mask[y1:y2, x1].any() and mask[y1:y2, x2 - 1].any()
        touching_border += int(bool((boxes[:, 0] == 0).any() or (boxes[:, 2] == width).any()
                                    or (boxes[:, 3] == height).any()))
        assert torch.equal(target["labels"], torch.ones(n, dtype=torch.int64))
        assert torch.equal(target["area"], masks.flatten(1).sum(1).float()) and target["area"].dtype == torch.float32
        assert torch.equal(target["iscrowd"], torch.zeros(n, dtype=torch.int64))
        assert target["image_id"] == i and isinstance(target["image_id"], int)
        ids = np.unique(read_instance_mask(ds.mask_paths[i]))
        assert ids.tolist() == list(range(n + 1)), "the twin numbers its pedestrians 1..N, like the real files"
    assert min(counts) >= 1 and max(counts) >= 3 and touching_border >= 1  # crowds, and pedestrians cut by the border


def test_annotation_boxes_are_the_mask_boxes_one_based(twin):
    # Annotation files count pixels from 1 and include the last one: (Xmin, Ymin) - (Xmax, Ymax) is the
    # 0-based box (Xmin - 1, Ymin - 1, Xmax, Ymax). On the twin the two agree exactly (tolerance 0 pixels).
    ds = PennFudan(twin, "all")
    for i in range(len(ds)):
        _, target = ds[i]
        boxes = read_annotation(ds.annotation_paths[i])
        assert torch.equal(torch.tensor(boxes, dtype=torch.float32), target["boxes"])
    text = ds.annotation_paths[0].read_text()
    rows, cols = np.nonzero(read_instance_mask(ds.mask_paths[0]) == 1)
    corners = f"({cols.min() + 1}, {rows.min() + 1}) - ({cols.max() + 1}, {rows.max() + 1})"
    assert f"(Xmin, Ymin) - (Xmax, Ymax) : {corners}" in text


def test_twin_is_deterministic_and_seeded(tmp_path):
    a = pennfudan.write_twin(tmp_path / "a", n_images=3)
    b = pennfudan.write_twin(tmp_path / "b", n_images=3)
    c = pennfudan.write_twin(tmp_path / "c", n_images=3, seed=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)


def test_a_twin_at_real_size_reads_back_alike(tmp_path):
    root = pennfudan.write_twin(tmp_path, n_images=1, scale=3)
    ds = PennFudan(root, "all")
    image, target = ds[0]
    assert 384 <= image.shape[-1] <= 600 and 360 <= image.shape[-2] <= 510
    assert torch.equal(torch.tensor(read_annotation(ds.annotation_paths[0]), dtype=torch.float32), target["boxes"])


def test_info_marker_finds_the_twin_and_a_nested_copy(twin, tmp_path):
    info = pennfudan.INFO
    assert info.name == "pennfudan" and info.notebook == "06" and info.write_twin is pennfudan.write_twin
    folder = write_copy(tmp_path, {"FudanPed00001": two_pedestrians("L")})
    assert has_marker(twin, info.marker) and has_marker(tmp_path, info.marker)
    assert pennfudan.find_dataset_folder(tmp_path) == folder


def test_real_layout_nested_with_a_palette_mask_whose_ids_have_a_gap(tmp_path, capsys):
    folder = write_copy(tmp_path, {"FudanPed00001": two_pedestrians("P", ids=(1, 3)),
                                   "PennPed00001": two_pedestrians("L", ids=(1, 2))})
    (folder / "Annotation" / "FudanPed00001.txt").write_text(ANNOTATION)
    (folder / "PNGImages" / "Thumbs.db").write_bytes(b"")  # a harmless extra: counted, not used
    ds = PennFudan(tmp_path, "all")
    assert ds.folder == folder and ds.names == ["FudanPed00001", "PennPed00001"]
    assert "1 entries that are not <name>.png files" in capsys.readouterr().out
    assert Image.open(ds.mask_paths[0]).mode == "P"
    assert np.unique(read_instance_mask(ds.mask_paths[0])).tolist() == [0, 1, 3]  # the indices, not the colours
    for i in range(2):
        _, target = ds[i]
        assert target["boxes"].tolist() == [[1, 2, 5, 10], [11, 1, 18, 12]]  # ids in increasing order
        assert target["area"].tolist() == [32, 77] and target["labels"].tolist() == [1, 1]
    assert read_annotation(ds.annotation_paths[0]) == [(1, 2, 5, 10), (11, 1, 18, 12)]
    crlf = tmp_path / "crlf.txt"  # a copy that went through Windows
    crlf.write_bytes(ANNOTATION.replace("\n", "\r\n").encode())
    assert read_annotation(crlf) == [(1, 2, 5, 10), (11, 1, 18, 12)]


def test_real_mask_sample_is_8bit_greyscale_ids(twin):
    # FudanPed00003_mask.png of the real dataset (from python-pillow/Pillow@376c4f82, Tests/images/)
    real = real_sample("pennfudan", "PedMasks", "FudanPed00003_mask.png")
    assert Image.open(real).mode == "L" and np.unique(read_instance_mask(real)).tolist() == [0, 1]
    assert png_header(real) == png_header(next((twin / "PennFudanPed" / "PedMasks").iterdir())) == (8, 0)


def test_pitfall_converting_or_thresholding_a_mask_loses_the_pedestrians(tmp_path):
    grey = tmp_path / "grey.png"
    two_pedestrians("L", ids=(1, 2)).save(grey)
    ids = read_instance_mask(grey)
    assert np.unique(ids).tolist() == [0, 1, 2] and ids.max() < 3  # two pedestrians, nearly black on screen
    assert len(pennfudan.split_instances(ids)[0]) == 2
    merged = (ids > 0).astype(np.uint8)  # a threshold, as for a binary mask: one blob
    assert len(pennfudan.split_instances(merged)[0]) == 1
    colour = tmp_path / "colour.png"
    two_pedestrians("P", ids=(1, 3)).save(colour)
    as_rgb = np.asarray(Image.open(colour).convert("RGB"))  # colours, not ids
    assert {tuple(c) for c in as_rgb.reshape(-1, 3)} == {(0, 0, 0), (255, 0, 0), (0, 0, 255)}
    as_grey = np.asarray(Image.open(colour).convert("L"))  # the colours' brightness, not ids
    assert np.unique(as_grey).tolist() == [0, 29, 76]
    Image.open(colour).convert("RGB").save(tmp_path / "saved_rgb.png")
    with pytest.raises(ValueError, match=r"saved_rgb\.png.*mode 'RGB'.*convert\('RGB'\)"):
        read_instance_mask(tmp_path / "saved_rgb.png")


def test_collate_keeps_images_of_different_sizes_in_lists(twin):
    loader = DataLoader(PennFudan(twin, "all"), batch_size=3, collate_fn=collate)
    images, targets = next(iter(loader))
    assert isinstance(images, tuple) and isinstance(targets, tuple) and len(images) == len(targets) == 3
    assert len({im.shape for im in images}) == 3 and all(isinstance(t, dict) for t in targets)
    assert [t["image_id"] for t in targets] == [0, 1, 2]


def test_a_flip_moves_image_boxes_and_masks_together(twin):
    plain = PennFudan(twin, "all")
    flipped = PennFudan(twin, "all", transform=v2.RandomHorizontalFlip(p=1.0))
    for i in range(4):
        (image, target), (image_f, target_f) = plain[i], flipped[i]
        width = image.shape[-1]
        assert torch.equal(image_f, image.flip(-1)) and torch.equal(target_f["masks"], target["masks"].flip(-1))
        x1, y1, x2, y2 = target["boxes"].unbind(1)
        assert torch.equal(target_f["boxes"], torch.stack([width - x2, y1, width - x1, y2], 1))
    # why x2 = last column + 1: v2 flips x to W - x, which maps these boxes exactly onto the flipped masks'
    # boxes; masks_to_boxes' own boxes (x2 = last column) come out one pixel off
    _, target = plain[0]
    masks = target["masks"]
    edge = tv_tensors.BoundingBoxes(masks_to_boxes(masks) + torch.tensor([0, 0, 1, 1]), format="XYXY",
                                    canvas_size=masks.shape[-2:])
    last = tv_tensors.BoundingBoxes(masks_to_boxes(masks), format="XYXY", canvas_size=masks.shape[-2:])
    flip = v2.RandomHorizontalFlip(p=1.0)
    assert torch.equal(flip(edge), masks_to_boxes(masks.flip(-1)) + torch.tensor([0, 0, 1, 1]))
    assert torch.equal(flip(last)[:, 0], masks_to_boxes(masks.flip(-1))[:, 0] + 1)


def test_a_pedestrian_cropped_away_is_removed_from_boxes_masks_labels_and_area(tmp_path):
    array = np.zeros((12, 20), np.uint8)
    array[2:10, 0:3], array[1:12, 8:12] = 1, 2  # one at the left border, one in the middle
    write_copy(tmp_path, {"FudanPed00001": Image.fromarray(array, "L")})
    for transform in (v2.Compose([v2.CenterCrop((12, 10)), v2.SanitizeBoundingBoxes()]),  # sanitize drops it
                      v2.CenterCrop((12, 10))):  # without it the box survives, empty: the dataset drops it
        image, target = PennFudan(tmp_path, "all", transform=transform)[0]
        assert image.shape == (3, 12, 10)
        assert [len(target[k]) for k in ("boxes", "masks", "labels", "area", "iscrowd")] == [1] * 5
        assert target["boxes"].tolist() == [[3, 1, 7, 12]] and target["area"].tolist() == [44]
        assert tuple(target["boxes"].canvas_size) == (12, 10)


def test_a_transform_that_drops_a_pedestrian_from_some_fields_only_is_an_error(twin):
    def careless(image, target):
        return image, {**target, "masks": target["masks"][:0]}

    with pytest.raises(ValueError, match="SanitizeBoundingBoxes"):
        PennFudan(twin, "all", transform=careless)[0]


def test_train_transform_keeps_the_targets_consistent_and_repeats_with_the_torch_seed(twin):
    ds = PennFudan(twin, "all", transform=pennfudan.train_transform())
    draws = [0, 1, 2, 3] * 3
    torch.manual_seed(0)
    first = [ds[i] for i in draws]
    sizes = set()
    for image, target in first:
        n = len(target["masks"])
        assert image.dtype == torch.float32 and image.min() >= 0 and image.max() <= 1
        assert all(len(target[k]) == n for k in ("boxes", "labels", "area", "iscrowd"))
        assert target["masks"].shape[-2:] == image.shape[-2:] and (target["area"] > 0).all()
        if n:
            assert torch.equal(target["boxes"], masks_to_boxes(target["masks"]) + torch.tensor([0, 0, 1, 1]))
        sizes.add(tuple(image.shape))
    assert len(sizes) > 4, "the crops vary"
    torch.manual_seed(0)  # the randomness is torch's: the same seed, the same augmentations
    again = [ds[i] for i in draws]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1]["boxes"], b[1]["boxes"]) for a, b in zip(first, again))
    # the torchvision tutorial's pipeline ends with ToPureTensor: plain tensors come back, and are handled alike
    tutorial = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.ToDtype(torch.float, scale=True), v2.ToPureTensor()])
    image, target = PennFudan(twin, "all", transform=tutorial)[0]
    assert image.dtype == torch.float32 and isinstance(target["masks"], tv_tensors.Mask)
    assert torch.equal(target["boxes"], masks_to_boxes(target["masks"]) + torch.tensor([0, 0, 1, 1]))


def test_splits_are_seeded_disjoint_and_image_ids_stay_put(twin):
    every = PennFudan(twin, "all")
    train, val = PennFudan(twin, "train"), PennFudan(twin, "val")
    assert len(val) == round(10 * 50 / 170) and sorted(train.names + val.names) == every.names
    assert PennFudan(twin, "val").names == val.names and PennFudan(twin, "val", seed=1).names != val.names
    monitor = PennFudan(twin, "monitor", monitor_fraction=0.3)
    rest = PennFudan(twin, "train", monitor_fraction=0.3)
    assert len(monitor) == 2 and sorted(monitor.names + rest.names) == train.names
    assert PennFudan(twin, "val", monitor_fraction=0.3).names == val.names  # "val" chooses nothing
    assert val[0][1]["image_id"] == every.names.index(val.names[0])
    with pytest.raises(ValueError, match="monitor_fraction > 0"):
        PennFudan(twin, "monitor")
    with pytest.raises(ValueError, match="split must be one of"):
        PennFudan(twin, "test")


def test_missing_blank_colour_damaged_or_resized_masks_are_errors_that_name_the_file(tmp_path, capsys):
    blank = Image.fromarray(np.zeros((12, 20), np.uint8), "L")
    folder = write_copy(tmp_path, {"FudanPed00001": two_pedestrians("L"), "FudanPed00002": blank,
                                   "FudanPed00003": two_pedestrians("L").convert("RGB"),
                                   "FudanPed00004": two_pedestrians("L"), "FudanPed00005": two_pedestrians("L")})
    masks = folder / "PedMasks"
    masks.joinpath("FudanPed00004_mask.png").write_bytes(masks.joinpath("FudanPed00004_mask.png").read_bytes()[:60])
    two_pedestrians("L").resize((10, 6)).save(masks / "FudanPed00005_mask.png")
    two_pedestrians("L").save(masks / "FudanPed00099_mask.png")  # a mask of no image: counted, not used
    ds = PennFudan(tmp_path, "all")
    assert "1 masks without an image" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"FudanPed00002_mask\.png has no pedestrian"):
        ds[1]
    with pytest.raises(ValueError, match=r"FudanPed00003_mask\.png.*found mode 'RGB'"):
        ds[2]
    with pytest.raises(DamagedFileError, match=r"FudanPed00004_mask\.png"):
        ds[3]
    with pytest.raises(ValueError, match=r"FudanPed00005_mask\.png is 10x6 but its image FudanPed00005\.png is 20x12"):
        ds[4]
    (masks / "FudanPed00001_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"FudanPed00001_mask\.png is missing"):
        PennFudan(tmp_path, "all")
    with pytest.raises(FileNotFoundError, match="PNGImages/ and PedMasks/"):
        PennFudan(tmp_path / "kaggle" / "PennFudanPed" / "PennFudanPed" / "PNGImages")


def test_read_annotation_refuses_incomplete_or_zero_based_files(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(ANNOTATION.replace("Objects with ground truth : 2", "Objects with ground truth : 3"))
    with pytest.raises(ValueError, match=r"a\.txt: the header announces 3 objects"):
        read_annotation(path)
    path.write_text(ANNOTATION.replace("(2, 3) - (5, 10)", "(0, 3) - (5, 10)"))
    with pytest.raises(ValueError, match=r"a\.txt, line 11: expected 1 <= Xmin"):
        read_annotation(path)
    path.write_text(ANNOTATION.replace("(2, 3) - (5, 10)", "(2, 3, 5, 10)"))
    with pytest.raises(ValueError, match=r"a\.txt, line 11: expected 'Bounding box"):
        read_annotation(path)
