"""The field's metrics, each with its convention stated and tested against a reference library.

``binary``: per-image Dice and IoU for binary masks. ``confusion``: the dataset-level confusion
matrix and the per-class IoU / mIoU built from it. ``boundary``: the band of pixels near class
boundaries, for boundary-quality (trimap) scores. ``brats``: the BraTS tumour regions, their Dice and
HD95. ``instance``: COCO mask (and box) AP through pycocotools, for instance segmentation. ``panoptic``:
panoptic quality with panopticapi's rules. ``flow``: optical-flow end-point error and KITTI's Fl-all.
``davis``: the DAVIS 2017 region (J) and contour (F) scores of video object segmentation. ``part``: ShapeNet-part
mIoU of point-cloud part segmentation (per shape over its category's parts; instance and class means).
``matting``: SAD, MSE, Grad and Conn of alpha mattes with the Deep Image Matting (Composition-1k) conventions.
"""

from course_utils.metrics.binary import dice_score, iou_score
from course_utils.metrics.boundary import boundary_band
from course_utils.metrics.brats import brats_dice, brats_regions, hd95, label_from_regions
from course_utils.metrics.confusion import MeanIoU, confusion_matrix, iou_per_class, mean_iou, pixel_accuracy
from course_utils.metrics.davis import davis_f, davis_j, davis_sequence, davis_statistics
from course_utils.metrics.flow import EPEMetric, epe
from course_utils.metrics.instance import MaskAP, mask_ap
from course_utils.metrics.matting import MattingErrors, matting_errors
from course_utils.metrics.panoptic import PanopticQuality, panoptic_quality
from course_utils.metrics.part import (
    NUM_PARTS,
    SHAPENET_PARTS,
    PartMIoU,
    most_frequent_part_baseline,
    part_miou,
    restrict_to_category,
    shape_iou,
)

__all__ = [
    "EPEMetric", "MaskAP", "MeanIoU", "boundary_band", "brats_dice", "brats_regions", "confusion_matrix", "davis_f",
    "davis_j", "davis_sequence", "davis_statistics", "dice_score", "epe",
    "hd95", "iou_per_class", "iou_score", "label_from_regions", "mask_ap", "mean_iou",
    "panoptic_quality", "PanopticQuality", "pixel_accuracy", "NUM_PARTS", "SHAPENET_PARTS", "PartMIoU",
    "most_frequent_part_baseline", "part_miou", "restrict_to_category", "shape_iou", "MattingErrors", "matting_errors",
]
