"""The one building block the hand-written models share."""

from __future__ import annotations

from torch import nn


def conv_bn(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
            act: type[nn.Module] | None = nn.ReLU) -> nn.Sequential:
    """Convolution (no bias, since BatchNorm follows; padding keeps the size at stride 1), BatchNorm, then the
    activation ``act`` (``nn.ReLU``, ``nn.ReLU6``, or ``None`` for none). ``groups=c_in`` makes the convolution
    depth-wise: each channel gets its own filters."""
    layers = [nn.Conv2d(c_in, c_out, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out)]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)
