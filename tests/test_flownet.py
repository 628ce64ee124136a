"""FlowNetS (course_utils/models/flownet.py): shapes at odd sizes, the paper's widths and parameter count, the units
of the flows, the multi-scale loss against hand-computed values and against the official (Caffe) per-pixel sums,
the valid mask, and a short training run on translated textures that must beat zero flow."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from course_utils import train
from course_utils.metrics import EPEMetric, epe
from course_utils.models.flownet import (
    OFFICIAL_WEIGHTS,
    PAPER_CHANNELS,
    SCALE_WEIGHTS,
    SMOKE_CHANNELS,
    FlowNetS,
    downsample_flow,
    multiscale_loss,
    per_pixel_weights,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def all_valid(flow: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"flow": flow, "valid": torch.ones_like(flow[:, 0], dtype=torch.bool)}


@pytest.mark.parametrize("height, width", [(64, 96), (70, 100)])
def test_shapes_in_training_and_evaluation_mode_at_sizes_that_are_not_multiples_of_64(height, width):
    torch.manual_seed(0)
    model = FlowNetS(SMOKE_CHANNELS)
    pairs = torch.rand(2, 2, 3, height, width)
    flows = model.train()(pairs)
    # flow2 .. flow6, finest first: the encoder halves the size rounding up, from 1/4 to 1/64
    expected = [(2, 2, math.ceil(height / 2**k), math.ceil(width / 2**k)) for k in range(2, 7)]
    assert [tuple(f.shape) for f in flows] == expected
    model.eval()
    with torch.no_grad():
        out = model(pairs)
        assert out.shape == (2, 2, height, width) and torch.isfinite(out).all()
        # the six channels stacked by hand (frame 1's RGB, then frame 2's) are the same input
        assert torch.allclose(model(pairs.flatten(1, 2)), out, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 2, 3, H, W\) or \(N, 6, H, W\)"):
        model(torch.rand(2, 3, height, width))


def test_the_paper_width_network():
    model = FlowNetS()  # PAPER_CHANNELS
    assert PAPER_CHANNELS == (64, 128, 256, 512, 512, 1024)
    # flownet2-pytorch's networks/FlowNetS.py states "Parameter count : 38,676,504" (2 fewer; see the docstring)
    assert count(model) == 38_676_506
    # the concatenations at 1/32 .. 1/4: encoder skip + up-convolved features + 2 flow channels, as in the
    # official code (flownet2-pytorch's and ClementPinard's FlowNetS.py)
    assert [refine.predict_flow.in_channels for refine in model.decoder] == [1026, 770, 386, 194]
    assert [refine.deconv[0].out_channels for refine in model.decoder] == [512, 256, 128, 64]
    assert 200_000 < count(FlowNetS(SMOKE_CHANNELS)) < 500_000


def test_flows_are_in_input_pixels_at_every_scale():
    """The layers predict flow / 20; the outputs are that times 20, and resizing to the input changes the grid only:
    a constant flow of (2, -1) px at 1/4 becomes (2, -1) px everywhere at full size, not (8, -4)."""
    model = FlowNetS(SMOKE_CHANNELS)
    heads = [model.predict_flow6] + [refine.predict_flow for refine in model.decoder]
    with torch.no_grad():
        for head in heads:
            head.weight.zero_()
            head.bias.zero_()
        for refine in model.decoder:
            refine.upsample_flow.weight.zero_()
        model.decoder[-1].predict_flow.bias.copy_(torch.tensor([0.1, -0.05]))  # flow2 / 20
        pairs = torch.rand(1, 2, 3, 64, 96)
        flows = model.train()(pairs)
        assert torch.allclose(flows[0], torch.tensor([2.0, -1.0]).view(1, 2, 1, 1).expand(1, 2, 16, 24))
        assert all(f.abs().max() == 0 for f in flows[1:])
        out = model.eval()(pairs)
    assert out.shape == (1, 2, 64, 96)
    assert torch.allclose(out, torch.tensor([2.0, -1.0]).view(1, 2, 1, 1).expand(1, 2, 64, 96))


def test_the_weights_are_finest_first_and_restate_the_official_per_pixel_sums():
    assert OFFICIAL_WEIGHTS == (0.005, 0.01, 0.02, 0.08, 0.32)  # flow2 (1/4) .. flow6 (1/64)
    assert list(SCALE_WEIGHTS) == pytest.approx([4 / 9, 2 / 9, 1 / 9, 1 / 9, 1 / 9])
    assert per_pixel_weights((1, 4, 16, 64, 256)) == pytest.approx((0.2,) * 5)
    # every scale right except one, wrong by (3, 4) = 5 px everywhere: the loss is that scale's weight times 5
    flow = torch.randn(2, 2, 64, 128)
    truths = [downsample_flow(flow, torch.ones(2, 64, 128, dtype=torch.bool), (64 // 2**k, 128 // 2**k))[0]
              for k in range(2, 7)]
    for wrong in range(5):
        outputs = [t + (torch.tensor([3.0, 4.0]).view(1, 2, 1, 1) if k == wrong else 0) for k, t in enumerate(truths)]
        assert multiscale_loss(outputs, all_valid(flow)).item() == pytest.approx(SCALE_WEIGHTS[wrong] * 5, rel=1e-5)


def test_the_loss_is_proportional_to_the_official_loss_of_per_image_sums():
    """Caffe's L1Loss (l2_per_location) sums each scale's EPE over its pixels and divides by the batch size; at a
    size that is a multiple of 64 our loss is that divided by (pixels of flow2) x sum_k(w_k / 4**k)."""
    torch.manual_seed(0)
    flow = torch.randn(3, 2, 128, 192) * 4
    outputs = [torch.randn(3, 2, 128 // 2**k, 192 // 2**k) * 4 for k in range(2, 7)]
    official = 0.0
    for weight, pred in zip(OFFICIAL_WEIGHTS, outputs):
        truth = F.avg_pool2d(flow, 128 // pred.shape[-2])  # each cell: the mean of the pixels it covers
        official += weight * (pred - truth).norm(dim=1).sum().item() / 3
    constant = (128 // 4) * (192 // 4) * sum(w / 4**k for k, w in enumerate(OFFICIAL_WEIGHTS))
    assert multiscale_loss(outputs, all_valid(flow)).item() * constant == pytest.approx(official, rel=1e-5)


def test_the_loss_is_zero_for_a_perfect_prediction():
    torch.manual_seed(0)
    flow = torch.randn(2, 2, 70, 100) * 3
    valid = torch.rand(2, 70, 100) > 0.2
    sizes = [(math.ceil(70 / 2**k), math.ceil(100 / 2**k)) for k in range(2, 7)]
    truths = [downsample_flow(flow, valid, size)[0] for size in sizes]
    target = {"flow": flow, "valid": valid}
    assert multiscale_loss(truths, target).item() == pytest.approx(0, abs=1e-6)
    assert multiscale_loss(flow.clone(), target).item() == 0  # evaluation mode: one full-size flow


def test_the_evaluation_loss_and_the_metric_are_the_hand_computed_epe_over_valid_pixels():
    # errors (3, 4) -> 5, (0, 1) -> 1, (1, 0) -> 1 and, at the invalid pixel, garbage that must not count
    truth = torch.tensor([[[3.0, 0.0], [1.0, 1e10]], [[4.0, 1.0], [0.0, float("nan")]]])[None]
    valid = torch.tensor([[[True, True], [True, False]]])
    pred = torch.zeros(1, 2, 2, 2)
    target = {"flow": truth, "valid": valid}
    assert multiscale_loss(pred, target).item() == pytest.approx(7 / 3)
    metric = EPEMetric()
    metric.update(pred, target)
    metric.update(pred + torch.tensor([3.0, 4.0]).view(1, 2, 1, 1), target)  # differences (0, 0), (3, 3), (2, 4)
    second = torch.tensor([0.0, 18.0, 20.0]).sqrt()
    assert metric.compute() == pytest.approx((7 + second.sum().item()) / 6)
    # the pooled mean is what metrics.epe gives on all pixels at once ("EPE all")
    both = torch.cat([pred, pred + torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)])
    assert metric.compute() == pytest.approx(epe(both, torch.cat([truth, truth]), torch.cat([valid, valid]))["EPE"])
    metric.reset()
    with pytest.raises(ValueError, match="no valid pixel"):
        metric.compute()
    with pytest.raises(ValueError, match="eval mode"):
        metric.update([pred], target)


def test_invalid_pixels_are_ignored_at_every_scale():
    torch.manual_seed(0)
    flow = torch.randn(2, 2, 64, 96)
    valid = torch.ones(2, 64, 96, dtype=torch.bool)
    valid[:, :20] = False  # the top rows have no truth (as KITTI's sky)
    outputs = [torch.randn(2, 2, 64 // 2**k, 96 // 2**k) for k in range(2, 7)]
    garbage = flow.clone()
    garbage[:, :, :20] = 1e10
    garbage[0, :, :5] = float("nan")
    assert multiscale_loss(outputs, {"flow": garbage, "valid": valid}).item() == pytest.approx(
        multiscale_loss(outputs, {"flow": flow, "valid": valid}).item())
    assert torch.isfinite(multiscale_loss(outputs, {"flow": garbage, "valid": valid}))
    # a batch without any valid pixel adds nothing (instead of NaN)
    assert multiscale_loss(outputs, {"flow": flow, "valid": torch.zeros_like(valid)}).item() == 0


def test_downsampling_the_truth():
    # a constant flow stays that flow at every scale, with garbage at a third of the pixels (invalid) or not
    flow = torch.tensor([2.5, -1.0]).view(1, 2, 1, 1).expand(1, 2, 70, 100).clone()
    for valid in [torch.ones(1, 70, 100, dtype=torch.bool),
                  torch.rand(1, 70, 100, generator=torch.Generator().manual_seed(0)) > 0.3]:
        garbage = torch.where(valid[:, None], flow, float("nan"))
        for size in [(18, 25), (5, 7), (2, 2)]:
            coarse, coarse_valid = downsample_flow(garbage, valid, size)
            assert coarse.shape == (1, 2, *size) and coarse_valid.float().mean() > 0.9
            assert torch.allclose(coarse, torch.tensor([2.5, -1.0]).view(1, 2, 1, 1).expand(1, 2, *size))
    # 4x4 -> 2x2 by hand: the mean of the valid pixels of each cell; valid when at least half of them are
    u = torch.tensor([[1.0, 1, 2, 4], [1, 1, 0, 0], [8, 0, 0, 0], [0, 0, 0, 0]])
    valid = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    coarse, coarse_valid = downsample_flow(torch.stack([u, -u])[None], valid[None], (2, 2))
    assert coarse[0, 0].tolist() == [[1.0, 3.0], [8.0, 0.0]]  # 4 of 4, 2 of 4 (2 and 4), 1 of 4, none
    assert coarse_valid[0].tolist() == [[True, True], [False, False]]


class TranslatedTextures(Dataset):
    """Pairs of 32x48 random smooth textures, the second moved by a whole number of pixels (u, v) in [-3, 3]: frame
    2 at x + (u, v) shows what frame 1 shows at x, so the flow is (u, v) everywhere. Fresh pairs every time."""

    def __init__(self, n: int, seed: int, size: tuple[int, int] = (32, 48), shift: int = 3):
        self.n, self.seed, self.size, self.shift = n, seed, size, shift

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        gen = torch.Generator().manual_seed(self.seed * 100_000 + i)
        (h, w), m = self.size, self.shift
        big = F.interpolate(torch.rand(1, 3, (h + 2 * m) // 4 + 1, (w + 2 * m) // 4 + 1, generator=gen),
                            scale_factor=4, mode="bilinear")[0]
        big = 0.8 * big + 0.2 * torch.rand(big.shape, generator=gen)
        u, v = torch.randint(-m, m + 1, (2,), generator=gen).tolist()
        first, second = big[:, m:m + h, m:m + w], big[:, m - v:m - v + h, m - u:m - u + w]
        flow = torch.tensor([float(u), float(v)]).view(2, 1, 1).expand(2, h, w).clone()
        return torch.stack([first, second]), {"flow": flow, "valid": torch.ones(h, w, dtype=torch.bool)}


def test_translated_textures_have_the_flow_they_claim():
    pairs, target = TranslatedTextures(4, seed=3)[1]
    u, v = target["flow"][:, 0, 0].long().tolist()
    # frame 1 at (y, x) is frame 2 at (y + v, x + u), wherever both are inside
    assert torch.equal(pairs[0][:, 3:-3, 3:-3], pairs[1][:, 3 + v:29 + v, 3 + u:45 + u])


def test_a_short_training_beats_zero_flow(tmp_path):
    torch.manual_seed(0)
    model = FlowNetS(SMOKE_CHANNELS)
    train_loader = DataLoader(TranslatedTextures(320, seed=1), batch_size=8, shuffle=True)
    val_loader = DataLoader(TranslatedTextures(32, seed=2), batch_size=8)
    zero_flow = EPEMetric()
    for _, target in val_loader:
        zero_flow.update(torch.zeros_like(target["flow"]), target)
    history = train.fit(model, train_loader, val_loader, multiscale_loss, torch.optim.Adam(model.parameters(), 2e-3),
                        epochs=2, checkpoint_dir=tmp_path, metrics={"EPE": EPEMetric()}, device=torch.device("cpu"),
                        progress=False)
    last = history[-1]
    # evaluation mode: the loss is the EPE of the full-size flow; with equal batches, the batch mean is the pooled one
    assert last["val_loss"] == pytest.approx(last["EPE"], rel=1e-4)
    assert zero_flow.compute() > 2  # the mean length of the shifts
    assert last["EPE"] < 0.7 * zero_flow.compute(), (last, zero_flow.compute())
