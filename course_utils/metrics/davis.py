"""Video object segmentation scores with the DAVIS 2017 evaluation's definitions (davisvideochallenge/
davis2017-evaluation, ``davis2017/metrics.py`` and ``utils.db_statistics``), one object and one frame at a time.

- **J** (region similarity): the IoU of the predicted and the true mask of an object, void pixels left out;
  1 when both masks are empty (nothing to find, nothing found).
- **F** (contour accuracy): the F-measure of the two masks' boundaries. A boundary is the 1-pixel band where a
  mask changes value towards its right, lower or lower-right neighbour (Martin's ``seg2bmap``, offset half a
  pixel towards the origin); void pixels are removed from both masks first. A boundary pixel counts as matched
  when the other boundary lies within ``ceil(bound_th · image diagonal)`` pixels (a disk; 8 px at 854×480).
  Precision and recall follow; F = 2PR / (P + R). With no boundary on one side only, F = 0; on neither, F = 1.
- Per sequence and object, ``davis_statistics`` gives the **mean**, the **recall** (share of frames scoring
  > 0.5) and the **decay** (mean of the first quarter of the frames minus mean of the last quarter), and
  ``davis_sequence`` computes J and F for all frames but the first (it is given to the method in the
  semi-supervised task) and the last, as the official evaluation does. J&F is the mean of J-mean and F-mean.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def _binary(x) -> np.ndarray:
    return np.asarray(x).astype(bool)


def davis_j(pred, gt, void=None) -> float:
    """Region similarity J of one object in one frame: IoU outside void, 1 if both masks are empty."""
    pred, gt = _binary(pred), _binary(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and truth {gt.shape} differ in shape")
    keep = ~_binary(void) if void is not None else np.ones_like(gt)
    union = ((pred | gt) & keep).sum()
    return 1.0 if union == 0 else float(((pred & gt) & keep).sum() / union)


def boundary_map(mask) -> np.ndarray:
    """The 1-pixel boundary of a binary mask, as DAVIS computes it (see the module docstring)."""
    seg = _binary(mask)
    east, south, south_east = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    east[:, :-1], south[:-1, :], south_east[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def _disk(radius: int) -> np.ndarray:
    """The pixels within ``radius`` of the centre (skimage.morphology.disk), as a uint8 kernel."""
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (x**2 + y**2 <= radius**2).astype(np.uint8)


def davis_f(pred, gt, void=None, bound_th: float = 0.008) -> float:
    """Contour accuracy F of one object in one frame (see the module docstring)."""
    pred, gt = _binary(pred), _binary(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and truth {gt.shape} differ in shape")
    keep = ~_binary(void) if void is not None else np.ones_like(gt)
    radius = int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*gt.shape)))
    pred_b, gt_b = boundary_map(pred & keep), boundary_map(gt & keep)
    n_pred, n_gt = pred_b.sum(), gt_b.sum()
    if n_pred == 0 or n_gt == 0:
        return 1.0 if n_pred == n_gt else 0.0
    kernel = _disk(radius)
    near_gt = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    near_pred = cv2.dilate(pred_b.astype(np.uint8), kernel).astype(bool)
    precision, recall = (pred_b & near_gt).sum() / n_pred, (gt_b & near_pred).sum() / n_gt
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))


def davis_statistics(per_frame) -> dict[str, float]:
    """Mean, recall (share > 0.5) and decay (first quarter minus last quarter, DAVIS's 4 bins) of per-frame
    scores of one object."""
    values = np.asarray(per_frame, dtype=float)
    if values.size == 0:
        raise ValueError("no frames to summarise")
    edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(int)  # DAVIS's bin edges, inclusive
    bins = [values[edges[i]:edges[i + 1] + 1] for i in range(4)]
    return {"mean": float(np.nanmean(values)), "recall": float(np.nanmean(values > 0.5)),
            "decay": float(np.nanmean(bins[0]) - np.nanmean(bins[3]))}


def davis_sequence(preds, gts, voids=None, bound_th: float = 0.008) -> dict[str, float]:
    """J and F statistics of one object over a sequence of (T, H, W) masks, first and last frames left out,
    and their J&F (the mean of J-mean and F-mean)."""
    preds, gts = _binary(preds), _binary(gts)
    if preds.shape != gts.shape or preds.ndim != 3 or len(preds) < 3:
        raise ValueError(f"expected (T, H, W) masks with T >= 3 and equal shapes, got {preds.shape} and {gts.shape}")
    voids = [None] * len(gts) if voids is None else _binary(voids)
    frames = range(1, len(gts) - 1)
    j = davis_statistics([davis_j(preds[t], gts[t], voids[t]) for t in frames])
    f = davis_statistics([davis_f(preds[t], gts[t], voids[t], bound_th) for t in frames])
    return {**{f"J_{k}": v for k, v in j.items()}, **{f"F_{k}": v for k, v in f.items()},
            "J&F": (j["mean"] + f["mean"]) / 2}
