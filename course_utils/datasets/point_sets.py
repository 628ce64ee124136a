"""What the point-cloud datasets share: shapes brought into the unit sphere, and the training augmentation.

PointNet and PointNet++ feed every shape centred and scaled into the unit sphere (their ``pc_normalize``), and
augment training shapes with a random rotation about the up axis and a small jitter of each point (the official
code: Gaussian noise of standard deviation 0.01 clipped at 0.05; the PointNet paper states 0.02). The up axis
differs between datasets: y for ShapeNet-part, z for ModelNet's meshes.
"""

from __future__ import annotations

import numpy as np
import torch


def normalise(points: np.ndarray) -> np.ndarray:
    """Points centred on their mean and scaled so that the farthest is at distance 1: every shape in the unit
    sphere, whatever its units, size and placement."""
    centred = points - points.mean(0)
    return centred / max(float(np.linalg.norm(centred, axis=1).max()), 1e-12)


class PointAugment:
    """Training augmentation of a points tensor ``(N, 3)``, or ``(N, 6)`` with normals: a uniform random rotation
    about ``up_axis`` (0, 1, 2 for x, y, z), optionally a random scale drawn from ``scale`` (one factor for all
    axes, so normals stay normals), then Gaussian jitter of each point, ``sigma`` clipped at ``clip``. Normals turn
    with the points and are not jittered. The randomness comes from torch's generator, so ``seed_everything``
    fixes it and a resumed run augments as an uninterrupted one."""

    def __init__(self, up_axis: int, rotate: bool = True, scale: tuple[float, float] | None = None,
                 sigma: float = 0.01, clip: float = 0.05):
        if up_axis not in (0, 1, 2):
            raise ValueError(f"up_axis must be 0, 1 or 2 (x, y, z), not {up_axis}")
        self.up_axis, self.rotate, self.scale, self.sigma, self.clip = up_axis, rotate, scale, sigma, clip

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        out = points.clone()
        if self.rotate:
            angle = float(torch.rand(()) * 2 * torch.pi)
            cos, sin = float(np.cos(angle)), float(np.sin(angle))
            a, b = [axis for axis in range(3) if axis != self.up_axis]  # the plane the rotation turns
            rotation = torch.eye(3, dtype=points.dtype)
            rotation[a, a], rotation[a, b], rotation[b, a], rotation[b, b] = cos, -sin, sin, cos
            out[:, :3] = points[:, :3] @ rotation.T
            if points.shape[1] >= 6:
                out[:, 3:6] = points[:, 3:6] @ rotation.T
        if self.scale is not None:
            low, high = self.scale
            out[:, :3] *= low + float(torch.rand(())) * (high - low)
        noise = torch.randn(len(points), 3, dtype=points.dtype) * self.sigma
        out[:, :3] += noise.clamp(-self.clip, self.clip)
        return out
