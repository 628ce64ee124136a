"""Data-parallel fit on this CPU: two gloo processes, started by distributed.launch (Accelerate's notebook_launcher),
must train what one process trains with the same global batch and seed, and resume a killed run."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from course_utils import distributed, train
from course_utils.metrics import MeanIoU

EPOCHS = 2


class Blobs(Dataset):
    """Images with a bright square to segment; ``kill_when`` makes rank 0 die (SIGKILL, as a dead session does)
    at its first sample once that checkpoint exists, that is in the epoch after it was written."""

    def __init__(self, n: int, seed: int, kill_when=None):
        g = torch.Generator().manual_seed(seed)
        self.masks = torch.zeros(n, 12, 12, dtype=torch.long)
        for i, (r, c) in enumerate(torch.randint(0, 7, (n, 2), generator=g).tolist()):
            self.masks[i, r:r + 5, c:c + 5] = 1
        self.images = self.masks[:, None].float().repeat(1, 3, 1, 1) + 0.5 * torch.randn(n, 3, 12, 12, generator=g)
        self.kill_when = kill_when
        self.seen = []  # the indices this process loaded (no DataLoader workers: they load here)
        self.draws = []  # a random number per sample, as an augmentation would draw

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        if self.kill_when is not None and self.kill_when.is_file() and distributed.rank() == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        self.seen.append(i)
        self.draws.append(torch.rand(()).item())
        return self.images[i], self.masks[i]


def make_model():
    torch.manual_seed(0)  # no BatchNorm: on CPU its statistics would be per process (SyncBatchNorm is CUDA-only)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1))


def pixel_accuracy(outputs, targets):  # one score per image
    return (outputs.argmax(1) == targets).float().mean((1, 2))


def run(checkpoint_dir, sampler_for_one_process: bool = False, kill: bool = False, resume: bool = True,
        epochs: int = EPOCHS) -> None:
    """One training run, as each process executes it (and as one process alone does)."""
    torch.manual_seed(0)
    kill_when = checkpoint_dir / "last.pt" if kill else None
    train_set, val_set = Blobs(32, seed=1, kill_when=kill_when), Blobs(13, seed=2)  # 13: uneven over 2 processes
    if sampler_for_one_process:  # the order DistributedSampler gives 2 processes, whole, for one process
        loader = DataLoader(train_set, 8, sampler=DistributedSampler(train_set, num_replicas=1, rank=0, seed=0))
    else:
        loader = DataLoader(train_set, 8, shuffle=True)  # 8 is the global batch: 4 per process with 2
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.5, total_steps=EPOCHS * 4)
    history = train.fit(model, loader, DataLoader(val_set, 4), nn.functional.cross_entropy, optimizer,
                        epochs=epochs, checkpoint_dir=checkpoint_dir, scheduler=scheduler, resume=resume,
                        metrics={"accuracy": pixel_accuracy, "miou": MeanIoU(2)}, monitor="miou", save_every=0,
                        device=torch.device("cpu"), progress=False)
    (checkpoint_dir / f"seen{distributed.rank()}.json").write_text(
        json.dumps([train_set.seen, val_set.seen, train_set.draws]))
    bn = distributed.unwrap(distributed.wrap(nn.Sequential(nn.BatchNorm2d(3)), torch.device("cpu")))  # every rank
    if distributed.is_main():
        (checkpoint_dir / "history.json").write_text(json.dumps(
            [{k: v for k, v in record.items() if k != "seconds"} for record in history]))
        (checkpoint_dir / "world.json").write_text(json.dumps(
            {"processes": distributed.world_size(), "cpu_batchnorm": type(bn[0]).__name__}))


def final_weights(checkpoint_dir):
    return train.load_checkpoint(checkpoint_dir / "last.pt")["model"]


def assert_same_weights(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-4, msg=f"{key} differs")


def history(checkpoint_dir):
    return json.loads((checkpoint_dir / "history.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, and two processes through the launcher, from the same seed."""
    root = tmp_path_factory.mktemp("ddp")
    run(root / "one", sampler_for_one_process=True)
    distributed.launch(run, root / "two", num_processes=2)
    return root


def test_two_processes_train_what_one_process_trains(runs):
    world = json.loads((runs / "two" / "world.json").read_text())
    assert world == {"processes": 2, "cpu_batchnorm": "BatchNorm2d"}  # SyncBatchNorm only on GPUs
    assert_same_weights(final_weights(runs / "one"), final_weights(runs / "two"))
    one, two = history(runs / "one"), history(runs / "two")
    assert len(one) == len(two) == EPOCHS
    for a, b in zip(one, two):  # train loss averaged over both processes; validation over all 13 images
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), key
    assert two[-1]["miou"] > 0.55  # it learns: background everywhere scores 0.41
    rng = train.load_checkpoint(runs / "two" / "last.pt")["rng"]
    assert len(rng) == 2  # each process's random state, to resume each exactly


def test_each_process_sees_its_share(runs):
    (train0, val0, draws0), (train1, val1, draws1) = (json.loads((runs / "two" / f"seen{r}.json").read_text())
                                                      for r in (0, 1))
    assert draws0 != draws1  # each process draws its own augmentations
    assert len(train0) == len(train1) == EPOCHS * 16  # half of 32 images per epoch
    for epoch in range(EPOCHS):
        part0, part1 = (set(seen[epoch * 16:(epoch + 1) * 16]) for seen in (train0, train1))
        assert not part0 & part1 and part0 | part1 == set(range(32))
    assert train0[:16] != train0[16:]  # a new order every epoch
    assert (len(val0), len(val1)) == (EPOCHS * 7, EPOCHS * 6)  # every validation image once, on one process
    assert set(val0) | set(val1) == set(range(13)) and not set(val0) & set(val1)


def test_a_killed_run_resumes_under_two_processes(runs, tmp_path):
    with pytest.raises(Exception):  # noqa: B017 - the launcher reports the killed process in its own way
        distributed.launch(functools.partial(run, kill=True), tmp_path, num_processes=2)
    assert len(train.load_checkpoint(tmp_path / "last.pt")["history"]) == 1  # died in epoch 2
    distributed.launch(run, tmp_path, num_processes=2)
    assert_same_weights(final_weights(runs / "two"), final_weights(tmp_path))
    for resumed, whole in zip(history(tmp_path), history(runs / "two"), strict=True):
        assert resumed == pytest.approx(whole)
    for rank in (0, 1):  # each process continues its own random numbers: epoch 2's draws as if never stopped
        resumed_draws = json.loads((tmp_path / f"seen{rank}.json").read_text())[2]
        assert resumed_draws == json.loads((runs / "two" / f"seen{rank}.json").read_text())[2][16:]


def test_a_checkpoint_with_one_random_state_still_resumes(runs, tmp_path):
    # last.pt files written before fit kept one random state per process hold a single dict
    run(tmp_path, sampler_for_one_process=True, epochs=1)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state["rng"] = state["rng"][0]
    torch.save(state, tmp_path / "last.pt")
    run(tmp_path, sampler_for_one_process=True)
    assert_same_weights(final_weights(runs / "one"), final_weights(tmp_path))


def test_launch_refuses_after_cuda_started(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with pytest.raises(RuntimeError, match="Restart the kernel"):
        distributed.launch(print, num_processes=2)


def test_launch_sees_a_poisoned_fork():
    # After a process asks the CUDA driver anything, processes forked from it cannot use CUDA ("poisoned" fork).
    # Importing the course must not do that; torch.cuda.is_available() would, so course_utils makes it ask NVML
    # (PYTORCH_NVML_BASED_CUDA_CHECK; not testable here: this machine has no NVML, and torch falls back to the
    # driver). Asking the driver directly is what launch must notice.
    code = ("import course_utils, os, torch\n"
            "from course_utils import data, distributed, runtime, train, weights\n"
            "print(os.environ['PYTORCH_NVML_BASED_CUDA_CHECK'], distributed.cuda_works_after_fork())\n"
            "torch._C._cuda_getDeviceCount()\n"
            "print(distributed.cuda_works_after_fork())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PYTORCH_NVML_BASED_CUDA_CHECK"})
    assert done.stdout.split() == ["1", "True", "False"], done.stderr[-2000:]


def test_one_process_needs_no_group():
    loader = DataLoader(list(range(10)), 3)
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    assert distributed.shard(loader, train=True) is loader
    assert distributed.all_sum([1.0, 2.0]) == [1.0, 2.0]
    metric = MeanIoU(2)
    distributed.merge_metric(metric)  # nothing to add up
    assert metric.cm.sum() == 0


def test_every_nth_covers_each_sample_once():
    parts = [list(distributed.EveryNth(13, rank, 3)) for rank in range(3)]
    assert sorted(sum(parts, [])) == list(range(13))
    assert [len(part) for part in parts] == [5, 4, 4]


def test_totals_add_up_by_type():
    parts = [{"cm": torch.eye(2, dtype=torch.long), "n": 3, "ious": [0.5], "pq": {"a": {"TP": 1, "IoU": 0.5}}},
             {"cm": torch.ones(2, 2, dtype=torch.long), "n": 2, "ious": [0.7, 0.1], "pq": {"a": {"TP": 2, "IoU": 1.0}}}]
    total = distributed._combine(parts)
    assert total["cm"].tolist() == [[2, 1], [1, 2]] and total["n"] == 5
    assert total["ious"] == [0.5, 0.7, 0.1] and total["pq"] == {"a": {"TP": 3, "IoU": 1.5}}


def test_every_accumulating_metric_names_its_totals():
    from course_utils import metrics

    for name in ("MeanIoU", "EPEMetric", "MaskAP", "MattingErrors", "PanopticQuality", "PartMIoU"):
        cls = getattr(metrics, name)
        assert cls.state, name
        assert all(name in cls.reset.__code__.co_names for name in cls.state), f"{name}.reset must set its state"


def test_sync_batchnorm_keeps_the_optimizers_parameters():
    # fit builds nothing anew: the optimizer was made before wrap() turns BatchNorm into SyncBatchNorm (on GPUs)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    parameters = list(model.parameters())
    assert nn.SyncBatchNorm.convert_sync_batchnorm(model) is model and isinstance(model[1], nn.SyncBatchNorm)
    assert all(a is b for a, b in zip(parameters, model.parameters(), strict=True))


def shard_checks(folder):
    from torch.utils.data import SubsetRandomSampler

    torch.distributed.init_process_group("gloo")
    seeded = DataLoader(list(range(8)), 2, shuffle=True, generator=torch.Generator().manual_seed(7))
    (folder / f"generator{distributed.rank()}.txt").write_text(
        str(distributed.shard(seeded, train=True).generator.initial_seed()))
    loader = DataLoader(list(range(8)), 2, sampler=SubsetRandomSampler([0, 2, 4, 6]))
    try:
        distributed.shard(loader, train=True)
    except TypeError as error:
        if distributed.is_main():
            (folder / "error.txt").write_text(str(error))


def test_shard_refuses_a_sampler_it_would_replace_and_seeds_workers_per_process(tmp_path):
    distributed.launch(shard_checks, tmp_path, num_processes=2)
    assert "SubsetRandomSampler" in (tmp_path / "error.txt").read_text()
    assert [(tmp_path / f"generator{r}.txt").read_text() for r in (0, 1)] == ["7", "8"]
