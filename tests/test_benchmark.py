"""The loader benchmark (scripts/benchmark_loaders.py) runs for every registered dataset."""

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
