"""Samples per second of each notebook's full-mode training pipeline, so that loader regressions show.

    python scripts/benchmark_loaders.py                       # every dataset, 2 workers
    python scripts/benchmark_loaders.py camvid --workers 4    # one dataset, Kaggle's 4 workers

Each dataset is read where ``data.find_local`` finds the real data, else from a synthetic twin
written at the real size into a temporary folder (the Kvasir-SEG twin's images, 320-500 pixels wide,
are smaller than most real ones, which reach 1920x1072). The pipelines mirror the notebooks' full-mode
cells: change them together. A T4 trains these models at roughly (estimates, not measurements):
U-Net/ResNet-34 at 352x352 ~100 images/s, DeepLabV3+ at 352x480 ~60, a 3D U-Net on 128^3 crops ~10.
BraTS samples come from the preprocessed cache, which is built before the timing starts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from course_utils import data  # before albumentations (imported in the pipelines): no online version check


def aisegment(root: Path) -> tuple[Dataset, int]:
    """Notebook 01's MODNet training: 800x600 JPEG photos and RGBA PNG mattes, resized to 512x384, flipped,
    warped and jittered, with a trimap of a random band made from each matte."""
    import albumentations as A
    import cv2
    from albumentations.pytorch import ToTensorV2

    from course_utils.datasets.aisegment import AISegment

    tf = A.Compose([A.HorizontalFlip(),
                    A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-10, 10), p=0.5,
                             border_mode=cv2.BORDER_REFLECT_101, mask_interpolation=cv2.INTER_LINEAR),
                    A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
                    A.Normalize(), ToTensorV2()], seed=0)
    return AISegment(root, "train", transform=tf, size=(512, 384), trimap_band=(5, 15)), 16


def kvasir_seg(root: Path) -> tuple[Dataset, int]:
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    from course_utils.datasets.kvasir_seg import KvasirSeg

    tf = A.Compose([A.Resize(352, 352), A.HorizontalFlip(), A.VerticalFlip(), A.RandomRotate90(),
                    A.Affine(scale=(0.8, 1.2), rotate=(-20, 20), p=0.5),
                    A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1, hue=0.02, p=0.5),
                    A.Normalize(), ToTensorV2()], seed=0)
    return KvasirSeg(root, "train", transform=tf), 16


def lip(root: Path) -> tuple[Dataset, int]:
    """Notebook 05's training: LIP person crops resized (longest side) and padded to 384x384, scaled and turned,
    flipped with the left/right labels swapped, and jittered."""
    import albumentations as A
    import cv2
    from albumentations.pytorch import ToTensorV2

    from course_utils.datasets.human_parsing import LIP, HumanParsing, LeftRightFlip

    tf = A.Compose([A.LongestMaxSize(384), A.PadIfNeeded(384, 384, border_mode=cv2.BORDER_CONSTANT, fill=0,
                                                           fill_mask=255),
                    A.Affine(scale=(0.75, 1.25), rotate=(-30, 30), p=0.6, border_mode=cv2.BORDER_CONSTANT, fill=0,
                             fill_mask=255),
                    LeftRightFlip(LIP), A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
                    A.Normalize(), ToTensorV2()], seed=0)
    return HumanParsing(root, "train", transform=tf), 16


def camvid(root: Path) -> tuple[Dataset, int]:
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    from course_utils.datasets.camvid import IGNORE_INDEX, CamVid

    tf = A.Compose([A.Resize(352, 480), A.HorizontalFlip(),
                    A.Affine(scale=(0.75, 1.25), p=0.5, border_mode=0, fill_mask=IGNORE_INDEX),
                    A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
                    A.Normalize(), ToTensorV2()], seed=0)
    return CamVid(root, "train", classes="11", transform=tf), 8


def brats2020(root: Path) -> tuple[Dataset, int]:
    """128^3 crops from the preprocessed cache (built here on first use: not part of the timing)."""
    from monai.transforms import Compose, RandFlipd, RandScaleIntensityd, RandShiftIntensityd

    from course_utils.datasets import brats

    keys = ["image", "label"]
    augment = Compose([RandFlipd(keys, prob=0.5, spatial_axis=0), RandFlipd(keys, prob=0.5, spatial_axis=1),
                       RandFlipd(keys, prob=0.5, spatial_axis=2), RandScaleIntensityd("image", factors=0.1, prob=1.0),
                       RandShiftIntensityd("image", offsets=0.1, prob=1.0)])
    cases = brats.cache_cases(brats.find_cases(root), tempfile.mkdtemp(prefix="bench-brats-cache-"))
    return brats.RandomCrops(cases * 4, (128, 128, 128), augment), 1


def pennfudan(root: Path) -> tuple[Dataset, int, Callable]:
    """Images of different sizes: batches are lists (the dataset's collate), as detection models take them."""
    from course_utils.datasets.pennfudan import PennFudan, collate, train_transform

    return PennFudan(root, "train", transform=train_transform()), 2, collate


def coco_panoptic(root: Path) -> tuple[Dataset, int]:
    """512x512 crops of photos whose shorter side is scaled to 512-768 (COCO photos are about 640x480); the
    id map moves with the photo, and the semantic and instance targets are computed from it after the crop."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    from course_utils.datasets.coco_panoptic import CocoPanoptic

    tf = A.Compose([A.SmallestMaxSize(max_size=(512, 576, 640, 704, 768)), A.RandomCrop(512, 512), A.HorizontalFlip(),
                    A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.5),
                    A.Normalize(), ToTensorV2()], seed=0)
    return CocoPanoptic(root, "train", transform=tf), 8


def sintel(root: Path) -> tuple[Dataset, int]:
    """Notebook 08's FlowNetS training pairs: final-pass frame pairs and their .flo, scaled, cropped to 384x768,
    flipped and jittered consistently (FlowAugment)."""
    from course_utils.datasets.flow import FlowAugment
    from course_utils.datasets.sintel import Sintel

    return Sintel(root, "train", "final", FlowAugment((384, 768), scale=(0.9, 1.4), jitter=0.2)), 8


def kitti_flow(root: Path) -> tuple[Dataset, int]:
    """Notebook 08 evaluates on KITTI one pair at a time, at its own size (the sizes differ): frames, 16-bit flow."""
    from course_utils.datasets.kitti_flow import KittiFlow

    return KittiFlow(root, "all"), 1


class Clips(Dataset):
    """DAVIS items (dicts) as (frames, masks) pairs, as a loader of inputs and targets yields them."""

    def __init__(self, davis: Dataset):
        self.davis = davis

    def __len__(self) -> int:
        return len(self.davis)

    def __getitem__(self, index: int):
        clip = self.davis[index]
        return clip["frames"], clip["masks"]


def davis2017(root: Path) -> tuple[Dataset, int]:
    """Notebook 08 reads DAVIS one whole clip at a time (all JPEG frames and palette PNG masks)."""
    from course_utils.datasets.davis import Davis

    return Clips(Davis(root, "val")), 1


def shapenet_part(root: Path) -> tuple[Dataset, int]:
    """Notebook 07's part-segmentation training: 2048 points per shape, read from the text files (7 floats a line),
    sampled afresh, rotated, scaled and jittered."""
    from course_utils.datasets.shapenet_part import ShapeNetPart, augment

    return ShapeNetPart(root, "train", n_points=2048, transform=augment()), 32


def modelnet40(root: Path) -> tuple[Dataset, int]:
    """Notebook 07's classification training: 1024 points sampled on each mesh's surface (cached after the first
    epoch: this times the first, uncached pass), rotated about z and jittered."""
    from course_utils.datasets.modelnet import ModelNet, augment

    return ModelNet(root, "train", n_points=1024, transform=augment(), cache=False), 32


PIPELINES: dict[str, Callable[[Path], tuple]] = {
    "aisegment": aisegment, "kvasir_seg": kvasir_seg, "camvid": camvid, "brats2020": brats2020, "lip": lip,
    "pennfudan": pennfudan,
    "coco_panoptic": coco_panoptic, "sintel": sintel, "kitti_flow": kitti_flow, "davis2017": davis2017,
    "shapenet_part": shapenet_part, "modelnet40": modelnet40}
REAL_SIZE_TWINS = {"aisegment": {"n_groups": 4, "clips_per_group": 1, "images_per_clip": 8, "height": 800,
                                 "width": 600},  # 16 training photos: one batch
                   "kvasir_seg": {}, "camvid": {"size": (960, 720), "counts": {"train": 24}},
                   "brats2020": {"case_numbers": (1, 2, 3, 4), "shape": (240, 240, 155), "compressed": True},
                   "lip": {"n_train": 40, "n_val": 1, "scale": 3.0},  # person crops 336-432 px tall
                   "pennfudan": {"scale": 3.0}, "coco_panoptic": {"n_images": 24, "size": (480, 640)},
                   "sintel": {"n_scenes": 8, "n_frames": 4, "size": (436, 1024)}, "kitti_flow": {"scale": 7.8},
                   "davis2017": {"n_train": 1, "n_val": 2, "size": (480, 854)},
                   "shapenet_part": {"n_points": (2500, 3000)}, "modelnet40": {}}


def samples_per_second(dataset: Dataset, batch_size: int, workers: int, batches: int,
                       collate_fn: Callable | None = None) -> float:
    """Training-loader throughput over ``batches`` batches, after a first one that pays for starting the
    workers; the loader goes round as many epochs as that takes."""
    loader = DataLoader(dataset, batch_size, shuffle=True, drop_last=True, num_workers=workers,
                        persistent_workers=workers > 0, collate_fn=collate_fn)
    if len(loader) == 0:
        raise ValueError(f"{len(dataset)} samples make no batch of {batch_size}: write a larger twin")

    def forever():
        while True:
            yield from loader

    stream = forever()
    next(stream)
    start, seen = time.perf_counter(), 0
    for _, (images, _) in zip(range(batches), stream):
        seen += len(images)
    return seen / (time.perf_counter() - start)


def benchmark(name: str, workers: int = 2, batches: int = 4, root: Path | None = None) -> float:
    if root is None:
        found = data.find_local(name)
        if found:
            root = found[0]
        else:
            root = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
            data.info(name).write_twin(root, **REAL_SIZE_TWINS[name])
    dataset, batch_size, *collate_fn = PIPELINES[name](root)  # a third item: the collate function, if any
    return samples_per_second(dataset, batch_size, workers, batches, *collate_fn)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(PIPELINES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    for name in args.names:
        rate = benchmark(name, args.workers, args.batches)
        print(f"{name:<12} {rate:8.1f} samples/s  ({args.workers} workers)")
