"""Shared fixtures. Tests run in smoke mode (the notebooks under nbval read COURSE_SMOKE)."""

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("COURSE_SMOKE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # as course_utils does; some tests import albumentations first

ROOT = Path(__file__).resolve().parent.parent
# real sample files of the datasets' formats, beside the project (absent in a plain clone)
REAL_SAMPLES = ROOT.parent / "shared" / "real_samples"


def real_sample(*parts: str) -> Path:
    path = REAL_SAMPLES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample {path} is not here")
    return path


@pytest.fixture(scope="session")
def kvasir_twin(tmp_path_factory) -> Path:
    """A small Kvasir-SEG twin in the Kaggle layout, written once per test session."""
    from course_utils.datasets import kvasir_seg

    return kvasir_seg.write_twin(tmp_path_factory.mktemp("kvasir") / "kvasirseg", n_images=10, n_val=3)


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny inputs (``pytestmark = pytest.mark.usefixtures("one_thread")``): one thread is as fast
    as two there, and it does not stall when another process is busy on the same two cores (two threads then wait
    for each other at every operation, up to 50x slower here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
