"""Helpers for the open image-segmentation course.

Modules, each with one job: ``runtime`` (mode, device, config), ``data`` (find and download
datasets, synthetic twins), ``datasets`` (one loader per dataset), ``train`` (the training loop),
``metrics`` (the field's metrics), ``viz`` (figures).
"""

__version__ = "0.1.0"
