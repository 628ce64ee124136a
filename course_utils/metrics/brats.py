"""BraTS: the three nested tumour regions, their Dice, and the 95th-percentile Hausdorff distance.

BraTS 2020 labels: 0 background, 1 necrotic and non-enhancing tumour core (NCR/NET),
2 peritumoral edema (ED), 4 enhancing tumour (ET); there is no 3. The challenge scores regions,
not labels: enhancing tumour ET = {4}, tumour core TC = {1, 4}, whole tumour WT = {1, 2, 4}.

Conventions of the BraTS evaluation: if truth and prediction are both empty, Dice is 1 and HD95 is
0; if only one is empty, Dice is 0 and HD95 is the largest possible distance, the diagonal of the
volume (373.13 mm for 240x240x155 voxels at 1 mm).

HD95 follows MONAI's ``compute_hausdorff_distance(percentile=95)``: surface voxels are a mask
minus its erosion (6-connected); for each surface voxel of one mask, the Euclidean distance in mm
to the nearest surface voxel of the other; the 95th percentile of those distances in each
direction; the larger of the two. (Some tools take the percentile of both directions pooled
together, which gives slightly smaller values.)
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import binary_erosion, distance_transform_edt

from course_utils.metrics.binary import dice_score

REGIONS = ("TC", "WT", "ET")
LABELS = (0, 1, 2, 4)


def brats_regions(label):
    """``(tc, wt, et)`` boolean masks of a BraTS label map (array or tensor, any shape)."""
    et = label == 4
    tc = (label == 1) | et
    wt = tc | (label == 2)
    return tc, wt, et


def label_from_regions(tc, wt, et):
    """The label map {0, 1, 2, 4} of three region masks (a model's thresholded TC, WT, ET outputs).

    The regions nest by definition (ET inside TC inside WT) but a model's outputs need not, so each
    is first kept inside the one that contains it: the whole-tumour output decides where the tumour
    is, the core output where the core is within it. Then WT is edema unless core, TC is necrosis
    unless enhancing."""
    lib = torch if isinstance(wt, torch.Tensor) else np
    tc = tc & wt
    et = et & tc
    label = lib.zeros(wt.shape, dtype=lib.uint8)
    label[wt] = 2
    label[tc] = 1
    label[et] = 4
    return label


def brats_dice(pred_label, gt_label) -> dict[str, float]:
    """Dice of each region of one case: ``{"TC": ..., "WT": ..., "ET": ...}``."""
    pred_label, gt_label = torch.as_tensor(np.asarray(pred_label)), torch.as_tensor(np.asarray(gt_label))
    if pred_label.shape != gt_label.shape:
        raise ValueError(f"prediction shape {tuple(pred_label.shape)} differs from truth {tuple(gt_label.shape)}")
    return {name: float(dice_score(p[None], t[None])[0])
            for name, p, t in zip(REGIONS, brats_regions(pred_label), brats_regions(gt_label))}


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask ^ binary_erosion(mask)


def hd95(pred, target, spacing=(1.0, 1.0, 1.0)) -> float:
    """95th-percentile Hausdorff distance in mm between two binary masks of one case (see above)."""
    pred, target = np.asarray(pred).astype(bool), np.asarray(target).astype(bool)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth {target.shape}")
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (pred.ndim,))
    if not pred.any() and not target.any():
        return 0.0
    if not pred.any() or not target.any():
        return float(np.linalg.norm(np.array(pred.shape) * spacing))
    # every surface voxel lies in the bounding box of both masks: crop to it (1 voxel of margin keeps
    # the erosion the same) so a 240x240x155 volume costs only the tumour's box
    voxels = np.argwhere(pred | target)
    box = tuple(slice(max(lo - 1, 0), hi + 2) for lo, hi in zip(voxels.min(0), voxels.max(0)))
    pred, target = pred[box], target[box]
    surface_pred, surface_target = _surface(pred), _surface(target)
    to_target = distance_transform_edt(~surface_target, sampling=spacing)[surface_pred]
    to_pred = distance_transform_edt(~surface_pred, sampling=spacing)[surface_target]
    return float(max(np.percentile(to_target, 95), np.percentile(to_pred, 95)))
