import math

import pytest
import torch
from torch import nn

from course_utils.models.bisenetv2 import BiSeNetV2, GatherExpansion, booster_loss

SIZES = [(64, 96), (75, 101)]  # the second is not a multiple of 32 (nor of 8)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread


@pytest.fixture(scope="module")
def model() -> BiSeNetV2:
    torch.manual_seed(0)
    return BiSeNetV2(num_classes=5)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("size", SIZES)
def test_eval_output_is_one_score_map_per_class_at_input_size(model, size):
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, *size))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, *size)


@pytest.mark.parametrize("size", SIZES)
def test_training_output_adds_four_booster_maps_at_input_size(model, size):
    logits, aux = model.train()(torch.randn(2, 3, *size))
    assert logits.shape == (2, 5, *size)
    assert [a.shape for a in aux] == [(2, 5, *size)] * 4


def test_without_aux_training_returns_plain_logits_and_has_no_booster_heads():
    plain = BiSeNetV2(num_classes=3, aux=False).train()
    assert len(plain.aux_heads) == 0
    assert plain(torch.randn(2, 3, 64, 64)).shape == (2, 3, 64, 64)


def test_booster_heads_do_not_change_the_main_logits(model):
    x = torch.randn(2, 3, 64, 96)
    model.train()
    with torch.no_grad():
        logits, _ = model(x)
        model.aux = False
        try:
            alone = model(x)
        finally:
            model.aux = True
    torch.testing.assert_close(logits, alone)


def test_branches_end_at_one_eighth_and_one_thirty_second(model):
    h, w = 75, 101
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        model.eval()
        detail = model.detail(x)
        semantic, stages = model.semantic(x)
    assert detail.shape == (1, 128, math.ceil(h / 8), math.ceil(w / 8))
    assert semantic.shape == (1, 128, math.ceil(h / 32), math.ceil(w / 32))
    expected = [(c, math.ceil(h / s), math.ceil(w / s)) for c, s in zip((16, 32, 64, 128), (4, 8, 16, 32))]
    assert [tuple(t.shape[1:]) for t in stages] == expected  # what the four booster heads read


def test_booster_loss_sums_main_and_auxiliary_losses(model):
    criterion = nn.CrossEntropyLoss()
    x, target = torch.randn(2, 3, 64, 64), torch.randint(0, 5, (2, 64, 64))
    with torch.no_grad():
        logits, aux = model.train()(x)
    expected = criterion(logits, target) + sum(criterion(a, target) for a in aux)
    torch.testing.assert_close(booster_loss((logits, aux), target, criterion), expected)
    main_only = booster_loss((logits, aux), target, criterion, aux_weight=0.0)
    torch.testing.assert_close(main_only, criterion(logits, target))
    torch.testing.assert_close(booster_loss(logits, target, criterion), criterion(logits, target))  # plain tensor


def test_gradients_reach_both_branches_and_every_booster_head():
    torch.manual_seed(0)
    net = BiSeNetV2(num_classes=4).train()
    x, target = torch.randn(2, 3, 64, 64), torch.randint(0, 4, (2, 64, 64))
    logits, aux = net(x)
    # the booster losses alone train the Semantic Branch and their own heads, not the Detail Branch or the main head
    sum(nn.functional.cross_entropy(a, target) for a in aux).backward(retain_graph=True)
    assert all(p.grad is None for p in [*net.detail.parameters(), *net.head.parameters()])
    assert all(p.grad.abs().sum() > 0 for p in [*net.aux_heads.parameters(), *net.semantic.stem.parameters()])
    # the main loss reaches everything through the aggregation layer. One exception: the shift of the BatchNorm on
    # the Context Embedding's pooled vector. It adds the same constant to every image, the 1x1 conv-BN after it
    # subtracts the batch mean again, so its gradient is zero (it is in the paper's block all the same).
    nn.functional.cross_entropy(logits, target).backward()
    for name, p in net.named_parameters():
        if name != "semantic.context.norm.bias":
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert net.semantic.context.norm.bias.grad.abs().max() < 1e-6


def conv(c_in: int, c_out: int, k: int = 3, groups: int = 1, bn: bool = True) -> int:
    """Parameters of a bias-free k x k convolution, plus its BatchNorm's scale and shift."""
    return k * k * c_in // groups * c_out + (2 * c_out if bn else 0)


def test_parameter_count_follows_the_paper_layer_by_layer():
    # We found no source that states the parameter count of the paper's configuration. The paper reports FLOPs, not
    # parameters. PaddleSeg's docs/model_zoo_overview.md gives 2.33M for its own BiSeNetv2, but that one expands in
    # the depth-wise convs of the GE layers and has a 128-wide head, so it is not comparable. So we count by hand,
    # from Table 1 and the block figures, with e = 6 and lambda = 1/4.
    net = BiSeNetV2(num_classes=19)
    # Detail Branch, Table 1: S1 = 2 convs of 64, S2 = 3 of 64, S3 = 3 of 128, all 3x3
    detail = conv(3, 64) + conv(64, 64) + 3 * conv(64, 64) + conv(64, 128) + 2 * conv(128, 128)
    assert count(net.detail) == detail

    def ge(c_in: int, c_out: int, stride: int) -> int:
        wide = 6 * c_in  # the 3x3 conv expands, the depth-wise convs keep the width, the 1x1 conv projects
        main = conv(c_in, wide) + conv(wide, wide, groups=wide) * (1 if stride == 1 else 2) + conv(wide, c_out, 1)
        shortcut = 0 if stride == 1 else conv(c_in, c_in, groups=c_in) + conv(c_in, c_out, 1)
        return main + shortcut

    assert count(GatherExpansion(32, 32, 1)) == ge(32, 32, 1)
    assert count(GatherExpansion(32, 64, 2)) == ge(32, 64, 2)
    stem = conv(3, 16) + conv(16, 8, 1) + conv(8, 16) + conv(32, 16)
    stages = ge(16, 32, 2) + ge(32, 32, 1) + ge(32, 64, 2) + ge(64, 64, 1) + ge(64, 128, 2) + 3 * ge(128, 128, 1)
    context = 2 * 128 + conv(128, 128, 1) + conv(128, 128)
    assert count(net.semantic) == stem + stages + context
    aggregation = 2 * (conv(128, 128, groups=128) + conv(128, 128, 1, bn=False)) + 3 * conv(128, 128)
    head = conv(128, 1024) + 1024 * 19 + 19  # 3x3 conv-BN-ReLU, then a 1x1 classifier with bias
    assert count(net) - count(net.aux_heads) == detail + stem + stages + context + aggregation + head == 6_048_707


def test_a_single_input_channel():
    net = BiSeNetV2(num_classes=2, in_channels=1, aux=False).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 40, 56)).shape == (1, 2, 40, 56)


def test_gather_expansion_rejects_a_residual_that_cannot_be_added():
    with pytest.raises(ValueError, match="c_in must equal c_out"):
        GatherExpansion(32, 64, stride=1)
    with pytest.raises(ValueError, match="stride"):
        GatherExpansion(32, 64, stride=4)
