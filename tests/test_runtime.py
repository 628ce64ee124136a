import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from course_utils import runtime


def test_config_full_and_smoke_values(monkeypatch, capsys):
    monkeypatch.setattr(runtime, "SMOKE", False)
    cfg = runtime.config(epochs=40, size=352, smoke=dict(epochs=2))
    assert (cfg.epochs, cfg.size) == (40, 352)
    monkeypatch.setattr(runtime, "SMOKE", True)
    cfg = runtime.config(epochs=40, size=352, smoke=dict(epochs=2))
    assert (cfg.epochs, cfg.size) == (2, 352)
    out = capsys.readouterr().out
    assert "smoke mode" in out and "(full: 40)" in out


def test_config_rejects_smoke_only_keys():
    with pytest.raises(KeyError, match="epcohs"):
        runtime.config(epochs=40, smoke=dict(epcohs=2))


def test_device_and_its_override(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert runtime.device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.device() == torch.device("cpu")
    assert runtime.amp_dtype(torch.device("cpu")) is None


def test_seed_everything_reproduces():
    runtime.seed_everything(7)
    a = (torch.rand(3), np.random.rand(3))
    runtime.seed_everything(7)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_platform_detection(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "KAGGLE_INPUT", tmp_path / "absent")
    monkeypatch.delenv("KAGGLE_KERNEL_RUN_TYPE", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert runtime.platform_name() == "local"
    assert runtime.work_dir() == runtime.project_root() / "runs"
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20261101")
    assert runtime.platform_name() == "Colab"
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert runtime.platform_name() == "Kaggle" and runtime.work_dir() == runtime.KAGGLE_WORKING


def test_print_env(capsys):
    info = runtime.print_env()
    assert {"python", "torch", "device", "mode"} <= set(info)
    assert info["torch"] == torch.__version__.split("+")[0] or info["torch"] == torch.__version__
    assert "segmentation-models-pytorch" in capsys.readouterr().out


def test_report_prints_and_writes_for_the_runner(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("COURSE_RESULT_FILE", raising=False)
    runtime.report(dice=0.5)
    assert "dice = 0.5000" in capsys.readouterr().out
    target = tmp_path / "r" / "nb.json"
    monkeypatch.setenv("COURSE_RESULT_FILE", str(target))
    runtime.report(dice=0.8123, note="ok")
    assert json.loads(target.read_text())["dice"] == 0.8123


@pytest.mark.parametrize("capability, expected", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                                   ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_amp_dtype_follows_the_gpu_generation(monkeypatch, capability, expected):
    # T4 (7.5) and V100 (7.0) get fp16 with loss scaling; Ampere (8.0) and later get bf16
    gpu = SimpleNamespace(name="a GPU", total_memory=2**34, major=capability[0], minor=capability[1])
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda dev=None: gpu)
    assert runtime.amp_dtype(torch.device("cuda")) is expected


def test_peak_memory_reports_the_process_on_cpu():
    report = runtime.peak_memory(torch.device("cpu"))
    assert report.startswith("CPU process peak") and float(report.split()[3]) > 0.05  # GiB: torch alone is more


@pytest.mark.parametrize("capability, name, unusable", [((6, 0), "Tesla P100-PCIE-16GB", True),
                                                         ((7, 5), "Tesla T4", False)])
def test_print_env_warns_about_a_gpu_the_installed_torch_cannot_use(monkeypatch, capsys, capability, name, unusable):
    # Kaggle's torch 2.10 (CUDA 12.8) is built for sm_70 and newer: the P100 (sm_60) fails at the first kernel
    gpu = SimpleNamespace(name=name, total_memory=2**34, major=capability[0], minor=capability[1])
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda dev=None: gpu)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_70", "sm_75", "sm_80", "sm_90", "sm_100", "sm_120"])
    problem = runtime.gpu_problem(torch.device("cuda"))
    if unusable:
        assert name in problem and "6.0" in problem and "sm_70" in problem and "T4" in problem
    else:
        assert problem is None
    assert runtime.gpu_problem(torch.device("cpu")) is None
    monkeypatch.setattr(runtime, "device", lambda: torch.device("cpu"))
    runtime.print_env()
    assert "WARNING" not in capsys.readouterr().out  # the CPU is always usable


def test_num_workers_follows_the_cores_and_is_capped(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)  # a Kaggle machine
    assert runtime.num_workers() == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert runtime.num_workers() == 8 and runtime.num_workers(limit=2) == 2


def test_importing_course_utils_switches_off_albumentations_online_check():
    import course_utils  # noqa: F401

    assert os.environ["NO_ALBUMENTATIONS_UPDATE"] == "1"


def test_gpu_properties_are_read_without_starting_cuda_here(monkeypatch):
    # the patched reader runs in a forked child (it inherits the patch): this process does not start CUDA,
    # so distributed.launch can still fork training processes that use the GPUs
    pids = []
    gpu = SimpleNamespace(name="Tesla T4", total_memory=15 * 2**30, major=7, minor=5)

    def read(dev=None):
        pids.append(os.getpid())
        return gpu

    monkeypatch.setattr(torch.cuda, "get_device_properties", read)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    seen = runtime.gpu_properties(torch.device("cuda", 0))
    assert (seen.name, seen.major, seen.minor) == ("Tesla T4", 7, 5)
    assert pids == []  # asked in the child, not here
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert runtime.gpu_properties(torch.device("cuda", 0)).name == "Tesla T4" and pids == [os.getpid()]
