"""Matting errors (course_utils/metrics/matting.py) on hand cases, each value derived in a comment, following the
Deep Image Matting MATLAB evaluation (compute_sad_loss, compute_mse_loss, compute_gradient_loss with gaussgradient,
compute_connectivity_error; Grad and Conn / 1000 as evaluate.m does)."""

import math

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from course_utils import train
from course_utils.metrics.matting import (
    MattingErrors,
    connectivity_levels,
    gauss_gradient_kernels,
    gradient_magnitude,
    matting_errors,
)


def soft_disc(h: int = 32, w: int = 40) -> np.ndarray:
    """A disc of alpha 1 with a 4-pixel linear fall-off to 0: flat foreground, soft edge, flat background."""
    y, x = np.mgrid[:h, :w]
    r = np.hypot(y - h / 2, x - w / 2)
    return np.clip((12 - r) / 4, 0, 1)


def band_trimap(alpha: np.ndarray) -> np.ndarray:
    """0 where alpha is 0, 255 where it is 1, 128 (unknown) in between."""
    trimap = np.full(alpha.shape, 128, np.uint8)
    trimap[alpha == 0] = 0
    trimap[alpha == 1] = 255
    return trimap


def test_a_perfect_prediction_scores_zero():
    gt = soft_disc()
    for trimap in (None, band_trimap(gt)):
        assert matting_errors(gt.copy(), gt, trimap) == {"SAD": 0.0, "MSE": 0.0, "Grad": 0.0, "Conn": 0.0}


def test_a_constant_offset_gives_known_sad_and_mse_and_no_gradient_error():
    gt = 0.8 * soft_disc()  # in [0, 0.8]: the offset prediction stays in [0, 1]
    pred = gt + 0.1
    n = gt.size  # 32 * 40 = 1280 pixels, each off by 0.1
    errors = matting_errors(pred, gt)
    assert errors["SAD"] == pytest.approx(n * 0.1 / 1000)  # 0.128
    assert errors["MSE"] == pytest.approx(0.01)  # the mean of 0.1², whatever the number of pixels
    # the derivative kernels sum to zero, so a constant adds nothing to the gradient (in flat regions it stays 0,
    # at the edge it is unchanged), and mat2gray maps [0.1, 0.9] and [0, 0.8] onto the same [0, 1] matte
    assert np.allclose(gradient_magnitude(pred), gradient_magnitude(gt), atol=1e-12)
    assert errors["Grad"] == pytest.approx(0, abs=1e-12)


def test_mse_is_the_mean_over_the_unknown_region_and_the_trimap_restricts_every_error():
    gt = np.zeros((10, 10))
    pred = np.zeros((10, 10))
    trimap = np.zeros((10, 10), np.uint8)
    trimap[:, :5] = 128  # 50 unknown pixels on the left, 50 known background pixels on the right
    pred[0, :4] = 0.5  # 4 errors of 0.5 inside the unknown region
    pred[5:, 7:] = 1.0  # 15 errors of 1.0 in the known region: ignored with the trimap
    restricted = matting_errors(pred, gt, trimap)
    assert restricted["SAD"] == pytest.approx(4 * 0.5 / 1000)
    assert restricted["MSE"] == pytest.approx(4 * 0.25 / 50)  # divided by |unknown| = 50, not by 100 pixels
    whole = matting_errors(pred, gt)
    assert whole["SAD"] == pytest.approx((4 * 0.5 + 15 * 1.0) / 1000)
    assert whole["MSE"] == pytest.approx((4 * 0.25 + 15 * 1.0) / 100)
    # Grad and Conn are computed on the whole matte, then summed over the region: the region's sum is smaller
    assert 0 < restricted["Grad"] < whole["Grad"]
    assert 0 < restricted["Conn"] < whole["Conn"]


def test_uint8_is_divided_by_255_and_tensors_equal_arrays():
    rng = np.random.default_rng(0)
    gt8 = (255 * soft_disc()).round().astype(np.uint8)
    pred8 = np.clip(gt8.astype(int) + rng.integers(-40, 41, gt8.shape), 0, 255).astype(np.uint8)
    trimap = band_trimap(gt8 / 255)
    from_uint8 = matting_errors(pred8, gt8, trimap)
    assert from_uint8 == matting_errors(pred8 / 255, gt8 / 255, trimap)
    as_tensors = matting_errors(torch.from_numpy(pred8)[None], torch.from_numpy(gt8)[None], torch.from_numpy(trimap))
    assert as_tensors == pytest.approx(from_uint8)  # (1, H, W) tensors: the channel is dropped
    assert all(value > 0 for value in from_uint8.values())


def test_inputs_are_checked():
    gt = soft_disc()
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        matting_errors(255 * gt, gt)  # a float matte in 0..255 is refused, not guessed
    with pytest.raises(ValueError, match="differ in shape"):
        matting_errors(gt[:-1], gt)
    with pytest.raises(ValueError, match="no unknown pixel"):
        matting_errors(gt, gt, band_trimap(gt) / 255)  # a 0/0.5/1 trimap has no 128


def test_gaussgradient_kernel_as_the_matlab_code_builds_it():
    sigma, eps = 1.4, 1e-2
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * eps)))
    assert half == 4  # ceil(3.62): a 9 x 9 kernel
    g, dg = gauss_gradient_kernels()
    assert len(g) == len(dg) == 9
    # gaussgradient.m written out: hx(i, j) = gauss(i) * dgauss(j), divided by its L2 norm, imfilter 'replicate' 'conv'
    hx = np.zeros((9, 9))
    for i in range(9):
        for j in range(9):
            u, v = i - 4, j - 4
            gauss_u = math.exp(-(u**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            gauss_v = math.exp(-(v**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
            hx[i, j] = gauss_u * (-v * gauss_v / sigma**2)
    hx /= math.sqrt((hx**2).sum())
    assert np.allclose(np.outer(g, dg), hx)
    alpha = soft_disc()  # reaches 0 and 1, so mat2gray leaves it unchanged
    gx = ndimage.convolve(alpha, hx, mode="nearest")
    gy = ndimage.convolve(alpha, hx.T, mode="nearest")
    assert np.allclose(gradient_magnitude(alpha), np.hypot(gx, gy))
    # a unit-norm kernel is not a unit-gain derivative: a ramp of slope s reads s · (−Σ j·dg[j]) · Σ g ≈ 9.68 s
    ramp = np.tile(np.linspace(0, 1, 41), (20, 1))  # slope 1/40 per pixel
    gain = -(np.arange(-4, 5) * dg).sum() * g.sum()
    assert gain == pytest.approx(9.684, abs=1e-3)
    assert gradient_magnitude(ramp)[10, 20] == pytest.approx(gain / 40)


def test_grad_is_positive_for_a_blurred_prediction():
    gt = np.zeros((30, 30))
    gt[:, 15:] = 1.0  # a sharp vertical edge
    blurred = ndimage.gaussian_filter(gt, 2.0)  # still 0 and 1 far from the edge
    trimap = np.zeros((30, 30), np.uint8)
    trimap[:, 10:20] = 128  # the band around the edge
    assert matting_errors(blurred, gt, trimap)["Grad"] > 0
    far = np.zeros((30, 30), np.uint8)
    far[:, :3] = 128  # 12+ pixels from the edge: the blur and both kernels have died out there
    assert matting_errors(blurred, gt, far)["Grad"] == pytest.approx(0, abs=1e-12)


def test_grad_rescales_each_matte_to_its_own_range_as_mat2gray_does():
    gt = soft_disc()
    half = 0.5 * gt  # a half-transparent copy: mat2gray stretches it back onto gt, so only SAD and MSE see it
    errors = matting_errors(half, gt)
    assert errors["Grad"] == pytest.approx(0, abs=1e-12)
    assert errors["SAD"] == pytest.approx(0.5 * gt.sum() / 1000)


def matlab_connectivity(pred8, gt8, trimap, step=0.1):
    """compute_connectivity_error.m transcribed independently: single precision, OpenCV's 4-connected components,
    the background label left out, then / 1000 as evaluate.m does."""
    pred, gt = pred8.astype(np.float32) / 255, gt8.astype(np.float32) / 255
    thresholds = np.arange(0, 1 + step / 2, step)
    level = -np.ones(pred.shape)
    for i in range(1, len(thresholds)):
        both = ((pred >= thresholds[i]) & (gt >= thresholds[i])).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(both, connectivity=4)
        omega = labels == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA]) if count > 1 else np.zeros(pred.shape, bool)
        level[(level == -1) & ~omega] = thresholds[i - 1]
    level[level == -1] = 1
    pred_d, gt_d = pred - level, gt - level
    pred_phi, gt_phi = 1 - pred_d * (pred_d >= 0.15), 1 - gt_d * (gt_d >= 0.15)
    return np.abs(pred_phi - gt_phi)[trimap == 128].sum() / 1000


def test_conn_equals_an_independent_transcription_of_the_matlab_code():
    rng = np.random.default_rng(2)
    gt = soft_disc(60, 80)
    gt8 = (255 * gt).round().astype(np.uint8)
    noise = ndimage.gaussian_filter(rng.normal(0, 1, gt.shape), 2) * 150  # blobs of error, some cut off the body
    pred8 = np.clip(255 * gt + noise, 0, 255).round().astype(np.uint8)
    trimap = band_trimap(gt8 / 255)
    for region in (trimap, np.full(gt.shape, 128, np.uint8)):
        expected = matlab_connectivity(pred8, gt8, region)
        assert expected > 0
        assert matting_errors(pred8, gt8, region)["Conn"] == pytest.approx(expected, rel=1e-5)


def test_conn_levels_use_the_largest_4_connected_foreground_component():
    alpha = np.zeros((6, 6))
    alpha[0:3, 0:3] = 1.0  # a 3 x 3 block
    alpha[3, 3] = 1.0  # touches the block's corner (2, 2) diagonally only
    levels = connectivity_levels(alpha, alpha)
    assert np.all(levels[0:3, 0:3] == 1.0)  # in the largest component at every threshold: level 1
    assert levels[3, 3] == 0.0  # another 4-connected component from t = 0.1 on: level 0 (8-connectivity: 1)
    assert levels[5, 5] == 0.0  # background: not in the foreground at t = 0.1
    # two equally large components: the first in column-major order wins, as with MATLAB's bwconncomp
    tie = np.zeros((4, 4))
    tie[0, 2:4] = 1.0  # top right: first in row-major order
    tie[2:4, 0] = 1.0  # bottom left: first in column-major order
    levels = connectivity_levels(tie, tie)
    assert np.all(levels[2:4, 0] == 1.0)
    assert np.all(levels[0, 2:4] == 0.0)


def test_conn_penalises_a_region_disconnected_from_the_body():
    # rows of [body 1 1 1 | soft 0.6 0.6 0.6 | background 0], three rows
    gt = np.tile([1.0, 1.0, 1.0, 0.6, 0.6, 0.6, 0.0], (3, 1))
    # connected: the soft part 0.1 too opaque in columns 4-5. For t <= 0.6 the intersection is columns 0-5 (one
    # component), from 0.7 columns 0-2: level 0.6 in columns 3-5, so d = 0.1 < 0.15 for the prediction and d = 0
    # for the truth: φ = 1 for both, no Conn error although SAD = 6 pixels · 0.1 / 1000
    connected = np.tile([1.0, 1.0, 1.0, 0.6, 0.7, 0.7, 0.0], (3, 1))
    errors = matting_errors(connected, gt)
    assert errors["SAD"] == pytest.approx(0.0006)
    assert errors["Conn"] == pytest.approx(0, abs=1e-12)
    # a gap in column 3 cuts columns 4-5 off the body: the largest component at t = 0.1 is columns 0-2 (9 pixels
    # against 6), so columns 3-6 get level 0 and d = α: column 3 |(1 - 0) - (1 - 0.6)| = 0.6, columns 4-5
    # |(1 - 0.7) - (1 - 0.6)| = 0.1 each; Conn = 3 rows · 0.8 / 1000
    gap = np.tile([1.0, 1.0, 1.0, 0.0, 0.7, 0.7, 0.0], (3, 1))
    assert connectivity_levels(gap, gt)[0].tolist() == [1, 1, 1, 0, 0, 0, 0]
    assert matting_errors(gap, gt)["Conn"] == pytest.approx(0.0024)
    # the same SAD (0.0024) without the gap: the 0.6 error moves to the background column 6 (level 0: φ 0.4 vs
    # 1), the soft part stays connected and forgiven: Conn = 3 · 0.6 / 1000, lower than with the gap
    no_gap = np.tile([1.0, 1.0, 1.0, 0.6, 0.7, 0.7, 0.6], (3, 1))
    no_gap_errors = matting_errors(no_gap, gt)
    assert no_gap_errors["SAD"] == pytest.approx(matting_errors(gap, gt)["SAD"])
    assert no_gap_errors["Conn"] == pytest.approx(0.0018)


def test_the_accumulating_class_equals_the_function():
    rng = np.random.default_rng(1)
    gt = np.stack([soft_disc(), soft_disc()[::-1], np.roll(soft_disc(), 5, axis=1)])  # (3, H, W)
    pred = np.clip(gt + rng.normal(0, 0.1, gt.shape), 0, 1)
    trimap = np.stack([band_trimap(a) for a in gt])
    expected = [matting_errors(p, g, t) for p, g, t in zip(pred, gt, trimap, strict=True)]
    metric = MattingErrors()
    metric.update(torch.from_numpy(pred[:2, None]).float(), {"alpha": torch.from_numpy(gt[:2]),
                                                             "trimap": torch.from_numpy(trimap[:2])})
    metric.update(torch.from_numpy(pred[2:, None]).float(), {"alpha": torch.from_numpy(gt[2:, None]),
                                                             "trimap": torch.from_numpy(trimap[2:, None])})
    means = {key: np.mean([e[key] for e in expected]) for key in ("SAD", "MSE", "Grad", "Conn")}
    assert metric.result() == pytest.approx(means, rel=1e-5)  # float32 outputs against float64 arrays
    assert metric.compute() == pytest.approx(means["SAD"], rel=1e-5)
    whole = MattingErrors(use_trimap=False)  # a trimap-free model: whole images, though the targets carry trimaps
    whole.update(torch.from_numpy(pred[:, None]).float(), {"alpha": torch.from_numpy(gt),
                                                           "trimap": torch.from_numpy(trimap)})
    assert whole.compute() == pytest.approx(np.mean([matting_errors(p, g)["SAD"] for p, g in zip(pred, gt)]),
                                            rel=1e-5)
    assert whole.compute() > metric.compute()  # the whole image holds the band and more
    metric.reset()
    with pytest.raises(ValueError, match="no image"):
        metric.compute()
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        metric.update(torch.full((1, 1, 32, 40), 3.0), {"alpha": torch.from_numpy(gt[:1])})  # logits are refused


def test_the_class_runs_inside_train_evaluate():
    gt = torch.from_numpy(np.stack([soft_disc(), soft_disc()[::-1]])).float()

    class Blur(torch.nn.Module):  # returns a blurred copy of its input matte, (N, 1, H, W) in [0, 1]
        def __init__(self):
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    loader = [(gt[:, None], {"alpha": gt})]
    scores = train.evaluate(Blur(), loader, metrics={"SAD": MattingErrors()}, device=torch.device("cpu"))
    blurred = Blur()(gt[:, None]).detach().numpy()[:, 0]
    expected = np.mean([matting_errors(b, g)["SAD"] for b, g in zip(blurred, gt.numpy(), strict=True)])
    assert scores["SAD"] == pytest.approx(expected, rel=1e-6)
