"""Models written out for the lessons; the rest comes from segmentation-models-pytorch.

``classic``: FCN-32s/16s/8s and SegNet, the encoder-decoders of the semantic-segmentation lecture.
``bisenetv2``: BiSeNet V2, the real-time two-branch network of the same lecture.
``hardnet``: HarDNet68, the low-memory-traffic encoder of HarDNet-MSEG (polyp segmentation).
``panoptic_deeplab``: Panoptic-DeepLab, bottom-up panoptic segmentation: targets, loss and post-processing.
``warp``: backward warping of a frame by a flow field (FlowNet 2.0's stacking, flow propagation of masks).
``flownet``: FlowNetS, optical flow from one encoder-decoder on the stacked frames, and its multi-scale loss.
``pointnet``: PointNet and PointNet++ (SSG) for point-cloud classification and part segmentation, with the
sampling and grouping steps and PointNet's critical points.
``matting``: MODNet (trimap-free) and Deep Image Matting (image + trimap), their losses and MODNet's SOC losses.
``layers``: ``conv_bn``, the convolution-BatchNorm-activation block they all use.
"""

from course_utils.models.bisenetv2 import BiSeNetV2, booster_loss
from course_utils.models.classic import FCN, SegNet, VGGEncoder
from course_utils.models.flownet import FlowNetS, multiscale_loss
from course_utils.models.hardnet import HarDNet
from course_utils.models.matting import DeepImageMatting, MODNet, dim_loss, modnet_loss
from course_utils.models.panoptic_deeplab import (
    PanopticDeepLab,
    panoptic_loss,
    panoptic_losses,
    panoptic_postprocess,
    panoptic_postprocess_batch,
    panoptic_targets,
    semantic_to_panoptic_by_components,
)
from course_utils.models.pointnet import (
    PointNet2Classifier,
    PointNet2PartSeg,
    PointNetClassifier,
    PointNetPartSeg,
    ball_query,
    critical_points,
    farthest_point_sample,
    pointnet_loss,
    with_category,
)

__all__ = ["FCN", "BiSeNetV2", "HarDNet", "PanopticDeepLab", "SegNet", "VGGEncoder", "booster_loss", "panoptic_loss",
           "panoptic_losses", "panoptic_postprocess", "panoptic_postprocess_batch", "panoptic_targets",
           "semantic_to_panoptic_by_components", "FlowNetS", "multiscale_loss", "PointNet2Classifier",
           "PointNet2PartSeg", "PointNetClassifier", "PointNetPartSeg", "ball_query", "critical_points",
           "farthest_point_sample", "pointnet_loss", "with_category", "DeepImageMatting", "MODNet", "dim_loss",
           "modnet_loss"]
