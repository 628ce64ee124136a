import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.models.matting import (
    DeepImageMatting,
    MODNet,
    _with_trimap_channel,
    dim_loss,
    dim_losses,
    modnet_loss,
    modnet_losses,
    pad_to_multiple,
    semantic_target,
    soc_losses,
    trimap_channel,
    unknown_region,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread

TINY = dict(encoder="tu-lcnet_035", hr_channels=8)  # 0.2 M parameters, random weights
SMALL_DIM = dict(widths="small", refine_channels=8)


def soft_disks(n: int, size: int = 64, seed: int = 0):
    """``n`` soft-edged reddish disks (edge ramps 1-5 px wide) over smooth random backgrounds whose red stays low.
    Returns the images (n, 3, size, size) and the targets: alpha (n, size, size) floats, trimap uint8 0/128/255
    (the band: the ramp and 3 px on each side), fg and bg (n, 3, size, size)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    cy, cx = (0.3 + 0.4 * rand(n, 1, 1)) * size, (0.3 + 0.4 * rand(n, 1, 1)) * size
    radius, ramp = (0.15 + 0.12 * rand(n, 1, 1)) * size, 1 + 4 * rand(n, 1, 1)
    dist = ((yy - cy) ** 2 + (xx - cx) ** 2).sqrt()
    alpha = ((radius - dist) / ramp + 0.5).clamp(0, 1)
    trimap = torch.where(alpha > 0, 255, 0).to(torch.uint8)
    trimap[(dist - radius).abs() < ramp / 2 + 3] = 128
    colour = torch.stack([0.7 + 0.3 * rand(n, 1, 1), 0.2 * rand(n, 1, 1), 0.1 + 0.2 * rand(n, 1, 1)], dim=1)
    fg = colour + 0.05 * torch.randn(n, 3, size, size, generator=g)
    bg = F.interpolate(rand(n, 3, 8, 8), size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    bg = bg * torch.tensor([0.5, 0.9, 0.9]).view(1, 3, 1, 1)
    image = alpha[:, None] * fg + (1 - alpha[:, None]) * bg
    return image, {"alpha": alpha, "trimap": trimap, "fg": fg, "bg": bg}


def in_unit_range(x: torch.Tensor) -> bool:
    return bool(((x >= 0) & (x <= 1)).all())


def perfect_modnet_outputs(alpha: torch.Tensor) -> dict[str, torch.Tensor]:
    alpha = alpha[:, None]
    size = (alpha.shape[-2] // 16, alpha.shape[-1] // 16)
    return {"semantic": semantic_target(alpha, size), "detail": alpha.clone(), "matte": alpha.clone()}


# ---------------------------------------------------------------------------------------------------------------
# MODNet
# ---------------------------------------------------------------------------------------------------------------

def test_modnet_shapes_and_ranges_in_train_and_eval_mode():
    torch.manual_seed(0)
    model = MODNet(**TINY)
    image = torch.randn(2, 3, 64, 96)
    out = {key: value.detach() for key, value in model.train()(image).items()}
    assert set(out) == {"semantic", "detail", "matte"}
    assert out["semantic"].shape == (2, 1, 4, 6)
    assert out["detail"].shape == out["matte"].shape == (2, 1, 64, 96)
    for value in out.values():
        assert in_unit_range(value)
    with torch.no_grad():
        matte = model.eval()(image)
        assert isinstance(matte, torch.Tensor) and matte.shape == (2, 1, 64, 96)
        assert in_unit_range(matte)
        heads = model(image, heads=True)  # what SOC asks of its frozen copy
        assert torch.allclose(heads["matte"], matte)


def test_modnet_rejects_sizes_that_are_not_multiples_of_32_and_pad_to_multiple_fixes_them():
    model = MODNet(**TINY).eval()
    image = torch.rand(1, 3, 50, 70)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(image)
    padded, (h, w) = pad_to_multiple(image)
    assert padded.shape == (1, 3, 64, 96) and (h, w) == (50, 70)
    assert torch.equal(padded[..., :h, :w], image)
    with torch.no_grad():
        assert model(padded)[..., :h, :w].shape == (1, 1, 50, 70)


def test_modnet_default_is_the_papers_mobilenet_v2():
    model = MODNet()  # random weights; encoder_weights="imagenet" would load them through course_utils.weights
    assert tuple(model.encoder.out_channels) == (3, 16, 24, 32, 96, 1280)  # the released code's enc_channels
    assert sum(p.numel() for p in model.parameters()) == 3_233_555
    with pytest.raises(ValueError, match="hr_channels"):
        MODNet(**{**TINY, "hr_channels": 5})


def test_modnet_loss_is_zero_for_a_perfect_prediction_and_positive_otherwise():
    image, targets = soft_disks(3)
    targets = {**targets, "image": image}
    perfect = perfect_modnet_outputs(targets["alpha"])
    losses = modnet_losses(perfect, targets)
    assert set(losses) == {"semantic", "detail", "matte"}
    assert all(float(v) == 0 for v in losses.values())
    for key in perfect:
        wrong = {**perfect, key: (perfect[key] + 0.2).clamp(0, 1)}
        assert float(modnet_losses(wrong, targets)[key]) > 0
    assert float(modnet_loss({k: torch.full_like(v, 0.5) for k, v in perfect.items()}, targets)) > 0


def test_modnet_loss_weights_and_the_evaluation_mode_loss():
    _, targets = soft_disks(2)
    outputs = {k: torch.full_like(v, 0.3) for k, v in perfect_modnet_outputs(targets["alpha"]).items()}
    unweighted = modnet_losses(outputs, targets, weights=(1, 1, 1))
    weighted = modnet_losses(outputs, targets)  # the released defaults: 10, 10, 1
    for key, factor in (("semantic", 10), ("detail", 10), ("matte", 1)):
        assert torch.allclose(weighted[key], factor * unweighted[key])
    # evaluation mode: the matte tensor alone, and its mean absolute error
    matte = outputs["matte"]
    assert torch.allclose(modnet_loss(matte, targets), (matte[:, 0] - targets["alpha"]).abs().mean())


def test_modnet_detail_loss_counts_only_the_unknown_band():
    _, targets = soft_disks(2)
    band = unknown_region(targets["trimap"]).bool()
    assert 0 < band.float().mean() < 0.5
    perfect = perfect_modnet_outputs(targets["alpha"])
    outside = {**perfect, "detail": torch.where(band, perfect["detail"], 1 - perfect["detail"])}
    assert float(modnet_losses(outside, targets)["detail"]) == 0
    inside = {**perfect, "detail": torch.where(band, 1 - perfect["detail"], perfect["detail"])}
    expected = 10 * (band * (1 - 2 * perfect["detail"]).abs()).float().mean()  # averaged over all pixels
    assert torch.allclose(modnet_losses(inside, targets)["detail"], expected)
    # the matte counts the band 1 + 4 times: an error there costs 5 times one outside
    error_in = {**perfect, "matte": torch.where(band, perfect["matte"] + 0.01, perfect["matte"])}
    error_out = {**perfect, "matte": torch.where(band, perfect["matte"], (perfect["matte"] - 0.01).abs())}
    per_pixel_in = modnet_losses(error_in, targets)["matte"] / band.sum()
    per_pixel_out = modnet_losses(error_out, targets)["matte"] / (~band).sum()
    assert torch.allclose(per_pixel_in, 5 * per_pixel_out, rtol=1e-3)


def test_target_formats_give_the_same_losses():
    _, targets = soft_disks(2)
    outputs = {k: torch.full_like(v, 0.3) for k, v in perfect_modnet_outputs(targets["alpha"]).items()}
    as_uint8 = {"alpha": (targets["alpha"] * 255).round().to(torch.uint8), "trimap": targets["trimap"]}
    as_float = {"alpha": as_uint8["alpha"][:, None].float() / 255, "trimap": targets["trimap"][:, None] / 255.0}
    a, b = modnet_losses(outputs, as_uint8), modnet_losses(outputs, as_float)
    assert all(torch.allclose(a[k], b[k]) for k in a)
    assert torch.equal(unknown_region(as_float["trimap"]), unknown_region(targets["trimap"]))
    with pytest.raises(ValueError, match=r"\(N, H, W\) or \(N, 1, H, W\)"):
        modnet_losses(outputs, {"alpha": targets["alpha"][0], "trimap": targets["trimap"]})


def test_soc_losses():
    torch.manual_seed(0)
    model = MODNet(**TINY).train()
    image = soft_disks(2)[0]
    outputs = model(image)
    same = soc_losses(outputs, {k: v.detach() for k, v in outputs.items()})
    assert same["soc_detail"].item() == 0  # nothing changed since the frozen copy
    assert same["soc_semantic"].item() > 0  # an untrained model's semantic map and matte disagree
    sum(same.values()).backward()
    assert model.semantic_head.weight.grad.abs().sum() > 0


def test_modnet_learns_soft_disks_better_than_a_constant_alpha():
    """40 Adam steps from random weights, a few seconds on one core."""
    torch.manual_seed(0)
    images, targets = soft_disks(64, seed=0)
    val_images, val_targets = soft_disks(16, seed=1)
    constant = val_targets["alpha"].median()  # the best constant for an L1 error: here 0, "all background"
    baseline = float((val_targets["alpha"] - constant).abs().mean())
    model = MODNet(**TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(40):
        pick = torch.randint(0, len(images), (8,))
        loss = modnet_loss(model(images[pick]), {key: value[pick] for key, value in targets.items()})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        error = float((model.eval()(val_images)[:, 0] - val_targets["alpha"]).abs().mean())
    print(f"matte L1 {error:.3f}, constant alpha {baseline:.3f}")
    assert error < 0.6 * baseline, (error, baseline)


# ---------------------------------------------------------------------------------------------------------------
# Deep Image Matting
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_trimap", [True, False])
def test_dim_with_and_without_the_trimap_channel(with_trimap):
    torch.manual_seed(0)
    image, targets = soft_disks(2, size=48)  # DIM takes sizes that are not multiples of 32
    x = trimap_channel(image, targets["trimap"]) if with_trimap else image
    model = DeepImageMatting(with_trimap=with_trimap, **SMALL_DIM).train()
    out = model(x)
    assert set(out) == {"alpha", "refined"}
    assert out["alpha"].shape == out["refined"].shape == (2, 1, 48, 48)
    assert torch.allclose(out["alpha"], out["refined"])  # the refinement starts as the identity
    loss = dim_loss(out, targets, unknown_only=with_trimap)
    loss.backward()
    with torch.no_grad():
        alpha = model.eval()(x)
    assert alpha.shape == (2, 1, 48, 48) and in_unit_range(alpha)
    wrong = image if with_trimap else trimap_channel(image, targets["trimap"])
    with pytest.raises(ValueError, match="inputs"):
        model(wrong)
    assert isinstance(DeepImageMatting(refine=False, **SMALL_DIM).eval()(trimap_channel(image, targets["trimap"])),
                      torch.Tensor)


def test_trimap_channel_encoding_and_the_zero_initialised_fourth_channel():
    image, targets = soft_disks(1, size=32)
    x = trimap_channel(image, targets["trimap"])
    assert x.shape == (1, 4, 32, 32)
    assert torch.allclose(x[0, 3].unique(), torch.tensor([0.0, 128 / 255, 1.0]))
    conv = nn.Conv2d(3, 8, 3, padding=1)
    wider = _with_trimap_channel(conv)  # how a pretrained RGB encoder gets the trimap (paper: zero weights)
    assert wider.in_channels == 4
    assert torch.allclose(wider(x), conv(image))  # the trimap changes nothing until the network learns to use it


def test_pretrained_dim_gets_a_zero_initialised_trimap_channel(monkeypatch):
    from course_utils.models.classic import VGGEncoder

    monkeypatch.setattr(VGGEncoder, "load_vgg16_bn", lambda self: None)  # no download: the layout is what we test
    model = DeepImageMatting(widths="vgg16", pretrained=True, refine=False)
    first = model.encoder.stages[0][0][0]
    assert first.in_channels == 4 and bool((first.weight[:, 3] == 0).all())
    assert DeepImageMatting(widths="vgg16", pretrained=True, with_trimap=False).encoder.stages[0][0][0].in_channels == 3


def test_dim_loss_zero_for_a_perfect_prediction_positive_otherwise_and_only_over_the_unknown_band():
    _, targets = soft_disks(2)
    alpha = targets["alpha"][:, None]
    band = unknown_region(targets["trimap"]).bool()
    perfect = {"alpha": alpha.clone(), "refined": alpha.clone()}
    losses = dim_losses(perfect, targets)
    assert set(losses) == {"alpha", "composition", "refined"}  # fg and bg given: the compositional loss is there
    assert all(float(v) < 1e-5 for v in losses.values())  # the Charbonnier loss of a zero error is eps = 1e-6
    wrong = {key: (value + 0.3).clamp(0, 1) for key, value in perfect.items()}
    assert all(float(v) > 0.01 for v in dim_losses(wrong, targets).values())
    # known pixels do not count (unknown_only=True, the paper); they do for the trimap-free variant
    outside = {key: torch.where(band, value, 1 - value) for key, value in perfect.items()}
    assert float(dim_loss(outside, targets)) < 1e-5
    assert float(dim_loss(outside, targets, unknown_only=False)) > 0.1
    # without fg and bg: the alpha-prediction loss alone, weight 1; a tensor (evaluation mode) too
    no_colours = {"alpha": targets["alpha"], "trimap": targets["trimap"]}
    assert set(dim_losses(wrong, no_colours)) == {"alpha", "refined"}
    assert torch.allclose(dim_loss(wrong["alpha"], no_colours), dim_losses(wrong, no_colours)["alpha"])
    # the composite difference is (a_p - a_g)(F - B): the compositional loss is the alpha error weighted by |F - B|
    half = dim_losses({"alpha": wrong["alpha"]}, {**targets, "bg": targets["fg"]})
    assert float(half["composition"]) < 1e-5
