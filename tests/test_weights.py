"""Pretrained weights: found offline first, a clear error when they can be neither found nor downloaded."""

import urllib.error
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
from safetensors.torch import save_file

from course_utils import runtime, weights


@pytest.fixture(autouse=True)
def no_places(monkeypatch, tmp_path):
    """No weights folder, no Kaggle mount, an empty torch hub cache and no network, unless a test adds them."""
    monkeypatch.delenv("COURSE_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(runtime, "KAGGLE_INPUT", tmp_path / "no-kaggle")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    import huggingface_hub

    def offline(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("cannot reach the Hugging Face hub")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)


class FakeWeights:
    """Stands for a torchvision weights enum member: a URL and a download that fails offline."""

    url = "https://download.pytorch.org/models/tiny-0123abcd.pth"

    def get_state_dict(self, progress=True, check_hash=True):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    def __str__(self):
        return "TinyWeights.IMAGENET1K_V1"


def test_torchvision_weights_offline_are_a_clear_error():
    with pytest.raises(weights.WeightsNotFoundError) as error:
        weights.torchvision_state_dict(FakeWeights())
    message = str(error.value)
    for part in ("TinyWeights.IMAGENET1K_V1", "tiny-0123abcd.pth", "hub", "URLError", "Internet on",
                 "attach a Kaggle dataset", "COURSE_WEIGHTS_DIR", "pretrained=False"):
        assert part in message


@pytest.mark.parametrize("where", ["weights_dir", "kaggle"])
def test_torchvision_weights_are_found_in_a_folder_or_an_attached_dataset(monkeypatch, tmp_path, where):
    state = {"weight": torch.arange(6.0).reshape(2, 3)}
    if where == "weights_dir":
        folder = tmp_path / "mine" / "nested"
        monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path / "mine"))
    else:  # /kaggle/input/<dataset>/<folder>/file
        folder = tmp_path / "kaggle-input" / "course-weights" / "torchvision"
        monkeypatch.setattr(runtime, "KAGGLE_INPUT", tmp_path / "kaggle-input")
    folder.mkdir(parents=True)
    torch.save(state, folder / "tiny-0123abcd.pth")
    loaded = weights.torchvision_state_dict(FakeWeights())
    torch.testing.assert_close(loaded["weight"], state["weight"])


@pytest.mark.parametrize("layout", ["file", "hub_folder"])
def test_smp_encoder_weights_are_found_offline(monkeypatch, tmp_path, layout):
    source = weights.smp_model("Unet", "resnet18", encoder_weights=None, classes=1)
    encoder_state = {k: v.contiguous() for k, v in source.encoder.state_dict().items()}
    folder = tmp_path / "w"
    path = folder / "resnet18.imagenet.safetensors" if layout == "file" else folder / "resnet18.imagenet" / \
        "model.safetensors"
    path.parent.mkdir(parents=True)
    save_file(encoder_state, str(path))
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(folder))
    model = weights.smp_model("Unet", "resnet18", encoder_weights="imagenet", classes=1)
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, encoder_state[key])
    model4 = weights.smp_model("Unet", "resnet18", encoder_weights="imagenet", classes=1, in_channels=4)
    assert model4(torch.zeros(1, 4, 64, 64)).shape == (1, 1, 64, 64)  # first conv adapted, as smp does


def test_smp_encoder_weights_offline_are_a_clear_error():
    with pytest.raises(weights.WeightsNotFoundError) as error:
        weights.smp_model("Unet", "resnet18", encoder_weights="imagenet")
    message = str(error.value)
    for part in ("resnet18.imagenet", "smp-hub/resnet18.imagenet", "LocalEntryNotFoundError", "encoder_weights=None",
                 "Internet on"):
        assert part in message
    with pytest.raises(KeyError, match="no 'instagram' weights"):
        weights.smp_model("Unet", "resnet18", encoder_weights="instagram")


def test_without_weights_nothing_is_looked_up():
    model = weights.smp_model("Unet", "resnet18", encoder_weights=None, classes=2)  # the offline fixture would raise
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 2, 64, 64)


def test_make_kaggle_weights_writes_the_names_that_are_looked_for(monkeypatch, tmp_path):
    """scripts/fetch_weights.py (make kaggle-weights), downloads faked: the files it writes are found offline."""
    import importlib.util

    import huggingface_hub
    import torchvision.models
    from conftest import ROOT

    sources = {}
    for name in ("resnet34", "mobilenet_v2", "resnet50", "resnet18"):  # smp's hub repositories: <encoder>.<weights>
        encoder = weights.smp_model("Unet", name, encoder_weights=None).encoder
        source = sources[f"smp-hub/{name}.imagenet"] = tmp_path / f"hub-{name}.safetensors"
        save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(source))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo_id, *a, **k: str(sources[repo_id]))
    vgg = torchvision.models.vgg16_bn(weights=None).state_dict()
    monkeypatch.setattr(torchvision.models.VGG16_BN_Weights.IMAGENET1K_V1.__class__, "get_state_dict",
                        lambda self, **kwargs: vgg)
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_V2_Weights
    from torchvision.models.optical_flow import Raft_Large_Weights

    others = [MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1, Raft_Large_Weights.C_T_V2]  # notebooks 06 and 08
    for enum in others:  # their contents are not loaded here: only the file names are checked
        monkeypatch.setattr(enum.__class__, "get_state_dict", lambda self, **kwargs: {"w": torch.zeros(1)})
    spec = importlib.util.spec_from_file_location("fetch_weights", ROOT / "scripts" / "fetch_weights.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    written = script.fetch(tmp_path / "kaggle-weights")
    assert sorted(p.name for p in written) == sorted(
        ["mobilenet_v2.imagenet.safetensors", "resnet18.imagenet.safetensors", "resnet34.imagenet.safetensors",
         "resnet50.imagenet.safetensors",
         "vgg16_bn-6c64b313.pth", *(Path(urlparse(enum.url).path).name for enum in others)])

    monkeypatch.setattr(runtime, "KAGGLE_INPUT", tmp_path)  # as if attached: /kaggle/input/kaggle-weights/...
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("no download offline"))
    weights.smp_model("Unet", "resnet34", encoder_weights="imagenet")
    from course_utils.models import VGGEncoder

    VGGEncoder("vgg16", pretrained=True)  # the FCN/SegNet encoder of notebook 02, from the attached file
    from course_utils.models import MODNet

    MODNet("mobilenet_v2", "imagenet")  # notebook 01's MODNet encoder, from the attached file
