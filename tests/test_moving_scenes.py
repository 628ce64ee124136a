"""Synthetic videos with exact motion (course_utils/datasets/moving_scenes.py): shapes, determinism, and that
the flow, occlusions and masks tell the truth about the frames."""

import time

import numpy as np
import pytest
import torch

from course_utils.datasets.moving_scenes import MovingScene, make_scene
from course_utils.models.warp import backward_warp

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(np.random.default_rng(seed), 8, 48, 72, 3) for seed in range(4)]


def test_shapes_and_types():
    scene = make_scene(np.random.default_rng(0), 5, 40, 56, 2, max_speed=2.0)
    assert isinstance(scene, MovingScene)
    assert scene.frames.shape == (5, 40, 56, 3) and scene.frames.dtype == np.uint8
    assert scene.flow.shape == (4, 40, 56, 2) and scene.flow.dtype == np.float32
    assert scene.occluded.shape == (4, 40, 56) and scene.occluded.dtype == bool
    assert scene.masks.shape == (5, 40, 56) and scene.masks.dtype == np.uint8
    assert set(np.unique(scene.masks)) == {0, 1, 2}  # background and both objects in view
    assert np.abs(scene.flow).max() < 2.0 * 2  # about max_speed; spin and camera add a little
    with pytest.raises(ValueError, match="n_frames >= 2"):
        make_scene(np.random.default_rng(0), 1, 40, 56, 2)


def test_deterministic_for_a_seed_and_different_across_seeds():
    a, b = (make_scene(np.random.default_rng(7), 4, 32, 48, 2) for _ in range(2))
    for field in ("frames", "flow", "occluded", "masks"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    c = make_scene(np.random.default_rng(8), 4, 32, 48, 2)
    assert not np.array_equal(a.frames, c.frames)


def test_every_object_is_visible_in_the_first_frame(scenes):
    for scene in scenes:
        counts = np.bincount(scene.masks[0].ravel(), minlength=4)
        assert (counts[1:] >= 15).all(), counts


def test_warping_the_next_frame_by_the_flow_gives_back_the_frame(scenes):
    """Brightness constancy holds on pixels that stay visible: backward-warping frame t + 1 by the flow gives
    frame t up to the noise (sigma 2 in each frame) and bilinear interpolation; without the flow it does not."""
    for scene in scenes:
        frames = torch.from_numpy(scene.frames).permute(0, 3, 1, 2).float()
        flow = torch.from_numpy(scene.flow).permute(0, 3, 1, 2)
        warped, inside = backward_warp(frames[1:], flow)
        visible = ~torch.from_numpy(scene.occluded)[:, None]
        assert (inside | ~visible).all()  # a visible pixel never lands outside the image
        error = (warped - frames[:-1]).abs().mean(1, keepdim=True)[visible]
        still = (frames[1:] - frames[:-1]).abs().mean(1, keepdim=True)[visible]
        assert error.mean() < 4.5 and error.median() < 3.5, (error.mean(), error.median())
        assert still.mean() > 2 * error.mean()  # the scene does move: zero flow explains it much worse


def test_occluded_pixels_do_not_match(scenes):
    """Where the truth says "hidden", the warped frame shows something else: the error is far larger there."""
    errors_hidden, errors_visible = [], []
    for scene in scenes:
        frames = torch.from_numpy(scene.frames).permute(0, 3, 1, 2).float()
        warped, inside = backward_warp(frames[1:], torch.from_numpy(scene.flow).permute(0, 3, 1, 2))
        error = (warped - frames[:-1]).abs().mean(1)
        hidden = torch.from_numpy(scene.occluded) & inside[:, 0]  # hidden behind another layer, inside the frame
        errors_hidden.append(error[hidden])
        errors_visible.append(error[~torch.from_numpy(scene.occluded)])
    assert torch.cat(errors_hidden).numel() > 50
    assert torch.cat(errors_hidden).mean() > 3 * torch.cat(errors_visible).mean()


def test_masks_move_with_the_flow(scenes):
    """A visible pixel of object k in frame t lands on object k in frame t + 1 (rounding to the nearest pixel;
    pixels within a pixel of an object's edge may round onto the neighbour)."""
    for scene in scenes:
        t_count, height, width = scene.occluded.shape
        ys, xs = np.mgrid[0:height, 0:width]
        for t in range(t_count):
            visible = ~scene.occluded[t]
            x = np.clip(np.round(xs + scene.flow[t, ..., 0]), 0, width - 1).astype(int)
            y = np.clip(np.round(ys + scene.flow[t, ..., 1]), 0, height - 1).astype(int)
            landed = scene.masks[t + 1][y, x]
            agree = (landed == scene.masks[t])[visible].mean()
            assert agree > 0.97, (t, agree)


def test_fast_enough():
    make_scene(np.random.default_rng(0), 3, 16, 16, 1)  # warm up
    start = time.perf_counter()
    make_scene(np.random.default_rng(1), 10, 64, 96, 3)
    assert time.perf_counter() - start < 0.5  # about 0.05 s; generous for a busy shared CPU
