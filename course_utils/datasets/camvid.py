"""CamVid street scenes: the torch Dataset over the Kaggle layout, and its synthetic twin.

Layout (Kaggle ``carlolepelaars/camvid``; ``root`` is what ``data.locate`` returns)::

    CamVid/class_dict.csv                      name,r,g,b: 32 rows, some with a space after a comma
    CamVid/{train,val,test}/<name>.png         960x720 RGB frames
    CamVid/{train,val,test}_labels/<name>_L.png  labels, RGB colour-coded (one colour per class)

Labels become class ids by **exact** colour match through ``class_dict.csv``; ``Void`` becomes
``IGNORE_INDEX``, which losses and metrics skip. A label with colours of no class (saved as JPEG,
resized with interpolation, or a grey map of class ids) is refused: guessing the nearest colour
would train on wrong classes without a word. Labels must be resized with nearest neighbour only.

The colour lookup costs about 10 ms per 960x720 label, as much as decoding it, and gives the same
answer every epoch; so each label is converted once, when the dataset is built, into a greyscale
PNG of class ids cached in ``data.derived_dir("camvid")``, and training reads those.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from torch.utils.data import Dataset

from course_utils.datasets import DatasetInfo, find_folder, read_grey, read_image, report_unused, reseed, write_atomic

IGNORE_INDEX = 255
SPLITS = ("train", "val", "test")
TWIN_VERSION = 1
CACHE_VERSION = 1  # bump when the cached class-id labels change meaning, so old caches are not reused

# The CamVid labels were painted with the 32 colours of class_dict.csv and saved losslessly, so a
# faithful copy should have no other colour. A label saved as JPEG or resized with interpolation has
# 5-58 % of its pixels in colours of no class (measured on the twin: bilinear resizing to 90 % of the
# size already gives 5-8 %), a grey map of class ids 100 %. Up to 1 % become IGNORE_INDEX with a
# printed report: enough for a few touched-up pixels in a real label without refusing the whole
# dataset (we could not check every real label here), far below what any conversion produces.
UNKNOWN_TOLERANCE = 0.01
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}  # images that are not PNG

# The widely used 11-class grouping of the 32 CamVid classes (SegNet's benchmark); Void is ignored.
GROUPS_11 = {
    "Sky": ["Sky"],
    "Building": ["Building", "Archway", "Bridge", "Tunnel", "Wall"],
    "Pole": ["Column_Pole", "TrafficCone"],
    "Road": ["Road", "LaneMkgsDriv", "LaneMkgsNonDriv"],
    "Pavement": ["Sidewalk", "ParkingBlock", "RoadShoulder"],
    "Tree": ["Tree", "VegetationMisc"],
    "SignSymbol": ["SignSymbol", "Misc_Text", "TrafficLight"],
    "Fence": ["Fence"],
    "Car": ["Car", "SUVPickupTruck", "Truck_Bus", "Train", "OtherMoving"],
    "Pedestrian": ["Pedestrian", "Child", "CartLuggagePram", "Animal"],
    "Bicyclist": ["Bicyclist", "MotorcycleScooter"],
}


def read_class_dict(path: Path) -> list[tuple[str, tuple[int, int, int]]]:
    """``[(name, (r, g, b)), ...]`` in file order, tolerant of the spaces after commas and of the
    byte-order mark that Excel's "CSV UTF-8" writes. Two rows with one name or one colour are refused:
    a pixel of a shared colour would silently get the class of whichever row came last."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, [cell.strip() for cell in row]) for row in reader if row]
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: expected UTF-8 text ({error}); save it again as CSV UTF-8") from error
    if not rows or [c.lower() for c in rows[0][1]] != ["name", "r", "g", "b"]:
        raise ValueError(f"{path}: expected the header 'name,r,g,b', found {rows[0][1] if rows else 'an empty file'}")
    classes, lines_of_name, rows_of_colour = [], {}, {}
    for line, row in rows[1:]:
        try:
            name, r, g, b = row
            colour = (int(r), int(g), int(b))
        except ValueError as error:
            raise ValueError(f"{path}, line {line}: expected 'name,r,g,b' with integer colours, found {row}") from error
        if not all(0 <= c <= 255 for c in colour):
            raise ValueError(f"{path}, line {line}: colour values must be 0-255, found {row}")
        classes.append((name, colour))
        lines_of_name.setdefault(name, []).append(line)
        rows_of_colour.setdefault(colour, []).append(f"{name} on line {line}")
    repeated = [f"name {name!r} on lines {lines}" for name, lines in lines_of_name.items() if len(lines) > 1]
    repeated += [f"colour {colour} for {' and '.join(rows)}" for colour, rows in rows_of_colour.items()
                 if len(rows) > 1]
    if repeated:
        raise ValueError(f"{path}: each class needs its own name and its own colour, found {'; '.join(repeated)}. "
                         f"Fix those rows (the Kaggle copy has 32 rows, all different) or download the dataset again.")
    return classes


def _lookup(label_rgb: np.ndarray, colours: dict[tuple[int, int, int], int]) -> tuple[np.ndarray, np.ndarray]:
    """(class ids, mask of pixels whose colour is not in ``colours``); unknown pixels get IGNORE_INDEX.

    Each colour becomes one integer r*65536 + g*256 + b; a binary search in the sorted known codes
    finds its class, and a code that is not there exactly is unknown (no nearest colour is guessed).
    """
    codes = (label_rgb[..., 0].astype(np.int64) << 16) | (label_rgb[..., 1].astype(np.int64) << 8) | label_rgb[..., 2]
    known = np.array(sorted(((r << 16) | (g << 8) | b, i) for (r, g, b), i in colours.items()), dtype=np.int64)
    position = np.searchsorted(known[:, 0], codes).clip(max=len(known) - 1)
    exact = known[position, 0] == codes
    return np.where(exact, known[position, 1], IGNORE_INDEX).astype(np.uint8), ~exact


def rgb_to_ids(label_rgb: np.ndarray, colours: dict[tuple[int, int, int], int]) -> np.ndarray:
    """Colour-coded (H, W, 3) uint8 label to (H, W) class ids; colours not in ``colours`` -> IGNORE_INDEX."""
    return _lookup(label_rgb, colours)[0]


def _common_colours(label_rgb: np.ndarray, mask: np.ndarray, top: int = 3) -> list[list[int]]:
    """The ``top`` most frequent colours under ``mask`` as ``[r, g, b, pixel count]``, most frequent first."""
    colours, counts = np.unique(label_rgb[mask], axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    return [[*map(int, colours[i]), int(counts[i])] for i in order]


def _examples(colours: list[list[int]]) -> str:
    return ", ".join(f"({r}, {g}, {b}) x{n:,}" for r, g, b, n in colours)


def _what_file(path: Path) -> str:
    """What a label file really is, for the error message (PIL reads only the header here)."""
    try:
        with Image.open(path) as im:
            kind, mode = im.format, im.mode
    except OSError:
        return ""
    if kind != "PNG":
        lossy = ": lossy compression invents colours of no class along every edge" if kind in ("JPEG", "WEBP") else ""
        return f"The file holds {kind} data, not PNG{lossy}."
    if mode in ("1", "L", "LA", "I", "I;16"):
        return (f"It is a greyscale PNG (mode {mode}), perhaps a map of class ids; CamVid labels are RGB PNGs with "
                f"the colours of class_dict.csv.")
    if mode == "P":
        return "It is a palette PNG (mode P) whose palette is not the colours of class_dict.csv."
    return "It is an RGB PNG, perhaps resized with interpolation or saved as JPEG on its way here."


class CamVid(Dataset):
    """CamVid frames and their class-id labels.

    ``classes="31"``: every class of ``class_dict.csv`` in file order: its 32 rows less Void.
    ``classes="11"``: the 11-class grouping of ``GROUPS_11`` used by SegNet and most papers since.
    In both, Void is ``IGNORE_INDEX`` (255). The old name ``"32"`` still gives the 31 classes, with a warning.

    Building the dataset checks every file of the split and converts new or changed labels to
    class ids (cached), so a bad label stops you here, not in the middle of training.

    ``image_paths`` are the frames, ``label_paths`` their colour-coded labels, ``id_paths`` the
    cached class-id PNGs that ``read_label`` and items read.

    Without a ``transform`` an item is ``(image uint8 HxWx3, label uint8 HxW)``; with one (an
    albumentations pipeline, which resizes masks with nearest neighbour), the transformed pair.
    """

    def __init__(self, root: str | Path, split: str = "train", classes: str = "11", transform: Callable | None = None):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if classes == "32":  # the old name: class_dict.csv has 32 rows, but Void is ignored, so 31 classes are learned
            warnings.warn("CamVid(classes='32') is now classes='31' (the 32 rows of class_dict.csv less Void); "
                          "it gives the same 31 classes", FutureWarning, stacklevel=2)
            classes = "31"
        if classes not in ("11", "31"):
            raise ValueError(f"classes must be '11' (the grouping of the papers) or '31' (every class but Void), "
                             f"not {classes!r}")
        self.root = find_folder(root, lambda f: (f / "class_dict.csv").is_file(),
                                "class_dict.csv (Kaggle layout: CamVid/class_dict.csv beside train/ and train_labels/)")
        self.split, self.classes, self.transform = split, classes, transform
        table = read_class_dict(self.root / "class_dict.csv")
        by_name = dict(table)
        if classes == "31":
            self.class_names = [name for name, _ in table if name != "Void"]
            self.class_colours = [colour for name, colour in table if name != "Void"]
            self.colour_to_id = {colour: i for i, colour in enumerate(self.class_colours)}
        else:
            self.class_names = list(GROUPS_11)
            missing = [n for members in GROUPS_11.values() for n in members if n not in by_name]
            if missing:
                raise ValueError(f"{self.root / 'class_dict.csv'} lacks classes {missing} needed by the 11-class "
                                 f"grouping; use classes='31'")
            self.colour_to_id = {by_name[n]: i for i, members in enumerate(GROUPS_11.values()) for n in members}
            self.class_colours = [by_name[members[0]] for members in GROUPS_11.values()]
        if "Void" in by_name:
            self.colour_to_id[by_name["Void"]] = IGNORE_INDEX  # a known colour, ignored on purpose
        self.image_paths, self.label_paths = self._find_files()
        self.id_paths = self._convert_labels()

    def _find_files(self) -> tuple[list[Path], list[Path]]:
        """The PNG frames of the split and their labels; other files are an error or a printed count."""
        image_dir, label_dir = self.root / self.split, self.root / f"{self.split}_labels"
        for folder in (image_dir, label_dir):
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is missing; the CamVid layout has {self.split}/ and "
                                        f"{self.split}_labels/ beside class_dict.csv")
        entries = sorted(image_dir.iterdir())
        images = [p for p in entries if p.suffix.lower() == ".png" and p.is_file()]
        other_images = [p.name for p in entries if p.suffix.lower() in IMAGE_SUFFIXES]
        if other_images:
            raise ValueError(f"{image_dir}: CamVid frames are PNG files, found {len(other_images)} images of another "
                             f"format, e.g. {other_images[:3]}. They would be left out of the {self.split} split: "
                             f"convert them to PNG (lossless; a JPEG frame differs from what was labelled) or remove "
                             f"them, with their labels.")
        report_unused(image_dir, "entries that are not PNG frames", [p.name for p in entries if p not in images])
        if not images:
            raise FileNotFoundError(f"no .png frames in {image_dir}")
        labels = [label_dir / f"{p.stem}_L.png" for p in images]
        missing = [p for p in labels if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} frames in {image_dir} have no label, e.g. {missing[0]} "
                                    f"(CamVid labels are named <frame>_L.png); restore them or remove those frames")
        expected = {p.name for p in labels}
        report_unused(label_dir, f"labels of no frame in {image_dir.name}/",
                      sorted(p.name for p in label_dir.iterdir() if p.name not in expected))
        return images, labels

    def _convert_labels(self) -> list[Path]:
        """Class-id PNGs of all labels of the split, converted once and cached.

        The cache folder's name is a hash of what the conversion depends on (the dataset's folder, the
        content of class_dict.csv, ``classes``); ``index.json`` records each label's size and
        modification time, so a changed label is converted again. Every label is checked before
        anything is raised, so one run names all the bad files.
        """
        from course_utils import data  # here, not at the top: data imports this module

        class_dict = (self.root / "class_dict.csv").read_bytes()
        key = json.dumps([CACHE_VERSION, str(self.root.resolve()), hashlib.sha256(class_dict).hexdigest(),
                          self.classes])
        folder = data.derived_dir("camvid") / hashlib.sha256(key.encode()).hexdigest()[:16] / f"{self.split}_labels"
        folder.mkdir(parents=True, exist_ok=True)
        index_file = folder / "index.json"
        old = json.loads(index_file.read_text()) if index_file.is_file() else {}
        index, bad, todo = {}, [], []
        for image, label in zip(self.image_paths, self.label_paths):
            stat = label.stat()
            entry = old.get(label.name)
            if entry and [entry["size"], entry["mtime_ns"]] == [stat.st_size, stat.st_mtime_ns] \
                    and (folder / label.name).is_file():
                index[label.name] = entry
            else:
                todo.append((image, label, stat))
        start = time.perf_counter()
        if todo:
            print(f"CamVid {self.split}: converting {len(todo)} of {len(self.label_paths)} colour labels to class ids "
                  f"(once; cached in {folder})")
        for image, label, stat in todo:
            try:
                ids, unknown = self._check_and_convert(image, label)
            except ValueError as error:  # DamagedFileError included: collect them all, then stop
                bad.append(str(error))
                continue
            _write_png(folder / label.name, ids)
            index[label.name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, **unknown}
        if todo:
            write_atomic(index_file, lambda f: f.write(json.dumps(index).encode()))
            print(f"CamVid {self.split}: {len(todo) - len(bad)} converted in {time.perf_counter() - start:.1f} s")
        if bad:
            listed = "\n".join(f"  - {problem}" for problem in bad[:10])
            more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise ValueError(f"CamVid {self.split}: {len(bad)} of {len(self.label_paths)} labels cannot be used:\n"
                             f"{listed}{more}\nCamVid labels are lossless RGB PNGs painted with the colours of "
                             f"{self.root / 'class_dict.csv'}. Use the original files (download the dataset again); "
                             f"resize labels with nearest neighbour only.")
        stray = {name: entry for name, entry in index.items() if entry["unknown"]}
        if stray:
            examples = "; ".join(f"{name}: {e['unknown']} px, e.g. {_examples(e['examples'])}"
                                 for name, e in list(stray.items())[:3])
            print(f"CamVid {self.split}: {len(stray)} labels have a few pixels (at most {UNKNOWN_TOLERANCE:.1%} each) "
                  f"in colours of no class; they are ignored ({IGNORE_INDEX}) like Void: {examples}")
        return [folder / p.name for p in self.label_paths]

    def _check_and_convert(self, image: Path, label: Path) -> tuple[np.ndarray, dict]:
        """Class ids of one label, and its unknown pixels: their count and most common colours."""
        rgb = read_image(label)
        try:
            with Image.open(image) as frame:  # reads only the header
                width, height = frame.size
        except OSError as error:
            raise ValueError(f"{image}: not an image PIL can read ({error}); copy the dataset again") from error
        if (width, height) != (rgb.shape[1], rgb.shape[0]):
            raise ValueError(f"{label} is {rgb.shape[1]}x{rgb.shape[0]} but its frame {image.name} is "
                             f"{width}x{height}; frame and label must be the same size.")
        ids, unknown = _lookup(rgb, self.colour_to_id)
        examples = _common_colours(rgb, unknown) if unknown.any() else []
        if unknown.mean() > UNKNOWN_TOLERANCE:
            raise ValueError(f"{label}: {unknown.mean():.1%} of its pixels have colours in no row of class_dict.csv, "
                             f"e.g. {_examples(examples)}. {_what_file(label)}")
        return ids, {"unknown": int(unknown.sum()), "examples": examples}

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.image_paths)

    def read_label(self, index: int) -> np.ndarray:
        """The (H, W) uint8 class ids of item ``index``, from the cache written when the dataset was built."""
        return read_grey(self.id_paths[index])

    def __getitem__(self, index: int):
        image, label = read_image(self.image_paths[index]), self.read_label(index)
        if image.shape[:2] != label.shape:
            raise ValueError(f"{self.label_paths[index]} is {label.shape[1]}x{label.shape[0]} but its frame is "
                             f"{image.shape[1]}x{image.shape[0]}; frame and label must be the same size")
        if self.transform is None:
            return image, label
        reseed(self.transform)  # augmentation drawn from torch's generator: a resumed run repeats it exactly
        out = self.transform(image=image, mask=label)
        return out["image"], out["mask"]


def _write_png(path: Path, array: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"OpenCV could not encode {path}")
    write_atomic(path, lambda f: f.write(encoded.tobytes()))


# --- the synthetic twin -------------------------------------------------------------------------

# the real class_dict.csv, spacing quirks included
CLASS_DICT_CSV = """name,r,g,b
Animal,64,128,64
Archway,192,0,128
Bicyclist,0,128, 192
Bridge,0, 128, 64
Building,128, 0, 0
Car,64, 0, 128
CartLuggagePram,64, 0, 192
Child,192, 128, 64
Column_Pole,192, 192, 128
Fence,64, 64, 128
LaneMkgsDriv,128, 0, 192
LaneMkgsNonDriv,192, 0, 64
Misc_Text,128, 128, 64
MotorcycleScooter,192, 0, 192
OtherMoving,128, 64, 64
ParkingBlock,64, 192, 128
Pedestrian,64, 64, 0
Road,128, 64, 128
RoadShoulder,128, 128, 192
Sidewalk,0, 0, 192
SignSymbol,192, 128, 128
Sky,128, 128, 128
SUVPickupTruck,64, 128,192
TrafficCone,0, 0, 64
TrafficLight,0, 64, 64
Train,192, 64, 128
Tree,128, 128, 0
Truck_Bus,192, 128, 192
Tunnel,64, 0, 64
VegetationMisc,192, 192, 0
Void,0, 0, 0
Wall,64, 192, 0
"""


def _jitter(rng: np.random.Generator, colour, amount: int = 25) -> tuple[int, ...]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _twin_scene(rng: np.random.Generator, width: int, height: int, colours: dict[str, tuple]) -> tuple:
    """One street scene: the photo-like frame and its colour-coded label, drawn with the same shapes."""
    image = Image.new("RGB", (width, height))
    label = Image.new("RGB", (width, height), colours["Void"])
    draw_i, draw_l = ImageDraw.Draw(image), ImageDraw.Draw(label)

    def shape(kind: str, xy, cls: str, fill) -> None:
        getattr(draw_i, kind)(xy, fill=fill)
        getattr(draw_l, kind)(xy, fill=colours[cls])

    horizon = int(height * rng.uniform(0.38, 0.52))
    vanish = width * rng.uniform(0.4, 0.6)
    # sky with a vertical gradient, drawn in bands
    top, bottom = np.array(_jitter(rng, (150, 180, 215))), np.array(_jitter(rng, (215, 222, 230)))
    for y in range(0, horizon, 4):
        shade = tuple(int(v) for v in top + (bottom - top) * y / horizon)
        shape("rectangle", [0, y, width, y + 4], "Sky", shade)
    # buildings with windows along the skyline, then trees in front of some
    x = 0
    while x < width:
        w = int(rng.integers(max(1, width // 8), max(2, width // 4)))  # at least 1 pixel, or the loop never ends
        low = int(horizon * 0.15)
        top_y = int(rng.integers(low, max(low + 1, int(horizon * 0.7))))
        wall = _jitter(rng, (150, 110, 90), 40)
        shape("rectangle", [x, top_y, x + w, horizon + height // 10], "Building", wall)
        for wy in range(top_y + 8, horizon, 16):
            for wx in range(x + 6, x + w - 10, 14):
                draw_i.rectangle([wx, wy, wx + 6, wy + 8], fill=_jitter(rng, (70, 80, 95), 15))
        x += w
    for _ in range(int(rng.integers(1, 4))):
        cx, cy, r = rng.uniform(0, width), horizon * rng.uniform(0.5, 0.9), rng.uniform(height * 0.08, height * 0.16)
        shape("ellipse", [cx - r, cy - r, cx + r, cy + r * 1.2], "Tree", _jitter(rng, (70, 110, 45), 20))
        ground = horizon + height * 0.1
        if cy + r <= ground:  # a crown low enough to touch the pavement has no visible trunk
            shape("rectangle", [cx - r * 0.08, cy + r, cx + r * 0.08, ground], "Tree", (80, 60, 40))
    # pavements and the road in perspective, with lane markings
    pave = _jitter(rng, (170, 165, 150), 15)
    shape("rectangle", [0, horizon + height // 10, width, height], "Sidewalk", pave)
    road = _jitter(rng, (90, 90, 95), 12)
    left_edge, right_edge = width * rng.uniform(-0.2, 0.1), width * rng.uniform(0.9, 1.2)
    shape("polygon", [(vanish - width * 0.04, horizon + height // 10), (vanish + width * 0.04, horizon + height // 10),
                      (right_edge, height), (left_edge, height)], "Road", road)
    for t in np.linspace(0.15, 0.95, 6)[::2]:
        y0 = horizon + height // 10 + (height - horizon) * t
        y1 = y0 + (height - horizon) * 0.1
        half = 1 + 3 * t
        shape("polygon", [(vanish - half, y0), (vanish + half, y0), (vanish + half * 1.6, min(y1, height)),
                          (vanish - half * 1.6, min(y1, height))], "LaneMkgsDriv", (235, 235, 225))
    # a fence on one side, poles with signs, cars on the road, pedestrians on the pavement
    if rng.random() < 0.6:
        fx = (0, width * 0.25) if rng.random() < 0.5 else (width * 0.75, width)
        fy = horizon + height * rng.uniform(0.05, 0.1)
        for px in np.arange(fx[0], fx[1], 10):
            shape("rectangle", [px, fy, px + 3, fy + height * 0.12], "Fence", (120, 100, 80))
        shape("rectangle", [fx[0], fy + 4, fx[1], fy + 8], "Fence", (120, 100, 80))
    for _ in range(int(rng.integers(1, 4))):
        px = rng.uniform(0.05, 0.95) * width
        base = horizon + height * rng.uniform(0.15, 0.3)
        shape("rectangle", [px, base - height * 0.35, px + 4, base], "Column_Pole", (60, 60, 60))
        if rng.random() < 0.6:
            shape("rectangle", [px - 8, base - height * 0.35, px + 12, base - height * 0.3], "SignSymbol",
                  _jitter(rng, (200, 40, 40), 30))
    for _ in range(int(rng.integers(1, 4))):
        depth = rng.uniform(0.2, 1.0)  # 0 far, 1 near
        cw, ch = width * (0.08 + 0.18 * depth), height * (0.05 + 0.12 * depth)
        cy = horizon + height // 10 + (height - horizon) * depth * 0.7
        cx = vanish + (rng.uniform(-0.6, 0.6) * width * depth)
        body = _jitter(rng, [(180, 30, 30), (30, 60, 160), (220, 220, 220), (30, 30, 30), (200, 170, 40)]
                       [rng.integers(0, 5)], 20)
        shape("rectangle", [cx - cw / 2, cy - ch, cx + cw / 2, cy], "Car", body)
        shape("rectangle", [cx - cw / 3, cy - ch * 1.5, cx + cw / 3, cy - ch], "Car", tuple(v // 2 + 60 for v in body))
        for wx in (cx - cw / 3, cx + cw / 3):
            shape("ellipse", [wx - ch * 0.25, cy - ch * 0.25, wx + ch * 0.25, cy + ch * 0.25], "Car", (20, 20, 20))
    for _ in range(int(rng.integers(0, 4))):
        kind = "Bicyclist" if rng.random() < 0.2 else "Pedestrian"
        px = rng.uniform(0.02, 0.98) * width
        base = horizon + height * rng.uniform(0.15, 0.5)
        h = height * rng.uniform(0.12, 0.22)
        shape("ellipse", [px - h * 0.13, base - h, px + h * 0.13, base], kind, _jitter(rng, (60, 50, 90), 40))
        shape("ellipse", [px - h * 0.08, base - h * 1.15, px + h * 0.08, base - h * 0.92], kind, (220, 180, 150))
        if kind == "Bicyclist":
            shape("ellipse", [px - h * 0.35, base - h * 0.2, px + h * 0.35, base + h * 0.1], kind, (30, 30, 30))
    # like the real labels, a thin Void seam where the annotator's polygons meet
    edges = np.asarray(label.filter(ImageFilter.FIND_EDGES).convert("L")) > 0
    label_arr = np.asarray(label).copy()
    label_arr[edges & (rng.random(edges.shape) < 0.5)] = colours["Void"]
    # sensor noise and a global exposure change on the frame only
    frame = np.asarray(image).astype(np.float32) * rng.uniform(0.75, 1.15) + rng.normal(0, 7, (height, width, 3))
    return np.clip(frame, 0, 255).astype(np.uint8), label_arr


def write_twin(root: str | Path, counts: dict[str, int] | None = None, size: tuple[int, int] = (480, 360),
               seed: int = 0) -> Path:
    """Write a small CamVid look-alike in the Kaggle layout: RGB frames, colour-coded ``_L.png`` labels
    and the real ``class_dict.csv`` (spaces after commas included). Frames are 480x360 (half the real
    960x720) to keep smoke runs fast; names follow the real ``0001TP_006690`` pattern."""
    counts = counts or {"train": 24, "val": 8, "test": 4}
    root = Path(root)
    camvid = root / "CamVid"
    camvid.mkdir(parents=True, exist_ok=True)
    (camvid / "class_dict.csv").write_text(CLASS_DICT_CSV)
    colours = dict(read_class_dict(camvid / "class_dict.csv"))
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        (camvid / split).mkdir(exist_ok=True)
        (camvid / f"{split}_labels").mkdir(exist_ok=True)
        sequence = {"train": "0001TP", "val": "0016E5", "test": "Seq05VD"}[split]
        for i in range(count):
            frame, label = _twin_scene(rng, *size, colours)
            name = f"{sequence}_{6690 + 30 * i:06d}"
            Image.fromarray(frame).save(camvid / split / f"{name}.png")
            Image.fromarray(label).save(camvid / f"{split}_labels" / f"{name}_L.png")
    return root


INFO = DatasetInfo(
    name="camvid",
    title="CamVid: 701 street-scene frames with 32-class colour-coded labels",
    notebook="02",
    marker="CamVid/class_dict.csv",
    kaggle="carlolepelaars/camvid",
    licence="research and educational use (see mi.eng.cam.ac.uk/research/projects/VideoRec/CamVid)",
    citation="Brostow, Fauqueur, Cipolla, Semantic object classes in video: a high-definition ground "
             "truth database, Pattern Recognition Letters 2009",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
