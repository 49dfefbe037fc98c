"""Private helpers shared by the re-blur defocus estimators (Zhuo & Sim 2011, Chen et al. 2016).

* :func:`gradient_ratio`: ratio of Gaussian-gradient magnitudes at two scales, the cue both
  methods turn into a defocus amount at edges.
* :func:`canny_matlab`: a port of MATLAB's ``edge(I, 'canny', thresh, sigma)`` (both authors' code
  calls ``edge(rgb2gray(I), 'canny', 0.1, 1)``), written from the documented algorithm.
* :func:`canny_octave`: the same call as GNU Octave's image package (2.14) computes it, which is
  what produced the shared Zhuo11 reference edges.

Not public API; import from :mod:`baselines.zhuo11` / :mod:`baselines.chen16` instead.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from .matlab import fspecial_gaussian_1d, scipy_mode

__all__ = ["canny_matlab", "canny_octave", "gaussian_gradient_magnitude", "gradient_ratio"]

#: ``scipy.ndimage`` mode of MATLAB's ``'replicate'`` padding (``imfilter``, ``edge``).
_REPLICATE = scipy_mode("replicate")


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
    dx = ndimage.correlate1d(ndimage.correlate1d(img, gauss, axis=0, mode=_REPLICATE), dk, axis=1, mode=_REPLICATE)
    dy = ndimage.correlate1d(ndimage.correlate1d(img, gauss, axis=1, mode=_REPLICATE), dk, axis=0, mode=_REPLICATE)
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


# --------------------------------------------------------------------------------------------
# Octave-style Canny (image package 2.14)
# --------------------------------------------------------------------------------------------


def _octave_canny_gaussian(sigma: float) -> np.ndarray:
    """Octave's ``fspecial("gaussian", [1, 8 * ceil(sigma)], sigma)``: an even-length kernel.

    Samples at ``-(n-1)/2 .. (n-1)/2`` (half-integers), values below ``eps * max`` set to 0,
    normalised to sum 1 (:func:`baselines.matlab.fspecial_gaussian_1d`).
    """
    return fspecial_gaussian_1d(8 * int(math.ceil(sigma)), sigma)


def canny_octave(grey: np.ndarray, thresh: float = 0.1, sigma: float = 1.0) -> np.ndarray:
    """Canny edges as GNU Octave's ``edge(I, "canny", thresh, sigma)`` (image package 2.14) computes them.

    Parameters
    ----------
    grey : numpy.ndarray
        ``H x W`` float image (Octave is given ``rgb2gray`` of a ``[0, 1]`` image).
    thresh : float
        High hysteresis threshold relative to the maximum gradient magnitude; the low one is
        ``0.4 * thresh``.
    sigma : float
        Scale of the smoothing Gaussian.

    Returns
    -------
    numpy.ndarray
        ``H x W`` bool edge map (the one-pixel image border is never an edge).

    Notes
    -----
    Octave's ``edge_canny`` (``edge.m``) and its compiled ``nonmax_suppress``:

    1. **Smoothing** by ``fspecial("gaussian", [1, 8*ceil(sigma)], sigma)``, an *even-length*
       (8 taps for sigma 1) normalised Gaussian sampled at half-integers, applied along rows then
       columns by ``imfilter(..., "replicate")`` (correlation). For an even kernel Octave's
       ``imfilter`` pads ``n/2 - 1`` pixels before and ``n/2`` after, so the smoothed image is
       sampled half a pixel to the right and down of each pixel: every edge moves by up to half a
       pixel compared with a centred filter.
    2. **Gradient** by central differences ``[1 0 -1] / 2`` (again ``imfilter``, replicate
       padding) in x and y; :math:`E_s = \\sqrt{J_x^2 + J_y^2} / \\max E_s`.
    3. **Orientation** :math:`E_o = \\pi - \\operatorname{mod}(\\operatorname{atan2}(J_y, J_x) - \\pi, \\pi)`
       in :math:`(0, \\pi]` (the gradient angle with the y axis pointing up), rounded to the
       nearest of 0, 45, 90, 135 degrees (180 counts as 0; ties go to the smaller angle).
    4. **Non-maximum suppression** without interpolation: an interior pixel survives when its
       strength is *strictly* greater than both neighbours along the rounded direction
       (0: left/right; 45: up-right/down-left; 90: up/down; 135: up-left/down-right).
    5. **Hysteresis**, by a depth-first trace: start from the survivors above ``thresh`` and
       repeatedly add, from each added pixel, the two neighbours *along the edge* (perpendicular
       to its own rounded gradient direction, e.g. up/down for direction 0) that are survivors
       above ``0.4 * thresh``. Connectivity is directed and limited to two neighbours, not the
       8-connected components of the candidate map. Computed here as a breadth-first search over
       the directed graph (:func:`scipy.sparse.csgraph.breadth_first_order`), which reaches the
       same set.

    Differences from MATLAB (:func:`canny_matlab`): MATLAB smooths with an odd, centred Gaussian
    of half-width ``ceil(4 sigma)`` and differentiates with a derivative-of-Gaussian kernel
    (Octave: an even, half-pixel-shifted Gaussian then plain central differences); MATLAB's
    non-maximum suppression interpolates between the two neighbours in each of four sectors and
    keeps ties (``>=``), Octave's rounds the direction to the nearest neighbour and requires
    ``>``; MATLAB's hysteresis keeps whole 8-connected components of the candidates that touch
    a strong pixel, Octave follows only the two along-edge neighbours of each pixel. Octave's
    edges are therefore sparser (fewer 8-connected side branches) and shifted by up to half a
    pixel.
    """
    img = np.asarray(grey, dtype=np.float64)
    h, w = img.shape
    gauss = _octave_canny_gaussian(sigma)
    # Even kernel: origin -1 places it as Octave's imfilter does (n/2 - 1 taps before the pixel).
    j = ndimage.correlate1d(img, gauss, axis=1, mode=_REPLICATE, origin=-1)
    j = ndimage.correlate1d(j, gauss, axis=0, mode=_REPLICATE, origin=-1)
    p = np.array([0.5, 0.0, -0.5])
    jx = ndimage.correlate1d(j, p, axis=1, mode=_REPLICATE)
    jy = ndimage.correlate1d(j, p, axis=0, mode=_REPLICATE)
    es = np.sqrt(jx**2 + jy**2)
    emax = es.max()
    if emax > 0:
        es /= emax
    low, high = 0.4 * thresh, thresh
    if h < 3 or w < 3:
        return np.zeros((h, w), dtype=bool)
    eo = np.pi - np.mod(np.arctan2(jy, jx) - np.pi, np.pi)

    # Nearest of the four directions, Octave's distance: d = eo - a, minus pi when d > pi/2, |d|.
    angles = np.array([0.0, 0.25, 0.5, 0.75]) * np.pi
    dist = eo[None, 1:-1, 1:-1] - angles[:, None, None]
    dist = np.abs(np.where(dist > 0.5 * np.pi, dist - np.pi, dist))
    best = np.argmin(dist, axis=0)  # first minimum: ties to the smaller angle, as Octave's "<"

    # Non-maximum suppression (interior pixels), neighbours (dy, dx) across the edge.
    across = [((0, -1), (0, 1)), ((-1, 1), (1, -1)), ((-1, 0), (1, 0)), ((-1, -1), (1, 1))]

    def nb(arr: np.ndarray, oy: int, ox: int) -> np.ndarray:
        return arr[1 + oy : h - 1 + oy, 1 + ox : w - 1 + ox]

    m = es[1:-1, 1:-1]
    keep = np.zeros(m.shape, dtype=bool)
    for k, ((ay, ax), (by, bx)) in enumerate(across):
        keep |= (best == k) & (m > nb(es, ay, ax)) & (m > nb(es, by, bx))
    strength = np.zeros((h, w))
    strength[1:-1, 1:-1] = np.where(keep, m, 0.0)
    direction = np.zeros((h, w), dtype=np.intp)
    direction[1:-1, 1:-1] = best

    seeds = np.flatnonzero(strength > high)
    if seeds.size == 0:
        return np.zeros((h, w), dtype=bool)
    # Directed graph: each candidate links to the two along-edge neighbours of its own
    # direction that are candidates (strength > low); node h*w is a source linked to the seeds.
    along = np.array([[(-1, 0), (1, 0)], [(-1, -1), (1, 1)], [(0, -1), (0, 1)], [(-1, 1), (1, -1)]])
    cand = strength > low
    src = np.flatnonzero(cand | (strength > high))
    sy, sx = np.divmod(src, w)
    offs = along[direction.ravel()[src]]  # (n, 2, 2)
    ty = sy[:, None] + offs[:, :, 0]
    tx = sx[:, None] + offs[:, :, 1]
    tgt = ty * w + tx  # candidates are interior, so the neighbours are inside the image
    ok = cand.ravel()[tgt]
    rows = np.concatenate([np.repeat(src, 2)[ok.ravel()], np.full(seeds.size, h * w)])
    cols = np.concatenate([tgt.ravel()[ok.ravel()], seeds])
    n = h * w + 1
    graph = sparse.csr_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n))
    reached = csgraph.breadth_first_order(graph, h * w, directed=True, return_predecessors=False)
    out = np.zeros(n, dtype=bool)
    out[reached] = True
    return out[: h * w].reshape(h, w)
