"""Panoptic quality (PQ) of panoptic predictions, with the rules of COCO's reference, panopticapi.

Convention (Kirillov et al., "Panoptic Segmentation", CVPR 2019, as ``panopticapi/evaluation.py`` of
github.com/cocodataset/panopticapi computes it for the COCO panoptic benchmark):

- Each image is an ``(id_map, segments_info)`` pair in COCO's panoptic format: ``id_map`` is an (H, W)
  integer array (numpy or torch) of segment ids, 0 = void (no segment); ``segments_info`` lists one dict
  per segment with its ``id``, ``category_id`` and, in the truth, ``iscrowd`` (missing means 0). A
  prediction's ``iscrowd`` is never read. ``categories`` is COCO's list of dicts with ``id`` and ``isthing``.
- Matching, image by image: a truth segment and a predicted segment of the same category whose IoU is
  more than 0.5 are a true positive (TP). No segment can have two such partners, so no assignment is
  needed. The union leaves out the predicted pixels that lie on truth-void: a prediction is not
  blamed for pixels nobody labelled. It does not leave out crowd pixels.
- Crowd truth segments (``iscrowd`` 1, e.g. "a crowd of people") are never matched and never false
  negatives.
- A truth segment left unmatched is a false negative (FN). A predicted segment left unmatched is a false
  positive (FP), unless more than half of its pixels lie on truth-void or on crowd segments of its own
  category: then it is ignored.
- TP, FP, FN and the sum of the TPs' IoUs add up over the whole dataset, for each category c; then
  ``SQ_c = IoU_sum / TP`` (segmentation quality: how good the matches are; 0 without TP),
  ``RQ_c = TP / (TP + FP/2 + FN/2)`` (recognition quality: an F1 score) and
  ``PQ_c = SQ_c x RQ_c = IoU_sum / (TP + FP/2 + FN/2)``.
- PQ, SQ and RQ are the plain means of the per-category values over the categories that occur
  (TP + FP + FN > 0), for all categories, for things (``isthing`` 1, ``_th``) and for stuff (``_st``).
  Scores are 0-1 (panopticapi prints them x 100). NaN where a group has no category that occurs
  (panopticapi divides by zero there), and NaN per category for one that doesn't (panopticapi says 0).

Where we differ from panopticapi, on inputs it does not expect: its truth area comes from the JSON's
``area`` field, ours from ``id_map`` (the same numbers in COCO's files); it checks only the prediction's
ids and categories, we check the truth's too (and refuse id 0 in ``segments_info``); it needs the truth's
``iscrowd``, we take a missing one as 0; it compares a prediction with one crowd segment of its
category (the last listed), we with all of them (the same when, as in COCO, a category has at most one
crowd segment per image).

torchmetrics' ``PanopticQuality`` (torchmetrics 1.9, ``torchmetrics/detection/panoptic_qualities.py`` and
``torchmetrics/functional/detection/_panoptic_quality_common.py``) is "inspired by" panopticapi, and
gives the same numbers when the truth has no crowd, the prediction no void and each stuff category one
segment per image. Otherwise it differs:

- Input: a (B, H, W, 2) tensor (or any number of spatial dimensions) of (category_id, instance_id) pairs
  per pixel, so a batch shares one image size; there are no segment ids and no ``segments_info``.
- Void: there is no void id; truth pixels whose category is in neither ``things`` nor ``stuffs`` are void.
  Such pixels in the prediction raise a ValueError unless ``allow_unknown_preds_category=True``, which
  makes them void too.
- Predicted void counts there: the union also leaves out the truth segment's pixels predicted void,
  and an unmatched truth segment more than half predicted void is not a false negative. In panopticapi,
  prediction id 0 is just "no segment": every unmatched non-crowd truth segment is a false negative.
- There is no crowd: the only reason to ignore an unmatched prediction is truth-void.
- A stuff category's instance ids are set to 0, so all its pixels in an image are one segment.
- The per-category formulas and the mean over categories with TP + FP + FN > 0 are the same, but it
  gives the mean over all categories only (no things/stuff split); ``return_per_class=True`` gives one
  value per category (things first, then stuff, each sorted by id), with 0 for a category that doesn't
  occur. (``ModifiedPanopticQuality`` is another metric, PQ-dagger, that scores stuff without matching.)
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch

VOID = 0  # the segment id of pixels that belong to no segment
_MAX_ID = 2**31  # ids below this (COCO's are below 256**3) keep gt_id * (max pred id + 1) within int64


def _id_map(x, what: str, index: int) -> np.ndarray:
    """A segment-id map, given as a numpy array or a torch tensor, as an (H, W) int64 numpy array."""
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim != 2 or x.dtype.kind not in "iu":
        raise ValueError(f"image {index}: the {what} id map must be an (H, W) integer array of segment ids, "
                         f"got dtype {x.dtype} and shape {x.shape} (decode a COCO PNG as R + 256 G + 256² B)")
    if x.size and (x.min() < 0 or x.max() >= _MAX_ID):
        raise ValueError(f"image {index}: {what} segment ids must lie in 0 .. {_MAX_ID - 1}, "
                         f"found {x.min()} .. {x.max()}")
    return x.astype(np.int64, copy=False)


def _segments(segments_info: list[dict], what: str, index: int, known: dict) -> dict[int, dict]:
    """{segment id: {category, crowd}}, after checking that ids are unique and not void and that the
    categories are known."""
    segments = {}
    for segment in segments_info:
        seg_id, category = int(segment["id"]), int(segment["category_id"])
        if seg_id == VOID:
            raise ValueError(f"image {index}: {what} segments_info lists id 0, which is void (no segment)")
        if seg_id in segments:
            raise ValueError(f"image {index}: {what} segments_info lists segment id {seg_id} twice")
        if category not in known:
            raise ValueError(f"image {index}: {what} segment {seg_id} has category_id {category}, which is not "
                             f"in categories (ids {sorted(known)})")
        segments[seg_id] = {"category": category, "crowd": int(segment.get("iscrowd", 0)) == 1}
    return segments


def _check_ids(segments: dict, areas: dict, what: str, index: int) -> None:
    """The ids in the map and in segments_info must be the same set (void apart), as panopticapi demands."""
    in_map = set(areas) - {VOID}
    if in_map - set(segments):
        raise ValueError(f"image {index}: {what} segment ids {sorted(in_map - set(segments))} are in the id map "
                         f"but not in segments_info")
    if set(segments) - in_map:
        raise ValueError(f"image {index}: {what} segment ids {sorted(set(segments) - in_map)} are in "
                         f"segments_info but cover no pixel of the id map")


def _overlaps(gt_ids: np.ndarray, pred_ids: np.ndarray) -> dict[tuple[int, int], int]:
    """{(truth id, prediction id): number of pixels} for every pair that occurs. One ``np.unique`` over
    the pairs written as one integer, ``gt_id * offset + pred_id`` (panopticapi's OFFSET trick), instead
    of a loop over pixels or one mask per segment."""
    offset = int(pred_ids.max()) + 1 if pred_ids.size else 1
    codes, counts = np.unique(gt_ids.ravel() * offset + pred_ids.ravel(), return_counts=True)
    return {(int(code // offset), int(code % offset)): int(n) for code, n in zip(codes, counts)}


class PanopticQuality:
    """PQ/SQ/RQ over a whole dataset, image by image: ``update`` adds the TP, FP, FN and IoU sums of a
    batch of images (lists of ``(id_map, segments_info)`` pairs, see the module doc) and keeps only those
    counts, so the maps need not stay in memory; ``compute`` gives the dict of ``panoptic_quality``."""

    state = ("counts", "n_images")  # the totals, added up over processes by distributed.merge_metric

    def __init__(self, categories: list[dict]):
        self.categories = {}
        for category in categories:
            if "isthing" not in category:
                raise ValueError(f"category {category.get('id')} has no 'isthing' (1 for things, 0 for stuff): "
                                 "pass COCO's category dicts")
            self.categories[int(category["id"])] = int(category["isthing"]) == 1
        self.reset()

    def reset(self) -> None:
        self.counts = {c: {"TP": 0, "FP": 0, "FN": 0, "IoU": 0.0} for c in self.categories}
        self.n_images = 0

    def update(self, gt_pairs: list, pred_pairs: list) -> None:
        """Add a batch of images: ``gt_pairs[i]`` and ``pred_pairs[i]`` are the same image's truth and
        prediction, each an ``(id_map, segments_info)`` pair."""
        if len(gt_pairs) != len(pred_pairs):
            raise ValueError(f"{len(gt_pairs)} truth images but {len(pred_pairs)} predicted images")
        for (gt_map, gt_info), (pred_map, pred_info) in zip(gt_pairs, pred_pairs):
            self._add_image(self.n_images, gt_map, gt_info, pred_map, pred_info)
            self.n_images += 1

    def _add_image(self, index: int, gt_map, gt_info: list[dict], pred_map, pred_info: list[dict]) -> None:
        """One image's TP, FP, FN and IoU, by panopticapi's rules (module doc). ``index`` counts the images
        given since the last ``reset``, from 0, for error messages."""
        gt_ids, pred_ids = _id_map(gt_map, "truth", index), _id_map(pred_map, "predicted", index)
        if gt_ids.shape != pred_ids.shape:
            raise ValueError(f"image {index}: the truth id map is {gt_ids.shape} but the predicted one is "
                             f"{pred_ids.shape}; predict at the truth's size")
        gt = _segments(gt_info, "truth", index, self.categories)
        pred = _segments(pred_info, "predicted", index, self.categories)

        overlap = _overlaps(gt_ids, pred_ids)
        gt_area, pred_area = defaultdict(int), defaultdict(int)
        for (g, p), n in overlap.items():
            gt_area[g] += n
            pred_area[p] += n
        _check_ids(gt, gt_area, "truth", index)
        _check_ids(pred, pred_area, "predicted", index)

        # true positives: same category, IoU > 0.5, crowd never matched
        matched_gt, matched_pred = set(), set()
        for (g, p), intersection in overlap.items():
            if g == VOID or p == VOID or gt[g]["crowd"] or gt[g]["category"] != pred[p]["category"]:
                continue
            union = gt_area[g] + pred_area[p] - intersection - overlap.get((VOID, p), 0)
            iou = intersection / union
            if iou > 0.5:
                counts = self.counts[gt[g]["category"]]
                counts["TP"] += 1
                counts["IoU"] += iou
                matched_gt.add(g)
                matched_pred.add(p)

        # false negatives: every unmatched truth segment but crowds
        crowds = defaultdict(list)  # category -> its crowd segments' ids
        for g, segment in gt.items():
            if segment["crowd"]:
                crowds[segment["category"]].append(g)
            elif g not in matched_gt:
                self.counts[segment["category"]]["FN"] += 1

        # false positives: unmatched predictions, unless more than half on void or same-category crowd
        for p, segment in pred.items():
            if p in matched_pred:
                continue
            ignored = overlap.get((VOID, p), 0) + sum(overlap.get((g, p), 0) for g in crowds[segment["category"]])
            if ignored / pred_area[p] <= 0.5:
                self.counts[segment["category"]]["FP"] += 1

    def compute(self) -> dict:
        """``PQ, SQ, RQ`` (all categories), the same with ``_th`` (things) and ``_st`` (stuff), ``N, N_th,
        N_st`` (how many categories occur in each group) and ``per_category``: {category_id: {PQ, SQ, RQ,
        TP, FP, FN, IoU}}, where ``IoU`` is the sum of the TPs' IoUs."""
        per_category = {}
        for category, counts in self.counts.items():
            tp, fp, fn, iou = counts["TP"], counts["FP"], counts["FN"], counts["IoU"]
            if tp + fp + fn == 0:  # the category doesn't occur: no score, left out of the means
                scores = dict.fromkeys(("PQ", "SQ", "RQ"), math.nan)
            else:
                scores = {"PQ": iou / (tp + fp / 2 + fn / 2), "SQ": iou / tp if tp else 0.0,
                          "RQ": tp / (tp + fp / 2 + fn / 2)}
            per_category[category] = {**scores, **counts}

        result, sizes = {}, {}
        for suffix, isthing in (("", None), ("_th", True), ("_st", False)):
            occurring = [per_category[c] for c, thing in self.categories.items()
                         if (isthing is None or thing == isthing) and not math.isnan(per_category[c]["PQ"])]
            for key in ("PQ", "SQ", "RQ"):
                result[key + suffix] = sum(s[key] for s in occurring) / len(occurring) if occurring else math.nan
            sizes["N" + suffix] = len(occurring)
        return {**result, **sizes, "per_category": per_category}


def panoptic_quality(gt: list, pred: list, categories: list[dict]) -> dict:
    """PQ, SQ and RQ of the predictions, panopticapi's way (see the module doc).

    ``gt`` and ``pred`` hold one ``(id_map, segments_info)`` pair per image, in the same order;
    ``categories`` is COCO's list of category dicts (``id``, ``isthing``). Returns the dict of
    ``PanopticQuality.compute``."""
    metric = PanopticQuality(categories)
    metric.update(gt, pred)
    return metric.compute()
