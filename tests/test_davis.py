"""DAVIS 2017 (course_utils/datasets/davis.py): the annotations (the real palette PNGs, and the same ids from grey
and RGB copies; lossy or recoloured copies are refused), the Dataset over the official layout on the real
annotations and on the twin, its splits, and its errors on broken copies."""

import shutil

import numpy as np
import pytest
from conftest import real_sample
from PIL import Image

from course_utils.datasets import davis
from course_utils.datasets.davis import Davis, read_davis_mask, voc_palette, write_annotation


def test_the_palette_is_vocs():
    palette = voc_palette()
    assert palette[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert palette[255].tolist() == [224, 224, 192]  # void's colour in VOC and DAVIS
    assert len({tuple(c) for c in palette}) == 256


@pytest.mark.parametrize("sequence, width, objects", [("bike-packing", 910, 2), ("dogs-jump", 854, 3)])
def test_real_annotations_are_palette_pngs_of_object_ids(sequence, width, objects, tmp_path):
    path = real_sample("davis2017", "Annotations", "480p", sequence, "00000.png")
    ids = read_davis_mask(path)
    assert ids.shape == (480, width) and ids.dtype == np.uint8
    assert np.unique(ids).tolist() == list(range(objects + 1))
    with Image.open(path) as image:
        assert image.mode == "P" and image.getpalette()[:12] == voc_palette()[:4].ravel().tolist()
        image.convert("RGB").save(tmp_path / "rgb.png")  # what a converting tool leaves
        grey = np.asarray(image.convert("L"))
    assert np.array_equal(read_davis_mask(tmp_path / "rgb.png"), ids)
    assert not np.array_equal(grey, ids)  # the pitfall: convert("L") gives grey levels of the colours, not ids


def test_grey_copies_with_void_and_bad_copies(tmp_path):
    ids = np.zeros((6, 8), np.uint8)
    ids[1:3, 1:4], ids[4:, 5:], ids[0, :] = 1, 2, 255
    Image.fromarray(ids).save(tmp_path / "grey.png")
    assert np.array_equal(read_davis_mask(tmp_path / "grey.png"), ids)
    Image.fromarray(voc_palette()[ids]).save(tmp_path / "rgb.png")
    assert np.array_equal(read_davis_mask(tmp_path / "rgb.png"), ids)
    Image.fromarray(voc_palette()[ids]).save(tmp_path / "mask.jpg", quality=90)
    with pytest.raises(ValueError, match="mask.jpg: a JPEG file"):
        read_davis_mask(tmp_path / "mask.jpg")
    odd = voc_palette()[ids]
    odd[0, 0] = (10, 20, 30)
    Image.fromarray(odd).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match=r"odd.png: an RGB annotation with 1 colour.*\(10, 20, 30\)"):
        read_davis_mask(tmp_path / "odd.png")


# --- the Dataset on the real annotations -------------------------------------------------------------------

def test_the_dataset_reads_real_annotations_of_both_widths(tmp_path):
    # the real samples are first-frame annotations; the frames around them are made up at the annotations' size
    root = tmp_path / "download"
    for sequence in ("bike-packing", "dogs-jump"):
        real = real_sample("davis2017", "Annotations", "480p", sequence, "00000.png")
        frames, masks = root / "DAVIS/JPEGImages/480p" / sequence, root / "DAVIS/Annotations/480p" / sequence
        frames.mkdir(parents=True)
        masks.mkdir(parents=True)
        for t in range(2):
            shutil.copy(real, masks / f"{t:05d}.png")
            Image.fromarray(np.full((480, Image.open(real).width, 3), 90 * t, np.uint8)).save(frames / f"{t:05d}.jpg")
    (root / "DAVIS/ImageSets/2017").mkdir(parents=True)
    (root / "DAVIS/ImageSets/2017/train.txt").write_text("bike-packing\n")
    (root / "DAVIS/ImageSets/2017/val.txt").write_text("dogs-jump\n")
    assert (root / "DAVIS" / davis.INFO.marker).is_file()  # what data.locate looks for
    for split, width, objects in (("train", 910, 2), ("val", 854, 3)):
        ds = Davis(root, split, monitor_fraction=0)  # root above DAVIS/, as the zip unpacks
        item = ds[0]
        assert item["frames"].shape == (2, 480, width, 3) and item["masks"].shape == (2, 480, width)
        assert item["frames"].dtype == item["masks"].dtype == np.uint8
        assert item["n_objects"] == objects == ds.n_objects(0) and not item["first_frame_only"]
        assert np.array_equal(item["masks"][0], read_davis_mask(ds.mask_paths(0)[0]))


# --- the twin ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return davis.write_twin(tmp_path_factory.mktemp("davis") / "davis2017")


def test_the_twin_is_in_the_official_layout_and_format(twin):
    assert (twin / "DAVIS" / davis.INFO.marker).is_file() and davis.INFO.write_twin is davis.write_twin
    root = twin / "DAVIS"
    names = [n for split in ("train", "val") for n in (root / f"ImageSets/2017/{split}.txt").read_text().split()]
    assert len(names) == 10 == len(set(names))
    voids = 0
    for name in names:
        frames = sorted((root / "JPEGImages/480p" / name).iterdir())
        masks = sorted((root / "Annotations/480p" / name).iterdir())
        assert 8 <= len(frames) <= 12 and [p.name for p in frames] == [f"{t:05d}.jpg" for t in range(len(frames))]
        assert [p.stem for p in masks] == [p.stem for p in frames] and {p.suffix for p in masks} == {".png"}
        with Image.open(frames[0]) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
        for path in masks:
            with Image.open(path) as image:
                assert image.mode == "P" and image.getpalette() == voc_palette().ravel().tolist()
                ids = np.asarray(image)
                image.convert("RGB").save(root.parent / "rgb.png")
            # the ids round-trip: the palette PNG as it is, and the same file converted to colours
            assert np.array_equal(read_davis_mask(path), ids)
            assert np.array_equal(read_davis_mask(root.parent / "rgb.png"), ids)
            assert set(np.unique(ids).tolist()) <= {0, 1, 2, 3, 255}
            voids += int((ids == 255).any())
    assert voids > 0, "a void band along some object edges, as in the real annotations"


def test_twin_splits_are_disjoint_and_the_monitor_split_comes_out_of_train(twin):
    root = twin / "DAVIS/ImageSets/2017"
    official_train, official_val = (root / "train.txt").read_text().split(), (root / "val.txt").read_text().split()
    train, monitor, val = Davis(twin, "train"), Davis(twin, "monitor"), Davis(twin, "val")
    assert (len(train), len(monitor), len(val)) == (5, 1, 4)
    assert sorted(train.sequence_names + monitor.sequence_names) == sorted(official_train)
    assert val.sequence_names == official_val and not set(official_train) & set(official_val)
    assert Davis(twin, "train", monitor_fraction=0).sequence_names == official_train
    assert Davis(twin, "monitor", seed=0).sequence_names == monitor.sequence_names  # seeded: the same every time
    assert "less a seeded 10%" in train.split_source


def test_twin_sequences_as_items(twin):
    ds = Davis(twin, "val")
    widths, objects = set(), set()
    for i in range(len(ds)):
        item = ds[i]
        frames, masks, n = item["frames"], item["masks"], item["n_objects"]
        assert item["name"] == ds.sequence_names[i] and not item["first_frame_only"]
        assert frames.ndim == 4 and frames.shape[3] == 3 and frames.dtype == np.uint8
        assert masks.shape == frames.shape[:3] and masks.dtype == np.uint8 and len(ds.frame_paths(i)) == len(frames)
        assert 1 <= n <= 3 and set(np.unique(masks).tolist()) <= set(range(n + 1)) | {255}
        assert set(range(1, n + 1)) <= set(np.unique(masks[0]).tolist())  # every object is in the first frame
        widths.add(frames.shape[2])
        objects.add(n)
    assert widths == {80, 85} and len(objects) > 1  # 854 and 910 wide, scaled down; objects differ per sequence
    frame, mask = ds.read_frame(0, 3)
    assert np.array_equal(frame, ds[0]["frames"][3]) and np.array_equal(mask, ds[0]["masks"][3])


def test_the_twin_is_deterministic(tmp_path):
    a = davis.write_twin(tmp_path / "a", n_train=1, n_val=1, size=(24, 32))
    b = davis.write_twin(tmp_path / "b", n_train=1, n_val=1, size=(24, 32))
    files_a, files_b = sorted(a.rglob("*.*")), sorted(b.rglob("*.*"))
    assert [p.relative_to(a) for p in files_a] == [p.relative_to(b) for p in files_b]
    assert all(pa.read_bytes() == pb.read_bytes() for pa, pb in zip(files_a, files_b))


# --- broken copies -----------------------------------------------------------------------------------------

@pytest.fixture
def copy(twin, tmp_path):
    """A copy of the twin to break, and its DAVIS/ folder."""
    root = shutil.copytree(twin, tmp_path / "copy")
    return root, root / "DAVIS"


def test_a_listed_sequence_without_its_folder(copy):
    root, folder = copy
    with open(folder / "ImageSets/2017/val.txt", "a") as f:
        f.write("ghost-walk\n")
    with pytest.raises(FileNotFoundError, match=r"val.txt lists the sequence 'ghost-walk', but there is no folder "
                                                r".*JPEGImages/480p/ghost-walk.*Unzip https://"):
        Davis(root, "val")
    Davis(root, "train")  # the other split is not affected


def test_frames_and_annotations_that_disagree_in_count(copy):
    root, folder = copy
    name = Davis(root, "val").sequence_names[0]
    (folder / "Annotations/480p" / name / "00005.png").unlink()
    with pytest.raises(ValueError, match=rf"sequence '{name}': \d+ frames in .* but \d+ annotations .*"
                                         rf"00005.jpg has no annotation"):
        Davis(root, "val")


def test_a_frame_and_its_annotation_of_different_sizes(copy):
    root, folder = copy
    ds = Davis(root, "val")
    path = ds.mask_paths(1)[2]
    write_annotation(path, np.zeros((10, 12), np.uint8))
    ds[0]  # other sequences still load
    with pytest.raises(ValueError, match=rf"{path.name} is 12x10 but its frame .*00002.jpg is \d+x48"):
        ds[1]


def test_a_split_with_the_first_frame_annotated_only(copy):
    # test-dev: every frame, but only the first annotation (the truth of the others is the challenge's)
    root, folder = copy
    val = Davis(root, "val").sequence_names
    names = val[:2]
    for name in names:
        for path in sorted((folder / "Annotations/480p" / name).glob("*.png"))[1:]:
            path.unlink()
    (folder / "ImageSets/2017/val.txt").write_text("".join(f"{n}\n" for n in val[2:]))
    (folder / "ImageSets/2017/test-dev.txt").write_text("".join(f"{n}\n" for n in names))
    ds = Davis(root, "test-dev")
    item = ds[0]
    assert ds.first_frame_only and item["first_frame_only"] and item["n_objects"] >= 1
    assert item["masks"].shape == (1, *item["frames"].shape[1:3]) and len(item["frames"]) >= 8
    assert ds.read_frame(0, 3)[1] is None and len(ds.mask_paths(0)) == 1
    # in train or val, or beside fully annotated sequences, a first-frame-only sequence is an incomplete copy
    (folder / "ImageSets/2017/test-dev.txt").write_text(f"{names[0]}\n{val[2]}\n")
    with pytest.raises(ValueError, match=r"1 of the 2 sequences of split 'test-dev' have only their first frame"):
        Davis(root, "test-dev")
    (folder / "ImageSets/2017/val.txt").write_text(f"{names[0]}\n")
    with pytest.raises(ValueError, match=r"train and val annotate every frame"):
        Davis(root, "val")


def test_unknown_splits_overlapping_lists_and_missing_resolutions(copy):
    root, folder = copy
    with pytest.raises(ValueError, match=r"no split 'test-dev': .* has the lists \['train', 'val'\]"):
        Davis(root, "test-dev")
    with pytest.raises(ValueError, match="needs monitor_fraction > 0"):
        Davis(root, "monitor", monitor_fraction=0)
    with pytest.raises(FileNotFoundError, match=r"no folder .*JPEGImages/Full-Resolution \(found \['480p'\]"):
        Davis(root, "val", resolution="Full-Resolution")
    shared = (folder / "ImageSets/2017/val.txt").read_text().split()[0]
    with open(folder / "ImageSets/2017/train.txt", "a") as f:
        f.write(f"{shared}\n")
    with pytest.raises(ValueError, match=rf"1 sequences are in both .*train.txt and .*val.txt, e.g. '{shared}'"):
        Davis(root, "val")
