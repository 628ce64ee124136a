"""HarDNet, the backbone of HarDNet-MSEG, written out to be read.

**HarDNet** (Chao, Kao, Ruan, Huang, Lin, "HarDNet: A Low Memory Traffic Network", ICCV 2019,
arXiv:1909.00948) starts from DenseNet, where every layer of a block reads the concatenation of *all*
earlier outputs. That reuses features well, but the inputs grow with every layer and all of them must be
kept in memory and read again and again: at high resolution the memory traffic, not the arithmetic, sets
the speed. A *harmonic* dense block keeps only some of the links:

* **Links.** Layer k (layer 0 is the block input) reads layer k - 2^n for every n >= 0 such that 2^n
  divides k. An odd layer reads only its predecessor; layer 2 reads 1 and 0; layer 4 reads 3, 2, 0;
  layer 8 reads 7, 6, 4, 0. The links look like the marks of a ruler: a few long jumps, many short ones.
* **Widths.** A layer whose index is divisible by a large 2^n is read by many later layers, so it is made
  wider: its width is g * m^n, with g the growth rate and m a multiplier of about 1.6-1.7 (n is also its
  number of links minus one). Odd layers, read only once, stay g wide. Widths are rounded to even numbers.
* **Output.** The block returns the concatenation of its odd layers and its last layer. An odd layer is
  read by nobody but its successor, so without this its features would be used once; the even layers are
  already reused inside the block. The block input is *not* part of the output (no "global" dense link as
  in DenseNet), and a 1x1 convolution (the transition) after each block mixes and sets the width.

Every layer is Conv3x3 - BatchNorm - ReLU6 (the official code uses ReLU6). **HarDNet68** is a stem (3x3
conv with stride 2 to 32 channels, 3x3 conv to 64, 3x3 max-pooling with stride 2) and five blocks:

=======  ===========  ======  ==========  ================  ======
block    growth rate  layers  transition  then             stride
=======  ===========  ======  ==========  ================  ======
1        14           8       1x1 -> 128  2x2 max-pooling   4
2        16           16      1x1 -> 256                    8
3        20           16      1x1 -> 320  2x2 max-pooling   8
4        40           16      1x1 -> 640  2x2 max-pooling   16
5        160          4       1x1 -> 1024                   32
=======  ===========  ======  ==========  ================  ======

with m = 1.7 (the stride column is that of the block's output). For ImageNet, global average pooling,
dropout 0.1 and a linear layer follow. The configuration, the rounding of the widths and the order of the
concatenations follow the authors' code (github.com/PingoLH/Pytorch-HarDNet, ``hardnet.py``).

**HarDNet-MSEG** (Huang, Wu, Lin, 2021, arXiv:2101.07172; code github.com/james128333/HarDNet-MSEG) segments
polyps with an ImageNet-trained HarDNet68 at 352x352. Its encoder hands over the outputs of the 1x1
transitions of blocks 1, 3, 4 and 5, taken *before* the max-pooling that follows: 128 channels at 1/4 of
the input, 320 at 1/8, 640 at 1/16 and 1024 at 1/32. Its decoder (receptive-field blocks and a partial
decoder, as in PraNet) uses the last three of them; the 1/4 map is returned but left unused.
"""

from __future__ import annotations

import torch
from torch import nn

from course_utils.models.layers import conv_bn

# arch: (stem widths, multiplier m, per block: (growth rate, layers, transition width, max-pool after it?))
ARCHS = {
    68: ((32, 64), 1.7, ((14, 8, 128, True), (16, 16, 256, False), (20, 16, 320, True), (40, 16, 640, True),
                         (160, 4, 1024, False))),
}
FEATURE_BLOCKS = {68: (0, 2, 3, 4)}  # blocks 1, 3, 4, 5 of the table (from 0 here): strides 4, 8, 16, 32


def harmonic_links(k: int) -> list[int]:
    """The layers that layer ``k`` of a harmonic dense block reads (layer 0 is the block input): k - 2^n for
    every n >= 0 with 2^n dividing k, nearest first (the order in which the official code concatenates them).

    >>> harmonic_links(1), harmonic_links(6), harmonic_links(8)
    ([0], [5, 4], [7, 6, 4, 0])
    """
    if k < 1:
        raise ValueError(f"layers of a block are numbered from 1, not {k}")
    links, step = [], 1
    while k % step == 0:  # step = 2^n runs through the powers of two that divide k
        links.append(k - step)
        step *= 2
    return links


def layer_width(k: int, growth_rate: int, multiplier: float) -> int:
    """Output channels of layer ``k``: growth_rate * multiplier^n with n = len(harmonic_links(k)) - 1, rounded
    to the nearest even number (an odd value rounds up: 23.8 -> 24, 40.46 -> 40, 23 -> 24).

    The multiplier is applied once per extra link, as in the official code, so that floating point rounds
    the same way (100 * 1.7 * 1.7 is just above 289, 100 * 1.7**2 just below, and they round apart)."""
    width = float(growth_rate)
    for _ in range(len(harmonic_links(k)) - 1):
        width *= multiplier
    return 2 * int((width + 1) // 2)


class HarDBlock(nn.Module):
    """A harmonic dense block of ``n_layers`` 3x3 conv layers. ``links[k - 1]`` and ``widths[k - 1]`` are layer
    k's inputs and width; the output has ``out_channels`` = the summed widths of the odd layers and the last."""

    def __init__(self, in_channels: int, growth_rate: int, n_layers: int, multiplier: float = 1.7):
        super().__init__()
        self.links = [harmonic_links(k) for k in range(1, n_layers + 1)]
        widths = [in_channels] + [layer_width(k, growth_rate, multiplier) for k in range(1, n_layers + 1)]
        self.widths = widths[1:]
        self.layers = nn.ModuleList(
            conv_bn(sum(widths[j] for j in links), widths[k], act=nn.ReLU6)
            for k, links in enumerate(self.links, start=1))
        self.kept = [k for k in range(1, n_layers + 1) if k % 2 == 1 or k == n_layers]  # concatenated as output
        self.out_channels = sum(widths[k] for k in self.kept)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]  # outputs[k] is layer k's output; layer 0 is the block input
        for layer, links in zip(self.layers, self.links):
            inputs = [outputs[j] for j in links]
            outputs.append(layer(torch.cat(inputs, dim=1) if len(inputs) > 1 else inputs[0]))
        return torch.cat([outputs[k] for k in self.kept], dim=1)


class HarDNet(nn.Module):
    """HarDNet encoder. ``forward`` returns the four maps HarDNet-MSEG takes, at strides ``self.strides`` =
    (4, 8, 16, 32) with ``self.out_channels`` = (128, 320, 640, 1024) for HarDNet68.

    With ``num_classes`` it also gets the ImageNet classifier's head (global average pooling, dropout, linear),
    used by ``classify``; it lets the parameter count be compared with the published one."""

    def __init__(self, arch: int = 68, num_classes: int | None = None, in_channels: int = 3, dropout: float = 0.1):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, not {arch!r}")
        (c1, c2), multiplier, blocks = ARCHS[arch]
        self.stem = nn.Sequential(conv_bn(in_channels, c1, stride=2, act=nn.ReLU6), conv_bn(c1, c2, act=nn.ReLU6),
                                  nn.MaxPool2d(3, stride=2, padding=1))  # 1/4 of the input
        stages, pools, c_in = [], [], c2
        for growth_rate, n_layers, c_out, pool in blocks:
            block = HarDBlock(c_in, growth_rate, n_layers, multiplier)
            transition = conv_bn(block.out_channels, c_out, kernel_size=1, act=nn.ReLU6)  # 1x1
            stages.append(nn.Sequential(block, transition))
            pools.append(nn.MaxPool2d(2) if pool else nn.Identity())
            c_in = c_out
        self.stages, self.pools = nn.ModuleList(stages), nn.ModuleList(pools)
        self.feature_stages = FEATURE_BLOCKS[arch]
        self.out_channels = tuple(blocks[i][2] for i in self.feature_stages)
        self.strides = (4, 8, 16, 32)
        self.head = None
        if num_classes is not None:
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                      nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for i, (stage, pool) in enumerate(zip(self.stages, self.pools)):
            x = stage(x)
            if i in self.feature_stages:
                features.append(x)  # taken before the pooling, as HarDNet-MSEG does
            x = pool(x)
        return features

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of the ImageNet-style network (needs ``num_classes``)."""
        if self.head is None:
            raise RuntimeError("this HarDNet was built without a classifier head (num_classes=None)")
        return self.head(self.forward(x)[-1])
