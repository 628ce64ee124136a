"""One module per dataset: a torch Dataset over the real on-disk layout and the writer of its
synthetic twin in that same layout."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def read_image(path: Path) -> np.ndarray:
    """An RGB image as a uint8 array of shape (H, W, 3)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def find_folder(root: Path, is_it: Callable[[Path], bool], what: str, max_depth: int = 3) -> Path:
    """The shallowest folder at or below ``root`` for which ``is_it`` holds (a dataset's copies nest
    their folders differently); ``what`` describes it for the error message."""
    level = [Path(root)]
    for _ in range(max_depth + 1):
        for folder in level:
            if is_it(folder):
                return folder
        level = sorted(p for folder in level for p in folder.iterdir() if p.is_dir())
    raise FileNotFoundError(f"no folder with {what} found in {root} (searched {max_depth} levels down)")
