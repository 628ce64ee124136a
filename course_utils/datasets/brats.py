"""BraTS 2020 brain-tumour MRI: the cases of the Kaggle layout, checked loading, a preprocessed cache
for fast training, and the twin.

Layout (Kaggle ``awsaf49/brats20-dataset-training-validation``)::

    BraTS2020_TrainingData/MICCAI_BraTS2020_TrainingData/BraTS20_Training_NNN/
        BraTS20_Training_NNN_{flair,t1,t1ce,t2,seg}.nii     (uncompressed on Kaggle, .nii.gz elsewhere)
    BraTS2020_ValidationData/MICCAI_BraTS2020_ValidationData/BraTS20_Validation_NNN/   (no labels)

Quirks handled here: case 355's label is named ``W39_1998.09.19_Segm.nii``; labels are {0, 1, 2, 4}
(no 3) and some files store them as floats. Volumes are 240x240x155 voxels of 1 mm.

Damaged or ambiguous data is an error that names the case and the file: a truncated or corrupt
file (``.nii.gz`` files are checked against their CRC), a modality or label on another voxel grid
(shape or affine) than the case's FLAIR, label values outside {0, 1, 2, 4}, two files for one
modality, case folders whose names differ only in letter case.

**Why a cache, and why our own.** Loading a case, checking its label and normalising its four
volumes gives the same result every epoch and is 98 % of a sample's CPU time (about a second a
sample: 2 samples/s from 2 workers, far below what a GPU trains at). ``cache_cases`` does it once
per case: crop to the brain's bounding box, z-score each modality over its non-zero voxels, and
store the image (float16) and the label (uint8) as ``.npy`` files in ``data.derived_dir("brats2020")``,
about 30 MB a case (a brain box of about 140x170x140 voxels). A training sample memory-maps them
and reads only its random crop. We do not use
MONAI's ``PersistentDataset``: it would store each whole normalised float32 volume (143 MB a case,
53 GB for BraTS), read all of it back for every sample, and it keys its files on the input
dictionary (the file names) only, so a changed file or a changed transform would silently reuse
old results. ``CacheDataset`` keeps the volumes in RAM: the same 53 GB. Our cache key holds each
source file's path, size and modification time, and ``CACHE_VERSION`` with the preprocessing's
parameters; files are written to a temporary name and renamed, so a killed run never leaves a
half-written case that a later run trusts.

The notebook builds training from these pieces: ``find_cases`` gives MONAI-style dicts
``{"id", "image": [4 modality paths], "label": path}``; ``cache_cases`` adds each case's cache;
``RandomCrops`` gives training crops (augmented by MONAI transforms), ``CachedVolumes`` whole
cropped volumes for validation, and ``paste_back`` puts a prediction back into the original
240x240x155 grid to be scored against the original label file (``read_label``).
``BraTSRegionsd`` and ``to_pair`` serve a plain MONAI pipeline (``LoadImaged`` ...) as well.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from course_utils.datasets import (
    DamagedFileError,
    DatasetInfo,
    find_folder,
    remove_stale_temporaries,
    report_unused,
    reseed,
    write_atomic,
)
from course_utils.metrics.brats import LABELS, brats_regions

MODALITIES = ("flair", "t1", "t1ce", "t2")
TRAINING_FOLDER = "MICCAI_BraTS2020_TrainingData"
CASE_FOLDER = re.compile(r"BraTS20_Training_\d{3}")
CASE_355_LABEL = "W39_1998.09.19_Segm.nii"
TWIN_VERSION = 1

# Bump CACHE_VERSION whenever loading, checking or preprocessing below changes: it is part of every
# case's cache key, so each case is then prepared again. CACHE_PARAMS are part of the key as well.
CACHE_VERSION = 1
CACHE_PARAMS = {"crop": "bounding box of the non-zero voxels of the four modalities and the label",
                "normalise": "z-score of each modality over its non-zero voxels",
                "image_dtype": "float16", "label_dtype": "uint8"}


# --- finding the cases --------------------------------------------------------------------------

def _nifti(folder: Path, stem: str) -> Path | None:
    found = [folder / f"{stem}{suffix}" for suffix in (".nii", ".nii.gz") if (folder / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise ValueError(f"{folder.name}: both {found[0].name} and {found[1].name} are in {folder}; which one is "
                         f"meant is unclear. Keep one of them (they should hold the same volume).")
    return found[0] if found else None


def _label_file(folder: Path) -> Path:
    found = [p for p in (_nifti(folder, f"{folder.name}_seg"),) if p]
    found += sorted(p for p in folder.iterdir() if p.name.endswith(("Segm.nii", "Segm.nii.gz")))  # case 355
    if not found:
        raise FileNotFoundError(f"{folder}: no label file ({folder.name}_seg.nii or .nii.gz, or *Segm.nii as case "
                                f"355 names it). Copy the case again, or remove its folder to train without it.")
    if len(found) > 1:
        raise ValueError(f"{folder.name}: {len(found)} label files in {folder}: {[p.name for p in found]}; which "
                         f"one is meant is unclear. Keep one of them.")
    return found[0]


def find_cases(root: str | Path) -> list[dict]:
    """Every labelled training case under ``root``: ``{"id", "image": [flair, t1, t1ce, t2], "label"}``.

    Folders that are not ``BraTS20_Training_NNN`` are listed in a printed line (the plain files
    beside the cases, name_mapping.csv and survival_info.csv, are expected). Two case folders whose
    names differ only in letter case are an error: one is a copy, and which is right is unclear."""
    training = find_folder(root, lambda f: f.name == TRAINING_FOLDER,
                           f"{TRAINING_FOLDER} (the Kaggle layout BraTS2020_TrainingData/{TRAINING_FOLDER})")
    folders = sorted(p for p in training.iterdir() if p.is_dir())
    by_name = defaultdict(list)
    for folder in folders:
        if re.fullmatch(CASE_FOLDER.pattern, folder.name, re.IGNORECASE):
            by_name[folder.name.lower()].append(folder.name)
    clashes = [names for names in by_name.values() if len(names) > 1]
    if clashes:
        raise ValueError(f"{training}: {len(clashes)} case folder name(s) occur in more than one letter case, e.g. "
                         f"{clashes[0]}: a copy from another file system or two copies of one case. Keep one "
                         f"folder of each (BraTS20_Training_NNN) and remove the others.")
    report_unused(training, "folders that are not BraTS20_Training_NNN case folders",
                  [p.name for p in folders if not CASE_FOLDER.fullmatch(p.name)])
    cases = []
    for folder in (p for p in folders if CASE_FOLDER.fullmatch(p.name)):
        images = [_nifti(folder, f"{folder.name}_{m}") for m in MODALITIES]
        missing = [m for m, path in zip(MODALITIES, images) if path is None]
        if missing:
            raise FileNotFoundError(f"{folder}: no {folder.name}_{missing[0]}.nii or .nii.gz; a case needs the "
                                    f"four modalities {MODALITIES}. Copy the case again, or remove its folder.")
        cases.append({"id": folder.name, "image": [str(p) for p in images], "label": str(_label_file(folder))})
    if not cases:
        raise FileNotFoundError(f"no BraTS20_Training_NNN case folders in {training}")
    return cases


def split_cases(cases: list[dict], split: str, val_fraction: float = 0.2, seed: int = 0,
                test_fraction: float = 0.0) -> list[dict]:
    """A seeded split of the labelled cases into ``"train"``, ``"val"`` and ``"test"`` (the official
    validation set has no labels). ``"val"`` picks the best epoch; ``"test"`` (empty unless
    ``test_fraction`` > 0) is scored at the end and chooses nothing, so its scores are not flattered
    by that choice. The val cases are the same with or without a test split."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', not {split!r}")
    ids = sorted(c["id"] for c in cases)
    random.Random(seed).shuffle(ids)
    n_val = max(1, round(len(ids) * val_fraction))
    n_test = max(1, round(len(ids) * test_fraction)) if test_fraction > 0 else 0
    if n_val + n_test >= len(ids):
        raise ValueError(f"{len(ids)} cases cannot give {n_val} val and {n_test} test cases and keep any for "
                         f"training; lower val_fraction or test_fraction")
    chosen = {"val": set(ids[:n_val]), "test": set(ids[n_val:n_val + n_test])}
    chosen["train"] = set(ids[n_val + n_test:])
    return [c for c in cases if c["id"] in chosen[split]]


# --- reading and checking volumes ---------------------------------------------------------------

def _case_id(path: str | Path) -> str:
    return Path(path).parent.name


def read_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The voxels and the affine of one NIfTI file; a damaged file is a ``DamagedFileError``.

    A ``.nii.gz`` is decompressed whole, which checks its CRC: reading only the voxels needed (as
    nibabel and MONAI do) never reaches the checksum, so flipped bytes would become wrong voxels.
    An uncompressed ``.nii`` has no checksum; a short one is still caught by its size."""
    import nibabel as nib

    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
        image = nib.Nifti1Image.from_bytes(raw)
        data = np.asarray(image.dataobj)
    except FileNotFoundError:
        raise
    except Exception as error:  # any failure to decode the file: a truncated copy, bad gzip data, not NIfTI
        reason = " ".join(str(error).split())  # nibabel's messages span lines
        raise DamagedFileError(f"{_case_id(path)}: cannot read {path} ({type(error).__name__}: {reason}). The file is "
                               f"damaged or incomplete: copy or download the dataset again, or remove the case "
                               f"folder {path.parent.name} to train without it.") from error
    if data.ndim != 3:
        raise DamagedFileError(f"{_case_id(path)}: {path} holds an array of shape {data.shape}; a BraTS volume is "
                               f"3-D (240x240x155). Replace it by the case's original file, or remove the case.")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise DamagedFileError(f"{_case_id(path)}: {path} contains NaN or infinite values; a BraTS volume has "
                               f"none. Copy the file again, or remove the case.")
    return data, image.affine


def _same_grid(path: str, data: np.ndarray, affine: np.ndarray, ref_path: str, ref: np.ndarray,
               ref_affine: np.ndarray) -> None:
    """Refuse a file whose voxels do not lie on the reference file's grid: stacked or scored
    together, they would pair voxels of different places in the head without a word."""
    if data.shape == ref.shape and np.allclose(affine, ref_affine, atol=1e-3):
        return
    found = f"shape {data.shape}" if data.shape != ref.shape else f"affine {_flat(affine)}"
    expected = f"shape {ref.shape}" if data.shape != ref.shape else f"affine {_flat(ref_affine)}"
    raise ValueError(f"{_case_id(path)}: {path} has {found}, but {Path(ref_path).name} has {expected}; the four "
                     f"modalities and the label of a case must lie on one voxel grid (BraTS: 240x240x155 voxels "
                     f"of 1 mm, co-registered). The file belongs to another case or was resampled: replace it by "
                     f"the case's original file, or remove the case folder to train without it.")


def _flat(affine: np.ndarray) -> str:
    return np.array2string(np.asarray(affine)[:3], precision=3, suppress_small=True, separator=",").replace("\n", "")


def check_label(values: np.ndarray, source: str | Path) -> np.ndarray:
    """A label map as uint8 {0, 1, 2, 4}: float labels are rounded; any other value is an error
    naming ``source`` (a 3 means a label of BraTS 2017 or older)."""
    label = np.round(values) if np.issubdtype(values.dtype, np.floating) else values
    bad = ~np.isin(label, LABELS)
    if bad.any():
        raise ValueError(f"{source}: label values {np.unique(label[bad]).tolist()} are not BraTS 2020 labels {LABELS}; "
                         f"3 was the non-enhancing core of BraTS 2017 and older: map it to 1 before training")
    return label.astype(np.uint8)


def read_label(case: dict) -> np.ndarray:
    """The case's original label file, checked, as uint8 {0, 1, 2, 4}: the truth to score against."""
    data, _ = read_volume(case["label"])
    return check_label(data, case["label"])


def load_case(case: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image (4, H, W, D) float32, label (H, W, D) uint8, affine)`` of a case, every file checked:
    readable, on the FLAIR's voxel grid, labels {0, 1, 2, 4}."""
    flair, affine = read_volume(case["image"][0])
    volumes = [flair]
    for path in case["image"][1:]:
        data, data_affine = read_volume(path)
        _same_grid(path, data, data_affine, case["image"][0], flair, affine)
        volumes.append(data)
    label, label_affine = read_volume(case["label"])
    _same_grid(case["label"], label, label_affine, case["image"][0], flair, affine)
    return np.stack(volumes).astype(np.float32), check_label(label, case["label"]), affine


class BraTSRegionsd:
    """A MONAI-style dictionary transform: check a loaded BraTS label (1, H, W, D) and replace it by
    three region channels, TC, WT, ET (float, for a sigmoid output per region).

    Labels stored as floats are rounded; any value outside {0, 1, 2, 4} is an error that names the
    file (a 3 means a label of BraTS 2017 or older, where 3 was the non-enhancing core)."""

    def __init__(self, key: str = "label"):
        self.key = key

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        source = getattr(d[self.key], "meta", {}).get("filename_or_obj", self.key)
        d[self.key] = regions(check_label(np.asarray(d[self.key]), source)[0])
        return d


def regions(label) -> torch.Tensor:
    """The three region channels (TC, WT, ET) of a label map, as float (3, ...)."""
    if not isinstance(label, torch.Tensor):
        label = torch.from_numpy(np.array(label))  # a copy: a memory-mapped cache is read-only
    tc, wt, et = brats_regions(label)
    return torch.stack([tc, wt, et]).float()


def to_pair(data: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The end of a pipeline: ``(image, label)`` as plain tensors for ``course_utils.train``
    (MONAI's MetaTensors become plain tensors: their metadata is not needed past here)."""
    return tuple(x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)
                 for x in (data["image"], data["label"]))


# --- the cache: each case loaded, checked, cropped and normalised once ---------------------------

def _cache_key(case: dict) -> str:
    files = []
    for path in [*case["image"], case["label"]]:
        stat = os.stat(path)
        files.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    text = json.dumps({"version": CACHE_VERSION, "params": CACHE_PARAMS, "files": files})
    return hashlib.sha256(text.encode()).hexdigest()


def _read_meta(folder: Path) -> dict:
    try:
        return json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return {}


def brain_box(image: np.ndarray, label: np.ndarray) -> tuple[slice, slice, slice]:
    """The bounding box of every non-zero voxel of the modalities (C, H, W, D) and of the label:
    outside it, all is zero, so nothing is lost by cropping to it."""
    inside = (image != 0).any(0) | (label != 0)
    box = []
    for axis in range(3):
        hits = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def normalise(image: np.ndarray) -> np.ndarray:
    """Each modality brought to mean 0 and standard deviation 1 over its non-zero voxels (the
    brain); zeros stay zero. As MONAI's ``NormalizeIntensity(nonzero=True, channel_wise=True)``."""
    out = np.zeros(image.shape, np.float32)
    for c, channel in enumerate(image):
        inside = channel != 0
        if inside.any():
            values = channel[inside].astype(np.float64)
            std = values.std()
            out[c][inside] = (values - values.mean()) / (std if std > 0 else 1.0)
    return out


def _build(case: dict, key: str) -> None:
    folder = Path(case["cache"])
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    image, label, affine = load_case(case)
    if not image.any():
        raise DamagedFileError(f"{case['id']}: the four modalities {case['image']} are zero everywhere. Copy the "
                               f"case again, or remove its folder to train without it.")
    box = brain_box(image, label)
    (folder / "meta.json").unlink(missing_ok=True)  # the case is not trusted until meta.json is written, last
    write_atomic(folder / "image.npy", lambda f: np.save(f, normalise(image[(slice(None), *box)]).astype(np.float16)))
    write_atomic(folder / "label.npy", lambda f: np.save(f, np.ascontiguousarray(label[box])))
    meta = {"key": key, "id": case["id"], "version": CACHE_VERSION, "shape": list(label.shape),
            "box": [[b.start, b.stop] for b in box], "spacing": np.sqrt((affine[:3, :3] ** 2).sum(0)).tolist(),
            "image": case["image"], "label": case["label"]}
    write_atomic(folder / "meta.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))


def cache_cases(cases: list[dict], folder: str | Path | None = None) -> list[dict]:
    """The cases with ``"cache"`` (the folder of their preprocessed arrays) added; the cache of a
    case is built where it is missing or stale (a source file's path, size or modification time,
    or ``CACHE_VERSION``/``CACHE_PARAMS``, changed), else reused. ``folder`` defaults to
    ``data.derived_dir("brats2020")``."""
    if folder is None:
        from course_utils import data

        folder = data.derived_dir("brats2020")
    folder = Path(folder)
    out, todo = [], []
    for case in cases:
        # one folder per case and source: the twin's and the real case 001 live side by side
        where = hashlib.sha256(str(Path(case["label"]).parent.resolve()).encode()).hexdigest()[:10]
        entry = {**case, "cache": str(folder / f"{case['id']}-{where}")}
        key = _cache_key(case)
        if _read_meta(Path(entry["cache"])).get("key") != key:
            todo.append((entry, key))
        out.append(entry)
    if todo:
        print(f"BraTS cache: preparing {len(todo)} of {len(cases)} cases in {folder} (load, check, crop to the "
              f"brain, normalise; once per case)", flush=True)
        start = last = time.perf_counter()
        for done, (entry, key) in enumerate(todo, 1):
            _build(entry, key)
            if time.perf_counter() - last > 15 and done < len(todo):  # a line now and then on long builds
                last, elapsed = time.perf_counter(), time.perf_counter() - start
                print(f"  {done}/{len(todo)} cases, {elapsed:.0f} s, about {elapsed / done * (len(todo) - done):.0f} s "
                      f"left", flush=True)
    took = f" in {time.perf_counter() - start:.0f} s" if todo else ""
    print(f"BraTS cache in {folder}: {len(cases)} cases, {len(todo)} prepared now{took}, {len(cases) - len(todo)} "
          f"reused")
    return out


def _cached(case: dict) -> tuple[np.ndarray, np.ndarray]:
    """The case's cached image (4, h, w, d) and label (h, w, d), memory-mapped: nothing is read yet."""
    if "cache" not in case:
        raise KeyError(f"{case.get('id')}: no cache for this case; pass the cases through brats.cache_cases first")
    folder = Path(case["cache"])
    return np.load(folder / "image.npy", mmap_mode="r"), np.load(folder / "label.npy", mmap_mode="r")


def _fit(array: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Zero-pad the last three axes up to ``size`` (a brain smaller than the crop), centred."""
    pad = [(0, 0)] * (array.ndim - 3) + [((s - n) // 2, s - n - (s - n) // 2) for n, s in zip(array.shape[-3:], size)]
    return np.pad(array, pad) if any(p != (0, 0) for p in pad) else array


class RandomCrops(torch.utils.data.Dataset):
    """Training samples ``(image (4, *roi), regions (3, *roi))``: a random ``roi`` crop of a cached
    case, read from its memory-mapped arrays (only the crop's bytes), then ``transform`` (MONAI
    dictionary transforms on ``{"image", "label"}``: flips, intensity changes). The transform sees
    the label map (1, *roi) as uint8 {0, 1, 2, 4}, a twelfth of the bytes of the three float
    region channels that are made from it afterwards (flips are a sample's costliest step).

    The crop's position and the transform's randomness are drawn from torch's generator, so the
    same torch seed gives the same sample and a run resumed by ``train.fit`` repeats exactly."""

    def __init__(self, cases: list[dict], roi: tuple[int, int, int], transform=None):
        self.cases, self.roi, self.transform = cases, tuple(roi), transform
        for case in cases:
            _cached(case)  # fails early on cases that were not cached

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = _cached(self.cases[i])
        starts = [int(torch.randint(0, max(n - r, 0) + 1, ())) for n, r in zip(label.shape, self.roi)]
        box = tuple(slice(s, s + r) for s, r in zip(starts, self.roi))
        sample = {"image": torch.from_numpy(_fit(np.asarray(image[(slice(None), *box)], np.float32), self.roi)),
                  "label": torch.from_numpy(_fit(np.array(label[box]), self.roi)[None])}
        if self.transform is not None:
            reseed(self.transform)
            sample = self.transform(sample)
        image, label = to_pair(sample)
        return image, regions(label[0])


class CachedVolumes(torch.utils.data.Dataset):
    """Validation samples ``(image (4, h, w, d), regions (3, h, w, d))``: each case's whole cached
    volume, cropped to the brain. ``paste_back`` puts a prediction into the original grid."""

    def __init__(self, cases: list[dict]):
        self.cases = cases
        for case in cases:
            _cached(case)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = _cached(self.cases[i])
        return torch.from_numpy(np.asarray(image, np.float32)), regions(label)


def paste_back(cropped: np.ndarray, case: dict) -> np.ndarray:
    """A prediction on the cached (cropped) volume, ``(..., h, w, d)``, put into the original grid
    (240x240x155 on BraTS) with zeros (background) outside the brain's box, so it can be scored
    against the original label file with the volume-size conventions of HD95."""
    meta = _read_meta(Path(case["cache"]))
    if not meta:
        raise FileNotFoundError(f"{case['id']}: no cache in {case['cache']} (removed since?); run brats.cache_cases "
                                f"again")
    box = tuple(slice(a, b) for a, b in meta["box"])
    cropped = np.asarray(cropped)
    if cropped.shape[-3:] != tuple(b.stop - b.start for b in box):
        raise ValueError(f"{case['id']}: prediction shape {cropped.shape[-3:]} differs from the cached volume's "
                         f"{tuple(b.stop - b.start for b in box)}")
    full = np.zeros((*cropped.shape[:-3], *meta["shape"]), cropped.dtype)
    full[(..., *box)] = cropped
    return full


# --- the synthetic twin -------------------------------------------------------------------------

# mean intensity of each tissue in each modality (arbitrary units, as in MRI): the contrasts the
# four sequences are read for. FLAIR shows the edema, T1ce the enhancing rim, T2 fluid and core.
TISSUE = {            # background  white  grey   csf   edema  enhancing  necrosis
    "flair": np.array([0, 350, 450, 100, 850, 650, 400]),
    "t1": np.array([0, 700, 500, 200, 450, 550, 250]),
    "t1ce": np.array([0, 720, 520, 210, 470, 1000, 260]),
    "t2": np.array([0, 300, 450, 900, 800, 600, 900]),
}


def _ellipsoid(grid, centre, radii, wobble=None) -> np.ndarray:
    d = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)))
    return d + (wobble if wobble is not None else 0) < 1


def _twin_case(rng: np.random.Generator, shape: tuple[int, int, int], with_enhancing: bool):
    grid = np.indices(shape).astype(np.float32)
    centre = np.array(shape) / 2
    brain = _ellipsoid(grid, centre, np.array(shape) * [0.42, 0.36, 0.44])
    white = _ellipsoid(grid, centre, np.array(shape) * [0.30, 0.25, 0.32])
    csf = (_ellipsoid(grid, centre + [0, 3, 0], [3, 2, 5]) | _ellipsoid(grid, centre - [0, 3, 0], [3, 2, 5]))
    tissue = np.where(brain, np.where(white, 1, 2), 0)
    tissue[csf & brain] = 3
    # the tumour: edema around a core; the core is an enhancing rim around necrosis (or no rim: lower grade)
    t_centre = centre + rng.uniform(-1, 1, 3) * np.array(shape) * [0.15, 0.12, 0.15]
    r_edema = rng.uniform(0.16, 0.24) * min(shape) * rng.uniform(0.8, 1.2, 3)
    wobble = 0.12 * np.sin(grid[0] / rng.uniform(2, 4)) * np.cos(grid[1] / rng.uniform(2, 4))
    edema = _ellipsoid(grid, t_centre, r_edema, wobble) & brain
    core = _ellipsoid(grid, t_centre, r_edema * rng.uniform(0.45, 0.6), wobble / 2)
    necrosis = _ellipsoid(grid, t_centre, r_edema * rng.uniform(0.25, 0.35))
    label = np.zeros(shape, np.uint8)
    label[edema] = 2
    if with_enhancing:
        label[core] = 4
        label[necrosis] = 1
        tissue[edema], tissue[core], tissue[necrosis] = 4, 5, 6
    else:
        label[core] = 1
        tissue[edema], tissue[core] = 4, 6
    bias = 1 + 0.15 * np.sin(grid[0] / shape[0] * np.pi + rng.uniform(0, 3)) * np.cos(grid[2] / shape[2] * np.pi)
    volumes = {}
    for modality, means in TISSUE.items():
        volume = means[tissue] * bias * rng.uniform(0.8, 1.2) + rng.normal(0, 25, shape) * brain
        volumes[modality] = np.clip(volume, 0, None).astype(np.float32)
    return volumes, label


def write_twin(root: str | Path, case_numbers=(1, 2, 3, 4, 5, 6, 7, 8, 9, 355), shape=(48, 48, 40),
               compressed: bool = False, seed: int = 0) -> Path:
    """Write a small BraTS 2020 look-alike in the Kaggle layout: four modalities and a label per case, as
    NIfTI with BraTS's 1 mm affine. Includes case 355 with its odd label name, one case whose label is
    stored as floats, one without enhancing tumour (lower grade), and one unlabelled validation case.
    ``compressed=True`` writes ``.nii.gz`` as other copies of BraTS do."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    suffix = ".nii.gz" if compressed else ".nii"
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])  # BraTS volumes are stored LPS, 1 mm voxels
    training = Path(root) / "BraTS2020_TrainingData" / TRAINING_FOLDER
    for i, number in enumerate(case_numbers):
        case = f"BraTS20_Training_{number:03d}"
        folder = training / case
        folder.mkdir(parents=True, exist_ok=True)
        volumes, label = _twin_case(rng, shape, with_enhancing=(i % 5 != 4))
        for modality, volume in volumes.items():
            nib.save(nib.Nifti1Image(volume, affine), folder / f"{case}_{modality}{suffix}")
        label_data = label.astype(np.float32) if i == 1 else label  # some real labels are stored as floats
        label_name = CASE_355_LABEL.replace(".nii", suffix) if number == 355 else f"{case}_seg{suffix}"
        nib.save(nib.Nifti1Image(label_data, affine), folder / label_name)
    validation = Path(root) / "BraTS2020_ValidationData" / "MICCAI_BraTS2020_ValidationData" / "BraTS20_Validation_001"
    validation.mkdir(parents=True, exist_ok=True)
    volumes, _ = _twin_case(rng, shape, with_enhancing=True)
    for modality, volume in volumes.items():
        nib.save(nib.Nifti1Image(volume, affine), validation / f"BraTS20_Validation_001_{modality}{suffix}")
    return Path(root)


INFO = DatasetInfo(
    name="brats2020",
    title="BraTS 2020: 369 multimodal brain-tumour MRI cases (FLAIR, T1, T1ce, T2) with labels",
    notebook="04",
    marker="BraTS2020_TrainingData/MICCAI_BraTS2020_TrainingData",
    kaggle="awsaf49/brats20-dataset-training-validation",
    licence="BraTS data terms: research use, cite the BraTS papers (see med.upenn.edu/cbica/brats2020)",
    citation="Menze et al., IEEE TMI 2015; Bakas et al., Scientific Data 2017; Bakas et al., arXiv:1811.02629",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
