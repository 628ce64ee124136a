"""Optical-flow errors with the conventions of RAFT's evaluation (princeton-vl/RAFT, ``evaluate.py``).

The end-point error (EPE) of a pixel is the Euclidean distance between the predicted and the true flow
vector, ‖(u, v) − (u*, v*)‖, in pixels. ``epe`` returns, over the valid pixels of everything it is given:

- ``EPE``: their mean (MPI-Sintel's "EPE all": RAFT concatenates the pixels of all images, then averages);
- ``1px``, ``3px``, ``5px``: the share of pixels with EPE < 1, 3, 5 (RAFT's accuracies);
- ``Fl-all``: KITTI 2015's outlier rate, the share of pixels with EPE > 3 px **and** EPE > 5 % of the true
  flow's length (RAFT's ``(epe > 3.0) & (epe / mag > 0.05)``), pooled over all pixels.

RAFT reports KITTI's EPE as the mean of per-image means (images with many valid pixels weigh no more);
call ``epe`` once per image and average the "EPE" values for that. ``EPEMetric`` accumulates the pooled EPE
batch by batch, for ``train.fit``'s metrics. Flows are (2, H, W) or (N, 2, H, W)
tensors or arrays, as RAFT returns them; ``valid`` is (H, W) or (N, H, W), true where the truth is known
(KITTI's valid channel, or ``flow.flo_valid`` for ``.flo`` files); without it every pixel counts.
"""

from __future__ import annotations

import torch


def epe(flow_pred, flow_gt, valid=None) -> dict[str, float]:
    """EPE, 1px/3px/5px accuracies and Fl-all over the valid pixels (see the module docstring)."""
    pred, gt = torch.as_tensor(flow_pred, dtype=torch.float64), torch.as_tensor(flow_gt, dtype=torch.float64)
    if pred.shape != gt.shape or pred.ndim not in (3, 4) or pred.shape[-3] != 2:
        raise ValueError(f"flows must both be (2, H, W) or (N, 2, H, W), got {tuple(pred.shape)} and {tuple(gt.shape)}")
    error = (pred - gt).norm(dim=-3)  # (H, W) or (N, H, W)
    length = gt.norm(dim=-3)
    keep = torch.ones_like(error, dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool()
    if keep.shape != error.shape:
        raise ValueError(f"valid must be {tuple(error.shape)}, got {tuple(keep.shape)}")
    if not keep.any():
        raise ValueError("no valid pixel: the error is undefined")
    error, length = error[keep], length[keep]
    outlier = (error > 3.0) & (error > 0.05 * length)
    return {"EPE": error.mean().item(), "1px": (error < 1).double().mean().item(),
            "3px": (error < 3).double().mean().item(), "5px": (error < 5).double().mean().item(),
            "Fl-all": outlier.double().mean().item()}


class EPEMetric:
    """The mean end-point error in pixels over every valid pixel of a split, for ``train.evaluate``/``fit``
    (``reset``/``update(outputs, targets)``/``compute``): MPI-Sintel's "EPE all", the pooled mean that
    ``metrics.epe`` computes on all the pixels at once. ``outputs``: full-size flows (N, 2, H, W), as ``FlowNetS``
    returns them in evaluation mode; ``targets``: ``{"flow": (N, 2, H, W), "valid": (N, H, W) bool}``."""

    state = ("total", "count")  # the totals, added up over processes by distributed.merge_metric

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, outputs: torch.Tensor, targets) -> None:
        flow = targets["flow"]
        valid = targets["valid"].bool() if "valid" in targets else torch.ones_like(flow[:, 0], dtype=torch.bool)
        if not isinstance(outputs, torch.Tensor) or outputs.shape != flow.shape:
            raise ValueError("EPEMetric compares full-size flows (N, 2, H, W) with the truth; put the model in eval "
                             "mode (FlowNetS returns its list of scales in training mode)")
        error = (outputs.double() - flow.double()).norm(dim=1)
        self.total += float(error[valid].sum())
        self.count += int(valid.sum())

    def compute(self) -> float:
        if self.count == 0:
            raise ValueError("EPEMetric has seen no valid pixel: call update with targets whose 'valid' is not empty")
        return self.total / self.count
