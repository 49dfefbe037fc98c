"""Private helpers shared by the re-blur defocus estimators (Zhuo & Sim 2011, Chen et al. 2016).

* :func:`gradient_ratio`: ratio of Gaussian-gradient magnitudes at two scales, the cue both
  methods turn into a defocus amount at edges.
* :func:`canny_matlab`: a port of MATLAB's ``edge(I, 'canny', thresh, sigma)`` (both authors' code
  calls ``edge(rgb2gray(I), 'canny', 0.1, 1)``), written from the documented algorithm.

Not public API; import from :mod:`baselines.zhuo11` / :mod:`baselines.chen16` instead.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["canny_matlab", "gaussian_gradient_magnitude", "gradient_ratio"]


def _g1_kernels(sigma: float, half_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Separable factors of the analytic x-derivative of a 2-D Gaussian on ``[-w, w]``.

    ``g1x(x, y) = -x / (2 pi sigma^4) * exp(-(x^2 + y^2) / (2 sigma^2))`` (the authors' ``g1x.m``
    / ``makeGGMxd``), not renormalised after truncation, factored as ``deriv(x) * smooth(y)``.
    """
    x = np.arange(-half_width, half_width + 1, dtype=np.float64)
    smooth = np.exp(-(x**2) / (2.0 * sigma**2))
    deriv = -(x / (2.0 * math.pi * sigma**4)) * smooth
    return deriv, smooth


def gaussian_gradient_magnitude(grey: np.ndarray, sigma: float, half_width: int, mode: str) -> np.ndarray:
    """Magnitude of the image gradient filtered by the analytic Gaussian derivative ``g1x``/``g1y``.

    Parameters
    ----------
    grey : numpy.ndarray
        ``H x W`` float image.
    sigma : float
        Gaussian scale.
    half_width : int
        Kernel support is ``[-half_width, half_width]`` in both directions.
    mode : {"nearest", "constant"}
        Border handling: ``"nearest"`` = MATLAB ``imfilter(..., 'replicate')`` (Zhuo & Sim),
        ``"constant"`` = zero padding as MATLAB ``filter2(..., 'same')`` (Chen et al.).

    Notes
    -----
    Correlation and convolution differ only in the sign of the odd derivative kernel, which the
    magnitude ignores, so both MATLAB calls (``imfilter(..., 'conv')`` and ``filter2``) give
    :math:`\\sqrt{(I * g_{1x})^2 + (I * g_{1y})^2}`.
    """
    deriv, smooth = _g1_kernels(sigma, half_width)
    g = np.asarray(grey, dtype=np.float64)
    gx = ndimage.correlate1d(ndimage.correlate1d(g, smooth, axis=0, mode=mode), deriv, axis=1, mode=mode)
    gy = ndimage.correlate1d(ndimage.correlate1d(g, smooth, axis=1, mode=mode), deriv, axis=0, mode=mode)
    return np.hypot(gx, gy)


def gradient_ratio(
    grey: np.ndarray,
    sigma1: float,
    sigma2: float,
    half_width1: int,
    half_width2: int,
    mode: str = "nearest",
) -> np.ndarray:
    """Re-blur gradient ratio :math:`R = |\\nabla (I * g_{\\sigma_1})| / |\\nabla (I * g_{\\sigma_2})|`.

    Parameters
    ----------
    grey : numpy.ndarray
        ``H x W`` float image.
    sigma1, sigma2 : float
        The two Gaussian scales (``sigma2 > sigma1``).
    half_width1, half_width2 : int
        Kernel half-widths at each scale (they differ between the two original codes).
    mode : {"nearest", "constant"}
        Border handling, see :func:`gaussian_gradient_magnitude`.

    Returns
    -------
    numpy.ndarray
        ``H x W`` float64 ratio; NaN where both magnitudes are 0 (flat areas), as MATLAB's ``0/0``.

    Notes
    -----
    For a step edge of amplitude :math:`A` blurred by a Gaussian of scale :math:`\\sigma`, the
    gradient magnitude at the edge after filtering at scale :math:`\\sigma_i` is
    :math:`A / \\sqrt{2 \\pi (\\sigma^2 + \\sigma_i^2)}`, so

    .. math::

        R = \\sqrt{\\frac{\\sigma^2 + \\sigma_2^2}{\\sigma^2 + \\sigma_1^2}}, \\qquad
        \\sigma = \\sqrt{\\frac{R^2 \\sigma_1^2 - \\sigma_2^2}{1 - R^2}}

    (Zhuo & Sim's inversion; :math:`1 < R \\le \\sigma_2 / \\sigma_1`).
    """
    m1 = gaussian_gradient_magnitude(grey, sigma1, half_width1, mode)
    m2 = gaussian_gradient_magnitude(grey, sigma2, half_width2, mode)
    with np.errstate(divide="ignore", invalid="ignore"):
        return m1 / m2


# --------------------------------------------------------------------------------------------
# MATLAB-style Canny
# --------------------------------------------------------------------------------------------


def _matlab_canny_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``edge``'s 1-D Gaussian and derivative-of-Gaussian kernels.

    Gaussian on ``-ceil(4 sigma) .. ceil(4 sigma)`` normalised to sum 1; its numerical gradient
    (central differences, one-sided at the ends, like MATLAB's ``gradient``) with the positive
    and negative parts each rescaled to sum to +1 / -1.
    """
    ext = int(math.ceil(4.0 * sigma))
    x = np.arange(-ext, ext + 1, dtype=np.float64)
    gauss = np.exp(-(x**2) / (2.0 * sigma**2))
    gauss /= gauss.sum()
    deriv = np.gradient(gauss)
    pos, neg = deriv > 0, deriv < 0
    deriv[pos] /= deriv[pos].sum()
    deriv[neg] /= np.abs(deriv[neg].sum())
    return gauss, deriv


def canny_matlab(grey: np.ndarray, thresh: float = 0.1, sigma: float = 1.0, low_ratio: float = 0.4) -> np.ndarray:
    """Canny edges as MATLAB's ``edge(I, 'canny', thresh, sigma)`` computes them.

    Parameters
    ----------
    grey : numpy.ndarray
        ``H x W`` float image (MATLAB is given ``rgb2gray`` of a ``[0, 1]`` image).
    thresh : float
        High hysteresis threshold, relative to the maximum gradient magnitude.
    sigma : float
        Scale of the smoothing Gaussian.
    low_ratio : float
        Low threshold = ``low_ratio * thresh`` (MATLAB's fixed ``ThresholdRatio`` 0.4).

    Returns
    -------
    numpy.ndarray
        ``H x W`` bool edge map (the one-pixel image border is never an edge, as in MATLAB).

    Notes
    -----
    1. Separable smoothing and derivative, replicate padding, as a convolution:
       :math:`I_x = (I * g^\\top) * g'`, :math:`I_y = (I * g) * g'^\\top`.
    2. :math:`M = \\sqrt{I_x^2 + I_y^2} / \\max M`.
    3. Non-maximum suppression in four direction sectors, comparing :math:`M` with the two
       neighbours along the gradient, linearly interpolated between the axis and the diagonal
       neighbour with weight :math:`d = |I_y / I_x|` or :math:`|I_x / I_y|`; a pixel survives
       when it is ``>=`` both. Interior pixels only.
    4. Hysteresis: surviving pixels with :math:`M >` low form the candidate map; its
       8-connected components holding at least one pixel with :math:`M >` high are kept
       (MATLAB's ``bwselect(E, c, r, 8)``).
    """
    img = np.asarray(grey, dtype=np.float64)
    h, w = img.shape
    gauss, deriv = _matlab_canny_kernels(sigma)
    # MATLAB convolves; correlate with the flipped kernel (the Gaussian is symmetric).
    dk = deriv[::-1]
    dx = ndimage.correlate1d(ndimage.correlate1d(img, gauss, axis=0, mode="nearest"), dk, axis=1, mode="nearest")
    dy = ndimage.correlate1d(ndimage.correlate1d(img, gauss, axis=1, mode="nearest"), dk, axis=0, mode="nearest")
    mag = np.hypot(dx, dy)
    mmax = mag.max()
    if mmax > 0:
        mag = mag / mmax
    low, high = low_ratio * thresh, thresh
    edges = np.zeros((h, w), dtype=bool)
    if h < 3 or w < 3:
        return edges

    # Interior views: c = centre, and neighbours by (row, col) offset.
    def nb(oy: int, ox: int) -> np.ndarray:
        return mag[1 + oy : h - 1 + oy, 1 + ox : w - 1 + ox]

    ix, iy, m = dx[1:-1, 1:-1], dy[1:-1, 1:-1], mag[1:-1, 1:-1]
    cand = np.zeros_like(m, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        dyx = np.abs(iy / ix)
        dxy = np.abs(ix / iy)
    # (sector mask, interpolation weight, (axis nb, diagonal nb) on side 1, same on side 2)
    sectors = [
        (((iy <= 0) & (ix > -iy)) | ((iy >= 0) & (ix < -iy)), dyx, ((0, 1), (-1, 1)), ((0, -1), (1, -1))),
        (((ix > 0) & (-iy >= ix)) | ((ix < 0) & (-iy <= ix)), dxy, ((-1, 0), (-1, 1)), ((1, 0), (1, -1))),
        (((ix <= 0) & (ix > iy)) | ((ix >= 0) & (ix < iy)), dxy, ((-1, 0), (-1, -1)), ((1, 0), (1, 1))),
        (((iy < 0) & (ix <= iy)) | ((iy > 0) & (ix >= iy)), dyx, ((0, -1), (-1, -1)), ((0, 1), (1, 1))),
    ]
    for mask, d, (a1, b1), (a2, b2) in sectors:
        with np.errstate(invalid="ignore"):
            g1 = nb(*a1) * (1 - d) + nb(*b1) * d
            g2 = nb(*a2) * (1 - d) + nb(*b2) * d
            cand |= mask & (m >= g1) & (m >= g2) & (m > low)
    edges[1:-1, 1:-1] = cand
    strong = edges & (mag > high)
    if not strong.any():
        return np.zeros((h, w), dtype=bool)
    labels, _ = ndimage.label(edges, structure=np.ones((3, 3), dtype=bool))
    keep = np.unique(labels[strong])
    return np.isin(labels, keep[keep > 0])
