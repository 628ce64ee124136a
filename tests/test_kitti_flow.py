"""KITTI 2015 flow (course_utils/datasets/kitti_flow.py): the twin in the real layout read back through the loader,
sparse truth, frames of several sizes, splits by pair number, sparse-aware augmentation, clear errors."""

import shutil

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from course_utils.datasets import kitti_flow
from course_utils.datasets.flow import FlowAugment, read_kitti_flow
from course_utils.datasets.kitti_flow import KittiFlow, split_of
from course_utils.models.warp import backward_warp

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return kitti_flow.write_twin(tmp_path_factory.mktemp("kitti") / "data_scene_flow", n_pairs=12, n_test=1)


@pytest.fixture
def copy(twin, tmp_path):
    return shutil.copytree(twin, tmp_path / "copy")


def reconstruction_error(frames: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor) -> float:
    warped, inside = backward_warp(frames[1:2], flow[None])
    keep = mask & inside[0, 0]
    return (warped[0] - frames[0]).abs().mean(0)[keep].mean().item()


def test_the_twin_has_the_real_layout(twin):
    training = twin / "training"
    assert sorted(p.name for p in (training / "image_2").iterdir())[:4] == [
        "000000_10.png", "000000_11.png", "000001_10.png", "000001_11.png"]
    assert len(list((training / "image_2").iterdir())) == 24 and len(list((training / "flow_occ").iterdir())) == 12
    assert sorted(p.name for p in (training / "flow_noc").iterdir()) == [f"{n:06d}_10.png" for n in range(12)]
    assert sorted(p.name for p in (twin / "testing" / "image_2").iterdir()) == ["000000_10.png", "000000_11.png"]
    raw = cv2.imread(str(training / "flow_occ" / "000000_10.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape[2] == 3  # 16-bit, as KITTI's
    sizes = {cv2.imread(str(p)).shape[:2] for p in (training / "image_2").glob("*_10.png")}
    assert len(sizes) > 1 and all(46 <= h <= 48 and 156 <= w <= 160 for h, w in sizes)  # several sizes, like KITTI


def test_the_truth_is_sparse_like_lidar(twin):
    for n in range(12):
        _, valid = read_kitti_flow(twin / "training" / "flow_occ" / f"{n:06d}_10.png")
        _, valid_noc = read_kitti_flow(twin / "training" / "flow_noc" / f"{n:06d}_10.png")
        height = valid.shape[0]
        assert not valid[: height // 4].any()  # nothing in the sky
        assert 0.1 < valid.mean() < 0.5
        assert (valid_noc <= valid).all() and valid_noc.sum() <= valid.sum()


def test_items_keep_their_native_size(twin):
    dataset = KittiFlow(twin, "all")
    assert len(dataset) == 12 and dataset.numbers == list(range(12))
    shapes = set()
    for index in range(len(dataset)):
        frames, target = dataset[index]
        height, width = frames.shape[-2:]
        shapes.add((height, width))
        assert frames.shape == (2, 3, height, width) and frames.dtype == torch.float32 and frames.max() <= 1
        assert target["flow"].shape == (2, height, width) and target["flow"].dtype == torch.float32
        assert target["valid"].shape == (height, width) and target["valid"].dtype == torch.bool
        assert target["index"] == index and (target["flow"][:, ~target["valid"]] == 0).all()
    assert len(shapes) > 1


def test_the_flow_explains_the_frames(twin):
    """On the non-occluded truth (flow_noc), warping frame 11 back by the flow gives frame 10."""
    dataset = KittiFlow(twin, "all", occ=False)
    errors, still = [], []
    for index in range(len(dataset)):
        frames, target = dataset[index]
        errors.append(reconstruction_error(frames, target["flow"], target["valid"]))
        still.append(reconstruction_error(frames, torch.zeros_like(target["flow"]), target["valid"]))
    assert max(errors) < 0.025 and np.mean(still) > 2.5 * np.mean(errors), (errors, still)
    occ = KittiFlow(twin, "all", occ=True)
    assert sum(occ[i][1]["valid"].sum() for i in range(12)) > sum(dataset[i][1]["valid"].sum() for i in range(12))


def test_splits_by_pair_number():
    assert [split_of(n) for n in range(10)] == ["train", "monitor", "train", "train", "test",
                                                "train", "train", "train", "train", "test"]
    counts = {s: sum(split_of(n) == s for n in range(200)) for s in ("train", "monitor", "test")}
    assert counts == {"train": 140, "monitor": 20, "test": 40}


def test_splits_are_disjoint(twin):
    numbers = {s: set(KittiFlow(twin, s).numbers) for s in ("train", "monitor", "test")}
    assert numbers["test"] == {4, 9} and numbers["monitor"] == {1, 11}
    assert not (numbers["train"] & numbers["test"] or numbers["train"] & numbers["monitor"])
    assert numbers["train"] | numbers["monitor"] | numbers["test"] == set(range(12))
    with pytest.raises(ValueError, match="split must be"):
        KittiFlow(twin, "val")


def test_augmentation_keeps_the_sparse_flow_right(twin):
    """Scale (sparse resampling of the truth), crop and flip: frame 2 warped by the new flow still gives frame 1
    on the valid pixels, and no vector is invented (valid stays sparse)."""
    torch.manual_seed(0)
    augment = FlowAugment(crop_size=(40, 128), scale=(0.9, 1.4), hflip=0.5, jitter=0.2, sparse=True)
    dataset = KittiFlow(twin, "all", transform=augment, occ=False)
    errors = []
    for index in range(len(dataset)):
        frames, target = dataset[index]
        assert frames.shape == (2, 3, 40, 128) and target["valid"].float().mean() < 0.5
        errors.append(reconstruction_error(frames, target["flow"], target["valid"]))
    assert np.mean(errors) < 0.03, errors


def test_frames_of_several_sizes_batch_after_a_crop(twin):
    dataset = KittiFlow(twin, "train", transform=FlowAugment(crop_size=(40, 144), sparse=True))
    frames, target = next(iter(DataLoader(dataset, batch_size=6)))
    assert frames.shape == (6, 2, 3, 40, 144) and target["valid"].shape == (6, 40, 144)


def test_missing_files_are_named(copy):
    (copy / "training" / "flow_occ" / "000003_10.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"flow_occ/000003_10.png is missing: the flow truth of pair 000003"):
        KittiFlow(copy, "all")
    KittiFlow(copy, "all", occ=False)  # flow_noc is whole
    (copy / "training" / "image_2" / "000005_11.png").unlink()
    with pytest.raises(FileNotFoundError, match="000005_11.png is missing: the second frame"):
        KittiFlow(copy, "all", occ=False)


def test_broken_files_are_named(copy):
    path = copy / "training" / "flow_occ" / "000000_10.png"
    eight_bit = (cv2.imread(str(path), cv2.IMREAD_UNCHANGED) >> 8).astype(np.uint8)
    cv2.imwrite(str(path), eight_bit)  # what a converting tool leaves
    dataset = KittiFlow(copy, "all")
    with pytest.raises(ValueError, match="000000_10.png: a KITTI flow file is a 16-bit RGB PNG"):
        dataset[0]
    frame = copy / "training" / "image_2" / "000001_11.png"
    cv2.imwrite(str(frame), np.zeros((30, 100, 3), np.uint8))
    with pytest.raises(ValueError, match=r"disagree in size.*000001_11.png is 30x100"):
        dataset[1]


def test_a_wrong_layout_says_what_to_do(tmp_path, copy):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"training/image_2.*data_scene_flow.zip"):
        KittiFlow(tmp_path / "empty")
    shutil.rmtree(copy / "training" / "flow_noc")
    with pytest.raises(FileNotFoundError, match="flow_noc does not exist"):
        KittiFlow(copy, occ=False)


def test_registry_entry():
    info = kitti_flow.INFO
    assert info.name == "kitti_flow" and info.notebook == "08" and info.marker == "training/flow_occ"
    assert info.url == "https://s3.eu-central-1.amazonaws.com/avg-kitti/data_scene_flow.zip"
    assert "CC BY-NC-SA 3.0" in info.licence and "Menze" in info.citation and info.write_twin is kitti_flow.write_twin


def test_locate_finds_the_twin_and_a_real_layout_by_the_marker(tmp_path, monkeypatch, twin):
    from course_utils import data, runtime

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "SMOKE", True)
    root = data.locate("kitti_flow")
    assert len(KittiFlow(root, "all")) == 20 and len(KittiFlow(root, "train")) == 14  # the default twin
    monkeypatch.setattr(runtime, "SMOKE", False)
    assert data.locate("kitti_flow", path=twin.parent) == twin.parent
