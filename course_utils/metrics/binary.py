"""Dice and IoU of binary masks, one value per image.

Convention (as ``smp.metrics`` with ``zero_division=1`` and as the polyp papers): the score is
computed per image and then averaged by the caller, and an image whose truth and prediction are
both empty scores 1.0 (nothing to find, nothing found). Inputs are boolean or {0, 1} tensors or
arrays shaped ``(N, ...)`` for a batch or ``(H, W)`` for one image; threshold logits first.
"""

from __future__ import annotations

import torch


def _binary_stats(pred, target) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from target shape {tuple(target.shape)}")
    for name, t in (("prediction", pred), ("target", target)):
        if t.dtype != torch.bool and not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"{name} must be a binary mask (bool or 0/1); threshold probabilities first, "
                             f"e.g. logits.sigmoid() > 0.5")
    single = pred.ndim == 2
    pred, target = pred.bool(), target.bool()
    if single:
        pred, target = pred[None], target[None]
    pred, target = pred.flatten(1), target.flatten(1)
    tp = (pred & target).sum(1).double()
    fp = (pred & ~target).sum(1).double()
    fn = (~pred & target).sum(1).double()
    if single:
        tp, fp, fn = tp[0], fp[0], fn[0]
    return tp, fp, fn


def dice_score(pred, target) -> torch.Tensor:
    """Dice = 2|P∩T| / (|P| + |T|) per image; 1.0 where both masks are empty."""
    tp, fp, fn = _binary_stats(pred, target)
    denom = 2 * tp + fp + fn
    return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.ones_like(denom)).float()


def iou_score(pred, target) -> torch.Tensor:
    """IoU (Jaccard) = |P∩T| / |P∪T| per image; 1.0 where both masks are empty."""
    tp, fp, fn = _binary_stats(pred, target)
    denom = tp + fp + fn
    return torch.where(denom > 0, tp / denom.clamp(min=1), torch.ones_like(denom)).float()
