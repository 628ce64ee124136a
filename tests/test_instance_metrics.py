"""COCO mask AP: the same numbers as torchmetrics' pycocotools backend, a case worked out by hand, the
empty cases, and the accumulating form."""

import math

import numpy as np
import pytest
import torch
from torchmetrics.detection import MeanAveragePrecision

from course_utils.metrics.instance import MaskAP, mask_ap

SIZE = 120


def random_scene(seed: int, n_images: int = 8):
    """Rectangles of 3 classes, some of them crowd regions, found by shifted, ragged, sometimes
    mislabelled detections with random scores, plus false positives. Image 0 has no ground truth,
    image 1 no predictions."""
    g = torch.Generator().manual_seed(seed)

    def randint(low, high):
        return int(torch.randint(low, high, (1,), generator=g))

    def rectangle(x0, y0, x1, y1, ragged=False):
        mask = torch.zeros(SIZE, SIZE, dtype=torch.uint8)
        mask[y0:y1, x0:x1] = 1
        if ragged:  # not a box: the mask IoU differs from the box IoU
            mask &= (torch.rand(SIZE, SIZE, generator=g) > 0.15).to(torch.uint8)
        return mask

    def random_box():
        w, h = randint(4, 115), randint(4, 115)  # small, medium and large objects (32², 96² pixels)
        x0, y0 = randint(0, SIZE - w + 1), randint(0, SIZE - h + 1)
        return [x0, y0, x0 + w, y0 + h]

    def stack(masks):
        return torch.stack(masks) if masks else torch.zeros(0, SIZE, SIZE, dtype=torch.uint8)

    predictions, targets = [], []
    for i in range(n_images):
        gt_boxes, gt_labels, crowd, boxes, labels = [], [], [], [], []
        for _ in range(0 if i == 0 else randint(1, 6)):
            gt_boxes.append(random_box())
            gt_labels.append(randint(1, 4))
            crowd.append(int(randint(0, 8) == 0))
            if i != 1 and randint(0, 5):  # found, 4 times in 5
                box = [min(max(v + randint(-4, 5), 0), SIZE) for v in gt_boxes[-1]]
                if box[2] > box[0] and box[3] > box[1]:
                    boxes.append(box)
                    labels.append(gt_labels[-1] if randint(0, 6) else randint(1, 4))
        for _ in range(0 if i == 1 else randint(0, 4)):
            boxes.append(random_box())
            labels.append(randint(1, 4))
        targets.append({"masks": stack([rectangle(*b) for b in gt_boxes]),
                        "boxes": torch.tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4),
                        "labels": torch.tensor(gt_labels, dtype=torch.int64),
                        "iscrowd": torch.tensor(crowd, dtype=torch.int64)})
        predictions.append({"masks": stack([rectangle(*b, ragged=True) for b in boxes]),
                            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
                            + 0.5 * torch.rand(len(boxes), 4, generator=g),
                            "labels": torch.tensor(labels, dtype=torch.int64),
                            "scores": torch.rand(len(labels), generator=g)})
    return predictions, targets


def torchmetrics_map(predictions, targets, iou_type):
    # pycocotools' own thresholds: torchmetrics' defaults are float32 (0.8999999761...), which treat an IoU
    # equal to a threshold, or a recall equal to a recall point, differently from pycocotools
    metric = MeanAveragePrecision(iou_type=iou_type, backend="pycocotools",
                                  iou_thresholds=np.linspace(0.5, 0.95, 10).tolist(),
                                  rec_thresholds=np.linspace(0.0, 1.0, 101).tolist())
    metric.update(predictions, targets)
    return {key: float(value) for key, value in metric.compute().items() if value.numel() == 1}


NAMES = {"AP": "map", "AP50": "map_50", "AP75": "map_75", "AP_small": "map_small", "AP_medium": "map_medium",
         "AP_large": "map_large", "AR100": "mar_100"}


def assert_same(ours: dict, reference: dict, prefix: str = "", ref_prefix: str = ""):
    for key, name in NAMES.items():
        expected = reference[ref_prefix + name]
        expected = math.nan if expected == -1 else expected  # COCO's "absent" is our NaN
        assert ours[prefix + key] == pytest.approx(expected, abs=1e-6, nan_ok=True), prefix + key


def test_mask_and_box_ap_match_torchmetrics_pycocotools_backend():
    predictions, targets = random_scene(0)
    ours = mask_ap(predictions, targets)
    reference = torchmetrics_map(predictions, targets, ("bbox", "segm"))
    assert_same(ours, reference, ref_prefix="segm_")
    assert_same(ours, reference, prefix="box_", ref_prefix="bbox_")
    assert 0 < ours["AP"] < ours["AP50"] < 1 and ours["AP"] != ours["box_AP"]  # a scene that tests something
    assert not all(math.isnan(ours[k]) for k in ("AP_small", "AP_medium", "AP_large"))
    # without target boxes the ground-truth box is the tight box around the mask, here the same rectangle
    without_boxes = [{key: value for key, value in t.items() if key != "boxes"} for t in targets]
    assert mask_ap(predictions, without_boxes) == exactly(ours)
    # with iou_type="segm" alone, torchmetrics drops the images without ground truth (test_empty_cases);
    # on images that all have some it agrees with us too
    assert_same(mask_ap(predictions[1:], targets[1:]), torchmetrics_map(predictions[1:], targets[1:], "segm"))


def exactly(result: dict):
    """Equal to ``result`` value for value, NaN equal to NaN."""
    return pytest.approx(result, rel=0, abs=0, nan_ok=True)


def block(n_pixels: int, top: int) -> torch.Tensor:
    """A 64x64 mask with the first ``n_pixels`` (row by row) of a 10x20 block at rows top..top+9 set."""
    mask = torch.zeros(64, 64, dtype=torch.uint8)
    mask[top:top + 10, :20] = (torch.arange(200) < n_pixels).to(torch.uint8).reshape(10, 20)
    return mask


def test_hand_computed_ap():
    # Two objects of 200 pixels. Detection A (score 0.9) covers 181 of the first: IoU 181/200 = 0.905;
    # B (0.8) covers 151 of the second: IoU 0.755; a false positive (0.1) elsewhere. The IoUs lie between
    # thresholds, so rounding can't decide a match. COCO ranks the detections by score and, at each of
    # the 10 IoU thresholds, takes as precision at recall r the best precision reached at recall >= r,
    # read at the 101 recall points 0, 0.01, ..., 1:
    # - thresholds 0.50..0.75 (6 of them): A and B both match; precision is 1 up to recall 1 -> AP 1.
    #   The false positive comes after both, at recall 1 already reached, so it costs nothing.
    # - thresholds 0.80, 0.85, 0.90 (3): only A matches; precision 1 at recall 0.5 and recall 1 is
    #   never reached: the 51 recall points 0..0.50 score 1, the other 50 score 0 -> AP 51/101.
    # - threshold 0.95: nothing matches -> AP 0.
    # AP = (6 * 1 + 3 * 51/101 + 0) / 10 = 0.75149 (the 0.7515). AP50 = AP75 = 1.
    # (Were B scored above A, A would reach recall 0.5 at precision 1/2: (6 + 3 * 0.5 * 51/101) / 10 = 0.6757.)
    target = {"masks": torch.stack([block(200, 0), block(200, 20)]), "labels": torch.tensor([1, 1])}
    prediction = {"masks": torch.stack([block(181, 0), block(151, 20), block(200, 40)]),
                  "scores": torch.tensor([0.9, 0.8, 0.1]), "labels": torch.tensor([1, 1, 1])}
    result = mask_ap([prediction], [target])
    assert result["AP"] == pytest.approx((6 + 3 * 51 / 101) / 10) and round(result["AP"], 4) == 0.7515
    assert result["AP50"] == 1.0 and result["AP75"] == 1.0
    assert result["AR100"] == pytest.approx((6 * 1 + 3 * 0.5 + 0) / 10)  # recall averaged over thresholds
    assert math.isnan(result["AP_medium"]) and math.isnan(result["AP_large"])  # no objects of those sizes
    assert "box_AP" not in result  # no boxes in the predictions
    swapped = mask_ap([{**prediction, "scores": torch.tensor([0.8, 0.9, 0.1])}], [target])
    assert swapped["AP"] == pytest.approx((6 + 3 * 0.5 * 51 / 101) / 10)


def test_empty_cases(capsys):
    target = {"masks": block(200, 0)[None], "labels": torch.tensor([1])}
    hit = {"masks": block(200, 0)[None], "scores": torch.tensor([0.8]), "labels": torch.tensor([1])}
    nothing = {"masks": torch.zeros(0, 64, 64), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    no_truth = {"masks": torch.zeros(0, 64, 64, dtype=torch.uint8), "labels": torch.zeros(0, dtype=torch.long)}
    assert mask_ap([nothing], [target])["AP"] == 0.0  # nothing found
    assert mask_ap([hit, nothing], [target, no_truth])["AP"] == pytest.approx(1.0)  # rightly left empty
    # a false positive on an image without objects, scored above the hit: precision 1/2 at recall 1
    false_positive = {"masks": block(200, 20)[None], "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}
    assert mask_ap([hit, false_positive], [target, no_truth])["AP"] == pytest.approx(0.5)
    # torchmetrics with iou_type="segm" alone leaves such an image out (it lists only the images with
    # ground-truth masks), and its false positive with it; COCO's annotation files list every image
    assert torchmetrics_map([hit, false_positive], [target, no_truth], "segm")["map"] == pytest.approx(1.0)
    assert math.isnan(mask_ap([false_positive], [no_truth])["AP"])  # no ground truth: nothing to measure
    assert math.isnan(mask_ap([nothing], [no_truth])["AP"])
    assert capsys.readouterr().out == ""  # pycocotools' printing is silenced


def test_mask_ap_accumulated_over_batches_equals_all_at_once():
    predictions, targets = random_scene(1, n_images=7)
    metric = MaskAP(key="AP50")
    metric.update(predictions[:1], targets[:1])  # left over from a previous epoch
    metric.reset()
    for start in range(0, 7, 3):
        batch = slice(start, start + 3)
        metric.update(predictions[batch], targets[batch])
    expected = mask_ap(predictions, targets)
    assert metric.compute() == expected["AP50"] and metric.result == exactly(expected)
    assert metric.compute() == expected["AP50"]  # computing twice changes nothing
    box = MaskAP(key="box_AP")
    box.update(predictions, targets)
    assert box.compute() == expected["box_AP"]
    with pytest.raises(ValueError, match="key must be one of"):
        MaskAP(key="mAP")


def test_probabilities_are_thresholded_and_mask_rcnn_shapes_accepted():
    predictions, targets = random_scene(2, n_images=3)
    expected = mask_ap(predictions, targets)
    g = torch.Generator().manual_seed(0)
    as_model_returns = []  # (N, 1, H, W) probabilities, > 0.5 inside the mask, <= 0.5 outside
    for p in predictions:
        masks = p["masks"].float()
        probabilities = torch.where(masks > 0, 0.51 + 0.49 * torch.rand(masks.shape, generator=g),
                                    0.5 * torch.rand(masks.shape, generator=g))
        as_model_returns.append({**p, "masks": probabilities[:, None]})
    assert mask_ap(as_model_returns, targets) == exactly(expected)
    as_numpy = [{key: value.numpy() for key, value in p.items()} for p in as_model_returns]
    assert mask_ap(as_numpy, [{key: value.numpy() for key, value in t.items()} for t in targets]) == exactly(expected)
    bool_masks = [{**p, "masks": p["masks"].bool()} for p in predictions]
    assert mask_ap(bool_masks, targets) == exactly(expected)
