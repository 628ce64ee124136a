"""Where the notebook runs and how: smoke or full mode, the device, seeds, the config cell.

Smoke mode (``COURSE_SMOKE=1``) is what CI uses: the dataset's synthetic twin, small images,
few epochs, CPU. Full mode is the real run on Kaggle, Colab or a laptop with a GPU. The two
modes share every line of code; only the values returned by :func:`config` differ.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import random
import sys
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

SMOKE: bool = os.environ.get("COURSE_SMOKE", "0").strip().lower() not in ("", "0", "false", "no")

KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")


def on_kaggle() -> bool:
    """True inside a Kaggle notebook (the kernel sets KAGGLE_KERNEL_RUN_TYPE)."""
    return "KAGGLE_KERNEL_RUN_TYPE" in os.environ or KAGGLE_INPUT.is_dir()


def on_colab() -> bool:
    return "COLAB_RELEASE_TAG" in os.environ or "google.colab" in sys.modules


def platform_name() -> str:
    return "Kaggle" if on_kaggle() else "Colab" if on_colab() else "local"


def project_root() -> Path | None:
    """The repository checkout this package was installed from, or None for a plain pip install."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def work_dir() -> Path:
    """Where checkpoints and other outputs go: /kaggle/working on Kaggle (it is kept with the
    notebook's output), the repository's ``runs/`` in a checkout, else ``./runs``."""
    if on_kaggle():
        return KAGGLE_WORKING
    root = project_root()
    return (root if root else Path.cwd()) / "runs"


def device() -> torch.device:
    """The best device here: CUDA if there is one, else the CPU.

    Apple's MPS backend still lacks some operators the course uses, so it is opt-in:
    set ``COURSE_DEVICE=mps`` (or any torch device string) to choose the device yourself.
    """
    chosen = os.environ.get("COURSE_DEVICE")
    if chosen:
        return torch.device(chosen)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def num_workers(limit: int = 8) -> int:
    """DataLoader workers for this machine: one per CPU core this process may use (Kaggle gives 4,
    Colab 2), at most ``limit``, keeping the GPU fed without starving the main process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, limit))


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()  # not on Windows


def in_forked_child(function, *args):
    """``function(*args)`` run in a short-lived process forked from this one; its result comes back pickled."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as child:
        return child.submit(function, *args).result()


def _read_gpu(index: int | None) -> SimpleNamespace:
    props = torch.cuda.get_device_properties(index)
    return SimpleNamespace(name=props.name, total_memory=props.total_memory, major=props.major, minor=props.minor)


def gpu_properties(dev: torch.device) -> SimpleNamespace:
    """The GPU's ``name``, ``total_memory`` (bytes) and compute capability (``major``, ``minor``).

    Asking torch starts CUDA in this process, and a process that has started CUDA can no longer fork
    processes that use the GPU, which is how ``distributed.launch`` starts training on several GPUs from a
    notebook. So while CUDA has not started here, a short-lived forked process asks and reports back (if that
    fails, because something asked the CUDA driver before ``course_utils`` was imported, this process asks)."""
    if torch.cuda.is_initialized() or not can_fork():
        return _read_gpu(dev.index)
    try:
        return in_forked_child(_read_gpu, dev.index)
    except Exception:  # noqa: BLE001 - "Cannot re-initialize CUDA in forked subprocess" and the like
        return _read_gpu(dev.index)


def gpu_problem(dev: torch.device) -> str | None:
    """Why the installed torch cannot run on this GPU, or None when it can.

    A torch wheel carries kernels for a list of GPU architectures (``torch.cuda.get_arch_list()``).
    Kaggle's torch 2.10 (CUDA 12.8) starts at sm_70, so its P100 (sm_60) fails at the first kernel
    with "no kernel image is available"; the T4 (sm_75) works.
    """
    if dev.type != "cuda":
        return None
    gpu = gpu_properties(dev)
    major, minor = gpu.major, gpu.minor
    built = [int(a.split("_")[1]) for a in torch.cuda.get_arch_list() if a.startswith("sm_")]
    if not built or major * 10 + minor >= min(built):
        return None
    return (f"{gpu.name} (compute capability {major}.{minor}) is older than every GPU this torch was built for "
            f"(sm_{min(built)} and newer): it will fail with 'no kernel image is available'. On Kaggle choose "
            f"Accelerator -> GPU T4 x2; elsewhere use a newer GPU or a torch build for this one.")


def amp_dtype(dev: torch.device) -> torch.dtype | None:
    """The mixed-precision type this device supports well, or None for full fp32.

    bf16 on Ampere (compute capability 8.0) and later: same range as fp32, no loss scaling.
    fp16 on older GPUs such as Kaggle's T4 (7.5): needs a GradScaler (a T4 has no bf16).
    The CPU gains little from autocast for convolutions, so it runs in fp32.
    """
    if dev.type != "cuda":
        return None
    return torch.bfloat16 if gpu_properties(dev).major >= 8 else torch.float16


def seed_everything(seed: int = 0, deterministic: bool = False, benchmark: bool = True) -> None:
    """Seed Python, NumPy and torch (all GPUs).

    By default cuDNN benchmarks its convolution algorithms for each new input shape and keeps the
    fastest (``cudnn.benchmark``): faster training when the shapes repeat, but some of those
    algorithms are not deterministic, so two GPU runs with the same seed can differ slightly.
    ``benchmark=False`` for models whose shapes change at every step, such as Mask R-CNN (the number
    of regions per image varies): there the benchmarking never pays off, and on an H200 it made a
    training step 5 times slower (``docs/gpu_measurements.md``). ``deterministic=True`` asks
    for reproducible kernels instead, at some cost in speed. CPU runs are reproducible either way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = benchmark and not deterministic


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


KEY_PACKAGES = ("torch", "torchvision", "segmentation-models-pytorch", "albumentations", "monai", "nibabel",
                "pycocotools", "numpy", "course_utils")


def print_env() -> dict[str, str]:
    """Print (and return) what a bug report needs: platform, Python, packages, GPU, mode."""
    dev = device()
    info = {
        "platform": platform_name(),
        "python": platform.python_version(),
        **{name: _version(name) for name in KEY_PACKAGES},
        "device": str(dev),
        "cpu cores": str(os.cpu_count()),
        "mode": "SMOKE (synthetic twin, tiny run)" if SMOKE else "FULL (real data)",
    }
    if dev.type == "cuda":
        gpu = gpu_properties(dev)
        info["gpu"] = f"{gpu.name}, {gpu.total_memory / 2**30:.1f} GiB, compute {gpu.major}.{gpu.minor}"
        info["gpus"] = str(torch.cuda.device_count())  # NVML's count: it does not start CUDA
        info["cuda"] = str(torch.version.cuda)
        dtype = amp_dtype(dev)
        info["mixed precision"] = str(dtype).replace("torch.", "")
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    problem = gpu_problem(dev)
    if problem:
        print(f"WARNING: {problem}")
        info["warning"] = problem
    return info


def peak_memory(dev: torch.device | None = None) -> str:
    """The peak memory of this run so far: GPU memory allocated by torch on CUDA, else the peak
    resident memory of the whole process (what a laptop or a Kaggle CPU session must fit)."""
    dev = dev or device()
    if dev.type == "cuda":
        return f"GPU peak {torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB (torch allocations)"
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_bytes = peak if sys.platform == "darwin" else peak * 1024  # kilobytes on Linux, bytes on macOS
    return f"CPU process peak {peak_bytes / 2**30:.2f} GiB (resident memory)"


def config(smoke: dict[str, Any] | None = None, **full_values: Any) -> SimpleNamespace:
    """The notebook's one config cell.

    Pass the full-mode values as keywords and the few that change for a smoke run in ``smoke``.
    Returns the effective values (smoke ones in smoke mode) and prints them, so every run
    shows what it did::

        cfg = config(epochs=40, image_size=352, smoke=dict(epochs=3, image_size=64))
        cfg.epochs  # 40 in full mode, 3 with COURSE_SMOKE=1
    """
    smoke = smoke or {}
    unknown = sorted(set(smoke) - set(full_values))
    if unknown:
        raise KeyError(f"config(smoke=...) names {unknown}, which have no full-mode value; "
                       f"give every setting a full value first (known: {sorted(full_values)})")
    values = {**full_values, **smoke} if SMOKE else dict(full_values)
    print(f"config ({'smoke' if SMOKE else 'full'} mode)")
    width = max(map(len, values), default=0)
    for key, value in values.items():
        note = f"   (full: {full_values[key]!r})" if SMOKE and key in smoke else ""
        print(f"  {key:<{width}}  {value!r}{note}")
    return SimpleNamespace(**values)


def report(**headline: float | str) -> None:
    """Print the notebook's headline numbers; ``make run`` also collects them into its table.

    The runner sets ``COURSE_RESULT_FILE`` per notebook; elsewhere this only prints.
    """
    print("headline:", ", ".join(f"{k} = {v:.4f}" if isinstance(v, float) else f"{k} = {v}"
                                 for k, v in headline.items()))
    target = os.environ.get("COURSE_RESULT_FILE")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps({"mode": "smoke" if SMOKE else "full", **headline}))
