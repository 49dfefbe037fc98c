"""Private helpers for dense per-pixel patch statistics (shared by the Liu08/Shi14 feature modules).

The original MATLAB code of Shi, Xu & Jia (2014) computes its features on ``im2col`` patches: one
``P x P`` patch per *valid* position (``(H - P + 1) x (W - P + 1)`` of them, patch centred on the
pixel) and then pads the map back to ``H x W`` with ``padarray(..., 'replicate')``. These helpers
do the same with box filters instead of patch matrices, so every statistic costs O(1) per pixel
whatever the patch size.
"""

from __future__ import annotations

import cv2
import numpy as np

from ._checks import check_int
from .matlab import padarray

__all__ = [
    "check_patch",
    "ensure_size",
    "forward_derivatives",
    "pad_valid",
    "sample_grid",
    "upsample_grid",
    "valid_box_sum",
]


def check_patch(patch: int, name: str = "patch", method: str | None = None) -> int:
    """Validate an odd patch side >= 3 and return it as ``int``.

    Raises :class:`~baselines.interface.InputError` (``"[method: ]patch must be an odd integer
    >= 3, got 8"``), see :func:`baselines._checks.check_int`.
    """
    return check_int(method, name, patch, minimum=3, odd=True)


def ensure_size(grey: np.ndarray, patch: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Mirror-pad an image smaller than ``patch`` (the original code needs at least one patch).

    Returns the (possibly padded) image and the original shape, to crop the result back.
    """
    h, w = grey.shape
    ph, pw = max(0, patch - h), max(0, patch - w)
    if ph == 0 and pw == 0:
        return grey, (h, w)
    return padarray(grey, (ph, pw), "symmetric", "post"), (h, w)


def forward_derivatives(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward differences as in the original MATLAB code.

    ``dx = [diff(im, 1, 2), -im(:, end)]`` and ``dy = [diff(im, 1, 1); -im(end, :)]``: the
    last column (row) takes minus the image, as if the image continued with zeros.
    """
    g = np.asarray(grey, dtype=np.float64)
    dx = np.empty_like(g)
    dx[:, :-1] = g[:, 1:] - g[:, :-1]
    dx[:, -1] = -g[:, -1]
    dy = np.empty_like(g)
    dy[:-1, :] = g[1:, :] - g[:-1, :]
    dy[-1, :] = -g[-1, :]
    return dx, dy


def valid_box_sum(image: np.ndarray, patch: int, axis: int | None = None) -> np.ndarray:
    """Sums over every fully contained ``patch x patch`` window (``im2col``'s valid positions).

    Parameters
    ----------
    image : numpy.ndarray
        ``H x W`` (or ``H x W x C`` with C <= 4) float32/float64 array.
    patch : int
        Odd window side.
    axis : {None, 0, 1}
        ``None``: square window, output ``(H - P + 1, W - P + 1)``; ``0``: window of P rows only,
        output ``(H - P + 1, W)``; ``1``: P columns only, output ``(H, W - P + 1)``.

    Notes
    -----
    OpenCV's box filter keeps running sums in double precision for float input, so the result
    is accurate to about 1e-16 relative for float64 data.
    """
    h = patch // 2
    rows, cols = image.shape[:2]
    if axis is None:
        ksize = (patch, patch)
    elif axis == 0:
        ksize = (1, patch)
    else:
        ksize = (patch, 1)
    out = cv2.boxFilter(image, -1, ksize, normalize=False, borderType=cv2.BORDER_CONSTANT)
    if axis is None:
        return out[h : rows - h, h : cols - h]
    if axis == 0:
        return out[h : rows - h]
    return out[:, h : cols - h]


def pad_valid(valid: np.ndarray, pad: int) -> np.ndarray:
    """``padarray(valid, [pad, pad], 'replicate')``: grow a valid-position map back to full size."""
    if pad <= 0:
        return valid
    return padarray(valid, pad, "replicate")


def sample_grid(n: int, step: int) -> np.ndarray:
    """Positions ``0, step, 2 step, ...`` along an axis of length ``n``, always including ``n - 1``."""
    if step <= 1 or n <= 2:
        return np.arange(n)
    pos = np.arange(0, n, step)
    if pos[-1] != n - 1:
        pos = np.append(pos, n - 1)
    return pos


def upsample_grid(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation of values known on the grid ``rows x cols`` to every position of ``shape``.

    ``rows`` and ``cols`` are increasing, start at 0 and end at ``shape - 1`` (as made by
    :func:`sample_grid`). NaN values propagate to their neighbourhood.
    """
    if len(rows) == shape[0] and len(cols) == shape[1]:
        return values

    def weights(pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.arange(n, dtype=np.float64)
        i1 = np.clip(np.searchsorted(pos, x, side="right"), 1, len(pos) - 1)
        i0 = i1 - 1
        span = (pos[i1] - pos[i0]).astype(np.float64)
        w = np.where(span > 0, (x - pos[i0]) / np.maximum(span, 1), 0.0)
        return i0, i1, w

    r0, r1, wr = weights(rows, shape[0])
    c0, c1, wc = weights(cols, shape[1])
    top = values[r0] * (1 - wr)[:, None] + values[r1] * wr[:, None]
    return top[:, c0] * (1 - wc)[None, :] + top[:, c1] * wc[None, :]
