"""MPI-Sintel (course_utils/datasets/sintel.py): the twin in the real layout read back through the loader, items,
scene splits, the masks, flow-aware augmentation, and clear errors for broken copies."""

import shutil

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from course_utils.datasets import DamagedFileError, sintel
from course_utils.datasets.flow import FlowAugment, read_flo
from course_utils.datasets.sintel import MONITOR_SCENES, REAL_SCENES, TEST_SCENES, Sintel, split_scenes
from course_utils.models.warp import backward_warp

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return sintel.write_twin(tmp_path_factory.mktemp("sintel") / "MPI-Sintel", n_scenes=5, n_frames=4)


@pytest.fixture
def copy(twin, tmp_path):
    """A copy of the twin that a test may break."""
    return shutil.copytree(twin, tmp_path / "copy")


def reconstruction_error(frames: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean |frame1 - frame2 warped back by flow| over ``mask`` (and inside the frame), in [0, 1] units."""
    warped, inside = backward_warp(frames[1:2], flow[None])
    keep = mask & inside[0, 0]
    return (warped[0] - frames[0]).abs().mean(0)[keep].mean().item()


def test_the_twin_has_the_real_layout(twin):
    training = twin / "training"
    scenes = sorted(p.name for p in (training / "clean").iterdir())
    assert len(scenes) == 5 and all(s.endswith("_twin") for s in scenes)
    for scene in scenes:
        frames = sorted(p.name for p in (training / "final" / scene).iterdir())
        assert frames == [f"frame_{i:04d}.png" for i in range(1, 5)]
        assert sorted(p.name for p in (training / "clean" / scene).iterdir()) == frames
        flows = sorted(p.name for p in (training / "flow" / scene).iterdir())
        assert flows == [f"frame_{i:04d}.flo" for i in (1, 2, 3)]  # n frames, n - 1 flows
        for kind in ("occlusions", "invalid"):
            assert sorted(p.name for p in (training / kind / scene).iterdir()) == frames[:-1]
    flow = read_flo(training / "flow" / scenes[0] / "frame_0001.flo")
    assert flow.shape == (64, 96, 2) and 0.3 < np.abs(flow).max() < 8
    occlusion = cv2.imread(str(training / "occlusions" / scenes[0] / "frame_0001.png"), cv2.IMREAD_UNCHANGED)
    assert occlusion.dtype == np.uint8 and occlusion.ndim == 2 and set(np.unique(occlusion)) <= {0, 255}
    assert any((twin / "test" / "clean").iterdir()) and not (twin / "test" / "flow").exists()
    clean = cv2.imread(str(training / "clean" / scenes[0] / "frame_0002.png"))
    final = cv2.imread(str(training / "final" / scenes[0] / "frame_0002.png"))
    assert clean.shape == final.shape and 5 < np.abs(clean.astype(int) - final).mean() < 60  # blur, haze, noise


def test_the_twin_is_deterministic(tmp_path):
    a = sintel.write_twin(tmp_path / "a", n_scenes=1, n_frames=2)
    b = sintel.write_twin(tmp_path / "b", n_scenes=1, n_frames=2)
    for path in sorted(p for p in a.rglob("*") if p.is_file()):
        assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path


def test_items(twin):
    dataset = Sintel(twin, "all")
    assert len(dataset) == 5 * 3 and dataset.pairs[0] == ("alley_twin", 1)
    frames, target = dataset[0]
    assert frames.shape == (2, 3, 64, 96) and frames.dtype == torch.float32 and 0 <= frames.min() <= frames.max() <= 1
    assert target["flow"].shape == (2, 64, 96) and target["flow"].dtype == torch.float32
    assert target["valid"].shape == (64, 96) and target["valid"].dtype == torch.bool and target["valid"].all()
    assert target["index"] == 0
    flow = read_flo(twin / "training" / "flow" / "alley_twin" / "frame_0001.flo")
    assert torch.equal(target["flow"], torch.from_numpy(flow).permute(2, 0, 1))
    final, _ = Sintel(twin, "all", pass_name="final")[0]
    assert not torch.equal(final, frames)
    with pytest.raises(ValueError, match="pass_name"):
        Sintel(twin, "all", pass_name="albedo")


def test_the_flow_explains_the_frames(twin):
    """Warping frame 2 back by the truth gives frame 1 on the pixels that stay visible (occ=False leaves the
    occluded ones out of valid); zero flow does not."""
    dataset = Sintel(twin, "all", occ=False)
    errors, still = [], []
    for index in range(len(dataset)):
        frames, target = dataset[index]
        assert 0.7 < target["valid"].float().mean() < 1  # some pixels are occluded, most are not
        errors.append(reconstruction_error(frames, target["flow"], target["valid"]))
        still.append(reconstruction_error(frames, torch.zeros_like(target["flow"]), target["valid"]))
    assert max(errors) < 0.02 and np.mean(still) > 2.5 * np.mean(errors), (errors, still)


def test_occlusion_and_invalid_masks(copy):
    scene = "alley_twin"
    occluded = cv2.imread(str(copy / "training" / "occlusions" / scene / "frame_0001.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert torch.equal(Sintel(copy, "all", occ=False)[0][1]["valid"], torch.from_numpy(~occluded))
    invalid = np.zeros((64, 96), np.uint8)
    invalid[:10, :20] = 255
    cv2.imwrite(str(copy / "training" / "invalid" / scene / "frame_0001.png"), invalid)
    valid = Sintel(copy, "all")[0][1]["valid"]
    assert not valid[:10, :20].any() and valid.sum() == 64 * 96 - 200
    (copy / "training" / "occlusions" / scene / "frame_0002.png").unlink()
    Sintel(copy, "all")[1]  # occ=True does not need the occlusions
    with pytest.raises(FileNotFoundError, match="frame_0002.png is missing, and occ=False needs it"):
        Sintel(copy, "all", occ=False)[1]


def test_splits_are_by_scene_and_disjoint(twin):
    splits = {s: Sintel(twin, s) for s in ("train", "monitor", "test")}
    scenes = {s: set(d.scenes) for s, d in splits.items()}
    assert not (scenes["train"] & scenes["monitor"] or scenes["train"] & scenes["test"]
                or scenes["monitor"] & scenes["test"])
    assert scenes["train"] | scenes["monitor"] | scenes["test"] == set(Sintel(twin, "all").scenes)
    assert all(len(s) >= 1 for s in scenes.values())
    assert {scene for scene, _ in splits["test"].pairs} == scenes["test"]  # every pair of a scene goes with it
    assert Sintel(twin, "test").scenes == splits["test"].scenes  # deterministic


def test_the_real_scenes_use_the_fixed_lists():
    test, _ = split_scenes(list(REAL_SCENES), "test")
    monitor, _ = split_scenes(list(REAL_SCENES), "monitor")
    train, _ = split_scenes(list(REAL_SCENES), "train")
    assert test == sorted(TEST_SCENES) and monitor == sorted(MONITOR_SCENES) and len(train) == 14
    assert not set(train) & (set(test) | set(monitor)) and len(REAL_SCENES) == 23
    assert split_scenes(["alley_1", "alley_2"], "train")[0] == ["alley_1"]  # a partial copy keeps the lists
    with pytest.raises(ValueError, match="'monitor' split"):
        split_scenes(["alley_1", "alley_2"], "monitor")
    with pytest.raises(ValueError, match="split must be"):
        split_scenes(list(REAL_SCENES), "val")


def test_augmentation_keeps_the_flow_right(twin):
    """After a random scale, crop and flip, warping frame 2 by the transformed flow still gives frame 1 on the
    visible pixels. Flipping the frames without negating u breaks that."""
    torch.manual_seed(0)
    augment = FlowAugment(crop_size=(48, 64), scale=(0.8, 1.5), hflip=0.5, vflip=0.5, jitter=0.2)
    dataset = Sintel(twin, "all", transform=augment, occ=False)
    for index in range(0, len(dataset), 2):
        frames, target = dataset[index]
        assert frames.shape == (2, 3, 48, 64) and target["flow"].shape == (2, 48, 64)
        error = reconstruction_error(frames, target["flow"], target["valid"])
        assert error < 0.03, (index, error)
    plain = Sintel(twin, "all", occ=False)
    frames, target = plain[2]
    flipped = frames.flip(-1)
    wrong = target["flow"].flip(-1)  # mirrored field, u not negated
    right = wrong * torch.tensor([-1.0, 1.0])[:, None, None]
    mask = target["valid"].flip(-1)
    assert reconstruction_error(flipped, right, mask) < 0.5 * reconstruction_error(flipped, wrong, mask)


def test_augmentation_batches_and_is_seeded_by_torch(twin):
    dataset = Sintel(twin, "train", transform=FlowAugment(crop_size=(48, 64), scale=(0.9, 1.2), jitter=0.1))
    torch.manual_seed(3)
    frames, target = next(iter(DataLoader(dataset, batch_size=4, shuffle=True)))
    assert frames.shape == (4, 2, 3, 48, 64) and target["flow"].shape == (4, 2, 48, 64)
    assert target["valid"].shape == (4, 48, 64) and target["index"].shape == (4,)
    torch.manual_seed(3)
    again, _ = next(iter(DataLoader(dataset, batch_size=4, shuffle=True)))
    assert torch.equal(frames, again)


def test_a_missing_flow_file_is_named(copy):
    (copy / "training" / "flow" / "cave_twin" / "frame_0002.flo").unlink()
    with pytest.raises(FileNotFoundError, match=r"cave_twin/frame_0002.flo is missing.*frame_0002.png to frame_0003"):
        Sintel(copy, "all")


def test_a_damaged_flo_is_named(copy):
    path = copy / "training" / "flow" / "alley_twin" / "frame_0001.flo"
    path.write_bytes(path.read_bytes()[:1000])
    dataset = Sintel(copy, "all")
    with pytest.raises(DamagedFileError, match=r"frame_0001.flo.*truncated.*MPI-Sintel-complete.zip again"):
        dataset[0]
    path.write_bytes(b"not a flow file at all")
    with pytest.raises(ValueError, match="frame_0001.flo: not a .flo file"):
        dataset[0]


def test_sizes_that_disagree_are_named(copy):
    path = copy / "training" / "clean" / "alley_twin" / "frame_0002.png"
    cv2.imwrite(str(path), np.zeros((60, 96, 3), np.uint8))
    with pytest.raises(ValueError, match=r"disagree in size.*frame_0002.png is 60x96"):
        Sintel(copy, "all")[0]


def test_a_wrong_layout_says_what_to_do(tmp_path, copy):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"training/clean.*MPI-Sintel-complete.zip"):
        Sintel(tmp_path / "empty")
    (copy / "training" / "clean" / "bamboo_twin" / "frame_0002.png").unlink()
    with pytest.raises(FileNotFoundError, match="bamboo_twin lacks frame_0002.png"):
        Sintel(copy, "all")
    shutil.rmtree(copy / "training" / "flow")
    with pytest.raises(FileNotFoundError, match="no flow/"):
        Sintel(copy)


def test_registry_entry():
    info = sintel.INFO
    assert info.name == "sintel" and info.notebook == "08" and info.marker == "training/clean"
    assert info.url == "http://files.is.tue.mpg.de/sintel/MPI-Sintel-complete.zip" and info.sha256 is None
    assert "Butler" in info.citation and info.write_twin is sintel.write_twin and info.twin_version >= 1


def test_locate_finds_the_twin_and_a_real_layout_by_the_marker(tmp_path, monkeypatch, twin):
    from course_utils import data, runtime

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(runtime, "SMOKE", True)
    root = data.locate("sintel")
    assert len(Sintel(root, "train")) == 42 and len(Sintel(root, "all")) == 24 * 3  # the default twin: 24 x 4 frames
    monkeypatch.setattr(runtime, "SMOKE", False)
    assert data.locate("sintel", path=twin.parent) == twin.parent  # the marker is found one level down
