"""AISegment.com Matting Human: half-body portraits with alpha mattes, the torch Dataset over the real layout,
the matting helpers (trimaps, compositing) and the synthetic twin.

Layout of the Kaggle copy ``laurentmih/aisegmentcom-matting-human-datasets`` (the original archive is
``matting_human_half``, shared on Baidu Pan and Mega by github.com/aisegmentcn/matting_human_datasets)::

    clip_img/<group>/clip_<n>/<group>-<number>.jpg        the photo, JPEG, 600 wide x 800 high
    matting/<group>/matting_<n>/<group>-<number>.png      its matte: an RGBA PNG whose ALPHA channel is the matte
    matting_human_half/clip_img/...  matting_human_half/matting/...   a second copy of the same two trees

for example ``clip_img/1803151818/clip_00000000/1803151818-00000003.jpg`` pairs with
``matting/1803151818/matting_00000000/1803151818-00000003.png``.

What we checked, and where (public code and pages that load this dataset; we could not open Kaggle itself):

* Top-level ``clip_img/`` and ``matting/``: Kaggle notebooks read ``../input/aisegmentcom-matting-human-datasets/
  clip_img/1803151818/clip_00000000/...``; the duplicate ``aisegmentcom-matting-human-datasets/matting_human_half/
  {clip_img,matting}`` is named in the MobMatt README and in scripts that start from ``kagglehub.dataset_download``.
  Some notebooks read ``../input/matting_human_half/clip_img/...``, so the loader finds the two folders wherever
  they are, and reads one copy only.
* Size: "600*800 half-body portraits" after face detection and cropping (the dataset's README), i.e. arrays of shape
  (800, 600, 3); ai8x-training's AISegment loader uses ``org_img_dim = [800, 600]`` (height, width).
* Count: the README says 34,427 images; dataset-ninja's statistics count 34,425 images matched by
  ``clip_img/*/*/*.jpg``, all of them labelled, and MindSpore's Semantic Human Matting reports 27,540 = 80 % of 34,425.
* ``clip_<n>`` is a bin of 1000 numbers: ``clip_00000001`` holds ``1803151818-00001000.jpg`` (a PSPNet portrait demo).
* Hidden files: ``clip_img/1803241125/clip_00000000/._1803241125-00000005.jpg`` (macOS metadata, not a JPEG: a
  Kaggle notebook calls it "one corrupt RGB image") and ``matting/1803201916/._matting_00000000`` (a file where a
  folder is expected); MindSpore's Semantic Human Matting config lists both as "error files". Another loader drops
  ``1803201916-00000117`` from both lists to make their lengths agree, presumably a photo or matte without partner.
  This loader skips hidden entries and reports unpaired files (count and examples) instead of dropping them silently.
* What a group is: the folder name reads like a timestamp ``yyMMddHHmm`` (``1803151818`` = 2018-03-15 18:18), so we
  take a group to be one batch of collection or labelling. The photos come from Flickr, Baidu and Taobao (README);
  one batch likely holds photos of one source (a shop's catalogue, a photographer's set), so the splits are drawn by
  **group**: a split by image could put near-copies of one person in both training and test. This is our reading
  of the names, not documented, and we have not looked at the photos; the number of groups is not documented either.

Format pitfall: the matte is the **alpha channel** of the PNG. ``Image.open(p).convert("L")`` (grey levels of the
colours) and ``cv2.imread(p)`` without ``cv2.IMREAD_UNCHANGED`` (the colours only) both drop it; a mask made by
thresholding those colours, as some public notebooks do, turns black clothes and dark hair into background. The
README says to extract the alpha first (``cv2.imread(path, cv2.IMREAD_UNCHANGED)[:, :, 3]``): :func:`read_matte`.

Trimaps follow Deep Image Matting (Xu et al., CVPR 2017, arXiv:1703.03872), which trains on trimaps dilated at
random from the ground truth; see :func:`make_trimap` for the convention and how the common ports differ.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from course_utils.datasets import (
    DatasetInfo,
    check_monitor_fraction,
    find_folder,
    read_image,
    read_unchanged,
    report_unused,
    reseed,
    split_names,
)

TWIN_VERSION = 2  # 2: 12 groups (96 portraits), so a smoke epoch has 10 training batches
SPLITS = ("train", "monitor", "test", "all")
IMAGE_SUFFIXES = (".jpg", ".jpeg")
DUPLICATE = "matting_human_half"  # the archive's own folder, copied beside its contents in the Kaggle copy
# trimap values, as in Deep Image Matting and its ports
BACKGROUND, UNKNOWN, FOREGROUND = 0, 128, 255
# half an 8-bit step: alpha within it of 0 or 1 counts as 0 or 1, so a resized matte gives the same trimap
LEVEL = 0.5 / 255


# --- reading ------------------------------------------------------------------------------------

def _read_rgba(path: Path) -> np.ndarray:
    """The pixels of a matting PNG (H, W, 4) as stored, BGRA; anything without an alpha channel is refused."""
    pixels = read_unchanged(path)  # keeps the alpha channel (and the bit depth)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels != 4:
        kind = {1: "greyscale", 3: "RGB"}.get(channels, f"{channels}-channel")
        raise ValueError(f"{path}: expected an RGBA PNG whose alpha channel is the matte, found a {kind} image "
                         f"without alpha. The matte is lost in this copy (was it saved after convert('RGB') or "
                         f"convert('L'), or read with cv2.imread without IMREAD_UNCHANGED and written again?): use "
                         f"the original matting/<group>/matting_<n>/<name>.png files.")
    return pixels


def read_matte(path: str | Path) -> np.ndarray:
    """The matte of a ``matting/.../<name>.png`` file: its alpha channel as float32 (H, W) in [0, 1].

    The file is an RGBA PNG: RGB is the cut-out person, alpha is the matte (0 = background, 1 = person, between
    = partly covered: hair, soft edges). Reading it the usual ways loses the matte: ``convert("L")`` turns the RGB
    into grey levels and ``cv2.imread(path)`` returns the 3 colour channels only; the alpha needs
    ``cv2.IMREAD_UNCHANGED`` (as here) or PIL's ``np.asarray(image)[..., 3]``. So a file without an alpha channel is
    an error, and so is an alpha that is opaque everywhere (what ``convert("RGBA")`` of an RGB copy gives: every
    real matte has some background). A damaged file is a ``DamagedFileError``.
    """
    path = Path(path)
    pixels = _read_rgba(path)
    alpha = pixels[..., 3].astype(np.float32) / np.iinfo(pixels.dtype).max
    if alpha.min() == 1:
        raise ValueError(f"{path}: the alpha channel is opaque everywhere, so it holds no matte (an RGB copy saved "
                         f"as RGBA looks like this; every half-body portrait of the dataset has background). Use the "
                         f"original matting files.")
    return alpha


def read_foreground(path: str | Path) -> np.ndarray:
    """The colour channels of a matting PNG as uint8 RGB (H, W, 3): the cut-out person.

    Where the alpha is 0 the colour means nothing. Where it is between 0 and 1, the dataset does not say whether
    the colour is the person's own colour F of the compositing equation or the photo's colour (F already mixed
    with the background): treat it as an estimate of F. In the twin it is the true F.
    """
    pixels = _read_rgba(Path(path))
    if pixels.dtype != np.uint8:
        pixels = (pixels / 257).round().astype(np.uint8)  # 16-bit to 8-bit
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)


# --- finding the pairs --------------------------------------------------------------------------

@dataclass(frozen=True)
class Pair:
    """One photo and its matte: ``clip_img/<group>/clip_<clip>/<name>.jpg`` and the same path under ``matting``."""

    group: str
    clip: str  # the number of the clip_<n> / matting_<n> folder, as written ("00000000")
    name: str  # the file name without extension, "<group>-<number>"
    image: Path
    matte: Path


def find_dataset_folder(root: str | Path) -> Path:
    """The folder at or below ``root`` that holds both ``clip_img/`` and ``matting/``: ``root`` itself in the Kaggle
    copy (its ``matting_human_half/`` duplicate is one level deeper, so it is not chosen)."""
    return find_folder(Path(root), lambda f: (f / "clip_img").is_dir() and (f / "matting").is_dir(),
                       "both clip_img/ and matting/ (as in the Kaggle copy or the matting_human_half archive)")


def _scan(tree: Path, prefix: str, suffixes: tuple[str, ...], hidden: list[str],
          others: list[str]) -> dict[tuple[str, str, str], Path]:
    """``{(group, clip, name): path}`` of ``tree/<group>/<prefix><clip>/<name><suffix>``. Hidden entries (``._*``,
    ``.DS_Store``) go to ``hidden``, anything else out of place to ``others`` (paths relative to ``tree.parent``)."""
    files = {}
    base = tree.parent

    def relative(entry: os.DirEntry) -> str:
        return Path(entry.path).relative_to(base).as_posix()

    for group in sorted(os.scandir(tree), key=lambda e: e.name):
        if group.name.startswith("."):
            hidden.append(relative(group))
            continue
        if not group.is_dir():
            others.append(relative(group))
            continue
        for clip in sorted(os.scandir(group.path), key=lambda e: e.name):
            if clip.name.startswith("."):
                hidden.append(relative(clip))
                continue
            number = clip.name[len(prefix):]
            if not (clip.is_dir() and clip.name.startswith(prefix) and number.isdigit()):
                others.append(relative(clip))
                continue
            for file in sorted(os.scandir(clip.path), key=lambda e: e.name):
                stem, suffix = os.path.splitext(file.name)
                if file.name.startswith("."):
                    hidden.append(relative(file))
                elif file.is_file() and suffix.lower() in suffixes:
                    files[(group.name, number, stem)] = Path(file.path)
                else:
                    others.append(relative(file))
    return files


def find_pairs(root: str | Path) -> list[Pair]:
    """Every photo with its matte, paired by path, sorted by group, clip and name.

    ``clip_img/<group>/clip_<n>/<name>.jpg`` pairs with ``matting/<group>/matting_<n>/<name>.png`` and with nothing
    else (the same name in another clip folder is not its matte). Hidden entries are skipped, and the
    ``matting_human_half/`` copy is not read, so no photo counts twice. Photos without a matte, mattes without a
    photo and files out of place are reported (count and examples), not dropped silently; no pair at all is an error.
    """
    folder = find_dataset_folder(root)
    hidden, others = [], []
    images = _scan(folder / "clip_img", "clip_", IMAGE_SUFFIXES, hidden, others)
    mattes = _scan(folder / "matting", "matting_", (".png",), hidden, others)
    keys = sorted(set(images) & set(mattes), key=lambda k: (k[0], int(k[1]), k[2]))
    if not keys:
        raise FileNotFoundError(
            f"no photo in {folder / 'clip_img'} has its matte in {folder / 'matting'} (found {len(images)} photos and "
            f"{len(mattes)} mattes). Expected clip_img/<group>/clip_<n>/<name>.jpg beside "
            f"matting/<group>/matting_<n>/<name>.png, as in the Kaggle copy; is the download complete?")
    report_unused(folder / "clip_img", "photos without a matte (matting/<group>/matting_<n>/<name>.png)",
                  [f"{g}/clip_{c}/{images[g, c, n].name}" for g, c, n in sorted(set(images) - set(mattes))])
    report_unused(folder / "matting", "mattes without a photo (clip_img/<group>/clip_<n>/<name>.jpg)",
                  [f"{g}/matting_{c}/{mattes[g, c, n].name}" for g, c, n in sorted(set(mattes) - set(images))])
    report_unused(folder, "hidden entries (macOS '._' metadata, .DS_Store)", hidden)
    report_unused(folder, "entries out of place (not <group>/clip_<n>/<name>.jpg or <group>/matting_<n>/<name>.png)",
                  others)
    if (folder / DUPLICATE).is_dir():
        report_unused(folder, "folder with a second copy of clip_img/ and matting/ (so no photo counts twice)",
                      [DUPLICATE])
    return [Pair(g, c, n, images[g, c, n], mattes[g, c, n]) for g, c, n in keys]


# --- matting helpers ----------------------------------------------------------------------------

def _disk(radius: int) -> np.ndarray:
    """A disk of ``radius`` pixels as a structuring element (2 radius + 1 square)."""
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (xx**2 + yy**2 <= radius**2).astype(np.uint8)


def make_trimap(alpha: np.ndarray, band: int | tuple[int, int], rng: np.random.Generator | None = None) -> np.ndarray:
    """A trimap of ``alpha``, uint8 (H, W): 0 = background, 128 = unknown, 255 = foreground.

    Convention (Deep Image Matting's, as its ports compute it): the foreground is where alpha is 1, *eroded* by a
    disk of radius ``band`` pixels; the unknown region is where alpha > 0, *dilated* by the same disk, less that
    foreground; the rest is background. So the unknown region covers every partly transparent pixel (hair, soft
    edges, the semi-transparent cloth) and reaches ``band`` pixels beyond it on both sides: a hard edge gets a band
    ``2 band`` pixels wide, a soft edge of width ``w`` one of about ``w + 2 band``. ``band = 0`` marks exactly the
    soft pixels unknown. The image border does not erode the foreground (a torso cut by the frame stays foreground).

    ``band = (low, high)`` draws the radius uniformly from low..high (inclusive) from ``rng`` at each call: random
    trimaps, as DIM trains with. The ports differ in detail: huochaitiantang/pytorch-deep-image-matting erodes and
    dilates alpha with a square kernel of 20-39 px (so 10-20 px each side); foamliu/Deep-Image-Matting only dilates
    (1-20 iterations of a 3x3 ellipse) and keeps every alpha = 1 pixel as foreground. Here the kernel is a disk, so
    the band is ``band`` pixels in every direction. Alpha may be float in [0, 1] or uint8 in 0..255; values within
    half an 8-bit step of 0 or 1 count as 0 or 1, so a resized matte gives the trimap of the original.
    """
    alpha = np.asarray(alpha)
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be one matte of shape (H, W), not {alpha.shape}")
    if np.issubdtype(alpha.dtype, np.integer):
        alpha = alpha / 255.0
    if isinstance(band, tuple):
        if rng is None:
            raise ValueError(f"band={band} draws a random band width: pass rng=np.random.default_rng(seed)")
        low, high = band
        radius = int(rng.integers(low, high + 1))
    else:
        radius = int(band)
    if radius < 0:
        raise ValueError(f"band must be >= 0 pixels, not {radius}")
    some = (alpha > LEVEL).astype(np.uint8)  # the person, however faint
    full = (alpha >= 1 - LEVEL).astype(np.uint8)  # surely the person
    if radius > 0:
        some = cv2.dilate(some, _disk(radius))
        full = cv2.erode(full, _disk(radius))  # OpenCV pads erosion with "foreground": the border does not erode
    trimap = np.full(alpha.shape, BACKGROUND, np.uint8)
    trimap[some > 0] = UNKNOWN
    trimap[full > 0] = FOREGROUND
    return trimap


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The compositing equation I = alpha F + (1 - alpha) B, per pixel and channel.

    ``foreground`` F and ``background`` B: float arrays of one shape (..., H, W, C), e.g. RGB in [0, 1];
    ``alpha``: float (..., H, W) or (..., H, W, 1) in [0, 1]. Integer images are refused (convert them with
    ``image.astype(np.float32) / 255``): uint8 arithmetic would wrap around or round. Matting inverts this equation:
    from the 3 values of I it must find 7 unknowns (F, B and alpha), which is why it needs a trimap or a prior.
    """
    arrays = {"foreground": np.asarray(foreground), "alpha": np.asarray(alpha), "background": np.asarray(background)}
    for name, array in arrays.items():
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"{name} must be a float array, not {array.dtype}; convert it with "
                            f"array.astype(np.float32) / 255 (and alpha to [0, 1])")
    fg, a, bg = arrays["foreground"], arrays["alpha"], arrays["background"]
    if fg.shape != bg.shape:
        raise ValueError(f"foreground {fg.shape} and background {bg.shape} must have the same shape (..., H, W, C)")
    if a.shape == fg.shape[:-1]:
        a = a[..., None]
    elif a.shape != fg.shape[:-1] + (1,):
        raise ValueError(f"alpha {a.shape} must be {fg.shape[:-1]} or {fg.shape[:-1] + (1,)} for images {fg.shape}")
    if a.size and (a.min() < 0 or a.max() > 1):
        raise ValueError(f"alpha must lie in [0, 1], found [{a.min()}, {a.max()}] (an 8-bit matte? divide it by 255)")
    return a * fg + (1 - a) * bg


# --- the dataset --------------------------------------------------------------------------------

def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``array`` resized to ``size`` = (height, width): area averaging when shrinking, bilinear when enlarging.
    Both suit a matte as well as a photo: alpha is a continuous quantity, not a class id."""
    height, width = size
    shrink = height < array.shape[0] or width < array.shape[1]
    return cv2.resize(array, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class AISegment(Dataset):
    """AISegment photos with their alpha mattes and trimaps.

    An item is ``(image, target)``. Without a ``transform`` the image is a float tensor (3, H, W) in [0, 1]; with
    one, whatever the transform returns as ``"image"`` (a tensor after ``ToTensorV2``). ``target`` holds ``alpha``
    (float32 tensor (H, W) in [0, 1]), ``trimap`` (uint8 tensor (H, W) of 0 / 128 / 255, made from that alpha by
    :func:`make_trimap` after any resizing and augmentation, so it always fits) and ``index`` (the pair's place among
    all pairs of the folder, the same in every split).

    ``size`` = (height, width) resizes photo and matte first (the real ones are 800 x 600; keep 4 : 3). ``transform``
    is an albumentations pipeline called as ``transform(image=uint8 HxWx3, mask=float32 HxW alpha)``: the matte is
    its ``mask``, so flips, crops and warps move it with the photo, and colour changes leave it alone. Geometric
    transforms resize masks with nearest neighbour unless told otherwise: pass ``mask_interpolation=cv2.INTER_LINEAR``
    to them to keep soft edges soft. ``trimap_band``: the trimap's band in pixels at the item's size, or
    ``(low, high)`` for a random band per item (drawn, like the augmentation, from torch's generator, so a resumed
    run repeats it).

    Splits, by group (see the module docstring): "test" is a seeded ``test_fraction`` of the groups, "monitor" a
    seeded ``monitor_fraction`` of the other groups (it chooses the best epoch, so "test" chooses nothing), "train"
    the rest, "all" every pair. They depend only on the group names and ``seed``. There is no official split.
    """

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None,
                 size: tuple[int, int] | None = None, trimap_band: int | tuple[int, int] = 5,
                 test_fraction: float = 0.1, monitor_fraction: float = 0.1, seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
        check_monitor_fraction(split, monitor_fraction, "training groups")
        self.folder = find_dataset_folder(root)
        self.transform, self.size, self.trimap_band = transform, size, trimap_band
        every = find_pairs(self.folder)
        groups = sorted({p.group for p in every})
        if split != "all" and len(groups) < 2:
            raise ValueError(f"{self.folder} holds one group ({groups[0]}): splits by group need at least two; "
                             f"use split='all'")
        chosen, self.split_source = split_names(groups, split, test_fraction, monitor_fraction, seed, what="groups")
        self.groups = chosen
        keep = set(chosen)
        self.indices = [i for i, p in enumerate(every) if p.group in keep]
        self.pairs = [every[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int):
        pair = self.pairs[index]
        image, alpha = read_image(pair.image), read_matte(pair.matte)
        if image.shape[:2] != alpha.shape:
            raise ValueError(f"{pair.matte} is {alpha.shape[1]}x{alpha.shape[0]} but its photo {pair.image.name} is "
                             f"{image.shape[1]}x{image.shape[0]}; a photo and its matte must be the same size")
        if self.size is not None:
            image, alpha = _resize(image, self.size), _resize(alpha, self.size)
        if self.transform is None:
            image = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        else:
            reseed(self.transform)  # augmentation drawn from torch's generator: a resumed run repeats it exactly
            out = self.transform(image=image, mask=alpha)
            image, alpha = out["image"], out["mask"]
        alpha = np.clip(np.asarray(alpha, dtype=np.float32), 0, 1)  # a cubic warp may overshoot a little
        rng = None
        if isinstance(self.trimap_band, tuple):
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        trimap = make_trimap(alpha, self.trimap_band, rng)
        target = {"alpha": torch.from_numpy(np.ascontiguousarray(alpha)), "trimap": torch.from_numpy(trimap),
                  "index": self.indices[index]}
        return image, target


# --- the synthetic twin -------------------------------------------------------------------------

SKIN = np.array([[241, 204, 177], [224, 172, 138], [198, 134, 99], [141, 85, 60], [92, 58, 43]], np.float32)
HAIR = np.array([[20, 16, 14], [60, 38, 25], [110, 70, 40], [200, 160, 100], [150, 60, 30]], np.float32)
SUPERSAMPLE = 4  # shapes are drawn 4x larger and averaged down: edges get fractional coverage, as real mattes do


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a small random grid resized bicubically."""
    grid = rng.random((cells, max(2, cells * width // height))).astype(np.float32)
    return np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0, 1)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(20, 235, 3).astype(np.float32)


def _background(rng: np.random.Generator, height: int, width: int, near: np.ndarray) -> np.ndarray:
    """A background: a gradient, a texture, bokeh-like blur, or a colour close to ``near`` (the hard case)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.choice(["gradient", "texture", "bokeh", "similar"], p=[0.3, 0.3, 0.2, 0.2])
    if kind == "similar":
        base = np.clip(near + rng.normal(0, 12, 3), 0, 255)
        return base * (0.85 + 0.3 * _smooth_noise(rng, height, width, 3))[..., None]
    angle = rng.uniform(0, np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1) / 2.5
    a, b = _random_colour(rng), _random_colour(rng)
    image = a * (1 - ramp[..., None]) + b * ramp[..., None]
    if kind == "texture":  # stripes or tiles, and blotches
        period = rng.uniform(4, 12)
        stripes = 0.5 + 0.5 * np.sin((xx * np.cos(angle) - yy * np.sin(angle)) * 2 * np.pi / period)
        blotches = 0.7 + 0.6 * _smooth_noise(rng, height, width, 6)
        image = image * (0.75 + 0.25 * stripes[..., None]) * blotches[..., None]
    elif kind == "bokeh":  # out-of-focus lights
        for _ in range(int(rng.integers(4, 10))):
            cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(3, 10)
            spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))[..., None]
            image = image * (1 - 0.6 * spot) + 0.6 * spot * _random_colour(rng)
    return image


def _person(rng: np.random.Generator, height: int, width: int, background: np.ndarray):
    """``(foreground colour F (H, W, 3) float, alpha (H, W) float, clothes colour)`` of a half-body portrait.

    Each part's outline is drawn 4x finer and averaged down to its coverage of every pixel (fractional at the
    edges); the parts are then stacked back to front with the "over" operator, which is the compositing equation
    applied once per layer: long hair, torso, neck, face, a translucent shawl, loose hair strands.
    """
    s = SUPERSAMPLE
    yy, xx = np.ogrid[0:height * s, 0:width * s]
    yy, xx = (yy.astype(np.float32) + 0.5) / s, (xx.astype(np.float32) + 0.5) / s  # pixel coordinates

    def coverage(mask: np.ndarray) -> np.ndarray:  # the share of each pixel's s x s samples inside the outline
        return cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)

    cx = width * rng.uniform(0.42, 0.58)
    cy = height * rng.uniform(0.27, 0.36)
    rx = width * rng.uniform(0.13, 0.17)
    ry = rx * rng.uniform(1.2, 1.35)
    tilt = rng.uniform(-0.2, 0.2)
    u, v = (xx - cx) * np.cos(tilt) + (yy - cy) * np.sin(tilt), -(xx - cx) * np.sin(tilt) + (yy - cy) * np.cos(tilt)
    face = (u / rx) ** 2 + (v / ry) ** 2 <= 1
    hair_cap = (u / (1.12 * rx)) ** 2 + ((v + 0.12 * ry) / (1.06 * ry)) ** 2 <= 1
    if rng.random() < 0.5:  # long hair down to the shoulders
        hair_cap |= (np.abs(u) <= 1.12 * rx) & (v >= 0) & (v <= ry * rng.uniform(1.4, 2.2))
    neck = (np.abs(xx - cx) <= 0.45 * rx) & (yy >= cy) & (yy <= cy + 1.5 * ry)
    top = cy + ry * rng.uniform(1.1, 1.3)  # the shoulders
    half = width * rng.uniform(0.32, 0.46)
    depth = height * rng.uniform(0.08, 0.14)
    shift = rng.uniform(-0.05, 0.05) * width
    torso = (((xx - cx - shift) / half) ** 2 + ((yy - top - depth) / depth) ** 2 <= 1) | \
            ((np.abs(xx - cx - shift) <= half) & (yy >= top + depth))

    skin = np.clip(SKIN[rng.integers(len(SKIN))] + rng.normal(0, 8, 3), 0, 255)
    hair = np.clip(HAIR[rng.integers(len(HAIR))] + rng.normal(0, 6, 3), 0, 255)
    clothes = _random_colour(rng)
    if rng.random() < 0.25:  # clothes the colour of the background behind them: hard for a segmenter
        clothes = np.clip(background[-height // 6:].reshape(-1, 3).mean(0) + rng.normal(0, 10, 3), 0, 255)
    layers = [(coverage(hair_cap), hair), (coverage(torso), clothes), (coverage(neck), skin * 0.9),
              (coverage(face), skin)]
    if rng.random() < 0.7:  # a translucent shawl over the shoulders, hanging beyond them: background shows through
        y0 = top + depth * rng.uniform(0.2, 1.0) + rng.uniform(-0.1, 0.1) * (xx - cx)
        thickness = height * rng.uniform(0.07, 0.12)
        reach = half + width * rng.uniform(0.06, 0.15)
        shawl = (yy >= y0) & (yy <= y0 + thickness) & (np.abs(xx - cx - shift) <= reach)
        layers.append((coverage(shawl) * rng.uniform(0.35, 0.7), _random_colour(rng)))
    # hair strands: curves a fraction of a pixel wide once averaged, so their alpha is fractional
    strands = np.zeros((height * s, width * s), np.uint8)
    for _ in range(int(rng.integers(12, 30))):
        angle = rng.uniform(-np.pi * 0.95, -np.pi * 0.05) + tilt  # out of the top half of the head
        start = np.array([cx + 1.1 * rx * np.cos(angle), cy - 0.12 * ry + 1.04 * ry * np.sin(angle)])
        bend = rng.uniform(-0.8, 0.8) * np.linspace(0, 1, 12)
        steps = height * rng.uniform(0.04, 0.12) * np.linspace(0, 1, 12)
        points = start + steps[:, None] * np.stack([np.cos(angle + bend), np.sin(angle + bend)], axis=1)
        cv2.polylines(strands, [np.round(points * s).astype(np.int32)], False, 1, thickness=int(rng.integers(1, 3)))
    layers.append((coverage(strands) * rng.uniform(0.6, 0.95), hair))

    texture = 0.85 + 0.3 * _smooth_noise(rng, height, width, 5)[..., None]
    ys, xs = np.mgrid[0:height, 0:width]
    shade = np.clip(1.1 - 0.25 * np.hypot(xs - cx, ys - cy) / height, 0.6, 1.1)[..., None]
    colour = np.zeros((height, width, 3), np.float32)  # premultiplied: alpha * F
    cover = np.zeros((height, width, 1), np.float32)
    for opacity, tint in layers:
        opacity = opacity[..., None]
        colour = opacity * tint * shade * texture + (1 - opacity) * colour  # "over"
        cover = opacity + (1 - opacity) * cover
    sigma = rng.uniform(0.3, 0.9)  # a little defocus: soft edges a pixel or two wide, as in the real mattes
    colour, cover = cv2.GaussianBlur(colour, (0, 0), sigma), cv2.GaussianBlur(cover[..., 0], (0, 0), sigma)
    foreground = np.where(cover[..., None] > 1e-4, colour / np.maximum(cover, 1e-4)[..., None], 0)
    return np.clip(foreground, 0, 255), np.clip(cover, 0, 1), clothes


def _twin_sample(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(photo uint8 RGB, matte uint8 RGBA)``: a person composited over a background."""
    backdrop = _background(rng, height, width, near=_random_colour(rng))
    foreground, alpha, clothes = _person(rng, height, width, backdrop)
    if rng.random() < 0.2:  # the background the colour of the clothes
        backdrop = _background(rng, height, width, near=clothes)
    alpha8 = np.round(alpha * 255).astype(np.uint8)
    a = alpha8.astype(np.float32)[..., None] / 255  # composite with the alpha as stored, so photo and matte agree
    photo = composite(foreground, a[..., 0], backdrop) + rng.normal(0, 3, (height, width, 3))
    matte = np.dstack([np.where(alpha8[..., None] > 0, foreground, 0), alpha8]).round().astype(np.uint8)
    return np.clip(photo, 0, 255).round().astype(np.uint8), matte


APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(56)  # header of a macOS "._" file


def write_twin(root: str | Path, n_groups: int = 12, clips_per_group: int = 2, images_per_clip: int = 4,
               height: int = 128, width: int = 96, seed: int = 0) -> Path:
    """Write a small AISegment look-alike into ``root`` in the layout of the Kaggle copy; returns ``root``.

    ``clip_img/<group>/clip_<n>/<group>-<number>.jpg`` (JPEG, quality 90) and
    ``matting/<group>/matting_<n>/<group>-<number>.png`` (RGBA PNG: RGB = the person's colour, alpha = the matte),
    with group names like the real timestamps (``1803151818``) and clip ``n`` holding numbers ``1000 n`` to
    ``1000 n + 999``; and ``matting_human_half/`` with a copy of both trees, as in the Kaggle copy. Portraits are
    ``width`` x ``height`` (the real 600 x 800, scaled: keep 3 : 4): a head, hair, neck and shoulders with soft
    edges, loose hair strands of fractional alpha, often a translucent shawl hanging beyond the shoulders, over
    gradients, textures, out-of-focus lights or colours close to the person's. Like the real copy, it has hidden
    macOS files (``._<name>.jpg`` in a clip folder, ``._matting_00000000`` beside the matting folders) and one photo
    without a matte. Deterministic for a given ``seed``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    stamps = set()
    while len(stamps) < n_groups:  # yyMMddHHmm in March 2018
        stamps.add(f"1803{rng.integers(10, 29):02d}{rng.integers(9, 22):02d}{rng.integers(0, 60):02d}")
    groups = sorted(stamps)
    for g, group in enumerate(groups):
        for clip in range(clips_per_group):
            photos = root / "clip_img" / group / f"clip_{clip:08d}"
            mattes = root / "matting" / group / f"matting_{clip:08d}"
            photos.mkdir(parents=True, exist_ok=True)
            mattes.mkdir(parents=True, exist_ok=True)
            unpaired = g == n_groups - 1 and clip == clips_per_group - 1  # one photo here has no matte
            count = images_per_clip + unpaired
            numbers = sorted(rng.choice(1000, count, replace=False) + 1000 * clip)
            for k, number in enumerate(numbers):
                name = f"{group}-{number:08d}"
                photo, matte = _twin_sample(rng, height, width)
                Image.fromarray(photo, "RGB").save(photos / f"{name}.jpg", quality=90)
                if not (unpaired and k == count - 1):
                    Image.fromarray(matte, "RGBA").save(mattes / f"{name}.png")
            if g == 0 and clip == 0:  # macOS metadata beside a photo, as in clip_img/1803241125/clip_00000000
                (photos / f"._{group}-{numbers[0]:08d}.jpg").write_bytes(APPLE_DOUBLE)
        if g == 1:  # and beside the matting folders, as matting/1803201916/._matting_00000000
            (root / "matting" / group / "._matting_00000000").write_bytes(APPLE_DOUBLE)
    for tree in ("clip_img", "matting"):
        shutil.copytree(root / tree, root / DUPLICATE / tree, dirs_exist_ok=True)
    return root


INFO = DatasetInfo(
    name="aisegment",
    title="AISegment.com Matting Human: about 34,400 half-body portraits (600x800) with alpha mattes",
    notebook="01",
    marker="clip_img/*/clip_00000000",
    kaggle="laurentmih/aisegmentcom-matting-human-datasets",
    licence="no licence stated for the photos (from Flickr, Baidu and Taobao; their owners keep the rights): use it "
            "for research and teaching. github.com/aisegmentcn/matting_human_datasets carries an MIT text (a "
            "template naming the UK Ministry of Justice) that covers that repository's files",
    citation="AISegment.com (Beijing Wanxing Convergence Technology), Matting Human Datasets, 2019, "
             "github.com/aisegmentcn/matting_human_datasets",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
