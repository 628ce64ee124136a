"""Multi-class metrics from one confusion matrix accumulated over the whole dataset.

Convention (as the Cityscapes/CamVid benchmarks and ``torchmetrics`` MulticlassJaccardIndex):
IoU is computed from pixel counts summed over the dataset, not averaged per image. Rows are the
truth, columns the prediction. Pixels whose truth is ``ignore_index`` are left out. A class
absent from both truth and prediction has no IoU (NaN) and is left out of the mean.
"""

from __future__ import annotations

import torch


def confusion_matrix(pred, target, num_classes: int, ignore_index: int | None = None) -> torch.Tensor:
    """(num_classes, num_classes) int64 counts; entry [t, p] = pixels of truth t predicted as p."""
    pred = torch.as_tensor(pred).flatten().long()
    target = torch.as_tensor(target).flatten().long()
    if pred.shape != target.shape:
        raise ValueError(f"prediction has {pred.numel()} pixels but target has {target.numel()}")
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    for name, t in (("prediction", pred), ("target", target)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise ValueError(f"{name} has class ids outside 0..{num_classes - 1} "
                             f"(found {t.min().item()}..{t.max().item()}); pass ignore_index for void pixels")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes).cpu()


def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """IoU of each class: TP / (TP + FP + FN); NaN for a class absent from truth and prediction."""
    cm = torch.as_tensor(cm).double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))


def mean_iou(cm: torch.Tensor) -> float:
    """Mean of the per-class IoU over the classes present in truth or prediction."""
    return float(torch.nanmean(iou_per_class(cm)))


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Fraction of (non-ignored) pixels whose class is right."""
    cm = torch.as_tensor(cm).double()
    return float(cm.diagonal().sum() / cm.sum().clamp(min=1))


class MeanIoU:
    """mIoU accumulated over a whole dataset, for ``train.evaluate``/``fit``: ``update`` adds each
    batch's confusion matrix (class scores are turned into class maps by argmax), ``compute`` gives
    the mean IoU of the total. The matrix stays in ``self.cm`` for per-class numbers."""

    state = ("cm",)  # the totals, added up over processes by distributed.merge_metric

    def __init__(self, num_classes: int, ignore_index: int | None = None):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.reset()

    def reset(self) -> None:
        self.cm = torch.zeros(self.num_classes, self.num_classes, dtype=torch.long)

    def update(self, scores: torch.Tensor, target: torch.Tensor) -> None:
        self.cm += confusion_matrix(scores.argmax(1), target, self.num_classes, self.ignore_index)

    def compute(self) -> float:
        return mean_iou(self.cm)
