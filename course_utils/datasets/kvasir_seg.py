"""Kvasir-SEG polyp segmentation: the torch Dataset over the real layout, and its synthetic twin.

Layouts this reads (``root`` is what :func:`course_utils.data.locate` returns):

* official zip:  ``root/Kvasir-SEG/{images,masks}/<id>.jpg``
* Kaggle copy:   ``root/Kvasir-SEG/Kvasir-SEG/{images,masks}/<id>.jpg`` and ``root/{train,val}.txt``
  (one id per line: the 880/120 train/validation split that the dataset's authors publish "for fair
  model comparison" in github.com/DebeshJha/2020-MediaEval-Medico-polyp-segmentation, folder
  ``kvasir-seg-train-val/``, and benchmark on in Jha et al., IEEE Access 2021, arXiv:2011.07631.
  The Medico 2020 task itself gave participants all 1000 images and tested on a separate set.)

Format pitfall: the masks are **3-channel JPEGs** (saved at quality 95), so a binary mask comes
back with grey levels 0-8 and 247-255. Threshold at 128 *before* any resize; ``mask > 0``
would turn compression noise into polyp.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from course_utils.datasets import (
    DatasetInfo,
    carve_monitor,
    check_monitor_fraction,
    find_folder,
    read_grey,
    read_image,
    report_unused,
    reseed,
    seeded_split,
)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_THRESHOLD = 128
TWIN_VERSION = 1


def find_image_root(root: Path) -> Path:
    """The folder below ``root`` that holds both ``images/`` and ``masks/``."""
    return find_folder(root, lambda f: (f / "images").is_dir() and (f / "masks").is_dir(),
                       "both images/ and masks/ (Kvasir-SEG/images and Kvasir-SEG/masks, as in the official zip "
                       "or the Kaggle copy)")


def read_mask(path: Path) -> np.ndarray:
    """A Kvasir-SEG mask as a {0, 1} uint8 array of shape (H, W): grey level >= 128 is polyp."""
    return (read_grey(path) >= MASK_THRESHOLD).astype(np.uint8)


def _read_split(path: Path) -> list[str]:
    ids = [Path(line.strip()).stem for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{path} is empty; expected one image id per line")
    repeated = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) < len(ids) else []
    if repeated:
        raise ValueError(f"{path} lists {len(repeated)} ids more than once, e.g. {repeated[0]}; "
                         f"each image belongs in a split once")
    return ids


def _files_by_id(folder: Path) -> dict[str, Path]:
    """``{id: path}`` of the images in ``folder``. Two files with one id (``a.jpg`` and ``a.png``) are an
    error, since either could be the one meant; files that are not images are reported."""
    files: dict[str, Path] = {}
    others = []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            others.append(path.name)
        elif path.stem in files:
            raise ValueError(f"{files[path.stem].name} and {path.name} in {folder} have the same id: keep one of "
                             f"them (Kvasir-SEG images and masks are .jpg)")
        else:
            files[path.stem] = path
    report_unused(folder, "files that are not .jpg/.png images", [n for n in others if not n.startswith(".")])
    return files


def _find_split_file(image_root: Path, root: Path, split: str) -> Path | None:
    """``<split>.txt`` in the image folder or any folder above it, up to ``root``."""
    folder = image_root
    while True:
        candidate = folder / f"{split}.txt"
        if candidate.is_file():
            return candidate
        if folder == root or folder.parent == folder:
            return None
        folder = folder.parent


class KvasirSeg(Dataset):
    """Kvasir-SEG images and binary masks.

    ``split``: "train", "val", "monitor" or "all". The split comes from ``train.txt``/``val.txt`` where
    the copy has them, else from a seeded shuffle that keeps ``val_fraction`` for validation.

    ``monitor_fraction`` > 0 moves a seeded share of the *training* ids into a "monitor" split, for
    choosing the best epoch and early stopping. The "val" images then choose nothing, and the score
    reported on them is not inflated by that choice (the papers report on ``val.txt``).

    Without a ``transform`` an item is ``(image uint8 HxWx3, mask uint8 HxW in {0,1})`` at the
    original size. With one (an albumentations pipeline), the transform receives
    ``image=..., mask=...`` and the item is ``(transformed image, transformed mask)``.
    """

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None,
                 val_fraction: float = 0.12, seed: int = 0, monitor_fraction: float = 0.0):
        if split not in ("train", "val", "monitor", "all"):
            raise ValueError(f"split must be 'train', 'val', 'monitor' or 'all', not {split!r}")
        check_monitor_fraction(split, monitor_fraction, "training ids")
        self.root = Path(root)
        self.image_root = find_image_root(self.root)
        self.transform = transform
        images = _files_by_id(self.image_root / "images")
        masks = _files_by_id(self.image_root / "masks")
        if not images:
            raise FileNotFoundError(f"no .jpg/.png images in {self.image_root / 'images'}")
        missing = sorted(set(images) - set(masks))
        if missing:
            raise FileNotFoundError(f"{len(missing)} images have no mask in {self.image_root / 'masks'}, "
                                    f"e.g. {missing[0]}; the copy is incomplete: download it again")
        report_unused(self.image_root / "masks", "masks without an image", sorted(set(masks) - set(images)))
        split_files = {s: _find_split_file(self.image_root, self.root, s) for s in ("train", "val")}
        listed = {s: _read_split(f) for s, f in split_files.items() if f is not None}
        for s, listed_ids in listed.items():
            unknown = [i for i in listed_ids if i not in images]
            if unknown:
                raise FileNotFoundError(f"{split_files[s]} lists {len(unknown)} ids with no image in "
                                        f"{self.image_root / 'images'}, e.g. {unknown[0]}")
        if len(listed) == 2:
            both = sorted(set(listed["train"]) & set(listed["val"]))
            if both:
                raise ValueError(f"{len(both)} ids are in both {split_files['train']} and {split_files['val']}, "
                                 f"e.g. {both[0]}: validation images would be trained on. Fix the split files "
                                 f"so that each id is in one of them.")
            report_unused(self.image_root / "images", "images listed in neither split file",
                    sorted(set(images) - set(listed["train"]) - set(listed["val"])))
        base = "train" if split == "monitor" else split  # the monitor split is carved out of the training ids
        if base == "all":
            ids, self.split_source = sorted(images), "all images"
        elif base in listed:
            ids, self.split_source = listed[base], str(split_files[base])
        elif listed:  # only the other split's file: this split is the rest
            other = "val" if base == "train" else "train"
            ids = sorted(set(images) - set(listed[other]))
            self.split_source = f"all images not in {split_files[other]}"
        else:
            val, train = seeded_split(list(images), val_fraction, seed)
            ids, self.split_source = (val if base == "val" else train), "seeded split"
        if base == "train" and monitor_fraction > 0:
            ids, self.split_source = carve_monitor(ids, split, monitor_fraction, seed, self.split_source)
        self.ids = ids
        self.image_paths = [images[i] for i in ids]
        self.mask_paths = [masks[i] for i in ids]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        image = read_image(self.image_paths[index])
        mask = read_mask(self.mask_paths[index])
        if image.shape[:2] != mask.shape:
            raise ValueError(f"{self.mask_paths[index]} is {mask.shape[1]}x{mask.shape[0]} but its image "
                             f"{self.image_paths[index].name} is {image.shape[1]}x{image.shape[0]}; "
                             f"image and mask must be the same size")
        if self.transform is None:
            return image, mask
        reseed(self.transform)  # augmentation drawn from torch's generator: a resumed run repeats it exactly
        out = self.transform(image=image, mask=mask)
        return out["image"], out["mask"]


# --- the synthetic twin -------------------------------------------------------------------------

def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a small random grid upsampled bicubically."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC), dtype=np.float32) / 255


def _blob(rng: np.random.Generator, height: int, width: int, radius: float) -> np.ndarray:
    """A polyp-like blob: an ellipse whose outline wobbles with a few random harmonics."""
    cy = rng.uniform(radius, height - radius)
    cx = rng.uniform(radius, width - radius)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = np.arctan2(yy - cy, xx - cx)
    stretch = rng.uniform(0.7, 1.0)
    dist = np.hypot((xx - cx), (yy - cy) / stretch)
    outline = radius * (1 + sum(rng.uniform(-0.12, 0.12) * np.cos(k * angle + rng.uniform(0, 6.3))
                                for k in (2, 3, 5)))
    return dist / outline  # < 1 inside


def _twin_sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    height, width = int(rng.integers(288, 420)), int(rng.integers(320, 500))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # mucosa: a pink-red base with slow shading, folds (dark arcs) and fine grain
    base = np.array([rng.uniform(170, 215), rng.uniform(70, 110), rng.uniform(60, 95)], np.float32)
    shade = 0.55 + 0.6 * _smooth_noise(rng, height, width, 5)
    image = base * shade[..., None]
    for _ in range(int(rng.integers(2, 5))):
        fold = _smooth_noise(rng, height, width, 4)
        level = rng.uniform(0.35, 0.65)
        image *= 1 - 0.35 * np.exp(-((fold - level) / 0.015) ** 2)[..., None]
    vessels = _smooth_noise(rng, height, width, 12)
    image[..., 1:] *= (1 - 0.25 * np.exp(-((vessels - 0.5) / 0.01) ** 2))[..., None]
    # polyps: one or two raised blobs, lit from one side, a little paler and smoother than the mucosa
    mask = np.zeros((height, width), bool)
    light = rng.uniform(0, 2 * np.pi)
    for _ in range(1 if rng.random() < 0.75 else 2):
        radius = rng.uniform(0.10, 0.30) * min(height, width)
        d = _blob(rng, height, width, radius)
        inside = d < 1
        mask |= inside
        dome = np.sqrt(np.clip(1 - d**2, 0, 1))
        tint = np.array([rng.uniform(1.05, 1.25), rng.uniform(1.15, 1.45), rng.uniform(1.05, 1.35)], np.float32)
        lit = 0.75 + 0.45 * dome * (1 + 0.4 * (np.cos(light) * (xx - xx.mean()) + np.sin(light) *
                                                (yy - yy.mean())) / max(height, width))
        polyp = base * tint * lit[..., None]
        rim = np.exp(-((d - 1) / 0.06) ** 2)[..., None]  # the shadow at the polyp's edge
        image = np.where(inside[..., None], polyp, image) * (1 - 0.35 * rim)
    # specular highlights on mucosa and polyp alike, sensor noise, the scope's dark vignette
    for _ in range(int(rng.integers(3, 9))):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(2, 7)
        spot = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2)))
        image = image * (1 - spot[..., None]) + 250 * spot[..., None]
    image += rng.normal(0, 6, image.shape)
    radial = np.hypot((yy - height / 2) / (height / 2), (xx - width / 2) / (width / 2))
    image *= np.clip(1.35 - 0.5 * radial, 0, 1)[..., None]
    image[radial > 1.35] = 0
    if rng.random() < 0.5:  # the green position-indicator box of the Olympus scope, bottom left
        h, w = int(height * 0.28), int(width * 0.22)
        image[-h:, :w] = (20, 60, 30)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _twin_id(rng: np.random.Generator) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "cju" + "".join(alphabet[i] for i in rng.integers(0, len(alphabet), 22))


def write_twin(root: str | Path, n_images: int = 60, n_val: int = 12, seed: int = 0,
               layout: str = "kaggle") -> Path:
    """Write a small Kvasir-SEG look-alike in the real format.

    JPEG images of varying sizes (quality 75) and 3-channel JPEG masks at quality 95, exactly
    like the real masks (grey levels 0-8 and 247-255). ``layout="kaggle"`` nests
    ``Kvasir-SEG/Kvasir-SEG`` and writes ``train.txt``/``val.txt`` at the root;
    ``layout="official"`` writes ``Kvasir-SEG/{images,masks}`` as the official zip does.
    """
    if layout not in ("kaggle", "official"):
        raise ValueError(f"layout must be 'kaggle' or 'official', not {layout!r}")
    root = Path(root)
    image_root = root / "Kvasir-SEG" / "Kvasir-SEG" if layout == "kaggle" else root / "Kvasir-SEG"
    (image_root / "images").mkdir(parents=True, exist_ok=True)
    (image_root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = []
    for _ in range(n_images):
        name = _twin_id(rng)
        image, mask = _twin_sample(rng)
        Image.fromarray(image).save(image_root / "images" / f"{name}.jpg", quality=75)
        rgb_mask = np.repeat((mask * 255).astype(np.uint8)[..., None], 3, axis=2)
        Image.fromarray(rgb_mask).save(image_root / "masks" / f"{name}.jpg", quality=95)
        ids.append(name)
    if layout == "kaggle":
        (root / "train.txt").write_text("\n".join(ids[n_val:]) + "\n")
        (root / "val.txt").write_text("\n".join(ids[:n_val]) + "\n")
    return root


INFO = DatasetInfo(
    name="kvasir_seg",
    title="Kvasir-SEG: 1000 colonoscopy images with polyp masks",
    notebook="03",
    marker="Kvasir-SEG/masks",
    kaggle="debeshjha1/kvasirseg",
    url="https://datasets.simula.no/downloads/kvasir-seg.zip",
    licence="research and educational use (see datasets.simula.no/kvasir-seg)",
    citation="Jha et al., Kvasir-SEG: A Segmented Polyp Dataset, MMM 2020",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
