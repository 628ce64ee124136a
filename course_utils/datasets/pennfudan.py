"""Penn-Fudan pedestrians (instance segmentation): the torch Dataset over the real layout, and its synthetic twin.

Layout of the official zip and of the Kaggle copy ``psvishnu/pennfudan-database-for-pedestrian-detection-zip``
(which unpacks to ``<download>/PennFudanPed/``; other copies nest it deeper, so the folder is searched for)::

    PennFudanPed/PNGImages/<name>.png       170 RGB photos: FudanPed00001-00074 and PennPed00001-00096
    PennFudanPed/PedMasks/<name>_mask.png   8-bit greyscale PNG (mode "L"): 0 = background, k = pedestrian k
    PennFudanPed/Annotation/<name>.txt      "PASCAL Annotation Version 1.00" text, one box per pedestrian
    PennFudanPed/readme.txt                 the format, in words
    PennFudanPed/added-object-list.txt      "<name>.png<TAB><object number>": pedestrians labelled after the
                                            paper (small or occluded ones), tab-separated, one per line

Format pitfalls:

* A mask holds **instance ids**, not classes: the pixels of pedestrian 1 are 1, of pedestrian 2 are 2, so
  the file looks black in an image viewer. Read it as it is (``np.asarray(Image.open(path))``): ``mask > 0``
  or ``convert("1")`` merges every pedestrian into one, and ``convert("RGB")`` or ``convert("L")`` of a
  colour (palette) copy turns ids into colours or grey levels. The ids need not be 1..N without gaps, so
  they are taken from the mask itself, in increasing order.
* The boxes of ``Annotation/*.txt`` count pixels **from 1** and include their last pixel
  (``# Top left pixel co-ordinates : (1, 1)``); see :func:`read_annotation` for the conversion.

Box convention. Boxes are ``(x1, y1, x2, y2)`` float32 with ``x2`` one past the last column of the mask
(**x2 = max column + 1**), so ``x2 - x1`` is the width in pixels. ``torchvision.ops.masks_to_boxes``, which
the torchvision PennFudan tutorial uses, returns the last column itself (x2 = max column); we add 1 to it.
Why: these are the continuous coordinates that torchvision's v2 transforms move (a flip maps x to W - x:
the flipped box is then exactly the box of the flipped mask, while the tutorial's boxes end up one pixel
off), and they are COCO's (its bbox width is max - min + 1). On FudanPed00001 the tutorial prints the boxes
[159, 181, 301, 430] and [419, 170, 534, 485]; ours are [159, 181, 302, 431] and [419, 170, 535, 486], and
the annotation file says (160, 182) - (302, 431) and (420, 171) - (535, 486): the same boxes, 1-based.

``area`` is the **mask** area in pixels, as in COCO, where pycocotools uses it to split small / medium /
large objects (below 32², up to 96², above). The tutorial stores the box area instead, so its per-size
numbers are not COCO's; AP over all sizes does not use ``area`` at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.ops import masks_to_boxes
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from course_utils.datasets import (
    DamagedFileError,
    DatasetInfo,
    check_monitor_fraction,
    find_folder,
    read_image,
    report_unused,
    split_names,
)

TWIN_VERSION = 1
PEDESTRIAN = 1  # the label of every instance; torchvision's detection models keep 0 for the background
N_IMAGES, N_FUDAN = 170, 74  # in the real dataset: 74 from Fudan, 96 from Penn
TUTORIAL_TEST_IMAGES = 50  # the torchvision tutorial tests on 50 of the 170 images (a random, unseeded choice)
SPLITS = ("train", "monitor", "val", "all")


def find_dataset_folder(root: str | Path) -> Path:
    """The ``PennFudanPed`` folder at or below ``root``: the one that holds ``PNGImages/`` and ``PedMasks/``."""
    return find_folder(Path(root), lambda f: (f / "PNGImages").is_dir() and (f / "PedMasks").is_dir(),
                       "both PNGImages/ and PedMasks/ (PennFudanPed/PNGImages and PennFudanPed/PedMasks, as in the "
                       "official zip and the Kaggle copy)")


# --- reading ------------------------------------------------------------------------------------

def read_instance_mask(path: str | Path) -> np.ndarray:
    """A PedMasks file as a uint8 array (H, W) of pedestrian ids, 0 = background.

    The dataset's masks are 8-bit greyscale PNGs (mode "L"), whose values are the ids. A copy re-saved as
    a palette PNG (mode "P", to see the pedestrians in colour) works too: ``np.asarray`` gives its palette
    indices, which are the ids, not the colours. Any other mode is refused: its ids are lost.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode, ids = image.mode, np.array(image)
    except (OSError, SyntaxError, ValueError) as error:  # PIL: not an image, truncated, failed CRC
        raise DamagedFileError(f"{path}: cannot decode this mask ({error}). It is damaged or incomplete: download "
                               f"or copy the dataset again.") from error
    if mode not in ("L", "P"):
        hint = ("a colour copy holds colours, not ids (was it saved after convert('RGB')?)" if mode.startswith("RGB")
                else "a binary mask has no ids, so pedestrians cannot be told apart" if mode == "1"
                else "this loader reads 8-bit ids")
        raise ValueError(f"{path}: expected a single-channel 8-bit PNG of pedestrian ids (mode 'L', as in the "
                         f"dataset, or 'P'), found mode {mode!r}: {hint}. Use the original PedMasks files.")
    return ids


def split_instances(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(masks, instance_ids)``: one {0, 1} uint8 mask (N, H, W) per id present in ``ids`` other than 0,
    in increasing id order. The ids are read from the mask, so gaps ({0, 1, 3}) are kept as they are."""
    instance_ids = np.unique(ids)
    instance_ids = instance_ids[instance_ids != 0]
    return (ids[None] == instance_ids[:, None, None]).astype(np.uint8), instance_ids


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """The box (x1, y1, x2, y2) of each mask (N, H, W), float32, with x2 = max column + 1 and
    y2 = max row + 1 (see the module docstring): ``masks_to_boxes`` plus one on x2 and y2."""
    return masks_to_boxes(torch.as_tensor(masks)) + torch.tensor([0.0, 0.0, 1.0, 1.0])


_COUNT_LINE = re.compile(r"Objects with ground truth\s*:\s*(\d+)")
_BOX_LINE = re.compile(r'Bounding box for object\s+(\d+)\s+"([^"]*)"\s*\(Xmin,\s*Ymin\)\s*-\s*\(Xmax,\s*Ymax\)\s*:'
                       r"\s*\((\d+),\s*(\d+)\)\s*-\s*\((\d+),\s*(\d+)\)")


def read_annotation(path: str | Path) -> list[tuple[int, int, int, int]]:
    """The boxes of an ``Annotation/<name>.txt`` file, in the dataset's convention (0-based, x2 one past the
    last pixel), in the file's object order.

    The file gives ``(Xmin, Ymin) - (Xmax, Ymax)`` counting pixels from 1 and including the last one, so
    ``x1 = Xmin - 1``, ``y1 = Ymin - 1`` (0-based first pixel) and ``x2 = Xmax``, ``y2 = Ymax`` (0-based last
    pixel Xmax - 1, plus one). The number of boxes must match the line ``Objects with ground truth : N``.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: expected a plain-text annotation ({error})") from error
    count, objects = None, []
    for number, line in enumerate(lines, start=1):
        if (found := _COUNT_LINE.match(line.strip())) and count is None:
            count = int(found.group(1))
        elif line.strip().startswith("Bounding box"):
            found = _BOX_LINE.match(line.strip())
            if not found:
                raise ValueError(f"{path}, line {number}: expected 'Bounding box for object <k> \"<label>\" "
                                 f"(Xmin, Ymin) - (Xmax, Ymax) : (x, y) - (x, y)', found {line.strip()!r}")
            k, _, xmin, ymin, xmax, ymax = found.groups()
            xmin, ymin, xmax, ymax = int(xmin), int(ymin), int(xmax), int(ymax)
            if not (1 <= xmin <= xmax and 1 <= ymin <= ymax):
                raise ValueError(f"{path}, line {number}: expected 1 <= Xmin <= Xmax and 1 <= Ymin <= Ymax "
                                 f"(pixels count from 1 in this format), found {found.group(0)!r}")
            objects.append((int(k), (xmin - 1, ymin - 1, xmax, ymax)))
    if count is None:
        raise ValueError(f"{path}: no line 'Objects with ground truth : N'; is this a PennFudanPed annotation?")
    if [k for k, _ in objects] != list(range(1, count + 1)):
        raise ValueError(f"{path}: the header announces {count} objects, numbered 1 to {count}; the boxes are "
                         f"numbered {[k for k, _ in objects]}. The file is incomplete or edited: restore it.")
    return [box for _, box in objects]


# --- the dataset --------------------------------------------------------------------------------

def _png_names(folder: Path, suffix: str = "") -> dict[str, Path]:
    """``{name: path}`` of the ``<name><suffix>.png`` files in ``folder``; other entries are reported."""
    files, others = {}, []
    for path in sorted(folder.iterdir()):
        if path.name.endswith(f"{suffix}.png") and path.is_file():
            files[path.name[: -len(f"{suffix}.png")]] = path
        elif not path.name.startswith("."):
            others.append(path.name)
    report_unused(folder, f"entries that are not <name>{suffix}.png files", others)
    return files


class PennFudan(Dataset):
    """Penn-Fudan images and their pedestrians, in torchvision's detection format.

    An item is ``(image, target)``: the image a float tensor (3, H, W) in [0, 1], the target a dict with
    ``boxes`` (N, 4) float32 (x1, y1, x2, y2; see the module docstring), ``labels`` (N,) int64 (all 1,
    pedestrian), ``masks`` (N, H, W) uint8 in {0, 1}, ``image_id`` (int: the image's place among all the
    images of the folder in name order, the same in every split), ``area`` (N,) float32 (mask pixels) and
    ``iscrowd`` (N,) int64 zeros. Images differ in size: batch them with :func:`collate`.

    Splits: there is no official one. "val" is a seeded ``val_fraction`` of the images, "train" the rest,
    "all" every image. The default fraction holds out 50 of the 170 images, the size of the torchvision
    tutorial's test set (it takes the last 50 of an unseeded ``torch.randperm``, so its images cannot be
    reproduced: compare with its published numbers knowing that). ``monitor_fraction`` > 0 moves a seeded
    share of the training images into "monitor", for choosing the best epoch, so that "val" chooses nothing.
    The split depends only on the image names and ``seed``: it is the same on every machine.

    ``transform``: a torchvision.transforms.v2 pipeline called as ``transform(image, target)``, with
    ``image`` a ``tv_tensors.Image`` (uint8) and ``target`` holding ``boxes`` (``tv_tensors.BoundingBoxes``,
    XYXY, ``canvas_size`` set), ``masks`` (``tv_tensors.Mask``), ``labels`` and ``image_id``; it returns
    both, so boxes and masks move with the image (see :func:`train_transform`). Afterwards, the dataset
    drops the pedestrians whose mask was cropped away, recomputes every box from its mask (a cropped
    pedestrian gets the box of what is still visible) and computes ``area`` and ``iscrowd``; a uint8 image
    is scaled to [0, 1]. v2 transforms draw their randomness from torch's generator, which ``train.fit``
    checkpoints and DataLoader workers are seeded from, so a resumed run repeats them: there is nothing to
    reseed (``datasets.reseed`` is for albumentations and MONAI, which keep generators of their own).
    """

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None,
                 val_fraction: float = TUTORIAL_TEST_IMAGES / N_IMAGES, seed: int = 0, monitor_fraction: float = 0.0):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), not {val_fraction}")
        check_monitor_fraction(split, monitor_fraction, "training images")
        self.folder = find_dataset_folder(root)
        self.transform = transform
        images = _png_names(self.folder / "PNGImages")
        masks = _png_names(self.folder / "PedMasks", suffix="_mask")
        if not images:
            raise FileNotFoundError(f"no .png images in {self.folder / 'PNGImages'}")
        missing = sorted(set(images) - set(masks))
        if missing:
            raise FileNotFoundError(f"{len(missing)} images have no mask, e.g. {self.folder / 'PedMasks' / missing[0]}"
                                    f"_mask.png is missing (each PNGImages/<name>.png needs PedMasks/<name>_mask.png); "
                                    f"the copy is incomplete: download it again")
        report_unused(self.folder / "PedMasks", "masks without an image", sorted(set(masks) - set(images)))
        every = sorted(images)
        self.image_ids = {name: i for i, name in enumerate(every)}
        names, self.split_source = split_names(every, split, val_fraction, monitor_fraction, seed, held_out="val")
        self.names = names
        self.image_paths = [images[n] for n in names]
        self.mask_paths = [masks[n] for n in names]
        # not read by the items (the boxes come from the masks); for read_annotation
        self.annotation_paths = [self.folder / "Annotation" / f"{n}.txt" for n in names]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int):
        image_path, mask_path = self.image_paths[index], self.mask_paths[index]
        image = read_image(image_path)
        ids = read_instance_mask(mask_path)
        if image.shape[:2] != ids.shape:
            raise ValueError(f"{mask_path} is {ids.shape[1]}x{ids.shape[0]} but its image {image_path.name} is "
                             f"{image.shape[1]}x{image.shape[0]}; image and mask must be the same size")
        masks, _ = split_instances(ids)
        if len(masks) == 0:
            raise ValueError(f"{mask_path} has no pedestrian (every pixel is 0), but every Penn-Fudan image shows at "
                             f"least one: the mask is blank or was overwritten. Restore it from the dataset.")
        image = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        masks = tv_tensors.Mask(torch.from_numpy(masks))
        target = {"boxes": tv_tensors.BoundingBoxes(boxes_from_masks(masks), format="XYXY",
                                                    canvas_size=tuple(image.shape[-2:])),
                  "masks": masks,
                  "labels": torch.full((len(masks),), PEDESTRIAN, dtype=torch.int64),
                  "image_id": self.image_ids[self.names[index]]}
        if self.transform is not None:
            image, target = self.transform(image, target)
        return _finish(image, target)


def _finish(image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
    """Check what a transform returned, drop pedestrians with an empty mask, and derive boxes, area and
    iscrowd from the masks (the same for every item, transformed or not)."""
    needed = {"boxes", "masks", "labels"}
    if not (isinstance(image, torch.Tensor) and isinstance(target, dict) and needed <= set(target)):
        raise TypeError("the transform must return (image, target), target a dict with 'boxes', 'masks' and "
                        "'labels'; a torchvision.transforms.v2 pipeline called as transform(image, target) does")
    masks, labels = target["masks"], target["labels"]
    if len(masks) != len(labels) or len(masks) != len(target["boxes"]):
        raise ValueError(f"after the transform there are {len(target['boxes'])} boxes, {len(masks)} masks and "
                         f"{len(labels)} labels: it removed pedestrians from some of them only. End the pipeline "
                         f"with v2.SanitizeBoundingBoxes(), which removes each one from all three.")
    if image.dtype == torch.uint8:
        image = F.to_dtype(image, torch.float32, scale=True)
    keep = masks.flatten(1).amax(dim=1) > 0  # a crop can leave a pedestrian's box but none of its pixels
    masks, labels = tv_tensors.Mask(masks[keep]), labels[keep]
    boxes = tv_tensors.BoundingBoxes(boxes_from_masks(masks), format="XYXY", canvas_size=tuple(image.shape[-2:]))
    area = masks.flatten(1).sum(dim=1).to(torch.float32)
    iscrowd = torch.zeros(len(masks), dtype=torch.int64)
    return image, {**target, "boxes": boxes, "masks": masks, "labels": labels, "area": area, "iscrowd": iscrowd}


def collate(batch: list) -> tuple[tuple, tuple]:
    """``(images, targets)`` as tuples: images of different sizes cannot be stacked into one tensor, and
    torchvision's detection models take a list of images and a list of target dicts."""
    return tuple(zip(*batch))


def train_transform() -> v2.Compose:
    """The augmentation for training, torchvision v2: boxes and masks move with the image.

    Example::

        train = PennFudan(root, "train", transform=train_transform())
        loader = DataLoader(train, batch_size=2, shuffle=True, collate_fn=collate)

    ``RandomIoUCrop`` (SSD's crop) keeps a region that overlaps some pedestrian by at least a drawn IoU,
    and gives an empty box to every pedestrian whose box centre falls outside it (SSD's rule, even if part
    of that pedestrian stays in view). ``SanitizeBoundingBoxes`` then removes each empty box together with
    its mask and label: it finds the target's ``labels`` key by itself, and every ``Mask`` with one row per
    box. It must come after the crop. ``ToDtype`` scales the image, not the masks.
    """
    return v2.Compose([
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomIoUCrop(),
        v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.02),
        v2.ToDtype(torch.float32, scale=True),
        v2.SanitizeBoundingBoxes(),
    ])


# --- the synthetic twin -------------------------------------------------------------------------

SKIN = [(233, 196, 160), (205, 160, 120), (160, 110, 75), (110, 75, 50), (240, 210, 185)]
HAIR = [(30, 25, 20), (60, 40, 25), (110, 80, 45), (20, 20, 20), (150, 140, 130)]
TROUSERS = [(30, 35, 60), (25, 25, 28), (70, 70, 75), (150, 130, 95), (40, 60, 110), (90, 60, 45)]
FACADES = [(150, 90, 70), (190, 175, 150), (120, 120, 125), (170, 150, 120), (95, 85, 80), (200, 195, 185)]
HEADER = ('# Compatible with PASCAL Annotation Version 1.00\n'
          'Image filename : "PennFudanPed/PNGImages/{name}.png"\n'
          'Image size (X x Y x C) : {width} x {height} x 3\n'
          'Database : "The Penn-Fudan-Pedestrian Database"\n'
          'Objects with ground truth : {count} {{ {labels} }}\n'
          '# Note there may be some objects not included in the ground truth list for they are severe-occluded\n'
          '# or have very small size.\n'
          '# Top left pixel co-ordinates : (1, 1)\n')
OBJECT = ('# Details for pedestrian {k} ("{label}")\n'
          'Original label for object {k} "{label}" : "PennFudanPed"\n'
          'Bounding box for object {k} "{label}" (Xmin, Ymin) - (Xmax, Ymax) : ({xmin}, {ymin}) - ({xmax}, {ymax})\n'
          'Pixel mask for object {k} "{label}" : "PennFudanPed/PedMasks/{name}_mask.png"\n\n')


def _street(rng: np.random.Generator, height: int, width: int) -> tuple[Image.Image, int]:
    """A street-like background (facades with windows, pavement, poles, cars, trees) and its ground line."""
    ground = int(height * rng.uniform(0.42, 0.62))
    picture = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(150, 230, 3)))  # sky
    draw = ImageDraw.Draw(picture)
    x = -int(rng.integers(0, 20))
    while x < width:  # facades along the street
        w = int(width * rng.uniform(0.2, 0.5))
        top = int(height * rng.uniform(0.0, 0.3))
        colour = np.array(FACADES[rng.integers(len(FACADES))]) + rng.integers(-20, 21, 3)
        draw.rectangle([x, top, x + w, ground], fill=tuple(int(c) for c in colour.clip(0, 255)))
        step, size = int(rng.integers(9, 16)), int(rng.integers(3, 7))
        window = tuple(int(c) for c in rng.integers(20, 90, 3)) if rng.random() < 0.7 else (200, 210, 220)
        for wx in range(x + 3, x + w - size, step):
            for wy in range(top + 4, ground - size - 4, step):
                draw.rectangle([wx, wy, wx + size, wy + size + 2], fill=window)
        x += w
    pavement = tuple(int(c) for c in rng.integers(100, 170, 3))
    draw.rectangle([0, ground, width, height], fill=pavement)
    for _ in range(int(rng.integers(1, 4))):  # kerb, road markings
        y = int(rng.uniform(ground, height))
        draw.line([0, y, width, y + int(rng.integers(-8, 9))], fill=tuple(int(c) for c in rng.integers(60, 230, 3)),
                  width=int(rng.integers(1, 3)))
    for _ in range(int(rng.integers(2, 6))):  # clutter: poles, cars, trees, bins
        kind, cx = rng.integers(4), float(rng.uniform(0, width))
        base = float(rng.uniform(ground, height * 0.95))
        colour = tuple(int(c) for c in rng.integers(20, 230, 3))
        if kind == 0:  # a pole, as tall as a pedestrian or taller
            draw.rectangle([cx, base - height * rng.uniform(0.5, 0.95), cx + rng.integers(2, 5), base], fill=colour)
        elif kind == 1:  # a car: body, windows, wheels
            w, h = width * rng.uniform(0.25, 0.45), height * rng.uniform(0.12, 0.2)
            draw.rounded_rectangle([cx - w / 2, base - h, cx + w / 2, base - h * 0.25], radius=h * 0.3, fill=colour)
            draw.rectangle([cx - w / 3, base - h * 1.35, cx + w / 3, base - h], fill=(70, 80, 95))
            for wheel in (cx - w / 3, cx + w / 3):
                draw.ellipse([wheel - h * 0.25, base - h * 0.5, wheel + h * 0.25, base], fill=(20, 20, 20))
        elif kind == 2:  # a tree: trunk and crown
            h = height * rng.uniform(0.4, 0.7)
            draw.rectangle([cx - 2, base - h * 0.6, cx + 2, base], fill=(90, 60, 40))
            draw.ellipse([cx - h * 0.3, base - h, cx + h * 0.3, base - h * 0.45],
                         fill=(int(rng.integers(30, 90)), int(rng.integers(90, 160)), int(rng.integers(30, 80))))
        else:  # a bin or a box
            w, h = width * rng.uniform(0.04, 0.1), height * rng.uniform(0.08, 0.2)
            draw.rectangle([cx, base - h, cx + w, base], fill=colour)
    return picture, ground


def _pedestrian(rng: np.random.Generator, canvas: tuple[int, int], feet: tuple[float, float], size: float,
                walking: bool) -> list[tuple[Image.Image, tuple[int, int, int]]]:
    """The parts of a pedestrian as ``[(mask "L", colour), ...]`` in drawing order: legs, shoes, torso,
    arms, head, hair. ``feet`` is the point between the feet, ``size`` the height in pixels."""
    cx, cy = feet
    top = cy - size
    lean = size * rng.uniform(-0.03, 0.03)
    stride = size * (rng.uniform(0.08, 0.16) if walking else rng.uniform(0.03, 0.05))
    skin, hair = SKIN[rng.integers(len(SKIN))], HAIR[rng.integers(len(HAIR))]
    shirt = tuple(int(c) for c in rng.integers(20, 240, 3))
    trousers, shoes = TROUSERS[rng.integers(len(TROUSERS))], (25, 20, 20)
    hip_y, shoulder_y = top + 0.52 * size, top + 0.17 * size
    parts = []

    def part(colour, shape, *args, **kwargs):
        mask = Image.new("L", canvas, 0)
        getattr(ImageDraw.Draw(mask), shape)(*args, fill=255, **kwargs)
        parts.append((mask, colour))

    sign = 1 if rng.random() < 0.5 else -1  # which leg is in front
    legs = [(cx - sign * stride, cy - 0.03 * size), (cx + sign * stride * 0.6, cy - 0.02 * size)]
    for i, (fx, fy) in enumerate(legs):
        hip = (cx + lean + (-1) ** i * 0.05 * size, hip_y)
        part(trousers, "line", [hip, (fx, fy)], width=max(2, int(0.08 * size)))
        part(shoes, "ellipse", [fx - 0.05 * size, fy - 0.02 * size, fx + 0.06 * size, fy + 0.03 * size])
    waist = hip_y + 0.03 * size
    part(shirt, "polygon", [(cx + lean - 0.13 * size, shoulder_y), (cx + lean + 0.13 * size, shoulder_y),
                            (cx + lean + 0.1 * size, waist), (cx + lean - 0.1 * size, waist)])
    swing = size * rng.uniform(0.0, 0.1) if walking else size * 0.02
    for side in (-1, 1):
        shoulder = (cx + lean + side * 0.12 * size, shoulder_y + 0.02 * size)
        hand = (cx + lean + side * (0.15 * size) + side * sign * swing, top + 0.5 * size)
        part(shirt if rng.random() < 0.7 else skin, "line", [shoulder, hand], width=max(2, int(0.055 * size)))
    if rng.random() < 0.3:  # a bag on one side
        side = 1 if rng.random() < 0.5 else -1
        bx = cx + lean + side * 0.16 * size
        part(tuple(int(c) for c in rng.integers(20, 200, 3)), "rectangle",
             [bx - 0.05 * size, top + 0.38 * size, bx + 0.05 * size, top + 0.52 * size])
    head_r = 0.065 * size
    head = (cx + lean * 1.5, top + head_r + 0.01 * size)
    part(skin, "rectangle", [head[0] - head_r * 0.4, head[1], head[0] + head_r * 0.4, shoulder_y + 1])  # neck
    part(skin, "ellipse", [head[0] - head_r * 0.85, head[1] - head_r, head[0] + head_r * 0.85, head[1] + head_r])
    hx, hy = head
    part(hair, "chord", [hx - head_r * 0.9, hy - head_r * 1.05, hx + head_r * 0.9, hy + head_r * 0.9], 180, 360)
    return parts


def _twin_sample(rng: np.random.Generator, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray, list[str], list[bool]]:
    """``(image uint8 (H, W, 3), ids uint8 (H, W), labels, small)``: a street with 1-4 pedestrians, later
    (nearer) ones occluding earlier ones; every pedestrian keeps at least half of itself visible (in the
    image and unoccluded), as the real annotators labelled only those. Ids: 1..N, the full-size pedestrians
    first, then the small ones, as in the real files, where the pedestrians added later come last."""
    height, width = round(int(rng.integers(120, 171)) * scale), round(int(rng.integers(128, 201)) * scale)
    picture, ground = _street(rng, height, width)
    pad = width // 2  # pedestrians are drawn on a larger canvas, so we know how much of them is outside
    canvas = (width + 2 * pad, height + 2 * pad)
    wanted = int(rng.choice([1, 2, 2, 3, 3, 4]))
    people: list[dict] = []
    for _ in range(60):
        if len(people) == wanted:
            break
        small = bool(people) and rng.random() < 0.15  # every image shows at least one full-size pedestrian
        size = height * (rng.uniform(0.22, 0.34) if small else rng.uniform(0.45, 0.9))
        # perspective: the taller a pedestrian, the nearer, so the lower its feet (and the later it is drawn)
        feet = (rng.uniform(-0.08, 1.08) * width, ground + (height - ground) * size / height * rng.uniform(0.8, 1.3))
        walking = bool(rng.random() < 0.7)
        parts = _pedestrian(rng, canvas, (feet[0] + pad, feet[1] + pad), size, walking)
        whole = np.zeros(canvas[::-1], bool)
        for mask, _ in parts:
            whole |= np.asarray(mask) > 0
        candidate = {"parts": parts, "whole": whole, "depth": feet[1], "small": small, "walking": walking}
        trial = sorted([*people, candidate], key=lambda p: p["depth"])  # far ones first
        covered = np.zeros(canvas[::-1], bool)
        visible = []
        for person in reversed(trial):  # nearest first: what it covers is hidden behind it
            visible.append(person["whole"] & ~covered)
            covered |= person["whole"]
        inside = np.zeros(canvas[::-1], bool)
        inside[pad:pad + height, pad:pad + width] = True
        enough = [max(40 * scale**2, 0.5 * person["whole"].sum()) for person in reversed(trial)]
        if all((v & inside).sum() >= least for v, least in zip(visible, enough)):
            people = trial
    if not people:
        raise RuntimeError("the twin writer placed no pedestrian in 60 tries; change the seed")
    image = np.asarray(picture, np.float32).copy()
    owner = np.zeros((height, width), np.int32)  # 1 + place in `people` of the nearest pedestrian, 0 = nobody
    yy = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    for place, person in enumerate(people, start=1):  # far to near: nearer ones paint over
        for mask, colour in person["parts"]:
            inside = np.asarray(mask)[pad:pad + height, pad:pad + width] > 0
            shade = (1.05 - 0.15 * yy) * rng.uniform(0.85, 1.1)  # lit from above
            image = np.where(inside[..., None], np.array(colour, np.float32) * shade, image)
        owner[person["whole"][pad:pad + height, pad:pad + width]] = place
    order = sorted(range(len(people)), key=lambda i: people[i]["small"])  # full-size first, then small ones
    ids = np.zeros((height, width), np.uint8)
    for new_id, i in enumerate(order, start=1):
        ids[owner == i + 1] = new_id
    smooth = Image.fromarray(image.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6 * scale))
    image = np.asarray(smooth, np.float32) + rng.normal(0, 5, (height, width, 3))
    labels = ["PASpersonWalking" if people[i]["walking"] else "PASpersonStanding" for i in order]
    return image.clip(0, 255).astype(np.uint8), ids, labels, [people[i]["small"] for i in order]


def _annotation_text(name: str, ids: np.ndarray, labels: list[str]) -> str:
    """The ``Annotation/<name>.txt`` of a twin image, in the real format, with 1-based boxes from the mask."""
    height, width = ids.shape
    text = HEADER.format(name=name, width=width, height=height, count=len(labels),
                         labels=" ".join(f'"{label}"' for label in labels))
    for k, label in enumerate(labels, start=1):
        rows, cols = np.nonzero(ids == k)
        text += OBJECT.format(k=k, label=label, name=name, xmin=cols.min() + 1, ymin=rows.min() + 1,
                              xmax=cols.max() + 1, ymax=rows.max() + 1)
    return text


README = """Synthetic twin of the Penn-Fudan Database for Pedestrian Detection and Segmentation
(written by course_utils.datasets.pennfudan.write_twin; not real data).
Real dataset: https://www.cis.upenn.edu/~jshi/ped_html/

1. Directory structure, as in the real archive:

PNGImages:   the images, RGB PNG.

PedMasks :   one mask per image, 8-bit greyscale PNG. Pixels are 0 for background, or k > 0 for
the pedestrian numbered k in the annotation.

Annotation:  one text file per image, compatible with PASCAL Annotation Version 1.00; boxes are
(Xmin, Ymin) - (Xmax, Ymax) with the top left pixel at (1, 1).

2. added-object-list.txt lists, as "<image name><TAB><object index>", the small pedestrians, as the
real file lists the pedestrians labelled after the paper.
"""


def write_twin(root: str | Path, n_images: int = 30, seed: int = 0, scale: float = 1.0) -> Path:
    """Write a small Penn-Fudan look-alike into ``root/PennFudanPed`` in the real format; returns ``root``.

    Street scenes 128-200 px wide and 120-170 px high (the real photos are about 300-1000 px) with 1-4
    pedestrians each (head, hair, neck, torso, arms, legs, shoes, sometimes a bag; walking or standing;
    30-90 % of the image height, some small; some cut by the border, nearer ones hiding part of farther
    ones); ``FudanPed000NN.png`` and ``PennPed000NN.png`` in the real proportion (74 : 96); masks as 8-bit
    greyscale PNGs of ids 1..N; annotation files in the real text format with the masks' boxes; the readme
    and ``added-object-list.txt``. Deterministic for a given ``seed``. ``scale=3`` gives images of the real
    size (384-600 px wide), for timing the loader.
    """
    root = Path(root)
    folder = root / "PennFudanPed"
    for sub in ("PNGImages", "PedMasks", "Annotation"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_fudan = round(n_images * N_FUDAN / N_IMAGES)
    names = [f"FudanPed{i:05d}" for i in range(1, n_fudan + 1)] + \
            [f"PennPed{i:05d}" for i in range(1, n_images - n_fudan + 1)]
    added = []
    for name in names:
        image, ids, labels, small = _twin_sample(rng, scale)
        Image.fromarray(image, "RGB").save(folder / "PNGImages" / f"{name}.png")
        Image.fromarray(ids, "L").save(folder / "PedMasks" / f"{name}_mask.png")
        (folder / "Annotation" / f"{name}.txt").write_text(_annotation_text(name, ids, labels), newline="\n")
        added += [f"{name}.png\t{k}\n" for k, is_small in enumerate(small, start=1) if is_small]
    (folder / "added-object-list.txt").write_text("# image name (\\t) object index\n" + "".join(added), newline="\n")
    (folder / "readme.txt").write_text(README, newline="\n")
    return root


INFO = DatasetInfo(
    name="pennfudan",
    title="Penn-Fudan: 170 street photos with 345 pedestrian instance masks",
    notebook="06",
    marker="PennFudanPed/PedMasks",
    kaggle="psvishnu/pennfudan-database-for-pedestrian-detection-zip",
    url="https://www.cis.upenn.edu/~jshi/ped_html/PennFudanPed.zip",
    licence="research use; copyright retained by the authors (see readme.txt in the archive)",
    citation="Wang, Shi, Song, Shen: Object Detection Combining Recognition and Segmentation, ACCV 2007",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
