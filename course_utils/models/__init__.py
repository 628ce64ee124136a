"""Models written out for the lessons; the rest comes from segmentation-models-pytorch.

``classic``: FCN-32s/16s/8s and SegNet, the encoder-decoders of the semantic-segmentation lecture.
"""

from course_utils.models.classic import FCN, SegNet, VGGEncoder

__all__ = ["FCN", "SegNet", "VGGEncoder"]
