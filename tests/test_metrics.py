import numpy as np
import pytest
import segmentation_models_pytorch as smp
import torch
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassJaccardIndex
from torchmetrics.functional.segmentation import dice_score as tm_dice

from course_utils.metrics import (
    boundary_band,
    confusion_matrix,
    dice_score,
    iou_per_class,
    iou_score,
    mean_iou,
    pixel_accuracy,
)


@pytest.fixture
def random_masks():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(16, 1, 24, 24, generator=g) > 0.5
    target = torch.rand(16, 1, 24, 24, generator=g) > 0.6
    pred[3], target[3] = False, False  # both empty
    pred[4], target[4] = True, False  # prediction only
    pred[5], target[5] = False, True  # truth only
    return pred, target


def test_binary_metrics_match_smp_with_zero_division_one(random_masks):
    pred, target = random_masks
    tp, fp, fn, tn = smp.metrics.get_stats(pred.long(), target.long(), mode="binary")
    ref_dice = smp.metrics.f1_score(tp, fp, fn, tn, reduction="none", zero_division=1.0)[:, 0]
    ref_iou = smp.metrics.iou_score(tp, fp, fn, tn, reduction="none", zero_division=1.0)[:, 0]
    torch.testing.assert_close(dice_score(pred, target), ref_dice.float())
    torch.testing.assert_close(iou_score(pred, target), ref_iou.float())


@pytest.mark.filterwarnings("ignore:dice_score metric currently defaults")
def test_dice_matches_torchmetrics_on_non_empty_images(random_masks):
    pred, target = random_masks
    keep = [i for i in range(len(pred)) if i not in (3, 4, 5)]
    ref = tm_dice(pred[keep, 0].long(), target[keep, 0].long(), num_classes=2, include_background=False,
                  input_format="index", aggregation_level="samplewise", average="micro")
    torch.testing.assert_close(dice_score(pred[keep], target[keep]), ref.float())


def test_empty_masks_convention():
    empty = torch.zeros(1, 8, 8, dtype=torch.bool)
    full = torch.ones(1, 8, 8, dtype=torch.bool)
    assert dice_score(empty, empty).item() == 1.0 and iou_score(empty, empty).item() == 1.0
    assert dice_score(full, empty).item() == 0.0 and iou_score(empty, full).item() == 0.0


def test_hand_computed_and_single_image_numpy():
    pred = np.array([[1, 1, 0, 0]] * 2, dtype=np.uint8)
    target = np.array([[1, 0, 0, 0]] * 2, dtype=np.uint8)
    assert dice_score(pred, target).ndim == 0  # one 2-D image in, one value out
    assert dice_score(pred, target).item() == pytest.approx(2 * 2 / (4 + 2))
    assert iou_score(pred, target).item() == pytest.approx(2 / 4)


def test_binary_metrics_reject_probabilities_and_shape_mismatch():
    with pytest.raises(ValueError, match="threshold"):
        dice_score(torch.rand(2, 4, 4), torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        iou_score(torch.ones(2, 4, 4), torch.ones(2, 4, 5))


def test_confusion_matrix_matches_torchmetrics_with_ignore_index():
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 5, (4, 16, 16), generator=g)
    target[:, :3] = 255
    pred = torch.where(torch.rand(4, 16, 16, generator=g) < 0.7, target.clamp(max=4),
                       torch.randint(0, 5, (4, 16, 16), generator=g))
    cm = confusion_matrix(pred, target, 5, ignore_index=255)
    ref = MulticlassConfusionMatrix(5, ignore_index=255)(pred, target)
    assert torch.equal(cm, ref)
    ref_iou = MulticlassJaccardIndex(5, average="macro", ignore_index=255)(pred, target)
    assert mean_iou(cm) == pytest.approx(ref_iou.item(), abs=1e-6)
    assert pixel_accuracy(cm) == pytest.approx((pred == target)[target != 255].float().mean().item())


def test_absent_class_is_left_out_of_the_mean():
    pred, target = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1])
    per_class = iou_per_class(confusion_matrix(pred, target, 3))
    assert per_class[:2].tolist() == pytest.approx([1 / 2, 2 / 3]) and torch.isnan(per_class[2])
    ref = MulticlassJaccardIndex(3, average="macro")(pred, target)  # torchmetrics: same rule
    assert mean_iou(confusion_matrix(pred, target, 3)) == pytest.approx(ref.item())


def test_confusion_matrix_rows_are_truth_and_bad_ids_are_errors():
    cm = confusion_matrix(torch.tensor([1]), torch.tensor([0]), 2)
    assert cm.tolist() == [[0, 1], [0, 0]]
    with pytest.raises(ValueError, match="ignore_index"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 255]), 2)


def test_boundary_band_marks_pixels_near_a_change_of_class():
    labels = torch.zeros(6, 8, dtype=torch.long)
    labels[:, 4:] = 1  # a vertical boundary between columns 3 and 4
    band = boundary_band(labels, width=1)
    assert band[:, 3:5].all() and not band[:, :3].any() and not band[:, 5:].any()
    assert boundary_band(labels, width=2)[:, 2:6].all()
    batch = boundary_band(torch.stack([labels, torch.zeros_like(labels)]), width=1)
    assert batch.shape == (2, 6, 8) and not batch[1].any()  # no boundary in a single-class map
