"""One module per dataset: its registry entry (``INFO``), a torch Dataset over the real on-disk
layout, and the writer of its synthetic twin in that same layout.

This file holds what every dataset module shares: the registry entry's fields, image decoding that
refuses damaged files, folder search, and the seeding that makes augmentation resumable.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's entry in ``course_utils.data.REGISTRY``, declared beside its loader."""

    name: str
    title: str
    notebook: str  # the notebook number that uses it, e.g. "03"
    marker: str  # a relative path found inside the dataset's folder; identifies it
    kaggle: str | None = None  # Kaggle handle "owner/slug"
    url: str | None = None  # official archive
    sha256: str | None = None  # of the archive at `url`, where it is published or was measured
    licence: str = ""
    citation: str = ""
    manual: str = ""  # how to get it by hand, where there is no Kaggle copy or archive to download
    write_twin: Callable[[Path], None] | None = None
    twin_version: int = 0  # bump when the twin writer changes so cached twins are rewritten


class DamagedFileError(ValueError):
    """A data file that cannot be decoded, or decodes with errors; the message names the file."""


def _decode(path: Path, flags: int) -> np.ndarray:
    """Decode an image file with OpenCV, failing on any decoder complaint.

    libjpeg and libpng report damage (a truncated file, "Corrupt JPEG data: premature end of data
    segment", a CRC error) only as text on the C library's stderr, and libjpeg still returns a
    garbled picture. We catch that text by pointing file descriptor 2 at a temporary file while
    decoding, so a damaged file is an error instead of a silent bad sample.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            image = cv2.imdecode(raw, flags)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        text = log.read().decode(errors="replace")
    # libpng *warnings* (an odd colour profile, say) are harmless; anything else is damage
    complaint = "; ".join(line for line in text.splitlines() if line and not line.startswith("libpng warning"))
    if image is None or complaint:
        reason = complaint or "not an image OpenCV can read"
        raise DamagedFileError(f"{path}: cannot decode this file ({reason}). It is damaged or incomplete: "
                               f"download or copy the dataset again, or remove this sample and its label.")
    return image


# Pixels as stored, never turned by a JPEG's EXIF orientation tag: OpenCV (and PIL's exif_transpose) would rotate
# a phone photo tagged "rotate 90°" upright, but label maps and COCO's JSON (its height and width, its polygons)
# describe the stored pixels, so a turned photo no longer matches its labels (a 180° turn even keeps the size).
AS_STORED = cv2.IMREAD_IGNORE_ORIENTATION


def read_image(path: str | Path) -> np.ndarray:
    """An RGB image as a uint8 array of shape (H, W, 3), pixels as stored (EXIF orientation not applied);
    a damaged file is a ``DamagedFileError``."""
    image = _decode(Path(path), cv2.IMREAD_COLOR | AS_STORED)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_grey(path: str | Path) -> np.ndarray:
    """A single-channel uint8 array (H, W), pixels as stored: a colour file is converted to grey levels."""
    return _decode(Path(path), cv2.IMREAD_GRAYSCALE | AS_STORED)


def read_unchanged(path: str | Path) -> np.ndarray:
    """The file's pixels exactly as stored: every channel (an alpha channel too, in OpenCV's B, G, R, A order) and
    the bit depth (16-bit PNGs stay uint16); a damaged file is a ``DamagedFileError``."""
    return _decode(Path(path), cv2.IMREAD_UNCHANGED)


def reseed(transform) -> None:
    """Draw this sample's augmentation randomness from torch's random generator.

    albumentations and MONAI pipelines keep random generators of their own, which a resumed run
    rebuilds from the seed: epoch 3 of a resumed run would then repeat epoch 1's augmentations.
    Seeding the pipeline from ``torch`` for every sample ties it to the generator that
    ``train.fit`` checkpoints (and that DataLoader workers are seeded from), so a resumed run
    draws exactly what an uninterrupted one does. Call it right before applying the transform.
    """
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    if hasattr(transform, "set_random_seed"):  # albumentations Compose
        # one generator shared by every transform of the pipeline: ``set_random_seed`` would give each
        # transform its own generator with the *same* seed, so all their coin flips would agree
        transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
    elif hasattr(transform, "set_random_state"):  # MONAI Compose or Randomizable
        transform.set_random_state(seed=seed)


def seeded_split(names: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """``(held_out, rest)``, both sorted: a seeded ``fraction`` of ``names`` (at least one) and the others.
    It depends only on the names and the seed, so it is the same on every machine."""
    shuffled = sorted(names)
    random.Random(seed).shuffle(shuffled)
    n = max(1, round(len(shuffled) * fraction))
    return sorted(shuffled[:n]), sorted(shuffled[n:])


def carve_monitor(names: list[str], split: str, monitor_fraction: float, seed: int,
                  source: str) -> tuple[list[str], str]:
    """The monitor split, a seeded ``monitor_fraction`` of the training ``names`` that chooses the best
    epoch, or (``split="train"``) the training names without it; and the new description of the split."""
    monitor, train = seeded_split(names, monitor_fraction, seed)
    if not train:
        raise ValueError(f"monitor_fraction {monitor_fraction} of {len(names)} training images leaves none to "
                         f"train on")
    if split == "monitor":
        return monitor, f"a seeded {monitor_fraction:.0%} of {source}"
    return train, f"{source} less a seeded {monitor_fraction:.0%} to monitor"


def check_monitor_fraction(split: str, monitor_fraction: float, what: str) -> None:
    """Refuse a ``monitor_fraction`` outside [0, 1), and ``split="monitor"`` without one; ``what`` names what the
    monitor split holds out ("training images", "train sequences")."""
    if not 0 <= monitor_fraction < 1:
        raise ValueError(f"monitor_fraction must be in [0, 1), not {monitor_fraction}")
    if split == "monitor" and monitor_fraction == 0:
        raise ValueError(f"split='monitor' needs monitor_fraction > 0 (the share of the {what} to hold out)")


def split_names(names: list[str], split: str, held_out_fraction: float, monitor_fraction: float, seed: int,
                held_out: str = "test", what: str = "images") -> tuple[list[str], str]:
    """``(names of the split, how it was chosen)`` for a dataset without an official split: ``"all"``; the held-out
    split (``held_out``, "test" or "val": a seeded ``held_out_fraction`` that reports); ``"train"`` (the rest, less
    the monitor split when ``monitor_fraction`` > 0) or ``"monitor"`` (a seeded ``monitor_fraction`` of the rest,
    which chooses the best epoch). ``what`` names the units in the descriptions (images, groups, scenes)."""
    if split == "all":
        return names, f"all {what}"
    held, rest = seeded_split(names, held_out_fraction, seed)
    if not rest:
        raise ValueError(f"{held_out}_fraction {held_out_fraction} of {len(names)} {what} leaves none to train on")
    if split == held_out:
        return held, f"a seeded {held_out_fraction:.0%} of the {what}"
    source = f"the {what} not in a seeded {held_out_fraction:.0%}"
    if monitor_fraction > 0:
        return carve_monitor(rest, split, monitor_fraction, seed, source)
    return rest, source


_reported: set[str] = set()


def report_unused(where: str | Path, what: str, names: list[str]) -> None:
    """Say, once per process, how many files of ``where`` are not used, with a few of their names:
    a careful user must hear of every file that is left out, and hear it once, not per split."""
    message = f"note: {where}: {len(names)} {what}, not used, e.g. {names[:3]}"
    if names and message not in _reported:
        _reported.add(message)
        print(message)


def write_atomic(path: Path, write: Callable) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it to ``path``: a run killed
    while writing leaves the temporary file (named ``*.tmp-<pid>``), never half a ``path``."""
    temporary = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as f:
            write(f)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the temporary files that ``write_atomic`` left in ``folder`` when its process was killed;
    a live process's are left alone."""
    for temporary in folder.glob("*.tmp-*"):
        pid = temporary.name.rsplit("-", 1)[1]
        try:
            os.kill(int(pid), 0)
        except (ProcessLookupError, ValueError):
            temporary.unlink(missing_ok=True)
        except PermissionError:  # alive, someone else's
            pass


def find_folder(root: Path, is_it: Callable[[Path], bool], what: str, max_depth: int = 3) -> Path:
    """The shallowest folder at or below ``root`` for which ``is_it`` holds (a dataset's copies nest
    their folders differently); ``what`` describes it for the error message."""
    level = [Path(root)]
    for _ in range(max_depth + 1):
        for folder in level:
            if is_it(folder):
                return folder
        level = sorted(p for folder in level for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    raise FileNotFoundError(f"no folder with {what} found in {root} (searched {max_depth} levels down)")
