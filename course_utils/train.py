"""Training, evaluation and prediction: one plain PyTorch loop, written to be read.

``fit`` is the loop of notebook 02 with the bookkeeping a real run needs: mixed precision where
the GPU supports it, gradient accumulation and clipping, a scheduler stepped every optimizer
step, validation every epoch, the best checkpoint, a checkpoint to resume from (written at most
every ``save_every`` seconds) so that a dead Kaggle session continues where it stopped, exactly,
and early stopping.

Batches are ``(inputs, targets)`` pairs. A metric is either a function ``(outputs, targets) ->
tensor`` of one score per sample, which ``evaluate`` averages over all samples (Dice of polyps),
or an object with ``reset()``, ``update(outputs, targets)`` and ``compute()`` that accumulates
over the whole set (mIoU from one confusion matrix, ``metrics.MeanIoU``).

Detection models (torchvision's Mask R-CNN) fit the same loop: their batches are a list of image
tensors and a list of target dicts, and they compute their own losses: ``model(images, targets)``
returns a dict of losses in training mode and a list of predictions in evaluation mode. Give such
a model ``loss_fn=None``: the training loss is then the sum of that dict, and validation computes
the metrics only (an accumulating one such as ``metrics.MaskAP``), no ``val_loss``.

In a process started by a multi-GPU launcher (``distributed.launch`` from a notebook, or ``torchrun``),
``fit`` and ``evaluate`` train and evaluate data-parallel, each process on its share of every batch;
``distributed`` explains how.
"""

from __future__ import annotations

import math
import os
import pickle
import random
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from tqdm.std import tqdm as tqdm_text

from course_utils import distributed, runtime

Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def autocast(dev: torch.device, enabled: bool = True):
    """Mixed precision for this device (see ``runtime.amp_dtype``), or a no-op."""
    dtype = runtime.amp_dtype(dev) if enabled else None
    return torch.autocast(dev.type, dtype=dtype) if dtype else nullcontext()


def _move(x, dev: torch.device):
    """A tensor, or the tensors inside lists, tuples and dicts (detection batches), on ``dev``."""
    if isinstance(x, torch.Tensor):
        return x.to(dev, non_blocking=True)
    if isinstance(x, (list, tuple)):
        return type(x)(_move(item, dev) for item in x)
    if isinstance(x, dict):
        return {key: _move(value, dev) for key, value in x.items()}
    return x


def _to(batch, dev: torch.device, channels_last: bool = False):
    inputs, targets = _move(batch[0], dev), _move(batch[1], dev)
    if channels_last and isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, targets


def _training_loss(model: nn.Module, inputs, targets, loss_fn: Callable | None) -> torch.Tensor:
    """The loss of one training batch. ``loss_fn=None``: the model computes its own losses from
    ``model(inputs, targets)``, a dict (torchvision's detection models), and the loss is their sum."""
    if loss_fn is None:
        return sum(model(inputs, targets).values())
    return loss_fn(model(inputs), targets)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, loss_fn: Callable | None = None,
             metrics: dict[str, Metric] | None = None, device: torch.device | None = None,
             amp: bool = True) -> dict[str, float]:
    """The mean loss (``val_loss``, when ``loss_fn`` is given) and every metric over ``loader``.

    A metric function returns one score per sample and is averaged over all samples; an
    accumulating metric (``reset``/``update``/``compute``, such as ``metrics.MeanIoU``) sees every
    batch and computes one value over the whole set, as a dataset-level mIoU must be.

    With several processes (``distributed``), each evaluates every n-th sample and the sums, counts
    and accumulated totals are added up over the processes: the numbers cover the whole set."""
    model = distributed.unwrap(model)  # no DDP here: the processes may see different numbers of batches
    dev = device or next(model.parameters()).device
    loader = distributed.shard(loader, train=False)
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
        if isinstance(outputs, torch.Tensor):  # detection models return a list of dicts
            outputs = outputs.float()
        for name, metric in per_sample.items():
            sums[name] += float(metric(outputs, targets).sum())
        for metric in accumulating.values():
            metric.update(outputs, targets)
        count += len(inputs)
    *totals, count = distributed.all_sum([*sums.values(), count])
    sums = dict(zip(sums, totals))
    for metric in accumulating.values():
        distributed.merge_metric(metric)
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
                      amp: bool = True, iters: int = 20, warmup: int = 3, as_list: bool = False) -> float:
    """Inference throughput on random input of ``input_shape`` (batch first), as the papers time
    it: after warm-up, model forward only, waiting for the GPU to finish. ``as_list``: the model takes
    a list of images, as torchvision's detection models do (random values in [0, 1], as images)."""
    dev = device or next(model.parameters()).device
    model.eval()
    x = torch.rand(input_shape, device=dev) if as_list else torch.randn(input_shape, device=dev)
    x = list(x) if as_list else x
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


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with ``weights_only=True``: tensors, numbers, strings, lists and dicts only.

    A checkpoint is a pickle, and unpickling arbitrary objects can run code; a ``last.pt`` found in
    someone else's Kaggle dataset must not. So ``fit`` stores nothing else (see ``_rng_state``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise RuntimeError(
            f"refusing to load checkpoint {path}: it holds objects other than tensors and plain values, and "
            f"loading those could run code ({str(error).splitlines()[0]}). If you wrote it with an older "
            f"course_utils, delete it or pass resume=False; never load a checkpoint you do not trust.") from error
    except Exception as error:
        raise RuntimeError(f"cannot read checkpoint {path} ({error}); delete it to start over") from error


def _rng_state() -> dict:
    """Every random generator's state, as plain values and tensors (loadable with weights_only=True)."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))
    return {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    numpy_state = dict(state["numpy"], state=dict(state["numpy"]["state"]))
    numpy_state["state"]["key"] = numpy_state["state"]["key"].numpy().astype(np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():  # saved on a machine with more GPUs: the ones here
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


def _improved(value: float, best: float | None, mode: str) -> bool:
    """A new best? NaN never is: a diverged validation must not become the checkpoint kept."""
    if math.isnan(value):
        return False
    return best is None or (value < best if mode == "min" else value > best)


# What changes as a run progresses, as opposed to what defines it: left out of the comparison on resume.
_SCHEDULER_PROGRESS = {"last_epoch", "_step_count", "_last_lr", "_get_lr_called_within_step", "_is_initial"}
_SCHEDULED_GROUP_KEYS = {"lr", "momentum", "betas"}  # a scheduler moves these every step


def run_settings(optimizer: torch.optim.Optimizer, scheduler, steps_per_epoch: int | None, accumulate: int,
                 monitor: str, mode: str) -> dict[str, str]:
    """What defines a run besides its length, as text: stored in ``last.pt`` and compared on resume.

    The optimizer's constructor arguments and per-group settings, and the scheduler's state without
    its progress counters, so a notebook that rebuilds them with the same settings (or passes the
    same objects again) matches, and a changed learning rate, weight decay or schedule length does not."""
    settings = {"steps per epoch": str(steps_per_epoch), "accumulate": str(accumulate),
                "monitor": f"{monitor} ({mode})", "optimizer": type(optimizer).__name__,
                "scheduler": type(scheduler).__name__ if scheduler is not None else "none"}
    settings.update({f"optimizer {key}": repr(value) for key, value in optimizer.defaults.items()})
    moving = _SCHEDULED_GROUP_KEYS if scheduler is not None else set()
    for i, group in enumerate(optimizer.param_groups):
        settings.update({f"optimizer group {i} {key}": repr(value) for key, value in group.items()
                         if key != "params" and key not in moving})
    if scheduler is not None:
        settings.update({f"scheduler {key}": repr(value) for key, value in scheduler.state_dict().items()
                         if key not in _SCHEDULER_PROGRESS})
    return settings


class ResumeError(RuntimeError):
    """``last.pt`` belongs to a run with other settings: continuing it would train something else."""


def _check_resume(path: Path, state: dict, settings: dict[str, str], epochs: int) -> None:
    changed = [key for key in sorted(settings.keys() | state["settings"].keys())
               if settings.get(key) != state["settings"].get(key)]
    done = len(state["history"])
    lines = [f"  {key}: {_short(state['settings'].get(key))} then, {_short(settings.get(key))} now" for key in changed]
    if done > epochs:
        lines.append(f"  epochs: {done} already trained, {epochs} asked for now")
    if lines:
        raise ResumeError(
            f"{path} is a run with other settings than this one:\n" + "\n".join(lines) + "\n"
            "Continuing it would mix two runs. Either start over with resume=False (replaces last.pt and best.pt), "
            "or give this run its own checkpoint_dir.")


def _short(text: str | None, limit: int = 80) -> str:
    text = "(not set)" if text is None else text
    return text if len(text) <= limit else text[:limit] + "..."


def fit(model: nn.Module, train_loader: Iterable, val_loader: Iterable, loss_fn: Callable | None,
        optimizer: torch.optim.Optimizer, *, epochs: int, checkpoint_dir: str | Path,
        metrics: dict[str, Metric] | None = None, scheduler=None, monitor: str = "val_loss",
        mode: str | None = None, resume: bool = True, patience: int | None = None,
        device: torch.device | None = None, amp: bool = True, channels_last: bool = False,
        accumulate: int = 1, clip_grad_norm: float | None = None, save_every: float = 120.0,
        progress: bool = True) -> list[dict]:
    """Train ``model`` and return its history: one dict per epoch (losses, metrics, lr, seconds).

    - ``monitor``/``mode``: the validation number that picks the best epoch ("min" for losses,
      "max" otherwise unless given); a NaN is never a new best. ``patience``: stop after that many
      epochs without a new best.
    - ``checkpoint_dir``: ``last.pt`` (everything needed to continue) and ``best.pt`` (the best
      epoch's weights). They are written together after the last epoch and otherwise at most every
      ``save_every`` seconds (0: every epoch): a ResNet-34 U-Net's ``last.pt`` is about 300 MB, and a
      session that dies loses at most that much training.
    - ``resume=True`` continues the run in ``last.pt``, exactly as if it had not stopped (random
      generators included; not those of a loader's ``persistent_workers``, seeded once when they start,
      so their augmentations differ after a restart), after checking that it is the same run: same
      optimizer, scheduler and their hyper-parameters, steps per epoch, accumulation and monitor, and
      no fewer epochs than already trained (more epochs are fine when the scheduler does not depend on
      them). Otherwise it stops before training and says what changed. ``resume=False`` starts over
      and replaces the files.
    - ``scheduler`` is stepped after every optimizer step (OneCycle, cosine with warm-up...).
    - ``accumulate``: optimizer step every that many batches (a larger effective batch).
    - ``loss_fn=None`` for a model that computes its own losses (torchvision's detection models; see
      the module's docstring): then there is no ``val_loss``, and ``monitor`` names a metric.
    - Started as one of several processes (``distributed``): data-parallel, the model in DDP, each
      process on ``1/n`` of every training batch (the loaders' batch size stays the global batch),
      validation split over the processes and added up, and rank 0 alone printing and saving.
    At the end the model holds the weights of the best epoch.
    """
    dev = distributed.setup(device or runtime.device())
    mode = mode or ("min" if monitor.endswith("loss") else "max")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
    known = ["train_loss", *(["val_loss"] if loss_fn is not None else []), *(metrics or {})]
    if monitor not in known:
        raise ValueError(f"monitor={monitor!r} is none of the numbers fit computes: {known}; name one of them "
                         f"(a metric's name is its key in `metrics`)")
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if hasattr(loader, "__len__") and len(loader) == 0:
            raise ValueError(f"{name} yields no batches: its dataset is empty, or smaller than one batch with "
                             f"drop_last=True. Check the data folder and split, or lower the batch size.")
    train_loader = distributed.shard(train_loader, train=True)  # alone: the loader itself
    val_loader = distributed.shard(val_loader, train=False)
    distributed.seed_per_process()  # alone: nothing
    steps_per_epoch = len(train_loader) if hasattr(train_loader, "__len__") else None
    settings = run_settings(optimizer, scheduler, steps_per_epoch, accumulate, monitor, mode)
    model.to(dev, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    dtype = runtime.amp_dtype(dev) if amp else None
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype == torch.float16)  # fp16 needs loss scaling
    ckpt_dir = Path(checkpoint_dir)
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"

    history: list[dict] = []
    best, best_weights, bad_epochs, stopped = None, None, 0, False
    if resume and distributed.from_main(last_path.is_file()):  # one decision for every process
        state = load_checkpoint(last_path)
        _check_resume(last_path, state, settings, epochs)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as error:
            raise RuntimeError(f"{last_path} holds another model's weights ({error}); use another "
                               f"checkpoint_dir or resume=False to start over") from error
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        rng = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]  # one per process
        if distributed.rank() < len(rng):  # a process the saved run did not have keeps its own seed
            _set_rng_state(rng[distributed.rank()])
        history, best, bad_epochs, stopped = state["history"], state["best"], state["bad_epochs"], state["stopped"]
        if best_path.is_file():
            best_weights = load_checkpoint(best_path)
        distributed.print0(f"resuming from {last_path}: {len(history)}/{epochs} epochs done")
    elif distributed.is_main():  # a fresh run must not mix with an old one; remove only our own files
        last_path.unlink(missing_ok=True)
        best_path.unlink(missing_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    net = distributed.wrap(model, dev)  # alone: the model itself
    model = distributed.unwrap(net)  # SyncBatchNorm replaces BatchNorm inside the model
    sampler = getattr(train_loader, "sampler", None)

    last_save = time.monotonic()
    for epoch in range(len(history) + 1, epochs + 1):
        if stopped:
            break
        start = time.perf_counter()
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)  # DistributedSampler: a new order every epoch, the same in every process
        net.train()
        optimizer.zero_grad(set_to_none=True)
        running, seen = 0.0, 0
        # several processes: a text bar, from rank 0 (a notebook's widget bar cannot be updated from a forked process)
        bar = tqdm if distributed.world_size() == 1 else tqdm_text
        batches = bar(train_loader, desc=f"epoch {epoch}/{epochs}", leave=False,
                      disable=not progress or not distributed.is_main())
        for step, batch in enumerate(batches, start=1):
            inputs, targets = _to(batch, dev, channels_last)
            stepping = step % accumulate == 0 or step == steps_per_epoch
            # DDP averages gradients during backward; between optimizer steps that is wasted work
            with nullcontext() if stepping or net is model else net.no_sync():
                with autocast(dev, amp):
                    loss = _training_loss(net, inputs, targets, loss_fn)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss is {loss.item()} at epoch {epoch}, step {step}: lower the learning rate, check "
                        f"the inputs and labels of this batch, or turn mixed precision off (amp=False)")
                scaler.scale(loss / accumulate).backward()
            if stepping:
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
        running, seen = distributed.all_sum([running, seen])
        if seen == 0:
            raise ValueError(f"train_loader yielded no samples in epoch {epoch}; check its dataset")

        record = {"epoch": epoch, "train_loss": running / seen,
                  **evaluate(model, val_loader, loss_fn, metrics, dev, amp),
                  "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - start}
        history.append(record)
        note = ""
        if _improved(record[monitor], best, mode):
            best, bad_epochs, note = record[monitor], 0, "  *best*"
            best_weights = {"model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
                            "epoch": epoch, monitor: best}
        else:
            bad_epochs += 1
            if math.isnan(record[monitor]):
                note = f"  ({monitor} is NaN: not a new best)"
            if patience is not None and bad_epochs >= patience:
                stopped, note = True, note + f"  (no better {monitor} for {patience} epochs: stopping early)"
        # rank 0's clock decides, so that every process takes part in gathering the random states
        if distributed.from_main(epoch == epochs or stopped or time.monotonic() - last_save >= save_every):
            rng = distributed.gather(_rng_state())  # one state per process, to resume each exactly
            if distributed.is_main():
                if best_weights is not None:
                    _save(best_path, best_weights)
                _save(last_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                  "scheduler": scheduler.state_dict() if scheduler is not None else None,
                                  "scaler": scaler.state_dict(), "rng": rng, "history": history,
                                  "best": best, "bad_epochs": bad_epochs, "stopped": stopped, "settings": settings})
            last_save = time.monotonic()
        distributed.print0("  ".join([f"epoch {epoch}/{epochs}"] +
                                     [f"{k} {v:.4g}" for k, v in record.items() if k not in ("epoch", "seconds")] +
                                     [f"{record['seconds']:.1f}s"]) + note)

    if best_weights is not None:
        model.load_state_dict(best_weights["model"])
        distributed.print0(f"model holds the best epoch: {best_weights['epoch']} "
                           f"({monitor} {best_weights[monitor]:.4g})")
    else:
        distributed.print0(f"no epoch had a valid {monitor}: the model holds the last epoch's weights")
    return history
