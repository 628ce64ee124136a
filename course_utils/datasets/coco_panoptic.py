"""COCO panoptic segmentation (val2017): the format, the torch Dataset over the official layout, and its twin.

Layout after unpacking the two official archives (``root`` is what ``data.locate`` returns; copies nest it
deeper, so the folders are searched for)::

    annotations/panoptic_val2017.json     images, annotations (one per image) and the 133 categories
    annotations/panoptic_val2017.zip      a zip INSIDE the annotation archive: panoptic_val2017/<image id>.png
    annotations/panoptic_train2017.*      the same for train2017 (not used here)
    val2017/<12-digit image id>.jpg       the 5000 photos: another archive, val2017.zip

The PNG folder ``panoptic_val2017/`` is where you unzipped it: ``annotations/panoptic_val2017/`` (where
panopticapi's evaluation looks by default: the JSON's path without ``.json``) or beside ``annotations/``
(detectron2's ``datasets/coco/panoptic_val2017/``). If it is in neither place, the loader unpacks the nested
zip once (safely, with ``data.extract``) into ``data.derived_dir("coco_panoptic")``.

Format pitfalls:

* A PNG holds **segment ids**, not classes, encoded in its three channels: ``id = R + 256·G + 256²·B``
  (0 = void, pixels nobody labelled). Compute it in a wide integer type: in uint8 arithmetic the products
  wrap around modulo 256, so a uint8 torch tensor gives ``R + 256·G + 65536·B == R`` without a word, and
  uint16 still loses B (``65536·B``); NumPy 2 stops with an ``OverflowError`` instead. ``rgb_to_id`` casts
  to uint32 first, as panopticapi's ``rgb2id`` (int32) and detectron2 (``dtype=np.uint32``) do.
* The class of a segment is in the JSON: ``segments_info`` maps each id to ``category_id``, ``iscrowd``,
  ``area`` (pixels) and ``bbox`` ``[x, y, w, h]`` with ``w = last column - first column + 1``.
* Segment ids are colours: panopticapi's ``IdGenerator`` gives a stuff segment its category's colour, and
  a thing the category's colour for its first instance, then that colour jittered by up to ±30 per channel.
  So ids repeat across images (``tree-merged`` is 2330219 in every image): an id names a segment only
  together with its image.
* Category ids run from 1 to 200 with gaps (133 used: 80 things, 53 stuff). A network predicts contiguous
  **train ids** 0..132 (the categories in id order, see :func:`train_ids`); 255 = ignore (void).
* ``iscrowd=1`` marks a region of many things labelled as one segment (a crowd of people). It is not an
  instance: PQ does not match it, and ignores predicted segments lying mostly in void and crowd. Its pixels
  do show the class, so the semantic target keeps it (detectron2's Panoptic-DeepLab target generator, whose
  ``INPUT.IGNORE_CROWD_IN_SEMANTIC`` is False by default; the original TensorFlow code ignored them:
  ``ignore_crowd=True``), and the instance target leaves it at 0, as it does stuff and void.

Protocol of this course (a teaching choice): full mode uses **val2017 only** (5000 images: the 0.8 GB of
photos and the 0.9 GB annotation archive, not the 18 GB train2017), split by a seeded shuffle into 3750
train, 250 monitor (chooses the best epoch) and 1000 test (reported once). Published PQ numbers train on
train2017 (118k images) and report val2017: ours are not comparable with them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.data import Dataset

from course_utils.datasets import (
    DamagedFileError,
    DatasetInfo,
    check_monitor_fraction,
    find_folder,
    read_image,
    report_unused,
    reseed,
    split_names,
)

TWIN_VERSION = 1
VOID = 0  # the segment id of unlabelled pixels
IGNORE = 255  # the train id of void pixels, skipped by losses and metrics
SPLITS = ("train", "monitor", "test", "all")
TEST_FRACTION = 0.2  # 1000 of the 5000 val2017 images
MONITOR_FRACTION = 0.0625  # 250 of the other 4000
ANNOTATION_FILE = "annotations/panoptic_val2017.json"
PNG_FOLDER = "panoptic_val2017"
PHOTO_FOLDER = "val2017"

ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/panoptic_annotations_trainval2017.zip"
PHOTOS_URL = "http://images.cocodataset.org/zips/val2017.zip"
# sha256 as TensorFlow Datasets recorded them (tensorflow/datasets, url_checksums/coco2017_panoptic.txt):
# 860,725,834 and 815,585,330 bytes
ANNOTATIONS_SHA256 = "c05f76d2129b6b561eb70efe16e7006df62f73fb92889132d373b9d90e31a370"
PHOTOS_SHA256 = "4f7e2ccb2866ec5041993c9cf2a952bbed69647b115d0f74da7ce8f4bef82f05"
# For data.locate: the archives and the folder of data/coco_panoptic/ each is unpacked into; the photos
# first, so a run stopped halfway leaves no folder with the marker (the annotation file) but no photos.
ARCHIVES = {"val2017": (PHOTOS_URL, PHOTOS_SHA256),
            "panoptic_annotations_trainval2017": (ANNOTATIONS_URL, ANNOTATIONS_SHA256)}
# A Kaggle copy of the COCO 2017 photos: coco2017/{train2017,val2017,annotations}/ (the annotations are the
# instance/caption ones); attach it and the loader finds coco2017/val2017 there.
PHOTOS_KAGGLE = "awsaf49/coco-2017-dataset"


# --- ids and colours ------------------------------------------------------------------------------

def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """Segment ids (H, W) uint32 of an RGB panoptic PNG's pixels (H, W, 3): R + 256·G + 256²·B."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB array of shape (H, W, 3), got shape {rgb.shape}")
    rgb = rgb.astype(np.uint32)  # first: in uint8 the products wrap around (see the module docstring)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """The RGB encoding (H, W, 3) uint8 of segment ids (H, W), the inverse of :func:`rgb_to_id`."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= 256**3):
        raise ValueError(f"segment ids must be in [0, 256**3) to fit three 8-bit channels; found "
                         f"{ids.min()}..{ids.max()}")
    ids = ids.astype(np.uint32)
    return np.stack([ids % 256, ids // 256 % 256, ids // (256 * 256)], axis=-1).astype(np.uint8)


def read_id_map(path: str | Path) -> np.ndarray:
    """The segment ids (H, W) uint32 of a panoptic PNG. Anything but an RGB PNG is refused: a palette or
    grey PNG holds something else than the ids, and a JPEG's compression has changed the colours."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            kind, mode, rgb = image.format, image.mode, np.array(image)
    except (OSError, SyntaxError, ValueError) as error:  # PIL: not an image, truncated, failed CRC
        raise DamagedFileError(f"{path}: cannot decode this PNG ({error}). It is damaged or incomplete: unpack "
                               f"the annotation archive again.") from error
    if kind != "PNG" or mode != "RGB":
        hint = ("JPEG compression changes colours, and with them the ids" if kind == "JPEG"
                else "a palette PNG holds palette indices, not the ids (was it converted or re-saved?)"
                if mode == "P" else "an alpha channel is not part of the format (was it re-saved by an editor?)"
                if mode == "RGBA" else "a single-channel PNG cannot hold ids up to 256**3 - 1")
        raise ValueError(f"{path}: expected an RGB PNG of segment ids (id = R + 256*G + 256**2*B), found a {kind} "
                         f"image of mode {mode!r}: {hint}. Use the PNG from the annotation archive.")
    return rgb_to_id(rgb)


def write_id_map(path: str | Path, ids: np.ndarray) -> None:
    """Save segment ids (H, W) as an RGB PNG in the panoptic encoding."""
    Image.fromarray(id_to_rgb(ids)).save(path, format="PNG")


# --- the JSON -------------------------------------------------------------------------------------

SEGMENT_KEYS = ("id", "category_id", "iscrowd", "area", "bbox")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_annotations(json_path: str | Path) -> dict:
    """The annotation file (``panoptic_val2017.json``) as a dict, after checking what the loader relies on:
    ``images`` (``id``, ``file_name``, ``height``, ``width``), ``annotations`` (one per image: ``file_name``,
    ``image_id``, ``segments_info`` with distinct segment ids, each with the keys of ``SEGMENT_KEYS`` and a
    known ``category_id``) and ``categories`` (distinct ``id``, ``name``, ``isthing`` 0 or 1)."""
    path = Path(json_path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DamagedFileError(f"{path}: not valid JSON ({error}). It is damaged or cut short: unpack it again "
                               f"from the annotation archive.") from error

    def problem(what: str) -> ValueError:
        return ValueError(f"{path}: {what}. Is it a COCO panoptic annotation file? Restore it from the archive.")

    if not isinstance(content, dict) or not all(isinstance(content.get(key), list)
                                                for key in ("images", "annotations", "categories")):
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise problem(f"expected an object with the lists 'images', 'annotations' and 'categories', found {found}")
    categories = {}
    for c in content["categories"]:
        if not (isinstance(c, dict) and _is_int(c.get("id")) and isinstance(c.get("name"), str)
                and c.get("isthing") in (0, 1)):
            raise problem(f"category {c} needs an integer 'id', a 'name' and 'isthing' 0 or 1")
        if c["id"] in categories:
            raise problem(f"category id {c['id']} is listed twice")
        categories[c["id"]] = c
    images = {}
    for image in content["images"]:
        if not (isinstance(image, dict) and all(key in image for key in ("id", "file_name", "height", "width"))):
            raise problem(f"image {image} needs 'id', 'file_name', 'height' and 'width'")
        images[image["id"]] = image
    annotated = set()
    for annotation in content["annotations"]:
        name = annotation.get("file_name") if isinstance(annotation, dict) else None
        if name is None or "image_id" not in annotation or not isinstance(annotation.get("segments_info"), list):
            raise problem(f"annotation {str(annotation)[:80]} needs 'file_name', 'image_id' and a list "
                          f"'segments_info'")
        if annotation["image_id"] not in images:
            raise problem(f"annotation {name} is for image_id {annotation['image_id']}, which 'images' does not list")
        if annotation["image_id"] in annotated:
            raise problem(f"image_id {annotation['image_id']} has two annotations (the second: {name})")
        annotated.add(annotation["image_id"])
        seen = set()
        for segment in annotation["segments_info"]:
            missing = [key for key in SEGMENT_KEYS if key not in segment]
            if missing:
                raise problem(f"annotation {name}: segment {segment} has no {missing}")
            if not (_is_int(segment["id"]) and 0 < segment["id"] < 256**3):
                raise problem(f"annotation {name}: segment id {segment['id']} is not an integer in 1..256**3 - 1")
            if segment["id"] in seen:
                raise problem(f"annotation {name}: segment id {segment['id']} is listed twice")
            seen.add(segment["id"])
            if segment["category_id"] not in categories:
                raise problem(f"annotation {name}: segment {segment['id']} has category_id {segment['category_id']}, "
                              f"which 'categories' does not list")
            if segment["iscrowd"] not in (0, 1) or len(segment["bbox"]) != 4:
                raise problem(f"annotation {name}: segment {segment['id']} needs iscrowd 0 or 1 and a bbox "
                              f"[x, y, w, h], found {segment['iscrowd']} and {segment['bbox']}")
    report_unused(path, "images without an annotation",
                  sorted(image["file_name"] for i, image in images.items() if i not in annotated))
    return content


def train_ids(categories: list[dict]) -> dict[int, int]:
    """``{COCO category id: train id}``: the categories in increasing id order get 0, 1, ..., K - 1 (133 in
    COCO), so a network can predict them with K output channels. ``IGNORE`` (255) is left for void."""
    ids = sorted(c["id"] for c in categories)
    if len(ids) >= IGNORE:
        raise ValueError(f"{len(ids)} categories do not fit the train ids 0..{IGNORE - 1}")
    return {category_id: train_id for train_id, category_id in enumerate(ids)}


def to_category_ids(train_id_map, category_ids: list[int]):
    """COCO category ids of a map of train ids (numpy or torch, any shape), for the metric: train id t
    becomes ``category_ids[t]``, ``IGNORE`` becomes 0 (void). ``category_ids`` is ``dataset.category_ids``."""
    table = np.zeros(256, np.int64)
    table[: len(category_ids)] = category_ids
    values = train_id_map.numpy(force=True) if isinstance(train_id_map, torch.Tensor) else np.asarray(train_id_map)
    bad = (values < 0) | ((values >= len(category_ids)) & (values != IGNORE))
    if bad.any():
        raise ValueError(f"train ids must be 0..{len(category_ids) - 1} or {IGNORE}; found {values[bad][0]}")
    out = table[values.astype(np.int64)]
    return torch.from_numpy(out).to(train_id_map.device) if isinstance(train_id_map, torch.Tensor) else out


# --- targets from an id map -------------------------------------------------------------------------

def semantic_map(id_map: np.ndarray, segments_info: list[dict], train_id_of: dict[int, int],
                 ignore_crowd: bool = False) -> np.ndarray:
    """The semantic target (H, W) uint8: each segment's pixels get its category's train id; void pixels,
    and ids that ``segments_info`` does not list, get ``IGNORE``. Crowd regions keep their class unless
    ``ignore_crowd`` (see the module docstring)."""
    semantic = np.full(id_map.shape, IGNORE, np.uint8)
    for segment in segments_info:
        if not (ignore_crowd and segment["iscrowd"]):
            semantic[id_map == segment["id"]] = train_id_of[segment["category_id"]]
    return semantic


def instance_map(id_map: np.ndarray, segments_info: list[dict], thing_ids: set[int]) -> np.ndarray:
    """The instance target (H, W) int32: the k-th thing segment of ``segments_info`` that is not a crowd
    gets k (1, 2, ...); stuff, crowds and void get 0. ``thing_ids``: the category ids with ``isthing`` 1.
    A crop can remove instances, leaving gaps in the numbers."""
    instances = np.zeros(id_map.shape, np.int32)
    things = [s for s in segments_info if s["category_id"] in thing_ids and not s["iscrowd"]]
    for k, segment in enumerate(things, start=1):
        instances[id_map == segment["id"]] = k
    return instances


def segment_stats(id_map: np.ndarray) -> dict[int, tuple[int, list[int]]]:
    """``{segment id: (area, [x, y, w, h])}`` for every id in ``id_map`` but void, as COCO computes them:
    the pixel count, and the box with ``w = last column - first column + 1``."""
    stats = {}
    for segment_id in np.unique(id_map):
        if segment_id == VOID:
            continue
        rows, cols = np.nonzero(id_map == segment_id)
        x, y = int(cols.min()), int(rows.min())
        stats[int(segment_id)] = (len(rows), [x, y, int(cols.max()) - x + 1, int(rows.max()) - y + 1])
    return stats


def check_annotation(id_map: np.ndarray, segments_info: list[dict], path: str | Path) -> None:
    """Stop with an error naming the PNG ``path`` unless its ids and its JSON entry agree: every id in the
    PNG but void is listed in ``segments_info``, every listed segment is in the PNG, and each ``area`` is the
    segment's pixel count. (The loader would otherwise train on void where a class is, without a word.)"""
    ids, counts = np.unique(id_map, return_counts=True)
    pixels = dict(zip(ids.tolist(), counts.tolist()))
    pixels.pop(VOID, None)
    listed = {s["id"]: s for s in segments_info}
    unlisted, absent = sorted(set(pixels) - set(listed)), sorted(set(listed) - set(pixels))
    advice = ("the PNG and the JSON entry do not belong together (another version of the annotations?) or one "
              "was edited: use the PNG folder and the JSON of the same archive")
    if unlisted:
        raise ValueError(f"{path}: segment ids {unlisted[:5]} are in the PNG ({pixels[unlisted[0]]} pixels of "
                         f"{unlisted[0]}) but not in its segments_info ({len(listed)} segments); {advice}.")
    if absent:
        raise ValueError(f"{path}: segments {absent[:5]} of its segments_info are not in the PNG; {advice}.")
    for segment_id, count in pixels.items():
        if listed[segment_id]["area"] != count:
            raise ValueError(f"{path}: segment {segment_id} (category {listed[segment_id]['category_id']}) covers "
                             f"{count} pixels, but the JSON gives area {listed[segment_id]['area']}; {advice}.")


def panoptic_from_maps(semantic: np.ndarray, instance: np.ndarray, category_ids: list[int],
                       thing_train_ids: set[int]) -> tuple[np.ndarray, list[dict]]:
    """``(id_map, segments_info)`` in COCO's format from a semantic map of train ids and an instance map,
    as the panoptic metric takes predictions: one segment per stuff class present, one per (thing class,
    instance id > 0); thing pixels without an instance, and ``IGNORE``, become void. Ids are 1, 2, ..."""
    semantic, instance = np.asarray(semantic), np.asarray(instance)
    id_map, segments = np.zeros(semantic.shape, np.int64), []
    for train_id in np.unique(semantic).tolist():
        if train_id == IGNORE:
            continue
        where = semantic == train_id
        masks = ([where & (instance == k) for k in np.unique(instance[where]).tolist() if k != 0]
                 if train_id in thing_train_ids else [where])
        for mask in masks:
            id_map[mask] = len(segments) + 1
            segments.append({"id": len(segments) + 1, "category_id": int(category_ids[train_id]), "iscrowd": 0})
    stats = segment_stats(id_map)
    for segment in segments:
        segment["area"], segment["bbox"] = stats[segment["id"]]
    return id_map, segments


# --- finding the files ----------------------------------------------------------------------------

def find_annotation_folder(root: str | Path) -> Path:
    """The folder at or below ``root`` that holds ``annotations/panoptic_val2017.json``."""
    return find_folder(Path(root), lambda f: (f / ANNOTATION_FILE).is_file(),
                       f"{ANNOTATION_FILE} (unzip panoptic_annotations_trainval2017.zip: {ANNOTATIONS_URL})")


def find_png_folder(base: Path) -> Path:
    """``panoptic_val2017/``, the PNGs: in ``annotations/`` or beside it, else unpacked from the nested zip."""
    for folder in (base / "annotations" / PNG_FOLDER, base / PNG_FOLDER):
        if folder.is_dir():
            return folder
    nested = base / "annotations" / f"{PNG_FOLDER}.zip"
    if nested.is_file():
        return unpack_nested_zip(nested)
    raise FileNotFoundError(f"no PNG folder {PNG_FOLDER}/ in {base / 'annotations'} or {base}, and no "
                            f"{nested.name} to unpack it from: unpack {ANNOTATIONS_URL} again, with its "
                            f"annotations/{nested.name}")


def unpack_nested_zip(nested: Path) -> Path:
    """Unpack ``annotations/panoptic_val2017.zip`` (a zip inside the annotation archive) once, into the derived
    folder (the dataset's own folder may be read-only, as on Kaggle); returns the PNG folder in it."""
    from course_utils import data  # here, not at the top: data imports this module

    stat = nested.stat()
    key = hashlib.sha256(f"{nested.resolve()} {stat.st_size} {stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = data.derived_dir(INFO.name) / f"{PNG_FOLDER}-{key}"
    if not (target / data.EXTRACTED_MARK).is_file():
        print(f"unpacking {nested} (a zip inside the annotation archive) into {target}")
    data.extract(nested, target)
    return target / PNG_FOLDER if (target / PNG_FOLDER).is_dir() else target


def find_photo_folder(root: Path, first_photo: str, photos: str | Path | None = None) -> Path:
    """The folder of the val2017 photos (one that holds ``first_photo``): ``photos`` if given, else a
    ``val2017/`` at or below ``root``, else one in a Kaggle input mount (such as COCO 2017's ``coco2017/``)."""
    if photos is not None:
        if not (Path(photos) / first_photo).is_file():
            raise FileNotFoundError(f"photos={photos} does not hold {first_photo}: pass the folder of the val2017 "
                                    f"photos (the unzipped {PHOTOS_URL})")
        return Path(photos)
    from course_utils import data  # here, not at the top: data imports this module

    for place in [root, *data.kaggle_mounts(dataclasses.replace(INFO, kaggle=PHOTOS_KAGGLE))]:
        try:
            return find_folder(place, lambda f: (f / PHOTO_FOLDER / first_photo).is_file(), "val2017/") / PHOTO_FOLDER
        except FileNotFoundError:
            continue
    raise FileNotFoundError(
        f"no folder {PHOTO_FOLDER}/ with the photos (e.g. {first_photo}) at or below {root}, nor in a Kaggle input "
        f"mount. Download {PHOTOS_URL} and unzip it beside annotations/, attach the Kaggle dataset {PHOTOS_KAGGLE}, "
        f"or pass photos=<folder of the val2017 photos>.")


def _files(folder: Path, suffix: str) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.endswith(suffix)}


# --- the dataset ----------------------------------------------------------------------------------

class CocoPanoptic(Dataset):
    """COCO panoptic val2017 images with their panoptic, semantic and instance targets.

    An item is ``(image, target)``: the image a float tensor (3, H, W) (in [0, 1] without a transform), the
    target a dict of int64 tensors: ``index`` (the item's index, so that a batch can be matched with
    ``segments_info``), and (H, W) maps ``id_map`` (the PNG's segment ids), ``semantic`` (train ids,
    ``IGNORE`` = 255 on void) and ``instance`` (1..N for the thing segments that are not crowds, 0
    elsewhere), both derived from the id map after the transform. Images of equal size (after a crop or
    resize) batch with the default collate. ``segments_info(i)`` gives image i's segments as the JSON lists
    them (their area and bbox describe the untransformed PNG).

    Splits (no official one within val2017): "test" is a seeded ``test_fraction`` of the images, "monitor" a
    seeded ``monitor_fraction`` of the rest (chooses the best epoch), "train" the others, "all" every image;
    3750 / 250 / 1000 of the 5000. They depend only on the file names and ``seed``.

    ``transform``: an albumentations pipeline, called as ``transform(image=rgb uint8, mask=id_map int32)``,
    so crops, flips, resizes and rotations move the id map with the image. The id map is passed as int32:
    OpenCV's warps (Affine, Rotate, ElasticTransform) refuse uint32, and all ids (< 256**3) fit.
    albumentations resizes masks with nearest neighbour (no id is invented) and fills borders with
    ``fill_mask=0``: void. It may end with ``ToTensorV2``; the dataset scales a uint8 image to [0, 1].

    ``photos``: the folder of the val2017 photos, when it is not found at or below ``root`` or in a Kaggle
    input mount. ``ignore_crowd``: crowd regions become ``IGNORE`` in ``semantic`` (default: their class).
    """

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None,
                 photos: str | Path | None = None, test_fraction: float = TEST_FRACTION,
                 monitor_fraction: float = MONITOR_FRACTION, seed: int = 0, ignore_crowd: bool = False):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
        check_monitor_fraction(split, monitor_fraction, "training images")
        base = find_annotation_folder(root)
        self.json_path = base / ANNOTATION_FILE
        content = read_annotations(self.json_path)
        self.png_folder = find_png_folder(base)
        self.transform, self.ignore_crowd = transform, ignore_crowd
        self.categories = sorted(content["categories"], key=lambda c: c["id"])
        self.train_id_of = train_ids(self.categories)
        self.category_ids = [c["id"] for c in self.categories]  # train id -> COCO category id
        self.class_names = [c["name"] for c in self.categories]
        self.thing_ids = {c["id"] for c in self.categories if c["isthing"]}
        self.thing_train_ids = sorted(self.train_id_of[i] for i in self.thing_ids)
        images = {image["id"]: image for image in content["images"]}
        annotations = {Path(a["file_name"]).stem: a for a in content["annotations"]}
        if not annotations:
            raise ValueError(f"{self.json_path} lists no annotations")
        first_photo = images[annotations[min(annotations)]["image_id"]]["file_name"]
        self.photo_folder = find_photo_folder(Path(root), first_photo, photos)
        self._check_files(annotations, images)

        every = sorted(annotations)
        names, self.split_source = split_names(every, split, test_fraction, monitor_fraction, seed)
        self.names = names
        self.annotations = [annotations[n] for n in names]
        self.images = [images[a["image_id"]] for a in self.annotations]

    def _check_files(self, annotations: dict[str, dict], images: dict[int, dict]) -> None:
        """Every annotation needs its PNG and its photo; files that nobody uses are reported."""
        pngs, photos = _files(self.png_folder, ".png"), _files(self.photo_folder, ".jpg")
        wanted_pngs = {a["file_name"] for a in annotations.values()}
        wanted_photos = {images[a["image_id"]]["file_name"] for a in annotations.values()}
        for folder, wanted, found, what in ((self.png_folder, wanted_pngs, pngs, "PNGs"),
                                            (self.photo_folder, wanted_photos, photos, "photos")):
            report_unused(folder, f"{what} that {self.json_path.name} does not list", sorted(found - wanted))
            missing = sorted(wanted - found)
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} of the {len(wanted)} {what} that {self.json_path.name} lists are missing, e.g. "
                    f"{folder / missing[0]}. The copy is incomplete, or the folder holds another split: unpack "
                    f"the archive again ({ANNOTATIONS_URL if what == 'PNGs' else PHOTOS_URL}).")

    def __len__(self) -> int:
        return len(self.names)

    def segments_info(self, index: int) -> list[dict]:
        """Image ``index``'s segments as the JSON lists them: id, category_id, iscrowd, area, bbox."""
        return self.annotations[index]["segments_info"]

    def to_category_ids(self, train_id_map):
        """COCO category ids of a predicted map of train ids (see :func:`to_category_ids`)."""
        return to_category_ids(train_id_map, self.category_ids)

    def __getitem__(self, index: int):
        annotation, image_info = self.annotations[index], self.images[index]
        png_path, photo_path = self.png_folder / annotation["file_name"], self.photo_folder / image_info["file_name"]
        photo, ids = read_image(photo_path), read_id_map(png_path)
        if photo.shape[:2] != ids.shape:
            raise ValueError(f"{png_path} is {ids.shape[1]}x{ids.shape[0]} but its photo {photo_path} is "
                             f"{photo.shape[1]}x{photo.shape[0]}; they must be the same size (is one of them "
                             f"resized or from another image?)")
        segments = annotation["segments_info"]
        check_annotation(ids, segments, png_path)
        ids = ids.astype(np.int32)  # OpenCV warps int32 masks, not uint32 ones
        if self.transform is not None:
            reseed(self.transform)  # augmentation drawn from torch's generator: a resumed run repeats it exactly
            out = self.transform(image=photo, mask=ids)
            photo, ids = out["image"], out["mask"]
        if not isinstance(photo, torch.Tensor):  # no ToTensorV2 at the end of the transform
            photo = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)
        image = photo
        if image.dtype == torch.uint8:
            image = image.float() / 255
        ids = ids.numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
        target = {"index": torch.tensor(index),  # which item: segments_info(index) describes id_map's segments
                  "id_map": torch.from_numpy(ids.astype(np.int64)),
                  "semantic": torch.from_numpy(semantic_map(ids, segments, self.train_id_of,
                                                            self.ignore_crowd).astype(np.int64)),
                  "instance": torch.from_numpy(instance_map(ids, segments, self.thing_ids).astype(np.int64))}
        return image, target


# --- the synthetic twin ---------------------------------------------------------------------------

# Six real COCO panoptic categories (ids, names, colours, isthing as in panoptic_val2017.json): street scenes
PERSON, CAR, ROAD, TREE, SKY, BUILDING = 1, 3, 149, 184, 187, 197
CATEGORIES = [
    {"supercategory": "person", "color": [220, 20, 60], "isthing": 1, "id": PERSON, "name": "person"},
    {"supercategory": "vehicle", "color": [0, 0, 142], "isthing": 1, "id": CAR, "name": "car"},
    {"supercategory": "ground", "color": [128, 64, 128], "isthing": 0, "id": ROAD, "name": "road"},
    {"supercategory": "plant", "color": [107, 142, 35], "isthing": 0, "id": TREE, "name": "tree-merged"},
    {"supercategory": "sky", "color": [70, 130, 180], "isthing": 0, "id": SKY, "name": "sky-other-merged"},
    {"supercategory": "building", "color": [116, 112, 0], "isthing": 0, "id": BUILDING,
     "name": "building-other-merged"},
]
FACADES = [(150, 90, 70), (190, 175, 150), (120, 120, 125), (170, 150, 120), (95, 85, 80), (200, 195, 185)]
CAR_PAINT = [(200, 30, 30), (30, 60, 170), (230, 230, 235), (25, 25, 30), (150, 155, 160), (220, 180, 30),
             (40, 120, 60)]
CLOTHES = [(30, 35, 60), (160, 40, 40), (40, 90, 160), (200, 190, 60), (60, 60, 65), (230, 230, 230), (90, 60, 120)]
SKIN = [(233, 196, 160), (205, 160, 120), (160, 110, 75), (110, 75, 50)]


def _segment_ids(rng: np.random.Generator, categories: list[tuple[int, int]]) -> list[int]:
    """Segment ids as panopticapi's IdGenerator makes them (see the module docstring), for one image whose
    segments are ``[(category id, iscrowd), ...]``: stuff gets its category's colour; a thing the colour for
    its first segment, then a jittered colour (±30 per channel) that no other segment of the image has."""
    colour = {c["id"]: np.array(c["color"]) for c in CATEGORIES}
    things = {c["id"] for c in CATEGORIES if c["isthing"]}
    taken = {tuple(colour[c]) for c in colour if c not in things}
    ids = []
    for category, _ in categories:
        rgb = tuple(colour[category])
        if category in things:
            while rgb in taken:
                rgb = tuple(np.clip(colour[category] + rng.integers(-30, 31, 3), 0, 255))
            taken.add(rgb)
        ids.append(int(rgb[0]) + 256 * int(rgb[1]) + 256 * 256 * int(rgb[2]))
    return ids


class _Scene:
    """A photo and its map of segment keys, painted together back to front: key k > 0 is ``segments[k - 1]``
    (category id, iscrowd), key 0 is void. Shapes painted with ``key=None`` change the photo only (texture)."""

    def __init__(self, height: int, width: int):
        self.photo, self.keys = Image.new("RGB", (width, height)), Image.new("I", (width, height), 0)
        self.draw, self.label = ImageDraw.Draw(self.photo), ImageDraw.Draw(self.keys)
        self.segments: list[tuple[int, int]] = []

    def segment(self, category: int, crowd: int = 0) -> int:
        self.segments.append((category, crowd))
        return len(self.segments)

    def paint(self, shape: str, xy, colour, key: int | None = None, **options) -> None:
        getattr(self.draw, shape)(xy, fill=tuple(int(c) for c in colour), **options)
        if key is not None:
            getattr(self.label, shape)(xy, fill=key, **options)


def _jitter(rng: np.random.Generator, colour, amount: int = 18) -> np.ndarray:
    return np.clip(np.array(colour) + rng.integers(-amount, amount + 1, 3), 0, 255)


def _car(scene: _Scene, rng: np.random.Generator, key: int, x: float, feet: float, w: float) -> None:
    h = 0.42 * w
    paint = _jitter(rng, CAR_PAINT[rng.integers(len(CAR_PAINT))], 12)
    scene.paint("ellipse", [x - 0.05 * w, feet - 0.12 * h, x + 1.05 * w, feet + 0.1 * h], (45, 45, 48))  # shadow
    scene.paint("rounded_rectangle", [x, feet - 0.72 * h, x + w, feet - 0.15 * h], paint, key, radius=0.15 * h)
    scene.paint("polygon", [(x + 0.2 * w, feet - 0.7 * h), (x + 0.3 * w, feet - h), (x + 0.72 * w, feet - h),
                            (x + 0.85 * w, feet - 0.7 * h)], paint, key)  # cabin
    scene.paint("polygon", [(x + 0.27 * w, feet - 0.72 * h), (x + 0.34 * w, feet - 0.93 * h),
                            (x + 0.69 * w, feet - 0.93 * h), (x + 0.78 * w, feet - 0.72 * h)], (60, 75, 95))  # glass
    for wheel in (x + 0.22 * w, x + 0.78 * w):
        scene.paint("ellipse", [wheel - 0.11 * w, feet - 0.25 * h, wheel + 0.11 * w, feet], (20, 20, 22), key)


def _person(scene: _Scene, rng: np.random.Generator, key: int, x: float, feet: float, h: float) -> None:
    shirt, trousers = CLOTHES[rng.integers(len(CLOTHES))], CLOTHES[rng.integers(len(CLOTHES))]
    skin, step = SKIN[rng.integers(len(SKIN))], h * rng.uniform(0.0, 0.08)
    leg = max(1, round(0.08 * h))
    scene.paint("line", [(x - 0.04 * h, feet - 0.48 * h), (x - 0.04 * h - step, feet)], trousers, key, width=leg)
    scene.paint("line", [(x + 0.04 * h, feet - 0.48 * h), (x + 0.04 * h + step, feet)], trousers, key, width=leg)
    scene.paint("rectangle", [x - 0.11 * h, feet - 0.82 * h, x + 0.11 * h, feet - 0.45 * h], shirt, key)
    for side in (-1, 1):  # arms
        scene.paint("line", [(x + side * 0.12 * h, feet - 0.8 * h), (x + side * 0.16 * h, feet - 0.5 * h)],
                    shirt, key, width=max(1, round(0.05 * h)))
    scene.paint("ellipse", [x - 0.08 * h, feet - h, x + 0.08 * h, feet - 0.82 * h], skin, key)


def _twin_sample(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, list]:
    """``(photo uint8 (H, W, 3), keys int32 (H, W), segments)``: a street scene, see :func:`write_twin`."""
    scene = _Scene(height, width)
    horizon = height * rng.uniform(0.45, 0.6)
    kerb = horizon + height * rng.uniform(0.03, 0.06)
    # sky: a vertical gradient, blue or overcast, with clouds (texture only)
    sky, top = scene.segment(SKY), _jitter(rng, (95, 150, 215) if rng.random() < 0.75 else (185, 190, 200), 15)
    scene.paint("rectangle", [0, 0, width, height], (0, 0, 0), sky)
    for y in range(int(horizon) + 1):
        scene.paint("line", [(0, y), (width, y)], top + (y / horizon) * np.array([50, 40, 20]))
    for _ in range(rng.integers(0, 4)):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, horizon * 0.5), width * rng.uniform(0.04, 0.1)
        scene.paint("ellipse", [cx - 2 * r, cy - r * 0.6, cx + 2 * r, cy + r * 0.6], _jitter(rng, (235, 238, 242), 8))
    # buildings along the horizon, with windows; one segment for all (stuff)
    building, x = scene.segment(BUILDING), -width * rng.uniform(0, 0.1)
    while x < width:
        w = width * rng.uniform(0.12, 0.3)
        if rng.random() < 0.85:
            roof = height * rng.uniform(0.04, 0.38)
            scene.paint("rectangle", [x, roof, x + w, horizon], _jitter(rng, FACADES[rng.integers(len(FACADES))]),
                        building)
            glass = (40, 50, 65) if rng.random() < 0.6 else (170, 200, 220)
            size, pitch = max(1.0, w * 0.1), max(3.0, w * rng.uniform(0.18, 0.26))
            for wx in np.arange(x + pitch * 0.4, x + w - size, pitch):
                for wy in np.arange(roof + pitch * 0.4, horizon - 2 * size, pitch):
                    scene.paint("rectangle", [wx, wy, wx + size, wy + 1.4 * size], glass)
        x += w
    # road (stuff) below a pavement strip that nobody labelled (void), with lane markings (texture)
    road = scene.segment(ROAD)
    scene.paint("rectangle", [0, horizon, width, height], _jitter(rng, (85, 85, 90), 12), road)
    scene.paint("rectangle", [0, horizon, width, kerb], _jitter(rng, (175, 165, 150), 12), 0)
    for _ in range(rng.integers(1, 3)):
        y = rng.uniform(kerb + 0.1 * height, height)
        dash = width * rng.uniform(0.05, 0.12)
        for dx in np.arange(-rng.uniform(0, 2 * dash), width, 2 * dash):
            scene.paint("line", [(dx, y), (dx + dash, y)], (225, 225, 215), width=max(1, round(height * 0.012)))
    # vegetation (stuff): trees in front of the buildings, bushes on the pavement
    if rng.random() < 0.85:
        tree = scene.segment(TREE)
        for _ in range(rng.integers(1, 4)):
            cx, r = rng.uniform(0, width), height * rng.uniform(0.08, 0.18)
            scene.paint("rectangle", [cx - 0.1 * r, horizon - 1.2 * r, cx + 0.1 * r, kerb], (85, 60, 40), tree)
            crown = _jitter(rng, (60, 120, 45), 20)
            scene.paint("ellipse", [cx - r, horizon - 2.6 * r, cx + r, horizon - 0.8 * r], crown, tree)
            for _ in range(12):  # leaves: darker and lighter dots
                lx, ly = cx + rng.uniform(-0.7, 0.7) * r, horizon - rng.uniform(1.1, 2.3) * r
                scene.paint("ellipse", [lx, ly, lx + 0.25 * r, ly + 0.25 * r], _jitter(rng, crown, 30))
        for _ in range(rng.integers(0, 3)):
            cx, r = rng.uniform(0, width), height * rng.uniform(0.03, 0.06)
            scene.paint("ellipse", [cx - 2 * r, kerb - 1.5 * r, cx + 2 * r, kerb + 0.3 * r],
                        _jitter(rng, (70, 130, 50), 20), tree)
    # clutter nobody labelled (void): poles, signs, bins
    for _ in range(rng.integers(1, 4)):
        cx, base = rng.uniform(0, width), rng.uniform(horizon, kerb)
        if rng.random() < 0.6:
            scene.paint("rectangle", [cx, base - height * rng.uniform(0.3, 0.5), cx + max(1, width * 0.012), base],
                        (50, 50, 55), 0)
            if rng.random() < 0.5:
                r = height * 0.035
                scene.paint("ellipse", [cx - r, base - height * 0.45, cx + r, base - height * 0.45 + 2 * r],
                            (200, 40, 40), 0)
        else:
            scene.paint("rectangle", [cx, base - height * 0.06, cx + width * 0.035, base], (40, 90, 60), 0)
    # things, far (near the horizon) to near: a crowd, rows of touching cars, groups of people
    things = []  # (feet, kind, x, size)
    span = height - kerb
    if rng.random() < 0.4:
        things.append((kerb + 0.05 * span, "crowd", rng.uniform(0, 0.6 * width), width * rng.uniform(0.2, 0.35)))
    for _ in range(rng.integers(0, 3)):  # a row of cars, parked bumper to bumper
        feet = kerb + span * rng.uniform(0.15, 1.0)
        w = width * (0.12 + 0.3 * (feet - horizon) / (height - horizon)) * rng.uniform(0.85, 1.15)
        x = rng.uniform(-0.3 * w, width - 0.7 * w)
        for _ in range(rng.integers(1, 4)):
            things.append((feet + rng.uniform(-0.02, 0.02) * span, "car", x, w))
            x += w * rng.uniform(0.85, 1.02)  # touching or overlapping the previous one
    for _ in range(rng.integers(1, 4)):  # a group of people side by side
        feet = kerb + span * rng.uniform(0.1, 1.0)
        h = height * (0.12 + 0.5 * (feet - horizon) / (height - horizon)) * rng.uniform(0.85, 1.15)
        x = rng.uniform(0, width)
        for _ in range(rng.integers(1, 4)):
            things.append((feet + rng.uniform(-0.03, 0.03) * span, "person", x, h))
            x += h * rng.uniform(0.18, 0.3)  # shoulder to shoulder
    for feet, kind, x, size in sorted(things, key=lambda t: t[0]):
        if kind == "crowd":  # many small people as one segment, iscrowd = 1
            crowd = scene.segment(PERSON, crowd=1)
            for px in np.sort(rng.uniform(x, x + size, rng.integers(6, 14))):
                _person(scene, rng, crowd, px, feet + rng.uniform(-1, 1) * 0.02 * span, 0.12 * height)
        elif kind == "car":
            _car(scene, rng, scene.segment(CAR), x, feet, size)
        else:
            _person(scene, rng, scene.segment(PERSON), x, feet, size)
    keys = np.asarray(scene.keys, np.int32).copy()
    # annotators leave a thin unlabelled gap where a large thing meets stuff (not where two things touch)
    thing_keys = np.array([False] + [c in (PERSON, CAR) for c, _ in scene.segments])
    if rng.random() < 0.6:
        large = [k for k, n in zip(*np.unique(keys, return_counts=True)) if thing_keys[k] and n > 0.01 * keys.size]
        not_thing = ~thing_keys[keys]
        edge = np.zeros(keys.shape, bool)  # a pixel whose 4-neighbour is stuff or void of another key
        edge[1:] |= (keys[1:] != keys[:-1]) & not_thing[:-1]
        edge[:-1] |= (keys[:-1] != keys[1:]) & not_thing[1:]
        edge[:, 1:] |= (keys[:, 1:] != keys[:, :-1]) & not_thing[:, :-1]
        edge[:, :-1] |= (keys[:, :-1] != keys[:, 1:]) & not_thing[:, 1:]
        keys[edge & np.isin(keys, large)] = 0
    photo = np.asarray(scene.photo.filter(ImageFilter.GaussianBlur(0.5)), np.float32)
    photo = (photo + rng.normal(0, 6, photo.shape)).clip(0, 255).astype(np.uint8)
    return photo, keys, scene.segments


def write_twin(root: str | Path, n_images: int = 40, seed: int = 0, size: tuple[int, int] = (96, 128)) -> Path:
    """Write a small COCO panoptic look-alike into ``root`` in the official layout; returns ``root``.

    ``n_images`` street scenes of ``size`` (height, width) pixels: sky on top (blue or overcast, clouds),
    buildings with windows along the horizon, trees and bushes, a road with lane markings at the bottom;
    cars (rows of touching or overlapping cars) and people (groups side by side) of sizes that grow towards
    the bottom, as in perspective; in some images a distant crowd of people labelled as one ``iscrowd=1``
    segment. Void (id 0): an unlabelled pavement strip, poles, signs and bins, and in some images a thin gap
    around large things where they meet stuff, as annotators leave. Photos are blurred, noisy JPEGs (quality
    90); PNGs are RGB-encoded ids made as panopticapi makes them; the JSON has the real format with six real
    categories (``CATEGORIES``), exact areas and boxes. Deterministic for a given ``seed``.
    """
    root = Path(root)
    png_folder, photo_folder = root / "annotations" / PNG_FOLDER, root / PHOTO_FOLDER
    png_folder.mkdir(parents=True, exist_ok=True)
    photo_folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    height, width = size
    image_ids = sorted(rng.choice(np.arange(1, 581930), n_images, replace=False).tolist())
    images, annotations = [], []
    for image_id in image_ids:
        photo, keys, segments = _twin_sample(rng, height, width)
        present = [k for k in np.unique(keys).tolist() if k != 0]
        order = sorted(present, key=lambda k: (-int(segments[k - 1][0] in (PERSON, CAR)), segments[k - 1][0], k))
        ids = dict(zip(order, _segment_ids(rng, [segments[k - 1] for k in order])))
        table = np.zeros(len(segments) + 1, np.uint32)
        table[list(ids)] = list(ids.values())
        id_map = table[keys]
        stats = segment_stats(id_map)
        name = f"{image_id:012d}"
        Image.fromarray(photo).save(photo_folder / f"{name}.jpg", quality=90)
        write_id_map(png_folder / f"{name}.png", id_map)
        images.append({"license": 1, "file_name": f"{name}.jpg", "coco_url": "", "height": height, "width": width,
                       "date_captured": "2013-11-14 00:00:00", "flickr_url": "", "id": image_id})
        annotations.append({"segments_info": [{"area": stats[ids[k]][0], "category_id": segments[k - 1][0],
                                               "iscrowd": segments[k - 1][1], "id": ids[k], "bbox": stats[ids[k]][1]}
                                              for k in order],
                            "file_name": f"{name}.png", "image_id": image_id})
    content = {"info": {"description": "Synthetic twin of COCO 2018 Panoptic val2017 (course_utils)",
                        "url": "http://cocodataset.org", "version": "1.0", "year": 2018, "contributor": "",
                        "date_created": "2018-06-01 00:00:00.0"},
               "licenses": [{"url": "", "id": 1, "name": "synthetic data written by course_utils"}],
               "images": images, "annotations": annotations, "categories": CATEGORIES}
    (root / "annotations" / "panoptic_val2017.json").write_text(json.dumps(content), newline="\n")
    return root


INFO = DatasetInfo(
    name="coco_panoptic",
    title="COCO panoptic val2017: 5000 photos with panoptic annotations of 133 categories",
    notebook="09",
    marker=ANNOTATION_FILE,
    url=ANNOTATIONS_URL,
    sha256=ANNOTATIONS_SHA256,
    licence="annotations CC BY 4.0 (COCO Consortium); photos under their Flickr licences (listed in the JSON)",
    citation="Kirillov, He, Girshick, Rother, Dollar: Panoptic Segmentation, CVPR 2019; "
             "Lin et al.: Microsoft COCO: Common Objects in Context, ECCV 2014",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
