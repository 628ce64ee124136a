"""Where boundaries are: the band of pixels near a change of class.

Boundary quality is measured as in DeepLab's "trimap" experiments: the mean IoU computed only
over pixels within ``width`` pixels of a boundary in the ground truth. Region metrics are
dominated by the interiors of large classes; this one asks whether the edges are in the right place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def boundary_band(labels, width: int = 3) -> torch.Tensor:
    """Boolean mask of the pixels within ``width`` pixels (a square window) of a change of label.

    ``labels``: (H, W) or (N, H, W) class ids. Changes to and from an ignore label count as
    boundaries too; pass the ignore index to ``confusion_matrix`` to leave those pixels out.
    """
    labels = torch.as_tensor(labels)
    single = labels.ndim == 2
    x = labels[None, None] if single else labels[:, None]
    x = x.float()
    k = 2 * width + 1
    largest = F.max_pool2d(x, k, stride=1, padding=width)
    smallest = -F.max_pool2d(-x, k, stride=1, padding=width)
    band = (largest != smallest)[:, 0]
    return band[0] if single else band
