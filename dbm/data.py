"""Training pairs for DBM from a dataset in the CUHK layout.

Datasets, splits and masks are read by :mod:`baselines.datasets` (the same code the runner uses):
``image/`` photos (``.jpg .jpeg .png .bmp .tif``, any case), ``gt/`` masks (255 = blurred), splits
``all``, ``odd``/``D_o``, ``even``/``D_e`` or a list file. This module adds what training needs:
resizing to the paper's square input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from baselines.datasets import Dataset

__all__ = ["iter_pairs", "resize_pair"]


def iter_pairs(root: str | Path, split: str | Path = "all") -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, rgb, mask)`` for every photo of ``split``; photos are float32 RGB, masks bool.

    Raises
    ------
    baselines.datasets.DatasetError
        For a bad layout or split, missing photos of the split, or a photo whose size differs
        from its mask's (one line naming the file).
    """
    for sample in Dataset(root).samples(split):
        mask = sample.mask()
        yield sample.image_path.name, sample.image(mask.shape), mask


def resize_pair(rgb: np.ndarray, mask: np.ndarray, size: int | tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Resize to ``size`` (``(H, W)`` or a square side) as the paper does (384 x 384, aspect not kept).

    The photo is resampled with area averaging (downscaling) or bilinear interpolation; the mask
    with bilinear interpolation thresholded at 1/2.
    """
    import cv2

    if size is None:
        return rgb, mask
    h, w = (size, size) if isinstance(size, int) else size
    if rgb.shape[:2] == (h, w):
        return rgb, mask
    interp = cv2.INTER_AREA if h * w < rgb.shape[0] * rgb.shape[1] else cv2.INTER_LINEAR
    img = cv2.resize(rgb, (w, h), interpolation=interp)
    m = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
    return np.ascontiguousarray(img, dtype=np.float32), m
