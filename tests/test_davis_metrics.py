"""DAVIS 2017 J and F (course_utils/metrics/davis.py) on hand cases, each value derived in a comment, following
davisvideochallenge/davis2017-evaluation (davis2017/metrics.py, utils.db_statistics)."""

import numpy as np
import pytest

from course_utils.metrics.davis import boundary_map, davis_f, davis_j, davis_sequence, davis_statistics


def test_j_is_the_iou_outside_void_and_1_for_two_empty_masks():
    gt = np.zeros((4, 4), bool)
    pred = np.zeros((4, 4), bool)
    assert davis_j(pred, gt) == 1.0  # nothing to find, nothing found
    gt[0:2, 0:3] = True  # 6 pixels
    pred[0:2, 0:2] = True  # 4 of them: IoU 4 / 6
    assert davis_j(pred, gt) == pytest.approx(2 / 3)
    void = np.zeros((4, 4), bool)
    void[:, 2] = True  # the missed column is void: IoU 4 / 4
    assert davis_j(pred, gt, void) == 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        davis_j(pred, gt[:3])


def test_the_boundary_is_offset_half_a_pixel_towards_the_origin():
    mask = np.zeros((6, 6), bool)
    mask[1:4, 1:4] = True  # a 3x3 square
    # a pixel is on the boundary where it differs from its right, lower or lower-right neighbour: the ring of
    # the 4x4 block [0..3] x [0..3], 12 pixels (the square's own interior (1..2, 1..2) is not)
    ring = np.zeros((6, 6), bool)
    ring[0:4, 0:4] = True
    ring[1:3, 1:3] = False
    assert np.array_equal(boundary_map(mask), ring)


def test_f_on_half_planes():
    gt = np.zeros((20, 20), bool)
    gt[:, 10:] = True  # boundary: column 9, 20 pixels
    assert davis_f(gt, gt) == 1.0
    shifted = np.zeros_like(gt)
    shifted[:, 12:] = True  # boundary: column 11, 2 px from the truth's
    assert davis_f(shifted, gt, bound_th=1) == 0.0  # tolerance 1 px: no boundary pixel matches, P = R = 0
    assert davis_f(shifted, gt, bound_th=2) == 1.0  # tolerance 2 px: all match
    # a step: rows 0-9 right (boundary column 9, 10 px), rows 10-19 four columns off (column 13, 10 px),
    # and the step itself along row 9, columns 10-13 (4 px): 24 boundary pixels. With 1 px tolerance, 11 of
    # them lie near the truth (column 9 rows 0-9, and (9, 10)): precision 11/24; 11 of the truth's 20 lie near
    # the prediction (rows 0-10): recall 11/20. F = 2PR/(P+R) = 22/44 = 0.5
    step = gt.copy()
    step[10:, 10:14] = False
    assert boundary_map(step).sum() == 24
    assert davis_f(step, gt, bound_th=1) == pytest.approx(0.5)


def test_f_with_empty_masks_and_the_default_tolerance():
    empty, full = np.zeros((48, 64), bool), np.zeros((48, 64), bool)
    full[10:30, 10:40] = True
    assert davis_f(empty, empty) == 1.0  # no boundary on either side
    assert davis_f(empty, full) == 0.0 and davis_f(full, empty) == 0.0  # on one side only
    # default bound_th 0.008 of the diagonal: ceil(0.008 * 80) = 1 px here, so a 1-px shift still matches
    moved = np.roll(full, 1, axis=1)
    assert davis_f(moved, full) == 1.0
    assert davis_f(np.roll(full, 3, axis=1), full) < 1.0


def test_statistics_use_daviss_four_bins():
    # 8 frames: edges round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7]; first bin frames 0-2 (all 1), last bin
    # frames 5-7 (all 0): decay 1. Mean 0.5; recall: 4 of 8 frames above 0.5
    assert davis_statistics([1, 1, 1, 1, 0, 0, 0, 0]) == {"mean": 0.5, "recall": 0.5, "decay": 1.0}


def test_a_sequence_leaves_out_its_first_and_last_frames():
    gts = np.zeros((5, 10, 10), bool)
    gts[:, 2:6, 2:6] = True
    preds = gts.copy()
    preds[0] = ~preds[0]  # the first frame is given in the semi-supervised task: not scored
    preds[4] = False  # nor is the last
    scores = davis_sequence(preds, gts)
    assert scores["J_mean"] == scores["F_mean"] == scores["J&F"] == 1.0 and scores["J_decay"] == 0.0
    preds[2] = False  # a missed middle frame: J of frames 1-3 = 1, 0, 1
    assert davis_sequence(preds, gts)["J_mean"] == pytest.approx(2 / 3)
