"""COCO mask AP (and box AP) of instance predictions, computed by pycocotools itself.

Convention (COCO's, as torchvision's references and the Mask R-CNN papers report it): pycocotools'
``COCOeval`` with its default parameters, run in memory. AP is the precision averaged over 101 recall
points (0, 0.01, ..., 1) and over the 10 IoU thresholds 0.50, 0.55, ..., 0.95, each class on its own,
then averaged over the classes that have ground truth; at most the 100 best-scored detections of each
image count. ``AP50`` and ``AP75`` use one threshold; ``AP_small``/``AP_medium``/``AP_large`` count only
objects of area < 32², 32²..96², > 96² pixels; ``AR100`` is the recall of up to 100 detections per image,
averaged over the thresholds and classes. All are on a 0-1 scale.

Inputs are lists with one dict per image in torchvision's detection format, tensors or numpy arrays.
A prediction has ``masks`` ((N, H, W) or (N, 1, H, W) as Mask R-CNN returns them; float probabilities
are thresholded at 0.5, bool or 0/1 masks are taken as they are), ``scores``, ``labels`` and, for box
AP, ``boxes`` (xyxy). A target has ``masks`` (N, H, W), ``labels``, optionally ``iscrowd`` (a detection
on a crowd region is neither a hit nor a false positive, and missing it costs nothing) and ``boxes`` (xyxy;
without them the ground-truth box is the tight box around the mask, as in COCO). The classes are the
labels present. A ground-truth object's area, which decides small/medium/large, is its mask's pixel count,
for box AP too, as in COCO's annotations.

Where COCO reports -1, nothing could be measured (no ground truth at all, or none in that size range);
we return NaN instead, so that an absent value can't be averaged into a table as if it were a score.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# the first 9 of COCOeval.stats after summarize(), in its order (iouType 'segm' or 'bbox', default params)
_STATS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100")
_KEYS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR100")
_BOX_KEYS = tuple(f"box_{key}" for key in _KEYS)


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(x).detach()


def _binary_masks(masks) -> np.ndarray:
    """(N, H, W) uint8 0/1 on the CPU; probabilities are thresholded on their device, before the copy."""
    masks = _tensor(masks)
    if masks.numel() == 0 and masks.ndim < 3:  # e.g. an empty list for an image without objects
        return np.zeros((0, 0, 0), np.uint8)
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W) or (N, 1, H, W), got shape {tuple(masks.shape)}")
    masks = masks > 0.5 if masks.is_floating_point() else masks != 0
    return masks.to(torch.uint8).cpu().numpy()


def _encode(masks: np.ndarray) -> list[dict]:
    """COCO's run-length code of each mask: a few hundred bytes instead of H x W. pycocotools wants
    an (H, W, N) uint8 array in Fortran (column-major) order."""
    if len(masks) == 0:
        return []
    return mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)))


def _xywh(boxes) -> list[list[float]]:
    """xyxy boxes (torchvision) as COCO's [x, y, width, height]."""
    b = _tensor(boxes).cpu().double().reshape(-1, 4)
    return torch.cat([b[:, :2], b[:, 2:] - b[:, :2]], 1).tolist()


def _check(items: list, n: int, what: str) -> list:
    if len(items) != n:
        raise ValueError(f"{n} masks but {len(items)} {what}")
    return items


def _column(x, n: int, what: str) -> list:
    return _check(_tensor(x).cpu().reshape(-1).tolist(), n, what)


def _encode_image(prediction: dict, target: dict) -> dict:
    """One image in COCO's terms, everything on the CPU, masks as run-length code: what ``MaskAP`` keeps."""
    gt_masks, dt_masks = _binary_masks(target["masks"]), _binary_masks(prediction["masks"])
    gt_rles, dt_rles = _encode(gt_masks), _encode(dt_masks)
    n_gt, n_dt = len(gt_rles), len(dt_rles)
    labels = _column(target["labels"], n_gt, "target labels")
    crowd = _column(target.get("iscrowd", torch.zeros(n_gt)), n_gt, "iscrowd flags")
    boxes = _xywh(target["boxes"]) if "boxes" in target else [mask_utils.toBbox(r).tolist() for r in gt_rles]
    ground_truth = [{"category_id": int(label), "iscrowd": int(c), "segmentation": rle,
                     "area": float(mask_utils.area(rle)), "bbox": box}
                    for label, c, rle, box in zip(labels, crowd, gt_rles, _check(boxes, n_gt, "target boxes"))]
    labels = _column(prediction["labels"], n_dt, "predicted labels")
    scores = _column(prediction["scores"], n_dt, "scores")
    detections = [{"category_id": int(label), "score": float(score), "segmentation": rle}
                  for label, score, rle in zip(labels, scores, dt_rles)]
    if "boxes" in prediction:
        for detection, box in zip(detections, _check(_xywh(prediction["boxes"]), n_dt, "predicted boxes")):
            detection["bbox"] = box
    height, width = next((m.shape[1:] for m in (gt_masks, dt_masks) if len(m)), (0, 0))
    return {"height": int(height), "width": int(width), "gt": ground_truth, "dt": detections,
            "has_boxes": "boxes" in prediction}


def _load_results(gt: COCO, detections: list[dict]) -> COCO:
    """``gt.loadRes(detections)``, which fails on an empty list: no detections at all is a result too."""
    if detections:
        return gt.loadRes(detections)
    dt = COCO()
    dt.dataset = {"images": gt.dataset["images"], "annotations": [], "categories": gt.dataset["categories"]}
    dt.createIndex()
    return dt


def _summarize(gt: COCO, detections: list[dict], iou_type: str) -> dict[str, float]:
    if not gt.dataset["annotations"]:  # no ground truth at all: COCO gives -1 for everything
        return dict.fromkeys(_KEYS, math.nan)
    evaluator = COCOeval(gt, _load_results(gt, detections), iouType=iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = dict(zip(_STATS, evaluator.stats.tolist()))
    return {key: math.nan if stats[key] == -1 else stats[key] for key in _KEYS}


def _coco_ap(images: list[dict]) -> dict[str, float]:
    """COCO AP of the encoded images (``_encode_image``); fresh annotation dicts every time, because
    pycocotools writes into the ones it is given."""
    coco_images, ground_truth, detections = [], [], []
    for image_id, image in enumerate(images, start=1):
        coco_images.append({"id": image_id, "height": image["height"], "width": image["width"]})
        ground_truth += [{**ann, "image_id": image_id} for ann in image["gt"]]
        detections += [{**ann, "image_id": image_id} for ann in image["dt"]]
    for ann_id, ann in enumerate(ground_truth, start=1):  # ids from 1: COCOeval takes id 0 for "unmatched"
        ann["id"] = ann_id
    classes = sorted({ann["category_id"] for ann in ground_truth + detections})
    gt = COCO()
    gt.dataset = {"images": coco_images, "annotations": ground_truth,
                  "categories": [{"id": c, "name": str(c)} for c in classes]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints every step and the summary table
        gt.createIndex()
        # a result list must hold one kind only: loadRes takes the detection area from the box if there is one
        result = _summarize(gt, [{k: d[k] for k in ("image_id", "category_id", "score", "segmentation")}
                                 for d in detections], "segm")
        if all(image["has_boxes"] for image in images):
            box = _summarize(gt, [{k: d[k] for k in ("image_id", "category_id", "score", "bbox")}
                                  for d in detections], "bbox")
            result.update({f"box_{key}": value for key, value in box.items()})
    return result


def mask_ap(predictions: list[dict], targets: list[dict]) -> dict[str, float]:
    """COCO mask AP of the predictions, one dict per image in torchvision's format (see the module doc).

    Returns ``AP`` (IoU 0.50:0.95), ``AP50``, ``AP75``, ``AP_small``, ``AP_medium``, ``AP_large`` and
    ``AR100``, and the same with a ``box_`` prefix when every prediction carries ``boxes``; NaN where
    COCO reports -1 (nothing to measure)."""
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} prediction dicts but {len(targets)} target dicts")
    return _coco_ap([_encode_image(p, t) for p, t in zip(predictions, targets)])


class MaskAP:
    """COCO mask AP over a whole validation set, for ``train.evaluate``/``fit``: ``update`` takes a
    batch's predictions (the list of dicts the model returns in eval mode) and targets and keeps them
    on the CPU with each mask as run-length code, so a whole validation set fits in little memory;
    ``compute`` runs pycocotools once over all of it, as AP must be (it ranks detections across images).

    ``compute`` returns the number named by ``key`` (``"AP"``, COCO's headline, by default; ``"AP50"``
    the lenient one at PASCAL VOC's IoU 0.5, ``"box_AP"`` the box AP); the whole dict of ``mask_ap`` stays in
    ``self.result`` for tables."""

    state = ("images",)  # the totals, added up over processes by distributed.merge_metric

    def __init__(self, key: str = "AP"):
        if key not in _KEYS + _BOX_KEYS:
            raise ValueError(f"key must be one of {_KEYS + _BOX_KEYS}, got {key!r}")
        self.key = key
        self.reset()

    def reset(self) -> None:
        self.images: list[dict] = []
        self.result: dict[str, float] = {}

    def update(self, outputs: list[dict], targets: list[dict]) -> None:
        if len(outputs) != len(targets):
            raise ValueError(f"{len(outputs)} prediction dicts but {len(targets)} target dicts")
        self.images += [_encode_image(p, t) for p, t in zip(outputs, targets)]

    def compute(self) -> float:
        self.result = _coco_ap(self.images)
        if self.key not in self.result:
            raise KeyError(f"{self.key!r} needs boxes in every prediction dict")
        return self.result[self.key]
