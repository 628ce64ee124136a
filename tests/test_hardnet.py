import pytest
import torch

from course_utils.models.hardnet import HarDBlock, HarDNet, harmonic_links, layer_width


@pytest.fixture(scope="module")
def hardnet68() -> HarDNet:
    torch.manual_seed(0)
    return HarDNet(arch=68)


@pytest.mark.parametrize("k, expected", [
    (1, [0]), (2, [1, 0]), (3, [2]), (4, [3, 2, 0]), (5, [4]), (6, [5, 4]), (7, [6]), (8, [7, 6, 4, 0]),
    (16, [15, 14, 12, 8, 0]),
])
def test_harmonic_links_by_hand(k, expected):
    # k - 2^n for every power of two 2^n dividing k: odd k has only 2^0, 8 has 1, 2, 4 and 8
    assert harmonic_links(k) == expected


def test_widths_grow_with_the_links_and_round_to_even():
    # growth 14, m = 1.7 (HarDNet68's first block): 14 * 1.7 = 23.8, * 1.7^2 = 40.46, * 1.7^3 = 68.78
    assert [layer_width(k, 14, 1.7) for k in range(1, 9)] == [14, 24, 14, 40, 14, 24, 14, 68]
    assert layer_width(4, 100, 1.7) == 290  # 100 * 1.7 * 1.7 lands just above 289, and the official code rounds up


def test_small_block_channels_by_hand():
    # in 8, growth 4, m = 2: widths 4, 8, 4, 16; layer 4 reads layers 3, 2, 0 (4 + 8 + 8 = 20 channels)
    block = HarDBlock(8, growth_rate=4, n_layers=4, multiplier=2.0)
    assert block.widths == [4, 8, 4, 16]
    assert [layer[0].in_channels for layer in block.layers] == [8, 4 + 8, 8, 4 + 8 + 8]
    assert block.out_channels == 4 + 4 + 16  # odd layers 1, 3 and the last, not the block input
    assert block(torch.randn(2, 8, 5, 5)).shape == (2, 24, 5, 5)


def test_hardnet68_first_block_by_hand():
    block = HarDBlock(64, growth_rate=14, n_layers=8, multiplier=1.7)
    assert block.layers[-1][0].in_channels == 14 + 24 + 40 + 64  # layer 8 reads 7, 6, 4 and the input
    assert block.out_channels == 4 * 14 + 68  # layers 1, 3, 5, 7 and 8


def test_features_at_strides_4_8_16_32_as_hardnet_mseg_takes_them(hardnet68):
    assert hardnet68.out_channels == (128, 320, 640, 1024)
    with torch.no_grad():
        features = hardnet68.eval()(torch.randn(1, 3, 352, 352))  # HarDNet-MSEG's input size
    assert [f.shape for f in features] == [(1, 128, 88, 88), (1, 320, 44, 44), (1, 640, 22, 22), (1, 1024, 11, 11)]
    assert [352 // f.shape[-1] for f in features] == list(hardnet68.strides)


def test_parameter_count_matches_the_official_readme():
    model = HarDNet(arch=68, num_classes=1000)
    n = sum(p.numel() for p in model.parameters())
    # 17.6 M: "Results" table of the official README, github.com/PingoLH/Pytorch-HarDNet (HarDNet68, MParam)
    assert n == pytest.approx(17.6e6, rel=0.02)
    with torch.no_grad():
        assert model.eval().classify(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_gradients_reach_every_parameter(hardnet68):
    hardnet68.train().zero_grad()
    features = hardnet68(torch.randn(2, 3, 32, 32))  # 1x1 at stride 32
    sum(f.mean() for f in features).backward()
    for name, p in hardnet68.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert hardnet68.stem[0][0].weight.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="classifier head"):
        hardnet68.classify(torch.randn(1, 3, 32, 32))
