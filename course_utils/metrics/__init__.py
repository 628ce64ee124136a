"""The field's metrics, each with its convention stated and tested against a reference library.

``binary``: per-image Dice and IoU for binary masks. ``confusion``: the dataset-level confusion
matrix and the per-class IoU / mIoU built from it.
"""

from course_utils.metrics.binary import dice_score, iou_score
from course_utils.metrics.confusion import confusion_matrix, iou_per_class, mean_iou, pixel_accuracy

__all__ = ["dice_score", "iou_score", "confusion_matrix", "iou_per_class", "mean_iou", "pixel_accuracy"]
