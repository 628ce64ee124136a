"""The two classic encoder-decoders of the semantic-segmentation lecture, written out to be read.

* **FCN** (Long, Shelhamer, Darrell, 2015): a classification network made fully convolutional.
  FCN-32s upsamples its 1/32-resolution class scores straight to the input size; FCN-16s first
  adds scores predicted from pool4 (1/16), FCN-8s also from pool3 (1/8). Each skip brings back
  detail that the deeper layers lost: finer maps, sharper boundaries.
* **SegNet** (Badrinarayanan, Kendall, Cipolla, 2017): the decoder upsamples with the *indices*
  of the encoder's max-pooling (max-unpooling): each value goes back to the position its maximum
  came from, so boundaries are placed without learning an upsampling and without storing the
  encoder's feature maps as U-Net does.

Both use a VGG-style encoder: stages of 3x3 conv + BatchNorm + ReLU, each closed by 2x2 max-pooling.
``widths="vgg16"`` is VGG16's (64, 128, 256, 512, 512) and can start from torchvision's ImageNet
VGG16-BN weights; ``widths="small"`` is a narrow version for CPU runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models.layers import conv_bn

WIDTHS = {"vgg16": ((64, 128, 256, 512, 512), (2, 2, 3, 3, 3)), "small": ((16, 32, 64, 96, 128), (1, 1, 2, 2, 2))}


class VGGEncoder(nn.Module):
    """Five conv stages, each closed by 2x2 max-pooling; ``forward`` returns the five pooled maps
    (pool1 ... pool5, at 1/2 ... 1/32 of the input), and with ``return_indices=True`` also where each
    maximum came from and the size before pooling, which SegNet's decoder needs."""

    def __init__(self, widths: str = "vgg16", pretrained: bool = False, in_channels: int = 3):
        super().__init__()
        if widths not in WIDTHS:
            raise ValueError(f"widths must be one of {sorted(WIDTHS)}, not {widths!r}")
        channels, depths = WIDTHS[widths]
        self.channels = channels
        stages, c_in = [], in_channels
        for c_out, depth in zip(channels, depths):
            stages.append(nn.Sequential(*[conv_bn(c_in if i == 0 else c_out, c_out) for i in range(depth)]))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        if pretrained:
            if widths != "vgg16" or in_channels != 3:
                raise ValueError("ImageNet weights exist only for widths='vgg16' with 3 input channels")
            self.load_vgg16_bn()

    def load_vgg16_bn(self, features: nn.Module | None = None) -> None:
        """Copy the convolutions and batch norms of torchvision's ImageNet VGG16-BN (found offline or
        downloaded by ``course_utils.weights``), or of ``features`` if given. Our convolutions have no
        bias (BatchNorm follows), so each VGG bias is folded into the running mean: BN(conv(x) + b) with
        mean m equals BN(conv(x)) with mean m - b."""
        if features is None:
            from torchvision.models import VGG16_BN_Weights, vgg16_bn

            from course_utils.weights import torchvision_state_dict

            vgg = vgg16_bn(weights=None)
            vgg.load_state_dict(torchvision_state_dict(VGG16_BN_Weights.IMAGENET1K_V1))
            features = vgg.features
        source = [m for m in features if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        target = [m for m in self.stages.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        if len(source) != len(target):
            raise ValueError(f"expected VGG16-BN's {len(target)} conv and norm layers, found {len(source)}")
        for src_conv, src_bn, dst_conv, dst_bn in zip(source[::2], source[1::2], target[::2], target[1::2]):
            dst_conv.weight.data.copy_(src_conv.weight.data)
            dst_bn.load_state_dict(src_bn.state_dict())
            if src_conv.bias is not None:
                dst_bn.running_mean.sub_(src_conv.bias.data)

    def forward(self, x: torch.Tensor, return_indices: bool = False):
        pooled, indices, sizes = [], [], []
        for stage in self.stages:
            x = stage(x)
            sizes.append(x.shape[-2:])
            x, where = F.max_pool2d(x, 2, return_indices=True)  # remember where each maximum was
            pooled.append(x)
            indices.append(where)
        return (pooled, indices, sizes) if return_indices else pooled


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """Weights that make a transposed convolution start as bilinear upsampling, as FCN initialises it."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    grid = torch.arange(size, dtype=torch.float32)
    filt = 1 - (grid - centre).abs() / factor
    kernel = filt[:, None] * filt[None, :]
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = kernel
    return weight


class FCN(nn.Module):
    """FCN-32s, FCN-16s or FCN-8s (``stride`` 32, 16 or 8) over a VGG-style encoder."""

    def __init__(self, num_classes: int, stride: int = 8, widths: str = "vgg16", pretrained: bool = False,
                 head_channels: int | None = None):
        super().__init__()
        if stride not in (32, 16, 8):
            raise ValueError(f"stride must be 32, 16 or 8, not {stride}")
        self.stride = stride
        self.encoder = VGGEncoder(widths, pretrained)
        c3, c4, c5 = self.encoder.channels[2:]
        head = head_channels or 2 * c5
        # "fc6"/"fc7" of the classifier, as convolutions on the 1/32 map (lighter than VGG's 4096-wide 7x7)
        self.head = nn.Sequential(conv_bn(c5, head), nn.Dropout2d(0.1), nn.Conv2d(head, head, 1),
                                  nn.ReLU(inplace=True), nn.Dropout2d(0.1))
        self.score32 = nn.Conv2d(head, num_classes, 1)
        # each skip: a score layer on the shallower map, and a learned 2x upsampling of the deeper scores
        # (a transposed convolution initialised as bilinear interpolation); FCN-32s has neither
        self.score16 = nn.Conv2d(c4, num_classes, 1) if stride <= 16 else None
        self.up_32_to_16 = _bilinear_up(num_classes) if stride <= 16 else None
        self.score8 = nn.Conv2d(c3, num_classes, 1) if stride <= 8 else None
        self.up_16_to_8 = _bilinear_up(num_classes) if stride <= 8 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pool3, pool4, pool5 = self.encoder(x)[2:]  # 1/8, 1/16, 1/32 of the input
        scores = self.score32(self.head(pool5))
        if self.score16 is not None:
            scores = _match(self.up_32_to_16(scores), pool4) + self.score16(pool4)  # fuse at 1/16
        if self.score8 is not None:
            scores = _match(self.up_16_to_8(scores), pool3) + self.score8(pool3)  # fuse at 1/8
        return F.interpolate(scores, size=size, mode="bilinear", align_corners=False)


def _bilinear_up(channels: int) -> nn.ConvTranspose2d:
    up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False)
    up.weight.data.copy_(bilinear_kernel(channels, 4))
    return up


def _match(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Resize ``x`` to ``like``'s height and width (odd input sizes leave them a pixel apart)."""
    return F.interpolate(x, size=like.shape[-2:], mode="nearest") if x.shape[-2:] != like.shape[-2:] else x


class SegNet(nn.Module):
    """SegNet: the VGG encoder, and a mirrored decoder that upsamples by max-unpooling."""

    def __init__(self, num_classes: int, widths: str = "vgg16", pretrained: bool = False):
        super().__init__()
        self.encoder = VGGEncoder(widths, pretrained)
        channels, depths = WIDTHS[widths]
        stages = []
        for level in reversed(range(5)):  # decoder stage k mirrors encoder stage k
            c_in, c_out = channels[level], channels[level - 1] if level > 0 else channels[0]
            layers = [conv_bn(c_in, c_in) for _ in range(depths[level] - 1)] + [conv_bn(c_in, c_out)]
            stages.append(nn.Sequential(*layers))
        self.decoder = nn.ModuleList(stages)
        self.classifier = nn.Conv2d(channels[0], num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled, indices, sizes = self.encoder(x, return_indices=True)
        x = pooled[-1]
        for stage, where, size in zip(self.decoder, reversed(indices), reversed(sizes)):
            x = F.max_unpool2d(x, where, 2, output_size=size)  # put each value back where its maximum was
            x = stage(x)
        return self.classifier(x)
