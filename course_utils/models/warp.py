"""Backward warping: sample the second frame where the flow says each pixel of the first frame went.

``backward_warp(frame2, flow)`` returns, at each pixel (x, y) of frame 1, frame 2's value at (x + u, y + v),
bilinearly interpolated (``torch.nn.functional.grid_sample``), and a mask of the pixels whose target lies inside
frame 2. With the true flow and no occlusion, the warped frame 2 equals frame 1: the brightness-constancy residual
|frame1 − warp(frame2)| is what flow networks minimise without labels, and what FlowNet 2.0 feeds its next network
(with the warped frame and the residual) so that it only has to correct the remaining error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def backward_warp(frame2: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(warped (N, C, H, W), inside (N, 1, H, W) bool)`` for frames (N, C, H, W) and flows (N, 2, H, W) in
    pixels, (u, v) = (x, y) displacement. Targets outside the frame read zeros and are marked outside."""
    if frame2.ndim != 4 or flow.ndim != 4 or flow.shape[1] != 2 or frame2.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"expected frames (N, C, H, W) and flows (N, 2, H, W) of one size, got "
                         f"{tuple(frame2.shape)} and {tuple(flow.shape)}")
    n, _, height, width = flow.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=flow.device, dtype=flow.dtype),
                            torch.arange(width, device=flow.device, dtype=flow.dtype), indexing="ij")
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    # grid_sample wants positions in [-1, 1], -1 and 1 the centres of the first and last pixels (align_corners)
    grid = torch.stack([2 * x / max(width - 1, 1) - 1, 2 * y / max(height - 1, 1) - 1], dim=-1)
    warped = F.grid_sample(frame2, grid.to(frame2.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)
    inside = ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1))[:, None]
    return warped, inside
