"""Pretrained weights: found offline where possible, downloaded otherwise, and a clear error when neither works.

A Kaggle notebook with its Internet switch off (a competition, or a saved version run in the
background) cannot download ImageNet weights, and the libraries say so with a bare ``URLError`` or
``LocalEntryNotFoundError``. Every pretrained model of the course gets its weights through this
module, which looks, in order:

1. in ``COURSE_WEIGHTS_DIR`` and the attached Kaggle datasets (``/kaggle/input``), for the weights
   file under its usual name: torchvision's file name (``vgg16_bn-6c64b313.pth``) or, for
   segmentation-models-pytorch, ``<encoder>.<weights>.safetensors`` (``resnet34.imagenet.safetensors``)
   or a ``<encoder>.<weights>/model.safetensors`` folder as the Hugging Face hub stores it;
2. in the libraries' own caches (``TORCH_HOME``'s ``hub/checkpoints``, the Hugging Face cache);
3. then downloads. If that fails, ``WeightsNotFoundError`` names the weights, the places searched
   and the ways out.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from course_utils import runtime


class WeightsNotFoundError(RuntimeError):
    """Pretrained weights that could be neither found locally nor downloaded."""


def search_dirs() -> list[Path]:
    """Folders searched for weight files before any download, in order."""
    dirs = [Path(d) for d in os.environ.get("COURSE_WEIGHTS_DIR", "").split(os.pathsep) if d]
    if runtime.KAGGLE_INPUT.is_dir():
        dirs.append(runtime.KAGGLE_INPUT)
    return dirs


def find_file(*names: str, max_depth: int = 4) -> Path | None:
    """The first file whose path ends with one of ``names`` in the search folders (or below them)."""
    for folder in search_dirs():
        for depth in range(max_depth + 1):
            for name in names:
                for match in sorted(folder.glob("/".join(["*"] * depth + [name]))):
                    if match.is_file():
                        return match
    return None


def _not_found(what: str, file_names: list[str], looked: list[str], error: BaseException, off_switch: str):
    places = "\n".join(f"  - {p}" for p in looked)
    return WeightsNotFoundError(
        f"Could not get the pretrained weights {what}.\n"
        f"Looked for {' or '.join(file_names)} in:\n{places}\n"
        f"and the download failed: {type(error).__name__}: {error}\n"
        "Ways out:\n"
        "  * on Kaggle: Settings -> Internet on (needs a phone-verified account), then run again;\n"
        f"  * without Internet: attach a Kaggle dataset holding {file_names[0]} (Add Input), or put the file "
        "in a folder named by COURSE_WEIGHTS_DIR;\n"
        f"  * or train from scratch with {off_switch} (expect lower scores in the same number of epochs).")


def _searched() -> list[str]:
    return [f"{d} (and 4 levels below)" for d in search_dirs()] or ["COURSE_WEIGHTS_DIR (not set)"]


def torchvision_state_dict(weights) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights enum, e.g. ``VGG16_BN_Weights.IMAGENET1K_V1``."""
    file_name = Path(urlparse(weights.url).path).name
    local = find_file(file_name)
    if local is not None:
        print(f"weights {file_name}: found {local}")
        return torch.load(local, map_location="cpu", weights_only=True)
    hub_cache = Path(torch.hub.get_dir()) / "checkpoints"
    try:  # torchvision reads its cache (TORCH_HOME) first and downloads only when the file is not there
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as error:
        raise _not_found(f"{weights} of torchvision ({weights.url})", [file_name],
                         [*_searched(), f"{hub_cache} (torchvision's cache, TORCH_HOME)"], error,
                         "pretrained=False") from error


def smp_model(arch: str, encoder_name: str, encoder_weights: str | None = "imagenet", in_channels: int = 3,
              **kwargs) -> nn.Module:
    """``segmentation_models_pytorch.create_model`` whose encoder weights come through this module.

    smp downloads an encoder's weights from the Hugging Face repository ``smp-hub/<encoder>.<weights>``;
    here the same file is looked for offline first. ``encoder_weights=None`` trains from scratch."""
    import segmentation_models_pytorch as smp

    model = smp.create_model(arch, encoder_name=encoder_name, encoder_weights=None, in_channels=3, **kwargs)
    if encoder_weights is not None:
        model.encoder.load_state_dict(smp_encoder_state_dict(encoder_name, encoder_weights))
    if in_channels != 3:  # as smp does: adapt the pretrained first convolution to the new channel count
        model.encoder.set_in_channels(in_channels, pretrained=encoder_weights is not None)
    return model


def smp_encoder_state_dict(encoder_name: str, encoder_weights: str = "imagenet") -> dict[str, torch.Tensor]:
    """The encoder weights smp would download for ``encoder_name`` / ``encoder_weights``."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from safetensors.torch import load_file
    from segmentation_models_pytorch.encoders import encoders

    if encoder_name not in encoders:
        raise KeyError(f"unknown smp encoder {encoder_name!r}; see segmentation_models_pytorch.encoders.encoders")
    settings = encoders[encoder_name]["pretrained_settings"].get(encoder_weights)
    if settings is None:
        raise KeyError(f"smp encoder {encoder_name} has no {encoder_weights!r} weights; it has "
                       f"{sorted(encoders[encoder_name]['pretrained_settings'])}")
    repo, revision = settings["repo_id"], settings["revision"]
    stem = f"{encoder_name}.{encoder_weights}"
    local = find_file(f"{stem}.safetensors", f"{stem}/model.safetensors")
    if local is None:
        cached = try_to_load_from_cache(repo, "model.safetensors", revision=revision)
        local = Path(cached) if isinstance(cached, str) else None
    if local is not None:
        print(f"weights {stem}: found {local}")
        return load_file(local, device="cpu")
    try:
        return load_file(hf_hub_download(repo, filename="model.safetensors", revision=revision), device="cpu")
    except Exception as error:
        raise _not_found(f"{stem} of segmentation-models-pytorch (Hugging Face repository {repo})",
                         [f"{stem}.safetensors", f"{stem}/model.safetensors"],
                         [*_searched(), "the Hugging Face cache (HF_HOME)"], error, "encoder_weights=None") from error
