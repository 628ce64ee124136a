"""Self-Correction for Human Parsing (SCHP; Li, Xu, Wei, Yang, arXiv:1910.09777, TPAMI 2020): learning from noisy
part labels by averaging the model over learning-rate cycles and letting the averaged model correct the labels.

Human-parsing labels are drawn by hand and are noisy (a missed strand of hair, a sleeve labelled as arm, left and
right swapped). SCHP trains in **cycles** of the learning rate (:class:`CyclicalLR`: warm-up, one long cosine decay,
then short cosine cycles that restart at half the peak). At the end of every cycle the current weights join an
**equal-weight running average** (``torch.optim.swa_utils.AveragedModel``: after m snapshots each counts 1/m;
SCHP's ``moving_average(..., 1 / (cycle_n + 1))`` is the same rule), and the averaged model's BatchNorm statistics
are re-estimated on the training images (``update_bn``). From then on the **labels are refined online**: each
batch's target is the averaged model's prediction mixed with the given label.

What the released code does (PeikeLi/Self-Correction-Human-Parsing, ``train.py``, ``utils/schp.py``,
``utils/criterion.py``), and what we do:

* Refined target = softmax((1 - a) * averaged-model logits + a * one-hot(label)) with a = 1 / (m + 1) after m
  snapshots: logits and a one-hot added, then a softmax; the loss is the KL divergence (here the equivalent soft
  cross-entropy). The paper describes a refinement once per cycle; the code refines every batch, which the authors
  say changes little. We follow the code.
* The code also refines its edge targets and adds Lovasz and consistency losses (its A-CE2P network has an edge
  branch); our loss is the cross-entropy alone.
* The code's one-hot turns ignored pixels (255) into background once refinement starts; here ignored pixels stay
  ignored.
* Schedule in the code (150 epochs): 10 warm-up epochs, a cosine decay to epoch 100, then 10-epoch cycles from half
  the peak, with a snapshot after epochs 100, 110, ..., 150.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn


class CyclicalLR:
    """A learning-rate multiplier for ``torch.optim.lr_scheduler.LambdaLR``, stepped once per optimizer step.

    ``warmup_steps`` of linear warm-up from ``floor`` to 1, a cosine decay to ``floor`` over the next
    ``decay_steps``, then cosine cycles of ``cycle_steps`` that each restart at ``restart`` (SCHP: 0.5) and decay
    to ``floor``. Its settings are stored in the scheduler's state, so ``fit`` refuses to resume with others."""

    def __init__(self, warmup_steps: int, decay_steps: int, cycle_steps: int, restart: float = 0.5,
                 floor: float = 0.01):
        if min(warmup_steps, decay_steps, cycle_steps) < 0 or cycle_steps == 0:
            raise ValueError("warmup_steps and decay_steps must be >= 0 and cycle_steps > 0")
        self.warmup_steps, self.decay_steps, self.cycle_steps = warmup_steps, decay_steps, cycle_steps
        self.restart, self.floor = restart, floor

    def _cosine(self, t: float, start: float) -> float:
        return self.floor + (start - self.floor) * (1 + math.cos(math.pi * t)) / 2

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.floor + (1 - self.floor) * step / self.warmup_steps
        step -= self.warmup_steps
        if step < self.decay_steps:
            return self._cosine(step / self.decay_steps, 1.0)
        step -= self.decay_steps
        return self._cosine((step % self.cycle_steps) / self.cycle_steps, self.restart)

    def cycle_ends(self, cycles: int) -> list[int]:
        """The steps after which a snapshot is taken: the end of the first decay and of each later cycle."""
        first = self.warmup_steps + self.decay_steps
        return [first + k * self.cycle_steps for k in range(cycles + 1)]


class SelfCorrection:
    """SCHP's averaged model and refined labels, around a segmentation model that returns logits (N, C, H, W).

    - ``aggregate(model, loader)`` at the end of a cycle: the weights join the running average, and the averaged
      model's BatchNorm statistics are re-estimated over ``loader`` (its batches' first element are the images).
    - ``loss(outputs, targets)``: the ``loss_fn`` for ``fit``. In training ``targets`` is a dict with ``"label"``
      (N, H, W) ids (``ignore_index`` ignored) and ``"image"``, the network's input, which the averaged model
      predicts from: before the first snapshot the loss is the cross-entropy with the labels, after it the soft
      cross-entropy with the refined targets. A plain label tensor (a validation loader's, which ``MeanIoU`` also
      reads) always gives the cross-entropy with the labels.
    - ``state_dict``/``load_state_dict``, or ``save``/``load``, to resume after a restart.
    """

    def __init__(self, model: nn.Module, num_classes: int, ignore_index: int = 255):
        self.averaged = AveragedModel(model)
        self.num_classes, self.ignore_index = num_classes, ignore_index

    @property
    def snapshots(self) -> int:
        return int(self.averaged.n_averaged)

    def aggregate(self, model: nn.Module, loader, device: torch.device | None = None) -> None:
        self.averaged.to(next(model.parameters()).device)
        self.averaged.update_parameters(model)
        update_bn(loader, self.averaged, device)

    @torch.no_grad()
    def refined_targets(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Soft targets (N, C, H, W): softmax((1 - a) logits + a one-hot(labels)), a = 1 / (snapshots + 1)."""
        if self.snapshots == 0:
            raise RuntimeError("no snapshot yet: call aggregate() at the end of the first cycle")
        self.averaged.to(images.device).eval()
        logits = self.averaged(images).float()
        valid = labels != self.ignore_index
        one_hot = F.one_hot(torch.where(valid, labels, 0), self.num_classes).permute(0, 3, 1, 2).float()
        weight = 1 / (self.snapshots + 1)
        return torch.softmax((1 - weight) * logits + weight * one_hot, dim=1)

    def loss(self, outputs: torch.Tensor, targets: dict | torch.Tensor) -> torch.Tensor:
        labels = (targets if isinstance(targets, torch.Tensor) else targets["label"]).long()
        if isinstance(targets, torch.Tensor) or self.snapshots == 0:
            return F.cross_entropy(outputs.float(), labels, ignore_index=self.ignore_index)
        soft = self.refined_targets(targets["image"], labels)
        valid = (labels != self.ignore_index).float()
        per_pixel = -(soft * F.log_softmax(outputs.float(), dim=1)).sum(1)
        return (per_pixel * valid).sum() / valid.sum().clamp(min=1)

    def state_dict(self) -> dict:
        return {"averaged": self.averaged.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state["averaged"])

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        torch.save(self.state_dict(), temporary)
        temporary.replace(path)  # whole or not at all

    def load(self, path: str | Path) -> bool:
        """Load a saved state if ``path`` exists; returns whether it did."""
        path = Path(path)
        if not path.is_file():
            return False
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return True
