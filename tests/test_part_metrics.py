"""ShapeNet-part mIoU (course_utils/metrics/part.py) on hand cases, each value derived in a comment, following the
PointNet / PointNet++ evaluations (charlesq34/pointnet part_seg/test.py, charlesq34/pointnet2 part_seg/evaluate.py,
yanx27/Pointnet_Pointnet2_pytorch test_partseg.py). Part ids used here: Airplane 0-3, Mug 36-37, Table 47-49,
Skateboard 44-46."""

import numpy as np
import pytest
import torch
from conftest import real_sample
from torch import nn

from course_utils.metrics.part import (
    NUM_PARTS,
    SHAPENET_PARTS,
    PartMIoU,
    most_frequent_part_baseline,
    part_miou,
    restrict_to_category,
    shape_iou,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_part_table_is_the_sources_seg_classes():
    # the 16 categories of synsetoffset2category.txt, in its (alphabetical) order, each owning a run of ids that
    # together cover 0..49 once (seg_classes in pointnet2's part_dataset_all_normal.py and yanx27's loader)
    assert list(SHAPENET_PARTS) == ["Airplane", "Bag", "Cap", "Car", "Chair", "Earphone", "Guitar", "Knife", "Lamp",
                                    "Laptop", "Motorbike", "Mug", "Pistol", "Rocket", "Skateboard", "Table"]
    ids = [p for parts in SHAPENET_PARTS.values() for p in parts]
    assert ids == list(range(NUM_PARTS))
    assert SHAPENET_PARTS["Motorbike"] == (30, 31, 32, 33, 34, 35) and SHAPENET_PARTS["Table"] == (47, 48, 49)


def test_a_perfect_prediction_scores_1_even_with_absent_parts():
    mug = np.array([36, 36, 37, 37])
    assert shape_iou(mug, mug, "Mug") == 1.0
    # an airplane with only body (0) and wings (1): tail (2) and engines (3) are absent from truth and prediction
    # and count 1 each, so the shape scores (1 + 1 + 1 + 1) / 4
    plane = np.array([0, 0, 1, 1])
    assert shape_iou(plane, plane, "Airplane") == 1.0


def test_a_part_absent_from_both_counts_1():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 0, 1])
    # part 0: truth {0,1}, pred {0,1,2}: 2 / 3; part 1: truth {2,3}, pred {3}: 1 / 2; parts 2 and 3 absent from
    # both: 1 each. Mean over Airplane's 4 parts: (2/3 + 1/2 + 1 + 1) / 4 = 19/24
    assert shape_iou(pred, truth, "Airplane") == pytest.approx(19 / 24)


def test_a_part_wholly_wrong_scores_0():
    # the handle (37) is one point, predicted as body: part 36: 3 / 4; part 37: 0 / 1. Mean 3/8
    truth = np.array([36, 36, 36, 37])
    pred = np.array([36, 36, 36, 36])
    assert shape_iou(pred, truth, "Mug") == pytest.approx(3 / 8)
    # the other way round: a part predicted but absent from the truth scores 0, not 1: part 36: 3 / 4, part 37:
    # 0 / 1. Mean 3/8
    assert shape_iou(truth, pred, "Mug") == pytest.approx(3 / 8)
    # every point wrong: 0 / 4 and 0 / 4
    assert shape_iou(np.full(4, 37), np.full(4, 36), "Mug") == 0.0


def test_class_and_instance_miou_weigh_categories_differently():
    # 3 perfect mugs (1 each) and one table: truth top (47) x2, legs (48) x2, predicted all top: part 47: 2 / 4,
    # part 48: 0 / 2, part 49 absent from both: 1. Table = (1/2 + 0 + 1) / 3 = 1/2.
    mug = np.array([36, 37, 37])
    preds = [mug, mug, mug, np.array([47, 47, 47, 47])]
    truths = [mug, mug, mug, np.array([47, 47, 48, 48])]
    cats = ["Mug", "Mug", "Mug", "Table"]
    result = part_miou(preds, truths, cats)
    # instance: the mean over the 4 shapes, (1 + 1 + 1 + 1/2) / 4 = 7/8; class: the mean of Mug's 1 and Table's
    # 1/2, 3/4. The category with more shapes weighs more in the instance mean only.
    assert result["instance_miou"] == pytest.approx(7 / 8)
    assert result["class_miou"] == pytest.approx(3 / 4)
    assert result["per_category"] == pytest.approx({"Mug": 1.0, "Table": 0.5})
    assert list(result["per_category"]) == ["Mug", "Table"]  # the table's order, only categories with shapes
    assert result["n_per_category"] == {"Mug": 3, "Table": 1}
    assert result["n_shapes"] == 4
    assert result["shape_ious"] == pytest.approx([1, 1, 1, 0.5])


def test_torch_inputs_float_labels_and_different_point_counts():
    # the dataset files write labels as floats; shapes have different point counts
    preds = [torch.tensor([36, 37]), np.array([0, 0, 1])]
    truths = [torch.tensor([36.0, 37.0]), np.array([0.0, 1.0, 1.0])]
    # mug: 1; airplane: part 0: 1 / 2, part 1: 1 / 2, parts 2-3: 1 each, (1/2 + 1/2 + 1 + 1) / 4 = 3/4
    result = part_miou(preds, truths, ["Mug", "Airplane"])
    assert result["instance_miou"] == pytest.approx((1 + 3 / 4) / 2)
    assert result["class_miou"] == pytest.approx((1 + 3 / 4) / 2)  # one shape per category: the two agree


def test_predicted_ids_outside_the_category_are_misses_only():
    truth = np.array([36, 36, 37, 37])
    # point 1 predicted as an airplane part (0), possible only without restricting: a miss for its true part 36
    # (1 / 2) and a false positive for none of the mug's parts (37: 2 / 2). Mean 3/4
    assert shape_iou(np.array([36, 0, 37, 37]), truth, "Mug") == pytest.approx(3 / 4)
    # the same point predicted as the mug's other part costs more: 36: 1 / 2, 37: 2 / 3. Mean 7/12
    assert shape_iou(np.array([36, 37, 37, 37]), truth, "Mug") == pytest.approx(7 / 12)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="outside Mug's parts"):
        shape_iou(np.array([0, 1]), np.array([0, 1]), "Mug")  # truth of another category (or local ids)
    with pytest.raises(ValueError, match="unknown category"):
        shape_iou(np.array([0]), np.array([0]), "Plane")
    with pytest.raises(ValueError, match="points"):
        shape_iou(np.array([36]), np.array([36, 36]), "Mug")
    with pytest.raises(ValueError, match="non-integer"):
        shape_iou(np.array([36.5]), np.array([36]), "Mug")
    with pytest.raises(ValueError, match="one of each"):
        part_miou([np.array([36])], [np.array([36])], [])
    with pytest.raises(ValueError, match="no shapes"):
        part_miou([], [], [])


def test_a_smaller_parts_table_works_too():
    twin = {"Mug": (36, 37), "Table": (47, 48, 49)}
    result = part_miou([np.array([36, 37])], [np.array([36, 36])], ["Mug"], parts=twin)
    assert result["instance_miou"] == pytest.approx((1 / 2 + 0) / 2)  # 36: 1 / 2, 37: predicted, absent: 0
    with pytest.raises(ValueError, match="unknown category"):
        part_miou([np.array([0])], [np.array([0])], ["Airplane"], parts=twin)


def test_restrict_to_category_ignores_other_categories_parts():
    logits = np.zeros((3, NUM_PARTS), np.float32)
    logits[:, 0] = 100.0  # an airplane part scores highest at every point
    logits[:, 36] = [1.0, 0.0, 1.0]
    logits[:, 37] = [0.0, 1.0, 1.0]  # a tie at point 2: the lowest id, 36, as argmax over logits[:, [36, 37]]
    assert logits.argmax(1).tolist() == [0, 0, 0]
    pred = restrict_to_category(logits, SHAPENET_PARTS["Mug"])
    assert isinstance(pred, np.ndarray) and pred.dtype == np.int64
    assert pred.tolist() == [36, 37, 36]

    # a batch of 2 shapes of different categories, (N, 50, P) (the default part_axis=1) and (N, P, 50)
    batch = np.zeros((2, 3, NUM_PARTS), np.float32)
    batch[0] = logits
    batch[1, :, 47:50] = [[0, 5, 1], [9, 0, 0], [0, 0, 2]]  # table: 48, 47, 49
    batch[1, :, 36] = 50.0  # a mug part, ignored for a table
    per_shape = [SHAPENET_PARTS["Mug"], SHAPENET_PARTS["Table"]]
    expected = [[36, 37, 36], [48, 47, 49]]
    as_n_p_50 = restrict_to_category(torch.from_numpy(batch), per_shape, part_axis=-1)
    assert isinstance(as_n_p_50, torch.Tensor) and as_n_p_50.tolist() == expected
    as_n_50_p = restrict_to_category(torch.from_numpy(batch).transpose(1, 2), per_shape)
    assert as_n_50_p.tolist() == expected
    # one category for the whole batch
    assert restrict_to_category(batch, SHAPENET_PARTS["Table"], part_axis=-1)[1].tolist() == [48, 47, 49]
    with pytest.raises(ValueError, match="one per shape"):
        restrict_to_category(batch, per_shape * 2, part_axis=-1)
    with pytest.raises(ValueError, match="do not fit"):
        restrict_to_category(np.zeros((3, 10)), SHAPENET_PARTS["Mug"])  # 10 scores cannot hold part 36


def _random_batch(gen: torch.Generator, n: int, points: int, categories: list[str]):
    """Scores (N, 50, P) and targets of shapes of random categories, the truth within each category's parts."""
    index = torch.randint(len(categories), (n,), generator=gen)
    labels = torch.stack([torch.tensor(SHAPENET_PARTS[categories[i]])[torch.randint(
        len(SHAPENET_PARTS[categories[i]]), (points,), generator=gen)] for i in index])
    scores = torch.randn(n, NUM_PARTS, points, generator=gen)
    return scores, {"labels": labels, "category": index}


def test_the_accumulating_metric_equals_part_miou():
    gen = torch.Generator().manual_seed(0)
    names = list(SHAPENET_PARTS)
    batches = [_random_batch(gen, 4, 16, names) for _ in range(3)]
    metric = PartMIoU()
    metric.update(*batches[0])  # reset must forget this
    metric.reset()
    preds, truths, cats = [], [], []
    for scores, targets in batches:
        metric.update(scores, targets)
        cat_names = [names[i] for i in targets["category"]]
        preds += list(restrict_to_category(scores, [SHAPENET_PARTS[c] for c in cat_names]))
        truths += list(targets["labels"])
        cats += cat_names
    expected = part_miou(preds, truths, cats)
    assert metric.compute() == pytest.approx(expected["instance_miou"])
    assert metric.result() == expected
    by_class = PartMIoU(key="class_miou")
    for scores, targets in batches:
        by_class.update(scores, targets)
    assert by_class.compute() == pytest.approx(expected["class_miou"])

    # (N, P, 50) outputs in a (scores, feature transform) tuple, categories as (N, 1) like the PyTorch port's
    channels_last = PartMIoU(part_axis=-1)
    for scores, targets in batches:
        targets = {"labels": targets["labels"], "category": targets["category"][:, None]}
        channels_last.update((scores.transpose(1, 2), torch.eye(64)), targets)
    assert channels_last.result() == expected
    # (N, P, 50) read as (N, 50, P) by mistake: with P = 16 the category's ids cannot fit 16 scores; with P = 64
    # they fit, and the predictions come out (N, 50), not the labels' (N, 64)
    with pytest.raises(ValueError, match="do not fit .* part_axis right"):
        PartMIoU().update(batches[0][0].transpose(1, 2), batches[0][1])
    scores, targets = _random_batch(gen, 2, 64, names)
    with pytest.raises(ValueError, match="need part_axis=-1"):
        PartMIoU().update(scores.transpose(1, 2), targets)


def test_the_metric_runs_in_train_evaluate():
    from course_utils.train import evaluate

    twin_categories = ["Mug", "Table"]  # a twin's category list, indices 0 and 1
    labels = torch.tensor([[36, 36, 37, 37], [47, 47, 48, 48]])
    scores = torch.zeros(2, NUM_PARTS, 4)
    scores[0, 36] = 1.0  # the mug: all body: 36: 2 / 4, 37: 0 / 2, mean 1/4
    scores[1, 47, :2] = scores[1, 48, 2:] = 1.0  # the table: right, 48's legs and absent 49: 1

    class Fixed(nn.Module):  # returns the stored scores of the shapes whose indices it gets
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, index):
            return scores[index] * self.scale

    loader = [(torch.tensor([0]), {"labels": labels[:1], "category": torch.tensor([0])}),
              (torch.tensor([1]), {"labels": labels[1:], "category": torch.tensor([1])})]
    out = evaluate(Fixed(), loader, metrics={"part_miou": PartMIoU(twin_categories)}, device=torch.device("cpu"))
    assert out["part_miou"] == pytest.approx((1 / 4 + 1) / 2)
    with pytest.raises(ValueError, match="outside 0..1"):
        PartMIoU(twin_categories).update(scores, {"labels": labels, "category": torch.tensor([0, 2])})
    with pytest.raises(ValueError, match="unknown category"):
        PartMIoU(["Mug", "Teapot"])
    with pytest.raises(ValueError, match="key must be"):
        PartMIoU(key="miou")


def test_most_frequent_part_baseline():
    labels = [np.array([36, 36, 37]), np.array([36, 37, 37, 37]),  # mug points: 36 x3, 37 x4 -> 37
              np.array([47, 48, 48]), np.array([49]),  # table: 47 x1, 48 x2, 49 x1 -> 48
              np.array([0, 1])]  # airplane: a tie of 0 and 1 -> the lowest id, 0
    cats = ["Mug", "Mug", "Table", "Table", "Airplane"]
    baseline = most_frequent_part_baseline(labels, cats)
    assert baseline == {"Airplane": 0, "Mug": 37, "Table": 48}  # only categories seen in training
    # points are counted, not shapes: two shapes mostly handle lose to one shape of more body points
    assert most_frequent_part_baseline([np.array([36, 36, 36]), np.array([37]), np.array([37])],
                                       ["Mug"] * 3) == {"Mug": 36}  # 3 points of 36 against 2 of 37
    # scoring it: a test mug [36, 37, 37] predicted all 37: 36: 0 / 1, 37: 2 / 3, mean 1/3
    test = np.array([36, 37, 37])
    assert shape_iou(np.full_like(test, baseline["Mug"]), test, "Mug") == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="outside its parts"):
        most_frequent_part_baseline([np.array([0])], ["Mug"])


def test_a_real_skateboard_and_the_lenient_absent_part_rule():
    path = next(real_sample("shapenet-part", "04225987").glob("*.txt"))
    labels = np.loadtxt(path)[:, 6]  # x y z nx ny nz label, the label written as a float
    assert set(np.unique(labels)) <= set(SHAPENET_PARTS["Skateboard"])
    if set(np.unique(labels)) == {45.0}:  # this sample is all deck
        # deck everywhere: 45: 1, and 44, 46 absent from both: 1 each, so a constant guess scores 1
        assert shape_iou(np.full(labels.shape, 45), labels, "Skateboard") == 1.0
        # wheels everywhere: 44: 0 (predicted, absent), 45: 0 (missed), 46: 1 (absent from both): 1/3
        assert shape_iou(np.full(labels.shape, 44), labels, "Skateboard") == pytest.approx(1 / 3)
    baseline = most_frequent_part_baseline([labels], ["Skateboard"])
    assert baseline["Skateboard"] in SHAPENET_PARTS["Skateboard"]
