"""FlowNetS: optical flow from one convolutional network that sees both frames at once.

Dosovitskiy, Fischer, Ilg, Häusser, Hazırbaş, Golkov, van der Smagt, Cremers, Brox: "FlowNet: Learning Optical Flow
with Convolutional Networks", ICCV 2015 (arXiv:1504.06852). Official code: Caffe (lmb-freiburg; its FlowNet 2.0
release lmb-freiburg/flownet2 trains the same network as "FlowNet2-S"). Widely used PyTorch ports:
ClementPinard/FlowNetPytorch (``models/FlowNetS.py``, ``multiscaleloss.py``) and NVIDIA/flownet2-pytorch
(``networks/FlowNetS.py``, ``losses.py``, ``models.py``).

FlowNet was the first network trained end to end to output dense optical flow. "FlowNetSimple" (S) stacks the two RGB
frames into one 6-channel image and lets ordinary convolutions find out how to compare them (FlowNetC instead
correlates the features of the two frames explicitly). It is an encoder-decoder, like U-Net:

* **Contracting part** (encoder): ten 3x3 to 7x7 convolutions, six of them with stride 2, each followed by a leaky
  ReLU (slope 0.1): conv1 (7x7, 64 channels, 1/2 of the input size), conv2 (5x5, 128, 1/4), conv3 (5x5, 256, 1/8),
  conv3_1, conv4 (512, 1/16), conv4_1, conv5 (512, 1/32), conv5_1, conv6 (1024, 1/64), conv6_1. Large strides give
  the deep layers a receptive field wide enough for large motions.
* **Expanding part** (the paper's "refinement"): a first flow ``flow6`` is predicted at 1/64 by a 3x3 convolution.
  Then, at 1/32, 1/16, 1/8 and 1/4, an "up-convolution" (a 4x4 transposed convolution with stride 2, the paper's
  unpooling + convolution) doubles the coarser features, another one doubles the coarser flow, and both are
  concatenated with the encoder's features of that size (the skip connection, which brings back the fine detail);
  a 3x3 convolution predicts the flow of that scale from the concatenation, which also feeds the next level.
* The finest prediction, ``flow2``, is at 1/4 of the input size: the paper stops there and upsamples it bilinearly
  to the input size (or refines it with a variational method, "FlowNetS+v").

The numbers, and the code where they were checked (the paper itself could not be read for this module):

=======================================  =============================  ==========================================
setting                                  value                          where checked
=======================================  =============================  ==========================================
encoder widths conv1 .. conv6            64, 128, 256, 512, 512, 1024   flownet2-pytorch ``networks/FlowNetS.py``,
(conv3_1 .. conv6_1 keep the width)                                     ClementPinard ``models/FlowNetS.py``,
                                                                        flownet2-tf ``src/flownet_s/flownet_s.py``
kernels conv1 / conv2, conv3 / rest      7x7 / 5x5 / 3x3                same files
up-convolution widths deconv5 .. 2       512, 256, 128, 64              same files (each the width of the encoder
                                                                        one level finer: conv4 .. conv1)
concatenations at 1/32 .. 1/4            1026, 770, 386, 194 channels   same files: skip + deconv + 2 flow channels
activation                               leaky ReLU, slope 0.1          both PyTorch ports
parameters (6 input channels)            38,676,506 (counted here)      flownet2-pytorch's FlowNetS.py states
                                                                        "38,676,504" (2 fewer; not traced)
loss weights flow2 .. flow6              0.005, 0.01, 0.02, 0.08, 0.32  ClementPinard ``main.py`` ("from highest
(finest first), for per-image sums                                      resolution (flow2) to lowest (flow6)") and
                                                                        ``multiscaleloss.py`` ("as in original
                                                                        article"); flownet2-tf's port of the Caffe
                                                                        prototxts ("predict_flow6 ... weighted w/
                                                                        0.32", "predict_flow2 ... 0.005")
flow scaling in the official code        targets x 0.05 (flow / 20)     flownet2-pytorch ``MultiScale.div_flow``,
                                                                        ``FlowNet2S(div_flow=20)``; ClementPinard
                                                                        ``--div-flow 20``; flownet2-tf ``flow *
                                                                        0.05`` and ``predict_flow2 * 20.0``
input sizes                              multiples of 64                lmb-freiburg/flownet2
                                                                        ``scripts/run-flownet.py`` resizes to the
                                                                        next one; flownet2-pytorch crops to the
                                                                        previous one (``datasets.py``)
=======================================  =============================  ==========================================

**Units.** Every flow this module returns is in pixels *of the input image*, whatever the resolution of the grid it
sits on: ``flow4`` (1/16 of the size) says "this block moved 12.5 input pixels to the right", not 12.5/16. So a flow
changes its grid by plain bilinear resizing, never by rescaling its vectors, and comparing a coarse prediction with
the truth needs only an average of the truth over each coarse cell. The official code uses the same convention
with one more constant: its layers predict flow / 20 (``div_flow``; the targets are multiplied by 0.05), which
keeps the numbers the layers must produce near 1, and it multiplies the final flow by 20. We do exactly that inside
``FlowNetS`` (``FLOW_DIV``: the flows passed from level to level are the official ones) and return every flow
multiplied by 20. Our EPEs are therefore 20 times the official ones: same minimum, same gradient directions.

**Sizes.** The encoder halves the size six times, rounding up, and the decoder crops each doubled map to the size of
its skip connection (as ClementPinard's ``crop_like``), so any input size works, without padding (the official code
resizes or crops to multiples of 64). The finest flow has ceil(H/4) x ceil(W/4) cells; at sizes that are not
multiples of 64 the coarse cells and the averaged truth are aligned only approximately.

**Loss** (``multiscale_loss``): the end-point error (EPE, the length of the difference vector) of every prediction
against the truth averaged down to its grid, weighted per scale. The official code *sums* the EPE over the pixels of
each scale and divides by the batch size (Caffe's ``L1Loss`` with ``l2_per_location`` and its default normalisation,
lmb-freiburg/flownet2 ``src/caffe/layers/l1loss_layer.cu``; ClementPinard's ``EPE(..., mean=False)``). A scale with
4 times fewer pixels thus counts 4 times less for the same weight: with the official weights, 0.005 for flow2 up to
0.32 for flow6, the finest scale still weighs most (``per_pixel_weights``). flownet2-pytorch's ``MultiScale``
*averages* instead and weighs 0.32, 0.16, 0.08, 0.04, 0.02 from flow2 to flow6, again finest heaviest. We average
over the valid pixels (numbers in pixels, whatever the image size) with ``SCALE_WEIGHTS``: the official weights
restated per pixel and normalised to sum 1, that is 4/9, 2/9, 1/9, 1/9, 1/9. The training loss is then a weighted
mean of the five EPEs, proportional to the official loss (exactly so at sizes that are multiples of 64 with every
pixel valid). In evaluation mode the loss is the EPE of the final, full-size flow, so ``fit``'s ``val_loss`` is the
validation EPE (a mean of batch means; ``metrics.EPEMetric`` pools every valid pixel of the split instead, as
Sintel's "EPE all").

**Truth at coarse scales** (``downsample_flow``): the mean of the valid truth pixels inside each coarse cell (area
averaging, as ``F.interpolate(mode="area")`` in ClementPinard's port and ``AvgPool2d`` in flownet2-pytorch's;
Caffe's ``Downsample`` layer, ``src/caffe/layers/downsample_layer.cu``, uses a tent filter). A coarse cell is valid
when at least half of its fine pixels are, as in Caffe's layer, which marks a cell unknown when more than half of
its filter weight falls on unknown (NaN) pixels. flownet2-pytorch does not mask at all; ClementPinard's ``sparse``
option takes zero flow as unknown and downsamples by max-pooling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PAPER_CHANNELS = (64, 128, 256, 512, 512, 1024)  # conv1 .. conv6, the paper's widths (see the table)
# For CPU smoke runs: 335,930 parameters, 6 ms per 64x96 pair on one CPU core (the paper's widths: 0.11 s). On 64x96
# translated textures, 100 Adam steps (batch 8, lr 2e-3) take about 16 s on one core and bring the EPE from 3.3 px
# (zero flow) to 1.1 px; tests/test_flownet.py trains it on 32x48 pairs.
SMOKE_CHANNELS = (16, 24, 32, 48, 48, 64)
FLOW_DIV = 20.0  # the layers predict flow / 20, as in the official code (``div_flow``)
OFFICIAL_WEIGHTS = (0.005, 0.01, 0.02, 0.08, 0.32)  # flow2 (finest, 1/4) .. flow6 (1/64), for per-image EPE sums
NEGATIVE_SLOPE = 0.1  # of the leaky ReLUs


def per_pixel_weights(weights_of_sums: Sequence[float] = OFFICIAL_WEIGHTS) -> tuple[float, ...]:
    """The weights of per-pixel *mean* EPEs that give the same loss as ``weights_of_sums`` on per-pixel *sums*, up
    to one constant factor (normalised to sum 1). Prediction k (finest first, k = 0..4) has 4**k times fewer pixels
    than the finest, so its mean weighs w_k / 4**k: (0.005, 0.01/4, 0.02/16, 0.08/64, 0.32/256) ~ (4, 2, 1, 1, 1)."""
    scaled = [weight / 4**k for k, weight in enumerate(weights_of_sums)]
    return tuple(weight / sum(scaled) for weight in scaled)


SCALE_WEIGHTS = per_pixel_weights(OFFICIAL_WEIGHTS)  # (4/9, 2/9, 1/9, 1/9, 1/9), finest first


# --------------------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------------------

def conv(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Convolution (padding keeps the size at stride 1, halves it rounding up at stride 2) and leaky ReLU. No
    BatchNorm: FlowNet has none."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, stride, padding=kernel_size // 2),
                         nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True))


def upconv(c_in: int, c_out: int) -> nn.Sequential:
    """The paper's up-convolution: a 4x4 transposed convolution with stride 2 (exactly twice the size), leaky ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1),
                         nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True))


def predict_flow(c_in: int) -> nn.Conv2d:
    """A 3x3 convolution to the two flow channels (u, v), no activation: flow is signed."""
    return nn.Conv2d(c_in, 2, kernel_size=3, padding=1)


def _crop(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """The top-left ``size`` of a doubled map: doubling ceil(n / 2) gives n or n + 1 rows."""
    return x[..., : size[0], : size[1]]


class Refine(nn.Module):
    """One level of the expanding part: up-convolve the coarser features and the coarser flow to this level's size,
    concatenate them with the encoder's features of this size (skip, up-convolved features, flow: the official
    order), and predict this level's flow from the concatenation, which is also the next level's input."""

    def __init__(self, c_features: int, c_skip: int, c_up: int):
        super().__init__()
        self.deconv = upconv(c_features, c_up)
        # a learned 4x4 up-sampling of the 2-channel flow, without bias or activation (as in the official code)
        self.upsample_flow = nn.ConvTranspose2d(2, 2, kernel_size=4, stride=2, padding=1, bias=False)
        self.predict_flow = predict_flow(c_skip + c_up + 2)

    def forward(self, features: torch.Tensor, flow: torch.Tensor,
                skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = skip.shape[-2:]
        features = torch.cat([skip, _crop(self.deconv(features), size), _crop(self.upsample_flow(flow), size)], 1)
        return features, self.predict_flow(features)


def stack_frames(frames: torch.Tensor) -> torch.Tensor:
    """(N, 6, H, W): frame 1's RGB, then frame 2's, each colour minus its mean over both frames of the pair (as
    flownet2-pytorch's ``rgb_mean``), so that brightness offsets do not matter. Takes (N, 2, 3, H, W), as the flow
    datasets give pairs, or (N, 6, H, W); values in [0, 1]."""
    if frames.ndim == 5 and frames.shape[1:3] == (2, 3):
        pairs = frames
    elif frames.ndim == 4 and frames.shape[1] == 6:
        pairs = frames.unflatten(1, (2, 3))
    else:
        raise ValueError(f"expected frame pairs (N, 2, 3, H, W) or (N, 6, H, W), got {tuple(frames.shape)}")
    pairs = pairs - pairs.mean(dim=(1, 3, 4), keepdim=True)
    return pairs.flatten(1, 2)


class FlowNetS(nn.Module):
    """FlowNetSimple (see the module docstring). ``channels``: the widths of conv1 .. conv6; the up-convolutions at
    1/32 .. 1/4 take the widths of conv4 .. conv1. ``PAPER_CHANNELS`` (the default) builds the paper's network,
    38,676,506 parameters; ``SMOKE_CHANNELS`` a 0.3 M-parameter one for CPU smoke runs.

    ``forward(frames)``: frame pairs (N, 2, 3, H, W) or (N, 6, H, W) in [0, 1], any H and W. In training mode, the
    five flows ``[flow2, flow3, flow4, flow5, flow6]``, finest (1/4) first, each (N, 2, h, w) in input pixels, for
    ``multiscale_loss``. In evaluation mode, ``flow2`` resized bilinearly to the input size: (N, 2, H, W) in pixels,
    (u, v) = (x, y) displacement of each pixel of frame 1."""

    def __init__(self, channels: Sequence[int] = PAPER_CHANNELS):
        super().__init__()
        if len(channels) != 6:
            raise ValueError(f"channels are the widths of conv1 .. conv6: 6 numbers, got {tuple(channels)}")
        c1, c2, c3, c4, c5, c6 = channels
        # contracting part: stage k ends at 1/2**(k+2) of the input size; its output is a skip connection
        self.encoder = nn.ModuleList([
            nn.Sequential(conv(6, c1, 7, stride=2), conv(c1, c2, 5, stride=2)),  # conv1, conv2: 1/4
            nn.Sequential(conv(c2, c3, 5, stride=2), conv(c3, c3)),  # conv3, conv3_1: 1/8
            nn.Sequential(conv(c3, c4, stride=2), conv(c4, c4)),  # conv4, conv4_1: 1/16
            nn.Sequential(conv(c4, c5, stride=2), conv(c5, c5)),  # conv5, conv5_1: 1/32
            nn.Sequential(conv(c5, c6, stride=2), conv(c6, c6)),  # conv6, conv6_1: 1/64
        ])
        self.predict_flow6 = predict_flow(c6)
        # expanding part, coarse to fine: 1/32 (flow5), 1/16, 1/8, 1/4 (flow2); each reads the previous concatenation
        self.decoder = nn.ModuleList([
            Refine(c6, c5, c4),
            Refine(c5 + c4 + 2, c4, c3),
            Refine(c4 + c3 + 2, c3, c2),
            Refine(c3 + c2 + 2, c2, c1),
        ])
        for module in self.modules():  # He initialisation for leaky ReLUs, zero biases (as ClementPinard's port)
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, a=NEGATIVE_SLOPE)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor] | torch.Tensor:
        x = stack_frames(frames)
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        flow = self.predict_flow6(x)
        flows = [flow]
        for refine, skip in zip(self.decoder, reversed(skips[:-1])):  # skips at 1/32, 1/16, 1/8, 1/4
            x, flow = refine(x, flow, skip)
            flows.append(flow)
        flows = [flow * FLOW_DIV for flow in reversed(flows)]  # finest first, in input pixels
        if self.training:
            return flows
        return F.interpolate(flows[0], size=frames.shape[-2:], mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------------------------
# Loss and metric
# --------------------------------------------------------------------------------------------------------------

def _flow_and_valid(target) -> tuple[torch.Tensor, torch.Tensor]:
    """``(flow (N, 2, H, W), valid (N, H, W) bool)`` from ``{"flow": ..., "valid": ...}`` (or a bare flow tensor:
    every pixel valid). Invalid pixels may hold anything (KITTI's zeros, .flo's 1e10, NaN): they are set to 0."""
    if isinstance(target, torch.Tensor):
        flow, valid = target, None
    elif isinstance(target, dict) and "flow" in target:
        flow, valid = target["flow"], target.get("valid")
    else:
        raise TypeError(f"expected a target {{'flow': (N, 2, H, W), 'valid': (N, H, W)}} or a flow tensor, "
                        f"got {type(target).__name__}")
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"target flow must be (N, 2, H, W), got {tuple(flow.shape)}")
    valid = torch.ones_like(flow[:, 0], dtype=torch.bool) if valid is None else valid.bool()
    if valid.shape != flow[:, 0].shape:
        raise ValueError(f"valid must be (N, H, W) = {tuple(flow[:, 0].shape)}, got {tuple(valid.shape)}")
    return torch.where(valid[:, None], flow, torch.zeros_like(flow)), valid


def downsample_flow(flow: torch.Tensor, valid: torch.Tensor, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The truth on a coarser grid of ``size`` (h, w): each cell holds the mean of the valid fine pixels it covers
    (area averaging; no rescaling of the vectors, which are in input pixels), and is valid when at least half of
    them are. ``flow`` (N, 2, H, W), anything where not ``valid`` (N, H, W); returns (N, 2, h, w), (N, h, w)."""
    weight = valid[:, None].to(flow.dtype)
    share = F.adaptive_avg_pool2d(weight, size)  # the fraction of valid fine pixels in each cell
    known = torch.where(valid[:, None], flow, torch.zeros_like(flow))  # 0 * NaN would be NaN
    mean = F.adaptive_avg_pool2d(known, size) / share.clamp(min=1e-6)
    return mean, share[:, 0] >= 0.5


def mean_epe(pred: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean end-point error ||pred - flow|| over the valid pixels (0 when there is none, so that such a batch adds
    nothing to the loss instead of NaN)."""
    error = (pred.float() - flow.float()).norm(dim=1)  # float32: a sum of millions of fp16 errors would overflow
    return error[valid].sum() / valid.sum().clamp(min=1)


def multiscale_loss(outputs: list[torch.Tensor] | torch.Tensor, target,
                    weights: Sequence[float] = SCALE_WEIGHTS) -> torch.Tensor:
    """FlowNet's multi-scale EPE loss (see the module docstring).

    ``outputs``: in training mode, ``FlowNetS``'s list of flows, finest first, each compared with the truth averaged
    down to its grid (``downsample_flow``) and weighted by ``weights`` (finest first; ``SCALE_WEIGHTS``, the official
    weights per pixel); in evaluation mode, the one full-size flow, and the loss is its mean EPE over the valid
    pixels. ``target``: ``{"flow": (N, 2, H, W) in pixels, "valid": (N, H, W) bool}`` (or a flow tensor)."""
    flow, valid = _flow_and_valid(target)
    if isinstance(outputs, torch.Tensor):
        if outputs.shape != flow.shape:
            raise ValueError(f"prediction {tuple(outputs.shape)} and target flow {tuple(flow.shape)} differ; a single "
                             f"prediction must be the full-size flow that FlowNetS returns in eval mode")
        return mean_epe(outputs, flow, valid)
    if len(outputs) != len(weights):
        raise ValueError(f"{len(outputs)} predictions but {len(weights)} weights; give one weight per scale, "
                         f"finest first")
    loss = flow.new_zeros(())  # float32 even when the predictions are float16 (mixed precision)
    for pred, weight in zip(outputs, weights):
        coarse_flow, coarse_valid = downsample_flow(flow, valid, pred.shape[-2:])
        loss = loss + weight * mean_epe(pred, coarse_flow, coarse_valid)
    return loss
