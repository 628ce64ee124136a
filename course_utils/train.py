"""Training, evaluation and prediction: one plain PyTorch loop, written to be read.

``fit`` is the loop of notebook 02 with the bookkeeping a real run needs: mixed precision where
the GPU supports it, gradient accumulation and clipping, a scheduler stepped every optimizer
step, validation every epoch, the best checkpoint, a checkpoint every epoch so that a dead
Kaggle session resumes where it stopped, and early stopping.

Batches are ``(inputs, targets)`` pairs. A metric is either a function ``(outputs, targets) ->
tensor`` of one score per sample, which ``evaluate`` averages over all samples (Dice of polyps),
or an object with ``reset()``, ``update(outputs, targets)`` and ``compute()`` that accumulates
over the whole set (mIoU from one confusion matrix, ``metrics.MeanIoU``).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from course_utils import runtime

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def autocast(dev: torch.device, enabled: bool = True):
    """Mixed precision for this device (see ``runtime.amp_dtype``), or a no-op."""
    dtype = runtime.amp_dtype(dev) if enabled else None
    return torch.autocast(dev.type, dtype=dtype) if dtype else nullcontext()


def _to(batch, dev: torch.device, channels_last: bool = False):
    inputs, targets = batch
    inputs = inputs.to(dev, non_blocking=True)
    if channels_last and inputs.ndim == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, targets.to(dev, non_blocking=True)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, loss_fn: Callable | None = None,
             metrics: dict[str, Metric] | None = None, device: torch.device | None = None,
             amp: bool = True) -> dict[str, float]:
    """Mean loss (``val_loss``) and mean per-sample metrics over ``loader``."""
    dev = device or next(model.parameters()).device
    model.eval()
    metrics = metrics or {}
    accumulating = {name: m for name, m in metrics.items() if hasattr(m, "update")}
    per_sample = {name: m for name, m in metrics.items() if name not in accumulating}
    for metric in accumulating.values():
        metric.reset()
    sums = dict.fromkeys(["val_loss", *per_sample], 0.0)
    count = 0
    for batch in loader:
        inputs, targets = _to(batch, dev)
        with autocast(dev, amp):
            outputs = model(inputs)
            if loss_fn is not None:
                sums["val_loss"] += float(loss_fn(outputs, targets)) * len(inputs)
        outputs = outputs.float()
        for name, metric in per_sample.items():
            sums[name] += float(metric(outputs, targets).sum())
        for metric in accumulating.values():
            metric.update(outputs, targets)
        count += len(inputs)
    if count == 0:
        raise ValueError("the evaluation loader yielded no samples")
    if loss_fn is None:
        del sums["val_loss"]
    return {**{name: total / count for name, total in sums.items()},
            **{name: float(metric.compute()) for name, metric in accumulating.items()}}


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: torch.device | None = None, amp: bool = True,
            postprocess: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All outputs and targets of ``loader``, concatenated on the CPU.

    Outputs are float32, or what ``postprocess`` makes of each batch: ``lambda out: out.argmax(1)``
    keeps class maps instead of every class score, a fraction of the memory."""
    dev = device or next(model.parameters()).device
    model.eval()
    outputs, targets = [], []
    for batch in loader:
        inputs, target = _to(batch, dev)
        with autocast(dev, amp):
            output = model(inputs).float()
        outputs.append((postprocess(output) if postprocess else output).cpu())
        targets.append(target.cpu())
    return torch.cat(outputs), torch.cat(targets)


@torch.no_grad()
def images_per_second(model: nn.Module, input_shape: tuple[int, ...], device: torch.device | None = None,
                      amp: bool = True, iters: int = 20, warmup: int = 3) -> float:
    """Inference throughput on random input of ``input_shape`` (batch first), as the papers time
    it: after warm-up, model forward only, waiting for the GPU to finish."""
    dev = device or next(model.parameters()).device
    model.eval()
    x = torch.randn(input_shape, device=dev)
    with autocast(dev, amp):
        for _ in range(warmup):
            model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        for _ in range(iters):
            model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    return iters * input_shape[0] / (time.perf_counter() - start)


def _save(path: Path, state: dict) -> None:
    """Write a checkpoint atomically: a session killed mid-write leaves the previous one intact."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load(path: Path) -> dict:
    try:
        # weights_only=False: the file also holds RNG states and history, and we wrote it ourselves
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise RuntimeError(f"cannot read checkpoint {path} ({error}); delete it to start over") from error


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _improved(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value < best if mode == "min" else value > best)


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable, loss_fn: Callable,
        optimizer: torch.optim.Optimizer, *, epochs: int, checkpoint_dir: str | Path,
        metrics: dict[str, Metric] | None = None, scheduler=None, monitor: str = "val_loss",
        mode: str | None = None, resume: bool = True, patience: int | None = None,
        device: torch.device | None = None, amp: bool = True, channels_last: bool = False,
        accumulate: int = 1, clip_grad_norm: float | None = None, progress: bool = True) -> list[dict]:
    """Train ``model`` and return its history: one dict per epoch (losses, metrics, lr, seconds).

    - ``monitor``/``mode``: the validation number that picks the best epoch ("min" for losses,
      "max" otherwise unless given). ``patience``: stop after that many epochs without a new best.
    - ``checkpoint_dir``: ``last.pt`` (everything needed to continue) after every epoch and
      ``best.pt`` (weights) at each new best. With ``resume=True`` an existing ``last.pt``
      continues the run; ``resume=False`` starts over and replaces it.
    - ``scheduler`` is stepped after every optimizer step (OneCycle, cosine with warm-up...).
    - ``accumulate``: optimizer step every that many batches (a larger effective batch).
    At the end the model holds the weights of the best epoch.
    """
    dev = device or runtime.device()
    mode = mode or ("min" if monitor.endswith("loss") else "max")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    model.to(dev, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    dtype = runtime.amp_dtype(dev) if amp else None
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)  # fp16 needs loss scaling
    ckpt_dir = Path(checkpoint_dir)
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"

    history: list[dict] = []
    best, bad_epochs, stopped = None, 0, False
    if resume and last_path.is_file():
        state = _load(last_path)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise RuntimeError(f"{last_path} holds another model's weights ({error}); use another "
                               f"checkpoint_dir or resume=False to start over") from error
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        history, best, bad_epochs, stopped = state["history"], state["best"], state["bad_epochs"], state["stopped"]
        print(f"resuming from {last_path}: {len(history)}/{epochs} epochs done")
    else:  # a fresh run must not mix with an old one; remove only our own files
        last_path.unlink(missing_ok=True)
        best_path.unlink(missing_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    for epoch in range(len(history) + 1, epochs + 1):
        if stopped:
            break
        start = time.perf_counter()
        model.train()
        optimizer.zero_grad(set_to_none=True)
        running, seen = 0.0, 0
        batches = tqdm(train_loader, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress)
        n_batches = len(train_loader)
        for step, batch in enumerate(batches, start=1):
            inputs, targets = _to(batch, dev, channels_last)
            with autocast(dev, amp):
                loss = loss_fn(model(inputs), targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss.item()} at epoch {epoch}, step {step}: lower the learning rate, check "
                    f"the inputs and labels of this batch, or turn mixed precision off (amp=False)")
            scaler.scale(loss / accumulate).backward()
            if step % accumulate == 0 or step == n_batches:
                if clip_grad_norm is not None:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                    nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if scheduler is not None:
                    scheduler.step()
            running += loss.item() * len(inputs)
            seen += len(inputs)
            batches.set_postfix(loss=f"{running / seen:.4f}")

        record = {"epoch": epoch, "train_loss": running / max(seen, 1),
                  **evaluate(model, val_loader, loss_fn, metrics, dev, amp),
                  "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - start}
        if monitor not in record:
            raise KeyError(f"monitor={monitor!r} is not among the validation numbers {sorted(record)}")
        history.append(record)
        note = ""
        if _improved(record[monitor], best, mode):
            best, bad_epochs, note = record[monitor], 0, "  *best*"
            _save(best_path, {"model": model.state_dict(), "epoch": epoch, monitor: best})
        else:
            bad_epochs += 1
            if patience is not None and bad_epochs >= patience:
                stopped, note = True, f"  (no better {monitor} for {patience} epochs: stopping early)"
        _save(last_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict() if scheduler is not None else None,
                          "scaler": scaler.state_dict(), "rng": _rng_state(), "history": history,
                          "best": best, "bad_epochs": bad_epochs, "stopped": stopped})
        print("  ".join([f"epoch {epoch}/{epochs}"] +
                        [f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "seconds")] +
                        [f"{record['seconds']:.1f}s"]) + note)

    if best_path.is_file():
        best_state = _load(best_path)
        model.load_state_dict(best_state["model"])
        print(f"model holds the best epoch: {best_state['epoch']} ({monitor} {best_state[monitor]:.4g})")
    return history
