"""Download the pretrained weights the notebooks use into one folder (``make kaggle-weights``).

Upload the folder as a Kaggle dataset and attach it to a notebook: ``course_utils.weights`` finds the
files there by name, so full mode runs with Kaggle's Internet switched off. Run this where there is
Internet; it writes the file names ``course_utils.weights`` looks for:

- torchvision weights under torchvision's own file name (``vgg16_bn-6c64b313.pth``);
- segmentation-models-pytorch encoders as ``<encoder>.<weights>.safetensors``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from urllib.parse import urlparse

# What the notebooks load in full mode: (smp encoder, weights) pairs and torchvision weights enum names.
SMP_ENCODERS = [("resnet34", "imagenet"),  # notebooks 02, 03 and 09
                ("resnet18", "imagenet"),  # notebook 09 (the YOLOP-style two-head model)
                ("mobilenet_v2", "imagenet"),  # notebook 01 (MODNet)
                ("resnet50", "imagenet")]  # notebook 05
TORCHVISION = ["VGG16_BN_Weights.IMAGENET1K_V1",  # notebook 02's FCN and SegNet encoders, 01's Deep Image Matting
               "MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1",  # notebook 06
               "Raft_Large_Weights.C_T_V2"]  # notebook 08


def fetch(target: Path) -> list[Path]:
    import torch
    import torchvision.models
    from huggingface_hub import hf_hub_download
    from segmentation_models_pytorch.encoders import encoders

    target.mkdir(parents=True, exist_ok=True)
    written = []
    for encoder, weights in SMP_ENCODERS:
        settings = encoders[encoder]["pretrained_settings"][weights]
        source = hf_hub_download(settings["repo_id"], "model.safetensors", revision=settings["revision"])
        written.append(Path(shutil.copy(source, target / f"{encoder}.{weights}.safetensors")))
    for name in TORCHVISION:
        weights = torchvision.models.get_weight(name)  # finds detection and optical-flow weights too
        path = target / Path(urlparse(weights.url).path).name
        torch.save(weights.get_state_dict(progress=True, check_hash=True), path)
        written.append(path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", default="dist/kaggle-weights", type=Path)
    for path in fetch(parser.parse_args().target):
        print(f"{path}  {path.stat().st_size / 2**20:.1f} MiB")
