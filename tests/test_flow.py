"""Optical-flow files (course_utils/datasets/flow.py) and the end-point error (course_utils/metrics/flow.py):
the real Middlebury sample, round trips, the width/height and 8-bit pitfalls, bad files, hand-derived errors."""

import struct

import cv2
import numpy as np
import pytest
import torch
from conftest import real_sample

from course_utils.datasets import DamagedFileError
from course_utils.datasets.flow import (
    FlowAugment,
    flip_flow,
    flo_valid,
    read_flo,
    read_kitti_flow,
    resize_flow,
    resize_sparse_flow,
    write_flo,
    write_kitti_flow,
)
from course_utils.metrics import epe
from course_utils.models.warp import backward_warp


def test_the_real_middlebury_file_is_width_then_height_with_unknown_pixels():
    path = real_sample("flow", "middlebury_flow_gt.flo")
    flow = read_flo(path)
    width, height = struct.unpack("<ii", path.read_bytes()[4:12])
    assert (width, height) == (584, 388) and flow.shape == (388, 584, 2) and flow.dtype == np.float32
    valid = flo_valid(flow)
    assert 0 < (~valid).sum() < valid.size  # some pixels are marked unknown (> 1e9), most are not
    assert np.abs(flow[valid]).max() < 100  # a few pixels of motion, not garbage
    # the pitfall: height and width swapped reshapes the same numbers into a scrambled field
    swapped = np.frombuffer(path.read_bytes(), "<f4", width * height * 2, 12).reshape(width, height, 2)
    assert swapped.shape != flow.shape


def test_flo_round_trip(tmp_path):
    flow = np.random.default_rng(0).normal(0, 5, (7, 11, 2)).astype(np.float32)
    flow[2, 3] = 1e10  # unknown
    write_flo(tmp_path / "f.flo", flow)
    back = read_flo(tmp_path / "f.flo")
    assert np.array_equal(back, flow) and not flo_valid(back)[2, 3] and flo_valid(back).sum() == 7 * 11 - 1
    assert (tmp_path / "f.flo").stat().st_size == 12 + 7 * 11 * 2 * 4


def test_bad_flo_files_are_named(tmp_path):
    write_flo(tmp_path / "f.flo", np.zeros((4, 5, 2), np.float32))
    data = (tmp_path / "f.flo").read_bytes()
    (tmp_path / "cut.flo").write_bytes(data[:-8])
    with pytest.raises(DamagedFileError, match="cut.flo.*5x4.*truncated"):
        read_flo(tmp_path / "cut.flo")
    (tmp_path / "png.flo").write_bytes(b"\x89PNG\r\n\x1a\n" + data[8:])
    with pytest.raises(ValueError, match="png.flo: not a .flo file"):
        read_flo(tmp_path / "png.flo")
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        write_flo(tmp_path / "x.flo", np.zeros((4, 5)))


def test_kitti_round_trip_and_its_encoding(tmp_path):
    rng = np.random.default_rng(1)
    flow = np.round(rng.normal(0, 20, (6, 9, 2)) * 64) / 64  # KITTI stores 1/64 pixel
    valid = rng.random((6, 9)) > 0.3
    write_kitti_flow(tmp_path / "000000_10.png", flow, valid)
    back, back_valid = read_kitti_flow(tmp_path / "000000_10.png")
    assert np.array_equal(back_valid, valid)
    assert np.allclose(back[valid], flow[valid]) and (back[~valid] == 0).all()
    raw = cv2.imread(str(tmp_path / "000000_10.png"), cv2.IMREAD_UNCHANGED)  # uint16, channels B, G, R
    assert raw.dtype == np.uint16
    y, x = np.argwhere(valid)[0]
    assert raw[y, x, 2] == flow[y, x, 0] * 64 + 2**15 and raw[y, x, 1] == flow[y, x, 1] * 64 + 2**15
    assert raw[y, x, 0] == 1


def test_an_8_bit_copy_of_a_kitti_file_is_refused(tmp_path):
    write_kitti_flow(tmp_path / "flow.png", np.ones((4, 4, 2)))
    eight_bit = (cv2.imread(str(tmp_path / "flow.png"), cv2.IMREAD_UNCHANGED) >> 8).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "8bit.png"), eight_bit)  # what a converting tool leaves
    with pytest.raises(ValueError, match="8bit.png: a KITTI flow file is a 16-bit RGB PNG, this one is uint8"):
        read_kitti_flow(tmp_path / "8bit.png")
    with pytest.raises(ValueError, match="512 pixels"):
        write_kitti_flow(tmp_path / "far.png", np.full((2, 2, 2), 600.0))


def test_epe_on_hand_cases():
    gt = torch.zeros(2, 2, 3)
    pred = torch.zeros(2, 2, 3)
    pred[0] = 3.0
    pred[1] = 4.0  # every pixel 5 px off: EPE 5, no pixel under 1, 3 or 5 px (strictly), every one an outlier
    assert epe(pred, gt) == {"EPE": 5.0, "1px": 0.0, "3px": 0.0, "5px": 0.0, "Fl-all": 1.0}
    # true flow of length 100 at every pixel: an error of 4 px is under 5 % of it, so no outlier (KITTI's
    # second condition), while an error of 6 px is 6 %: outlier
    gt = torch.zeros(2, 1, 2)
    gt[0] = 100.0
    pred = gt.clone()
    pred[1, 0, 0], pred[1, 0, 1] = 4.0, 6.0
    r = epe(pred, gt)
    assert r["EPE"] == 5.0 and r["Fl-all"] == 0.5 and r["3px"] == 0.0 and r["5px"] == 0.5


def test_epe_counts_valid_pixels_only_and_takes_batches():
    gt = torch.zeros(2, 2, 2, 2)
    pred = gt.clone()
    pred[0, 0, 0, 0] = 10.0  # one wrong pixel in image 0...
    valid = torch.ones(2, 2, 2, dtype=torch.bool)
    assert epe(pred, gt, valid)["EPE"] == pytest.approx(10 / 8)  # pooled over the 8 pixels of both images
    valid[0, 0, 0] = False  # ...which the truth does not know
    assert epe(pred, gt, valid)["EPE"] == 0.0 and epe(pred.numpy(), gt.numpy(), valid.numpy())["1px"] == 1.0
    with pytest.raises(ValueError, match="no valid pixel"):
        epe(pred, gt, torch.zeros_like(valid))
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        epe(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))


def test_flipping_mirrors_the_field_and_negates_its_component():
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 0] = (2.0, 1.0)  # top-left pixel moves 2 right, 1 down
    flipped = flip_flow(flow)
    assert flipped[0, 2].tolist() == [-2.0, 1.0] and np.abs(flipped).sum() == 3  # top-right, moving left
    assert flip_flow(flow, horizontal=False)[1, 0].tolist() == [2.0, -1.0]


def test_resizing_scales_the_vectors():
    flow = np.zeros((4, 6, 2), np.float32)
    flow[..., 0], flow[..., 1] = 10.0, 4.0  # a uniform motion
    half = resize_flow(flow, (2, 3))
    assert half.shape == (2, 3, 2) and np.allclose(half[..., 0], 5.0) and np.allclose(half[..., 1], 2.0)
    assert np.allclose(resize_flow(flow, (8, 6))[..., 1], 8.0)  # twice as high: v doubles, u stays
    assert np.allclose(resize_flow(flow, (8, 6))[..., 0], 10.0)


def test_backward_warp_undoes_a_known_motion():
    frame1 = torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(0))
    frame2 = torch.zeros_like(frame1)
    frame2[..., 1:, 2:] = frame1[..., :-1, :-2]  # everything moved 2 px right and 1 px down
    flow = torch.zeros(1, 2, 8, 10)
    flow[:, 0], flow[:, 1] = 2.0, 1.0
    warped, inside = backward_warp(frame2, flow)
    assert inside[0, 0, :-1, :-2].all() and not inside[0, 0, -1].any() and not inside[0, 0, :, -2:].any()
    assert torch.allclose(warped * inside, frame1 * inside, atol=1e-6)  # brightness constancy holds: residual 0
    half, _ = backward_warp(frame2, flow / 2)  # half the motion: bilinear mixes of neighbours, not frame 1
    assert (half - frame1)[..., 2:-2, 2:-2].abs().mean() > 0.05
    with pytest.raises(ValueError, match="flows"):
        backward_warp(frame2, flow[:, :1])


def test_resizing_sparse_truth_moves_points_and_scales_them():
    flow = np.zeros((4, 6, 2), np.float32)
    valid = np.zeros((4, 6), bool)
    flow[1, 2], valid[1, 2] = (3.0, -1.0), True  # one lidar point
    big, big_valid = resize_sparse_flow(flow, valid, (8, 12))  # twice the size
    assert big_valid.sum() == 1 and big_valid[2, 4]  # (2 + 0.5) * 2 - 0.5 = 4.5 rounds to 4 (half to even)
    assert big[2, 4].tolist() == [6.0, -2.0] and np.abs(big).sum() == 8  # no vector invented elsewhere
    small, small_valid = resize_sparse_flow(flow, valid, (2, 3))
    assert small_valid.sum() == 1 and small[small_valid][0].tolist() == [1.5, -0.5]
    # interpolating the same field instead blends the point with the zeros of the unknown pixels around it
    assert np.abs(resize_flow(flow, (8, 12))).max() < 6.0


def test_flow_augment_flip_crop_and_jitter_by_hand():
    frame1 = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    frame2 = frame1 + 1
    flow = np.zeros((4, 6, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2.0, 1.0
    valid = np.ones((4, 6), bool)
    valid[0, 0] = False
    f1, f2, out, v = FlowAugment(hflip=1.0)(frame1, frame2, flow, valid)  # always flip
    assert np.array_equal(f1, frame1[:, ::-1]) and np.array_equal(f2, frame2[:, ::-1])
    assert (out[..., 0] == -2).all() and (out[..., 1] == 1).all() and not v[0, -1] and v.sum() == 23
    f1, _, out, v = FlowAugment(crop_size=(2, 3), hflip=0.0)(frame1, frame2, flow, valid)
    assert f1.shape == (2, 3, 3) and out.shape == (2, 3, 2) and (out[..., 0] == 2).all()  # a crop keeps vectors
    assert any(np.array_equal(f1, frame1[y:y + 2, x:x + 3]) for y in range(3) for x in range(4))
    f1, f2, _, _ = FlowAugment(hflip=0.0, jitter=0.5)(frame1, frame1.copy(), flow, valid)
    assert np.array_equal(f1, f2) and not np.array_equal(f1, frame1)  # one photometric change for both frames
    with pytest.raises(ValueError, match="larger than the frames"):
        FlowAugment(crop_size=(5, 6))(frame1, frame2, flow, valid)
    with pytest.raises(ValueError, match="scale"):
        FlowAugment(scale=(2.0, 1.0))


def test_flow_augment_scales_vectors_fits_the_crop_and_follows_torch_seed():
    frame = np.zeros((10, 20, 3), np.uint8)
    flow = np.ones((10, 20, 2), np.float32)
    valid = np.ones((10, 20), bool)
    augment = FlowAugment(crop_size=(16, 30), scale=(0.5, 2.0), hflip=0.0)  # the crop needs at least 1.6x
    for seed in range(5):
        torch.manual_seed(seed)
        _, _, out, v = augment(frame, frame, flow, valid)
        assert out.shape == (16, 30, 2) and v.all()
        assert 1.6 <= out[..., 0].mean() <= 2.1 and np.allclose(out[..., 0], out[..., 1], atol=0.1)
    torch.manual_seed(1)
    first = augment(frame, frame, flow, valid)[2]
    torch.manual_seed(1)
    assert np.array_equal(first, augment(frame, frame, flow, valid)[2])
