"""One module per dataset: a torch Dataset over the real on-disk layout and the writer of its
synthetic twin in that same layout."""

from pathlib import Path

import numpy as np
from PIL import Image


def read_image(path: Path) -> np.ndarray:
    """An RGB image as a uint8 array of shape (H, W, 3)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
