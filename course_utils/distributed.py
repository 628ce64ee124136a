"""Training on several GPUs at once: PyTorch's DistributedDataParallel (DDP), started by an existing launcher.

Data parallelism runs one process per GPU, each with a full copy of the model. Every optimizer step, each
process computes the gradients of its share of the batch, DDP averages them over all processes, and every
copy takes the same step, so the copies stay identical. A launcher starts the processes and tells each its
place through environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``):

- from a notebook, ``launch(train_fn)``: Hugging Face Accelerate's ``notebook_launcher``, which *forks* the
  notebook's process, so ``train_fn`` sees every variable the notebook defined. A process that has started
  CUDA (or asked the CUDA driver anything) cannot fork processes that use it, so nothing may touch the GPU
  before (``launch`` checks; ``course_utils`` makes ``torch.cuda.is_available()`` ask NVML, which is safe);
- from a terminal, ``torchrun --nproc_per_node=2 script.py`` (fresh processes: no such restriction).

Inside each process, ``train.fit`` and ``train.evaluate`` see that environment and use this module:
``setup`` joins the process group (NCCL between GPUs, gloo between CPU processes) and picks the process's GPU;
``wrap`` puts the model in DDP, with BatchNorm turned into SyncBatchNorm on GPUs so that its statistics cover
the whole batch; ``shard`` gives each process its part of a loader; ``all_sum`` and ``merge_metric`` add up
what the processes measured, so a validation number covers the whole validation set. Only rank 0 prints,
shows progress bars and writes checkpoints.

**The batch size of a loader stays the global batch**: with two processes each takes half of every batch.
A run on two GPUs then takes the same optimizer steps, with the same learning rate and schedule, as on one
GPU, only faster, and its checkpoints resume on either. Exactly the same steps where the loss is a mean over
samples (cross-entropy, BCE) and the batch splits evenly; a loss over the batch as a whole (smp's Dice loss
sums over it) becomes the mean of the processes' halves, and a dataset that does not split evenly gets a few
samples repeated to fill the last batch (``DistributedSampler`` pads). Each process draws its own random
numbers (augmentations, dropout), as the samples of one batch do in a single process.

Limits: every parameter must take part in the loss at every step (DDP's default; a model with an unused
auxiliary head needs ``find_unused_parameters=True``, which ``fit`` does not set), and a training loader must
be a ``DataLoader`` with a plain sampler (shuffled or not), which ``shard`` can split.
"""

from __future__ import annotations

import os
import random
import socket
import sys
import traceback
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler, Sampler, SequentialSampler

from course_utils import runtime


def launched() -> bool:
    """True in a process that a launcher started as one of several (torchrun, ``launch``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size() -> int:
    """How many processes train together: 1 unless the process group is set up."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's number, 0 to ``world_size() - 1``; rank 0 prints and writes the checkpoints."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def print0(*args, **kwargs) -> None:
    """``print`` on rank 0 only, so that a line appears once, not once per process."""
    if is_main():
        print(*args, **kwargs)


def setup(device: torch.device) -> torch.device:
    """The device this process trains on, after joining the process group when a launcher started it.

    ``device`` is what the process would use alone; on CUDA each process takes the GPU of its ``LOCAL_RANK``.
    Called by ``fit``; calling it again does nothing more."""
    if not launched():
        return device
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"process {local_rank} of {os.environ.get('LOCAL_WORLD_SIZE', '?')} has no GPU of its "
                               f"own: this machine has {torch.cuda.device_count()}. Start at most one process per GPU.")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # a process waits at most this long for the others (a validation, a checkpoint) before the group gives up
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(minutes=30))
    return device


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DDP (it averages the gradients over the processes during ``backward``); alone, unchanged.

    On GPUs, BatchNorm layers become SyncBatchNorm: their mean and variance are taken over the whole global
    batch rather than each process's half. SyncBatchNorm needs CUDA, so CPU processes (gloo, the tests) keep
    per-process statistics; a model without BatchNorm trains the same either way."""
    if world_size() == 1:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP (what to evaluate and save), or ``model`` itself."""
    return model.module if isinstance(model, DistributedDataParallel) else model


class EveryNth(Sampler):
    """Samples ``rank``, ``rank + n``, ``rank + 2n``... of a dataset: split over ``n`` processes, every sample is
    evaluated exactly once. (``DistributedSampler`` pads the set with repeated samples to split it evenly,
    which is right for training and would count those samples twice in a validation score.)"""

    def __init__(self, length: int, rank: int, n: int):
        self.indices = range(rank, length, n)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _shared_seed() -> int:
    """Rank 0's torch seed, the same in every process: each process must shuffle the same way to split one order."""
    return from_main(torch.initial_seed() % 2**31)


def _plain_order(sampler, dataset) -> bool:
    """In order, or shuffled without replacement once through: an order a ``DistributedSampler`` can take over."""
    return isinstance(sampler, SequentialSampler) or (
        isinstance(sampler, RandomSampler) and not sampler.replacement and sampler.num_samples == len(dataset))


def shard(loader, *, train: bool):
    """This process's part of ``loader`` (a ``DataLoader``); alone, ``loader`` itself.

    Training (``train=True``): a ``DistributedSampler`` that shuffles if the loader did (``shuffle=True``), with
    one seed for all processes and a new order every epoch (``fit`` calls its ``set_epoch``), and a batch of
    ``batch_size / world_size`` per process, so the global batch is the loader's. Evaluation: every n-th sample
    (``EveryNth``) at the loader's batch size. The loader's workers are shared out between the processes (the
    CPU cores do not multiply with the GPUs); everything else (collate function, pinned memory...) is kept.
    A loader whose sampler is already a ``DistributedSampler`` or ``EveryNth`` is returned as it is."""
    n = world_size()
    if n == 1:
        return loader
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise TypeError(f"with {n} processes, fit and evaluate split each loader between them, which needs a "
                        f"torch DataLoader built with batch_size (not a custom batch_sampler); got "
                        f"{type(loader).__name__}. Build a DataLoader, or give it a DistributedSampler yourself.")
    if isinstance(loader.sampler, (DistributedSampler, EveryNth)):
        return loader
    if isinstance(loader.dataset, IterableDataset) or not _plain_order(loader.sampler, loader.dataset):
        what = "an IterableDataset" if isinstance(loader.dataset, IterableDataset) else type(loader.sampler).__name__
        raise TypeError(f"with {n} processes, fit and evaluate split each loader's samples between them, and this "
                        f"loader has {what}, whose choice of samples would be lost. Use shuffle=True or False, or "
                        f"give the loader a DistributedSampler that does what you need in each process.")
    batch = loader.batch_size
    if train:
        if batch % n:
            raise ValueError(f"the training batch of {batch} cannot be split evenly over {n} processes: make the "
                             f"batch size a multiple of {n} (it stays the global batch; each process takes {n}th)")
        sampler = DistributedSampler(loader.dataset, n, rank(), shuffle=isinstance(loader.sampler, RandomSampler),
                                     seed=_shared_seed(), drop_last=loader.drop_last)
        batch //= n
    else:
        sampler = EveryNth(len(loader.dataset), rank(), n)
    workers = max(1, loader.num_workers // n) if loader.num_workers else 0
    generator = loader.generator  # seeds the workers: one per process, or they would all draw the same numbers
    if generator is not None:
        generator = torch.Generator().manual_seed(generator.initial_seed() + rank())
    return DataLoader(loader.dataset, batch, sampler=sampler, num_workers=workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last, timeout=loader.timeout,
                      worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context,
                      generator=generator, prefetch_factor=loader.prefetch_factor if workers else None,
                      persistent_workers=loader.persistent_workers)


def seed_per_process() -> None:
    """Give each process its own random numbers: rank 0's seed plus the rank, for Python, NumPy and torch.

    Forked processes start with the same random state, so without this both would draw the same augmentation
    (and DataLoader worker seeds) for the k-th sample of their halves of every batch. ``fit`` calls it after
    ``shard``; a resumed run then restores each process's own saved state."""
    if world_size() == 1:
        return
    seed = _shared_seed() + rank()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _device_for_collectives() -> torch.device:
    """NCCL moves CUDA tensors only; gloo CPU tensors."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_sum(values: list[float]) -> list[float]:
    """Each value added up over all processes (sums of losses, sample counts)."""
    if world_size() == 1:
        return list(values)
    total = torch.tensor(values, dtype=torch.float64, device=_device_for_collectives())
    dist.all_reduce(total)
    return total.tolist()


def from_main(value):
    """Rank 0's ``value`` in every process (a decision that must be the same everywhere, such as saving now)."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value) -> list:
    """Every process's ``value`` (any picklable object), in rank order, in every process."""
    if world_size() == 1:
        return [value]
    everyone = [None] * world_size()
    dist.all_gather_object(everyone, value)
    return everyone


def _on_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _on_cpu(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_on_cpu(item) for item in value]
    return value


def _combine(parts: list):
    """One total from the processes' parts: tensors and numbers added, lists joined in rank order, dicts by key."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(parts).sum(0)
    if isinstance(first, (int, float)):
        return sum(parts)
    if isinstance(first, list):
        return [item for part in parts for item in part]
    if isinstance(first, dict):
        return {key: _combine([part[key] for part in parts]) for key in first}
    raise TypeError(f"cannot add up a metric total of type {type(first).__name__} over processes")


def merge_metric(metric) -> None:
    """Make an accumulating metric (``reset``/``update``/``compute``) hold the totals of all processes, in place,
    so that ``compute`` gives the number over the whole set (one confusion matrix for mIoU, all images for AP).

    The metric names the attributes that hold its totals in a class attribute ``state``; tensors and numbers
    are added up, lists joined, dicts merged key by key (``_combine``)."""
    if world_size() == 1:
        return
    names = getattr(metric, "state", None)
    if names is None:
        raise TypeError(f"{type(metric).__name__} accumulates over the validation set but does not say which "
                        f"attributes hold its totals, so they cannot be added up over {world_size()} processes: "
                        f"give the class a `state` tuple of those attribute names (see metrics.MeanIoU)")
    everyone = gather({name: _on_cpu(getattr(metric, name)) for name in names})
    for name in names:
        setattr(metric, name, _combine([part[name] for part in everyone]))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cuda_works_after_fork() -> bool:
    """Whether a process forked from this one can use CUDA: not once this process has started CUDA, nor once it
    has asked the CUDA driver anything (``torch.cuda.is_available()`` does, unless told to ask NVML, as
    ``course_utils`` tells it). A forked child tells: torch marks it when its parent had."""
    if torch.cuda.is_initialized() or not runtime.can_fork():
        return False
    return not runtime.in_forked_child(torch._C._cuda_isInBadFork)


def launch(function: Callable, *args, num_processes: int | None = None) -> None:
    """Run ``function(*args)`` in ``num_processes`` processes (default: one per GPU) from a notebook, through
    Hugging Face Accelerate's ``notebook_launcher``; with one process (one GPU or none) it runs here.

    The processes are forked from this one, and CUDA cannot be used in a process forked after CUDA started.
    So this stops first, with a message, if anything in this process has used the GPU already; restart the
    kernel and run only cells that leave the GPU alone before this one. ``function`` must do everything on
    the GPU itself: build the model and call ``fit`` inside it."""
    from accelerate import notebook_launcher

    num_processes = num_processes or max(1, torch.cuda.device_count())
    if num_processes > 1 and torch.cuda.is_available() and not cuda_works_after_fork():
        why = ("CUDA has already been started in this process (a cell put a model or a tensor on the GPU)"
               if torch.cuda.is_initialized() else
               "this process has asked the CUDA driver about the GPUs (torch.cuda.is_available() or device_count() "
               "before course_utils was imported, or where NVML is missing)")
        raise RuntimeError(
            f"{why}, so the {num_processes} processes forked from it could not use the GPUs ('Cannot "
            "re-initialize CUDA in forked subprocess'). Restart the kernel, import course_utils first, run only "
            "the cells that do not touch the GPU (imports, config, data, the definitions the training function "
            "uses), then this one; if that does not help, run the training as a script with "
            "torchrun --nproc_per_node=2 (fresh processes, no fork).")

    def run_and_leave(*call_args):
        if num_processes > 1:
            # One CPU thread per process, as torchrun sets: a process forked after OpenMP's threads started (any
            # torch computation on the CPU in the notebook) hangs at its first parallel region otherwise.
            torch.set_num_threads(1)
        try:
            function(*call_args)
        except BaseException:  # say which process failed and why: the others only see a closed connection
            print(f"process {os.environ.get('RANK', 0)} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            raise
        finally:
            if dist.is_available() and dist.is_initialized():
                dist.destroy_process_group()

    notebook_launcher(run_and_leave, args, num_processes=num_processes, use_port=str(_free_port()))
