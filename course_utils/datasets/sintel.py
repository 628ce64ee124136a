"""MPI-Sintel optical flow: the torch Dataset over the official layout, and its synthetic twin.

Layout of ``MPI-Sintel-complete.zip`` (``root`` is what ``data.locate`` returns; the folders are searched for,
since copies nest them differently)::

    training/clean/<scene>/frame_0001.png ...     frames rendered without blur, fog or lighting effects
    training/final/<scene>/frame_0001.png ...     the same frames with them ("final pass"): much harder
    training/flow/<scene>/frame_0001.flo ...      forward flow of frame i to frame i + 1: n frames, n - 1 flows
    training/occlusions/<scene>/frame_0001.png    grey PNG, non-zero where the pixel of frame i is hidden in i + 1
    training/invalid/<scene>/frame_0001.png       grey PNG, non-zero where the flow is not to be trusted
    test/{clean,final}/<scene>/...                frames only: the benchmark keeps the test flow secret

23 training scenes (1041 frame pairs) of 436 x 1024 pixels; the flow is the same for both passes.

Splits are by **scene**: the frames of one scene are near-duplicates, so a split by frame would test on
frames next to the ones trained on. For the real scenes the split is a fixed list (a teaching choice: no
official validation split exists; each of the six test scenes comes from a different setting of the film):

* "test" (reported): ``TEST_SCENES`` = alley_2, ambush_5, bamboo_2, cave_4, market_6, temple_3;
* "monitor" (chooses the checkpoint): ``MONITOR_SCENES`` = ambush_6, bandage_2, shaman_3;
* "train": the other 14 scenes; "all": every scene.

For any other set of scenes (the twin, or a folder with scenes of other names) the split is seeded by scene
name: ``TEST_FRACTION`` of the scenes for test, then ``MONITOR_FRACTION`` of the rest for monitor.
A copy with only some of the 23 real scenes keeps the fixed lists.

``valid`` (the pixels whose truth is used) is every pixel whose ``.flo`` value is known (below 1e9) and
that ``invalid/`` does not mark; with ``occ=False`` also the pixels that ``occlusions/`` marks are left
out (Sintel's "matched" pixels). RAFT's and torchvision's loaders read neither mask.

Format pitfalls: the ``.flo`` header holds width *then* height (``course_utils.datasets.flow``); the flow of
the last frame of a scene does not exist; the clean and final frames share one flow file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from course_utils.datasets import (
    DamagedFileError,
    DatasetInfo,
    carve_monitor,
    find_folder,
    read_grey,
    read_image,
    report_unused,
    seeded_split,
)
from course_utils.datasets.flow import check_same_size, flo_valid, flow_item, read_flo, write_flo
from course_utils.datasets.moving_scenes import make_scene

TWIN_VERSION = 2
URL = "http://files.is.tue.mpg.de/sintel/MPI-Sintel-complete.zip"
PASSES = ("clean", "final")
SPLITS = ("train", "monitor", "test", "all")
REAL_SCENES = ("alley_1", "alley_2", "ambush_2", "ambush_4", "ambush_5", "ambush_6", "ambush_7", "bamboo_1",
               "bamboo_2", "bandage_1", "bandage_2", "cave_2", "cave_4", "market_2", "market_5", "market_6",
               "mountain_1", "shaman_2", "shaman_3", "sleeping_1", "sleeping_2", "temple_2", "temple_3")
TEST_SCENES = ("alley_2", "ambush_5", "bamboo_2", "cave_4", "market_6", "temple_3")
MONITOR_SCENES = ("ambush_6", "bandage_2", "shaman_3")
TEST_FRACTION, MONITOR_FRACTION = 0.25, 0.2  # for scene sets other than the real one
FRAME_NAME = re.compile(r"frame_(\d{4})\.png")


def find_sintel_root(root: str | Path, pass_name: str = "clean") -> Path:
    """The folder at or below ``root`` that holds ``training/<pass_name>/`` and ``training/flow/``."""
    try:
        base = find_folder(Path(root), lambda f: (f / "training" / pass_name).is_dir(), f"training/{pass_name}/")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}. MPI-Sintel has training/{{clean,final}}/<scene>/frame_0001.png and "
                                f"training/flow/<scene>/frame_0001.flo: unzip {URL} and pass the folder that "
                                f"holds training/") from None
    if not (base / "training" / "flow").is_dir():
        raise FileNotFoundError(f"{base / 'training'} has {pass_name}/ but no flow/: the frames alone (as in "
                                f"MPI-Sintel-training_images.zip) have no truth. Unzip {URL}, which has both.")
    return base


def split_scenes(scenes: list[str], split: str, seed: int = 0) -> tuple[list[str], str]:
    """``(scenes of the split, how it was chosen)``: the fixed lists for real Sintel scenes, else seeded by
    name (see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if split == "all":
        return sorted(scenes), "all scenes"
    if set(scenes) <= set(REAL_SCENES):
        fixed = {"test": TEST_SCENES, "monitor": MONITOR_SCENES}
        chosen = ([s for s in scenes if s in fixed[split]] if split in fixed
                  else [s for s in scenes if s not in TEST_SCENES + MONITOR_SCENES])
        if not chosen:
            raise ValueError(f"none of the scenes found ({sorted(scenes)}) is in the {split!r} split "
                             f"({fixed.get(split, 'the scenes not in test or monitor')}): the copy is incomplete")
        return sorted(chosen), f"the fixed {split} scenes of the real Sintel"
    test, rest = seeded_split(scenes, TEST_FRACTION, seed)
    if split == "test":
        return test, f"a seeded {TEST_FRACTION:.0%} of the scenes"
    return carve_monitor(rest, split, MONITOR_FRACTION, seed, f"the scenes not in a seeded {TEST_FRACTION:.0%}")


def _frame_numbers(folder: Path) -> list[int]:
    """The numbers of ``frame_%04d.png`` in a scene folder, checked to run without a gap."""
    numbers = sorted(int(m.group(1)) for p in folder.iterdir() if (m := FRAME_NAME.fullmatch(p.name)))
    if not numbers:
        raise FileNotFoundError(f"no frame_%04d.png frames in {folder}")
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        raise FileNotFoundError(f"{folder} lacks frame_{missing[0]:04d}.png (and {len(missing) - 1} more) between "
                                f"frame_{numbers[0]:04d} and frame_{numbers[-1]:04d}: the copy is incomplete; "
                                f"unzip {URL} again")
    return numbers


class Sintel(Dataset):
    """MPI-Sintel training frame pairs with their flow truth.

    An item is ``(frames, target)``: ``frames`` a float32 tensor (2, 3, H, W) in [0, 1] (frame i, then frame
    i + 1); ``target`` a dict: ``flow`` (2, H, W) float32 in pixels, (u, v) = (dx, dy); ``valid`` (H, W) bool
    (see the module docstring); ``index`` the item's index. ``pairs[index]`` is its ``(scene, i)``.

    ``pass_name``: "clean" or "final". ``occ=False`` leaves occluded pixels out of ``valid``.
    ``transform``: called as ``transform(frame1, frame2, flow, valid)`` on numpy arrays (uint8 frames (H, W, 3),
    flow (H, W, 2), valid (H, W) bool) and returning the four; ``course_utils.datasets.flow.FlowAugment``
    crops, flips, scales and jitters them consistently. Frames of equal size batch with the default collate.
    """

    def __init__(self, root: str | Path, split: str = "train", pass_name: str = "clean",
                 transform: Callable | None = None, occ: bool = True, seed: int = 0):
        if pass_name not in PASSES:
            raise ValueError(f"pass_name must be one of {PASSES}, not {pass_name!r}")
        self.base = find_sintel_root(root, pass_name)
        self.pass_name, self.transform, self.occ = pass_name, transform, occ
        training = self.base / "training"
        scenes = sorted(p.name for p in (training / pass_name).iterdir() if p.is_dir() and not p.name.startswith("."))
        if not scenes:
            raise FileNotFoundError(f"{training / pass_name} holds no scene folders; unzip {URL} again")
        report_unused(training / "flow", "scene folders of flow without frames",
                      sorted(p.name for p in (training / "flow").iterdir() if p.is_dir() and p.name not in scenes))
        self.scenes, self.split_source = split_scenes(scenes, split, seed)
        self.pairs: list[tuple[str, int]] = []
        for scene in self.scenes:
            numbers = _frame_numbers(training / pass_name / scene)
            for i in numbers[:-1]:  # the last frame has no next frame, hence no flow
                flow_path = training / "flow" / scene / f"frame_{i:04d}.flo"
                if not flow_path.is_file():
                    raise FileNotFoundError(f"{flow_path} is missing: the flow from frame_{i:04d}.png to "
                                            f"frame_{i + 1:04d}.png of scene {scene}. The copy is incomplete: unzip "
                                            f"{URL} again (or remove the scene folder {training / pass_name / scene})")
                self.pairs.append((scene, i))

    def __len__(self) -> int:
        return len(self.pairs)

    def paths(self, index: int) -> dict[str, Path]:
        """The files of item ``index``: frame1, frame2, flow, occlusions and invalid (the last two may be absent)."""
        scene, i = self.pairs[index]
        training = self.base / "training"
        return {"frame1": training / self.pass_name / scene / f"frame_{i:04d}.png",
                "frame2": training / self.pass_name / scene / f"frame_{i + 1:04d}.png",
                "flow": training / "flow" / scene / f"frame_{i:04d}.flo",
                "occlusions": training / "occlusions" / scene / f"frame_{i:04d}.png",
                "invalid": training / "invalid" / scene / f"frame_{i:04d}.png"}

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(frame1, frame2, flow, valid)`` of item ``index`` as numpy arrays, before any transform."""
        paths = self.paths(index)
        frame1, frame2 = read_image(paths["frame1"]), read_image(paths["frame2"])
        try:
            flow = read_flo(paths["flow"])
        except (DamagedFileError, ValueError) as error:
            raise type(error)(f"{error}. Unzip {URL} again, or leave scene {self.pairs[index][0]} out.") from error
        sizes = {name: a.shape[:2] for name, a in (("frame1", frame1), ("frame2", frame2), ("flow", flow))}
        valid = flo_valid(flow)
        masks = [("invalid", True)] + ([] if self.occ else [("occlusions", False)])
        for name, optional in masks:
            if not paths[name].is_file():
                if optional:
                    continue
                raise FileNotFoundError(f"{paths[name]} is missing, and occ=False needs it to leave occluded pixels "
                                        f"out; unzip {URL} (it has training/occlusions/), or use occ=True")
            mask = read_grey(paths[name])
            sizes[name] = mask.shape
            if mask.shape == valid.shape:
                valid &= mask == 0
        check_same_size(paths, sizes, f"One of them comes from another scene or was resized: unzip {URL} again")
        flow = np.where(valid[..., None], flow, 0).astype(np.float32)  # unknown values (1e10) would spread in resizes
        return frame1, frame2, flow, valid

    def __getitem__(self, index: int):
        return flow_item(*self.read(index), index, self.transform)


# --- the synthetic twin ---------------------------------------------------------------------------

_SETTINGS = ("alley", "ambush", "bamboo", "bandage", "cave", "market", "mountain", "shaman")
TWIN_SCENES = tuple(f"{s}{k}_twin" for k in ("", "2", "3") for s in _SETTINGS)  # alley_twin .. shaman3_twin


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"could not write {path}")


def final_pass(frames: np.ndarray, flows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The twin's "final pass" of a clean sequence (T, H, W, 3) uint8 with its forward flows (T - 1, H, W, 2):
    motion blur along each pixel's flow (the mean of 7 samples over 60 % of the motion), a haze that thickens
    towards the top of the frame (a colour and strength per scene), and stronger sensor noise."""
    n, height, width = frames.shape[:3]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    haze_colour = rng.uniform(150, 230, 3).astype(np.float32)
    haze = (rng.uniform(0.1, 0.3) + rng.uniform(0.1, 0.3) * (1 - ys / height))[..., None]
    out = np.empty_like(frames)
    for t in range(n):
        flow = flows[min(t, n - 2)]  # the last frame has no forward flow: use the previous one
        samples = [cv2.remap(frames[t], xs + a * flow[..., 0], ys + a * flow[..., 1], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT).astype(np.float32)
                   for a in np.linspace(-0.3, 0.3, 7).tolist()]  # Python floats: the maps stay float32
        image = np.mean(samples, axis=0) * (1 - haze) + haze_colour * haze
        image += rng.normal(0, 4, image.shape)
        out[t] = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return out


def write_twin(root: str | Path, n_scenes: int = 24, n_frames: int = 4, size: tuple[int, int] = (64, 96),
               seed: int = 0, max_speed: float = 4.0) -> Path:
    """Write a small MPI-Sintel look-alike into ``root`` in the official layout; returns ``root``.

    ``n_scenes`` scenes (named after the film's settings with ``_twin``: they are not Sintel scenes) of
    ``n_frames`` frames of ``size`` (height, width), each a :func:`make_scene` video: a textured background
    panning (with a little zoom and roll) behind 1-3 textured objects that move, spin and occlude each
    other, with motions of up to about ``max_speed`` pixels per frame (1.4 pixels on average: the end-point
    error of predicting no motion). ``clean/`` holds the rendered frames, ``final/`` the same with motion blur,
    haze and noise (:func:`final_pass`); ``flow/`` the exact forward flow as .flo;
    ``occlusions/`` the occluded pixels (255) and ``invalid/`` empty masks, as grey PNGs. ``test/`` holds one
    scene of frames only, as the real test set has no flow. Deterministic for a given ``seed``.
    """
    if n_scenes > len(TWIN_SCENES) or n_frames < 2:
        raise ValueError(f"n_scenes must be at most {len(TWIN_SCENES)} and n_frames at least 2")
    root = Path(root)
    rng = np.random.default_rng(seed)
    height, width = size
    for scene in TWIN_SCENES[:n_scenes]:
        video = make_scene(rng, n_frames, height, width, n_objects=int(rng.integers(1, 4)), max_speed=max_speed)
        final = final_pass(video.frames, video.flow, rng)
        folders = {kind: root / "training" / kind / scene for kind in ("clean", "final", "flow", "occlusions",
                                                                      "invalid")}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        for t in range(n_frames):
            _write_rgb(folders["clean"] / f"frame_{t + 1:04d}.png", video.frames[t])
            _write_rgb(folders["final"] / f"frame_{t + 1:04d}.png", final[t])
            if t < n_frames - 1:
                write_flo(folders["flow"] / f"frame_{t + 1:04d}.flo", video.flow[t])
                cv2.imwrite(str(folders["occlusions"] / f"frame_{t + 1:04d}.png"),
                            video.occluded[t].astype(np.uint8) * 255)
                cv2.imwrite(str(folders["invalid"] / f"frame_{t + 1:04d}.png"), np.zeros((height, width), np.uint8))
    test = make_scene(rng, 3, height, width, n_objects=2, max_speed=max_speed)
    for kind, frames in (("clean", test.frames), ("final", final_pass(test.frames, test.flow, rng))):
        folder = root / "test" / kind / "tiger_twin"
        folder.mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(frames):
            _write_rgb(folder / f"frame_{t + 1:04d}.png", frame)
    return root


INFO = DatasetInfo(
    name="sintel",
    title="MPI-Sintel: optical flow of 23 training scenes of the film Sintel (1041 frame pairs, clean and final)",
    notebook="08",
    marker="training/clean",
    url=URL,
    sha256=None,  # we found no published checksum of the archive
    licence="the terms of use at sintel.is.tue.mpg.de (the film itself: CC BY 3.0, Blender Foundation)",
    citation="Butler, Wulff, Stanley, Black: A Naturalistic Open Source Movie for Optical Flow Evaluation, ECCV 2012",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
