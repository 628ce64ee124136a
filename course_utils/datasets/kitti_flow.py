"""KITTI 2015 optical flow (the flow part of the scene flow benchmark): the torch Dataset, and its twin.

Layout of ``data_scene_flow.zip`` (``root`` is what ``data.locate`` returns; the folders are searched for)::

    training/image_2/000000_10.png, 000000_11.png   left colour camera: frame 10 and the next frame, 11
    training/flow_occ/000000_10.png                 flow truth of all pixels with a lidar point (16-bit PNG)
    training/flow_noc/000000_10.png                 the same without the pixels occluded in frame 11
    training/image_3, disp_occ_0, obj_map, ...      the right camera, disparities, object maps (not used here)
    testing/image_2/...                             200 test pairs without truth

200 training pairs (``000000`` to ``000199``), each from a different scene. The frames are about 375 x 1242
pixels, but not all alike (370 x 1224, 374 x 1238, 376 x 1241 and 375 x 1242 occur): the Dataset returns each
at its own size, so a batch needs a transform that crops them to one size (``FlowAugment(crop_size=...)``).

Format pitfalls: the flow PNGs are **16-bit** RGB, read with OpenCV's ``IMREAD_UNCHANGED`` (channels in BGR
order), and the truth is **sparse**: it comes from a lidar, so there is none in the sky (the top third of
the frame) and only about a fifth of the pixels have one (moving cars are dense: fitted CAD models).
``read_kitti_flow`` decodes them; resizing sparse truth needs ``resize_sparse_flow``, not interpolation.

Splits, by pair number ``n`` (a teaching choice; no validation split is official): "test" (reported) the
pairs with ``n % 5 == 4`` (40 of 200), "monitor" (chooses the checkpoint) those with ``n % 10 == 1`` (20),
"train" the other 140; "all" every pair. The same rule splits the twin.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from course_utils.datasets import DatasetInfo, find_folder, read_image, report_unused
from course_utils.datasets.flow import check_same_size, flow_item, read_kitti_flow, write_kitti_flow
from course_utils.datasets.moving_scenes import make_scene

TWIN_VERSION = 1
URL = "https://s3.eu-central-1.amazonaws.com/avg-kitti/data_scene_flow.zip"
SPLITS = ("train", "monitor", "test", "all")
PAIR_NAME = re.compile(r"(\d{6})_10\.png")


def split_of(number: int) -> str:
    """The split of pair ``number``: "test", "monitor" or "train" (see the module docstring)."""
    return "test" if number % 5 == 4 else "monitor" if number % 10 == 1 else "train"


def find_kitti_root(root: str | Path) -> Path:
    """The folder at or below ``root`` that holds ``training/image_2/`` and ``training/flow_occ/``."""
    try:
        return find_folder(Path(root), lambda f: (f / "training" / "image_2").is_dir()
                           and (f / "training" / "flow_occ").is_dir(), "training/image_2/ and training/flow_occ/")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}. KITTI 2015 flow has training/image_2/000000_10.png and "
                                f"training/flow_occ/000000_10.png: unzip {URL} (data_scene_flow.zip) and pass the "
                                f"folder that holds training/") from None


class KittiFlow(Dataset):
    """KITTI 2015 training frame pairs with their sparse flow truth.

    An item is ``(frames, target)`` as in ``Sintel``: ``frames`` a float32 tensor (2, 3, H, W) in [0, 1] (frames
    ``_10`` and ``_11``), ``target`` a dict with ``flow`` (2, H, W) float32 (0 where unknown), ``valid`` (H, W)
    bool (the PNG's third channel) and ``index``. H and W differ between pairs (see the module docstring).
    ``numbers[index]`` is the pair's number.

    ``occ=True`` reads ``flow_occ`` (all pixels with truth: KITTI's "all" metrics), ``occ=False`` reads
    ``flow_noc`` (the non-occluded ones: "noc"). ``transform``: as for ``Sintel``, called as
    ``transform(frame1, frame2, flow, valid)``; use ``FlowAugment(..., sparse=True)``, which resizes the
    sparse truth without inventing vectors.
    """

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None, occ: bool = True):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        self.base = find_kitti_root(root)
        self.transform, self.occ = transform, occ
        training = self.base / "training"
        self.flow_folder = training / ("flow_occ" if occ else "flow_noc")
        if not self.flow_folder.is_dir():
            raise FileNotFoundError(f"{self.flow_folder} does not exist (occ={occ}); unzip {URL} again, or use "
                                    f"occ={not occ}")
        images = training / "image_2"
        numbers = sorted(int(m.group(1)) for p in images.iterdir() if (m := PAIR_NAME.fullmatch(p.name)))
        if not numbers:
            raise FileNotFoundError(f"no frames named like 000000_10.png in {images}; unzip {URL} again")
        self.numbers = numbers if split == "all" else [n for n in numbers if split_of(n) == split]
        if not self.numbers:
            raise ValueError(f"no pair of {images} is in the {split!r} split (pair numbers {numbers[:5]}...)")
        for n in self.numbers:
            for path in (images / f"{n:06d}_11.png", self.flow_folder / f"{n:06d}_10.png"):
                if not path.is_file():
                    what = "the second frame" if path.parent == images else "the flow truth"
                    raise FileNotFoundError(f"{path} is missing: {what} of pair {n:06d}. The copy is incomplete: "
                                            f"unzip {URL} again (or remove {images / f'{n:06d}_10.png'})")
        flows = {int(m.group(1)) for p in self.flow_folder.iterdir() if (m := PAIR_NAME.fullmatch(p.name))}
        report_unused(self.flow_folder, "flow files without frames", sorted(f"{n:06d}_10.png" for n in
                                                                            flows - set(numbers)))

    def __len__(self) -> int:
        return len(self.numbers)

    def paths(self, index: int) -> dict[str, Path]:
        n, images = self.numbers[index], self.base / "training" / "image_2"
        return {"frame1": images / f"{n:06d}_10.png", "frame2": images / f"{n:06d}_11.png",
                "flow": self.flow_folder / f"{n:06d}_10.png"}

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(frame1, frame2, flow, valid)`` of item ``index`` as numpy arrays, before any transform."""
        paths = self.paths(index)
        frame1, frame2 = read_image(paths["frame1"]), read_image(paths["frame2"])
        flow, valid = read_kitti_flow(paths["flow"])
        sizes = {name: a.shape[:2] for name, a in (("frame1", frame1), ("frame2", frame2), ("flow", flow))}
        check_same_size(paths, sizes, f"One of them was resized or belongs to another pair: unzip {URL} again")
        return frame1, frame2, flow, valid

    def __getitem__(self, index: int):
        return flow_item(*self.read(index), index, self.transform)


# --- the synthetic twin ---------------------------------------------------------------------------

TWIN_SIZES = ((48, 160), (47, 158), (48, 159), (47, 160))  # like KITTI's few sizes, at an eighth of the scale


def lidar_valid(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """Where a lidar-based truth knows the flow, for a frame whose object mask (H, W) is ``masks``: no background
    pixel in the top third (the sky, above the lidar's reach), about 30 % of the others, in denser and sparser
    rows like scan lines; 85 % of the objects' pixels below the top quarter (KITTI fits CAD models to cars,
    whose truth is dense)."""
    height, width = masks.shape
    rows = np.arange(height)[:, None]
    background = (rows >= height // 3) & (rng.random((height, width)) < np.where(rows % 2 == 0, 0.45, 0.15))
    objects = (masks > 0) & (rows >= height // 4) & (rng.random((height, width)) < 0.85)
    return background | objects


def write_twin(root: str | Path, n_pairs: int = 20, n_test: int = 2, seed: int = 0, scale: float = 1.0) -> Path:
    """Write a small KITTI 2015 flow look-alike into ``root`` in the official layout; returns ``root``.

    ``n_pairs`` training pairs ``training/image_2/%06d_10.png`` and ``_11.png`` of slightly different wide
    sizes (``TWIN_SIZES``, about 48 x 160), each a two-frame :func:`make_scene` (a panning, zooming background
    and 1-3 objects, motions up to about 4 pixels); their flow as 16-bit KITTI PNGs, sparse like lidar truth
    (:func:`lidar_valid`): ``flow_occ`` with occluded pixels, ``flow_noc`` without. ``testing/image_2`` holds
    ``n_test`` pairs of frames only. ``scale`` multiplies the sizes (7.8: KITTI's own, about 375 x 1242, for
    timing loaders) and the motions. Deterministic for a given ``seed``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    folders = {name: root / "training" / name for name in ("image_2", "flow_occ", "flow_noc")}
    folders["test"] = root / "testing" / "image_2"
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    for n in range(n_pairs + n_test):
        height, width = (round(scale * side) for side in TWIN_SIZES[int(rng.integers(len(TWIN_SIZES)))])
        video = make_scene(rng, 2, height, width, n_objects=int(rng.integers(1, 4)), max_speed=4.0 * scale)
        number = n if n < n_pairs else n - n_pairs
        images = folders["image_2"] if n < n_pairs else folders["test"]
        for t, suffix in enumerate(("10", "11")):
            cv2.imwrite(str(images / f"{number:06d}_{suffix}.png"), np.ascontiguousarray(video.frames[t][..., ::-1]))
        if n < n_pairs:
            valid = lidar_valid(rng, video.masks[0])
            write_kitti_flow(folders["flow_occ"] / f"{number:06d}_10.png", video.flow[0], valid)
            write_kitti_flow(folders["flow_noc"] / f"{number:06d}_10.png", video.flow[0], valid & ~video.occluded[0])
    return root


INFO = DatasetInfo(
    name="kitti_flow",
    title="KITTI 2015 optical flow: 200 training pairs of street scenes with sparse lidar-based truth",
    notebook="08",
    marker="training/flow_occ",
    url=URL,
    sha256=None,  # we found no published checksum of the archive
    licence="CC BY-NC-SA 3.0 (non-commercial; see www.cvlibs.net/datasets/kitti)",
    citation="Menze, Geiger: Object Scene Flow for Autonomous Vehicles, CVPR 2015",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
