"""The benchmark scripts: loaders (benchmark_loaders.py) for every registered dataset, and make bench
(benchmark_training.py)."""

import importlib.util

import pytest
from conftest import ROOT

from course_utils import data

spec = importlib.util.spec_from_file_location("benchmark_loaders", ROOT / "scripts" / "benchmark_loaders.py")
benchmark_loaders = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark_loaders)


def test_every_registered_dataset_has_a_benchmark_pipeline():
    assert set(benchmark_loaders.PIPELINES) == set(data.REGISTRY) == set(benchmark_loaders.REAL_SIZE_TWINS)


@pytest.mark.parametrize("name", sorted(benchmark_loaders.PIPELINES))
def test_benchmark_reports_samples_per_second_on_a_small_twin(name, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DERIVED_DIR", str(tmp_path / "derived"))
    small = {"aisegment": {"n_groups": 4, "clips_per_group": 1, "images_per_clip": 8},  # 16 training photos
             "kvasir_seg": {"n_images": 20, "n_val": 2}, "camvid": {"size": (240, 180), "counts": {"train": 10}},
             "brats2020": {"case_numbers": (1, 2), "shape": (48, 48, 40)}, "lip": {"n_train": 20, "n_val": 1},
             "pennfudan": {"n_images": 8},
             "coco_panoptic": {"n_images": 12},  # 12: a training split of at least one batch
             "sintel": {"n_scenes": 8, "n_frames": 3, "size": (384, 768)},  # 10 training pairs: a batch of 8
             "kitti_flow": {"n_pairs": 2, "n_test": 0}, "davis2017": {"n_train": 1, "n_val": 1},
             "shapenet_part": {"n_per_category": 12}, "modelnet40": {}}[name]
    data.info(name).write_twin(tmp_path / name, **small)
    rate = benchmark_loaders.benchmark(name, workers=0, batches=1, root=tmp_path / name)
    assert rate > 0


spec = importlib.util.spec_from_file_location("benchmark_training", ROOT / "scripts" / "benchmark_training.py")
benchmark_training = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark_training)


def test_training_benchmark_pairs_name_real_pipelines_and_models():
    import benchmark_gpu  # scripts/ is on sys.path once benchmark_training is loaded

    for notebook, pipeline, model in benchmark_training.PAIRS:
        assert pipeline in benchmark_loaders.PIPELINES
        assert model in benchmark_gpu.CASES[notebook](), (notebook, model)
    trained = {"01", "02", "03", "04", "05", "06", "07", "08", "09"}
    assert {notebook for notebook, _, _ in benchmark_training.PAIRS} == trained


def test_training_benchmark_times_the_three_loops_and_writes_a_table():
    import torch

    cpu = torch.device("cpu")
    rows = [benchmark_training.run_loop(kind, cpu, steps=1, batch=2, size=32, workers=0, encoder="resnet18")
            for kind in benchmark_training.LOOPS]
    assert [row["loop"] for row in rows] == ["naive", "tuned", "fit"]
    assert all(row["s/step"] > 0 and row["images/s"] > 0 and row["peak GiB"] > 0 for row in rows)
    for row in rows:
        row["settings"] = benchmark_training.LOOP_SETTINGS[row["loop"]]
    data = [{"notebook": "03", "pipeline": "kvasir_seg", "model": "Unet", "batch": 16, "data samples/s": 50.0,
             "model samples/s": 100.0, "data / model": 0.5, "workers": 4}]
    info = {"device": benchmark_training.device_name(cpu), "date": "2026-11-26", "torch": torch.__version__,
            "amp": "none", "loop_batch": 2, "loop_size": 32, "loop_steps": 1, "model_steps": 1, "loops": rows,
            "data": data}
    table = benchmark_training.markdown(info)
    assert table.startswith("# Training speed: CPU") and "| fit |" in table and "0.5 (starves)" in table
    assert f"{rows[2]['images/s'] / rows[0]['images/s']:.2f}x" in table
    assert benchmark_training.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
