"""Panoptic quality: each of panopticapi's rules on a case worked out by hand, the same numbers as
torchmetrics' PanopticQuality where the two conventions agree, COCO's real annotations scored against
themselves, the accumulating form, and the errors."""

import json
import math

import numpy as np
import pytest
import torch
from conftest import real_sample
from PIL import Image
from torchmetrics.detection import PanopticQuality as TorchmetricsPQ

from course_utils.metrics import PanopticQuality, panoptic_quality

PERSON, CAR, SKY, GRASS = 1, 2, 3, 4
CATEGORIES = [{"id": PERSON, "name": "person", "isthing": 1}, {"id": CAR, "name": "car", "isthing": 1},
              {"id": SKY, "name": "sky", "isthing": 0}, {"id": GRASS, "name": "grass", "isthing": 0}]


def strip(ids: str, categories: dict[int, int], crowd: tuple = ()) -> tuple[np.ndarray, list[dict]]:
    """An image one pixel high, written as a string: each character is a pixel's segment id (0 = void);
    ``categories`` maps each segment id to its category, ``crowd`` lists the crowd segments."""
    info = [{"id": i, "category_id": c, "iscrowd": int(i in crowd)} for i, c in categories.items()]
    return np.array([[int(c) for c in ids]]), info


def pq(gt, pred) -> dict:
    return panoptic_quality([gt], [pred], CATEGORIES)


def counts(result: dict, category: int) -> tuple:
    c = result["per_category"][category]
    return c["TP"], c["FP"], c["FN"]


def test_perfect_prediction():
    gt = strip("11223333", {1: PERSON, 2: CAR, 3: SKY})
    result = pq(gt, gt)
    for key in ("PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st"):
        assert result[key] == 1.0, key
    assert (result["N"], result["N_th"], result["N_st"]) == (3, 2, 1)  # grass occurs nowhere
    assert counts(result, PERSON) == (1, 0, 0) and result["per_category"][PERSON]["IoU"] == 1.0


def test_one_match_with_iou_three_quarters():
    # the person is 4 pixels; the prediction covers 3 of them and leaves the 4th unassigned (id 0 in a
    # prediction is no segment, not void): IoU = 3 / 4 > 0.5, a TP. SQ = 0.75, RQ = 1 / (1 + 0 + 0) = 1,
    # PQ = 0.75 / 1 = 0.75
    result = pq(strip("1111", {1: PERSON}), strip("1110", {1: PERSON}))
    assert result["PQ"] == result["SQ"] == 0.75 and result["RQ"] == 1.0
    assert counts(result, PERSON) == (1, 0, 0) and result["per_category"][PERSON]["IoU"] == 0.75
    assert result["N"] == 1 and result["PQ_th"] == 0.75


def test_iou_of_exactly_one_half_is_no_match():
    # intersection 2, union 4: IoU 0.5 is not > 0.5. The truth is a FN, the prediction (nothing of it on
    # void) a FP: RQ = 0 / (0 + 1/2 + 1/2) = 0, SQ = 0 (no TP), PQ = 0
    result = pq(strip("1111", {1: PERSON}), strip("1100", {1: PERSON}))
    assert counts(result, PERSON) == (0, 1, 1)
    assert result["PQ"] == result["SQ"] == result["RQ"] == 0.0 and result["N"] == 1
    # one pixel more: IoU 3/5 = 0.6, a match
    assert pq(strip("11111", {1: PERSON}), strip("11100", {1: PERSON}))["PQ"] == pytest.approx(0.6)


def test_false_positive_ignored_only_when_more_than_half_on_void():
    # truth: void, void, void, person x4. Predicted car 2 on pixels 0-3: 3 of its 4 pixels on void,
    # 3/4 > 1/2, ignored; the car occurs nowhere else, so it is left out. Predicted person 1 on pixels
    # 4-6: IoU 3 / 4, a TP. PQ = PQ_person = 0.75, N = 1
    result = pq(strip("0001111", {1: PERSON}), strip("2222111", {2: CAR, 1: PERSON}))
    assert counts(result, CAR) == (0, 0, 0) and math.isnan(result["per_category"][CAR]["PQ"])
    assert result["PQ"] == 0.75 and result["N"] == 1
    # truth: void x2, person x5. The car on pixels 0-3 has 2 of 4 on void: 1/2 is not more than half, a FP
    # (PQ_car = 0 / (0 + 1/2) = 0). Person: IoU 3 / 5 = 0.6, a TP. PQ = (0.6 + 0) / 2 = 0.3, N = 2
    result = pq(strip("0011111", {1: PERSON}), strip("2222111", {2: CAR, 1: PERSON}))
    assert counts(result, CAR) == (0, 1, 0) and result["per_category"][CAR]["PQ"] == 0.0
    assert result["PQ"] == pytest.approx(0.3) and result["N"] == 2


def test_crowd_regions():
    # truth: person 1 (2 pixels), then a crowd of people, segment 2 (4 pixels)
    gt = strip("112222", {1: PERSON, 2: PERSON}, crowd=(2,))
    # a predicted person 7 exactly on the crowd: a crowd is never matched, but 4/4 of 7 lie on a crowd
    # of its own category, so it is ignored, not a FP. Person 1 is a TP with IoU 1: PQ = 1
    result = pq(gt, strip("117777", {1: PERSON, 7: PERSON}))
    assert counts(result, PERSON) == (1, 0, 0) and result["PQ"] == 1.0
    # the crowd missed altogether: no FN
    result = pq(gt, strip("110000", {1: PERSON}))
    assert counts(result, PERSON) == (1, 0, 0) and result["PQ"] == 1.0
    # a car on the crowd of people: not its category, 0/4 ignored, a FP. PQ = (1 + 0) / 2
    result = pq(gt, strip("117777", {1: PERSON, 7: CAR}))
    assert counts(result, CAR) == (0, 1, 0) and result["PQ"] == 0.5
    # a prediction's iscrowd is never read
    pred = strip("117777", {1: PERSON, 7: CAR}, crowd=(7,))
    assert pq(gt, pred) == result


def test_a_prediction_on_two_crowds_of_its_category():
    # two crowds of people, 2 and 3, then person 1. Predicted person 5 covers both crowds: 4/4 on crowd,
    # ignored, PQ = 1. (panopticapi looks at one crowd per category only, the last listed, here 3:
    # 2/4 is not more than half and it would count a FP. COCO has one crowd per category and image.)
    gt = strip("223311", {2: PERSON, 3: PERSON, 1: PERSON}, crowd=(2, 3))
    result = pq(gt, strip("555511", {5: PERSON, 1: PERSON}))
    assert counts(result, PERSON) == (1, 0, 0) and result["PQ"] == 1.0


def test_void_leaves_the_union_but_crowd_does_not():
    # truth: void x2, person x3; the prediction covers all 5. union = 5 + 3 - 3 (intersection)
    # - 2 (predicted pixels on void) = 3: IoU = 3 / 3 = 1 (without the rule it would be 3/5)
    assert pq(strip("00111", {1: PERSON}), strip("11111", {1: PERSON}))["PQ"] == 1.0
    # truth: person x4, then a crowd of people x2; the prediction covers all 6. Only void is taken out of
    # the union (panopticapi's evaluation.py, line 132): union = 6 + 4 - 4 = 6, IoU = 4/6, still a TP.
    # PQ = SQ = 2/3, RQ = 1
    gt = strip("111122", {1: PERSON, 2: PERSON}, crowd=(2,))
    result = pq(gt, strip("555555", {5: PERSON}))
    assert counts(result, PERSON) == (1, 0, 0)
    assert result["PQ"] == result["SQ"] == pytest.approx(2 / 3) and result["RQ"] == 1.0


def test_absent_categories_are_left_out_and_things_split_from_stuff():
    # person: a TP with IoU 1. Sky: missed, a FN: PQ_sky = 0 / (0 + 0 + 1/2) = 0. Grass: predicted where
    # there is sky, a FP: PQ_grass = 0. The car occurs nowhere: left out.
    # PQ = (1 + 0 + 0) / 3 = 1/3; things: person alone, 1; stuff: sky and grass, 0.
    # SQ: person 1, sky and grass 0 (no TP) -> 1/3; RQ likewise
    result = pq(strip("11113333", {1: PERSON, 3: SKY}), strip("11114444", {1: PERSON, 4: GRASS}))
    assert result["PQ"] == result["SQ"] == result["RQ"] == pytest.approx(1 / 3)
    assert result["PQ_th"] == 1.0 and result["PQ_st"] == result["SQ_st"] == result["RQ_st"] == 0.0
    assert (result["N"], result["N_th"], result["N_st"]) == (3, 1, 2)
    assert counts(result, SKY) == (0, 0, 1) and counts(result, GRASS) == (0, 1, 0)
    assert counts(result, CAR) == (0, 0, 0) and math.isnan(result["per_category"][CAR]["PQ"])
    # a group with nothing in it: NaN, not 0
    result = pq(strip("1111", {1: PERSON}), strip("1111", {1: PERSON}))
    assert result["PQ"] == result["PQ_th"] == 1.0
    assert math.isnan(result["PQ_st"]) and math.isnan(result["SQ_st"]) and result["N_st"] == 0


def test_counts_add_up_over_the_dataset_before_dividing():
    found = (strip("1111", {1: PERSON}), strip("1111", {1: PERSON}))  # TP with IoU 1: PQ 1
    missed = (strip("1111", {1: PERSON}), strip("0000", {}))  # FN: PQ 0
    assert pq(*found)["PQ"] == 1.0 and pq(*missed)["PQ"] == 0.0  # averaged per image: 0.5
    # over the dataset: TP 1, FN 1, IoU sum 1: PQ = 1 / (1 + 0 + 1/2) = 2/3, SQ = 1, RQ = 2/3
    result = panoptic_quality([found[0], missed[0]], [found[1], missed[1]], CATEGORIES)
    assert result["PQ"] == result["RQ"] == pytest.approx(2 / 3) and result["SQ"] == 1.0
    # the accumulating form, image by image, gives the same
    metric = PanopticQuality(CATEGORIES)
    metric.update([missed[0]], [found[1]])  # left over from a previous epoch
    metric.reset()
    metric.update([found[0]], [found[1]])
    metric.update([missed[0]], [missed[1]])
    assert metric.compute() == result and metric.compute() == result  # computing twice changes nothing


# ---- against torchmetrics -------------------------------------------------------------------------------
THINGS, STUFFS = (1, 2, 5), (3, 4, 6)
RANDOM_CATEGORIES = [{"id": c, "isthing": int(c in THINGS)} for c in THINGS + STUFFS]
H, W = 24, 32
NOT_A_CATEGORY = 99  # torchmetrics' void: any category outside things and stuffs


def paint(rng, stuff: list, things: list, void: tuple | None = None) -> tuple[np.ndarray, list[dict]]:
    """An (id_map, segments_info) pair: horizontal bands of stuff ([(category, first row)], the first at
    row 0), thing rectangles painted on top in order ([(category, y0, x0, y1, x1)]), then a void rectangle.
    Segment ids are random below 256³, as in COCO's PNGs; segments painted over entirely are dropped."""
    ids = rng.choice(np.arange(1, 256**3), size=len(stuff) + len(things), replace=False).tolist()
    id_map, category = np.zeros((H, W), np.int64), {}
    for (c, row), seg_id in zip(stuff, ids):
        id_map[row:], category[seg_id] = seg_id, c
    for (c, y0, x0, y1, x1), seg_id in zip(things, ids[len(stuff):]):
        id_map[y0:y1, x0:x1], category[seg_id] = seg_id, c
    if void:
        y0, x0, y1, x1 = void
        id_map[y0:y1, x0:x1] = 0
    present = set(np.unique(id_map).tolist())
    return id_map, [{"id": i, "category_id": c} for i, c in category.items() if i in present]


def random_scene(seed: int, n_images: int = 6) -> tuple[list, list]:
    """Truth: stuff bands, things, a void rectangle. Prediction: jittered bands and things, some with the
    wrong category, some missed, some invented. Restricted to what torchmetrics scores the same way: no
    crowd (it has none), no void in the prediction (it forgives truth segments predicted void, see
    test_torchmetrics_forgives_predicted_void) and each stuff category one band per image (it merges a
    stuff category's segments into one)."""
    rng = np.random.default_rng(seed)

    def randint(low, high):
        return int(rng.integers(low, high))

    def box():
        h, w = randint(3, 14), randint(3, 14)
        y0, x0 = randint(0, H - h + 1), randint(0, W - w + 1)
        return [y0, x0, y0 + h, x0 + w]

    gts, preds = [], []
    for _ in range(n_images):
        bands = rng.choice(STUFFS, size=randint(1, 4), replace=False).tolist()
        rows = [0, *sorted(rng.choice(np.arange(1, H), size=len(bands) - 1, replace=False).tolist())]
        things = [(int(rng.choice(THINGS)), *box()) for _ in range(randint(0, 6))]
        void = box() if rng.random() < 0.7 else None
        gts.append(paint(rng, list(zip(bands, rows)), things, void))
        if rng.random() < 0.3:  # other stuff predicted
            bands = rng.choice(STUFFS, size=len(bands), replace=False).tolist()
        rows = [0] + [min(max(r + randint(-3, 4), 1), H - 1) for r in rows[1:]]
        found = [(c if rng.random() < 0.85 else int(rng.choice(THINGS)),
                  *(min(max(v + randint(-2, 3), 0), limit) for v, limit in zip(b, (H, W, H, W))))
                 for c, *b in things if rng.random() < 0.8]
        invented = [(int(rng.choice(THINGS)), *box()) for _ in range(randint(0, 3))]
        preds.append(paint(rng, list(zip(bands, rows)), found + invented))
    return gts, preds


def torchmetrics_input(pairs: list) -> torch.Tensor:
    """(B, H, W, 2): each pixel's (category_id, instance_id); void pixels get a category that isn't one."""
    batch = []
    for id_map, info in pairs:
        pixels = np.zeros((*id_map.shape, 2), np.int64)
        pixels[..., 0] = NOT_A_CATEGORY
        for instance, segment in enumerate(info, start=1):
            pixels[id_map == segment["id"]] = (segment["category_id"], instance)
        batch.append(pixels)
    return torch.from_numpy(np.stack(batch))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_as_torchmetrics_where_the_conventions_agree(seed):
    gts, preds = random_scene(seed)
    ours = panoptic_quality(gts, preds, RANDOM_CATEGORIES)
    theirs = TorchmetricsPQ(things=set(THINGS), stuffs=set(STUFFS), return_sq_and_rq=True)
    theirs.update(torchmetrics_input(preds), torchmetrics_input(gts))
    assert [ours["PQ"], ours["SQ"], ours["RQ"]] == pytest.approx(theirs.compute().tolist(), abs=1e-6)
    # per category, in torchmetrics' order (things, then stuff, each by id); it says 0 where we say NaN
    per_class = TorchmetricsPQ(things=set(THINGS), stuffs=set(STUFFS), return_sq_and_rq=True, return_per_class=True)
    per_class.update(torchmetrics_input(preds), torchmetrics_input(gts))
    for c, (pq_c, sq_c, rq_c) in zip(sorted(THINGS) + sorted(STUFFS), per_class.compute().tolist()):
        expected = ours["per_category"][c]
        if math.isnan(expected["PQ"]):
            assert pq_c == sq_c == rq_c == 0.0
        else:
            assert [expected["PQ"], expected["SQ"], expected["RQ"]] == pytest.approx([pq_c, sq_c, rq_c], abs=1e-6)
    # a scene that tests something: matches, misses, false positives, truth-void under some predictions
    totals = {key: sum(c[key] for c in ours["per_category"].values()) for key in ("TP", "FP", "FN")}
    assert all(totals.values()) and 0 < ours["PQ"] < 1 and ours["N"] >= 4


def test_torchmetrics_forgives_predicted_void():
    # the prediction covers 2 of the person's 4 pixels and leaves the rest void. panopticapi: IoU 2/4 is no
    # match, a FN and a FP, PQ 0. torchmetrics also takes the truth's pixels predicted void out of the
    # union: 2 / (2 + 4 - 2 - 2) = 1, a TP, PQ 1
    gt, pred = strip("1111", {1: PERSON}), strip("1100", {1: PERSON})
    assert pq(gt, pred)["PQ"] == 0.0
    theirs = TorchmetricsPQ(things={PERSON, CAR}, stuffs={SKY, GRASS}, allow_unknown_preds_category=True)
    theirs.update(torchmetrics_input([pred]), torchmetrics_input([gt]))
    assert float(theirs.compute()) == 1.0


def test_torch_tensors_and_numpy_arrays_give_the_same():
    gts, preds = random_scene(3, n_images=3)
    expected = panoptic_quality(gts, preds, RANDOM_CATEGORIES)
    as_torch = [[(torch.from_numpy(m.astype(np.int32)), info) for m, info in pairs] for pairs in (gts, preds)]
    assert panoptic_quality(*as_torch, RANDOM_CATEGORIES) == expected
    as_uint32 = [[(m.astype(np.uint32), info) for m, info in pairs] for pairs in (gts, preds)]
    assert panoptic_quality(*as_uint32, RANDOM_CATEGORIES) == expected


# ---- COCO's real annotations --------------------------------------------------------------------------
def test_coco_truth_scored_against_itself():
    root = real_sample("coco-panoptic")
    dataset = json.loads((root / "panoptic_examples.json").read_text())
    pairs, occurring = [], set()
    for annotation in dataset["annotations"]:
        rgb = np.array(Image.open(root / "panoptic_examples" / annotation["file_name"]), dtype=np.uint32)
        id_map = rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]  # in uint32: 256² * B overflows uint8
        ids, areas = np.unique(id_map, return_counts=True)
        area = dict(zip(ids.tolist(), areas.tolist()))
        for segment in annotation["segments_info"]:  # panopticapi reads the truth's area from the JSON
            assert segment["area"] == area[segment["id"]]
        pairs.append((id_map, annotation["segments_info"]))
        occurring |= {s["category_id"] for s in annotation["segments_info"] if not s["iscrowd"]}
    assert any(s["iscrowd"] for _, info in pairs for s in info)  # the sample has crowds
    # the prediction is the truth itself, iscrowd included (never read in a prediction): every non-crowd
    # segment is a TP with IoU 1; a crowd's copy lies wholly on its crowd and is ignored
    result = panoptic_quality(pairs, pairs, dataset["categories"])
    assert result["PQ"] == result["SQ"] == result["RQ"] == 1.0
    assert result["PQ_th"] == 1.0 and result["PQ_st"] == 1.0
    thing = {c["id"]: c["isthing"] == 1 for c in dataset["categories"]}
    assert result["N"] == len(occurring) and result["N_th"] == sum(thing[c] for c in occurring) > 0
    assert result["N_st"] == len(occurring) - result["N_th"] > 0
    assert all(c["FP"] == c["FN"] == 0 for c in result["per_category"].values())


# ---- errors -------------------------------------------------------------------------------------------
def test_errors_name_the_image_and_the_segment():
    good = strip("1111", {1: PERSON})

    def second_image(gt, pred):
        return panoptic_quality([good, gt], [good, pred], CATEGORIES)

    with pytest.raises(ValueError, match=r"image 1: predicted segment ids \[2\] are in the id map but not in"):
        second_image(good, strip("1122", {1: PERSON}))
    with pytest.raises(ValueError, match=r"image 1: predicted segment ids \[2\] are in segments_info but cover no"):
        second_image(good, strip("1111", {1: PERSON, 2: CAR}))
    with pytest.raises(ValueError, match=r"image 1: truth segment ids \[3\] are in the id map"):
        second_image(strip("1133", {1: PERSON}), good)
    with pytest.raises(ValueError, match=r"image 1: predicted segment 1 has category_id 9, which is not in categories"):
        second_image(good, strip("1111", {1: 9}))
    with pytest.raises(ValueError, match=r"image 1: the truth id map is \(1, 4\) but the predicted one is \(1, 3\)"):
        second_image(good, strip("111", {1: PERSON}))
    with pytest.raises(ValueError, match=r"image 1: predicted segments_info lists id 0, which is void"):
        second_image(good, strip("1111", {1: PERSON, 0: PERSON}))
    with pytest.raises(ValueError, match=r"image 1: predicted segments_info lists segment id 1 twice"):
        second_image(good, (good[0], good[1] + good[1]))
    with pytest.raises(ValueError, match=r"must be an \(H, W\) integer array"):
        second_image(good, (good[0].astype(float), good[1]))
    with pytest.raises(ValueError, match="2 truth images but 1 predicted"):
        panoptic_quality([good, good], [good], CATEGORIES)
    with pytest.raises(ValueError, match="category 1 has no 'isthing'"):
        PanopticQuality([{"id": 1, "name": "person"}])
