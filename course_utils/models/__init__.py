"""Models written out for the lessons; the rest comes from segmentation-models-pytorch.

``classic``: FCN-32s/16s/8s and SegNet, the encoder-decoders of the semantic-segmentation lecture.
``bisenetv2``: BiSeNet V2, the real-time two-branch network of the same lecture.
``hardnet``: HarDNet68, the low-memory-traffic encoder of HarDNet-MSEG (polyp segmentation).
``layers``: ``conv_bn``, the convolution-BatchNorm-activation block they all use.
"""

from course_utils.models.bisenetv2 import BiSeNetV2, booster_loss
from course_utils.models.classic import FCN, SegNet, VGGEncoder
from course_utils.models.hardnet import HarDNet

__all__ = ["FCN", "BiSeNetV2", "HarDNet", "SegNet", "VGGEncoder", "booster_loss"]
