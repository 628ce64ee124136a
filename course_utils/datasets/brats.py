"""BraTS 2020 brain-tumour MRI: the cases of the Kaggle layout, MONAI transform pieces, and the twin.

Layout (Kaggle ``awsaf49/brats20-dataset-training-validation``)::

    BraTS2020_TrainingData/MICCAI_BraTS2020_TrainingData/BraTS20_Training_NNN/
        BraTS20_Training_NNN_{flair,t1,t1ce,t2,seg}.nii     (uncompressed on Kaggle, .nii.gz elsewhere)
    BraTS2020_ValidationData/MICCAI_BraTS2020_ValidationData/BraTS20_Validation_NNN/   (no labels)

Quirks handled here: case 355's label is named ``W39_1998.09.19_Segm.nii``; labels are {0, 1, 2, 4}
(no 3) and some files store them as floats. Volumes are 240x240x155 voxels of 1 mm.

The notebook builds its MONAI pipeline from these pieces: ``find_cases`` gives MONAI-style dicts
``{"image": [4 modality paths], "label": path}``; ``BraTSRegionsd`` checks a label and turns it into
the three region channels (TC, WT, ET) the model learns; ``to_pair`` ends a pipeline with the
``(image, target)`` pair that ``course_utils.train`` expects.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from course_utils.datasets import DatasetInfo, find_folder
from course_utils.metrics.brats import LABELS, brats_regions

MODALITIES = ("flair", "t1", "t1ce", "t2")
TRAINING_FOLDER = "MICCAI_BraTS2020_TrainingData"
CASE_355_LABEL = "W39_1998.09.19_Segm.nii"
TWIN_VERSION = 1


def _nifti(folder: Path, stem: str) -> Path | None:
    for suffix in (".nii", ".nii.gz"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def find_cases(root: str | Path) -> list[dict]:
    """Every labelled training case under ``root``: ``{"id", "image": [flair, t1, t1ce, t2], "label"}``."""
    training = find_folder(root, lambda f: f.name == TRAINING_FOLDER,
                           f"{TRAINING_FOLDER} (the Kaggle layout BraTS2020_TrainingData/{TRAINING_FOLDER})")
    cases = []
    for folder in sorted(p for p in training.iterdir() if p.is_dir() and p.name.startswith("BraTS20_Training_")):
        images = [_nifti(folder, f"{folder.name}_{m}") for m in MODALITIES]
        missing = [m for m, path in zip(MODALITIES, images) if path is None]
        if missing:
            raise FileNotFoundError(f"{folder}: no {folder.name}_{missing[0]}.nii or .nii.gz; a case needs the "
                                    f"four modalities {MODALITIES}")
        label = _nifti(folder, f"{folder.name}_seg") or next(iter(sorted(folder.glob("*Segm.nii*"))), None)
        if label is None:
            raise FileNotFoundError(f"{folder}: no label file ({folder.name}_seg.nii, or *Segm.nii as case 355 names "
                                    f"it)")
        cases.append({"id": folder.name, "image": [str(p) for p in images], "label": str(label)})
    if not cases:
        raise FileNotFoundError(f"no BraTS20_Training_NNN case folders in {training}")
    return cases


def split_cases(cases: list[dict], split: str, val_fraction: float = 0.2, seed: int = 0) -> list[dict]:
    """A seeded train/val split of the labelled cases (the official validation set has no labels)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    ids = sorted(c["id"] for c in cases)
    random.Random(seed).shuffle(ids)
    val = set(ids[:max(1, round(len(ids) * val_fraction))])
    return [c for c in cases if (c["id"] in val) == (split == "val")]


class BraTSRegionsd:
    """A MONAI-style dictionary transform: check a loaded BraTS label (1, H, W, D) and replace it by
    three region channels, TC, WT, ET (float, for a sigmoid output per region).

    Labels stored as floats are rounded; any value outside {0, 1, 2, 4} is an error that names the
    file (a 3 means a label of BraTS 2017 or older, where 3 was the non-enhancing core)."""

    def __init__(self, key: str = "label"):
        self.key = key

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        label = torch.round(torch.as_tensor(d[self.key]))
        bad = ~torch.isin(label, torch.tensor(LABELS, dtype=label.dtype))
        if bad.any():
            source = getattr(d[self.key], "meta", {}).get("filename_or_obj", self.key)
            raise ValueError(f"{source}: label values {sorted(set(label[bad].unique().tolist()))} are not BraTS "
                             f"2020 labels {LABELS}; 3 was the non-enhancing core of BraTS 2017 and older: "
                             f"map it to 1 before training")
        tc, wt, et = brats_regions(label[0])
        d[self.key] = torch.stack([tc, wt, et]).float()
        return d


def to_pair(data: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The end of a pipeline: ``(image, label)`` as plain tensors for ``course_utils.train``."""
    return torch.as_tensor(data["image"]), torch.as_tensor(data["label"])


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
