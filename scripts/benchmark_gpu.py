"""Time and memory of each notebook's full-mode training on a GPU, through ``train.fit`` itself.

    python scripts/benchmark_gpu.py                  # every notebook, fp16 with a grad scaler (a T4's path)
    python scripts/benchmark_gpu.py --nb 06 --amp auto --out runs/gpu.json

For every model a notebook trains in full mode, this builds it as the notebook does (random weights:
pretrained ones change neither speed nor memory), feeds ``fit`` batches of the full-mode shape that
already sit on the GPU (so the data loaders are not timed: ``benchmark_loaders.py`` times those), and
reports the seconds per training step of the second epoch, the peak GPU memory of training plus one
evaluation batch, and inference images/s. It also resumes each run from its checkpoint once, so
``fit``'s fp16 path (grad scaler, checkpoint, resume) is exercised on a real GPU.

``--amp fp16`` forces float16 with loss scaling, what a T4 (no bf16) runs, on any GPU; ``auto`` uses
``runtime.amp_dtype`` (bf16 on Ampere and later). The epoch and run estimates multiply the measured step
time by the real dataset's steps per epoch: they leave out data loading and evaluation, and they hold
for the GPU measured, not for a T4 unless measured on one.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_utils import runtime, train

# (notebook, model) -> training steps per epoch on the real dataset with the notebook's split and
# batch, and the notebook's full-mode epochs
CAMVID = (367 // 8, 40)  # CamVid's 367 training images (SegNet split), batch 8
KVASIR = (792 // 16 + 1, 40)  # 880 training images less 10 % for monitoring, batch 16
BRATS = (277, 30)  # 369 labelled cases less 74 test and 18 monitor, one 128^3 crop each, batch 1
PENNFUDAN = (102 // 2, 12)  # 120 training images less 15 % for monitoring, batch 2
COCO_PANOPTIC = (3750 // 8, 20)  # the 3750 training images of notebook 09's val2017 split, batch 8
SINTEL = (2 * 640 // 8, 60)  # notebook 08: the 640 frame pairs of Sintel's 14 training scenes, both passes, batch 8
SHAPENET_PART = (12137 // 32, 60)  # notebook 07: ShapeNet-part's official training list, batch 32
MODELNET40 = (8859 // 32, 60)  # notebook 07: ModelNet40's 9843 training meshes less a tenth to monitor, batch 32
# notebook 01: AISegment's 34,425 pairs less a tenth of the groups for testing and a tenth of the rest to monitor
# (about 27,900 photos: the groups' sizes are not documented), batch 16
AISEGMENT_MODNET = (27900 // 16, 10)
AISEGMENT_DIM = (27900 // 16, 6)
LIP = (27416 // 16, 24)  # notebook 05: LIP's 30,462 training photos less a tenth to monitor, batch 16; 3 runs' epochs


@dataclass
class Case:
    build: Callable[[], nn.Module]
    batch: tuple  # one training batch, as the notebook's loader yields it
    loss_fn: Callable | None
    input_shape: tuple[int, ...]  # for the inference timing
    per_epoch: tuple[int, int]  # steps per epoch on the real data, epochs
    channels_last: bool = False
    val_batch: tuple | None = None  # the evaluation batch, when it differs (whole volumes)
    as_list: bool = False  # the model takes a list of images
    cudnn_benchmark: bool = True  # runtime.seed_everything's benchmark, as the notebook sets it


def semantic_case(build: Callable[[], nn.Module], batch: int, size: tuple[int, int], classes: int, loss_fn,
                  per_epoch, channels_last=False) -> Case:
    x = torch.randn(batch, 3, *size)
    y = torch.randint(0, classes, (batch, *size))
    return Case(build, (x, y), loss_fn, (batch, 3, *size), per_epoch, channels_last)


def cross_entropy(output, labels):
    from course_utils.models import booster_loss

    return booster_loss(output, labels, lambda logits, y: F.cross_entropy(logits, y.long(), ignore_index=255))


def cases_02():
    from course_utils import weights
    from course_utils.models import FCN, BiSeNetV2, SegNet

    def smp(arch, **options):
        return lambda: weights.smp_model(arch, "resnet34", None, classes=11, **options)

    builds = {"fcn32s": lambda: FCN(11, stride=32, widths="vgg16", pretrained=False),
              "fcn8s": lambda: FCN(11, stride=8, widths="vgg16", pretrained=False),
              "segnet": lambda: SegNet(11, widths="vgg16", pretrained=False),
              "unet": smp("Unet"), "pspnet": smp("PSPNet"),
              "deeplabv3plus": smp("DeepLabV3Plus", decoder_atrous_rates=(6, 12, 18)),
              "bisenetv2": lambda: BiSeNetV2(11)}
    return {name: semantic_case(b, 8, (352, 480), 11, cross_entropy, CAMVID) for name, b in builds.items()}


def cases_03():
    from course_utils import weights

    def loss_fn(logits, masks):
        return F.binary_cross_entropy_with_logits(logits, masks[:, None].float())

    out = {}
    for arch in ("Unet", "UnetPlusPlus"):
        build = (lambda a=arch: weights.smp_model(a, "resnet34", None, classes=1,
                                                  decoder_channels=(256, 128, 64, 32, 16)))
        out[arch] = semantic_case(build, 16, (352, 352), 2, loss_fn, KVASIR, channels_last=True)
    return out


def cases_04():
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceLoss
    from monai.networks.nets import SegResNetVAE, UNet

    roi = (128, 128, 128)

    class WholeVolume(nn.Module):  # as notebook 04: crops in training, a sliding window in evaluation
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            if self.training:
                return self.net(x)
            return sliding_window_inference(x, roi, 4, lambda v: _first(self.net(v)), overlap=0.5, mode="gaussian")

    dice = DiceLoss(sigmoid=True)

    def loss_fn(output, target):
        seg, vae = output if isinstance(output, tuple) else (output, None)
        return dice(seg, target) + (0.1 * vae if vae is not None else 0)

    builds = {"3D U-Net": lambda: UNet(3, 4, 3, (16, 32, 64, 128, 256), (2, 2, 2, 2), num_res_units=2),
              "SegResNetVAE": lambda: SegResNetVAE(roi, vae_nz=128, vae_estimate_std=True, in_channels=4,
                                                   out_channels=3, init_filters=16, blocks_down=(1, 2, 2, 4),
                                                   blocks_up=(1, 1, 1), norm=("GROUP", {"num_groups": 8}))}
    crop = (torch.randn(1, 4, *roi), (torch.rand(1, 3, *roi) > 0.9).float())
    volume = (torch.randn(1, 4, 144, 176, 144), (torch.rand(1, 3, 144, 176, 144) > 0.9).float())  # a brain crop
    return {name: Case(lambda b=b: WholeVolume(b()), crop, loss_fn, (1, 4, *roi), BRATS, val_batch=volume)
            for name, b in builds.items()}


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def cases_05():
    from course_utils import weights

    def loss_fn(logits, labels):
        return F.cross_entropy(logits, labels, ignore_index=255)

    build = lambda: weights.smp_model("Unet", "resnet50", None, classes=20,  # noqa: E731
                                      decoder_channels=(256, 128, 64, 32, 16))
    return {"unet_resnet50": semantic_case(build, 16, (384, 384), 20, loss_fn, LIP, channels_last=True)}


def cases_06():
    from torchvision.models.detection import maskrcnn_resnet50_fpn_v2
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor

    def build():  # as notebook 06's full mode: shorter side 800, frozen stem and first stage, 2 classes
        model = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, min_size=800, max_size=1333)
        for name, parameter in model.backbone.body.named_parameters():
            if not name.startswith(("layer2", "layer3", "layer4")):
                parameter.requires_grad_(False)
        model.roi_heads.box_predictor = FastRCNNPredictor(1024, 2)
        model.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, 2)
        return model

    def image(h, w, n):  # a Penn-Fudan-sized image with n pedestrian boxes and their masks
        boxes = torch.tensor([[40 + 120 * k, 60, 120 + 120 * k, 330] for k in range(n)], dtype=torch.float32)
        masks = torch.zeros(n, h, w, dtype=torch.uint8)
        for k, (x1, y1, x2, y2) in enumerate(boxes.int().tolist()):
            masks[k, y1:y2, x1:x2] = 1
        return torch.rand(3, h, w), {"boxes": boxes, "labels": torch.ones(n, dtype=torch.int64), "masks": masks}

    pairs = [image(380, 520, 3), image(430, 580, 2)]
    batch = ([p[0] for p in pairs], [p[1] for p in pairs])
    case = dict(build=build, batch=batch, loss_fn=None, input_shape=(2, 3, 400, 550), per_epoch=PENNFUDAN,
                as_list=True)
    return {"Mask R-CNN R50-FPN v2": Case(**case, cudnn_benchmark=False),  # as notebook 06
            "Mask R-CNN, cudnn.benchmark on": Case(**case)}


def cases_09():
    from course_utils.models.panoptic_deeplab import PanopticDeepLab, panoptic_loss

    x = torch.randn(8, 3, 512, 512)
    instance = torch.zeros(8, 512, 512, dtype=torch.long)  # a few instances: the targets are built from them
    for k, (y, x0) in enumerate([(100, 80), (150, 200), (260, 320), (300, 40)], start=1):
        instance[:, y:y + 160, x0:x0 + 90] = k
    target = {"semantic": torch.randint(0, 133, (8, 512, 512)), "instance": instance}
    build = lambda: PanopticDeepLab(133, encoder="resnet34")  # noqa: E731 (the paper's widths, COCO's 133 classes)
    return {"Panoptic-DeepLab R34": Case(build, (x, target), panoptic_loss, (8, 3, 512, 512), COCO_PANOPTIC)}


def cases_01():
    """Notebook 01's three models at its full-mode shapes: MODNet on 512x384 portraits, the two Deep Image Matting
    networks (VGG16-BN) on 320x320 crops, evaluated on whole 512x384 portraits."""
    from course_utils.models.matting import DeepImageMatting, MODNet, dim_loss, modnet_loss

    def targets(n, h, w):
        trimap = torch.where(torch.rand(n, h, w) < 0.3, 128, 255 * (torch.rand(n, h, w) < 0.5)).to(torch.uint8)
        return {"alpha": torch.rand(n, h, w), "trimap": trimap, "image": torch.randn(n, 3, h, w)}

    portraits = (torch.randn(16, 3, 512, 384), targets(16, 512, 384))
    crops = targets(16, 320, 320)
    with_trimap = (torch.randn(16, 4, 320, 320), crops)
    without = (torch.randn(16, 3, 320, 320), crops)
    whole = targets(16, 512, 384)
    return {"MODNet (MobileNetV2, hr_channels 32)": Case(lambda: MODNet("mobilenet_v2"), portraits, modnet_loss,
                                                         (1, 3, 512, 384), AISEGMENT_MODNET),
            "Deep Image Matting (VGG16-BN), image + trimap": Case(
                DeepImageMatting, with_trimap, dim_loss, (1, 4, 512, 384), AISEGMENT_DIM,
                val_batch=(torch.randn(16, 4, 512, 384), whole)),
            "Deep Image Matting (VGG16-BN), image only": Case(
                lambda: DeepImageMatting(with_trimap=False), without, functools.partial(dim_loss, unknown_only=False),
                (1, 3, 512, 384), AISEGMENT_DIM, val_batch=(torch.randn(16, 3, 512, 384), whole))}


def cases_07():
    from course_utils.models.pointnet import PointNet2PartSeg, PointNetClassifier, PointNetPartSeg, pointnet_loss

    def seg_loss(outputs, targets):
        return pointnet_loss(outputs, targets["labels"])

    category = torch.randint(0, 16, (32,))
    points = torch.cat([torch.randn(32, 2048, 3), F.one_hot(category, 16).float()[:, None].expand(-1, 2048, -1)], -1)
    seg_batch = (points, {"labels": torch.randint(0, 50, (32, 2048))})
    shapes = (torch.randn(32, 1024, 3), torch.randint(0, 40, (32,)))
    return {"PointNet part segmentation (8.3 M)": Case(PointNetPartSeg, seg_batch, seg_loss, (32, 2048, 19),
                                                       SHAPENET_PART),
            "PointNet++ SSG part segmentation": Case(PointNet2PartSeg, seg_batch, seg_loss, (32, 2048, 19),
                                                     SHAPENET_PART),
            "PointNet classifier (40 classes)": Case(lambda: PointNetClassifier(40), shapes, pointnet_loss,
                                                     (32, 1024, 3), MODELNET40)}


def cases_08():
    from course_utils.models.flownet import FlowNetS, multiscale_loss

    frames = torch.rand(8, 2, 3, 384, 768)  # notebook 08's full-mode crops of Sintel, batch 8
    target = {"flow": torch.randn(8, 2, 384, 768) * 10, "valid": torch.ones(8, 384, 768, dtype=torch.bool)}
    return {"FlowNetS (the paper's widths)": Case(FlowNetS, (frames, target), multiscale_loss, (1, 2, 3, 436, 1024),
                                                  SINTEL)}


class RaftPair(nn.Module):
    """torchvision's RAFT on a (N, 2, 3, H, W) pair with a fixed number of updates, returning the last flow."""

    def __init__(self, raft: nn.Module, updates: int):
        super().__init__()
        self.raft, self.updates = raft, updates

    def forward(self, pairs):
        return self.raft(pairs[:, 0], pairs[:, 1], num_flow_updates=self.updates)[-1]


def inference_08() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """Notebook 08's evaluation-only models: RAFT on frames padded to a multiple of 8, as the notebook pads."""
    from torchvision.models.optical_flow import raft_large

    return {"RAFT large, 32 updates, Sintel 440x1024": (RaftPair(raft_large(), 32), (1, 2, 3, 440, 1024)),
            "RAFT large, 24 updates, KITTI 376x1248": (RaftPair(raft_large(), 24), (1, 2, 3, 376, 1248)),
            "RAFT large, 32 updates, DAVIS 480x856": (RaftPair(raft_large(), 32), (1, 2, 3, 480, 856))}


def measure_inference(name: str, model: nn.Module, input_shape: tuple[int, ...], dev: torch.device) -> dict:
    """Pairs per second and peak memory of an evaluation-only model (random weights, random input)."""
    model.to(dev)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    with torch.no_grad():
        ips = train.images_per_second(model, input_shape, dev, iters=10)
    return {"model": name, "inference pairs/s": round(ips, 2), "s/pair": round(1 / ips, 3),
            "peak GiB": round(torch.cuda.max_memory_allocated(dev) / 2**30, 2)}


CASES = {"01": cases_01, "02": cases_02, "03": cases_03, "04": cases_04, "05": cases_05, "06": cases_06, "07": cases_07,
         "08": cases_08, "09": cases_09}
INFERENCE = {"08": inference_08}


def measure(name: str, case: Case, steps: int, dev: torch.device) -> dict:
    steps_per_epoch, epochs = case.per_epoch
    loss_fn, input_shape = case.loss_fn, case.input_shape
    runtime.seed_everything(0, benchmark=case.cudnn_benchmark)
    model = case.build()
    train_loader = [train._move(case.batch, dev)] * steps
    val_loader = [train._move(case.val_batch or case.batch, dev)]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(dev)
    with tempfile.TemporaryDirectory() as ckpt:
        kwargs = dict(checkpoint_dir=ckpt, monitor="train_loss", device=dev, channels_last=case.channels_last,
                      progress=False, save_every=0)
        history = train.fit(model, train_loader, val_loader, loss_fn, optimizer, epochs=2, resume=False, **kwargs)
        peak = torch.cuda.max_memory_allocated(dev) / 2**30
        reserved = torch.cuda.max_memory_reserved(dev) / 2**30
        resumed = train.fit(model, train_loader, val_loader, loss_fn, optimizer, epochs=3, resume=True, **kwargs)
        assert len(resumed) == 3 and resumed[:2] == history, "resume did not continue the run"
    # seconds per step: epoch 2 (warm) minus one timed evaluation batch
    model.eval()
    with torch.no_grad(), train.autocast(dev):
        torch.cuda.synchronize(dev)
        start = time.perf_counter()
        model(val_loader[0][0])
        torch.cuda.synchronize(dev)
        eval_seconds = time.perf_counter() - start
    step = (history[1]["seconds"] - eval_seconds) / steps
    ips = train.images_per_second(model, input_shape, dev, iters=10, as_list=case.as_list)
    row = {"model": name, "s/step": round(step, 4), "train images/s": round(input_shape[0] / step, 1),
           "peak GiB": round(peak, 2), "reserved GiB": round(reserved, 2), "eval batch s": round(eval_seconds, 3),
           "inference images/s": round(ips, 1), "steps/epoch (real data)": steps_per_epoch, "epochs": epochs,
           "min/epoch": round(steps_per_epoch * step / 60, 2),
           "min/run": round(epochs * steps_per_epoch * step / 60, 1),
           "finite loss": all(math.isfinite(h["train_loss"]) for h in resumed)}
    del model, optimizer, train_loader, val_loader
    torch.cuda.empty_cache()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nb", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--amp", choices=["fp16", "auto"], default="fp16")
    parser.add_argument("--steps", type=int, default=20, help="training steps timed per model")
    parser.add_argument("--only", nargs="*", help="model names to keep")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    dev = runtime.device()
    if dev.type != "cuda":
        raise SystemExit("this benchmark needs a CUDA GPU (runtime.device() is the CPU)")
    if args.amp == "fp16":  # a T4's path on any GPU: float16 autocast and fit's grad scaler
        runtime.amp_dtype = lambda d: torch.float16 if d.type == "cuda" else None
    info = {"gpu": torch.cuda.get_device_name(dev), "torch": torch.__version__, "amp": args.amp, "rows": {}}
    print(info["gpu"], info["torch"], "amp", args.amp)
    for nb in args.nb:
        for name, case in CASES[nb]().items():
            if args.only and name not in args.only:
                continue
            try:
                row = measure(name, case, args.steps, dev)
            except torch.OutOfMemoryError as error:
                row = {"model": name, "error": f"out of memory: {str(error)[:200]}"}
            info["rows"].setdefault(nb, []).append(row)
            print(nb, json.dumps(row), flush=True)
        for name, (model, shape) in INFERENCE.get(nb, dict)().items():
            if args.only and name not in args.only:
                continue
            row = measure_inference(name, model, shape, dev)
            info["rows"].setdefault(nb, []).append(row)
            print(nb, json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
