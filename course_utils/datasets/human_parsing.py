"""Human parsing (part segmentation of people): the label sets of LIP, CIHP, ATR and Pascal-Person-Part with their
left/right pairs, horizontal flips that swap those labels, flip test-time augmentation, the Dataset over LIP's and
CIHP's layouts, and LIP's synthetic twin.

**Left and right are the person's**, not the image's: LIP's "Left-arm" (14) is the arm on the image's right when the
person faces the camera, on the image's left when we see their back. Flipping a photo turns a left arm into a right
arm, so a flip augmentation must also swap the pair's ids in the label, and flip test-time augmentation must swap
the pair's score channels before averaging; a naive flip teaches the network that left and right are interchangeable.

Label sets, and where we checked them (snapshots named in the course's notes for notebook 05):

* **LIP** (Gong, Liang, Zhang, Shen, Lin, "Look into Person", CVPR 2017): 20 labels, ids 0-19 as in ``LIP`` below;
  30,462 training and 10,000 validation images (the official ``train_id.txt`` and ``val_id.txt``), person crops of
  varied sizes. Flip pairs 14/15 (arms), 16/17 (legs), 18/19 (shoes): Self-Correction-Human-Parsing's
  ``datasets.py`` (``left_idx=[14, 16, 18]``, ``right_idx=[15, 17, 19]``) and LIP_JPPNet's evaluation script.
* **CIHP** (Gong et al., "Instance-level Human Parsing via Part Grouping Network", ECCV 2018): LIP's ids except
  10 = Torso-skin (spelt "Tosor-skin" in the official class list); 28,280 training, 5,000 validation and 5,000 test
  images (test labels withheld); the same flip pairs (CIHP_PGN's ``reverse_label.m``).
* **ATR** (Liang et al., "Deep Human Parsing with Active Template Regression", TPAMI 2015; extended in "Human
  Parsing with Contextualized Convolutional Neural Network", ICCV 2015): 18 labels; the common release has 17,706
  images. Flip pairs 9/10 (shoes), 12/13 (legs), 14/15 (arms) follow from its ids. Self-Correction-Human-Parsing
  hard-codes LIP's pairs only, so its flips would swap ATR's Bag and Scarf (16/17): pairs belong with the label set.
* **Pascal-Person-Part** (Chen et al., "Detect What You Can", CVPR 2014; the person parts of PASCAL-Part, merged
  into 6): 7 labels, no left/right distinction, so a flip changes no id. 1,716 training and 1,817 test images, with
  several people per image. Some re-packaged copies use another id order: check yours against the table.

Layouts read by :class:`HumanParsing`:

* LIP, official archives ``TrainVal_images.zip`` and ``TrainVal_parsing_annotations.zip``::

      TrainVal_images/train_images/<id>.jpg        TrainVal_images/val_images/<id>.jpg
      TrainVal_images/train_id.txt                 TrainVal_images/val_id.txt          (one id per line)
      TrainVal_parsing_annotations/train_segmentations/<id>.png   (8-bit, one channel: the label ids)
      TrainVal_parsing_annotations/val_segmentations/<id>.png

  Copies nest these folders differently (``TrainVal_images/TrainVal_images/train_images``, or a re-packaged
  ``train_val_images/``), so the folders are found by name wherever they are.
* CIHP, ``instance-level_human_parsing/{Training,Validation}/{Images/<id>.jpg, Category_ids/<id>.png}`` (the
  Google Drive archive unpacks it nested twice); ``Categories/`` holds colour pictures of the same labels, not ids.

Photos are read as RGB whatever their stored mode (a greyscale JPEG gets three equal channels). Label PNGs are read
as stored (a palette PNG gives its indices): an RGB label, or an id outside the label set, is an error naming the
file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from course_utils.datasets import (
    DamagedFileError,
    DatasetInfo,
    carve_monitor,
    check_monitor_fraction,
    find_folder,
    read_image,
    report_unused,
    reseed,
)

TWIN_VERSION = 2
IGNORE_INDEX = 255  # padding and unlabelled pixels, ignored by the loss and the metric
SPLITS = ("train", "monitor", "val")


@dataclass(frozen=True)
class LabelSet:
    """A dataset's labels: ``names[i]`` is id ``i``; ``flip_pairs`` are the (left, right) ids a flip swaps."""

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def swap_table(self) -> np.ndarray:
        """A lookup table (256 entries, uint8): ``table[label]`` relabels a label map after a flip. Every id maps
        to itself except the flip pairs, which trade places; 255 (ignored) stays 255."""
        table = np.arange(256, dtype=np.uint8)
        for left, right in self.flip_pairs:
            table[left], table[right] = right, left
        return table

    def channel_order(self) -> list[int]:
        """The order of score channels after a flip: channel ``c`` of the flipped image's scores belongs to class
        ``channel_order()[c]``. A permutation that is its own inverse."""
        return self.swap_table()[: self.num_classes].tolist()


_LIP_NAMES = ("Background", "Hat", "Hair", "Glove", "Sunglasses", "Upper-clothes", "Dress", "Coat", "Socks", "Pants",
              "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe",
              "Right-shoe")
LIP = LabelSet("LIP", _LIP_NAMES, ((14, 15), (16, 17), (18, 19)))
CIHP = LabelSet("CIHP", _LIP_NAMES[:10] + ("Torso-skin",) + _LIP_NAMES[11:], LIP.flip_pairs)
ATR = LabelSet("ATR", ("Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants", "Dress", "Belt",
                       "Left-shoe", "Right-shoe", "Face", "Left-leg", "Right-leg", "Left-arm", "Right-arm", "Bag",
                       "Scarf"), ((9, 10), (12, 13), (14, 15)))
PASCAL_PERSON_PART = LabelSet("Pascal-Person-Part", ("Background", "Head", "Torso", "Upper Arms", "Lower Arms",
                                                     "Upper Legs", "Lower Legs"))
LABEL_SETS = {s.name: s for s in (LIP, CIHP, ATR, PASCAL_PERSON_PART)}


# --- flips --------------------------------------------------------------------------------------

def flip_label(label: np.ndarray, labels: LabelSet) -> np.ndarray:
    """A label map (H, W) flipped left to right, with the left/right ids swapped: the label of the flipped photo."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"a label map is (H, W), not {label.shape}")
    if label.size and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"label ids must lie in 0..255, found {label.min()}..{label.max()}")
    return labels.swap_table()[label[:, ::-1].astype(np.uint8)].astype(label.dtype)


class LeftRightFlip(A.HorizontalFlip):
    """albumentations' horizontal flip for parsing: the photo and the label are mirrored, and the label's
    left/right ids are swapped (``A.HorizontalFlip`` alone would call a mirrored left arm a left arm)."""

    def __init__(self, labels: LabelSet, p: float = 0.5):
        super().__init__(p=p)
        self.labels = labels
        self.table = labels.swap_table()

    def apply_to_mask(self, mask: np.ndarray, **params) -> np.ndarray:
        return self.table[super().apply_to_mask(mask, **params)]

    def apply_to_masks(self, masks: np.ndarray, **params) -> np.ndarray:
        return self.table[super().apply_to_masks(masks, **params)]


def flip_scores(scores: torch.Tensor, labels: LabelSet) -> torch.Tensor:
    """Class scores (N, C, H, W) of a flipped image, mirrored back and with the left/right channels swapped: the
    scores the unflipped image would have."""
    if scores.ndim != 4 or scores.shape[1] != labels.num_classes:
        raise ValueError(f"scores must be (N, {labels.num_classes}, H, W) for {labels.name}, not {tuple(scores.shape)}")
    return scores.flip(-1)[:, labels.channel_order()]


@torch.no_grad()
def predict_with_flip(model: torch.nn.Module, images: torch.Tensor, labels: LabelSet) -> torch.Tensor:
    """Flip test-time augmentation: the mean of the model's scores (N, C, H, W) on the images and, mirrored back
    with the left/right channels swapped, on their mirror images."""
    return (model(images) + flip_scores(model(images.flip(-1)), labels)) / 2


# --- the dataset ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    id: str
    image: Path
    label: Path


def _lip_samples(root: Path, split: str) -> list[Sample]:
    """The samples of LIP's official ``split`` ("train" or "val"), in the order of its id list."""
    images = find_folder(root, lambda f: (f / f"{split}_images").is_dir(), f"{split}_images/", max_depth=4)
    labels = find_folder(root, lambda f: (f / f"{split}_segmentations").is_dir(), f"{split}_segmentations/",
                         max_depth=4)
    lists = [folder / f"{split}_id.txt" for folder in (images, images.parent, root)]  # beside or above the photos
    lists = [p for p in lists if p.is_file()]
    if lists:
        ids = [line.strip() for line in lists[0].read_text().splitlines() if line.strip()]
        where = lists[0]
    else:  # some copies drop the lists: every photo of the folder
        ids = sorted(p.stem for p in (images / f"{split}_images").glob("*.jpg") if not p.name.startswith("."))
        where = images / f"{split}_images"
    samples = [Sample(i, images / f"{split}_images" / f"{i}.jpg", labels / f"{split}_segmentations" / f"{i}.png")
               for i in ids]
    _check_present(samples, where)
    listed = {s.id for s in samples}
    report_unused(images / f"{split}_images", "photos not in the id list",
                  sorted(p.name for p in (images / f"{split}_images").glob("*.jpg") if p.stem not in listed))
    return samples


def _cihp_samples(root: Path, split: str) -> list[Sample]:
    folder_name = {"train": "Training", "val": "Validation"}[split]
    folder = find_folder(root, lambda f: (f / folder_name / "Category_ids").is_dir(),
                         f"{folder_name}/Category_ids/", max_depth=4) / folder_name
    ids = sorted(p.stem for p in (folder / "Images").glob("*.jpg") if not p.name.startswith("."))
    samples = [Sample(i, folder / "Images" / f"{i}.jpg", folder / "Category_ids" / f"{i}.png") for i in ids]
    _check_present(samples, folder / "Images")
    return samples


def _check_present(samples: list[Sample], where: Path) -> None:
    missing = [str(p) for s in samples for p in (s.image, s.label) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} files listed by {where} are missing, e.g. {missing[:3]}: the copy is "
                                f"incomplete (an archive not fully unpacked?). Unpack both archives again.")
    if not samples:
        raise FileNotFoundError(f"{where} lists no samples")


def find_layout(root: str | Path) -> str:
    """"lip" or "cihp": which layout the folder holds (its label set has the same name)."""
    root = Path(root)
    for layout, marker in (("lip", "train_segmentations"), ("cihp", "Category_ids")):
        try:
            find_folder(root, lambda folder, name=marker: (folder / name).is_dir(), f"{marker}/", max_depth=5)
            return layout
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"{root} holds neither LIP (train_segmentations/, train_images/) nor CIHP "
                            f"(Training/Images/, Training/Category_ids/); point to the unpacked dataset")


def read_label(path: str | Path, labels: LabelSet) -> np.ndarray:
    """A label map as uint8 ids (H, W), checked against ``labels`` (255 allowed: ignored)."""
    path = Path(path)
    try:
        with Image.open(path) as im:  # PIL, not OpenCV: OpenCV turns a palette PNG into colours, PIL keeps its ids
            mode, label = im.mode, np.asarray(im)
    except OSError as error:
        raise DamagedFileError(f"{path} cannot be read as an image ({error}): damaged or not an image") from error
    if mode not in ("L", "P", "I", "I;16"):
        raise ValueError(f"{path} is a {mode} image: a label must be one channel of ids (0..{labels.num_classes - 1}); "
                         f"a colour picture of the labels (CIHP's Categories/, a visualisation) is not one")
    ids = np.unique(label)
    bad = ids[(ids >= labels.num_classes) & (ids != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(f"{path} holds ids {bad.tolist()}, not {labels.name}'s 0..{labels.num_classes - 1} (or 255): "
                         f"is it another dataset's label set?")
    return label.astype(np.uint8)


class HumanParsing(Dataset):
    """LIP or CIHP photos with their part labels.

    An item is ``(image, label)``: without a ``transform`` a float tensor (3, H, W) in [0, 1] and an int64 tensor
    (H, W) of ids (255 = ignored); with one, what the albumentations pipeline returns as ``"image"`` and
    ``"mask"`` (use :class:`LeftRightFlip` for flips, and ``fill_mask=255`` where the pipeline pads). Photos come in
    different sizes: resize or pad them in the transform to batch them.

    Splits: "val" is the official validation list (it reports; LIP's and CIHP's test labels are withheld),
    "monitor" a seeded ``monitor_fraction`` of the official training list (it chooses the best epoch), "train" the
    rest. ``self.labels`` is the label set (LIP or CIHP, from the layout).
    """

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None,
                 monitor_fraction: float = 0.1, seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        check_monitor_fraction(split, monitor_fraction, "official training list")
        self.root = Path(root)
        self.layout = find_layout(self.root)
        self.labels = LIP if self.layout == "lip" else CIHP
        official = "val" if split == "val" else "train"
        samples = (_lip_samples if self.layout == "lip" else _cihp_samples)(self.root, official)
        if split == "val":
            self.split_source = f"the official {official} list"
        else:
            chosen, self.split_source = carve_monitor([s.id for s in samples], split, monitor_fraction, seed,
                                                      "the official training list")
            keep = set(chosen)
            samples = [s for s in samples if s.id in keep]
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ``index`` as stored, before any transform: the photo (H, W, 3) uint8 RGB and its label (H, W) uint8
        ids. Override it to change what the transform sees (simulated annotation errors in notebook 05)."""
        sample = self.samples[index]
        image, label = read_image(sample.image), read_label(sample.label, self.labels)
        if image.shape[:2] != label.shape:
            raise ValueError(f"{sample.label} is {label.shape[1]}x{label.shape[0]} but its photo {sample.image.name} "
                             f"is {image.shape[1]}x{image.shape[0]}; a label must cover its photo pixel for pixel")
        return image, label

    def __getitem__(self, index: int):
        image, label = self.load(index)
        if self.transform is None:
            return torch.from_numpy(image).permute(2, 0, 1).float() / 255, torch.from_numpy(label).long()
        reseed(self.transform)
        out = self.transform(image=image, mask=label)
        return out["image"], torch.as_tensor(np.asarray(out["mask"])).long()


# --- the synthetic twin ---------------------------------------------------------------------------

SKIN = np.array([[241, 204, 177], [224, 172, 138], [198, 134, 99], [141, 85, 60], [92, 58, 43]], np.float32)
HAIR = np.array([[20, 16, 14], [60, 38, 25], [110, 70, 40], [200, 160, 100]], np.float32)
FACING_SHARE = 0.8  # most people face the camera, as in most photos of people; the rest are turned away
HAT, HAIR_ID, UPPER, PANTS, SKIRT, FACE = 1, 2, 5, 9, 12, 13
LEFT_ARM, RIGHT_ARM, LEFT_LEG, RIGHT_LEG, LEFT_SHOE, RIGHT_SHOE = 14, 15, 16, 17, 18, 19


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Clutter: a colour gradient with random boxes, discs and bars, some in skin and clothing colours."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    a, b = rng.uniform(40, 220, (2, 3))
    canvas = (a + (b - a) * (xx[..., None] * rng.uniform(0.3, 1) + yy[..., None] * rng.uniform(0, 0.7))).copy()
    for _ in range(rng.integers(4, 10)):
        colour = SKIN[rng.integers(len(SKIN))] if rng.random() < 0.2 else rng.uniform(0, 255, 3)
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(max(3, width // 12), max(4, width // 3)))
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(canvas, (x, y), (x + size, y + size // 2 + 2), colour.tolist(), -1)
        elif kind == 1:
            cv2.circle(canvas, (x, y), size // 2, colour.tolist(), -1)
        else:
            cv2.line(canvas, (x, y), (int(rng.integers(0, width)), int(rng.integers(0, height))), colour.tolist(),
                     max(1, size // 6))
    return canvas


def _limb(image, label, start, end, width, colour, part):
    cv2.line(image, start, end, colour, width)
    cv2.line(label, start, end, part, width)


def _twin_person(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One person, facing the camera (face visible: the person's left on the image's right) or turned away
    (hair covers the head: the person's left on the image's left), over clutter. Returns photo and label."""
    image = _background(rng, height, width)
    label = np.zeros((height, width), np.uint8)
    facing = rng.random() < FACING_SHARE
    s = height / 128 * rng.uniform(0.85, 1.05)  # person scale (128 px tall photos hold a person of ~110 px)
    cx = width / 2 + rng.uniform(-0.12, 0.12) * width
    top = rng.uniform(0.03, 0.08) * height
    skin = (SKIN[rng.integers(len(SKIN))] + rng.normal(0, 6, 3)).clip(0, 255).tolist()
    shirt, trousers, shoes = (rng.uniform(20, 235, 3).tolist() for _ in range(3))
    hair = (HAIR[rng.integers(len(HAIR))] + rng.normal(0, 6, 3)).clip(0, 255).tolist()
    p = lambda x, y: (int(round(cx + x * s)), int(round(top + y * s)))  # noqa: E731 - person coordinates to pixels

    # the person's left side is +x on the image when they face us, -x when turned away
    side = {LEFT_ARM: 1, RIGHT_ARM: -1} if facing else {LEFT_ARM: -1, RIGHT_ARM: 1}
    leg_side = {LEFT_LEG: side[LEFT_ARM], RIGHT_LEG: side[RIGHT_ARM]}
    shoe_of = {LEFT_LEG: LEFT_SHOE, RIGHT_LEG: RIGHT_SHOE}
    skirt = rng.random() < 0.3
    shorts = not skirt and rng.random() < 0.5  # bare lower legs under trousers cut at the knee

    # legs (behind the torso), then shoes
    for leg, sign in leg_side.items():
        hip, foot = p(6 * sign, 62), p((8 + rng.uniform(0, 10)) * sign, 104)
        knee = p((7 + rng.uniform(-2, 4)) * sign, 84)
        # LIP labels trousers as Pants and bare skin as the leg: long trousers, shorts, or bare legs under a skirt
        upper = (skin, leg) if skirt else (trousers, PANTS)
        lower = (skin, leg) if skirt or shorts else (trousers, PANTS)
        _limb(image, label, hip, knee, max(2, int(12 * s)), upper[0], upper[1])
        _limb(image, label, knee, foot, max(2, int(11 * s)), lower[0], lower[1])
        cv2.ellipse(image, (foot[0] + int(3 * s * sign), foot[1]), (max(2, int(6 * s)), max(1, int(3 * s))), 0, 0, 360,
                    shoes, -1)
        cv2.ellipse(label, (foot[0] + int(3 * s * sign), foot[1]), (max(2, int(6 * s)), max(1, int(3 * s))), 0, 0, 360,
                    shoe_of[leg], -1)
    if skirt:
        poly = np.array([p(-13, 56), p(13, 56), p(19, 78), p(-19, 78)], np.int32)
        cv2.fillPoly(image, [poly], trousers)
        cv2.fillPoly(label, [poly], SKIRT)

    # torso
    torso = np.array([p(-15, 28), p(15, 28), p(13, 62), p(-13, 62)], np.int32)
    cv2.fillPoly(image, [torso], shirt)
    cv2.fillPoly(label, [torso], UPPER)

    # arms at random angles: bare skin (the arm's label) below a sleeve (upper clothes) that ends at the elbow or,
    # for a short-sleeved shirt, just below the shoulder
    short_sleeves = rng.random() < 0.7
    for arm, sign in side.items():
        shoulder = p(15 * sign, 31)
        angle = np.deg2rad(rng.uniform(5, 60))
        elbow = (shoulder[0] + int(np.sin(angle) * 16 * s * sign), shoulder[1] + int(np.cos(angle) * 16 * s))
        angle2 = angle + np.deg2rad(rng.uniform(-40, 50))
        hand = (elbow[0] + int(np.sin(angle2) * 16 * s * sign), elbow[1] + int(np.cos(angle2) * 16 * s))
        cuff = ((shoulder[0] * 2 + elbow[0]) // 3, (shoulder[1] * 2 + elbow[1]) // 3) if short_sleeves else elbow
        _limb(image, label, shoulder, elbow, max(2, int(12 * s)), skin, arm)
        _limb(image, label, shoulder, cuff, max(2, int(13 * s)), shirt, UPPER)
        _limb(image, label, elbow, hand, max(2, int(11 * s)), skin, arm)

    # neck and head: a face seen from the front, or the back of the head covered by hair
    head, radius = p(0, 16), max(3, int(11 * s))
    _limb(image, label, p(0, 24), p(0, 29), max(2, int(7 * s)), skin, FACE if facing else HAIR_ID)
    cv2.circle(image, head, radius, hair, -1)
    cv2.circle(label, head, radius, HAIR_ID, -1)
    if facing:
        face_centre = (head[0], head[1] + max(1, radius // 4))
        axes = (max(2, int(radius * 0.75)), max(2, int(radius * 0.85)))
        cv2.ellipse(image, face_centre, axes, 0, 0, 360, skin, -1)
        cv2.ellipse(label, face_centre, axes, 0, 0, 360, FACE, -1)
        for dx in (-1, 1):  # eyes: a cue that the person faces us
            cv2.circle(image, (head[0] + dx * radius // 3, head[1]), max(1, radius // 8), (30, 30, 30), -1)
    if rng.random() < 0.25:
        brim = np.array([(head[0] - radius - 2, head[1] - radius // 3), (head[0] + radius + 2, head[1] - radius // 3),
                         (head[0] + radius - 1, head[1] - radius - 3), (head[0] - radius + 1, head[1] - radius - 3)],
                        np.int32)
        colour = rng.uniform(0, 255, 3).tolist()
        cv2.fillPoly(image, [brim], colour)
        cv2.fillPoly(label, [brim], HAT)

    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(image, (3, 3), 0.6), label


def write_twin(root: str | Path, n_train: int = 64, n_val: int = 24, seed: int = 0,
               layout: str = "lip", scale: float = 1.0) -> Path:
    """Write a small LIP look-alike into ``root`` in LIP's official layout (``layout="cihp"``: CIHP's); returns
    ``root``.

    LIP: ``TrainVal_images/{train,val}_images/<id>.jpg`` with ``TrainVal_images/{train,val}_id.txt`` and
    ``TrainVal_parsing_annotations/{train,val}_segmentations/<id>.png`` (8-bit single-channel ids, LIP's label set),
    ids like LIP's (``100034_483681``), photos of varied sizes around 96 x 128 (LIP's are person crops of any size),
    one of them a greyscale JPEG (``scale`` multiplies the sizes: larger photos for timing a loader). Most people
    face the camera, some are turned away, so left and right must be read from the face. Deterministic for a given
    ``seed``.
    """
    if layout not in ("lip", "cihp"):
        raise ValueError(f"layout must be 'lip' or 'cihp', not {layout!r}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("val", n_val)):
        if layout == "lip":
            photos = root / "TrainVal_images" / f"{split}_images"
            labels = root / "TrainVal_parsing_annotations" / f"{split}_segmentations"
        else:
            folder = root / "instance-level_human_parsing" / {"train": "Training", "val": "Validation"}[split]
            photos, labels = folder / "Images", folder / "Category_ids"
        photos.mkdir(parents=True, exist_ok=True)
        labels.mkdir(parents=True, exist_ok=True)
        ids = []
        for k in range(count):
            height = int(rng.integers(112, 145) * scale)
            width = int(round(height * rng.uniform(0.62, 0.8)))
            photo, label = _twin_person(rng, height, width)
            name = (f"{rng.integers(1000, 600000)}_{rng.integers(100000, 2200000)}" if layout == "lip"
                    else f"{len(ids) + 1 + (0 if split == 'train' else 30000):07d}")
            ids.append(name)
            picture = Image.fromarray(photo, "RGB")
            if split == "train" and k == 1:  # one greyscale photo, stored with one channel
                picture = picture.convert("L")
            picture.save(photos / f"{name}.jpg", quality=90)
            Image.fromarray(label, "L").save(labels / f"{name}.png")
        if layout == "lip":
            (root / "TrainVal_images" / f"{split}_id.txt").write_text("\n".join(ids) + "\n")
    return root


INFO = DatasetInfo(
    name="lip",
    title="LIP (Look Into Person): 50,462 person crops with 20-label part annotations (30,462 train, 10,000 val)",
    notebook="05",
    marker="train_segmentations",
    licence="for research (see the terms on the LIP site, sysu-hcp.net/lip); the photos come from MS COCO",
    citation="Gong, Liang, Zhang, Shen, Lin, Look into Person: Self-supervised Structure-sensitive Learning and a "
             "New Benchmark for Human Parsing, CVPR 2017",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
    manual="LIP has no verified Kaggle copy or direct archive: follow the download links on sysu-hcp.net/lip (Google "
           "Drive or Baidu), unzip TrainVal_images.zip and TrainVal_parsing_annotations.zip into one folder and pass "
           "it: locate('lip', path=...) or COURSE_DATA_DIR; on Kaggle, upload that folder as a private dataset and "
           "attach it (CIHP's instance-level_human_parsing folder is read too)",
)
