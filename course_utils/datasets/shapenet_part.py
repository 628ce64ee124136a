"""ShapeNet-part segmentation (Yi et al. 2016, as PointNet++ prepared it): a shape reader, the torch Dataset over
the real layout, and its synthetic twin.

Layout of ``shapenetcore_partanno_segmentation_benchmark_v0_normal.zip`` (``root`` is what
:func:`course_utils.data.locate` returns; the folder is searched for, since copies nest it differently)::

    shapenetcore_partanno_segmentation_benchmark_v0_normal/
        synsetoffset2category.txt                 16 lines "<Category>\\t<synset>", e.g. "Airplane\\t02691156"
        train_test_split/shuffled_train_file_list.json   ["shape_data/<synset>/<id>", ...]  12137 shapes
        train_test_split/shuffled_val_file_list.json     1870 shapes
        train_test_split/shuffled_test_file_list.json    2874 shapes
        <synset>/<id>.txt                         one shape: a line "x y z nx ny nz label" per point

The Kaggle copy (``mitkir/shapenet``, the mirror that PyTorch Geometric's docs point to while the Stanford server
is down) unpacks to the same folder with the same three lists.

Splits: "train" is the official training list; "monitor" is the official **validation** list, which chooses
the checkpoint; "test" is the official test list, which is reported (as PointNet and PointNet++ report it);
"all" is the three lists together.

An item is one shape with ``n_points`` points, normalised into the unit sphere: centred on the mean of *all* its
points and scaled so that the farthest is at distance 1, as PointNet++ does before sampling (normals are
unchanged by this). The number of points differs from shape to shape (2598 in the real sample's skateboard), so
``n_points`` are drawn without replacement where the shape has enough, else all its points and random repeats
of some (:func:`sample_indices`). For training (``resample=True``, the default of "train") each access draws a fresh
sample from torch's global generator, which ``train.fit`` checkpoints and DataLoader workers are seeded from, so a
resumed run draws what an uninterrupted one would (see ``reseed``). For evaluation (the other splits) each shape
has one fixed sample, from a generator seeded by ``seed`` and the shape's synset and id: the same points on
every machine and run, whatever else is in the split.

Format pitfalls:

* The part label is written as a float (``45.000000``) and is a **global** part id 0-49: each category owns a
  range of them (:data:`SEG_CLASSES`; a skateboard's parts are 44, 45, 46). A model predicts 50 classes, and at
  test time the prediction is restricted to the parts of the shape's (known) category.
* ``shapenetcore_partanno_segmentation_benchmark_v0`` (without ``_normal``) is another archive: ``points/*.pts``
  and ``points_label/*.seg`` with local labels 1..k. This module reads the ``_normal`` one.
* y is the up axis (ShapeNet's models stand upright along +y), so a rotation augmentation turns about y.
* Coordinates come centred, with a bounding-box diagonal of about 1 (as ShapeNetCore scales its models),
  but not in the unit sphere.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from course_utils.datasets import DatasetInfo, find_folder, report_unused
from course_utils.datasets.point_sets import PointAugment, normalise

TWIN_VERSION = 1
FOLDER = "shapenetcore_partanno_segmentation_benchmark_v0_normal"
URL = f"https://shapenet.cs.stanford.edu/media/{FOLDER}.zip"
SPLITS = ("train", "monitor", "test", "all")
LIST_FILES = {"train": "shuffled_train_file_list.json", "monitor": "shuffled_val_file_list.json",
              "test": "shuffled_test_file_list.json"}
UP_AXIS = 1  # y
NUM_PARTS = 50

# synsetoffset2category.txt, in its order: the index of a name here is the category id (a model's one-hot input)
SYNSETS = {"Airplane": "02691156", "Bag": "02773838", "Cap": "02954340", "Car": "02958343", "Chair": "03001627",
           "Earphone": "03261776", "Guitar": "03467517", "Knife": "03624134", "Lamp": "03636649",
           "Laptop": "03642806", "Motorbike": "03790512", "Mug": "03797390", "Pistol": "03948459",
           "Rocket": "04099429", "Skateboard": "04225987", "Table": "04379243"}
CATEGORIES = tuple(SYNSETS)
# the global part ids of each category, as PointNet++'s and PyTorch Geometric's loaders list them
SEG_CLASSES = {"Airplane": (0, 1, 2, 3), "Bag": (4, 5), "Cap": (6, 7), "Car": (8, 9, 10, 11),
               "Chair": (12, 13, 14, 15), "Earphone": (16, 17, 18), "Guitar": (19, 20, 21), "Knife": (22, 23),
               "Lamp": (24, 25, 26, 27), "Laptop": (28, 29), "Motorbike": (30, 31, 32, 33, 34, 35), "Mug": (36, 37),
               "Pistol": (38, 39, 40), "Rocket": (41, 42, 43), "Skateboard": (44, 45, 46), "Table": (47, 48, 49)}
# What the ids mean, in the same order. The files hold ids only; these names are the ones public code uses for
# text prompts, and the parts' point counts agree (a mug's handle, 36, is rare; its cup, 37, common).
PART_NAMES = {"Airplane": ("body", "wing", "tail", "engine"), "Bag": ("handle", "body"), "Cap": ("crown", "visor"),
              "Car": ("roof", "hood", "wheel", "body"), "Chair": ("back", "seat", "leg", "arm"),
              "Earphone": ("earcup", "headband", "cord"), "Guitar": ("head", "neck", "body"),
              "Knife": ("blade", "handle"), "Lamp": ("base", "shade", "bracket", "pole"),
              "Laptop": ("keyboard", "screen"),
              "Motorbike": ("gas tank", "seat", "wheel", "handlebar", "light", "frame"), "Mug": ("handle", "cup"),
              "Pistol": ("barrel", "handle", "trigger"), "Rocket": ("body", "fin", "nose"),
              "Skateboard": ("wheel", "deck", "foot strap"), "Table": ("top", "leg or support", "drawer")}
PART_CATEGORY = np.array([CATEGORIES.index(c) for c in CATEGORIES for _ in SEG_CLASSES[c]])  # part id -> category


def category_of_synset(synset: str) -> str:
    """The category name of a ShapeNet synset id, e.g. ``"04225987"`` -> ``"Skateboard"``."""
    for name, known in SYNSETS.items():
        if known == synset:
            return name
    raise KeyError(f"{synset!r} is not one of the 16 ShapeNet-part synsets: {sorted(SYNSETS.values())}")


# --- reading ----------------------------------------------------------------------------------------

def read_shape(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One shape file: ``(points (P, 3) float32, normals (P, 3) float32, labels (P,) int64)``, labels being the
    global part ids. The file must have 7 numbers a line, with an integral label in 0..49 (written as a float)."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": an empty file, caught below
            data = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise ValueError(f"{path}: cannot read it as rows of numbers ({error}). A ShapeNet-part shape has 7 "
                         f"space-separated numbers a line, x y z nx ny nz label: the file is damaged, or is "
                         f"not from {FOLDER}; download it again") from None
    if data.size == 0:
        raise ValueError(f"{path} is empty; a ShapeNet-part shape has a line x y z nx ny nz label per point. The "
                         f"copy is incomplete: download it again")
    if data.shape[1] != 7:
        advice = (f"a .pts file of the archive without _normal has 3: use {FOLDER}" if data.shape[1] == 3
                  else "the file is damaged: download it again")
        raise ValueError(f"{path}: {data.shape[1]} columns in {data.shape[0]} lines, but a "
                         f"ShapeNet-part shape has 7 a line (x y z nx ny nz label); {advice}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: holds nan or inf values; the file is damaged: download it again")
    labels = data[:, 6]
    bad = (labels != np.round(labels)) | (labels < 0) | (labels >= NUM_PARTS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}, line {row + 1}: part label {float(labels[row])}, but labels are whole numbers "
                         f"0..{NUM_PARTS - 1} (global part ids, written as floats like 45.000000); {int(bad.sum())} "
                         f"of its {len(labels)} lines have such labels. The file is damaged or from another dataset.")
    return data[:, :3].astype(np.float32), data[:, 3:6].astype(np.float32), labels.astype(np.int64)


def check_parts(labels: np.ndarray, category: str, path: str | Path = "a shape") -> None:
    """Raise if a shape of ``category`` has labels that are not parts of that category (e.g. a mug labelled 47,
    a table top): a file in the wrong synset folder, or labels shifted by a conversion."""
    allowed = SEG_CLASSES[category]
    foreign = sorted(set(np.unique(labels).tolist()) - set(allowed))
    if foreign:
        owners = sorted({CATEGORIES[PART_CATEGORY[p]] for p in foreign})
        raise ValueError(f"{path}: a {category} shape, but it has part labels {foreign} (parts of {owners}); a "
                         f"{category}'s parts are {list(allowed)}. The file is in the wrong synset folder or its "
                         f"labels were changed: download it again.")


def read_categories(path: str | Path) -> dict[str, str]:
    """``{category: synset}`` of a ``synsetoffset2category.txt``, in the file's order."""
    path = Path(path)
    found = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[0] not in SYNSETS or SYNSETS[fields[0]] != fields[1]:
            raise ValueError(f"{path}, line {number}: {line!r}; expected a category and its synset separated by a "
                             f"tab, one of {[f'{n} {s}' for n, s in SYNSETS.items()]}")
        found[fields[0]] = fields[1]
    if not found:
        raise ValueError(f"{path} is empty; it should list the 16 categories as '<Category>\\t<synset>' lines")
    return found


def _is_shapenet_part(folder: Path) -> bool:
    return (folder / "synsetoffset2category.txt").is_file() and (folder / "train_test_split").is_dir()


def find_shapenet_root(root: str | Path) -> Path:
    """The folder at or below ``root`` that holds ``synsetoffset2category.txt`` and ``train_test_split/``."""
    try:
        base = find_folder(Path(root), _is_shapenet_part, "synsetoffset2category.txt and train_test_split/")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}. ShapeNet-part is the folder {FOLDER}/ of {URL} (or of the Kaggle "
                                f"dataset mitkir/shapenet): unzip it and pass the folder that holds it") from None
    if any((base / synset / "points").is_dir() for synset in SYNSETS.values()):
        raise ValueError(f"{base} holds <synset>/points/*.pts: that is shapenetcore_partanno_segmentation_benchmark_"
                         f"v0, without normals and with per-category labels in points_label/*.seg. This loader "
                         f"reads {FOLDER} (x y z nx ny nz label per line): download {URL}")
    return base


def read_split_list(path: Path) -> list[tuple[str, str]]:
    """The ``(synset, id)`` of each entry ``shape_data/<synset>/<id>`` of a ``train_test_split`` list."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the copy is incomplete: download {URL} (or the Kaggle "
                                f"dataset mitkir/shapenet) again")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path}: not a JSON list ({error}); the file is damaged: download the lists again") from None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: holds a JSON {type(entries).__name__}, but a list of 'shape_data/<synset>/<id>'")
    shapes = []
    for entry in entries:
        parts = str(entry).split("/")
        if len(parts) != 3 or parts[0] != "shape_data":
            raise ValueError(f"{path}: entry {entry!r}; entries are 'shape_data/<synset>/<id>'")
        shapes.append((parts[1], parts[2]))
    twice = [shape for shape, count in Counter(shapes).items() if count > 1]
    if twice:
        raise ValueError(f"{path} lists {len(twice)} shapes more than once, e.g. shape_data/{twice[0][0]}/"
                         f"{twice[0][1]}; each shape belongs in a list once: download the lists again")
    return shapes


# --- sampling and normalising -------------------------------------------------------------------------

def sample_indices(n_total: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` indices into a shape of ``n_total`` points: distinct ones when ``n_total >= n``, else every point
    once and ``n - n_total`` random repeats, in random order. ``generator=None`` draws from torch's global one."""
    if n_total < 1 or n < 1:
        raise ValueError(f"cannot sample {n} points from a shape of {n_total}")
    if n_total >= n:
        return torch.randperm(n_total, generator=generator)[:n]
    every = torch.arange(n_total)
    repeats = torch.randint(n_total, (n - n_total,), generator=generator)
    order = torch.randperm(n, generator=generator)
    return torch.cat([every, repeats])[order]


def augment(rotate: bool = True, scale: tuple[float, float] | None = (0.8, 1.25), sigma: float = 0.01,
            clip: float = 0.05) -> PointAugment:
    """Training augmentation for ShapeNet-part (:class:`~course_utils.datasets.point_sets.PointAugment` about
    y, its up axis). Its shapes are all aligned (upright, facing one way), and PointNet++ trains part segmentation
    with jitter alone; ``rotate=True`` trains a model that does not rely on the alignment (the twin's shapes are
    turned at random, so it needs it)."""
    return PointAugment(UP_AXIS, rotate=rotate, scale=scale, sigma=sigma, clip=clip)


# --- the dataset ------------------------------------------------------------------------------------

class ShapeNetPart(Dataset):
    """ShapeNet-part shapes as point clouds with a part label per point.

    An item is ``(points, target)``: ``points`` a float32 tensor (``n_points``, 3), normalised into the unit
    sphere, or (``n_points``, 6) with ``normals=True`` (x y z nx ny nz); ``target`` a dict: ``labels``
    (``n_points``,) int64 global part ids, ``category`` the index of the shape's category in
    :data:`CATEGORIES`, ``index`` the item's index. ``paths[i]``, ``shapes[i]`` (synset, id) and
    ``shape_categories[i]`` (the name) describe item ``i``.

    ``split``: "train", "monitor" (the official validation list), "test" or "all" (see the module docstring).
    ``categories``: keep only these (names of :data:`CATEGORIES`), e.g. ``["Airplane"]``.
    ``resample``: draw a fresh sample of points at every access from torch's generator (default: for "train"),
    or use one fixed sample per shape seeded by ``seed`` (default: for the other splits).
    ``transform``: called on the points tensor, e.g. :func:`augment` for training.
    ``cache``: keep each shape in memory once read (parsing the text is most of an item's time). Worth it for the
    twin or a few categories; the whole training list takes about 0.8 GB, in every DataLoader worker process.
    """

    def __init__(self, root: str | Path, split: str = "train", n_points: int = 2048, seed: int = 0,
                 normals: bool = False, transform: Callable | None = None, categories: Sequence[str] | None = None,
                 resample: bool | None = None, cache: bool = False):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        if n_points < 1:
            raise ValueError(f"n_points must be at least 1, not {n_points}")
        unknown = sorted(set(categories or ()) - set(CATEGORIES))
        if unknown:
            raise ValueError(f"unknown categories {unknown}; ShapeNet-part has {list(CATEGORIES)}")
        self.base = find_shapenet_root(root)
        self.n_points, self.seed, self.normals, self.transform = n_points, seed, normals, transform
        self.resample = split == "train" if resample is None else resample
        self.cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = {} if cache else None
        present = read_categories(self.base / "synsetoffset2category.txt")
        synset_names = {synset: name for name, synset in present.items()}
        lists = {s: read_split_list(self.base / "train_test_split" / f) for s, f in LIST_FILES.items()}
        seen: dict[tuple[str, str], str] = {}
        for name, shapes in lists.items():
            for shape in shapes:
                if shape in seen:
                    raise ValueError(f"shape_data/{shape[0]}/{shape[1]} is in both the {seen[shape]} and the {name} "
                                     f"lists of {self.base / 'train_test_split'}: it would be trained and evaluated "
                                     f"on. Download the lists again.")
                seen[shape] = name
                if shape[0] not in synset_names:
                    raise ValueError(f"{self.base / 'train_test_split' / LIST_FILES[name]} lists a shape of synset "
                                     f"{shape[0]}, which {self.base / 'synsetoffset2category.txt'} does not name")
        chosen = [s for name in LIST_FILES for s in lists[name]] if split == "all" else lists[split]
        keep = set(categories) if categories else set(CATEGORIES)
        self.shapes = [(synset, shape_id) for synset, shape_id in chosen if synset_names[synset] in keep]
        self.shape_categories = [synset_names[synset] for synset, _ in self.shapes]
        self.paths = [self.base / synset / f"{shape_id}.txt" for synset, shape_id in self.shapes]
        missing = [p for p in self.paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} shapes of the {split!r} split are missing, e.g. {missing[0]}; "
                                    f"the copy is incomplete: download {URL} (or mitkir/shapenet) again")
        if not self.shapes:
            raise ValueError(f"no shapes of categories {sorted(keep)} in the {split!r} split of {self.base}")
        self.split_source = {"train": "the official training list", "monitor": "the official validation list",
                             "test": "the official test list", "all": "the three official lists"}[split]
        listed = {f"{synset}/{shape_id}" for synset, shape_id in seen}
        for synset in synset_names:
            folder = self.base / synset
            if folder.is_dir():
                report_unused(folder, "shape files in no list",
                              sorted(p.name for p in folder.glob("*.txt") if f"{synset}/{p.stem}" not in listed))

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Item ``index``'s shape as stored, all its points, after checking its labels against its category."""
        if self.cache is not None and index in self.cache:
            return self.cache[index]
        points, normals, labels = read_shape(self.paths[index])
        check_parts(labels, self.shape_categories[index], self.paths[index])
        if self.cache is not None:
            self.cache[index] = points, normals, labels
        return points, normals, labels

    def _generator(self, index: int) -> torch.Generator | None:
        """None (torch's global generator) when resampling; else one seeded by ``seed`` and the shape."""
        if self.resample:
            return None
        key = f"{self.seed}/{self.shapes[index][0]}/{self.shapes[index][1]}"
        return torch.Generator().manual_seed(int(hashlib.sha256(key.encode()).hexdigest()[:15], 16))

    def __getitem__(self, index: int):
        points, normals, labels = self.read(index)
        chosen = sample_indices(len(labels), self.n_points, self._generator(index)).numpy()
        cloud = normalise(points.astype(np.float64))[chosen].astype(np.float32)
        if self.normals:
            cloud = np.concatenate([cloud, normals[chosen]], axis=1)
        cloud = torch.from_numpy(np.ascontiguousarray(cloud))
        if self.transform is not None:
            cloud = self.transform(cloud)
        target = {"labels": torch.from_numpy(labels[chosen]),
                  "category": CATEGORIES.index(self.shape_categories[index]), "index": index}
        return cloud, target


# --- the synthetic twin -----------------------------------------------------------------------------
# A shape is a list of parts, each a surface that can be sampled: (part id, area, sample(rng, n) -> points,
# normals). Points are spread over the parts in proportion to their area, as a uniform sampling of a mesh would.

def _tube(r0: float, r1: float, length: float, inward: bool = False):
    """The open side of a cylinder (r0 == r1) or cone frustum along +y from 0 to ``length``."""
    slant = np.hypot(length, r1 - r0)

    def sample(rng, n):
        u, angle = rng.random(n), rng.uniform(0, 2 * np.pi, n)
        # s along the axis, drawn with density proportional to the radius there: uniform over the surface
        s = u if np.isclose(r0, r1) else (np.sqrt(r0**2 + u * (r1**2 - r0**2)) - r0) / (r1 - r0)
        radius = r0 + (r1 - r0) * s
        points = np.stack([radius * np.cos(angle), s * length, radius * np.sin(angle)], 1)
        normals = np.stack([length * np.cos(angle), np.full(n, r0 - r1), length * np.sin(angle)], 1) / slant
        return points, -normals if inward else normals

    return np.pi * (r0 + r1) * slant, sample


def _disk(radius: float, inner: float = 0.0, up: bool = True):
    """A flat disk (or ring) in the plane y = 0, facing +y (``up``) or -y."""
    def sample(rng, n):
        r = np.sqrt(rng.uniform(inner**2, radius**2, n))
        angle = rng.uniform(0, 2 * np.pi, n)
        normals = np.zeros((n, 3))
        normals[:, 1] = 1 if up else -1
        return np.stack([r * np.cos(angle), np.zeros(n), r * np.sin(angle)], 1), normals

    return np.pi * (radius**2 - inner**2), sample


def _box(sx: float, sy: float, sz: float):
    """The six faces of a box centred on the origin."""
    size = np.array([sx, sy, sz])
    faces = np.array([sy * sz, sx * sz, sx * sy] * 2)

    def sample(rng, n):
        face = rng.choice(6, n, p=faces / faces.sum())
        axis, sign = face % 3, np.where(face < 3, 1.0, -1.0)
        points = (rng.random((n, 3)) - 0.5) * size
        points[np.arange(n), axis] = sign * size[axis] / 2
        normals = np.zeros((n, 3))
        normals[np.arange(n), axis] = sign
        return points, normals

    return 2 * (sx * sy + sy * sz + sx * sz), sample


def _ellipsoid(a: float, b: float, c: float):
    """An ellipsoid with half-axes a, b, c along x, y, z (points spread roughly evenly)."""
    p = 1.6  # Knud Thomsen's approximation of the area
    area = 4 * np.pi * (((a * b) ** p + (a * c) ** p + (b * c) ** p) / 3) ** (1 / p)
    axes = np.array([a, b, c])

    def sample(rng, n):
        direction = rng.normal(size=(n, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        normals = direction / axes
        return direction * axes, normals / np.linalg.norm(normals, axis=1, keepdims=True)

    return area, sample


def _torus_arc(major: float, minor: float, start: float, stop: float):
    """Part of a torus in the x-y plane around the origin: a tube of radius ``minor`` along a circle of radius
    ``major``, from angle ``start`` to ``stop`` (a mug's handle)."""
    def sample(rng, n):
        phi, psi = rng.uniform(start, stop, n), rng.uniform(0, 2 * np.pi, n)
        ring = np.stack([np.cos(phi), np.sin(phi), np.zeros(n)], 1)
        normals = ring * np.cos(psi)[:, None] + np.array([0, 0, 1.0]) * np.sin(psi)[:, None]
        return ring * major + normals * minor, normals

    return (stop - start) * major * 2 * np.pi * minor, sample


def _rotation(axis: int, angle: float) -> np.ndarray:
    """The rotation by ``angle`` about coordinate axis 0 (x), 1 (y) or 2 (z)."""
    cos, sin = np.cos(angle), np.sin(angle)
    a, b = [k for k in range(3) if k != axis]
    rotation = np.eye(3)
    rotation[a, a], rotation[a, b], rotation[b, a], rotation[b, b] = cos, -sin, sin, cos
    return rotation


def _placed(surface, offset=(0.0, 0.0, 0.0), rotation: np.ndarray | None = None):
    """``surface`` turned by ``rotation``, then moved by ``offset``."""
    area, sample = surface
    turn = np.eye(3) if rotation is None else rotation

    def moved(rng, n):
        points, normals = sample(rng, n)
        return points @ turn.T + np.asarray(offset), normals @ turn.T

    return area, moved


_ALONG_Z = _rotation(0, np.pi / 2)  # turns +y into +z: a tube along the z axis


def _mug(rng) -> list:
    height = rng.uniform(0.8, 1.2)
    radius, wall = height * rng.uniform(0.3, 0.5), height * rng.uniform(0.03, 0.06)
    cup = [_tube(radius, radius, height), _disk(radius, up=False),  # outside and bottom
           _placed(_tube(radius - wall, radius - wall, height - wall, inward=True), (0, wall, 0)),  # inside
           _placed(_disk(radius - wall), (0, wall, 0)), _placed(_disk(radius, radius - wall), (0, height, 0))]
    major, minor = height * rng.uniform(0.22, 0.34), height * rng.uniform(0.035, 0.06)
    gap = rng.uniform(0.2, 0.45)  # the handle is a little more than half a circle; its ends sit in the wall
    centre = (radius - wall / 2 + major * np.sin(gap), height * rng.uniform(0.45, 0.58), 0)
    handle = _placed(_torus_arc(major, minor, -np.pi / 2 - gap, np.pi / 2 + gap), centre)
    return [(37, part) for part in cup] + [(36, handle)]


def _table(rng) -> list:
    width, height, thick = rng.uniform(1.0, 2.0), rng.uniform(0.6, 0.9), rng.uniform(0.03, 0.08)
    depth = width * rng.uniform(0.5, 1.0)
    parts = []
    if rng.random() < 0.7:  # a rectangular top on four legs, sometimes with a drawer
        parts.append((47, _placed(_box(width, thick, depth), (0, height - thick / 2, 0))))
        leg, inset = rng.uniform(0.04, 0.09), rng.uniform(0.02, 0.12)
        for sx in (-1, 1):
            for sz in (-1, 1):
                at = (sx * (width / 2 - inset - leg / 2), (height - thick) / 2, sz * (depth / 2 - inset - leg / 2))
                parts.append((48, _placed(_box(leg, height - thick, leg), at)))
        if rng.random() < 0.35:
            drawer = rng.uniform(0.1, 0.16)
            at = (width * rng.uniform(-0.15, 0.15), height - thick - drawer / 2, 0)
            parts.append((49, _placed(_box(width * rng.uniform(0.3, 0.5), drawer, depth * 0.8), at)))
    else:  # a round top on one pedestal with a foot
        radius = width / 2
        parts += [(47, _placed(_disk(radius), (0, height, 0))), (47, _placed(_disk(radius, up=False),
                                                                             (0, height - thick, 0))),
                  (47, _placed(_tube(radius, radius, thick), (0, height - thick, 0)))]
        pole, foot = radius * rng.uniform(0.06, 0.12), radius * rng.uniform(0.35, 0.6)
        parts += [(48, _tube(pole, pole, height - thick)), (48, _disk(foot)), (48, _disk(foot, up=False))]
    return parts


def _lamp(rng) -> list:
    base, base_height = rng.uniform(0.15, 0.3), rng.uniform(0.03, 0.08)
    pole, pole_height = rng.uniform(0.012, 0.03), rng.uniform(0.5, 1.6)
    shade_bottom = rng.uniform(0.2, 0.4)
    shade_top, shade_height = shade_bottom * rng.uniform(0.35, 0.9), rng.uniform(0.2, 0.4)
    shade_at = base_height + pole_height - shade_height * rng.uniform(0.3, 0.7)
    return [(24, _tube(base, base, base_height)), (24, _disk(base, up=False)),
            (24, _placed(_disk(base), (0, base_height, 0))),
            (27, _placed(_tube(pole, pole, pole_height), (0, base_height, 0))),
            (25, _placed(_tube(shade_bottom, shade_top, shade_height), (0, shade_at, 0))),
            (25, _placed(_tube(shade_bottom, shade_top, shade_height, inward=True), (0, shade_at, 0)))]


def _airplane(rng) -> list:
    length = rng.uniform(2.0, 3.0)
    radius = length * rng.uniform(0.045, 0.075)
    span, chord = length * rng.uniform(0.8, 1.2), length * rng.uniform(0.1, 0.2)
    sweep, wing_y = rng.uniform(0, 0.5), radius * rng.choice([-0.5, 0.4])
    thin = length * 0.012
    wing_z = length * rng.uniform(-0.05, 0.08)
    parts = [(0, _ellipsoid(radius, radius, length / 2))]
    for side in (-1, 1):  # a wing from the centre line outwards, swept back (towards -z, the tail) by ``sweep``
        turn = _rotation(1, -side * sweep)
        centre = turn @ np.array([side * span / 4, 0, 0]) + np.array([0, wing_y, wing_z])
        parts.append((1, _placed(_box(span / 2, thin, chord), centre, turn)))
    tail_z, fin = -length * 0.43, length * rng.uniform(0.12, 0.22)
    parts.append((2, _placed(_box(span * rng.uniform(0.25, 0.4), thin, chord * 0.5), (0, radius * 0.3, tail_z))))
    parts.append((2, _placed(_box(thin, fin, chord * 0.6), (0, radius * 0.5 + fin / 2, tail_z))))
    if rng.random() < 0.8:  # two or four engines under the wings, a little ahead of them
        engine, engine_length = radius * rng.uniform(0.5, 0.75), length * rng.uniform(0.1, 0.15)
        for out in (0.3, 0.6)[: rng.choice([1, 2])]:
            for side in (-1, 1):
                x = side * out * span / 2
                z = wing_z - abs(x) * np.tan(sweep) + chord * 0.2  # under the wing's centre line, then forward
                at = (x, wing_y - engine * 1.3, z - engine_length / 2)
                parts.append((3, _placed(_placed(_tube(engine, engine, engine_length), rotation=_ALONG_Z), at)))
    return parts


TWIN_SHAPES = {"Airplane": _airplane, "Lamp": _lamp, "Mug": _mug, "Table": _table}


def _sample_shape(rng: np.random.Generator, parts: list, n_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    areas = np.array([area for _, (area, _) in parts])
    counts = rng.multinomial(n_points, areas / areas.sum())
    points, normals, labels = [], [], []
    for (label, (_, sample)), count in zip(parts, counts):
        p, nrm = sample(rng, int(count))
        points.append(p)
        normals.append(nrm)
        labels.append(np.full(int(count), label))
    return np.concatenate(points), np.concatenate(normals), np.concatenate(labels)


def twin_shape(rng: np.random.Generator, category: str, n_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One twin shape of ``category`` (see :func:`write_twin`): ``(points, normals, labels)`` as they are written."""
    points, normals, labels = _sample_shape(rng, TWIN_SHAPES[category](rng), n_points)
    turn = _rotation(UP_AXIS, rng.uniform(0, 2 * np.pi))
    points, normals = points @ turn.T, normals @ turn.T
    # as ShapeNetCore's models: the bounding box centred on the origin, its diagonal 1
    low, high = points.min(0), points.max(0)
    points = (points - (low + high) / 2) / np.linalg.norm(high - low)
    points += rng.normal(0, 0.004, points.shape)
    normals += rng.normal(0, 0.02, normals.shape)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    order = rng.permutation(len(labels))
    # the real files hold 5 decimals of coordinates (-0.424420) and about 4 of normals (0.061450)
    return np.round(points[order], 5), np.round(normals[order], 5), labels[order]


def _shape_text(points: np.ndarray, normals: np.ndarray, labels: np.ndarray) -> str:
    """The file's text: ``x y z nx ny nz label`` a line, each number as C's ``%f`` writes it (``45.000000``)."""
    rows = np.concatenate([points, normals, labels[:, None].astype(np.float64)], axis=1)
    return ("%f %f %f %f %f %f %f\n" * len(rows)) % tuple(rows.ravel().tolist())


def write_twin(root: str | Path, n_per_category: int = 30, seed: int = 0,
               categories: Sequence[str] = tuple(TWIN_SHAPES), n_points: tuple[int, int] = (1500, 3000)) -> Path:
    """Write a small ShapeNet-part look-alike into ``root`` in the real layout (``root/{FOLDER}/...``); returns
    ``root``.

    ``n_per_category`` shapes of each of ``categories`` (of Airplane, Lamp, Mug, Table), made of primitives that
    carry the category's real part ids: an airplane's ellipsoid body (0), swept box wings (1), tail plane and fin
    (2) and, mostly, two or four engine tubes (3); a lamp's disk base (24), pole (27) and cone shade (25); a mug's
    cup with inner wall and bottom (37) and torus handle (36); a table's rectangular top (47) on four legs (48),
    some with a drawer (49), or a round top on a pedestal (48). Proportions vary, each shape is turned about the up
    axis (y) at random, scaled like ShapeNetCore (bounding-box diagonal 1), with point noise and surface normals,
    and has ``n_points[0]`` to ``n_points[1]`` points. A sixth of each category goes to the val list, a sixth to
    test, the rest to train; ``synsetoffset2category.txt`` lists all 16 categories as the real one does.
    """
    unknown = sorted(set(categories) - set(TWIN_SHAPES))
    if unknown or n_per_category < 3:
        raise ValueError(f"the twin has categories {list(TWIN_SHAPES)} (not {unknown}) and needs n_per_category "
                         f">= 3 (one each for train, val and test), not {n_per_category}")
    base = Path(root) / FOLDER
    (base / "train_test_split").mkdir(parents=True, exist_ok=True)
    (base / "synsetoffset2category.txt").write_text("".join(f"{n}\t{s}\n" for n, s in SYNSETS.items()))
    rng = np.random.default_rng(seed)
    lists: dict[str, list[str]] = {"train": [], "monitor": [], "test": []}
    held = max(1, n_per_category // 6)
    for category in categories:
        synset = SYNSETS[category]
        (base / synset).mkdir(exist_ok=True)
        for k in range(n_per_category):
            shape_id = "".join(rng.choice(list("0123456789abcdef"), 32))
            shape = twin_shape(rng, category, int(rng.integers(n_points[0], n_points[1] + 1)))
            (base / synset / f"{shape_id}.txt").write_text(_shape_text(*shape))
            split = "monitor" if k < held else "test" if k < 2 * held else "train"
            lists[split].append(f"shape_data/{synset}/{shape_id}")
    for split, entries in lists.items():
        rng.shuffle(entries)  # "shuffled": the real lists mix the categories
        (base / "train_test_split" / LIST_FILES[split]).write_text(json.dumps(entries))
    return Path(root)


INFO = DatasetInfo(
    name="shapenet_part",
    title="ShapeNet-part: 16,881 shapes of 16 categories with 50 part labels per point (xyz, normals)",
    notebook="07",
    marker=f"{FOLDER}/synsetoffset2category.txt",
    kaggle="mitkir/shapenet",
    url=URL,
    sha256=None,  # we found no published checksum of the archive
    licence="ShapeNet terms of use: research and non-commercial use only (shapenet.org/terms)",
    citation="Yi et al., A Scalable Active Framework for Region Annotation in 3D Shape Collections, SIGGRAPH Asia "
             "2016; Chang et al., ShapeNet: An Information-Rich 3D Model Repository, arXiv:1512.03012",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
