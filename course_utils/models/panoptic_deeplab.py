"""Panoptic-DeepLab: bottom-up panoptic segmentation, its training targets, loss and post-processing.

Cheng, Collins, Zhu, Liu, Huang, Adam, Chen: "Panoptic-DeepLab: A Simple, Strong, and Fast Baseline for Bottom-Up
Panoptic Segmentation", CVPR 2020 (arXiv:1911.10194). Official code: google-research/deeplab2 and the detectron2
project ``projects/Panoptic-DeepLab`` (facebookresearch/detectron2), first released as bowenc0221/panoptic-deeplab.

Panoptic segmentation gives every pixel a class *and*, for the countable "thing" classes (cars, people), the
object it belongs to; uncountable "stuff" (road, sky) gets one segment per class. Top-down methods (Mask R-CNN plus a
semantic branch) predict overlapping instance masks and then need rules to settle the overlaps. Panoptic-DeepLab
works bottom-up: it predicts three dense maps and groups pixels afterwards, so the segments can never overlap.

* **Semantic segmentation**: one score per class and pixel, things and stuff alike (``"semantic"``).
* **Instance centres**: a heatmap with a 2-D Gaussian bump (sigma = 8 px) on the centre of mass of every thing
  instance, learned with a mean squared error (``"center"``).
* **Centre offsets**: for every thing pixel, the vector (dy, dx) from the pixel to the centre of its instance,
  learned with an L1 loss on thing pixels only (``"offset"``). A pixel "votes" for its centre, as in a Hough
  transform.

At inference (``panoptic_postprocess``), the peaks of the heatmap are the instances; every thing pixel goes to the
peak closest to where its offset points; an instance's class is the majority vote of its pixels' semantic labels;
stuff pixels form one segment per class. Two touching cars of the same class are thus two objects, which connected
components of the semantic map (``semantic_to_panoptic_by_components``, the baseline) cannot separate.

The network (paper, Sec. 3.1 "Architecture") is an ImageNet encoder, then *two* separate context modules (ASPP) and
decoders, one for the semantic task and one for the two instance heads, since the tasks need different context.
Each decoder follows DeepLabV3+, with a skip connection from stride 8 as well as from stride 4, and one 5x5
depth-wise separable convolution per upsampling stage.

The numbers, and where they were checked (the paper's text, and the configurations of the official code):

==========================================  ===============  ===================================================
setting                                     value            where
==========================================  ===============  ===================================================
loss weights semantic / centre / offset     1 / 200 / 0.01   paper Sec. 4 (experimental setup); detectron2
                                                             ``panoptic_deeplab/config.py``; bowenc0221
                                                             ``configs/Misc/Base-Panoptic-DeepLab.yaml``;
                                                             deeplab2 ``configs/cityscapes/panoptic_deeplab/*``
centre Gaussian sigma                       8 px             paper Sec. 3.1; deeplab2 ``dataset.proto``
                                                             (``sigma`` default 8.0); bowenc0221
                                                             ``target_transforms.py`` (detectron2's config says 10)
hard-pixel mining of the semantic loss      top 20 %         ``TOP_K_PERCENT: 0.2`` (bowenc0221),
                                                             ``LOSS_TOP_K = 0.2`` (detectron2), ``top_k_percent:
                                                             0.2`` (deeplab2)
pixels of the offset loss                   thing pixels     paper Sec. 3.1; ``IGNORE_STUFF_IN_OFFSET: True``
centre loss pixels                          all labelled     ``center_weights`` in ``target_generator.py``
centre threshold / NMS kernel / top-k       0.1 / 7 / 200    paper Sec. 3.2; detectron2 ``config.py``
stuff area threshold                        2048 px          ``STUFF_AREA`` (detectron2, bowenc0221),
                                                             ``stuff_area_limit`` (deeplab2 configs)
==========================================  ===============  ===================================================

What we simplified, for reading and for a CPU:

* The encoder comes from segmentation-models-pytorch (any of its encoders; ``output_stride=16`` dilates the last
  stage as the paper does, 32 is cheaper). The official ResNets add "multi-grid" dilation rates (1, 2, 4) in the
  last stage and a three-convolution stem (detectron2's Cityscapes configuration); we take the encoder as smp
  builds it.
* Widths are arguments. The defaults are the paper's Cityscapes widths: semantic decoder 256 channels with skip
  projections of 64 (stride 8) and 32 (stride 4); instance decoder 128 with projections 32 and 16; ASPP 256;
  instance heads 32. We derive the projections as 1/4 and 1/8 of the decoder width, which gives exactly those.
* The semantic loss keeps the hard-pixel mining but not the paper's extra weight 3 for pixels of small instances
  (under 64x64 pixels, from DeeperLab). Ignored pixels (``ignore_index``) are left out before the hardest 20 % are
  taken; detectron2 ranks them too, with a loss of 0.
* The centre Gaussian is computed over the whole image; the reference code stops it at 3 sigma (values < 0.012).

Instances are grouped only among thing pixels, so the post-processing needs the thing class ids. A thing pixel with
no centre anywhere in the image becomes void (0); a centre below the threshold is not an instance, and its pixels
join the nearest centre that is (as in the reference code).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models.layers import conv_bn

LOSS_WEIGHTS = (1.0, 200.0, 0.01)  # semantic, centre, offset (paper Sec. 4)
SIGMA = 8.0  # standard deviation of the centre Gaussian, in pixels (paper Sec. 3.1)
TOP_K_PERCENT = 0.2  # hard-pixel mining: the semantic loss averages the hardest 20 % of the pixels
CENTER_THRESHOLD, NMS_KERNEL, TOP_K = 0.1, 7, 200  # post-processing (paper Sec. 3.2)
STUFF_AREA = 2048  # stuff segments smaller than this (pixels of a 1024x2048 Cityscapes image) become void
LABEL_DIVISOR = 1000  # segment id = class * LABEL_DIVISOR + number of the segment within its class (from 1)


# --------------------------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------------------------

def separable_conv(c_in: int, c_out: int, kernel_size: int = 5) -> nn.Sequential:
    """A depth-wise separable convolution: a 5x5 filter per channel (cheap, large receptive field), then a 1x1
    convolution that mixes the channels, each followed by BatchNorm and ReLU. Panoptic-DeepLab uses one of these
    per decoder stage and in every head (paper Sec. 3.1)."""
    return nn.Sequential(conv_bn(c_in, c_in, kernel_size, groups=c_in), conv_bn(c_in, c_out, kernel_size=1))


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (DeepLabV3): the deepest features seen at several scales at once.

    Five branches read the same map: a 1x1 convolution, three 3x3 convolutions with holes (dilation ``rates``: the
    filter taps are that many pixels apart, so they see farther at the same cost), and a global average pooling that
    summarises the whole image. Their outputs are concatenated, mixed by a 1x1 convolution, and dropped out."""

    def __init__(self, c_in: int, c_out: int, rates: Sequence[int], dropout: float = 0.1):
        super().__init__()
        branches = [conv_bn(c_in, c_out, kernel_size=1)]
        for rate in rates:
            branches.append(nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=rate, dilation=rate, bias=False),
                                          nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)))
        self.branches = nn.ModuleList(branches)
        # no BatchNorm on the pooled 1x1 map: in training it would normalise one value per image and channel
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, c_out, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(conv_bn((len(rates) + 2) * c_out, c_out, kernel_size=1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x).expand(-1, -1, *x.shape[-2:])  # the image summary, copied to every position
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


class Decoder(nn.Module):
    """ASPP on the deepest features, then two upsampling stages, to stride 8 and to stride 4. At each stage the
    encoder's features of that stride (fine detail) are projected to a few channels by a 1x1 convolution,
    concatenated with the upsampled coarse features, and fused by one 5x5 separable convolution."""

    def __init__(self, deep_channels: int, skip_channels: tuple[int, int], aspp_channels: int, channels: int,
                 rates: Sequence[int], dropout: float = 0.1):
        super().__init__()
        self.aspp = ASPP(deep_channels, aspp_channels, rates, dropout)
        project_widths = (channels // 4, channels // 8)  # the paper's 64 and 32 for 256 channels (32, 16 for 128)
        self.project = nn.ModuleList(conv_bn(c, p, kernel_size=1) for c, p in zip(skip_channels, project_widths))
        self.fuse = nn.ModuleList([separable_conv(aspp_channels + project_widths[0], channels),
                                   separable_conv(channels + project_widths[1], channels)])

    def forward(self, deep: torch.Tensor, skips: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = self.aspp(deep)
        for skip, project, fuse in zip(skips, self.project, self.fuse):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = fuse(torch.cat([x, project(skip)], dim=1))
        return x


def head(c_in: int, c_mid: int, c_out: int, start_at_zero: bool = False) -> nn.Sequential:
    """A prediction head: a 5x5 separable convolution, then a 1x1 convolution to the outputs. ``start_at_zero``:
    the last layer starts near zero (as detectron2 does for every head), so the first centre heatmaps and offsets
    are flat and their first losses moderate."""
    predictor = nn.Conv2d(c_mid, c_out, kernel_size=1)
    if start_at_zero:
        nn.init.normal_(predictor.weight, std=0.001)
        nn.init.zeros_(predictor.bias)
    return nn.Sequential(separable_conv(c_in, c_mid), predictor)


class PanopticDeepLab(nn.Module):
    """Panoptic-DeepLab on an encoder of segmentation-models-pytorch.

    ``forward(x)`` returns ``{"semantic": (N, num_classes, H, W) logits, "center": (N, 1, H, W) heatmap, "offset":
    (N, 2, H, W)}`` at the input size; the offsets are (dy, dx) in input pixels. The heads work at stride 4; the
    offsets are predicted in units of that grid and multiplied by 4 when upsampled (as detectron2 does), which
    keeps the numbers the network learns small.

    - ``encoder``, ``encoder_weights``: an smp encoder name and ``None`` or ``"imagenet"``. The weights of smp's
      own encoders (``resnet34``, ``mobilenet_v2``...) are found offline first, through ``course_utils.weights``;
      those of timm encoders (``tu-...``) are downloaded by timm.
    - ``output_stride``: 16 (paper: the last encoder stage dilated) or 32 (cheaper). ``atrous_rates`` default to
      (6, 12, 18) at 16 and (3, 6, 9) at 32, as the official configurations.
    - ``decoder_channels``: widths of the (semantic, instance) decoders; ``aspp_channels`` of both ASPPs;
      ``head_channels`` of the centre and offset heads (the semantic head keeps its decoder's width).
    A light configuration for a CPU: ``PanopticDeepLab(n, "mobilenet_v2", decoder_channels=(32, 16),
    aspp_channels=32, head_channels=16, output_stride=32)``, 4.6 M parameters. On 64x96 toy scenes, 150 Adam steps
    (batch 4, lr 3e-3) took 28 s on one core of a busy 2-core CPU and found 39 of 46 held-out objects (IoU > 0.5);
    with ``"resnet18"`` (12.2 M) the same took 49 s, with timm's ``"tu-tf_mobilenetv3_small_minimal_100"`` (1.5 M)
    16 s. The default (``resnet34``, the paper's widths, output stride 16) has 29.9 M parameters.
    """

    def __init__(self, num_classes: int, encoder: str = "resnet34", encoder_weights: str | None = None,
                 in_channels: int = 3, output_stride: int = 16, atrous_rates: Sequence[int] | None = None,
                 decoder_channels: tuple[int, int] = (256, 128), aspp_channels: int = 256, head_channels: int = 32,
                 dropout: float = 0.1):
        super().__init__()
        import segmentation_models_pytorch as smp

        from course_utils import weights

        if output_stride not in (16, 32):
            raise ValueError(f"output_stride must be 16 or 32, not {output_stride}")
        if min(decoder_channels) < 8:
            raise ValueError(f"decoder_channels must be 8 or more (skip projections are 1/8 of them), "
                             f"not {decoder_channels}")
        # smp's own encoders get their weights through course_utils.weights (offline first); timm's ("tu-...")
        # download theirs through timm, as smp does
        own_weights = encoder_weights is not None and encoder in smp.encoders.encoders
        self.encoder = smp.encoders.get_encoder(encoder, in_channels=3, depth=5, output_stride=output_stride,
                                                weights=None if own_weights else encoder_weights)
        if own_weights:
            self.encoder.load_state_dict(weights.smp_encoder_state_dict(encoder, encoder_weights))
        if in_channels != 3:
            self.encoder.set_in_channels(in_channels, pretrained=encoder_weights is not None)
        rates = tuple(atrous_rates) if atrous_rates is not None else ((6, 12, 18) if output_stride == 16 else (3, 6, 9))
        widths = self.encoder.out_channels  # input, then strides 2, 4, 8, 16, 32
        skips = (widths[3], widths[2])  # stride 8, then stride 4
        semantic_width, instance_width = decoder_channels
        self.semantic_decoder = Decoder(widths[-1], skips, aspp_channels, semantic_width, rates, dropout)
        self.instance_decoder = Decoder(widths[-1], skips, aspp_channels, instance_width, rates, dropout)
        self.semantic_head = head(semantic_width, semantic_width, num_classes)
        self.center_head = head(instance_width, head_channels, 1, start_at_zero=True)
        self.offset_head = head(instance_width, head_channels, 2, start_at_zero=True)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.encoder(x)
        deep, skips = features[-1], (features[3], features[2])
        semantic = self.semantic_decoder(deep, skips)
        instance = self.instance_decoder(deep, skips)
        size = x.shape[-2:]
        offset = self.offset_head(instance)
        scale = torch.tensor([size[0] / offset.shape[-2], size[1] / offset.shape[-1]], device=x.device)
        return {"semantic": _resize(self.semantic_head(semantic), size),
                "center": _resize(self.center_head(instance), size),
                "offset": _resize(offset, size) * scale.to(offset.dtype).view(1, 2, 1, 1)}


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return x if x.shape[-2:] == size else F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------------------------
# Training targets and loss
# --------------------------------------------------------------------------------------------------------------

def panoptic_targets(instance: torch.Tensor, sigma: float = SIGMA) -> dict[str, torch.Tensor]:
    """The centre and offset targets of an instance map.

    ``instance``: ``(H, W)`` or ``(N, H, W)`` integers, 0 where there is no thing instance, 1..K for the instances
    (ids may skip numbers). Returns float tensors on the same device:

    - ``"center"`` ``(N, 1, H, W)``: for every instance a Gaussian of standard deviation ``sigma`` with its peak,
      1.0, on the pixel nearest to the instance's centre of mass (halves round up); the maximum where they overlap;
    - ``"offset"`` ``(N, 2, H, W)``: (dy, dx) = centre of mass minus pixel coordinate, on the pixels of an instance
      (the exact centre, not the rounded one), 0 elsewhere;
    - ``"offset_weight"`` ``(N, 1, H, W)``: 1 on thing pixels, 0 elsewhere: the offset loss counts only those.

    Vectorised over the batch and the pixels; one step per instance id for the heatmap."""
    if instance.dtype.is_floating_point or instance.dtype == torch.bool:
        raise TypeError(f"instance must be an integer map (0 = no instance, 1..K), not {instance.dtype}")
    if instance.ndim == 2:
        instance = instance[None]
    if instance.ndim != 3:
        raise ValueError(f"instance must be (H, W) or (N, H, W), not {tuple(instance.shape)}")
    instance = instance.long()
    n, h, w = instance.shape
    device = instance.device
    if n * h * w and int(instance.min()) < 0:
        raise ValueError("instance ids must be >= 0 (0 = no instance)")
    slots = int(instance.max()) + 1 if instance.numel() else 1  # ids 0..max in every image

    # centre of mass of every (image, id): sums of coordinates and pixel counts, with one bincount each
    # (float64 for the sums: float32 counts exactly only to 2^24, and a Cityscapes image has 2^21 pixels)
    ys = torch.arange(h, device=device, dtype=torch.float64).view(1, h, 1).expand(n, h, w)
    xs = torch.arange(w, device=device, dtype=torch.float64).view(1, 1, w).expand(n, h, w)
    flat = (instance + slots * torch.arange(n, device=device).view(n, 1, 1)).reshape(-1)  # (image, id) -> one index
    count = torch.bincount(flat, minlength=n * slots).double()
    cy = torch.bincount(flat, weights=ys.reshape(-1), minlength=n * slots) / count.clamp(min=1)
    cx = torch.bincount(flat, weights=xs.reshape(-1), minlength=n * slots) / count.clamp(min=1)

    thing = instance > 0
    offset = (torch.stack([cy[flat].view(n, h, w) - ys, cx[flat].view(n, h, w) - xs], dim=1) * thing[:, None]).float()

    # heatmap: a separable Gaussian (a column profile times a row profile) per id, kept where it is the largest
    center = torch.zeros(n, h, w, device=device)
    peak_y, peak_x = torch.floor(cy + 0.5).float().view(n, slots), torch.floor(cx + 0.5).float().view(n, slots)
    present = count.view(n, slots) > 0
    rows, cols = ys[0, :, 0].float(), xs[0, 0, :].float()
    for k in range(1, slots):
        gy = torch.exp(-(rows.view(1, h) - peak_y[:, k:k + 1]) ** 2 / (2 * sigma ** 2))  # (N, H)
        gx = torch.exp(-(cols.view(1, w) - peak_x[:, k:k + 1]) ** 2 / (2 * sigma ** 2))  # (N, W)
        gaussian = gy[:, :, None] * gx[:, None, :] * present[:, k].view(n, 1, 1)
        center = torch.maximum(center, gaussian)
    return {"center": center[:, None], "offset": offset, "offset_weight": thing[:, None].float()}


def semantic_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
                  top_k_percent: float = TOP_K_PERCENT) -> torch.Tensor:
    """Cross-entropy averaged over the hardest ``top_k_percent`` of the labelled pixels of the batch (hard-pixel
    mining, "bootstrapping", from DeeperLab). Easy pixels (most of the road) stop dominating the mean once they are
    right. ``top_k_percent=1.0`` is the plain cross-entropy. A batch with no labelled pixel gives 0."""
    if not 0 < top_k_percent <= 1:
        raise ValueError(f"top_k_percent must be in (0, 1], not {top_k_percent}")
    per_pixel = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none")
    per_pixel = per_pixel[target != ignore_index]
    if per_pixel.numel() == 0:
        return logits.sum() * 0.0  # keeps the graph, so backward() works on an all-ignored batch
    if top_k_percent < 1:
        per_pixel = per_pixel.topk(max(1, int(top_k_percent * per_pixel.numel()))).values
    return per_pixel.mean()


def panoptic_losses(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                    weights: tuple[float, float, float] = LOSS_WEIGHTS, ignore_index: int = 255,
                    top_k_percent: float = TOP_K_PERCENT, sigma: float = SIGMA) -> dict[str, torch.Tensor]:
    """The three weighted losses and their sum, for logging: ``{"semantic", "center", "offset", "total"}``.

    ``outputs``: what ``PanopticDeepLab`` returns. ``targets``: ``{"semantic": (N, H, W) class ids (``ignore_index``
    = unlabelled), "instance": (N, H, W) instance ids (0 = none)}``; the centre and offset targets are computed from
    ``instance`` here (``panoptic_targets``), so a dataset only needs the two maps.

    - semantic: ``semantic_loss`` (cross-entropy on the hardest ``top_k_percent`` of the labelled pixels);
    - centre: mean squared error over the labelled pixels (stuff included: it must learn to stay at 0 there);
    - offset: L1 distance |dy| + |dx| averaged over thing pixels (stuff pixels have no centre to point to).
    The paper weights them 1, 200 and 0.01 so that they have similar sizes."""
    w_semantic, w_center, w_offset = weights
    semantic, instance = targets["semantic"].long(), targets["instance"]
    made = panoptic_targets(instance, sigma)
    labelled = (semantic != ignore_index)[:, None].float()
    thing = made["offset_weight"]
    center_error = (outputs["center"].float() - made["center"]) ** 2 * labelled
    offset_error = (outputs["offset"].float() - made["offset"]).abs().sum(dim=1, keepdim=True) * thing
    losses = {"semantic": w_semantic * semantic_loss(outputs["semantic"].float(), semantic, ignore_index,
                                                     top_k_percent),
              "center": w_center * center_error.sum() / labelled.sum().clamp(min=1),
              "offset": w_offset * offset_error.sum() / thing.sum().clamp(min=1)}
    losses["total"] = losses["semantic"] + losses["center"] + losses["offset"]
    return losses


def panoptic_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                  weights: tuple[float, float, float] = LOSS_WEIGHTS, ignore_index: int = 255,
                  top_k_percent: float = TOP_K_PERCENT, sigma: float = SIGMA) -> torch.Tensor:
    """The total loss (a scalar), as ``course_utils.train.fit`` wants its ``loss_fn(model(inputs), targets)``;
    ``panoptic_losses`` gives its three parts. Other settings: ``functools.partial(panoptic_loss, sigma=4.0)``."""
    return panoptic_losses(outputs, targets, weights, ignore_index, top_k_percent, sigma)["total"]


# --------------------------------------------------------------------------------------------------------------
# Post-processing: from the three maps to segments
# --------------------------------------------------------------------------------------------------------------

def find_centers(center: torch.Tensor, threshold: float = CENTER_THRESHOLD, nms_kernel: int = NMS_KERNEL,
                 top_k: int = TOP_K) -> torch.Tensor:
    """The instance centres of a heatmap ``(1, H, W)`` or ``(H, W)``: ``(K, 2)`` long (y, x), strongest first.

    Non-maximum suppression by max-pooling (paper Sec. 3.2): a pixel is a peak when a ``nms_kernel`` x
    ``nms_kernel`` max-pooling centred on it does not change its value, i.e. nothing nearby is higher. Peaks above
    ``threshold`` are kept, at most the ``top_k`` strongest."""
    heat = center.reshape(center.shape[-2:]).float()
    pooled = F.max_pool2d(heat[None, None], nms_kernel, stride=1, padding=nms_kernel // 2)[0, 0]
    peaks = (heat == pooled) & (heat > threshold)
    scores = heat[peaks]
    order = scores.argsort(descending=True)[:top_k]
    return peaks.nonzero()[order]


def _assemble(semantic: torch.Tensor, instance: torch.Tensor, thing_ids: Sequence[int], thing_area: int,
              stuff_area: int, label_divisor: int) -> tuple[torch.Tensor, list[dict]]:
    """Panoptic ids from a class map ``semantic`` (H, W) (negative = void) and a class-agnostic instance map
    (0 = none) defined on thing pixels. An instance's class is the majority vote of its pixels' classes; each stuff
    class present is one segment; thing pixels without an instance and segments below their area become void."""
    id_map = torch.zeros_like(semantic)
    segments: list[dict] = []
    numbers: dict[int, int] = {}  # segments given so far per class

    def add(mask: torch.Tensor, category: int, isthing: bool) -> None:
        numbers[category] = numbers.get(category, 0) + 1
        if numbers[category] >= label_divisor:
            raise ValueError(f"class {category} has {numbers[category]} segments, which label_divisor="
                             f"{label_divisor} cannot encode; use a larger label_divisor")
        segment_id = category * label_divisor + numbers[category]
        id_map[mask] = segment_id
        segments.append({"id": segment_id, "category_id": category, "isthing": isthing})

    things = torch.as_tensor(list(thing_ids), dtype=torch.long, device=semantic.device)
    is_thing = torch.isin(semantic, things)
    n_instances = int(instance.max()) if instance.numel() else 0
    if n_instances:
        num_classes = int(semantic.max()) + 1
        voters = is_thing & (instance > 0)
        votes = torch.bincount(instance[voters] * num_classes + semantic[voters],
                               minlength=(n_instances + 1) * num_classes).view(n_instances + 1, num_classes)
        areas = votes.sum(dim=1)
        for k in range(1, n_instances + 1):
            if areas[k] > 0 and areas[k] >= thing_area:
                add(voters & (instance == k), int(votes[k].argmax()), True)
    for category in torch.unique(semantic[(semantic >= 0) & ~is_thing]).tolist():
        mask = semantic == category
        if int(mask.sum()) >= stuff_area:
            add(mask, category, False)
    return id_map, segments


def panoptic_postprocess(semantic_logits: torch.Tensor, center: torch.Tensor, offset: torch.Tensor,
                         thing_ids: Sequence[int], threshold: float = CENTER_THRESHOLD, nms_kernel: int = NMS_KERNEL,
                         top_k: int = TOP_K, stuff_area: int = STUFF_AREA, thing_area: int = 0,
                         label_divisor: int = LABEL_DIVISOR) -> tuple[torch.Tensor, list[dict]]:
    """The panoptic segmentation of ONE image from the three outputs ``(C, H, W)``, ``(1, H, W)``, ``(2, H, W)``.

    Returns ``(id_map, segments_info)``: ``id_map`` ``(H, W)`` int64 with 0 = void, and one dict ``{"id",
    "category_id" (the class index of the logits), "isthing"}`` per segment. A segment's id is ``category_id *
    label_divisor + n``, n = 1, 2, ... numbering the segments of that class, so ``id // label_divisor`` is its class.

    1. semantic class of every pixel: the argmax of the logits;
    2. instance centres: ``find_centers`` (max-pooling NMS, ``threshold``, ``top_k``);
    3. every thing pixel (class in ``thing_ids``) votes for the point its offset leads to, pixel + (dy, dx), and
       joins the nearest centre; with no centre at all it is void;
    4. an instance's class is the majority vote of its pixels' semantic classes (paper Sec. 3.2);
    5. the stuff pixels of each stuff class form one segment;
    6. stuff segments under ``stuff_area`` pixels and instances under ``thing_area`` pixels become void (the
       reference code has only the first; 2048 is for 1024x2048 Cityscapes images: scale it with the image).
    """
    if semantic_logits.ndim != 3 or center.ndim != 3 or offset.ndim != 3 or offset.shape[0] != 2:
        raise ValueError(f"expected one image: logits (C, H, W), center (1, H, W), offset (2, H, W); got "
                         f"{tuple(semantic_logits.shape)}, {tuple(center.shape)}, {tuple(offset.shape)}")
    if top_k >= label_divisor:
        raise ValueError(f"top_k ({top_k}) instances of one class need label_divisor > top_k, not {label_divisor}")
    semantic = semantic_logits.argmax(dim=0)
    thing = torch.isin(semantic, torch.as_tensor(list(thing_ids), dtype=torch.long, device=semantic.device))
    instance = torch.zeros_like(semantic)
    centers = find_centers(center, threshold, nms_kernel, top_k)
    if len(centers) and thing.any():
        ys, xs = thing.nonzero(as_tuple=True)
        votes = torch.stack([ys + offset[0, ys, xs].float(), xs + offset[1, ys, xs].float()], dim=1)  # (P, 2)
        nearest = torch.cat([torch.cdist(chunk, centers.float(), compute_mode="donot_use_mm_for_euclid_dist")
                             .argmin(dim=1) for chunk in votes.split(65536)])  # in chunks: P x K distances
        instance[ys, xs] = nearest + 1
    return _assemble(semantic, instance, thing_ids, thing_area, stuff_area, label_divisor)


def panoptic_postprocess_batch(outputs: dict[str, torch.Tensor], thing_ids: Sequence[int],
                               **kwargs) -> list[tuple[torch.Tensor, list[dict]]]:
    """``panoptic_postprocess`` on every image of a batch of model outputs, on the CPU: a list of
    ``(id_map, segments_info)``, the form ``course_utils.metrics.panoptic_quality`` reads."""
    semantic, center, offset = (outputs[key].detach().float().cpu() for key in ("semantic", "center", "offset"))
    return [panoptic_postprocess(semantic[i], center[i], offset[i], thing_ids, **kwargs) for i in range(len(semantic))]


def semantic_to_panoptic_by_components(semantic_labels, thing_ids: Sequence[int], min_area: int = 0,
                                       stuff_area: int | None = None, ignore_index: int | None = 255,
                                       label_divisor: int = LABEL_DIVISOR) -> tuple[torch.Tensor, list[dict]]:
    """The baseline without an instance head: every connected component of a thing class is one instance.

    ``semantic_labels`` ``(H, W)`` (tensor or array) of class ids; ``ignore_index`` pixels become void. Components
    are 4-connected (``scipy.ndimage.label``'s default) and found per class, so a car touching a person stays two
    segments, but two touching cars become one: the mistake Panoptic-DeepLab's centres fix. Stuff, ids and
    ``segments_info`` as in ``panoptic_postprocess``; instances under ``min_area`` pixels and stuff segments under
    ``stuff_area`` (default: ``min_area``) become void."""
    from scipy import ndimage

    if isinstance(semantic_labels, torch.Tensor):
        labels = semantic_labels.detach().cpu().long()  # scipy works on the CPU, in NumPy
    else:
        labels = torch.as_tensor(np.asarray(semantic_labels)).long()
    if labels.ndim != 2:
        raise ValueError(f"semantic_labels must be one (H, W) map, not {tuple(labels.shape)}")
    if ignore_index is not None:
        labels = torch.where(labels == ignore_index, -1, labels)
    components, numbered = np.zeros(labels.shape, dtype=np.int64), 0
    for category in thing_ids:
        found, count = ndimage.label((labels == category).numpy())
        components[found > 0] = found[found > 0] + numbered  # go on numbering after the previous classes
        numbered += count
    return _assemble(labels, torch.from_numpy(components), thing_ids, min_area,
                     min_area if stuff_area is None else stuff_area, label_divisor)
