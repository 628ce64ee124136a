"""Alpha-matting errors with the Deep Image Matting conventions (Xu et al., CVPR 2017, the Composition-1k test),
as the official MATLAB evaluation released with DIM computes them (``DIM_evaluation_code`` by Ning Xu, 2018:
``compute_sad_loss.m``, ``compute_mse_loss.m``, ``compute_gradient_loss.m`` with ``gaussgradient.m``,
``compute_connectivity_error.m``, and ``evaluate.m``, which divides Grad and Conn by 1000).

**Inputs.** Alpha mattes in [0, 1], numpy arrays or tensors, (H, W) or with one singleton channel ((1, H, W) or
(H, W, 1)). The dtype decides the scale: ``uint8`` is divided by 255 (the MATLAB code reads 8-bit PNGs and divides
by 255), ``bool`` is 0/1, any other dtype is taken as it is and must lie in [0, 1] (rounding errors up to 1e-6 are
clipped): a float matte in 0..255 or a map of logits is refused, not guessed. The trimap has the same shape; its
unknown region is where it equals 128 (Composition-1k trimaps are 0/128/255 PNGs). With a trimap every error is
taken over its unknown region R; without one R is the whole image (trimap-free evaluation, as MODNet's PPM-100
benchmark does).

- **SAD** = Σ_R |p − g| / 1000 (``compute_sad_loss``: "scaled by 1000 due to the large images").
- **MSE** = Σ_R (p − g)² / |R|: the mean over the region's pixels, not over the image (``compute_mse_loss`` divides
  by ``sum(trimap == 128)``).
- **Grad** = Σ_R (|∇p| − |∇g|)² / 1000, with ``gaussgradient(·, 1.4)``: each matte is first rescaled to its own
  min..max (``mat2gray``; no change for a matte that reaches 0 and 1, as Composition-1k truths and trimap-masked
  predictions do; a prediction equal to 0.5·truth has no Grad error), then filtered with h_x(i, j) = G(i)·G′(j),
  G the N(0, σ²) density, σ = 1.4, half-size ceil(σ·√(−2 ln(√(2π)·σ·ε))) with ε = 0.01, i.e. 4 (a 9×9 kernel),
  **scaled to unit L2 norm** (a unit ramp reads ≈ 9.68, not 1), h_y = h_xᵀ, replicated borders;
  |∇| = √(g_x² + g_y²) on the whole image, summed over R.
- **Conn** = Σ_R |φ(p) − φ(g)| / 1000 (Rhemann et al., CVPR 2009). For t = 0.1, 0.2, ..., 1 (step 0.1), Ω_t is the
  largest 4-connected component of the foreground (p ≥ t) & (g ≥ t); a pixel's level l is the threshold just
  before the first t whose Ω_t leaves it out (0 if already out at 0.1; 1 if in every Ω_t). With d = α − l,
  φ(α) = 1 − d·[d ≥ 0.15]. Thresholds are k/10 exactly, so 8-bit ties (153/255 = 0.6) count as ≥, as in MATLAB.

Arithmetic is float64 (MATLAB's is single: agreement to about 6 digits). Official numbers come from 8-bit PNG
predictions: a float prediction differs by its quantisation (≤ 1/510 per pixel). The prediction is scored as given;
DIM-family test scripts often first set it to the trimap's known values (0 where 0, 1 where 255), which changes Grad
and Conn (computed on the whole matte) though not SAD or MSE: do that yourself to compare. Equally large
components: the first in column-major order wins, as with ``bwconncomp``; no component at some t: Ω_t is empty.

**What published Python ports do differently** (read papers' numbers with this in mind):

- Yaoyi Li's port (GCA-Matting ``utils/evaluate.py``, copied by MG-Matting and many others): 0..255 inputs divided by
  255, no ``mat2gray`` in Grad, and Conn's largest component is ``argmax(bincount(labels))`` over all labels
  *including the background 0*, so Ω_t is the background whenever it outnumbers every foreground component; its
  authors find Conn "~5% smaller than MATLAB" on Composition-1k (on other mattes it can be far off either way) and
  ask for MATLAB numbers in papers. MatteFormer ships SAD/MSE only.
- mmagic (mmediting) and PaddleSeg (``ppmatting/metrics/metric.py``): the same kernel through ``cv2.filter2D``
  (correlation, BORDER_REPLICATE; the sign does not matter), min-max normalisation like ``mat2gray``, Conn with
  ``cv2.connectedComponentsWithStats(connectivity=4)`` without the background (as MATLAB), in float32. mmagic
  requires predictions already masked by the trimap and sums SAD over the image; PaddleSeg masks them itself (in
  place) and scores the whole image without a trimap.
- RobustVideoMatting's evaluation and its derivatives: MAD and MSE as whole-image means ×1000, Grad with the DIM
  kernel but no normalisation, no trimap. FBA Matting's table gives MSE ×1000 too (5.4 means 0.0054), as do
  several later papers; others print it unscaled (mmagic's model zoo: DIM 0.0151, GCA 0.0080).
- MODNet (``src/eval.py``, PPM-100): MSE and MAD as plain means over the whole image, no /1000, no trimap.
  MAD = SAD·1000 / |R| here.
- ``scipy.ndimage.gaussian_filter(α, 1.4, order=1)``: a scalar order differentiates along *both* axes (∂²α/∂x∂y, not
  a gradient). With orders (0, 1) and (1, 0) it is a true derivative (a ramp reads 1), so Grad comes out about
  9.68² ≈ 94 times smaller, with a 4σ truncation and 'reflect' borders.
- 8-connectivity (the default of ``cv2.connectedComponents``, ``connectivity=2`` in skimage) joins diagonal
  neighbours into one component, and an MSE divided by H·W instead of |R| on a trimap is much smaller.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import ndimage

SIGMA = 1.4  # compute_gradient_loss.m
CONN_STEP = 0.1  # evaluate.m: compute_connectivity_error(pred, target, trimap, 0.1)
CONN_THETA = 0.15  # compute_connectivity_error.m: d >= 0.15
UNKNOWN = 128  # the unknown value of Composition-1k trimaps
KEYS = ("SAD", "MSE", "Grad", "Conn")
ROUNDING = 1e-6  # how far outside [0, 1] a float matte may stray (rounding) before it is refused


def _numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.is_floating_point() else x  # bf16/fp16 from autocast have no numpy twin
        x = x.numpy()
    a = np.asarray(x)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    elif a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{name} must be one matte (H, W), (1, H, W) or (H, W, 1); found shape {a.shape}")
    return a


def as_alpha(x, name: str = "alpha") -> np.ndarray:
    """The matte as float64 in [0, 1]: uint8 divided by 255, bool as 0/1, other dtypes checked to lie in [0, 1]
    (up to a rounding error of 1e-6, then clipped)."""
    a = _numpy(x, name)
    if a.dtype == np.uint8:
        return a / 255.0
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < -ROUNDING or hi > 1 + ROUNDING:
        raise ValueError(f"{name} must be an alpha matte in [0, 1] (uint8 0..255 is divided by 255); found values in "
                         f"[{lo:.4g}, {hi:.4g}] with dtype {a.dtype}. Divide a float 0..255 matte by 255 (or keep it "
                         f"uint8); apply torch.sigmoid to logits; clamp a clipped-regression output to [0, 1].")
    return np.clip(a, 0, 1)  # only rounding errors are left to clip


def unknown_region(trimap, shape: tuple[int, ...]) -> np.ndarray:
    """The pixels the errors are summed over: trimap == 128, or every pixel without a trimap."""
    if trimap is None:
        return np.ones(shape, dtype=bool)
    t = _numpy(trimap, "trimap")
    if t.shape != shape:
        raise ValueError(f"trimap {t.shape} and alpha {shape} differ in shape")
    region = t == UNKNOWN
    if not region.any():
        values = np.unique(t)
        raise ValueError(f"the trimap has no unknown pixel (value {UNKNOWN}); its values are {values[:8].tolist()}"
                         f"{' ...' if values.size > 8 else ''}. Composition-1k trimaps are 0 (background), 128 "
                         f"(unknown) and 255 (foreground): rescale a 0/0.5/1 or 0/1/2 trimap, and resize trimaps "
                         f"with nearest-neighbour interpolation. For a trimap-free score pass trimap=None.")
    return region


def gauss_gradient_kernels(sigma: float = SIGMA, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """The separable factors of gaussgradient.m's x kernel h_x(i, j) = g[i] · dg[j] (unit L2 norm together):
    ``g`` the Gaussian down the rows, ``dg`` its derivative along the columns, half-size from ``epsilon``."""
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * epsilon)))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dg = -x * g / sigma**2
    norm = math.sqrt(float((g**2).sum() * (dg**2).sum()))  # the L2 norm of the outer product g dgᵀ
    return g, dg / norm


def gradient_magnitude(alpha: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """|∇α| as compute_gradient_loss.m takes it: mat2gray, then gaussgradient's kernels with replicated borders."""
    lo, hi = float(alpha.min()), float(alpha.max())
    a = (alpha - lo) / (hi - lo) if hi > lo else np.zeros_like(alpha)  # mat2gray; a constant matte has no gradient
    g, dg = gauss_gradient_kernels(sigma)
    # imfilter(..., 'replicate', 'conv') with the separable kernel: 'nearest' is replicate, convolve1d convolves
    gx = ndimage.convolve1d(ndimage.convolve1d(a, g, axis=0, mode="nearest"), dg, axis=1, mode="nearest")
    gy = ndimage.convolve1d(ndimage.convolve1d(a, dg, axis=0, mode="nearest"), g, axis=1, mode="nearest")
    return np.sqrt(gx**2 + gy**2)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of the foreground of ``mask`` (empty if there is none). Labelling the
    transpose numbers components in column-major order, so ties go to the one bwconncomp lists first."""
    labels, count = ndimage.label(mask.T)  # the default structure in 2-D is the 4-neighbour cross
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]  # label 0 is the background: left out
    return (labels == int(np.argmax(sizes)) + 1).T


def connectivity_levels(pred: np.ndarray, gt: np.ndarray, step: float = CONN_STEP) -> np.ndarray:
    """Each pixel's level l of compute_connectivity_error.m: the threshold just before the first t at which it
    leaves the largest component of (pred >= t) & (gt >= t); 1 if it never does."""
    n = round(1 / step)
    if n < 1 or abs(n * step - 1) > 1e-9:
        raise ValueError(f"step must divide 1 (0.1, 0.05, ...); got {step}")
    thresholds = np.arange(n + 1) / n  # exact k/n, as MATLAB's 0:step:1 for the 8-bit ties
    level = np.full(pred.shape, -1.0)
    for i in range(1, n + 1):
        omega = _largest_component((pred >= thresholds[i]) & (gt >= thresholds[i]))
        level[(level == -1) & ~omega] = thresholds[i - 1]
    level[level == -1] = 1.0
    return level


def _phi(alpha: np.ndarray, level: np.ndarray) -> np.ndarray:
    d = alpha - level
    return 1 - d * (d >= CONN_THETA)


def matting_errors(pred_alpha, gt_alpha, trimap=None) -> dict[str, float]:
    """SAD, MSE, Grad and Conn of one predicted matte against the truth, over the trimap's unknown region (128) or
    the whole image without a trimap, with the DIM/Composition-1k conventions (see the module docstring)."""
    pred, gt = as_alpha(pred_alpha, "pred_alpha"), as_alpha(gt_alpha, "gt_alpha")
    if pred.shape != gt.shape:
        raise ValueError(f"pred_alpha {pred.shape} and gt_alpha {gt.shape} differ in shape; resize the prediction "
                         f"to the truth's size before scoring")
    region = unknown_region(trimap, gt.shape)
    diff = (pred - gt)[region]
    grad = (gradient_magnitude(pred) - gradient_magnitude(gt))[region]
    level = connectivity_levels(pred, gt)
    conn = np.abs(_phi(pred, level) - _phi(gt, level))[region]
    return {"SAD": float(np.abs(diff).sum() / 1000), "MSE": float((diff**2).mean()),
            "Grad": float((grad**2).sum() / 1000), "Conn": float(conn.sum() / 1000)}


def _batch(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.is_floating_point() else x
        x = x.numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a tensor or array of mattes, (N, H, W) or (N, 1, H, W); found {type(x)}. "
                        f"A model that returns several outputs (MODNet's semantic, detail and fused mattes) should "
                        f"return the final matte alone in evaluation mode")
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3:
        raise ValueError(f"{name} must be a batch of mattes (N, H, W) or (N, 1, H, W); found shape {x.shape}")
    return x


class MattingErrors:
    """The mean SAD, MSE, Grad and Conn per image over a split, for ``train.evaluate``/``fit``
    (``reset``/``update(outputs, targets)``/``compute``), each image scored by ``matting_errors``.

    ``outputs``: the model's alphas (N, 1, H, W) in [0, 1] at the truth's size (apply the sigmoid in the model;
    logits are refused, not guessed). ``targets``: ``{"alpha": (N, H, W) or (N, 1, H, W), float in [0, 1] or uint8,
    "trimap": optional, same shape, 128 = unknown}``. ``compute()`` returns the mean SAD (lower is better: give
    ``fit`` ``mode="min"`` when it monitors this metric), ``result()`` the dict of all four means.

    ``use_trimap=False`` scores whole images even when the targets carry a trimap (a trimap-free model such as
    MODNet, whose training targets need the trimap for the loss's transition band)."""

    state = ("totals", "count")  # the totals, added up over processes by distributed.merge_metric

    def __init__(self, use_trimap: bool = True):
        self.use_trimap = use_trimap
        self.reset()

    def reset(self) -> None:
        self.totals = dict.fromkeys(KEYS, 0.0)
        self.count = 0

    def update(self, outputs, targets) -> None:
        pred = _batch(outputs, "outputs")
        gt = _batch(targets["alpha"], 'targets["alpha"]')
        trimap = targets.get("trimap") if self.use_trimap else None
        trimap = None if trimap is None else _batch(trimap, 'targets["trimap"]')
        if pred.shape != gt.shape or (trimap is not None and trimap.shape != gt.shape):
            raise ValueError(f"outputs {pred.shape}, alpha {gt.shape} and trimap "
                             f"{None if trimap is None else trimap.shape} must agree (after dropping the channel); "
                             f"upsample the prediction to the truth's size")
        for i in range(len(gt)):
            errors = matting_errors(pred[i], gt[i], None if trimap is None else trimap[i])
            for key in KEYS:
                self.totals[key] += errors[key]
            self.count += 1

    def result(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("MattingErrors has seen no image: call update before compute/result")
        return {key: total / self.count for key, total in self.totals.items()}

    def compute(self) -> float:
        return self.result()["SAD"]
