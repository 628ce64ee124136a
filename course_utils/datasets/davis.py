"""DAVIS 2017 annotations: object-id masks, and the colour palette they are drawn with.

DAVIS stores each frame's annotation as ``Annotations/480p/<sequence>/<frame:05d>.png``: a **palette PNG**
(PIL mode "P") whose pixel values are object ids, 0 = background, 1..N the objects of the sequence (N differs
per sequence), 255 = void in the ground truth; the palette is PASCAL VOC's (id 1 dark red, 2 green, ...),
so the file looks coloured although it holds ids. ``np.asarray(Image.open(path))`` gives the ids;
``convert("RGB")`` gives colours, and ``convert("L")`` gives grey levels of those colours, not ids.
Frames are 480 pixels high, mostly 854 wide (some sequences 910 or others).

``read_davis_mask`` returns the ids however the file was saved: as the official palette PNG, as a grey
PNG of ids (mode "L"), or as an RGB PNG of the VOC colours (a tool converted it); a lossy JPEG, or colours
that are not VOC's, are refused, since guessing would relabel objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

VOID = 255


def voc_palette(n: int = 256) -> np.ndarray:
    """PASCAL VOC's colour of each id (n, 3) uint8: the bits of the id spread over R, G and B, high bits first."""
    palette = np.zeros((n, 3), np.uint8)
    for index in range(n):
        value, shift = index, 7
        while value:
            for channel in range(3):
                palette[index, channel] |= ((value >> channel) & 1) << shift
            value >>= 3
            shift -= 1
    return palette


def read_davis_mask(path: str | Path) -> np.ndarray:
    """The (H, W) uint8 object ids of a DAVIS annotation (0 background, 1..N objects, 255 void)."""
    path = Path(path)
    with Image.open(path) as image:
        kind, mode = image.format, image.mode
        if kind != "PNG":
            raise ValueError(f"{path}: a {kind} file; DAVIS annotations are PNGs (a lossy JPEG changes the ids "
                             f"along every edge: use the original PNG)")
        if mode == "P" or mode == "L":
            return np.asarray(image).copy()
        if mode not in ("RGB", "RGBA"):
            raise ValueError(f"{path}: PNG mode {mode!r}; expected a palette ('P'), grey ('L') or RGB PNG of ids")
        rgb = np.asarray(image.convert("RGB"))
    palette = voc_palette()
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    table = {(int(r) << 16) | (int(g) << 8) | int(b): i for i, (r, g, b) in enumerate(palette)}
    colours = np.unique(codes)
    unknown = [c for c in colours.tolist() if c not in table]
    if unknown:
        examples = ", ".join(str(((c >> 16) & 255, (c >> 8) & 255, c & 255)) for c in unknown[:3])
        raise ValueError(f"{path}: an RGB annotation with {len(unknown)} colour(s) that are not DAVIS's (VOC) palette, "
                         f"e.g. {examples}; it was resized or recoloured. Use the original palette PNG.")
    lookup = np.array([table[c] for c in colours.tolist()], np.uint8)
    return lookup[np.searchsorted(colours, codes)]
