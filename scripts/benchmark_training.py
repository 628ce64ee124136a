"""How fast ``train.fit`` trains, against hand-written loops, and whether each notebook's data keeps up (make bench).

    python scripts/benchmark_training.py                 # both parts, on runtime.device(); writes benchmarks/
    python scripts/benchmark_training.py --part loops --steps 20 --compile

**Part 1, the training loop.** segmentation-models-pytorch's U-Net with a ResNet-34 encoder at 352x352, batch 16,
Dice + BCE loss, AdamW (notebook 03's full mode), fed by a DataLoader over random tensors held in memory (decoding
and augmentation are part 2's business), trained three ways, each in a process of its own so that its peak memory
and cuDNN's global switches are its own:

- ``naive``: the loop of a first PyTorch tutorial: fp32, the default memory layout, batches copied to the GPU from
  unpinned memory, ``cudnn.benchmark`` off (PyTorch's default);
- ``tuned``: mixed precision (``runtime.amp_dtype``: fp16 with a GradScaler on a T4, bf16 on Ampere and later),
  ``channels_last``, pinned memory and ``non_blocking`` copies, ``cudnn.benchmark`` on; ``--compile`` adds
  ``torch.compile``;
- ``fit``: ``train.fit`` as notebook 03 calls it (mixed precision, channels_last) on the tuned loop's loader.

Each runs two passes over ``--steps`` batches and times the second (the first warms up: cuDNN's choice of
algorithms, caches, compilation). ``fit``'s second epoch includes a validation of one image, timed and subtracted.

**Part 2, data against model.** For every notebook: samples/s of its full-mode training pipeline
(``benchmark_loaders.py``; the real data where ``data.find_local`` finds it, else a twin at the real size) with the
DataLoader workers ``runtime.num_workers()`` gives on this machine, against the images/s at which this device
trains the notebook's fastest full-mode model through ``fit`` on batches already in memory (``benchmark_gpu.py``'s
cases). Where the pipeline is slower than the model, the GPU waits for data.

Results: ``benchmarks/training_<device>.json`` and ``.md``, the device named in both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benchmark scripts, when imported by tests

from course_utils import runtime, train  # noqa: E402  (before albumentations: no online version check)

ROOT = Path(__file__).resolve().parent.parent
LOOPS = ("naive", "tuned", "fit")

# Part 2: each notebook's training pipelines (benchmark_loaders.PIPELINES) and its fastest full-mode model
# (a key of benchmark_gpu.CASES[notebook]; the fastest by docs/gpu_measurements.md), which starves first.
# Notebook 08 evaluates on KITTI and DAVIS but trains on Sintel only.
PAIRS = [
    ("01", "aisegment", "MODNet (MobileNetV2, hr_channels 32)"),
    ("02", "camvid", "pspnet"),
    ("03", "kvasir_seg", "Unet"),
    ("04", "brats2020", "3D U-Net"),
    ("05", "lip", "unet_resnet50"),
    ("06", "pennfudan", "Mask R-CNN R50-FPN v2"),
    ("07", "shapenet_part", "PointNet part segmentation (8.3 M)"),
    ("07", "modelnet40", "PointNet classifier (40 classes)"),
    ("08", "sintel", "FlowNetS (the paper's widths)"),
    ("09", "coco_panoptic", "Panoptic-DeepLab R34"),
]


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except (OSError, AttributeError):
        model = platform.processor() or platform.machine()
    return f"CPU: {model}, {runtime.num_workers(limit=1024)} cores"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower().split(",")[0]).strip("-")


def sig(x: float) -> float:
    """Three significant digits: a CPU trains some models at 0.05 samples/s, a GPU others at 2000."""
    return float(f"{x:.3g}")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _peak_gib(dev: torch.device) -> float:
    """Peak GPU memory allocated by torch; on the CPU, the peak resident memory of this process."""
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**30
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak if sys.platform == "darwin" else peak * 1024) / 2**30


def unet_and_data(steps: int, batch: int, size: int, encoder: str = "resnet34"):
    import segmentation_models_pytorch as smp

    model = smp.Unet(encoder, encoder_weights=None, classes=1)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(steps * batch, 3, size, size, generator=g)
    masks = (torch.rand(steps * batch, size, size, generator=g) < 0.2).float()
    dice = smp.losses.DiceLoss(mode="binary")

    def loss_fn(logits, target):
        target = target[:, None]
        return dice(logits, target) + nn.functional.binary_cross_entropy_with_logits(logits, target)

    return model, TensorDataset(images, masks), loss_fn


def fit_seconds_per_step(model, train_loader, loss_fn, dev, channels_last: bool, val_batch) -> float:
    """Seconds per training step of ``fit``'s second epoch, less its validation (one batch, timed here)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    val_loader = [val_batch]
    with tempfile.TemporaryDirectory() as ckpt:
        history = train.fit(model, train_loader, val_loader, loss_fn, optimizer, epochs=2, checkpoint_dir=ckpt,
                            resume=False, monitor="train_loss", device=dev, channels_last=channels_last,
                            progress=False, save_every=3600)
    _sync(dev)
    start = time.perf_counter()
    train.evaluate(model, val_loader, loss_fn, device=dev)
    _sync(dev)
    evaluation = time.perf_counter() - start
    return (history[1]["seconds"] - evaluation) / len(train_loader)


def run_loop(kind: str, dev: torch.device, steps: int, batch: int, size: int, workers: int,
             compile_model: bool = False, encoder: str = "resnet34") -> dict:
    """One of part 1's three loops, timed; call it in a fresh process for a clean peak memory."""
    runtime.seed_everything(0, benchmark=kind != "naive")  # naive: PyTorch's default, cudnn.benchmark off
    model, dataset, loss_fn = unet_and_data(steps, batch, size, encoder)
    tuned = kind != "naive"
    loader = DataLoader(dataset, batch, shuffle=True, drop_last=True, num_workers=workers,
                        pin_memory=tuned and dev.type == "cuda", persistent_workers=workers > 0)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    if kind == "fit":
        step = fit_seconds_per_step(model, loader, loss_fn, dev, True, dataset[:1])
    else:
        layout = torch.channels_last if tuned else torch.contiguous_format
        model.to(dev, memory_format=layout).train()
        net = torch.compile(model) if compile_model and tuned else model
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        dtype = runtime.amp_dtype(dev) if tuned else None
        scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)
        for epoch in range(2):  # the first pass warms up
            if epoch == 1:
                _sync(dev)
                start = time.perf_counter()
            for images, masks in loader:
                images = images.to(dev, non_blocking=tuned, memory_format=layout)
                masks = masks.to(dev, non_blocking=tuned)
                with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                    loss = loss_fn(net(images), masks)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
        _sync(dev)
        step = (time.perf_counter() - start) / len(loader)
    return {"loop": kind, "s/step": sig(step), "images/s": sig(batch / step),
            "peak GiB": round(_peak_gib(dev), 2), "compile": compile_model and kind == "tuned"}


LOOP_SETTINGS = {
    "naive": "fp32, contiguous, unpinned copies, cudnn.benchmark off",
    "tuned": "mixed precision, channels_last, pinned + non_blocking, cudnn.benchmark",
    "fit": "train.fit (mixed precision, channels_last) on the tuned loop's loader",
}


def loops(dev: torch.device, steps: int, batch: int, size: int, workers: int, compile_model: bool) -> list[dict]:
    """Part 1: each loop in its own process (``--one-loop``), so peak memory and global switches are its own."""
    rows = []
    for kind in LOOPS:
        command = [sys.executable, __file__, "--one-loop", kind, "--steps", str(steps), "--batch", str(batch),
                   "--size", str(size), "--workers", str(workers)] + (["--compile"] if compile_model else [])
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"the {kind} loop failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["settings"] = LOOP_SETTINGS[kind] + (" + torch.compile" if row["compile"] else "")
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def data_against_model(dev: torch.device, steps: int, workers: int, batches: int, notebooks: list[str]) -> list[dict]:
    """Part 2: each notebook's pipeline samples/s against its fastest model's training images/s here."""
    import benchmark_gpu
    import benchmark_loaders

    rows = []
    for notebook, pipeline, model_name in PAIRS:
        if notebook not in notebooks:
            continue
        case = benchmark_gpu.CASES[notebook]()[model_name]
        runtime.seed_everything(0, benchmark=case.cudnn_benchmark)
        step = fit_seconds_per_step(case.build(), [train._move(case.batch, dev)] * steps, case.loss_fn, dev,
                                    case.channels_last, train._move(case.val_batch or case.batch, dev))
        n = len(case.batch[0])
        torch.manual_seed(0)
        data_rate = benchmark_loaders.benchmark(pipeline, workers, batches)
        row = {"notebook": notebook, "pipeline": pipeline, "model": model_name, "batch": n,
               "data samples/s": sig(data_rate), "model samples/s": sig(n / step),
               "data / model": sig(data_rate * step / n), "workers": workers}
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# where a pipeline's twin is not at the real size (benchmark_loaders.REAL_SIZE_TWINS)
TWIN_NOTES = {"kvasir_seg": " (twin images 335-499 px wide; real ones reach 1920x1072, so this rate is too high)"}


def measured_gpu_rates(folder: Path = ROOT / "docs") -> dict[str, tuple[str, float]]:
    """Training samples/s of each model measured by ``benchmark_gpu.py`` with fp16 (the T4's precision) in
    ``docs/gpu_benchmark_*.json``: model name -> (GPU, samples/s)."""
    rates = {}
    for path in sorted(folder.glob("gpu_benchmark_*.json")):
        runs = json.loads(path.read_text())
        for run in [runs, *runs.values()]:  # one run per file, or several keyed by precision
            if isinstance(run, dict) and run.get("amp") == "fp16" and "rows" in run:
                for rows in run["rows"].values():
                    rates.update({row["model"]: (run["gpu"], row["train images/s"])
                                  for row in rows if "train images/s" in row})
    return rates


def markdown(info: dict) -> str:
    lines = [f"# Training speed: {info['device']}", "",
             f"Measured {info['date']} with `scripts/benchmark_training.py` (`make bench`), one run: torch "
             f"{info['torch']}, mixed precision here: {info['amp']}. Method: the script's docstring.", ""]
    if info.get("loops"):
        rows = {row["loop"]: row for row in info["loops"]}
        lines += [f"## The training loop: U-Net/ResNet-34, {info['loop_size']}x{info['loop_size']}, batch "
                  f"{info['loop_batch']}, {info['loop_steps']} timed steps", "",
                  "| loop | what it does | s/step | images/s | peak GiB |", "|---|---|---|---|---|"]
        def settings(text):
            if info["amp"] != "none":
                return text
            return (text.replace("mixed precision", "fp32 on this device")
                    .replace("pinned + non_blocking, cudnn.benchmark", "(pinned memory and cuDNN: GPU only)"))

        lines += [f"| {r['loop']} | {settings(r['settings'])} | {r['s/step']} | {r['images/s']} | {r['peak GiB']} |"
                  for r in info["loops"]]
        fit, naive, tuned = (rows[k]["images/s"] for k in ("fit", "naive", "tuned"))
        lines += ["", f"`fit` trains at **{fit / naive:.2f}x** the naive loop and **{fit / tuned:.2f}x** the tuned "
                  "loop (goals on a GPU: at least 1.8x and 0.95x).",
                  "Peak memory is torch's GPU allocation on a GPU; on the CPU, the peak resident memory of the "
                  "loop's process (the random images it trains on included)."]
        if info["amp"] == "none":
            lines += ["On the CPU there is no mixed precision, pinned memory or cuDNN, so the three loops differ "
                      "only in memory layout and `fit`'s bookkeeping: the goals are for a GPU."]
    if info.get("data"):
        lines += ["", f"## Data against model ({info['data'][0]['workers']} DataLoader workers, "
                  f"{info['model_steps']} timed model steps)", "",
                  "| notebook | pipeline | fastest model (batch) | data samples/s | model samples/s | data / model |",
                  "|---|---|---|---|---|---|"]
        for r in info["data"]:
            flag = " (starves)" if r["data / model"] < 1 else ""
            pipeline = r["pipeline"] + TWIN_NOTES.get(r["pipeline"], "")
            lines.append(f"| {r['notebook']} | {pipeline} | {r['model']} ({r['batch']}) | {r['data samples/s']} | "
                         f"{r['model samples/s']} | {r['data / model']}{flag} |")
        lines += ["", "*data / model* below 1: the loaders deliver fewer samples per second than the model trains "
                  "on, and the device waits. The model rate excludes data loading (batches already in memory); "
                  "the data rate excludes the model. Pipelines read twins at the real size where the real "
                  "dataset is not on this machine (`benchmark_loaders.py`)."]
        gpu = measured_gpu_rates()
        known = [r for r in info["data"] if r["model"] in gpu]
        if info["amp"] == "none" and known:
            lines += ["", "### These data rates against a GPU's measured training rates", "",
                      "The same data rates (this machine's CPU) against the training rates that `benchmark_gpu.py` "
                      "measured on a GPU with fp16 (`docs/gpu_benchmark_*.json`; data loading not included there). "
                      "Two measurements from two machines: a GPU session's CPU cores (Kaggle: 4) set the real "
                      "data rate.", "",
                      f"| notebook | pipeline | model | data samples/s (here, {info['data'][0]['workers']} workers) "
                      "| GPU | GPU samples/s | data / GPU |",
                      "|---|---|---|---|---|---|---|"]
            for r in known:
                name, rate = gpu[r["model"]]
                ratio = sig(r["data samples/s"] / rate)
                flag = " (would starve it)" if ratio < 1 else ""
                lines.append(f"| {r['notebook']} | {r['pipeline']} | {r['model']} | {r['data samples/s']} | "
                             f"{name} | {rate} | {ratio}{flag} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["loops", "data", "both"], default="both")
    parser.add_argument("--steps", type=int, help="timed training steps (default: 20 on a GPU, 2 on the CPU)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=352)
    parser.add_argument("--workers", type=int, default=runtime.num_workers())
    parser.add_argument("--batches", type=int, default=8, help="batches timed per data pipeline")
    parser.add_argument("--nb", nargs="*", default=sorted({nb for nb, _, _ in PAIRS}), help="notebooks for part 2")
    parser.add_argument("--compile", action="store_true", help="torch.compile the tuned loop's model")
    parser.add_argument("--one-loop", choices=LOOPS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    dev = runtime.device()
    steps = args.steps or (20 if dev.type == "cuda" else 2)
    if args.one_loop:
        print(json.dumps(run_loop(args.one_loop, dev, steps, args.batch, args.size, args.workers, args.compile)))
        return
    amp = runtime.amp_dtype(dev)
    info = {"device": device_name(dev), "date": date.today().isoformat(), "torch": torch.__version__,
            "amp": str(amp).replace("torch.", "") if amp else "none", "loop_batch": args.batch,
            "loop_size": args.size, "loop_steps": steps, "model_steps": max(1, steps // 2)}
    print(info["device"], flush=True)
    if args.part in ("loops", "both"):
        info["loops"] = loops(dev, steps, args.batch, args.size, args.workers, args.compile)
    if args.part in ("data", "both"):
        info["data"] = data_against_model(dev, info["model_steps"], args.workers, args.batches, args.nb)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"training_{slug(info['device'])}"
    stem.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(info))
    print(f"wrote {stem}.md and .json")


if __name__ == "__main__":
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    main()
