"""Helpers for the open image-segmentation course.

Modules, each with one job: ``runtime`` (mode, device, config), ``data`` (find and download
datasets, synthetic twins), ``datasets`` (one loader per dataset), ``train`` (the training loop),
``distributed`` (the same loop on several GPUs),
``self_correction`` (Self-Correction for Human Parsing: averaged models and refined labels), ``models``,
``weights`` (pretrained weights, offline first), ``metrics`` (the field's metrics), ``viz`` (figures).
"""

import os

# albumentations asks PyPI for a newer version when it is imported, which prints a warning on Kaggle
# with the Internet off and in CI. Importing course_utils first (every notebook does) switches it off.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# torch.cuda.is_available() asks the CUDA driver by default, and after that no process forked from this one can
# use CUDA. Asking NVML instead leaves forking possible: distributed.launch forks one training process per GPU.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")

__version__ = "0.1.0"
