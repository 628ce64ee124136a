import pytest
import torch
from torchvision.models import vgg16_bn

from course_utils.models import FCN, SegNet, VGGEncoder
from course_utils.models.classic import bilinear_kernel


@pytest.mark.parametrize("model", [FCN(5, 32, "small"), FCN(5, 16, "small"), FCN(5, 8, "small"), SegNet(5, "small")],
                         ids=["fcn32s", "fcn16s", "fcn8s", "segnet"])
@pytest.mark.parametrize("size", [(64, 96), (75, 101)])
def test_output_is_one_score_map_per_class_at_input_size(model, size):
    assert model.eval()(torch.randn(2, 3, *size)).shape == (2, 5, *size)


def test_fcn_variants_differ_only_by_their_skips():
    names = {stride: {n for n, _ in FCN(5, stride, "small").named_parameters()} for stride in (32, 16, 8)}
    assert names[16] - names[32] == {"score16.weight", "score16.bias", "up_32_to_16.weight"}
    assert names[8] - names[16] == {"score8.weight", "score8.bias", "up_16_to_8.weight"}  # FCN-32s has no unused layer


def test_bilinear_kernel_upsamples_like_interpolation():
    up = torch.nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False)
    up.weight.data.copy_(bilinear_kernel(1, 4))
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    ref = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up(x)[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])  # equal away from the border


def test_segnet_unpools_to_the_positions_of_the_maxima():
    x = torch.tensor([[[[1.0, 5.0], [2.0, 3.0]]]])
    pooled, indices = torch.nn.functional.max_pool2d(x, 2, return_indices=True)
    unpooled = torch.nn.functional.max_unpool2d(pooled, indices, 2)
    assert unpooled.tolist() == [[[[0.0, 5.0], [0.0, 0.0]]]]


def test_vgg16_bn_weights_are_copied_with_the_biases_folded():
    torch.manual_seed(0)
    source = vgg16_bn(weights=None).features.eval()
    for m in source.modules():  # give the batch norms non-trivial statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    encoder = VGGEncoder("vgg16")
    encoder.load_vgg16_bn(source)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        ours = encoder.eval()(x)[-1]
        theirs = source(x)  # VGG features, the last pooling included
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="ImageNet weights"):
        VGGEncoder("small", pretrained=True)
