"""MATLAB compatibility helpers shared by the ports of the authors' MATLAB code.

Most baselines port MATLAB code, and their results depend on MATLAB's conventions: the
``rgb2gray`` weights, ``round`` going half away from zero, ``mat2gray``, ``fspecial`` kernels,
``im2double`` scaling, ``dctmtx`` and the border handling of ``imfilter`` / ``padarray``. Each
convention is written here once; detectors import it from this module (never copy it), so a
correction reaches every method.

Border handling, MATLAB name -> ``numpy.pad`` / ``scipy.ndimage`` / OpenCV equivalents:

* ``0`` (zeros; ``imfilter``'s default, ``filter2``, ``conv2``): ``"constant"`` /
  ``"constant"`` / ``BORDER_CONSTANT``;
* ``'replicate'`` (edge pixel repeated): ``"edge"`` / ``"nearest"`` / ``BORDER_REPLICATE``;
* ``'symmetric'`` (mirror, edge pixel repeated): ``"symmetric"`` / ``"reflect"`` /
  ``BORDER_REFLECT``;
* ``'circular'`` (periodic): ``"wrap"`` / ``"wrap"`` / ``BORDER_WRAP``.

(``numpy.pad``'s ``"reflect"`` and scipy's ``"mirror"`` mirror *without* repeating the edge pixel;
MATLAB has no such mode.) :func:`padarray`, :func:`scipy_mode` and :func:`cv2_border` translate
the MATLAB names.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np

__all__ = [
    "RGB2GRAY_WEIGHTS",
    "cv2_border",
    "dctmtx",
    "fspecial_gaussian_1d",
    "im2double",
    "mat2gray",
    "matlab_round",
    "padarray",
    "prctile",
    "rgb_to_grey",
    "round_half_up",
    "scipy_mode",
]

#: MATLAB ``rgb2gray`` weights of R, G, B (ITU-R BT.601 luma): the first row of
#: ``inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703])``, as ``rgb2gray.m`` computes them.
RGB2GRAY_WEIGHTS = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103], dtype=np.float64)
RGB2GRAY_WEIGHTS.setflags(write=False)


# --------------------------------------------------------------------------------------------
# Colour and intensity scaling
# --------------------------------------------------------------------------------------------
def rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """Luma of an RGB image with MATLAB's ``rgb2gray`` weights (:data:`RGB2GRAY_WEIGHTS`).

    Mirrors MATLAB ``rgb2gray`` for floating-point input: ``0.298936 R + 0.587043 G +
    0.114021 B`` with the exact coefficients MATLAB uses, so ports of MATLAB code see the same
    grey image.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``... x 3`` (or more channels; the first three are used) array, any scale (0-1 or 0-255).

    Returns
    -------
    numpy.ndarray
        ``...`` array on the input's scale, computed in float64; floating input keeps its dtype,
        integer input gives float64. Not rounded: MATLAB's ``rgb2gray`` of a ``uint8`` image
        rounds (half away from zero, :func:`matlab_round`) and saturates to ``uint8``; callers
        porting that do it explicitly.
    """
    rgb = np.asarray(rgb)
    return (rgb[..., :3].astype(np.float64) @ RGB2GRAY_WEIGHTS).astype(
        rgb.dtype if np.issubdtype(rgb.dtype, np.floating) else np.float64
    )


def mat2gray(x: np.ndarray, *, flat: float | None = 0.0, tol: float = 0.0) -> np.ndarray:
    """MATLAB's ``mat2gray(x)``: ``(x - min) / (max - min)`` over the whole array.

    Parameters
    ----------
    x : numpy.ndarray
        Any array.
    flat : float or None
        Output where ``max - min <= tol`` (a constant map; also when ``x`` holds NaN): every value
        becomes ``flat``. ``None`` follows MATLAB: ``x`` itself, clipped to ``[0, 1]``
        (MATLAB's ``mat2gray`` returns ``double(A)`` for a constant ``A`` and then clips).
        The default 0 is this suite's convention for a featureless map.
    tol : float
        Ranges at or below this count as constant.

    Returns
    -------
    numpy.ndarray
        The input's floating dtype (float64 for integer input).

    Notes
    -----
    MATLAB evaluates ``imlincomb(1/(max-min), A, -min/(max-min))``; this computes
    ``(x - min) / (max - min)``, which can differ from it in the last bit. Outside the constant
    case the result lies in ``[0, 1]`` without clipping (float subtraction and division are
    monotonic).
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    lo, hi = float(x.min()), float(x.max())
    if not hi - lo > tol:
        if flat is None:
            return np.clip(x, 0.0, 1.0)
        return np.full_like(x, flat)
    return (x - lo) / (hi - lo)


def im2double(image: np.ndarray) -> np.ndarray:
    """MATLAB ``im2double``: an image as float64 on the 0-1 scale.

    ``uint8`` is divided by 255, ``uint16`` by 65535, ``int16`` is shifted by 32768 then divided
    by 65535, ``bool`` becomes 0/1; floating input is converted to float64 unchanged (MATLAB
    returns ``double`` images as they are).
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float64) / 65535.0
    if image.dtype == np.int16:
        return (image.astype(np.float64) + 32768.0) / 65535.0
    if image.dtype == bool or np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float64)
    raise TypeError(f"im2double: unsupported dtype {image.dtype}")


def prctile(x: np.ndarray, p, axis: int | None = None) -> np.ndarray:
    """MATLAB ``prctile(x, p)``: percentiles ``p`` (0-100) with MATLAB's definition.

    The ``k``-th of ``n`` sorted values is the ``100 (k - 0.5) / n`` percentile, linear
    interpolation in between, the extreme values outside (``numpy.percentile``'s ``"hazen"``
    method). ``axis=None`` pools all values (MATLAB works down the first dimension).
    """
    return np.percentile(x, p, axis=axis, method="hazen")


# --------------------------------------------------------------------------------------------
# Rounding
# --------------------------------------------------------------------------------------------
def matlab_round(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round``: halves go away from zero, for any sign (``numpy.round`` goes to even).

    Exact: ``x`` whose fractional part is exactly 0.5 is moved away from zero, every other value
    goes to the nearest integer. Keeps the input's floating dtype.
    """
    t = np.trunc(x)
    return np.where(np.abs(x - t) == 0.5, t + np.sign(x), np.round(x))


def round_half_up(x: np.ndarray) -> np.ndarray:
    """``floor(x + 0.5)`` in float64: MATLAB ``round`` (and the rounding of ``uint8`` casts) for
    non-negative values.

    The fast form the ports use on non-negative data (grey levels, radii, logs of radii >= 1).
    It agrees with :func:`matlab_round` on non-negative values except just below a half
    (``x`` within one ulp under ``k + 0.5``, where ``x + 0.5`` rounds up to ``k + 1``); negative
    halves go up, not away from zero.
    """
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


# --------------------------------------------------------------------------------------------
# Kernels and transforms
# --------------------------------------------------------------------------------------------
def fspecial_gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', [1 size], sigma)`` as a 1-D float64 array.

    Also one separable factor of ``fspecial('gaussian', [size size], sigma)`` (the 2-D kernel is
    the outer product of two of these, up to rounding), which is how ``imgaussfilt`` and
    ``imfilter`` with a Gaussian are ported.

    Samples ``exp(-x^2 / (2 sigma^2))`` at ``x = -(size-1)/2 .. (size-1)/2`` (half-integers when
    ``size`` is even: the kernel's centre then lies between two taps, see :func:`padarray`'s
    notes on even kernels), sets values below ``eps * max`` to 0 and normalises to sum 1.
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    g[g < np.finfo(np.float64).eps * g.max()] = 0.0
    return g / g.sum()


@lru_cache(maxsize=None)
def dctmtx(m: int) -> np.ndarray:
    """MATLAB ``dctmtx(m)``: the orthonormal ``m x m`` DCT-II matrix, row ``k`` = frequency ``k``.

    ``dctmtx(m) @ x`` is ``dct(x)`` for a column ``x``; ``D @ P @ D.T`` is ``dct2(P)``. Cached
    and read-only.
    """
    from scipy.fft import dct

    out = dct(np.eye(m), norm="ortho", axis=0)
    out.setflags(write=False)
    return out


# --------------------------------------------------------------------------------------------
# Borders
# --------------------------------------------------------------------------------------------
_NUMPY_MODES = {"replicate": "edge", "symmetric": "symmetric", "circular": "wrap", 0: "constant"}
_SCIPY_MODES = {"replicate": "nearest", "symmetric": "reflect", "circular": "wrap", 0: "constant"}


def _padding_key(method: Any) -> Any:
    if isinstance(method, str) and method in _NUMPY_MODES:
        return method
    if not isinstance(method, (str, bool)) and method == 0:
        return 0
    raise ValueError(f"unknown MATLAB padding {method!r}; use 'replicate', 'symmetric', 'circular' or 0")


def padarray(a: np.ndarray, pad: int | Sequence[int], method: Any = 0, direction: str = "both") -> np.ndarray:
    """MATLAB ``padarray(a, pad, method, direction)`` on the first two axes.

    Parameters
    ----------
    a : numpy.ndarray
        ``H x W`` or ``H x W x C`` array (further axes are not padded).
    pad : int or (int, int)
        Rows and columns to add (one int: the same for both).
    method : {0, "replicate", "symmetric", "circular"}
        MATLAB's padding; 0 pads with zeros (MATLAB's default).
    direction : {"both", "pre", "post"}
        Where to pad, as MATLAB's fourth argument.

    Notes
    -----
    Equivalent to ``numpy.pad`` with the mode of the module table. ``imfilter`` with an
    even-length kernel of ``n`` taps correlates with the kernel's centre at tap ``n/2`` (1-based),
    i.e. pads ``n/2 - 1`` before and ``n/2`` after: ``scipy.ndimage.correlate1d(...,
    origin=-1)``.
    """
    mode = _NUMPY_MODES[_padding_key(method)]
    pr, pc = (pad, pad) if np.ndim(pad) == 0 else tuple(pad)
    before = {"both": True, "pre": True, "post": False}[direction]
    after = {"both": True, "pre": False, "post": True}[direction]
    width = [(pr if before else 0, pr if after else 0), (pc if before else 0, pc if after else 0)]
    width += [(0, 0)] * (np.ndim(a) - 2)
    return np.pad(a, width, mode=mode)


def scipy_mode(method: Any) -> str:
    """``scipy.ndimage`` ``mode`` for a MATLAB padding (``"replicate"`` -> ``"nearest"``, ...)."""
    return _SCIPY_MODES[_padding_key(method)]


def cv2_border(method: Any) -> int:
    """OpenCV ``borderType`` for a MATLAB padding (``"replicate"`` -> ``cv2.BORDER_REPLICATE``, ...)."""
    import cv2

    return {
        "replicate": cv2.BORDER_REPLICATE,
        "symmetric": cv2.BORDER_REFLECT,
        "circular": cv2.BORDER_WRAP,
        0: cv2.BORDER_CONSTANT,
    }[_padding_key(method)]
