"""Image matting networks: MODNet (trimap-free portrait matting) and Deep Image Matting (image + trimap).

Matting predicts, at every pixel, the opacity alpha of the foreground in I = alpha F + (1 - alpha) B. A segmentation
mask says "person or not"; an alpha matte also says "how much": 0.3 on a strand of hair over the sky. Two papers of
the lecture, two ways to make this under-determined problem (7 unknowns, 3 equations per pixel) learnable:

**Deep Image Matting** (DIM; Xu, Price, Cohen, Huang, CVPR 2017, arXiv:1703.03872) asks the user for a *trimap*:
known foreground (255), known background (0) and an unknown band (128) where alpha is to be found. The network:

* an encoder-decoder fed the image and the trimap as a 4th channel. The encoder is VGG16's 13 convolutions, 5 max
  poolings and a 14th (1x1) convolution; the decoder is lighter: 6 convolutions, and 5 *max-unpoolings* that put
  each value back where the encoder's maximum was (as SegNet), then a 5x5 convolution that predicts alpha;
* a **refinement stage**: 4 convolutions on the image and the predicted alpha, at full resolution and without
  pooling, whose output is added to the first alpha (a residual), to sharpen the over-smooth edges;
* losses over the **unknown region only**: the alpha-prediction loss sqrt((a_p - a_g)^2 + eps^2) (a smooth L1, the
  Charbonnier loss) and the **compositional loss**, the same on the RGB colours of the image composited with the
  predicted alpha, alpha_p F + (1 - alpha_p) B, against the one composited with the true alpha. The composite needs
  the true F and B, which exist only for composited training data (Composition-1k: 493 foregrounds each pasted on
  100 backgrounds = 49,300 training images; 50 x 20 = 1000 test images). AISegment gives the portrait and its matte
  only, so ``dim_loss`` adds the compositional term only when the targets carry ``"fg"`` and ``"bg"``.

**MODNet** (Ke, Sun, Li, Yan, Lau, "MODNet: Real-Time Trimap-Free Portrait Matting via Objective Decomposition",
AAAI 2022, arXiv:2011.11961; code ZHKKKe/MODNet) needs no trimap. It splits matting into three sub-objectives, each
with its own head and its own loss, in one network trained end to end:

* **semantic estimation** (low resolution): an ImageNet encoder (MobileNetV2) and a small decoder find *where* the
  person is: a coarse foreground probability at 1/16 of the image size, learned against the blurred, downsampled
  true alpha (an L2 loss);
* **detail prediction** (high resolution): a light branch on the image itself, at 1/2 and 1/4 and full size, and the
  encoder's first two feature maps, predicts alpha in the *transition region* (the trimap's unknown band, L1 loss
  there only): the hair, not the person;
* **semantic-detail fusion**: combines the two into the final matte (L1 and a "compositional" term, everywhere,
  with the transition region weighted 5 times).

The trimap is thus still needed *for training* (to weight the losses; it is made from the true alpha), never at
test time. The semantic branch of the AAAI version adds an **Efficient ASPP** (e-ASPP, "to fuse multi-scale
features for semantic estimation", abstract); the released code has an **SE block** (channel attention: a global
average of each channel, two small linear layers, a sigmoid weight per channel) on the 1/32 features. We keep the
SE block and add a simplified e-ASPP (``EfficientASPP``): depth-wise 3x3 atrous convolutions at rates 1, 2 and 4
(every channel looks at three neighbourhood sizes, at a fraction of the cost of full convolutions), fused and
narrowed by one 1x1 convolution. The paper's exact e-ASPP layout was not checked.

**SOC, sub-objectives consistency** (named in the abstract; ``soc_adaptation_iter`` of the released
``src/trainer.py``): a trimap-free model trained on composites fails on real photos (domain shift). MODNet adapts to
*unlabelled* real images by asking its own sub-objectives to agree: the semantic map must match the blurred,
downsampled matte and the reverse (each detached as the other's pseudo-target, values < 0.01 set to 0), and on a
band around the predicted person (where matte > 0.1 and semantic > 0.1; band from dilation minus erosion with a
window of 5 % of the image side) the detail and matte must stay close to those of a frozen copy of the model taken
at the start of the epoch, so the boundary detail is not smoothed away. Weights 100 (semantic) and 1 (detail);
BatchNorm and InstanceNorm are frozen; Adam, learning rate 1e-5, batch 1 (the function's example). ``soc_losses``
computes these two losses; the adaptation loop is left to the notebook (an exercise).

The numbers, and where they were checked (ZHKKKe/MODNet at commit 28165a4: ``src/models/modnet.py``,
``src/trainer.py``, ``src/models/backbones/wrapper.py``; for DIM, which has no official code, open-mmlab/mmagic's
``mmedit`` implementation: ``encoders/vgg.py``, ``decoders/plain_decoder.py``, ``refiners/plain_refiner.py``,
``mattors/dim.py``, ``losses/pixelwise_loss.py``, ``configs/mattors/dim``, and the paper summary of
pss1207.github.io, "Deep Image Matting", as the paper's own text could not be read here):

=========================================  ===================  ================================================
setting                                    value                where
=========================================  ===================  ================================================
MODNet encoder, features used              MobileNetV2 at 1/2,  ``wrapper.py`` (16, 24, 32, 96, 1280 channels =
                                           1/4, 1/8, 1/32       smp's ``mobilenet_v2``, checked by running it)
MODNet detail width (hr_channels)          32, at most 64       ``MODNet(hr_channels=32)``, ``HRBranch``
SE block reduction                         4                    ``LRBranch``: ``SEBlock(..., reduction=4)``
semantic prediction                        1/16, 3x3 conv,      ``LRBranch.conv_lr`` on the 1/8 features
                                           stride 2
normalisation                              IBNorm: half Batch-, ``IBNorm``, ``Conv2dIBNormRelu``
                                           half InstanceNorm
loss weights semantic / detail / matte     10 / 10 / 1          ``supervised_training_iter`` defaults ("please
                                                                adjust according to your dataset")
semantic target                            alpha at 1/16, 3x3   ``supervised_training_iter``,
                                           Gaussian blur, MSE   ``GaussianBlurLayer(1, 3)`` (sigma 0.8)
detail loss                                L1 on trimap's       ``supervised_training_iter``: known pixels
                                           unknown band         replaced by the trimap in prediction and target
matte loss                                 L1 + 4 x L1 (band)   ``supervised_training_iter`` (the image is
                                           + same on alpha*I    normalised to [-1, 1] there)
supervised training (code's example)       SGD 0.01, momentum   docstring of ``supervised_training_iter``
                                           0.9, batch 16, 40
                                           epochs, lr x 0.1
                                           every 10
SOC weights / thresholds / band            100, 1 / 0.1, 0.01   ``soc_adaptation_iter``
                                           / 5 % of the side
inference size (released demo)             sides rounded down   ``demo/image_matting/colab/inference.py`` (area
                                           to multiples of 32   resize; shorter side to 512 if needed)
speed (paper)                              67 fps, GTX 1080Ti   abstract (ar5iv 2011.11961)
DIM encoder / decoder                      13 + 1 conv, 5 pool  ``vgg.py`` (VGG16 + 1x1 ``conv6``),
                                           / 6 conv, 5 unpool,  ``plain_decoder.py`` (1x1, then 5x5 after each
                                           5x5 prediction       unpooling); paper summary: same counts
DIM 4th (trimap) input channel             zero-initialised     paper summary (decoder: Xavier initialisation)
DIM refinement                             3 conv (64) + 1,     ``plain_refiner.py``: sigmoid(raw alpha +
                                           added to stage 1     refinement), input image + sigmoid(raw alpha)
DIM loss weights alpha / composition       0.5 / 0.5            ``configs/mattors/dim``: ``CharbonnierLoss`` and
                                                                ``CharbonnierCompLoss``, ``loss_weight=0.5`` each
DIM epsilon                                1e-6                 mmedit's ``eps=1e-12`` sits under the square
                                                                root: it is eps^2
DIM loss pixels                            trimap == 128        ``get_unknown_tensor``, masked mean over them
DIM training schedule                      encoder-decoder,     ``dim.py`` (``train_backbone``,
                                           then refiner, then   ``train_refiner``); paper summary
                                           both
=========================================  ===================  ================================================

The MODNet paper was read only in its abstract here; its loss formulas and weights are taken from the released code.

What we changed, for reading and for a CPU:

* **Semantic branch**: e-ASPP (1/32, narrowed to the 1/16 width), then the SE block, then the released code's two
  5x5 convolutions up to 1/8. The released code has no e-ASPP and turns the 1280 MobileNetV2 channels into 96 with
  one 5x5 convolution (3.1 M parameters); our 1x1 fusion does it with 0.37 M.
* **Encoder**: any encoder of segmentation-models-pytorch (``mobilenet_v2``, as the paper; a tiny timm one for
  smoke runs), its ImageNet weights found offline first through ``course_utils.weights``. The released code
  starts from a MobileNetV2 pretrained on human segmentation.
* **Semantic target**: the alpha is *area-averaged* to 1/16 (each cell the mean of its 16x16 pixels) before the
  blur; the released code resizes bilinearly, which at 1/16 samples about 2x2 pixels per cell. Its blur kernel
  (scipy's Gaussian of sigma 0.8 on a 3x3 grid) is within 0.0005 of [1, 2, 1]/4 x [1, 2, 1]/4, which we use.
* **Matte loss**: the "band" terms are written with the band as a mask; the released code writes the trimap's 0/1
  into the prediction outside the band instead, which differs by a constant where the trimap disagrees with the
  true alpha (no gradient). Its "compositional" term compares alpha_p * I with alpha_g * I (no F or B needed): an
  L1 on alpha weighted by the image's magnitude. We add it when the targets carry ``"image"`` (the network's
  input, normalised as it is).
* **DIM**: the VGG-style encoder of ``course_utils.models.classic`` (BatchNorm after every convolution; the paper's
  VGG16 has none), ``widths="vgg16"`` with ImageNet VGG16-BN weights, or ``"small"``. Decoder convolutions also get
  BatchNorm. The refinement's last convolution starts at zero, so the refined alpha starts equal to the first.
* **Sizes**: MODNet needs heights and widths that are multiples of 32. The released demo resizes to them; we
  also offer ``pad_to_multiple`` (the caller crops the matte back). DIM takes any size of at least 32 pixels.

Parameter counts (counted here) and the time of one 512x512 image in evaluation mode on one core of this shared
2-core CPU (torch 2.14, smp 0.6; best of 3 to 5 runs, the machine was busy):

=====================================================================  ==========  ======================
model                                                                  parameters  512x512, 1 CPU thread
=====================================================================  ==========  ======================
``MODNet()``: MobileNetV2 (2,223,872) + hr_channels 32                 3,233,555   0.82 s
released MODNet (``src/models/modnet.py``, random weights, same run)   6,487,075   0.83 s
``MODNet("tu-tf_mobilenetv3_small_minimal_100", hr_channels=8)``       640,231     0.12 s
``MODNet("tu-lcnet_035", hr_channels=8)`` (the tests' model)           525,073
``DeepImageMatting()``: widths "vgg16" (encoder 14,719,488, refiner  26,283,074  6.7 s (5.5 s without
64 wide: 76,801)                                                                   the refinement)
``DeepImageMatting(widths="small", refine_channels=8)``                1,024,882   0.35 s (1.4 s with the
                                                                                   64-wide refiner)
=====================================================================  ==========  ======================

The full-resolution layers cost most: DIM's 64-wide refinement runs three 64-channel 3x3 convolutions on every
pixel. tests/test_matting_models.py trains the 0.5 M MODNet from random weights on 64x64 soft disks over random
backgrounds: 40 Adam steps (batch 8, learning rate 2e-2), about 6 s on one core, bring the matte's mean absolute
error on held-out images to 0.056, against 0.144 for the best constant alpha (0, all background).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models.classic import VGGEncoder
from course_utils.models.layers import conv_bn

MODNET_LOSS_WEIGHTS = (10.0, 10.0, 1.0)  # semantic, detail, matte (released src/trainer.py)
BAND_WEIGHT = 4.0  # MODNet's matte loss counts the transition band 1 + 4 = 5 times
SOC_WEIGHTS = (100.0, 1.0)  # semantic consistency, detail consistency (released soc_adaptation_iter)
DIM_ALPHA_WEIGHT = 0.5  # w_l: alpha-prediction loss weight; the compositional loss gets 1 - w_l
DIM_EPSILON = 1e-6  # of the Charbonnier losses sqrt(x^2 + eps^2)
STRIDE = 32  # MODNet's encoder halves the size 5 times


# --------------------------------------------------------------------------------------------------------------
# Inputs and targets
# --------------------------------------------------------------------------------------------------------------

def pad_to_multiple(image: torch.Tensor, multiple: int = STRIDE, mode: str = "reflect"
                    ) -> tuple[torch.Tensor, tuple[int, int]]:
    """``image`` (N, C, H, W) padded at the bottom and right to multiples of ``multiple``, and its original (H, W):
    ``matte = model(padded)[..., :h, :w]``. A 600x800 AISegment portrait becomes 608x800."""
    h, w = image.shape[-2:]
    return F.pad(image, (0, -w % multiple, 0, -h % multiple), mode=mode), (h, w)


def _check_size(image: torch.Tensor, multiple: int = STRIDE) -> None:
    h, w = image.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"MODNet needs an image height and width that are multiples of {multiple} (its encoder "
                         f"halves them 5 times), got {h}x{w}. Pad it with pad_to_multiple(image) and crop the "
                         f"matte back, or resize it.")


def _as_map(x: torch.Tensor, name: str) -> torch.Tensor:
    """(N, H, W) or (N, 1, H, W) -> (N, 1, H, W)."""
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must be (N, H, W) or (N, 1, H, W), not {tuple(x.shape)}")
    return x


def _alpha(alpha: torch.Tensor) -> torch.Tensor:
    """A true alpha as floats in [0, 1], (N, 1, H, W); uint8 mattes (0..255) are divided by 255."""
    alpha = _as_map(alpha, "alpha")
    return alpha.float() / 255 if not alpha.dtype.is_floating_point else alpha.float()


def unknown_region(trimap: torch.Tensor) -> torch.Tensor:
    """The unknown band of a trimap as a float mask (N, 1, H, W): the pixels strictly between background (0) and
    foreground (255 for integer trimaps, 1.0 for float trimaps scaled to [0, 1], whose band is 0.5)."""
    trimap = _as_map(trimap, "trimap")
    top = 1.0 if trimap.dtype.is_floating_point and float(trimap.max()) <= 1 else 255
    return ((trimap > 0) & (trimap < top)).float()


def trimap_channel(image: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
    """The 4-channel input of ``DeepImageMatting(with_trimap=True)``: the image and the trimap as 0, 0.5, 1."""
    trimap = _as_map(trimap, "trimap").float()
    return torch.cat([image, trimap / 255 if float(trimap.max()) > 1 else trimap], dim=1)


def _blur(x: torch.Tensor) -> torch.Tensor:
    """The 3x3 blur of MODNet's semantic target: [1, 2, 1]/4 in each direction, reflected at the borders."""
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype) / 4
    kernel = (k[:, None] * k[None, :]).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])


def semantic_target(alpha: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """What MODNet's semantic branch learns: the true alpha averaged down to ``size`` (1/16), then blurred. The
    blur makes it a soft "person here" map: the branch is not asked for boundary detail it cannot see."""
    return _blur(F.interpolate(_alpha(alpha), size=tuple(size), mode="area"))


# --------------------------------------------------------------------------------------------------------------
# MODNet
# --------------------------------------------------------------------------------------------------------------

class IBNorm(nn.Module):
    """Batch normalisation on half of the channels, instance normalisation on the other half (MODNet's released
    code). Instance normalisation removes each image's own contrast and colour cast from a feature map, which makes
    the edge features less sensitive to lighting; batch normalisation keeps what differs between images."""

    def __init__(self, channels: int):
        super().__init__()
        self.n_batch = channels // 2
        self.batch = nn.BatchNorm2d(self.n_batch)
        self.instance = nn.InstanceNorm2d(channels - self.n_batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.batch(x[:, :self.n_batch]), self.instance(x[:, self.n_batch:])], dim=1)


def conv_ibn(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Convolution, IBNorm, ReLU: MODNet's building block."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, stride, padding=kernel_size // 2, bias=False),
                         IBNorm(c_out), nn.ReLU(inplace=True))


class SEBlock(nn.Module):
    """Squeeze-and-excitation: one weight in (0, 1) per channel, computed from the channel averages over the whole
    image, multiplies that channel. The image-wide view decides which features matter here."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.weights = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
                                     nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x.mean(dim=(2, 3)))[:, :, None, None]


class EfficientASPP(nn.Module):
    """A simplified e-ASPP: each channel filtered by depth-wise 3x3 atrous convolutions at several ``rates`` (the
    filter taps ``rate`` pixels apart see wider contexts at the same cost), then one 1x1 convolution that mixes the
    channels of all scales and narrows them to ``c_out``. DeepLab's ASPP uses full 3x3 convolutions per rate
    instead: 9 * c_in * c_out weights each, against 9 * c_in here."""

    def __init__(self, c_in: int, c_out: int, rates: Sequence[int] = (1, 2, 4)):
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(c_in, c_in, 3, padding=r, dilation=r, groups=c_in, bias=False)
                                      for r in rates)
        # BatchNorm, not IBNorm: at 1/32 a small training image leaves 1x1 maps, which instance norm cannot take
        self.fuse = conv_bn(len(rates) * c_in, c_out, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([branch(x) for branch in self.branches], dim=1))


def _encoder(name: str, encoder_weights: str | None) -> nn.Module:
    """An smp encoder (depth 5: features at 1/2 .. 1/32). The weights of smp's own encoders (``mobilenet_v2``,
    ``resnet34``...) come through ``course_utils.weights`` (offline first); timm's (``tu-...``) are downloaded by
    timm, as smp does."""
    import segmentation_models_pytorch as smp

    from course_utils import weights

    own = encoder_weights is not None and name in smp.encoders.encoders
    encoder = smp.encoders.get_encoder(name, in_channels=3, depth=5, weights=None if own else encoder_weights)
    if own:
        encoder.load_state_dict(weights.smp_encoder_state_dict(name, encoder_weights))
    return encoder


def _up(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class MODNet(nn.Module):
    """MODNet on an encoder of segmentation-models-pytorch; trimap-free: ``forward(image)`` needs the image only.

    In training mode ``forward`` returns ``{"semantic": (N, 1, H/16, W/16), "detail": (N, 1, H, W), "matte":
    (N, 1, H, W)}``, all probabilities in [0, 1]; in evaluation mode the matte (N, 1, H, W) alone, and the two
    auxiliary heads are not computed (``heads=True`` asks for them anyway, as SOC does with a frozen copy).
    H and W must be multiples of 32 (``pad_to_multiple``).

    - ``encoder``, ``encoder_weights``: an smp encoder name and ``None`` or ``"imagenet"``. The paper's is
      ``"mobilenet_v2"``; for a CPU smoke run ``"tu-tf_mobilenetv3_small_minimal_100"`` with ``hr_channels=8``.
    - ``hr_channels``: width of the detail and fusion branches (32 in the paper's code; they reach twice that).
    - ``rates``: atrous rates of the e-ASPP on the 1/32 features.
    """

    def __init__(self, encoder: str = "mobilenet_v2", encoder_weights: str | None = None, hr_channels: int = 32,
                 rates: Sequence[int] = (1, 2, 4)):
        super().__init__()
        if hr_channels < 4 or hr_channels % 2:
            raise ValueError(f"hr_channels must be an even number of at least 4, not {hr_channels}")
        self.encoder = _encoder(encoder, encoder_weights)
        c2, c4, c8, c16, c32 = self.encoder.out_channels[1:6]  # widths at 1/2, 1/4, 1/8, 1/16, 1/32
        hr = hr_channels

        # semantic branch (low resolution): context at 1/32, decoded to 1/8, predicted at 1/16
        self.context = nn.Sequential(EfficientASPP(c32, c16, rates), SEBlock(c16, reduction=4))
        self.semantic16 = conv_ibn(c16, c16, kernel_size=5)
        self.semantic8 = conv_ibn(c16, c8, kernel_size=5)
        self.semantic_head = nn.Conv2d(c8, 1, 3, stride=2, padding=1)

        # detail branch (high resolution): image + encoder features at 1/2 and 1/4 + the semantic features
        self.detail_from_enc2 = conv_ibn(c2, hr, kernel_size=1)
        self.detail_down = conv_ibn(hr + 3, hr, stride=2)  # 1/2 -> 1/4
        self.detail_from_enc4 = conv_ibn(c4, hr, kernel_size=1)
        self.detail_merge4 = conv_ibn(2 * hr, 2 * hr)
        self.detail4 = nn.Sequential(conv_ibn(2 * hr + c8 + 3, 2 * hr), conv_ibn(2 * hr, 2 * hr),
                                     conv_ibn(2 * hr, hr))
        self.detail2 = nn.Sequential(conv_ibn(2 * hr, 2 * hr), conv_ibn(2 * hr, hr), conv_ibn(hr, hr),
                                     conv_ibn(hr, hr))
        self.detail_head = nn.Sequential(conv_ibn(hr + 3, hr), nn.Conv2d(hr, 1, kernel_size=1))

        # fusion branch: semantic features (from 1/8) and detail features (at 1/2), then the image at full size
        self.fusion4 = conv_ibn(c8, hr, kernel_size=5)
        self.fusion2 = conv_ibn(2 * hr, hr)
        self.fusion_head = nn.Sequential(conv_ibn(hr + 3, hr // 2), nn.Conv2d(hr // 2, 1, kernel_size=1))

    def forward(self, image: torch.Tensor, heads: bool | None = None):
        _check_size(image)
        heads = self.training if heads is None else heads
        features = self.encoder(image)
        enc2, enc4, enc32 = features[1], features[2], features[5]

        # semantic: where the person is
        lr8 = self.semantic8(_up(self.semantic16(_up(self.context(enc32)))))

        # detail: the boundary, from the image at 1/2, 1/4 and full size
        img2, img4 = F.avg_pool2d(image, 2), F.avg_pool2d(image, 4)
        enc2 = self.detail_from_enc2(enc2)
        hr4 = self.detail_down(torch.cat([img2, enc2], dim=1))
        hr4 = self.detail_merge4(torch.cat([hr4, self.detail_from_enc4(enc4)], dim=1))
        hr4 = self.detail4(torch.cat([hr4, _up(lr8), img4], dim=1))
        hr2 = self.detail2(torch.cat([_up(hr4), enc2], dim=1))

        # fusion: both, to the final matte
        lr2 = _up(self.fusion4(_up(lr8)))
        f2 = self.fusion2(torch.cat([lr2, hr2], dim=1))
        matte = torch.sigmoid(self.fusion_head(torch.cat([_up(f2), image], dim=1)))
        if not heads:
            return matte
        semantic = torch.sigmoid(self.semantic_head(lr8))
        detail = torch.sigmoid(self.detail_head(torch.cat([_up(hr2), image], dim=1)))
        return {"semantic": semantic, "detail": detail, "matte": matte}


def modnet_losses(outputs, targets: dict[str, torch.Tensor],
                  weights: Sequence[float] = MODNET_LOSS_WEIGHTS) -> dict[str, torch.Tensor]:
    """MODNet's three supervised losses, weighted (semantic 10, detail 10, matte 1 by default).

    ``targets``: ``"alpha"`` (N, H, W) or (N, 1, H, W), floats in [0, 1] or uint8; ``"trimap"`` of the same shape,
    uint8 0/128/255 (or floats 0/0.5/1), made from the true alpha, which marks the transition band; optionally
    ``"image"`` (N, 3, H, W), the network's input, for the matte's compositional term.

    - ``"semantic"``: mean squared error of the 1/16 semantic map against ``semantic_target(alpha)``;
    - ``"detail"``: L1 error of the detail map inside the band, averaged over *all* pixels (as the released code:
      pixels outside the band add 0, so the weight keeps its meaning whatever the band's width);
    - ``"matte"``: L1 error of the matte everywhere plus 4 times inside the band; with ``"image"``, the same two
      terms again on alpha * image.

    ``outputs`` is the training-mode dict of ``MODNet``. In evaluation mode (a matte tensor) it returns only
    ``{"matte_l1": ...}``, the mean absolute error of the matte, which makes ``fit``'s ``val_loss`` readable."""
    if isinstance(outputs, torch.Tensor):
        return {"matte_l1": (outputs.float() - _alpha(targets["alpha"])).abs().mean()}
    alpha = _alpha(targets["alpha"])
    band = unknown_region(targets["trimap"])
    matte = outputs["matte"].float()
    if matte.shape != alpha.shape or band.shape != alpha.shape:
        raise ValueError(f"matte {tuple(matte.shape)}, alpha {tuple(alpha.shape)} and trimap {tuple(band.shape)} "
                         "must have the same size (N, 1, H, W)")
    w_semantic, w_detail, w_matte = weights

    semantic = F.mse_loss(outputs["semantic"].float(), semantic_target(alpha, outputs["semantic"].shape[-2:]))
    detail = (band * (outputs["detail"].float() - alpha).abs()).mean()
    error = (matte - alpha).abs()
    matte_loss = error.mean() + BAND_WEIGHT * (band * error).mean()
    if "image" in targets:  # the released code's "compositional" term: |alpha_p I - alpha_g I|
        error = (targets["image"].float() * (matte - alpha)).abs()
        matte_loss = matte_loss + error.mean() + BAND_WEIGHT * (band * error).mean()
    return {"semantic": w_semantic * semantic, "detail": w_detail * detail, "matte": w_matte * matte_loss}


def modnet_loss(outputs, targets: dict[str, torch.Tensor],
                weights: Sequence[float] = MODNET_LOSS_WEIGHTS) -> torch.Tensor:
    """The sum of ``modnet_losses``: the ``loss_fn`` for ``fit``."""
    return sum(modnet_losses(outputs, targets, weights).values())


def soc_losses(outputs: dict[str, torch.Tensor], frozen: dict[str, torch.Tensor],
               weights: Sequence[float] = SOC_WEIGHTS) -> dict[str, torch.Tensor]:
    """MODNet's self-supervised SOC losses on an unlabelled batch (see the module docstring).

    ``outputs``: ``model(image)`` of the model being adapted (training mode, norm layers frozen); ``frozen``:
    ``copy(image, heads=True)`` of a frozen copy made at the start of the epoch, under ``torch.no_grad()``::

        frozen_model = copy.deepcopy(model).eval()
        model.train()
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
                m.eval()
        loss = sum(soc_losses(model(image), frozen_model(image, heads=True)).values())
    """
    semantic, detail, matte = outputs["semantic"], outputs["detail"], outputs["matte"]
    h, w = matte.shape[-2:]

    # semantic consistency: the coarse map and the (blurred, downsampled) matte, each the other's pseudo-target
    matte_small = _blur(F.interpolate(matte, size=semantic.shape[-2:], mode="area"))
    pseudo_semantic, pseudo_matte = matte_small.detach(), semantic.detach()
    pseudo_semantic = pseudo_semantic * (pseudo_semantic > 0.01)
    pseudo_matte = pseudo_matte * (pseudo_matte > 0.01)
    soc_semantic = F.mse_loss(semantic, pseudo_semantic) + F.mse_loss(matte_small, pseudo_matte)

    # detail consistency: on a band around the predicted person, keep the frozen copy's boundary detail
    person = ((matte.detach() > 0.1) & (F.interpolate(semantic.detach(), size=(h, w), mode="nearest") > 0.1)).float()
    window = max(3, int((h + w) / 2 * 0.05) // 2 * 2 + 1)  # odd, about 5 % of the image side
    dilated = F.max_pool2d(person, window, stride=1, padding=window // 2)
    eroded = -F.max_pool2d(-person, window, stride=1, padding=window // 2)
    band = (dilated - eroded > 0).float()
    pixels = band.sum(dim=(1, 2, 3)).clamp(min=1)
    soc_detail = sum(((band * (ours - theirs).abs()).sum(dim=(1, 2, 3)) / pixels).mean()
                     for ours, theirs in ((detail, frozen["detail"]), (matte, frozen["matte"])))
    return {"soc_semantic": weights[0] * soc_semantic, "soc_detail": weights[1] * soc_detail}


# --------------------------------------------------------------------------------------------------------------
# Deep Image Matting
# --------------------------------------------------------------------------------------------------------------

def _with_trimap_channel(conv: nn.Conv2d) -> nn.Conv2d:
    """A copy of an RGB input convolution with a 4th input channel whose weights are zero (DIM): at the start the
    network answers as the pretrained one did, and learns from there how to use the trimap."""
    wider = nn.Conv2d(conv.in_channels + 1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      bias=conv.bias is not None)
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[:, :conv.in_channels] = conv.weight
        if conv.bias is not None:
            wider.bias.copy_(conv.bias)
    return wider


class Refiner(nn.Module):
    """DIM's refinement stage: 3 convolutions (``channels`` wide, ReLU) and a prediction, at full resolution, on the
    image and the first alpha. Its output corrects the first alpha's logit (a residual); it starts at zero."""

    def __init__(self, channels: int = 64):
        super().__init__()
        layers = []
        for c_in in (4, channels, channels):
            layers += [nn.Conv2d(c_in, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers, nn.Conv2d(channels, 1, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, image: torch.Tensor, logit: torch.Tensor) -> torch.Tensor:
        return logit + self.body(torch.cat([image, torch.sigmoid(logit)], dim=1))


class DeepImageMatting(nn.Module):
    """Deep Image Matting: a VGG encoder-decoder with max-unpooling, and the refinement stage.

    ``forward(x)``: ``x`` is (N, 4, H, W), the image and the trimap as 0, 128/255, 1 (``trimap_channel``),
    or with ``with_trimap=False`` the image alone (N, 3, H, W): the same network, trimap-free, to measure what the
    trimap is worth. Training mode returns ``{"alpha": (N, 1, H, W)}`` and, with ``refine=True``, ``"refined"``;
    evaluation mode the final alpha (N, 1, H, W) in [0, 1]. Any H, W of at least 32.

    - ``widths``: ``"vgg16"`` (the paper's) or ``"small"``; ``pretrained``: ImageNet VGG16-BN weights (``"vgg16"``
      only, found offline first through ``course_utils.weights``), the trimap channel's weights starting at zero.
      For a CPU smoke run: ``widths="small", refine_channels=8`` (1.0 M parameters).
    - The paper trains the encoder-decoder first, then the refiner alone, then both:
      ``model.refiner.requires_grad_(False)`` for the first stage, and the reverse for the encoder-decoder.
    """

    def __init__(self, with_trimap: bool = True, widths: str = "vgg16", pretrained: bool = False,
                 refine: bool = True, refine_channels: int = 64):
        super().__init__()
        self.with_trimap = with_trimap
        if pretrained:  # RGB weights, then a 4th input channel that starts at zero (paper)
            self.encoder = VGGEncoder(widths, pretrained=True)
            if with_trimap:
                first = self.encoder.stages[0][0]
                first[0] = _with_trimap_channel(first[0])
        else:
            self.encoder = VGGEncoder(widths, in_channels=4 if with_trimap else 3)
        channels = self.encoder.channels  # after stages 1..5, at 1/2 .. 1/32
        c5 = channels[-1]
        self.conv6 = conv_bn(c5, c5, kernel_size=1)  # the encoder's 14th convolution
        self.decoder6 = conv_bn(c5, c5, kernel_size=1)
        # after each unpooling (to 1/16, 1/8, 1/4, 1/2, 1/1), one 5x5 convolution to the next finer stage's width
        finer = [*reversed(channels[:-1]), channels[0]]
        self.decoder = nn.ModuleList(conv_bn(c_in, c_out, kernel_size=5)
                                     for c_in, c_out in zip(reversed(channels), finer))
        self.predict = nn.Conv2d(channels[0], 1, 5, padding=2)
        self.refiner = Refiner(refine_channels) if refine else None

    def forward(self, x: torch.Tensor):
        expected = 4 if self.with_trimap else 3
        if x.ndim != 4 or x.shape[1] != expected:
            raise ValueError(f"DeepImageMatting(with_trimap={self.with_trimap}) takes (N, {expected}, H, W) inputs "
                             f"({'image + trimap, see trimap_channel()' if self.with_trimap else 'the image'}), "
                             f"not {tuple(x.shape)}")
        if min(x.shape[-2:]) < STRIDE:
            raise ValueError(f"DeepImageMatting needs images of at least {STRIDE}x{STRIDE}, not {tuple(x.shape[-2:])}")
        pooled, indices, sizes = self.encoder(x, return_indices=True)
        y = self.decoder6(self.conv6(pooled[-1]))
        for conv, where, size in zip(self.decoder, reversed(indices), reversed(sizes)):
            y = conv(F.max_unpool2d(y, where, 2, output_size=size))  # each value back where its maximum was
        logit = self.predict(y)
        outputs = {"alpha": torch.sigmoid(logit)}
        if self.refiner is not None:
            outputs["refined"] = torch.sigmoid(self.refiner(x[:, :3], logit))
        if self.training:
            return outputs
        return outputs.get("refined", outputs["alpha"])


def _charbonnier(x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.sqrt(x * x + eps * eps)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.expand_as(values)
    return (values * mask).sum() / mask.sum().clamp(min=1)


def dim_losses(outputs, targets: dict[str, torch.Tensor], alpha_weight: float = DIM_ALPHA_WEIGHT,
               unknown_only: bool = True, eps: float = DIM_EPSILON) -> dict[str, torch.Tensor]:
    """Deep Image Matting's losses, each a mean over the trimap's unknown pixels (``unknown_only=False``: over all
    pixels, for the trimap-free variant, which must also find the known regions).

    ``targets``: ``"alpha"`` and ``"trimap"`` as for ``modnet_losses``; optionally ``"fg"`` and ``"bg"`` (N, 3, H, W),
    the true foreground and background colours.

    - ``"alpha"``: alpha-prediction loss sqrt((a_p - a_g)^2 + eps^2), weighted by ``alpha_weight`` (w_l = 0.5) when
      the compositional loss is there too, else 1;
    - ``"composition"`` (with ``"fg"`` and ``"bg"``): the same on each colour of a_p F + (1 - a_p) B against
      a_g F + (1 - a_g) B, weighted by 1 - w_l;
    - ``"refined"`` (when ``outputs`` has it): the alpha-prediction loss of the refined alpha, as the paper trains
      its refinement stage.
    ``outputs``: the training-mode dict of ``DeepImageMatting``, or a tensor (evaluation mode): then the
    alpha-prediction loss of that alpha alone. A perfect prediction scores eps (1e-6) per term, not 0."""
    predictions = {"alpha": outputs} if isinstance(outputs, torch.Tensor) else outputs
    alpha = _alpha(targets["alpha"])
    mask = unknown_region(targets["trimap"]) if unknown_only else torch.ones_like(alpha)
    predicted = predictions["alpha"].float()
    if predicted.shape != alpha.shape or mask.shape != alpha.shape:
        raise ValueError(f"alpha prediction {tuple(predicted.shape)}, true alpha {tuple(alpha.shape)} and trimap "
                         f"{tuple(mask.shape)} must have the same size (N, 1, H, W)")
    alpha_loss = _masked_mean(_charbonnier(predicted - alpha, eps), mask)
    losses = {"alpha": alpha_loss}
    if "fg" in targets and "bg" in targets:
        fg, bg = targets["fg"].float(), targets["bg"].float()
        difference = (predicted - alpha) * (fg - bg)  # = composite(a_p) - composite(a_g)
        losses = {"alpha": alpha_weight * alpha_loss,
                  "composition": (1 - alpha_weight) * _masked_mean(_charbonnier(difference, eps), mask)}
    if "refined" in predictions:
        losses["refined"] = _masked_mean(_charbonnier(predictions["refined"].float() - alpha, eps), mask)
    return losses


def dim_loss(outputs, targets: dict[str, torch.Tensor], alpha_weight: float = DIM_ALPHA_WEIGHT,
             unknown_only: bool = True, eps: float = DIM_EPSILON) -> torch.Tensor:
    """The sum of ``dim_losses``: the ``loss_fn`` for ``fit``
    (``functools.partial(dim_loss, unknown_only=False)`` for the trimap-free variant)."""
    return sum(dim_losses(outputs, targets, alpha_weight, unknown_only, eps).values())
