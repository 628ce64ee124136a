import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance

from course_utils.metrics import brats_dice, brats_regions, hd95, label_from_regions


def test_regions_nest_and_round_trip():
    label = np.array([0, 1, 2, 4, 2, 0])
    tc, wt, et = brats_regions(label)
    assert tc.tolist() == [0, 1, 0, 1, 0, 0] and wt.tolist() == [0, 1, 1, 1, 1, 0] and et.tolist() == [0, 0, 0, 1, 0, 0]
    assert label_from_regions(tc, wt, et).tolist() == label.tolist()
    # outputs that do not nest are nested: core outside the whole tumour is dropped, and so on
    stray_tc, stray_et = tc.copy(), et.copy()
    stray_tc[0], stray_et[4] = True, True
    assert label_from_regions(stray_tc, wt, stray_et).tolist() == label.tolist()
    t = brats_regions(torch.tensor(label))  # tensors work the same
    assert all(isinstance(r, torch.Tensor) for r in t) and t[1].tolist() == wt.tolist()


def test_brats_dice_edge_cases():
    gt = np.zeros((4, 4, 4), np.uint8)
    gt[1:3, 1:3, 1:3] = 2  # edema only: TC and ET empty in the truth
    assert brats_dice(gt, gt) == {"TC": 1.0, "WT": 1.0, "ET": 1.0}  # both empty: 1
    pred = gt.copy()
    pred[1, 1, 1] = 4  # a false enhancing voxel
    scores = brats_dice(pred, gt)
    assert scores["ET"] == 0.0 and scores["TC"] == 0.0 and scores["WT"] == 1.0  # one empty: 0
    assert brats_dice(np.zeros_like(gt), gt)["WT"] == 0.0


def random_blob(rng, shape, centre, radius):
    grid = np.indices(shape).astype(float)
    noise = rng.normal(0, 0.15 * radius, shape)
    return np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre))) + noise < radius


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy")  # inside MONAI 1.5+, not ours
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.0, 0.8, 2.5)])
def test_hd95_matches_monai(spacing):
    rng = np.random.default_rng(0)
    for trial in range(4):
        shape = (30, 34, 26)
        pred = random_blob(rng, shape, (15 + trial, 17, 13), 8)
        target = random_blob(rng, shape, (14, 16 - trial, 12), 9)
        ref = compute_hausdorff_distance(torch.from_numpy(pred)[None, None], torch.from_numpy(target)[None, None],
                                         include_background=True, percentile=95, spacing=spacing)
        assert hd95(pred, target, spacing) == pytest.approx(ref.item(), rel=1e-4)


def test_hd95_edge_cases():
    empty = np.zeros((240, 240, 155), bool)
    full = empty.copy()
    full[100:110, 100:110, 70:80] = True
    assert hd95(empty, empty) == 0.0
    assert hd95(full, empty) == pytest.approx(373.1287, abs=1e-3)  # BraTS: the volume's diagonal
    assert hd95(full, full) == 0.0
    shifted = np.roll(full, 3, axis=0)
    assert hd95(shifted, full) == pytest.approx(3.0)
