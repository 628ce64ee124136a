"""Optical-flow files as the benchmarks store them: Middlebury/Sintel ``.flo`` and KITTI's 16-bit PNGs.

A flow is an (H, W, 2) float32 array of (u, v): the horizontal and vertical displacement, in pixels, of
each pixel of the first frame (as the files store it; RAFT and the metrics take (2, H, W) tensors).

``.flo`` (Middlebury, MPI-Sintel): little-endian, the float32 magic number 202021.25 (the bytes "PIEH"),
int32 **width then height**, then H·W·2 float32 values, u and v interleaved row by row. Pixels whose flow
is unknown hold values above 1e9 (``UNKNOWN_FLOW``); ``flo_valid`` finds the others.

KITTI 2012/2015 (``flow_occ/*_10.png``, ``flow_noc/*_10.png``): a 16-bit RGB PNG, R = u·64 + 2¹⁵,
G = v·64 + 2¹⁵, B = 1 where the flow is known (0 elsewhere, about 80 % of a frame has no lidar truth).
OpenCV reads it with ``IMREAD_UNCHANGED`` as uint16 channels in **BGR** order; PIL's ``convert``
and many image readers silently reduce it to 8 bits, which destroys the values.

Augmenting a frame pair must change its flow too: ``flip_flow`` (a mirror negates one component) and
``resize_flow`` (resizing scales the vectors), ``resize_sparse_flow`` for sparse truth, and ``FlowAugment`` which
combines them with random crops and photometric jitter.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from course_utils.datasets import DamagedFileError, write_atomic

FLO_MAGIC = 202021.25  # the float32 whose little-endian bytes spell "PIEH"
UNKNOWN_FLOW = 1e9  # .flo values above this mean "no flow known here"
KITTI_OFFSET, KITTI_SCALE = 2**15, 64.0


def read_flo(path: str | Path) -> np.ndarray:
    """The (H, W, 2) float32 flow of a ``.flo`` file, unknown pixels included as stored (> 1e9)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 12:
        raise DamagedFileError(f"{path}: {len(data)} bytes, too short for a .flo header (12 bytes)")
    magic = float(np.frombuffer(data, "<f4", 1, 0)[0])
    if magic != FLO_MAGIC:
        raise ValueError(f"{path}: not a .flo file: its first 4 bytes are {data[:4]!r} (magic {magic}), not b'PIEH' "
                         f"(202021.25). Is it a KITTI PNG (read_kitti_flow) or another format?")
    width, height = (int(x) for x in np.frombuffer(data, "<i4", 2, 4))
    expected = 12 + width * height * 2 * 4
    if width <= 0 or height <= 0 or len(data) != expected:
        raise DamagedFileError(f"{path}: the header says {width}x{height} (width x height), which needs {expected} "
                               f"bytes, but the file has {len(data)}: it is truncated or damaged; copy it again")
    return np.frombuffer(data, "<f4", width * height * 2, 12).reshape(height, width, 2).copy()


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write an (H, W, 2) flow as a ``.flo`` file (atomically: a killed run leaves no half file)."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got shape {flow.shape}")
    height, width = flow.shape[:2]
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    write_atomic(Path(path), lambda f: f.write(header + flow.astype("<f4").tobytes()))


def flo_valid(flow: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels of a ``.flo`` flow whose value is known (both components finite, |.| < 1e9)."""
    return (np.isfinite(flow) & (np.abs(flow) < UNKNOWN_FLOW)).all(axis=-1)


def read_kitti_flow(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(flow (H, W, 2) float32, valid (H, W) bool)`` of a KITTI flow PNG; flow is 0 where not valid."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DamagedFileError(f"{path}: OpenCV cannot decode it; a KITTI flow file is a 16-bit RGB PNG")
    if raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] != 3:
        raise ValueError(f"{path}: a KITTI flow file is a 16-bit RGB PNG, this one is {raw.dtype} with shape "
                         f"{raw.shape}. Was it converted or saved by a tool that keeps 8 bits per channel? Use the "
                         f"original file from the KITTI archive.")
    rgb = raw[..., ::-1].astype(np.float32)  # OpenCV's BGR to R, G, B
    valid = rgb[..., 2] > 0
    flow = (rgb[..., :2] - KITTI_OFFSET) / KITTI_SCALE
    flow[~valid] = 0
    return flow, valid


def write_kitti_flow(path: str | Path, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """Write a flow (and its valid mask; default: all valid) as a KITTI 16-bit PNG. Values are rounded to
    1/64 pixel and must lie within ±512 pixels, the range of the format."""
    flow = np.asarray(flow, np.float64)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got shape {flow.shape}")
    valid = np.ones(flow.shape[:2], bool) if valid is None else np.asarray(valid, bool)
    encoded = np.round(flow * KITTI_SCALE + KITTI_OFFSET)
    if encoded[valid].size and (encoded[valid].min() < 0 or encoded[valid].max() > 65535):
        raise ValueError(f"flow values must lie within ±{KITTI_OFFSET / KITTI_SCALE:.0f} pixels to fit a KITTI PNG")
    encoded = np.where(valid[..., None], encoded, KITTI_OFFSET).clip(0, 65535).astype(np.uint16)
    bgr = np.dstack([valid.astype(np.uint16), encoded[..., 1], encoded[..., 0]])
    ok, png = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError(f"OpenCV could not encode the flow for {path}")
    write_atomic(Path(path), lambda f: f.write(png.tobytes()))


def flip_flow(flow: np.ndarray, horizontal: bool = True) -> np.ndarray:
    """The flow of the mirrored frame pair: the field is mirrored *and* the mirrored component changes sign
    (a pixel moving right moves left in the mirror image). Flipping the images without this breaks the truth."""
    flow = np.asarray(flow)
    if horizontal:
        out = flow[:, ::-1].copy()
        out[..., 0] *= -1
    else:
        out = flow[::-1].copy()
        out[..., 1] *= -1
    return out


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A dense (H, W, 2) flow resampled to ``size`` = (height, width) for frames resized to that size: the field
    is interpolated bilinearly *and* each vector is scaled, u by the width ratio and v by the height ratio
    (a 10-pixel motion is 5 pixels in a half-size image). Sparse KITTI truth needs nearest-neighbour
    resampling of the valid pixels instead, as RAFT's ``resize_sparse_flow_map`` does."""
    flow = np.asarray(flow, np.float32)
    height, width = size
    out = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= width / flow.shape[1]
    out[..., 1] *= height / flow.shape[0]
    return out


def resize_sparse_flow(flow: np.ndarray, valid: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(flow, valid)`` of a *sparse* truth (KITTI's lidar points) for frames resized to ``size`` = (height,
    width). Interpolating a sparse field would blend known vectors with the zeros of unknown pixels, so each
    valid pixel is moved instead: to the nearest pixel of the new grid (cv2.resize's convention: pixel centres
    at (x + 0.5) · ratio − 0.5), with its vector scaled by the width and height ratios. New pixels that no
    point lands on are not valid; when several land on one pixel, one of them is kept."""
    flow, valid = np.asarray(flow, np.float32), np.asarray(valid, bool)
    height, width = size
    sx, sy = width / flow.shape[1], height / flow.shape[0]
    ys, xs = np.nonzero(valid)
    new_x = np.round((xs + 0.5) * sx - 0.5).astype(int)
    new_y = np.round((ys + 0.5) * sy - 0.5).astype(int)
    keep = (new_x >= 0) & (new_x < width) & (new_y >= 0) & (new_y < height)
    out = np.zeros((height, width, 2), np.float32)
    out_valid = np.zeros((height, width), bool)
    out[new_y[keep], new_x[keep]] = flow[ys[keep], xs[keep]] * np.array([sx, sy], np.float32)
    out_valid[new_y[keep], new_x[keep]] = True
    return out, out_valid


class FlowAugment:
    """Augmentation of a frame pair that keeps its flow truth right; used by ``Sintel`` and ``KittiFlow``.

    Called as ``augment(frame1, frame2, flow, valid)`` on numpy arrays (frames (H, W, 3) uint8, flow (H, W, 2)
    float32, valid (H, W) bool), it returns the four, changed in this order:

    1. ``scale=(low, high)``: resize both frames by one factor drawn log-uniformly from the range (at least
       large enough for the crop); a dense flow is resized with :func:`resize_flow` (vectors scaled too), a
       sparse one (``sparse=True``, for KITTI) with :func:`resize_sparse_flow`;
    2. ``crop_size=(height, width)``: one random window, the same for both frames, the flow and the mask
       (a crop does not change the vectors: both frames move together);
    3. ``hflip`` / ``vflip``: the probability of a mirror image; :func:`flip_flow` mirrors the field and
       negates u (or v);
    4. ``jitter``: brightness, contrast and saturation factors drawn from [1 - jitter, 1 + jitter], the *same*
       for both frames, so that brightness constancy, which the flow relies on, still holds.

    Every random number comes from torch's global generator, like the other datasets' augmentations (see
    ``reseed`` in ``course_utils.datasets``): ``seed_everything`` fixes them, DataLoader workers get their
    own streams, and a resumed run draws what an uninterrupted one would.
    """

    def __init__(self, crop_size: tuple[int, int] | None = None, scale: tuple[float, float] | None = None,
                 hflip: float = 0.5, vflip: float = 0.0, jitter: float = 0.0, sparse: bool = False):
        if scale is not None and not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high, not {scale}")
        self.crop_size, self.scale, self.sparse = crop_size, scale, sparse
        self.hflip, self.vflip, self.jitter = hflip, vflip, jitter

    @staticmethod
    def _uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand(()))

    def __call__(self, frame1: np.ndarray, frame2: np.ndarray, flow: np.ndarray, valid: np.ndarray):
        height, width = flow.shape[:2]
        if self.scale is not None:
            low = np.log(self.scale[0])
            if self.crop_size is not None:  # never smaller than the crop
                low = max(low, np.log(max(self.crop_size[0] / height, self.crop_size[1] / width)))
            factor = float(np.exp(self._uniform(low, max(low, np.log(self.scale[1])))))
            size = (max(1, round(height * factor)), max(1, round(width * factor)))
            frame1, frame2 = (cv2.resize(f, size[::-1], interpolation=cv2.INTER_LINEAR) for f in (frame1, frame2))
            if self.sparse:
                flow, valid = resize_sparse_flow(flow, valid, size)
            else:
                flow = resize_flow(flow, size)
                valid = cv2.resize(valid.astype(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST) > 0
            height, width = size
        if self.crop_size is not None:
            crop_h, crop_w = self.crop_size
            if crop_h > height or crop_w > width:
                raise ValueError(f"crop_size {self.crop_size} (height, width) is larger than the frames, {height}x"
                                 f"{width}: choose a smaller crop, or a scale range that enlarges the frames")
            top = int(torch.randint(0, height - crop_h + 1, ()))
            left = int(torch.randint(0, width - crop_w + 1, ()))
            window = (slice(top, top + crop_h), slice(left, left + crop_w))
            frame1, frame2, flow, valid = frame1[window], frame2[window], flow[window], valid[window]
        if self._uniform(0, 1) < self.hflip:
            frame1, frame2, valid = frame1[:, ::-1], frame2[:, ::-1], valid[:, ::-1]
            flow = flip_flow(flow, horizontal=True)
        if self._uniform(0, 1) < self.vflip:
            frame1, frame2, valid = frame1[::-1], frame2[::-1], valid[::-1]
            flow = flip_flow(flow, horizontal=False)
        if self.jitter > 0:
            brightness, contrast, saturation = (self._uniform(1 - self.jitter, 1 + self.jitter) for _ in range(3))
            frame1, frame2 = (_jitter(f, brightness, contrast, saturation) for f in (frame1, frame2))
        return (np.ascontiguousarray(frame1), np.ascontiguousarray(frame2), np.ascontiguousarray(flow, np.float32),
                np.ascontiguousarray(valid))


def _jitter(frame: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Photometric change of one uint8 RGB frame: saturation about its grey, brightness, then contrast about
    mid-grey (a fixed centre, so two frames get exactly the same mapping)."""
    image = frame.astype(np.float32)
    grey = image.mean(axis=2, keepdims=True)
    image = grey + saturation * (image - grey)
    image = 127.5 + contrast * (brightness * image - 127.5)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


# --- what the flow datasets share -------------------------------------------------------------------

def check_same_size(paths: dict[str, Path], sizes: dict[str, tuple[int, int]], advice: str) -> None:
    """Refuse a frame pair whose files (``sizes``: name -> (height, width), ``paths``: name -> file) disagree in
    size, naming every file and its size; ``advice`` says what to do."""
    if len(set(sizes.values())) > 1:
        found = ", ".join(f"{paths[n]} is {h}x{w}" for n, (h, w) in sizes.items())
        raise ValueError(f"the files of one pair disagree in size (height x width): {found}. {advice}")


def flow_item(frame1: np.ndarray, frame2: np.ndarray, flow: np.ndarray, valid: np.ndarray, index: int,
              transform=None) -> tuple[torch.Tensor, dict]:
    """The item of ``Sintel`` and ``KittiFlow`` from numpy arrays, after ``transform(frame1, frame2, flow, valid)``
    if one is given: ``frames`` (2, 3, H, W) float32 in [0, 1] and ``{"flow": (2, H, W), "valid": (H, W) bool,
    "index": index}``."""
    if transform is not None:
        frame1, frame2, flow, valid = transform(frame1, frame2, flow, valid)
    frames = torch.from_numpy(np.stack([frame1, frame2])).permute(0, 3, 1, 2).float() / 255
    target = {"flow": torch.from_numpy(np.ascontiguousarray(flow, np.float32)).permute(2, 0, 1).contiguous(),
              "valid": torch.from_numpy(np.ascontiguousarray(valid, bool)),
              "index": index}
    return frames, target
