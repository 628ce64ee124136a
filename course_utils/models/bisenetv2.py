"""BiSeNet V2, a real-time segmentation network with two branches, written out to be read.

Yu, Gao, Wang, Yu, Shen, Sang: "BiSeNet V2: Bilateral Network with Guided Aggregation for Real-time Semantic
Segmentation", IJCV 2021 (arXiv:2004.02147).

Segmentation needs two things that pull against each other. Spatial detail (boundaries, thin objects) needs high
resolution and many channels. Semantic context (what the object is) needs a large receptive field, so deep layers
and fast downsampling. One backbone that does both at high resolution is slow. BiSeNet V2 gives each need its own
branch, and the two run side by side on the same image:

* the **Detail Branch** is wide and shallow: eight 3x3 conv-BN-ReLU layers with 64/64/128 channels, no residual
  connections (they would cost memory traffic on these large maps), stopping at 1/8 of the input;
* the **Semantic Branch** is narrow and deep: lambda = 1/4 of the Detail Branch's channels (16/32/64/128), a Stem
  Block that reaches 1/4 at once, Gather-and-Expansion layers down to 1/32, and a Context Embedding block whose
  global average pooling lets every position see the whole image;
* the **Bilateral Guided Aggregation** layer merges them: the semantic features, through a sigmoid, gate the
  detail features twice, at 1/8 and at 1/32, and the two results are summed;
* a **segmentation head** (3x3 conv-BN-ReLU, then 1x1 conv) predicts class scores at 1/8, and bilinear
  upsampling takes them to the input size.

**Booster training.** In training, four extra heads on the Semantic Branch's stages (at 1/4, 1/8, 1/16 and 1/32)
are trained on the same labels, and their losses are added to the main loss. They give the deep, narrow branch a
direct training signal. At inference they are not run, so they cost nothing. In training mode ``BiSeNetV2``
returns ``(logits, [aux_logits, ...])``, all at the input size, and ``booster_loss`` adds up the losses.

Widths and depths follow Table 1 of the paper. Three places where we had to choose:

* Gather-and-Expansion layer: the paper's text has the 3x3 convolution expand the channels (x6) and the depth-wise
  convolution work on the expanded channels; we follow it. CoinCheung/BiSeNet, mmsegmentation and PaddleSeg keep
  that 3x3 convolution at the input width and expand in the depth-wise convolution (6 filters per channel), which
  is lighter: about 3.4M instead of 6.0M parameters for 19 classes (heads below, booster heads not counted).
* The paper does not give the width of the heads. We use 1024 channels for the main head and 128 for the booster
  heads, as CoinCheung/BiSeNet does.
* The paper upsamples by x4; we resize to the partner's exact size instead, so any input size works. Every
  stride-2 step rounds up, so the Detail Branch gives ceil(H/8) x ceil(W/8) and the Semantic Branch
  ceil(H/32) x ceil(W/32).

Training needs batches of 2 or more images. The Context Embedding block applies BatchNorm to a 1x1 pooled map, and
in training BatchNorm cannot normalise a single value per channel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models.layers import conv_bn

DETAIL_WIDTHS = (64, 64, 128)  # Table 1, Detail Branch stages S1-S3
SEMANTIC_WIDTHS = (16, 32, 64, 128)  # Table 1, Semantic Branch: stem (S1-S2), S3, S4, S5 (lambda = 1/4)
EXPANSION = 6  # e of the Gather-and-Expansion layers
HEAD_CHANNELS = 1024  # main head width (the paper leaves it open)
AUX_HEAD_CHANNELS = 128  # booster head width (likewise)


class DetailBranch(nn.Module):
    """Wide and shallow, for spatial detail: three VGG-style stages of 3x3 conv-BN-ReLU (64, 64, 128 channels), each
    starting with a stride-2 convolution. The output is at 1/8 of the input. There are few layers, so the receptive
    field stays small, but the maps are large and wide enough to keep fine structure."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, int, int] = DETAIL_WIDTHS):
        super().__init__()
        depths = (2, 3, 3)  # Table 1: one stride-2 conv, then r = 1, 2, 2 stride-1 convs
        stages, c_in = [], in_channels
        for c_out, depth in zip(widths, depths):
            layers = [conv_bn(c_in, c_out, stride=2)] + [conv_bn(c_out, c_out) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*layers))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)


class StemBlock(nn.Module):
    """The Semantic Branch's first step, down to 1/4 at once. After a stride-2 conv it halves the size again in two
    ways: a 1x1 conv then a stride-2 3x3 conv (learned), and a 3x3 max-pooling (free). It concatenates the two and
    fuses them with a 3x3 conv. This reaches a coarse map cheaply, where the deep layers can afford to work."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = conv_bn(in_channels, out_channels, stride=2)
        self.learned = nn.Sequential(conv_bn(out_channels, out_channels // 2, kernel_size=1),
                                     conv_bn(out_channels // 2, out_channels, stride=2))
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.fuse = conv_bn(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fuse(torch.cat([self.learned(x), self.pool(x)], dim=1))


class GatherExpansion(nn.Module):
    """Gather-and-Expansion layer: MobileNetV2's inverted bottleneck with a 3x3 convolution in place of the first
    1x1. The 3x3 conv gathers neighbouring responses and expands the channels ``expansion`` times. A depth-wise 3x3
    conv then filters each expanded channel on its own, which is cheap. A 1x1 conv (no ReLU) projects back to
    ``c_out`` channels, and a residual connection adds the input. With ``stride=2`` the main path has two depth-wise
    convs (the first with stride 2), which enlarges the receptive field, and the shortcut becomes a depth-wise
    stride-2 conv plus a 1x1 conv (a separable convolution) so that it matches the new size and width."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, expansion: int = EXPANSION):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, not {stride}")
        if stride == 1 and c_in != c_out:
            raise ValueError("a stride-1 layer adds its input back, so c_in must equal c_out")
        wide = c_in * expansion
        layers = [conv_bn(c_in, wide), conv_bn(wide, wide, stride=stride, groups=wide, act=None)]
        if stride == 2:
            layers.append(conv_bn(wide, wide, groups=wide, act=None))
        layers.append(conv_bn(wide, c_out, kernel_size=1, act=None))
        self.main = nn.Sequential(*layers)
        self.shortcut = nn.Identity() if stride == 1 else nn.Sequential(
            conv_bn(c_in, c_in, stride=2, groups=c_in, act=None),
            conv_bn(c_in, c_out, kernel_size=1, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.main(x) + self.shortcut(x))


class ContextEmbedding(nn.Module):
    """Context Embedding block: global average pooling summarises the whole image in one vector per channel. The
    vector goes through BatchNorm and a 1x1 conv-BN-ReLU, is added back to every position, and a 3x3 conv follows.
    This gives each position a receptive field as large as the image, at almost no cost."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.squeeze = conv_bn(channels, channels, kernel_size=1)
        self.conv = conv_bn(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = self.squeeze(self.norm(x.mean(dim=(2, 3), keepdim=True)))  # N x C x 1 x 1
        return self.conv(x + context)  # the addition broadcasts the context to every position


class SemanticBranch(nn.Module):
    """Narrow and deep, for context: a Stem Block to 1/4 (16 channels), Gather-and-Expansion stages to 1/8 (32),
    1/16 (64) and 1/32 (128), then Context Embedding. It has a quarter of the Detail Branch's channels, which keeps
    the many layers cheap. ``forward`` returns the final 1/32 map and the four stage outputs that the booster heads
    read (stem, S3, S4, and S5 before the Context Embedding)."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, int, int, int] = SEMANTIC_WIDTHS,
                 expansion: int = EXPANSION):
        super().__init__()
        c1, c3, c4, c5 = widths
        self.stem = StemBlock(in_channels, c1)  # S1-S2, 1/4
        self.s3 = nn.Sequential(GatherExpansion(c1, c3, 2, expansion), GatherExpansion(c3, c3, 1, expansion))
        self.s4 = nn.Sequential(GatherExpansion(c3, c4, 2, expansion), GatherExpansion(c4, c4, 1, expansion))
        self.s5 = nn.Sequential(GatherExpansion(c4, c5, 2, expansion),
                                *[GatherExpansion(c5, c5, 1, expansion) for _ in range(3)])
        self.context = ContextEmbedding(c5)
        self.stage_channels = widths
        self.out_channels = c5

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        stages = []
        for stage in (self.stem, self.s3, self.s4, self.s5):
            x = stage(x)
            stages.append(x)
        return self.context(x), stages


class BilateralGuidedAggregation(nn.Module):
    """Merges the two branches. Adding or concatenating them would ignore that they hold different kinds of
    information; here context decides which details count. Both gates are sigmoids of semantic features, and both
    multiply detail features. At 1/8: the detail features (depth-wise 3x3 + 1x1 conv) times the gate from a 3x3
    conv-BN of the semantic features, upsampled. At 1/32: the detail features brought down by a stride-2 conv and a
    stride-2 average pooling, times the gate from a depth-wise 3x3 + 1x1 conv of the semantic features. Guidance at
    two scales mixes in multi-scale information. The 1/32 product is upsampled, the two are summed, and a 3x3 conv-BN
    fuses them. The products carry gradients to both branches."""

    def __init__(self, channels: int = 128):
        super().__init__()
        self.detail_keep = nn.Sequential(conv_bn(channels, channels, groups=channels, act=None),
                                         nn.Conv2d(channels, channels, 1, bias=False))
        self.detail_down = nn.Sequential(conv_bn(channels, channels, stride=2, act=None),
                                         nn.AvgPool2d(3, stride=2, padding=1))
        self.semantic_keep = nn.Sequential(conv_bn(channels, channels, groups=channels, act=None),
                                           nn.Conv2d(channels, channels, 1, bias=False))
        self.semantic_up = conv_bn(channels, channels, act=None)
        self.fuse = conv_bn(channels, channels, act=None)

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        size = detail.shape[-2:]
        semantic_gate = torch.sigmoid(_resize(self.semantic_up(semantic), size))  # 1/32 -> 1/8
        at_eighth = self.detail_keep(detail) * semantic_gate
        at_thirty_second = self.detail_down(detail) * torch.sigmoid(self.semantic_keep(semantic))
        return self.fuse(at_eighth + _resize(at_thirty_second, size))


class SegmentationHead(nn.Module):
    """3x3 conv-BN-ReLU to ``mid_channels``, then a 1x1 conv to one score per class. The main head and the booster
    heads are the same module; only their width differs."""

    def __init__(self, c_in: int, mid_channels: int, num_classes: int):
        super().__init__()
        self.conv = conv_bn(c_in, mid_channels)
        self.classifier = nn.Conv2d(mid_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.conv(x))


class BiSeNetV2(nn.Module):
    """BiSeNet V2: Detail Branch and Semantic Branch side by side, merged by Bilateral Guided Aggregation, then a
    segmentation head. Output:

    * eval mode, or ``aux=False``: logits ``(N, num_classes, H, W)`` at the input size;
    * training mode with ``aux=True``: ``(logits, [aux1, aux2, aux3, aux4])``. The four booster heads read the
      Semantic Branch at 1/4, 1/8, 1/16 and 1/32, and each map is upsampled to the input size too, so each can go
      into the same loss as the main logits: ``booster_loss(model(x), target, criterion)``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, aux: bool = True, head_channels: int = HEAD_CHANNELS):
        super().__init__()
        self.detail = DetailBranch(in_channels)
        self.semantic = SemanticBranch(in_channels)
        self.aggregation = BilateralGuidedAggregation(self.detail.out_channels)
        self.head = SegmentationHead(self.detail.out_channels, head_channels, num_classes)
        self.aux = aux
        self.aux_heads = nn.ModuleList(
            [SegmentationHead(c, AUX_HEAD_CHANNELS, num_classes) for c in self.semantic.stage_channels] if aux else [])
        self._init_weights()

    def _init_weights(self) -> None:
        """He (Kaiming) normal initialisation of the convolutions: the paper trains from scratch."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        size = x.shape[-2:]
        detail = self.detail(x)  # 1/8, 128 channels
        semantic, stages = self.semantic(x)  # 1/32, 128 channels; stages at 1/4 ... 1/32
        logits = _resize(self.head(self.aggregation(detail, semantic)), size)
        if not (self.training and self.aux):
            return logits
        return logits, [_resize(head(stage), size) for head, stage in zip(self.aux_heads, stages)]


def booster_loss(output: torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]], target: torch.Tensor,
                 criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 aux_weight: float = 1.0) -> torch.Tensor:
    """The loss of the booster training strategy: ``criterion`` on the main logits plus ``aux_weight`` times the sum
    of ``criterion`` on each booster head's logits. ``output`` is what ``BiSeNetV2`` returned. When it is a plain
    tensor (eval mode, ``aux=False``, or any other model), this is just ``criterion(output, target)``."""
    if isinstance(output, torch.Tensor):
        return criterion(output, target)
    logits, aux_logits = output
    loss = criterion(logits, target)
    for aux in aux_logits:
        loss = loss + aux_weight * criterion(aux, target)
    return loss


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to ``size`` (height, width), skipped when ``x`` already has it."""
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
