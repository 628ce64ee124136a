"""Part segmentation of 3D shapes (ShapeNet-part) with the PointNet / PointNet++ evaluation's conventions.

Sources: charlesq34/pointnet ``part_seg/test.py``, charlesq34/pointnet2 ``part_seg/evaluate.py`` and the widely
used PyTorch port yanx27/Pointnet_Pointnet2_pytorch ``test_partseg.py``; all three score a shape the same way.

- **Part ids are global**: 50 parts over 16 categories, each category owning a run of ids (``SHAPENET_PARTS``,
  the ``seg_classes`` table of the sources; the dataset files store these ids). A shape is scored over the
  parts of **its own category only**.
- **Predictions are restricted to the category's parts before the argmax** (``restrict_to_category``): the
  category is known at test time (it is also an input of the part-segmentation network), so a point can only
  be given one of that category's parts. The sources do exactly this.
- **Per shape**, each of the category's parts gets its IoU over the shape's points, ``|truth & pred| /
  |truth | pred|``; a part **absent from both truth and prediction counts 1** (nothing to find, nothing found).
  A part predicted but absent from the truth scores 0. The shape's IoU is the mean over the category's parts.
  This is lenient: a skateboard whose points are all "deck" scores 1 for a prediction of "deck" everywhere,
  since its wheels and trucks are absent from both.
- ``instance_miou`` is the mean over all shapes (pointnet2's "mean mIoU (all shapes)", PointNet's single "IoU"
  figure); ``class_miou`` the mean over categories of their shapes' mean (pointnet2's "mean mIoU", which
  weighs a category of 30 test shapes like one of 1,800). Both papers report both. Categories without shapes
  are left out of ``class_miou`` (the sources would give NaN; the official test split has all 16).
- Predicted ids **outside the shape's category** cannot occur after the restriction. If a prediction holds
  some anyway (an unrestricted argmax), such a point is scored exactly as the sources' formula scores it: a
  miss for its true part and a false positive for none of the category's parts. It is therefore penalised
  less than a wrong part of the right category, one more reason to restrict. A *truth* id outside the
  category is an error (the wrong category, or category-local ids 0..k-1 where global ones are expected).
- The score is computed on the points given. pointnet2 and the PyTorch port score the 2048 points sampled
  (with replacement) from each test shape; PointNet's ``test.py`` scores every original point.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from course_utils.datasets.shapenet_part import NUM_PARTS, SEG_CLASSES

# Category -> its global part ids, in the order of the dataset's synsetoffset2category.txt (alphabetical), which
# is the order of the category index (the one-hot input of the part-segmentation networks) in the sources.
SHAPENET_PARTS: dict[str, tuple[int, ...]] = SEG_CLASSES  # the dataset's table, in synsetoffset2category order
__all__ = ["NUM_PARTS", "SHAPENET_PARTS", "PartMIoU", "most_frequent_part_baseline", "part_miou",
           "restrict_to_category", "shape_iou"]


def _ids(x, what: str) -> np.ndarray:
    """A 1-D int64 numpy array of part ids from a numpy array, tensor or list (float labels are accepted when
    they hold whole numbers: the dataset files write the label as a float)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{what} must be one shape's (P,) part ids, got shape {x.shape}")
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise ValueError(f"{what} holds non-integer values; pass part ids, not scores")
    elif x.dtype.kind not in "iu":
        raise ValueError(f"{what} must hold integer part ids, got dtype {x.dtype}")
    return x.astype(np.int64)


def _category_parts(category: str, parts: Mapping[str, Sequence[int]]) -> tuple[int, ...]:
    if category not in parts:
        raise ValueError(f"unknown category {category!r}; known: {list(parts)}")
    return tuple(sorted(int(p) for p in parts[category]))


def _part_ious(pred: np.ndarray, target: np.ndarray, part_ids: Sequence[int]) -> np.ndarray:
    """IoU of each of ``part_ids`` over one shape's points; 1 for a part absent from truth and prediction."""
    ious = np.empty(len(part_ids))
    for i, part in enumerate(part_ids):
        in_truth, in_pred = target == part, pred == part
        union = np.count_nonzero(in_truth | in_pred)
        ious[i] = 1.0 if union == 0 else np.count_nonzero(in_truth & in_pred) / union
    return ious


def shape_iou(pred, target, category: str, parts: Mapping[str, Sequence[int]] = SHAPENET_PARTS) -> float:
    """One shape's IoU: the mean over its category's parts of each part's IoU (see the module docstring)."""
    pred, target = _ids(pred, "prediction"), _ids(target, "truth")
    if pred.shape != target.shape:
        raise ValueError(f"prediction has {pred.size} points but truth has {target.size}")
    part_ids = _category_parts(category, parts)
    foreign = np.setdiff1d(target, part_ids)
    if foreign.size:
        raise ValueError(f"truth holds part ids {foreign.tolist()} outside {category}'s parts {list(part_ids)}: "
                         f"wrong category, or category-local ids where global ones are expected")
    return float(_part_ious(pred, target, part_ids).mean())


def _summary(shape_ious: Sequence[float], categories: Sequence[str], parts: Mapping) -> dict:
    if len(shape_ious) == 0:
        raise ValueError("no shapes to score")
    by_category: dict[str, list[float]] = {}
    for category, iou in zip(categories, shape_ious):
        by_category.setdefault(category, []).append(iou)
    order = [c for c in parts if c in by_category]  # the table's order, only categories with shapes
    per_category = {c: float(np.mean(by_category[c])) for c in order}
    return {
        "instance_miou": float(np.mean(shape_ious)),
        "class_miou": float(np.mean(list(per_category.values()))),
        "per_category": per_category,
        "n_per_category": {c: len(by_category[c]) for c in order},
        "n_shapes": len(shape_ious),
        "shape_ious": [float(v) for v in shape_ious],
    }


def part_miou(preds, targets, categories: Sequence[str], parts: Mapping[str, Sequence[int]] = SHAPENET_PARTS
              ) -> dict:
    """Part mIoU of a set of shapes with the PointNet / PointNet++ conventions (module docstring).

    ``preds``, ``targets``: lists of (P,) global part-id arrays (numpy or torch; P may differ between shapes
    but not between a shape's prediction and truth). ``categories``: each shape's category name, a key of
    ``parts``. Returns ``instance_miou`` (mean over shapes), ``class_miou`` (mean over categories of their
    shapes' mean), ``per_category`` {name: mean IoU}, ``n_per_category``, ``n_shapes`` and ``shape_ious``
    (each shape's IoU, in input order, to find the worst shapes)."""
    if not (len(preds) == len(targets) == len(categories)):
        raise ValueError(f"{len(preds)} predictions, {len(targets)} truths and {len(categories)} categories: "
                         "give one of each per shape")
    ious = [shape_iou(p, t, c, parts) for p, t, c in zip(preds, targets, categories)]
    return _summary(ious, list(categories), parts)


def restrict_to_category(logits, category_parts, part_axis: int = 1):
    """Predicted global part ids from part scores, the argmax taken over the category's parts only.

    ``logits``: one shape's (P, 50) scores, or a batch's (N, 50, P) (``part_axis=1``, the default: the class
    axis of every segmentation output in this course and of ``nn.CrossEntropyLoss``; a PointNet built from
    ``Conv1d`` layers gives it) or (N, P, 50) (``part_axis=-1``, as the PointNet sources return it). For a
    single shape the default axis 1 is the last one. Any scores work (logits, log-probabilities,
    probabilities): only their order within a point matters.
    ``category_parts``: the category's global part ids, e.g. ``SHAPENET_PARTS["Mug"]``; for a batch, either
    one such sequence for every shape or one per shape (a list of N sequences).
    Returns (P,) or (N, P) int64 global part ids, a tensor for a tensor input (on its device), else numpy.
    Ties go to the lowest part id, as ``argmax`` over the sources' ``logits[:, seg_classes[cat]]`` does."""
    is_tensor = isinstance(logits, torch.Tensor)
    scores = logits if is_tensor else torch.as_tensor(np.asarray(logits))
    if scores.ndim not in (2, 3):
        raise ValueError(f"expected (P, parts), (N, parts, P) or (N, P, parts) scores, got shape {tuple(scores.shape)}")
    axis = part_axis % scores.ndim
    if scores.ndim == 2 and axis != 1:
        raise ValueError("a single shape's scores must be (P, parts), the parts on the last axis")
    if scores.ndim == 3 and axis == 0:
        raise ValueError("part_axis cannot be the batch axis 0: use 1 for (N, parts, P) or -1 for (N, P, parts)")

    per_shape = _per_shape_parts(category_parts, 1 if scores.ndim == 2 else len(scores))
    id_lists = [sorted(int(i) for i in ids) for ids in per_shape]
    if not all(id_lists):
        raise ValueError("a category needs at least one part id")
    if max(max(ids) for ids in id_lists) >= scores.shape[axis] or min(min(ids) for ids in id_lists) < 0:
        raise ValueError(f"part ids {per_shape[0] if len(id_lists) == 1 else per_shape} do not fit the "
                         f"{scores.shape[axis]} scores on axis {axis} of the scores {tuple(scores.shape)}; is "
                         f"part_axis right? (1 for (N, parts, P), -1 for (N, P, parts))")

    def one(shape_scores: torch.Tensor, ids: list[int], ax: int) -> torch.Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long, device=shape_scores.device)
        return ids[shape_scores.index_select(ax, ids).argmax(ax)]

    if scores.ndim == 2:
        out = one(scores, id_lists[0], 1)
    else:
        out = torch.stack([one(s, ids, axis - 1) for s, ids in zip(scores, id_lists)])
    return out if is_tensor else out.numpy()


def _per_shape_parts(category_parts, n: int) -> list[Sequence[int]]:
    """One sequence of part ids for all ``n`` shapes, or ``n`` of them, as a list of ``n`` sequences."""
    seq = category_parts.tolist() if isinstance(category_parts, (np.ndarray, torch.Tensor)) else list(category_parts)
    if seq and all(np.ndim(item) == 0 for item in seq):
        return [seq] * n
    if len(seq) != n:
        raise ValueError(f"{len(seq)} part-id sequences for {n} shapes: give one for all or one per shape")
    return seq


class PartMIoU:
    """Part mIoU over a whole set, for ``train.evaluate``/``fit``.

    ``update(outputs, targets)``: ``outputs`` the batch's part scores, (N, 50, P) by default or (N, P, 50) with
    ``part_axis=-1`` (see ``restrict_to_category``); a model returning a tuple such as ``(scores,
    feature_transform)`` is accepted and its first item used. ``targets`` a dict with ``"labels"`` (N, P) global
    part ids and ``"category"`` (N,) (or (N, 1)) int indices into ``categories`` (default: the keys of ``parts``,
    the order of synsetoffset2category.txt and of the networks' one-hot input). Scores are restricted to each
    shape's category before the argmax; each shape's IoU is kept (a few floats per shape).

    ``compute()`` returns the number named by ``key``, ``"instance_miou"`` (default) or ``"class_miou"`` (a
    float, as ``fit`` needs); ``result()`` the whole dict of ``part_miou``."""

    state = ("shape_ious", "shape_categories")  # the totals, added up over processes by distributed.merge_metric

    def __init__(self, categories: Sequence[str] | None = None,
                 parts: Mapping[str, Sequence[int]] = SHAPENET_PARTS, part_axis: int = 1,
                 key: str = "instance_miou"):
        self.categories = list(parts) if categories is None else list(categories)
        for category in self.categories:
            _category_parts(category, parts)
        if key not in ("instance_miou", "class_miou"):
            raise ValueError(f"key must be 'instance_miou' or 'class_miou', got {key!r}")
        self.parts, self.part_axis, self.key = parts, part_axis, key
        self.reset()

    def reset(self) -> None:
        self.shape_ious: list[float] = []
        self.shape_categories: list[str] = []

    def update(self, outputs, targets: Mapping) -> None:
        if isinstance(outputs, (tuple, list)):
            outputs = outputs[0]
        labels = torch.as_tensor(targets["labels"]).detach().cpu()
        index = torch.as_tensor(targets["category"]).detach().cpu().reshape(-1).tolist()
        if labels.ndim != 2 or len(index) != len(labels) or len(outputs) != len(labels):
            raise ValueError(f"expected labels (N, P) and category (N,) for outputs of N shapes; got labels "
                             f"{tuple(labels.shape)}, {len(index)} categories and {len(outputs)} outputs")
        names = []
        for i in index:
            if not 0 <= int(i) < len(self.categories):
                raise ValueError(f"category index {i} outside 0..{len(self.categories) - 1} ({self.categories})")
            names.append(self.categories[int(i)])
        scores = torch.as_tensor(outputs).detach().float()  # restricted where it lies; only the ids move
        pred = restrict_to_category(scores, [self.parts[n] for n in names], self.part_axis).cpu()
        if pred.shape != labels.shape:
            raise ValueError(f"predictions {tuple(pred.shape)} do not match labels {tuple(labels.shape)}: the outputs "
                             f"{tuple(scores.shape)} are read with part_axis={self.part_axis}; (N, P, 50) scores "
                             f"need part_axis=-1")
        for p, t, name in zip(pred.numpy(), labels.numpy(), names):
            self.shape_ious.append(shape_iou(p, t, name, self.parts))
            self.shape_categories.append(name)

    def result(self) -> dict:
        """The dict of ``part_miou`` over the shapes seen since ``reset``."""
        return _summary(self.shape_ious, self.shape_categories, self.parts)

    def compute(self) -> float:
        return self.result()[self.key]


def most_frequent_part_baseline(train_labels, train_categories: Sequence[str],
                                parts: Mapping[str, Sequence[int]] = SHAPENET_PARTS) -> dict[str, int]:
    """Each category's most frequent part, counted over all points of its training shapes (ties: the lowest
    id): the prediction for every point of a shape of that category that a trained model must beat. Only
    categories with training shapes get one. Predict a shape with ``np.full_like(labels, baseline[category])``;
    thanks to the absent-part rule it scores more than one might expect (a skateboard that is all deck scores 1).
    ``train_labels``: list of (P,) global part-id arrays; ``train_categories``: their category names."""
    if len(train_labels) != len(train_categories):
        raise ValueError(f"{len(train_labels)} label arrays but {len(train_categories)} categories")
    counts: dict[str, np.ndarray] = {}
    for labels, category in zip(train_labels, train_categories):
        part_ids = _category_parts(category, parts)
        labels = _ids(labels, "training labels")
        foreign = np.setdiff1d(labels, part_ids)
        if foreign.size:
            raise ValueError(f"a {category} training shape holds part ids {foreign.tolist()} outside its parts "
                             f"{list(part_ids)}")
        per_part = np.array([np.count_nonzero(labels == p) for p in part_ids])
        counts[category] = counts.get(category, 0) + per_part
    return {c: int(_category_parts(c, parts)[int(np.argmax(counts[c]))]) for c in parts if c in counts}
