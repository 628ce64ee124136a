"""ModelNet40 shape classification: an OFF mesh reader, area-weighted surface sampling, the torch Dataset over the
real layout, and its synthetic twin.

Layout (``root`` is what :func:`course_utils.data.locate` returns; the folder is searched for, since copies nest it
differently)::

    ModelNet40/<class>/train/<class>_0001.off ...   the official training meshes (9843 in all)
    ModelNet40/<class>/test/<class>_0627.off ...    the official test meshes (2468); the numbers go on from train's
    metadata_modelnet40.csv                         only in the Kaggle copy: object_id,class,split,object_path

``ModelNet40.zip`` from modelnet.cs.princeton.edu unpacks to ``ModelNet40/``; the Kaggle copy
(``balraj98/modelnet40-princeton-3d-object-dataset``) has the same ``ModelNet40/`` folder with the CSV beside it.
This module reads the folders: the class is the name of the class folder and the split the name of the split
folder, so the CSV is not needed (public loaders report that its ``class`` column is cut at the first underscore,
``flower`` for ``flower_pot``).

Splits: "test" is the official test set (what is reported); "monitor" is a seeded ``monitor_fraction`` of the
official training meshes of each class (it chooses the checkpoint); "train" is the other training meshes; "all"
is every mesh.

Format pitfalls:

* Many ModelNet files (thousands) have a **broken header**: ``OFF`` and the counts on one line, ``OFF490 518 0``,
  with no space or newline after ``OFF``. Readers that expect ``OFF`` alone on the first line fail on them.
* Faces may be polygons, ``4 a b c d`` and longer; they are cut into triangles as a fan from their first vertex.
* Coordinates are in the model's own units (tens of units, not centred): points are normalised after sampling.
* The meshes are triangle soups from the web, with zero-area faces and no consistent winding: the face normals
  that :func:`sample_surface` returns may point in or out.
* z is the up axis of the meshes (the ModelNet40 alignment annotations rotate about z), so a training
  augmentation rotates about z (:func:`augment`), never about y as code written for other data does.

An item is a shape's surface, sampled: a mesh becomes ``n_points`` points by :func:`sample_surface`. Reading and
sampling a large mesh takes a noticeable time (a 15 MB OFF file of 400,000 faces: about 2 s on one core), so each
file's points are **sampled once and cached** as ``.npy`` in ``data.derived_dir("modelnet40")`` (keyed on the file's
path, size and modification time, ``n_points`` and ``seed``); later epochs read the cache. The sample of a file is
seeded by its path inside the dataset, so it is the same on every machine and every run, cached or not; variety
between epochs comes from the augmentation.
The first epoch over the real data does the sampling: give the DataLoader ``num_workers`` to share it out.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from course_utils.datasets import (
    DatasetInfo,
    check_monitor_fraction,
    find_folder,
    report_unused,
    seeded_split,
    write_atomic,
)
from course_utils.datasets.point_sets import PointAugment, normalise

TWIN_VERSION = 1
CACHE_VERSION = 1
URL = "http://modelnet.cs.princeton.edu/ModelNet40.zip"
SPLITS = ("train", "monitor", "test", "all")
CLASSES = ("airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone", "cup",
           "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp", "laptop",
           "mantel", "monitor", "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink", "sofa",
           "stairs", "stool", "table", "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox")
UP_AXIS = 2  # z


# --- reading OFF meshes ---------------------------------------------------------------------------

def _data_lines(path: Path) -> list[tuple[str, int]]:
    """The lines of an OFF file that hold data, as ``(text, line number)``: comments (``#`` to the end of the
    line) and blank lines removed."""
    lines = []
    for number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if text:
            lines.append((text, number))
    return lines


def _fan(polygon: list[int]) -> list[tuple[int, int, int]]:
    """A polygon ``a b c d ...`` as the triangles (a b c), (a c d), ...: a fan from its first vertex, right for
    the convex polygons that CAD meshes hold."""
    return [(polygon[0], polygon[k], polygon[k + 1]) for k in range(1, len(polygon) - 1)]


def _read_faces(path: Path, rows: list[tuple[str, int]], n_vertices: int) -> np.ndarray:
    """The faces as triangles (F, 3) int64; polygons become fans. Extra numbers after a face's vertex ids (a
    colour, in some OFF files) are ignored."""
    if all(len(text.split()) == 4 for text, _ in rows):  # the usual case, triangles only: read all at once
        try:
            table = np.asarray(" ".join(text for text, _ in rows).split(), dtype=np.int64).reshape(-1, 4)
        except ValueError:
            table = None  # a number that is not an integer: the loop below names the line
        if table is not None and (table[:, 0] == 3).all():
            triangles = table[:, 1:]
            if triangles.size and (triangles.min() < 0 or triangles.max() >= n_vertices):
                row = int(np.flatnonzero(((triangles < 0) | (triangles >= n_vertices)).any(1))[0])
                raise ValueError(f"{path}: line {rows[row][1]}: face {rows[row][0]!r} uses a vertex id outside "
                                 f"0..{n_vertices - 1} (the file has {n_vertices} vertices, numbered from 0). The "
                                 f"file is damaged: download it again, or remove it.")
            return triangles
    triangles = []
    for text, number in rows:
        try:
            values = [int(v) for v in text.split()]
        except ValueError:
            raise ValueError(f"{path}: line {number}: a face line holds whole numbers (count, then vertex ids), "
                             f"found {text[:60]!r}. The file is damaged: download it again, or remove it.") from None
        count, ids = values[0], values[1:values[0] + 1]
        if count < 3 or len(ids) < count:
            raise ValueError(f"{path}: line {number}: a face needs a count of at least 3 and that many vertex ids, "
                             f"found {text[:60]!r}. The file is damaged: download it again, or remove it.")
        bad = [i for i in ids if not 0 <= i < n_vertices]
        if bad:
            raise ValueError(f"{path}: line {number}: face {text[:60]!r} uses vertex id {bad[0]}, outside "
                             f"0..{n_vertices - 1} (the file has {n_vertices} vertices, numbered from 0). The file "
                             f"is damaged: download it again, or remove it.")
        triangles += _fan(ids)
    return np.asarray(triangles, dtype=np.int64).reshape(-1, 3)


def read_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A mesh from an OFF file: ``(vertices (V, 3) float32, faces (F, 3) int64)``, polygons cut into triangles.

    The OFF format: a header line ``OFF``; a line ``nv nf ne`` (numbers of vertices, faces and edges, the last
    unused); ``nv`` lines ``x y z``; ``nf`` lines ``n i j k ...``, a face of ``n`` vertices given by their ids,
    numbered from 0. ``#`` starts a comment; blank lines are skipped. Also read: ModelNet's broken header
    ``OFF<nv> <nf> <ne>`` on one line. Errors name the file and the line: a header other than OFF, counts that
    disagree with the lines of the file, a face id outside the vertices.
    """
    path = Path(path)
    lines = _data_lines(path)
    if not lines or not lines[0][0].startswith("OFF"):
        found = repr(lines[0][0][:40]) if lines else "an empty file"
        raise ValueError(f"{path}: expected an OFF mesh, whose first line is 'OFF', found {found}. Only plain OFF "
                         f"(x y z vertices) is read; a damaged download is read again.")
    header, number = lines[0]
    counts = header[3:].split()  # "OFF490 518 0", ModelNet's broken one-line header, leaves the counts here
    body = lines[1:]
    if not counts:  # the header as the format has it: OFF alone, the counts on the next data line
        if not body:
            raise ValueError(f"{path}: the file ends after 'OFF', before the line of counts 'nv nf ne'")
        (counts_text, number), body = body[0], body[1:]
        counts = counts_text.split()
    try:
        n_vertices, n_faces = (int(c) for c in counts[:2])
        if len(counts) > 3 or n_vertices < 0 or n_faces < 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"{path}: line {number}: expected the counts 'nv nf ne' (three whole numbers), found "
                         f"{' '.join(counts)[:60]!r}") from None
    if len(body) != n_vertices + n_faces:
        truncated = len(body) < n_vertices + n_faces
        raise ValueError(f"{path}: the header (line {number}) announces {n_vertices} vertices and {n_faces} faces, "
                         f"{n_vertices + n_faces} lines, but {len(body)} lines of data follow it"
                         f"{': the file is truncated' if truncated else ''}. Download the file again, or remove it.")
    vertex_rows, face_rows = body[:n_vertices], body[n_vertices:]
    wrong = next(((t, n) for t, n in vertex_rows if len(t.split()) != 3), None)
    if wrong:
        text, line = wrong
        raise ValueError(f"{path}: line {line}: a vertex line holds 3 numbers 'x y z', found {text[:60]!r}. The "
                         f"counts of the header disagree with the file, or it is damaged: download it again.")
    try:
        vertices = np.asarray(" ".join(text for text, _ in vertex_rows).split(), dtype=np.float64).reshape(-1, 3)
    except ValueError:
        text, line = next((t, n) for t, n in vertex_rows if not _all_numbers(t))
        raise ValueError(f"{path}: line {line}: a vertex line holds 3 numbers 'x y z', found {text[:60]!r}") from None
    if not np.isfinite(vertices).all():
        raise ValueError(f"{path}: some vertex coordinates are not finite (nan or inf); the file is damaged")
    return vertices.astype(np.float32), _read_faces(path, face_rows, n_vertices)


def _all_numbers(text: str) -> bool:
    try:
        [float(v) for v in text.split()]
    except ValueError:
        return False
    return True


def write_off(path: str | Path, vertices: np.ndarray, faces: list, one_line_header: bool = False) -> None:
    """Write a mesh as OFF: ``faces`` a list of vertex-id lists (polygons of any size) or an (F, k) array.
    ``one_line_header=True`` writes ModelNet's broken header ``OFF<nv> <nf> 0``."""
    lines = [f"OFF{len(vertices)} {len(faces)} 0" if one_line_header else f"OFF\n{len(vertices)} {len(faces)} 0"]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in np.asarray(vertices, np.float64)]
    lines += [" ".join(str(int(i)) for i in [len(face), *face]) for face in faces]
    Path(path).write_text("\n".join(lines) + "\n", encoding="ascii")


# --- sampling the surface -------------------------------------------------------------------------

def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points spread uniformly over a triangle mesh's surface, and the unit normal of the face of each:
    ``(points (n, 3), normals (n, 3))``, float32.

    Uniform over the *surface*, not over the faces: a face is chosen with probability proportional to its area
    (a big flat panel of a few triangles gets as many points as its area asks, a finely tessellated knob no more
    than its area), then a point uniform inside it. With ``u, v`` uniform in [0, 1], the barycentric weights
    ``(1 - sqrt(u), sqrt(u) (1 - v), sqrt(u) v)`` are uniform over the triangle: the square root undoes the
    crowding of points towards the corner that plain uniform weights give. Zero-area (degenerate) faces, common
    in meshes from the web, have probability 0 and are never chosen. The normals follow each face's winding,
    which ModelNet's meshes do not keep consistent: they may point in or out.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    cross = np.cross(b - a, c - a)  # its length is twice the triangle's area; its direction the face normal
    double_area = np.linalg.norm(cross, axis=1)
    if not len(faces) or double_area.sum() <= 0:
        raise ValueError(f"the mesh has no surface to sample: {len(faces)} faces, all of zero area")
    chosen = rng.choice(len(faces), size=n, p=double_area / double_area.sum())
    u, v = rng.random((2, n, 1))
    root = np.sqrt(u)
    points = (1 - root) * a[chosen] + root * (1 - v) * b[chosen] + root * v * c[chosen]
    normals = cross[chosen] / double_area[chosen, None]
    return points.astype(np.float32), normals.astype(np.float32)


# --- the dataset ----------------------------------------------------------------------------------

def _split_folders(folder: Path) -> list[str]:
    return [s for s in ("train", "test") if (folder / s).is_dir()]


def _is_modelnet(folder: Path) -> bool:
    """True for a folder that holds class folders with train/ or test/ inside."""
    return folder.is_dir() and any(p.is_dir() and _split_folders(p) for p in folder.iterdir())


def find_modelnet_root(root: str | Path) -> Path:
    """The folder at or below ``root`` that holds the class folders (``ModelNet40/`` in both copies)."""
    try:
        return find_folder(Path(root), _is_modelnet, "class folders with train/ and test/ inside")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}. ModelNet40 has ModelNet40/<class>/{{train,test}}/<class>_NNNN.off: unzip "
                                f"{URL} (or attach the Kaggle dataset) and pass the folder that holds "
                                f"ModelNet40/") from None


def _off_files(folder: Path) -> list[Path]:
    """The .off files of a split folder; other entries are reported."""
    if not folder.is_dir():
        return []
    entries = sorted(folder.iterdir())
    report_unused(folder, "entries that are not .off meshes",
                  [p.name for p in entries if p.suffix.lower() != ".off" and not p.name.startswith(".")])
    return [p for p in entries if p.suffix.lower() == ".off" and p.is_file()]


def _carve(paths: list[Path], fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """``(monitor, train)``: a seeded ``fraction`` of one class's training files (at least one, when the class
    has two or more) and the rest."""
    if fraction == 0 or len(paths) < 2:
        return [], paths
    by_name = {p.name: p for p in paths}
    monitor, train = seeded_split(list(by_name), fraction, seed)
    return [by_name[n] for n in monitor], [by_name[n] for n in train]


class ModelNet(Dataset):
    """ModelNet40 meshes as point clouds with their class.

    An item is ``(points, label)``: ``points`` a float32 tensor (``n_points``, 3) sampled from the mesh's
    surface and normalised into the unit sphere (with ``normals=True``, (``n_points``, 6): the face normals
    follow); ``label`` the index of the class in ``classes``, the sorted names of the class folders (40 for the
    real data). ``files[i]`` is the mesh of item ``i``.

    ``split``: "train", "monitor", "test" or "all" (see the module docstring); ``monitor_fraction`` of each
    class's training meshes, chosen by ``seed``, form "monitor". ``seed`` also seeds the sampling of each mesh.
    ``transform``: called on the points tensor, e.g. :func:`augment` for training; it draws its
    randomness from torch's generator, which ``train.fit`` checkpoints, so a resumed run augments as an
    uninterrupted one would.
    ``cache``: True keeps the sampled points in ``data.derived_dir("modelnet40")``, a folder keeps them there,
    False samples each mesh at every access (the same points: fine for a small twin, slow for the real meshes).
    """

    def __init__(self, root: str | Path, split: str = "train", n_points: int = 1024, seed: int = 0,
                 transform: Callable | None = None, cache: bool | str | Path = True, monitor_fraction: float = 0.1,
                 normals: bool = False):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        check_monitor_fraction(split, monitor_fraction, "training meshes")
        self.base = find_modelnet_root(root)
        self.n_points, self.seed, self.transform, self.normals = n_points, seed, transform, normals
        folders = sorted(p for p in self.base.iterdir() if p.is_dir() and not p.name.startswith("."))
        self.classes = [p.name for p in folders if _split_folders(p)]
        report_unused(self.base, "entries that are not class folders with train/ or test/",
                      sorted(p.name for p in self.base.iterdir()
                             if not p.name.startswith(".") and p.name not in self.classes))
        self.files: list[Path] = []
        self.labels: list[int] = []
        for label, name in enumerate(self.classes):
            official = {s: _off_files(self.base / name / s) for s in ("train", "test")}
            monitor, train = _carve(official["train"], monitor_fraction, seed)
            chosen = {"train": train, "monitor": monitor, "test": official["test"],
                      "all": official["train"] + official["test"]}[split]
            self.files += chosen
            self.labels += [label] * len(chosen)
        if not self.files:
            raise FileNotFoundError(f"no .off meshes for split {split!r} in {self.base}/<class>/"
                                    f"{'test' if split == 'test' else 'train'}/; the copy is incomplete: unzip "
                                    f"{URL} again")
        self.split_source = {"train": f"the official training meshes less a seeded {monitor_fraction:.0%} per class",
                             "monitor": f"a seeded {monitor_fraction:.0%} of each class's official training meshes",
                             "test": "the official test meshes", "all": "all meshes"}[split]
        if cache is True:
            from course_utils import data  # here, not at the top: data imports this module

            cache = data.derived_dir("modelnet40")
        self.cache_dir = Path(cache) / "points" if cache else None

    def __len__(self) -> int:
        return len(self.files)

    def _cache_path(self, path: Path) -> Path:
        stat = path.stat()
        key = json.dumps([CACHE_VERSION, str(path.resolve()), stat.st_size, stat.st_mtime_ns, self.n_points,
                          self.seed])
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self.cache_dir / path.parent.parent.name / f"{path.stem}-{digest}.npy"

    def sample(self, index: int) -> np.ndarray:
        """Item ``index``'s mesh sampled: (``n_points``, 6) float32, normalised points then face normals;
        from the cache where it is there."""
        path = self.files[index]
        cached = self._cache_path(path) if self.cache_dir else None
        if cached is not None and cached.is_file():
            return np.load(cached)
        vertices, faces = read_off(path)
        # seeded by the file's place in the dataset (class/split/name), so the same on every machine
        where = "/".join(path.parts[-3:])
        rng = np.random.default_rng([self.seed, int(hashlib.sha256(where.encode()).hexdigest()[:8], 16)])
        try:
            points, normals = sample_surface(vertices, faces, self.n_points, rng)
        except ValueError as error:
            raise ValueError(f"{path}: {error}; the mesh is empty or damaged: remove it, or download it again") \
                from None
        cloud = np.concatenate([normalise(points), normals], axis=1).astype(np.float32)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(cached, lambda f: np.save(f, cloud))
        return cloud

    def __getitem__(self, index: int):
        cloud = self.sample(index)
        points = torch.from_numpy(cloud if self.normals else np.ascontiguousarray(cloud[:, :3]))
        if self.transform is not None:
            points = self.transform(points)
        return points, self.labels[index]


def augment(sigma: float = 0.01, clip: float = 0.05) -> PointAugment:
    """Training augmentation for ModelNet (:class:`~course_utils.datasets.point_sets.PointAugment`): a random
    rotation about z, ModelNet's up axis, then PointNet's jitter."""
    return PointAugment(UP_AXIS, sigma=sigma, clip=clip)


# --- the synthetic twin ---------------------------------------------------------------------------

class _Mesh:
    """A mesh built from parts: vertices and polygon faces (lists of vertex ids)."""

    def __init__(self):
        self.vertices: list[np.ndarray] = []
        self.faces: list[list[int]] = []
        self.count = 0

    def add(self, vertices: np.ndarray, faces: list[list[int]]) -> None:
        self.vertices.append(np.asarray(vertices, np.float64))
        self.faces += [[self.count + i for i in face] for face in faces]
        self.count += len(vertices)

    def box(self, centre, size) -> None:
        """An axis-aligned box: 8 vertices, 6 quads wound outwards."""
        corners = np.array([[x, y, z] for z in (-1, 1) for y in (-1, 1) for x in (-1, 1)], np.float64)
        quads = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]]
        self.add(np.asarray(centre) + corners * np.asarray(size) / 2, quads)

    def lathe(self, profile, segments: int, centre=(0.0, 0.0, 0.0), axis: str = "z") -> None:
        """A surface of revolution about a vertical line through ``centre``: ``profile`` lists ``(radius,
        height)`` from the bottom up; a radius of 0 at an end closes it in a point, any other end is closed by
        one polygon of ``segments`` vertices. ``axis="x"`` lays it along x instead."""
        angles = np.linspace(0, 2 * np.pi, segments, endpoint=False)
        ring = np.stack([np.cos(angles), np.sin(angles)], 1)
        vertices, rings = [], []
        for radius, height in profile:
            start = len(vertices)
            if radius == 0:
                vertices.append([0.0, 0.0, height])
                rings.append([start] * segments)
            else:
                vertices += [[x * radius, y * radius, height] for x, y in ring]
                rings.append(list(range(start, start + segments)))
        faces = []
        for lower, upper in zip(rings, rings[1:]):
            for k in range(segments):
                quad = [lower[k], lower[(k + 1) % segments], upper[(k + 1) % segments], upper[k]]
                unique = list(dict.fromkeys(quad))  # a ring closed in a point gives triangles
                if len(unique) >= 3:
                    faces.append(unique)
        if profile[0][0] > 0:
            faces.append(rings[0][::-1])
        if profile[-1][0] > 0:
            faces.append(rings[-1])
        vertices = np.asarray(vertices)
        if axis == "x":  # (x, y, z) -> (z, x, y): a rotation, so the faces stay wound outwards
            vertices = vertices[:, [2, 0, 1]]
        self.add(vertices + np.asarray(centre), faces)


def _airplane(rng: np.random.Generator, mesh: _Mesh) -> None:
    length, radius = rng.uniform(3, 5), rng.uniform(0.22, 0.4)
    nose = rng.uniform(0.4, 0.9)
    mesh.lathe([(0, -length / 2 - nose), (radius, -length / 2), (radius, length / 2), (radius * 0.4, length / 2 + 0.3)],
               int(rng.integers(8, 14)), axis="x")
    span, chord = rng.uniform(3, 5), rng.uniform(0.6, 1.2)
    mesh.box((rng.uniform(-0.4, 0.2) * length, 0, 0), (chord, span, 0.08))
    tail = length / 2 - 0.2
    mesh.box((tail, 0, rng.uniform(0.4, 0.6)), (0.5, 0.06, rng.uniform(0.6, 1.0)))  # the fin
    mesh.box((tail, 0, 0.1), (0.45, rng.uniform(1.0, 1.6), 0.06))  # the tailplane


def _bottle(rng: np.random.Generator, mesh: _Mesh) -> None:
    radius, height = rng.uniform(0.35, 0.6), rng.uniform(1.2, 2.2)
    neck, shoulder = rng.uniform(0.1, 0.2), rng.uniform(0.25, 0.5)
    top = height + shoulder + rng.uniform(0.3, 0.6)
    mesh.lathe([(radius * 0.9, 0), (radius, 0.05), (radius, height), (neck, height + shoulder), (neck, top),
                (neck * 1.2, top + 0.05)], int(rng.integers(10, 20)))


def _cone(rng: np.random.Generator, mesh: _Mesh) -> None:
    radius, height = rng.uniform(0.4, 0.8), rng.uniform(1.0, 2.5)
    base = rng.random() < 0.5  # a traffic cone's square foot, or a plain cone
    lift = 0.08 if base else 0.0
    mesh.lathe([(radius, lift), (rng.uniform(0, 0.06) * radius, lift + height), (0, lift + height)],
               int(rng.integers(10, 20)))
    if base:
        mesh.box((0, 0, lift / 2), (radius * 2.6, radius * 2.6, lift))


def _lamp(rng: np.random.Generator, mesh: _Mesh) -> None:
    foot, pole = rng.uniform(0.3, 0.5), rng.uniform(1.5, 2.5)
    mesh.lathe([(foot, 0), (foot, 0.08), (foot * 0.3, 0.12)], int(rng.integers(10, 16)))
    mesh.lathe([(0.04, 0.12), (0.04, pole)], 6)
    shade_low, shade_high = rng.uniform(0.4, 0.7), rng.uniform(0.15, 0.35)
    drop = rng.uniform(0.3, 0.6)
    mesh.lathe([(shade_low, pole - drop), (shade_high, pole - drop + rng.uniform(0.4, 0.7))], int(rng.integers(10, 16)))


def _legs(mesh: _Mesh, width: float, depth: float, height: float, thickness: float) -> None:
    for sx in (-1, 1):
        for sy in (-1, 1):
            mesh.box((sx * (width / 2 - thickness), sy * (depth / 2 - thickness), height / 2),
                     (thickness, thickness, height))


def _table(rng: np.random.Generator, mesh: _Mesh) -> None:
    width, depth, height = rng.uniform(1.6, 3.0), rng.uniform(1.0, 1.8), rng.uniform(1.2, 1.7)
    top = rng.uniform(0.06, 0.14)
    mesh.box((0, 0, height - top / 2), (width, depth, top))
    if rng.random() < 0.25:  # a pedestal table: one column on a round foot
        mesh.lathe([(0.1, 0), (0.1, height - top)], 8)
        mesh.lathe([(0.5, 0), (0.5, 0.05), (0.12, 0.1)], 12)
    else:
        _legs(mesh, width, depth, height - top, rng.uniform(0.06, 0.12))


def _chair(rng: np.random.Generator, mesh: _Mesh) -> None:
    width, depth, seat = rng.uniform(0.8, 1.1), rng.uniform(0.8, 1.1), rng.uniform(0.8, 1.0)
    thick = rng.uniform(0.06, 0.1)
    mesh.box((0, 0, seat - thick / 2), (width, depth, thick))
    _legs(mesh, width, depth, seat - thick, rng.uniform(0.05, 0.09))
    back = rng.uniform(0.8, 1.3)
    mesh.box((0, -depth / 2 + 0.04, seat + back / 2), (width, 0.08, back))


TWIN_SHAPES = {"airplane": _airplane, "bottle": _bottle, "chair": _chair, "cone": _cone, "lamp": _lamp,
               "table": _table}


def _rotation_about_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def write_twin(root: str | Path, n_train: int = 12, n_test: int = 4, classes: tuple[str, ...] = tuple(TWIN_SHAPES),
               seed: int = 0) -> Path:
    """Write a small ModelNet40 look-alike into ``root`` in the real layout; returns ``root``.

    ``ModelNet40/<class>/{train,test}/<class>_NNNN.off`` for a few real ModelNet40 classes built from boxes and
    surfaces of revolution (airplane, bottle, chair, cone, lamp, table), ``n_train`` + ``n_test`` meshes each,
    numbered on from train to test as the real files are; and ``metadata_modelnet40.csv`` as in the Kaggle copy.
    Each mesh has its own proportions, a little vertex noise, a random turn about the up axis (z) and its own
    units and placement (as the real models do). As in the real files, every third file has the broken one-line
    header ``OFF<nv> <nf> 0``, and half of them keep their quads and polygons (caps) while the others are cut
    into triangles. Deterministic for a given ``seed``.
    """
    unknown = [c for c in classes if c not in TWIN_SHAPES]
    if unknown:
        raise ValueError(f"the twin can build {sorted(TWIN_SHAPES)}, not {unknown}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = []
    written = 0
    for name in classes:
        for number in range(1, n_train + n_test + 1):
            split = "train" if number <= n_train else "test"
            mesh = _Mesh()
            TWIN_SHAPES[name](rng, mesh)
            vertices = np.concatenate(mesh.vertices)
            vertices += rng.normal(0, 0.004, vertices.shape)
            vertices = vertices @ _rotation_about_z(rng.uniform(0, 2 * np.pi)).T
            vertices = vertices * rng.uniform(5, 30) + rng.uniform(-10, 10, 3)
            faces = mesh.faces if written % 2 else [t for face in mesh.faces for t in _fan(face)]
            folder = root / "ModelNet40" / name / split
            folder.mkdir(parents=True, exist_ok=True)
            object_id = f"{name}_{number:04d}"
            write_off(folder / f"{object_id}.off", vertices, faces, one_line_header=written % 3 == 0)
            rows.append([object_id, name, split, f"{name}/{split}/{object_id}.off"])
            written += 1
    with open(root / "metadata_modelnet40.csv", "w", newline="") as f:
        csv.writer(f).writerows([["object_id", "class", "split", "object_path"], *rows])
    return root


INFO = DatasetInfo(
    name="modelnet40",
    title="ModelNet40: 12311 CAD meshes (OFF) of 40 object classes, 9843 for training and 2468 for testing",
    notebook="07",
    marker="ModelNet40/airplane/train",
    kaggle="balraj98/modelnet40-princeton-3d-object-dataset",
    url=URL,
    sha256=None,  # no checksum of the archive is published
    licence="for the convenience of academic research only; the CAD models' copyright stays with their authors "
            "(modelnet.cs.princeton.edu)",
    citation="Wu, Song, Khosla, Yu, Zhang, Tang, Xiao: 3D ShapeNets: A Deep Representation for Volumetric Shapes, "
             "CVPR 2015",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
