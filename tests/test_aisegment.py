"""AISegment matting (course_utils/datasets/aisegment.py): the alpha channel as the matte, pairing by path in the real
layout (hidden files, the matting_human_half duplicate, missing partners), trimaps, compositing, the twin, items
with albumentations transforms, and splits by group."""

import re
import struct
import time

import albumentations as A
import cv2
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image
from torch.utils.data import DataLoader

from course_utils.data import has_marker
from course_utils.datasets import DamagedFileError, aisegment, read_image
from course_utils.datasets.aisegment import (
    AISegment,
    composite,
    find_pairs,
    make_trimap,
    read_foreground,
    read_matte,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("aisegment") / "aisegmentcom-matting-human-datasets"
    start = time.perf_counter()
    aisegment.write_twin(root)
    return root, time.perf_counter() - start


def save_rgba(path, alpha, rgb=(200, 120, 40)):
    """An RGBA PNG with colour ``rgb`` and the given uint8 ``alpha``, as the dataset's matting files are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.zeros((*alpha.shape, 4), np.uint8)
    pixels[..., :3], pixels[..., 3] = rgb, alpha
    Image.fromarray(pixels, "RGBA").save(path)
    return path


def save_photo(path, size=(6, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 90, np.uint8)).save(path, quality=90)
    return path


# --- read_matte ----------------------------------------------------------------------------------

ALPHA = np.array([[0, 64, 128], [192, 255, 0]], np.uint8)


def test_read_matte_returns_the_alpha_channel_in_0_1(tmp_path):
    path = save_rgba(tmp_path / "m.png", ALPHA)
    alpha = read_matte(path)
    assert alpha.dtype == np.float32 and alpha.shape == (2, 3)
    np.testing.assert_array_equal(alpha, ALPHA / np.float32(255))
    # the pitfall: convert("L") gives grey levels of the colour, the same everywhere here; the matte is gone
    assert len(np.unique(np.asarray(Image.open(path).convert("L")))) == 1
    assert cv2.imread(str(path)).shape == (2, 3, 3)  # without IMREAD_UNCHANGED, OpenCV drops the alpha


def test_read_foreground_is_the_rgb_of_the_matting_png(tmp_path):
    path = save_rgba(tmp_path / "m.png", ALPHA, rgb=(200, 120, 40))
    colour = read_foreground(path)
    assert colour.dtype == np.uint8 and colour.shape == (2, 3, 3)
    assert (colour == (200, 120, 40)).all()  # RGB order, not OpenCV's BGR


@pytest.mark.parametrize("mode, words", [("RGB", "RGB image without alpha"), ("L", "greyscale image without alpha")])
def test_read_matte_refuses_a_png_without_alpha(tmp_path, mode, words):
    path = tmp_path / "m.png"
    Image.fromarray(ALPHA).convert(mode).save(path)
    with pytest.raises(ValueError, match=words) as error:
        read_matte(path)
    assert str(path) in str(error.value) and "alpha channel is the matte" in str(error.value)


def test_read_matte_refuses_an_opaque_alpha_and_a_damaged_file(tmp_path):
    rgb_as_rgba = tmp_path / "opaque.png"
    Image.fromarray(np.full((4, 3, 3), 100, np.uint8)).convert("RGBA").save(rgb_as_rgba)
    with pytest.raises(ValueError, match="opaque everywhere"):
        read_matte(rgb_as_rgba)
    good = save_rgba(tmp_path / "good.png", np.tile(ALPHA, (20, 20)))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-30])
    with pytest.raises(DamagedFileError, match="truncated.png"):
        read_matte(truncated)


# --- find_pairs ----------------------------------------------------------------------------------

def write_copy(root, with_duplicate=True):
    """A tiny copy in the real layout: two pairs, a photo and a matte without partner, a name in the wrong clip
    folder, the hidden files of the real copy, a .DS_Store, and a matting_human_half duplicate with an extra pair."""
    photo = root / "clip_img" / "1803151818"
    matte = root / "matting" / "1803151818"
    alpha = np.array([[0, 255], [128, 255]], np.uint8)
    for clip, number in (("00000000", "00000003"), ("00000001", "00001000")):
        save_photo(photo / f"clip_{clip}" / f"1803151818-{number}.jpg")
        save_rgba(matte / f"matting_{clip}" / f"1803151818-{number}.png", alpha)
    save_photo(photo / "clip_00000000" / "1803151818-00000004.jpg")  # its matte is missing
    save_rgba(root / "matting/1803201916/matting_00000000/1803201916-00000117.png", alpha)  # its photo is missing
    save_photo(root / "clip_img/1803201916/clip_00000000/1803201916-00000200.jpg")  # and its matte sits
    save_rgba(root / "matting/1803201916/matting_00000001/1803201916-00000200.png", alpha)  # in another clip folder
    (photo / "clip_00000000" / "._1803151818-00000003.jpg").write_bytes(aisegment.APPLE_DOUBLE)
    (root / "matting" / "1803201916" / "._matting_00000000").write_bytes(aisegment.APPLE_DOUBLE)
    (matte / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    if with_duplicate:
        for tree in ("clip_img", "matting"):
            for path in (root / tree).rglob("*"):
                if path.is_file():
                    copy = root / "matting_human_half" / path.relative_to(root)
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    copy.write_bytes(path.read_bytes())
        save_photo(root / "matting_human_half/clip_img/1803151818/clip_00000000/1803151818-00000009.jpg")
        save_rgba(root / "matting_human_half/matting/1803151818/matting_00000000/1803151818-00000009.png", alpha)
    return root


def test_pairs_by_path_ignoring_hidden_files_and_the_duplicate(tmp_path, capsys):
    root = write_copy(tmp_path / "aisegmentcom-matting-human-datasets")
    pairs = find_pairs(tmp_path)  # the folder holding clip_img/ and matting/ is searched for
    assert [(p.group, p.clip, p.name) for p in pairs] == [("1803151818", "00000000", "1803151818-00000003"),
                                                          ("1803151818", "00000001", "1803151818-00001000")]
    for p in pairs:
        assert p.image.parent.name == f"clip_{p.clip}" and p.matte.parent.name == f"matting_{p.clip}"
        assert "matting_human_half" not in p.image.parts + p.matte.parts
    out = capsys.readouterr().out
    assert "2 photos without a matte" in out and "1803151818-00000004.jpg" in out and "1803201916-00000200.jpg" in out
    assert "2 mattes without a photo" in out and "1803201916-00000117.png" in out
    assert "3 hidden entries" in out and "._matting_00000000" in out
    assert "matting_human_half" in out and "counts twice" in out
    assert str(root) in out


def test_a_copy_of_the_archive_folder_alone_is_found(tmp_path, capsys):
    write_copy(tmp_path / "matting_human_half", with_duplicate=False)  # as older Kaggle mounts had it
    assert len(find_pairs(tmp_path)) == 2


def test_nothing_paired_is_an_error_that_says_what_was_expected(tmp_path, capsys):
    save_photo(tmp_path / "clip_img/1803151818/clip_00000000/1803151818-00000003.jpg")
    (tmp_path / "matting").mkdir()
    with pytest.raises(FileNotFoundError, match="found 1 photos and 0 mattes") as error:
        find_pairs(tmp_path)
    assert "matting/<group>/matting_<n>/<name>.png" in str(error.value)
    with pytest.raises(FileNotFoundError, match="clip_img/ and matting/"):
        find_pairs(tmp_path / "clip_img")


# --- make_trimap ---------------------------------------------------------------------------------

def disk(size=61, inner=15.0, outer=None):
    """A disk of alpha 1 up to radius ``inner``, falling linearly to 0 at ``outer`` (a hard edge if None)."""
    yy, xx = np.mgrid[0:size, 0:size]
    d = np.hypot(yy - size // 2, xx - size // 2)
    if outer is None:
        return (d <= inner).astype(np.float32)
    return np.clip((outer - d) / (outer - inner), 0, 1).astype(np.float32)


def run_lengths(row):
    """Lengths of the runs of 0, 128 and 255 along half a row, from the centre outwards."""
    half = row[len(row) // 2:]
    return {value: int((half == value).sum()) for value in (0, 128, 255)}


def test_trimap_of_a_hard_disk_has_a_band_2_band_wide():
    alpha = disk()  # radius 15: on the centre row, 16 pixels of foreground from the centre outwards
    for band in (0, 1, 3, 6):
        trimap = make_trimap(alpha, band)
        assert trimap.dtype == np.uint8 and trimap.shape == alpha.shape
        assert set(np.unique(trimap)) <= {0, 128, 255}
        runs = run_lengths(trimap[30])
        assert runs[128] == 2 * band  # band pixels inside the edge, band outside
        assert runs[255] == 16 - band
        assert (trimap == 128).sum() == 0 if band == 0 else (trimap == 128).sum() > 0


def test_trimap_of_a_soft_disk_covers_the_soft_pixels_and_band_more():
    alpha = disk(inner=10, outer=16)  # soft for 10 < d < 16: 5 pixels of the centre row's half
    soft = (alpha > 0) & (alpha < 1)
    assert run_lengths(np.where(soft[30], 128, 0))[128] == 5
    np.testing.assert_array_equal(make_trimap(alpha, 0) == 128, soft)  # band 0: exactly the soft pixels
    for band in (2, 4):
        trimap = make_trimap(alpha, band)
        runs = run_lengths(trimap[30])
        assert runs[128] == 5 + 2 * band and runs[255] == 11 - band
        assert (trimap[soft] == 128).all()  # every soft pixel is unknown
        assert (trimap[alpha == 0] != 255).all() and (trimap[alpha == 1] != 0).all()


def test_trimap_accepts_uint8_and_resized_alphas_and_keeps_the_border_foreground():
    alpha = disk(inner=10, outer=16)
    as_uint8 = np.round(alpha * 255).astype(np.uint8)
    np.testing.assert_array_equal(make_trimap(as_uint8, 3), make_trimap(as_uint8 / np.float32(255), 3))
    nearly = np.where(alpha == 1, np.float32(1 - 1e-6), np.where(alpha == 0, np.float32(1e-6), alpha))
    np.testing.assert_array_equal(make_trimap(nearly, 3), make_trimap(alpha, 3))  # interpolation's rounding
    torso = np.zeros((20, 10), np.float32)
    torso[8:] = 1  # a person cut by the bottom and the sides of the frame
    trimap = make_trimap(torso, 3)
    assert (trimap[-1] == 255).all() and (trimap[11:, 0] == 255).all()  # the border does not erode
    assert (trimap[5:11] == 128).all() and (trimap[:5] == 0).all()


def test_random_trimap_band_is_drawn_from_the_generator():
    alpha = disk()
    widths = {run_lengths(make_trimap(alpha, (1, 6), np.random.default_rng(seed))[30])[128] for seed in range(20)}
    assert widths <= {2, 4, 6, 8, 10, 12} and len(widths) > 2
    np.testing.assert_array_equal(make_trimap(alpha, (1, 6), np.random.default_rng(7)),
                                  make_trimap(alpha, (1, 6), np.random.default_rng(7)))
    with pytest.raises(ValueError, match="rng"):
        make_trimap(alpha, (1, 6))
    with pytest.raises(ValueError, match="one matte"):
        make_trimap(np.zeros((2, 3, 3)), 2)


# --- composite -----------------------------------------------------------------------------------

def test_composite_follows_the_compositing_equation():
    fg = np.full((2, 3, 3), 0.8, np.float32)
    bg = np.full((2, 3, 3), 0.2, np.float32)
    np.testing.assert_array_equal(composite(fg, np.zeros((2, 3), np.float32), bg), bg)
    np.testing.assert_array_equal(composite(fg, np.ones((2, 3), np.float32), bg), fg)
    np.testing.assert_allclose(composite(fg, np.full((2, 3, 1), 0.25, np.float32), bg), 0.35)
    alpha = np.array([[0, 0.5, 1], [1, 0.5, 0]], np.float32)
    np.testing.assert_allclose(composite(fg, alpha, bg)[..., 0], 0.2 + 0.6 * alpha)


def test_composite_checks_shapes_types_and_range():
    fg, bg, alpha = np.zeros((4, 5, 3)), np.zeros((4, 5, 3)), np.zeros((4, 5))
    with pytest.raises(ValueError, match="same shape"):
        composite(fg, alpha, np.zeros((4, 6, 3)))
    with pytest.raises(ValueError, match=r"alpha \(5, 4\)"):
        composite(fg, np.zeros((5, 4)), bg)
    with pytest.raises(TypeError, match="astype"):
        composite(fg.astype(np.uint8), alpha, bg)
    with pytest.raises(ValueError, match="divide it by 255"):
        composite(fg, alpha + 255, bg)


# --- the twin ------------------------------------------------------------------------------------

PHOTO = re.compile(r"clip_img/(\d{10})/clip_(\d{8})/(\1-(\d{8}))\.jpg")
MATTE = re.compile(r"matting/(\d{10})/matting_(\d{8})/(\1-(\d{8}))\.png")


def png_header(path):
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk: colour type 6 = RGBA, 2 = RGB."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">IIBB", data[16:26])


def test_twin_has_the_layout_and_encodings_of_the_kaggle_copy(twin):
    root, seconds = twin
    assert seconds < 5, f"writing the twin took {seconds:.1f} s"  # about 2 s on an idle 2-core machine
    assert sorted(p.name for p in root.iterdir()) == ["clip_img", "matting", "matting_human_half"]
    files = [p for p in root.rglob("*") if p.is_file()]
    visible = [p.relative_to(root).as_posix() for p in files if not p.name.startswith(".")]
    main = [name for name in visible if not name.startswith("matting_human_half/")]
    photos = [m for m in map(PHOTO.fullmatch, main) if m]
    mattes = [m for m in map(MATTE.fullmatch, main) if m]
    assert len(photos) + len(mattes) == len(main)  # nothing else
    assert len(photos) == 12 * 2 * 4 + 1 and len(mattes) == 12 * 2 * 4  # one photo has no matte
    for m in photos + mattes:  # clip n holds the numbers 1000 n to 1000 n + 999
        assert int(m.group(4)) // 1000 == int(m.group(2))
    for m in photos:
        assert (root / m.group(0)).read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG
        assert Image.open(root / m.group(0)).size == (96, 128)  # width x height, 3 : 4 like 600 x 800
    for m in mattes:
        assert png_header(root / m.group(0)) == (96, 128, 8, 6)  # 8-bit RGBA
    hidden = sorted(p.relative_to(root).as_posix() for p in files if p.name.startswith("."))
    assert any(re.fullmatch(r"clip_img/\d{10}/clip_00000000/\._\d{10}-\d{8}\.jpg", h) for h in hidden)
    assert any(re.fullmatch(r"matting/\d{10}/\._matting_00000000", h) for h in hidden)
    for name in main:  # the duplicate is a byte-for-byte copy
        assert (root / "matting_human_half" / name).read_bytes() == (root / name).read_bytes()


def test_twin_mattes_are_soft_with_hair_and_translucent_parts_and_fit_their_photos(twin, capsys):
    root, _ = twin
    pairs = find_pairs(root)
    out = capsys.readouterr().out
    assert len(pairs) == 96 and "1 photos without a matte" in out and "2 hidden entries" in out
    alphas = np.stack([read_matte(p.matte) for p in pairs])
    soft = (alphas > 0) & (alphas < 1)
    assert 0.05 < soft.mean() < 0.3  # edges, strands and shawls, not a binary mask
    assert 0.3 < (alphas > 0.5).mean() < 0.7  # a half-body portrait fills about half the frame
    # hair strands: thin fractional lines above the head, in every portrait
    assert all(((a[: a.shape[0] // 4] > 0.05) & (a[: a.shape[0] // 4] < 0.7)).sum() >= 15 for a in alphas)
    # the translucent shawl: many portraits have a patch of alpha 0.3-0.75 larger than any edge makes
    assert sum(((a > 0.3) & (a < 0.75)).sum() > 60 for a in alphas) >= 20
    for p, alpha in zip(pairs[:12], alphas[:12]):  # I = alpha F + (1 - alpha) B: where alpha = 1 the photo is F
        photo, colour = read_image(p.image).astype(np.float32), read_foreground(p.matte).astype(np.float32)
        assert np.abs(photo - colour)[alpha == 1].mean() < 8  # JPEG and sensor noise only
        assert (colour[alpha == 0] == 0).all()


def test_twin_is_deterministic(tmp_path):
    for name in ("a", "b"):
        aisegment.write_twin(tmp_path / name, n_groups=2, clips_per_group=1, images_per_clip=2, seed=3)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)


def test_registry_entry(twin, tmp_path):
    root, _ = twin
    info = aisegment.INFO
    assert (info.name, info.notebook) == ("aisegment", "01")
    assert info.kaggle == "laurentmih/aisegmentcom-matting-human-datasets"
    assert info.write_twin is aisegment.write_twin and info.twin_version == aisegment.TWIN_VERSION >= 1
    assert info.licence and "AISegment" in info.citation and info.url is None
    assert has_marker(root, info.marker) and has_marker(root.parent, info.marker)
    assert not has_marker(tmp_path, info.marker)


# --- items ---------------------------------------------------------------------------------------

def test_items_without_transform(twin):
    root, _ = twin
    ds = AISegment(root, "all")
    image, target = ds[3]
    assert image.dtype == torch.float32 and image.shape == (3, 128, 96) and 0 <= image.min() <= image.max() <= 1
    alpha, trimap = target["alpha"], target["trimap"]
    assert alpha.dtype == torch.float32 and alpha.shape == (128, 96) and 0 <= alpha.min() <= alpha.max() <= 1
    assert ((alpha > 0) & (alpha < 1)).any()
    assert trimap.dtype == torch.uint8 and set(trimap.unique().tolist()) == {0, 128, 255}
    np.testing.assert_array_equal(trimap.numpy(), make_trimap(alpha.numpy(), 5))
    assert target["index"] == 3
    np.testing.assert_array_equal(alpha.numpy(), read_matte(ds.pairs[3].matte))
    small = AISegment(root, "all", size=(64, 48), trimap_band=2)[3]
    assert small[0].shape == (3, 64, 48) and small[1]["alpha"].shape == (64, 48)
    assert abs(small[1]["alpha"].mean() - alpha.mean()) < 0.01  # area averaging keeps the coverage
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 3, 128, 96) and batch[1]["alpha"].shape == (4, 128, 96)
    assert batch[1]["trimap"].shape == (4, 128, 96) and batch[1]["index"].tolist() == [0, 1, 2, 3]


def test_albumentations_moves_the_alpha_with_the_image_and_keeps_it_float(twin):
    root, _ = twin
    plain = AISegment(root, "all", transform=A.Compose([]))  # the photo stays uint8 HxWx3, the alpha float
    photo, alpha = plain[5][0], plain[5][1]["alpha"].numpy()
    flipped = AISegment(root, "all", transform=A.Compose([A.HorizontalFlip(p=1)]))[5]
    np.testing.assert_array_equal(flipped[0], photo[:, ::-1])
    np.testing.assert_array_equal(flipped[1]["alpha"].numpy(), alpha[:, ::-1])
    np.testing.assert_array_equal(flipped[1]["trimap"].numpy(), make_trimap(alpha[:, ::-1], 5))

    crop = AISegment(root, "all", transform=A.Compose([A.RandomCrop(height=96, width=72)]))
    torch.manual_seed(0)
    image, target = crop[5]
    torch.manual_seed(0)
    again = crop[5]
    np.testing.assert_array_equal(image, again[0])  # reseeded from torch: a resumed run repeats the crop
    cropped = target["alpha"].numpy()
    offsets = [(y, x) for y in range(33) for x in range(25) if np.array_equal(alpha[y:y + 96, x:x + 72], cropped)]
    assert len(offsets) >= 1 and any(np.array_equal(photo[y:y + 96, x:x + 72], image) for y, x in offsets)

    pipeline = A.Compose([A.Affine(rotate=(10, 10), mask_interpolation=cv2.INTER_LINEAR, p=1),
                          A.Normalize(), ToTensorV2()])
    image, target = AISegment(root, "all", transform=pipeline)[5]
    assert image.dtype == torch.float32 and image.shape == (3, 128, 96)
    rotated = target["alpha"]
    assert rotated.dtype == torch.float32 and rotated.shape == (128, 96)
    assert ((rotated > 0) & (rotated < 1)).float().mean() > 0.05  # still soft: not rounded to a mask
    assert not torch.equal(rotated, torch.from_numpy(alpha))


def test_random_trimap_band_is_reproducible_from_torch(twin):
    root, _ = twin
    ds = AISegment(root, "all", trimap_band=(1, 8))
    torch.manual_seed(1)
    first = [ds[i][1]["trimap"] for i in range(4)]
    torch.manual_seed(1)
    assert all(torch.equal(a, ds[i][1]["trimap"]) for i, a in enumerate(first))
    unknown = {int((ds[0][1]["trimap"] == 128).sum()) for _ in range(6)}
    assert len(unknown) > 1


# --- splits --------------------------------------------------------------------------------------

def test_splits_are_disjoint_by_group_and_cover_every_pair(twin):
    root, _ = twin
    splits = {s: AISegment(root, s) for s in ("train", "monitor", "test")}
    every = AISegment(root, "all")
    groups = {s: set(ds.groups) for s, ds in splits.items()}
    assert all(groups[s] for s in groups)
    assert not (groups["train"] & groups["monitor"] or groups["train"] & groups["test"]
                or groups["monitor"] & groups["test"])
    assert groups["train"] | groups["monitor"] | groups["test"] == set(every.groups)
    for s, ds in splits.items():
        assert {p.group for p in ds.pairs} == groups[s]
    assert sorted(i for ds in splits.values() for i in ds.indices) == list(range(len(every)))
    assert AISegment(root, "test").groups == splits["test"].groups  # the same on every machine
    assert any(AISegment(root, "test", seed=seed).groups != splits["test"].groups for seed in range(1, 6))
    no_monitor = AISegment(root, "train", monitor_fraction=0)
    assert set(no_monitor.groups) == groups["train"] | groups["monitor"]


def test_split_errors(twin, tmp_path):
    root, _ = twin
    with pytest.raises(ValueError, match="split must be one of"):
        AISegment(root, "val")
    with pytest.raises(ValueError, match="monitor_fraction > 0"):
        AISegment(root, "monitor", monitor_fraction=0)
    aisegment.write_twin(tmp_path, n_groups=1, clips_per_group=1, images_per_clip=2)
    with pytest.raises(ValueError, match="at least two"):
        AISegment(tmp_path, "train")
    assert len(AISegment(tmp_path, "all")) == 2
