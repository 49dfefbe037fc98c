"""Local power spectrum slope (Liu et al. 2008; Shi, Xu & Jia 2014).

The power spectrum of a natural image falls off as :math:`S(f) \\approx A / f^{\\alpha}` with
:math:`\\alpha \\approx 2`. Blur attenuates high frequencies, so a blurred patch's spectrum falls
off *faster*: its :math:`\\alpha` is larger (the slope :math:`-\\alpha` of :math:`\\log S` against
:math:`\\log f` is steeper, more negative). Both papers compare a patch's value with the whole
image's value, :math:`q = (\\alpha_p - \\alpha_0) / \\alpha_0`.

Two per-pixel statistics are provided:

* :func:`power_spectrum_slope`: the fitted exponent :math:`\\alpha_p` of every patch (least-squares
  line through the orientation-averaged log spectrum in 0.2-wide log-frequency bins), the
  quantity defined in Liu08 and in the Shi14 paper; :func:`global_power_spectrum_slope` gives
  :math:`\\alpha_0`. High = blurred.
* :func:`shi14_spectrum_feature`: exactly what Shi14's released ``LocalPowerSpectrumSlope.m``
  computes, which is *not* a fitted slope but the mean log power over its log-frequency bins
  (of the patch divided by its sum, so the DC term is pinned): high = more high-frequency power
  = sharp.

:class:`SpectralSlope` (registry name ``spectral_slope``, not a paper row) turns either into a
blur map (default: the Shi14 statistic, negated).

All patch spectra are computed densely (one patch per pixel) without FFTs: the DFT coefficient
:math:`F(a, b)` of the patch at every position is a box sum of the image modulated by
:math:`e^{-2\\pi i (a r + b c)/P}` (up to a unit-modulus phase), done separably with running
sums, so the cost per pixel is O(number of frequencies), independent of the patch area.
"""

from __future__ import annotations

import numpy as np

from ._patches import check_patch, ensure_size, pad_valid, sample_grid, upsample_grid, valid_box_sum
from ._checks import check_choice, check_int
from .interface import Detector
from .matlab import mat2gray, rgb_to_grey, round_half_up

__all__ = [
    "SpectralSlope",
    "global_power_spectrum_slope",
    "power_spectrum_slope",
    "shi14_spectrum_feature",
    "spectral_slope",
]

#: Width of the log-frequency bins (natural log units), as in Shi14's code.
LOG_BIN = 0.2


def _as_two_channel(z: np.ndarray) -> np.ndarray:
    """View a C-contiguous complex 2-D array as a ``rows x cols x 2`` real image (for OpenCV)."""
    real = np.float32 if z.dtype == np.complex64 else np.float64
    return z.view(real).reshape(z.shape[0], z.shape[1], 2)


def _binned_patch_power(
    grey: np.ndarray,
    patch: int,
    row_freqs: np.ndarray,
    col_freqs: np.ndarray,
    bin_of: np.ndarray,
    weight: np.ndarray,
    n_bins: int,
    rows_sel: np.ndarray | None = None,
    cols_sel: np.ndarray | None = None,
    dtype: type = np.complex64,
) -> np.ndarray:
    """Weighted sums of patch DFT power over frequency bins, for every valid patch position.

    Parameters
    ----------
    grey : numpy.ndarray
        ``H x W`` image.
    patch : int
        Odd patch side P.
    row_freqs, col_freqs : numpy.ndarray
        DFT frequencies (integers, negative allowed) along rows (``a``) and columns (``b``).
    bin_of : numpy.ndarray
        ``len(row_freqs) x len(col_freqs)`` bin of each frequency pair, -1 to leave it out; for
        each row frequency the bins must be non-decreasing along the kept column frequencies.
    weight : numpy.ndarray
        Same shape, non-negative weight of each pair.
    n_bins : int
        Number of bins.
    rows_sel, cols_sel : numpy.ndarray, optional
        Valid positions to evaluate (default: all).
    dtype : type
        ``numpy.complex64`` (default, resolution about 1e-7 of the patch sum) or ``complex128``.

    Returns
    -------
    numpy.ndarray
        ``n_rows x n_bins x n_cols``:
        :math:`\\sum_{(a,b) \\in \\text{bin}} w_{ab} |F_{r,c}(a, b)|^2` with :math:`F_{r,c}` the
        ``P x P`` DFT (MATLAB ``fft2`` convention) of the patch whose top-left corner is
        ``(r, c)``.

    Notes
    -----
    :math:`F_{r,c}(a,b) = e^{i\\theta(a r + b c)} \\sum_{n,m<P} g(r+n, c+m)` with
    :math:`g(u,v) = x(u,v)\\,e^{-i\\theta(a u + b v)}`, :math:`\\theta = 2\\pi/P`: a box sum of
    the modulated image. It is done separably, rows then columns, with OpenCV's running-sum
    box filter, and :math:`\\sqrt{w_{ab}}` is folded into the column modulation.
    """
    dtype = np.dtype(dtype)
    real = np.float32 if dtype == np.complex64 else np.float64
    x = np.asarray(grey, dtype=real)
    rows, cols = x.shape
    theta = 2.0 * np.pi / patch
    b = np.asarray(col_freqs, dtype=np.float64)
    # Row pass: modulate every row by exp(-i theta b c), running sums of P columns.
    phase_c = np.exp(-1j * theta * np.outer(b, np.arange(cols))).astype(dtype)  # (nb, W)
    mod = np.ascontiguousarray(x[:, None, :] * phase_c[None, :, :]).reshape(rows * len(b), cols)
    row_dft = valid_box_sum(_as_two_channel(mod), patch, axis=1)  # (H*nb, W', 2)
    if cols_sel is not None:
        row_dft = row_dft[:, cols_sel]
    width = row_dft.shape[1]
    row_dft = np.ascontiguousarray(row_dft).view(dtype)[..., 0].reshape(rows, len(b), width)
    r = np.arange(rows, dtype=np.float64)
    n_rows = rows - patch + 1 if rows_sel is None else len(rows_sel)
    out = np.zeros((n_rows, n_bins, width), dtype=real)
    for ia, a in enumerate(np.asarray(row_freqs).tolist()):  # loop over frequencies, vectorised over all pixels
        keep = np.flatnonzero(bin_of[ia] >= 0)
        if keep.size == 0:
            continue
        # Column pass: modulate by sqrt(w) exp(-i theta a r), running sums of P rows.
        factor = np.exp(-1j * theta * a * r)[:, None] * np.sqrt(weight[ia, keep])[None, :]
        col = np.ascontiguousarray(row_dft[:, keep, :] * factor.astype(dtype)[:, :, None])
        f = valid_box_sum(_as_two_channel(col.reshape(rows, keep.size * width)), patch, axis=0)
        if rows_sel is not None:
            f = f[rows_sel]
        power = np.square(f[..., 0])
        power += np.square(f[..., 1])
        power = power.reshape(power.shape[0], keep.size, width)
        bins = bin_of[ia, keep]
        starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
        out[:, bins[starts], :] += np.add.reduceat(power, starts, axis=1)
    return out


# --------------------------------------------------------------------------------------------
# Shi14's released statistic
# --------------------------------------------------------------------------------------------
def _shi14_rings(half_h: int, half_w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Ring labels and bin layout of Shi14's ``GenerateF`` + ``rearrange``.

    Returns ``label`` (``half_h x half_w`` index of the ring of each coefficient), ``ring_bin``
    (bin of each ring), ``ring_count`` (coefficients per ring) and the number of bins (the
    last one may receive no ring).
    """
    v, u = np.meshgrid(np.arange(1, half_h + 1), np.arange(1, half_w + 1), indexing="ij")
    f = round_half_up(np.hypot(u, v))
    rings, label = np.unique(f, return_inverse=True)
    label = label.reshape(f.shape)
    ring_count = np.bincount(label.ravel(), minlength=len(rings))
    log_c = np.log(rings)
    c_new = np.unique(round_half_up(log_c / LOG_BIN) * LOG_BIN)
    ring_bin = np.empty(len(rings), np.int64)
    idx = -1
    for i, lc in enumerate(log_c):  # loop over rings (a few dozen), not pixels
        # ``rearrange``: move to the next bin when the ring reaches its rounded value. The
        # original indexes past its last bin (and stops with an error) when rings remain after
        # it; they stay in the last bin here.
        if idx + 1 < len(c_new) and lc >= c_new[idx + 1]:
            idx += 1
        ring_bin[i] = max(idx, 0)
    return label, ring_bin, ring_count, len(c_new)


def _shi14_alpha(bins: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean of ``log`` of all bins but the last (along ``axis``) over the finite entries; NaN if none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.delete(bins, -1, axis=axis))
        finite = np.isfinite(logs)
        total = np.where(finite, logs, 0.0).sum(axis=axis)
        return total / finite.sum(axis=axis)


def _shi14_global(grey: np.ndarray) -> float:
    """``alf_local_g`` of ``LocalPowerSpectrumSlope.m``: the same statistic on the whole image.

    The whole image is not divided by its sum (the patches are).
    """
    rows, cols = grey.shape
    hh, hw = rows / 2.0, cols / 2.0
    nh, nw = int(np.floor(hh)), int(np.floor(hw))
    s = np.abs(np.fft.fft2(grey)[:nh, :nw]) ** 2 / hh / hw
    label, ring_bin, ring_count, n_bins = _shi14_rings(nh, nw)
    ring_mean = np.bincount(label.ravel(), weights=s.ravel(), minlength=len(ring_count)) / ring_count
    bins = np.bincount(ring_bin, weights=ring_mean, minlength=n_bins)
    return float(_shi14_alpha(bins[:, None])[0])


def shi14_spectrum_feature(
    grey: np.ndarray,
    patch: int = 11,
    *,
    stride: int = 1,
    floor: float = 1e-12,
    dtype: type = np.complex64,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Shi14's ``LocalPowerSpectrumSlope.m``, reproduced step by step.

    Parameters
    ----------
    grey : numpy.ndarray
        ``H x W`` grey image in ``[0, 1]`` (MATLAB ``im2double`` scale: the whole-image value
        depends on it).
    patch : int
        Odd patch side (Shi14: 11, 15, 21).
    stride : int
        Evaluate every ``stride``-th valid position in both directions and interpolate
        bilinearly in between (1 = every pixel, as the original).
    floor : float
        Lower bound of each bin's power relative to the DC power (see Departures); 0 disables.
    dtype : type
        ``numpy.complex64`` (default) or ``numpy.complex128`` for the patch spectra.

    Returns
    -------
    q : numpy.ndarray
        ``H x W`` float64, :math:`(a_p - a_0)/a_0`, the released feature. Its direction depends on
        the sign of :math:`a_0` (see Notes).
    a_p : numpy.ndarray
        ``H x W`` float64 per-patch statistic before the global normalisation; higher = more
        high-frequency power (sharper). NaN where a patch sums to zero.
    a_0 : float
        The whole-image statistic.

    Notes
    -----
    For a patch :math:`x` of side :math:`P = 2h+1` divided by its sum, with :math:`F` its DFT
    (MATLAB's ``fft2``), the code keeps the quadrant :math:`0 \\le k_r, k_c < h`:

    .. math::

        s(k_r, k_c) = |F(k_r, k_c)|^2 / h^2,\\qquad
        \\rho = \\operatorname{round}\\sqrt{(k_r+1)^2 + (k_c+1)^2}

    (the ring label uses 1-based indices, so the DC term is ring 1). Ring means
    :math:`\\bar s_\\rho` (``calculateSf``, the MEX version, which averages) are summed into bins
    of :math:`\\log\\rho` rounded to multiples of 0.2 (``rearrange``, which moves to the next bin
    when :math:`\\log\\rho` reaches that bin's rounded value), the last bin is dropped and

    .. math:: a_p = \\operatorname{mean}_j \\log B_j

    over the finite :math:`\\log B_j`. The paper describes :math:`a_p` as a fitted slope; the code
    computes this mean, which, because the DC term is fixed by the normalisation, grows with the
    share of high-frequency power. :math:`a_0` is the same statistic on the whole (un-normalised)
    image with :math:`h` = half the image size. ``q`` is then :math:`(a_p - a_0)/a_0`: an
    increasing function of :math:`a_p` when :math:`a_0 > 0`, decreasing when :math:`a_0 < 0`.

    Departures: patch spectra come from running sums of the modulated image instead of one FFT
    per patch, in single precision by default (power resolution about 1e-14 of the DC power;
    with ``complex128`` the statistic matches Octave runs of the original to 1e-11). In a
    perfectly flat patch every non-DC coefficient is rounding noise, in the original as here,
    so the statistic is arbitrary there; bins are floored at ``floor`` times the DC power, which
    makes flat patches deterministic (the lowest values) without touching 8-bit photo content,
    whose quantisation noise alone is above 1e-9 of the DC power. ``stride > 1`` interpolates
    between evaluated positions. Where the original's bin
    assignment would index past its last bin (it then stops with an error, e.g. for a 70 x 90
    image), the remaining rings stay in the last bin, which is dropped anyway. Images smaller
    than the patch are mirror-padded first.
    """
    patch = check_patch(patch)
    g, (h0, w0) = ensure_size(np.asarray(grey, dtype=np.float64), patch)
    half = patch // 2
    label, ring_bin, ring_count, n_bins = _shi14_rings(half, half)
    weight = 1.0 / ring_count[label] / (half * half)  # (kr, kc) weight into its bin
    coef_bin = ring_bin[label]
    vh, vw = g.shape[0] - patch + 1, g.shape[1] - patch + 1
    rows, cols = sample_grid(vh, stride), sample_grid(vw, stride)
    sel = (None, None) if stride <= 1 else (rows, cols)
    freqs = np.arange(half)
    bins = _binned_patch_power(g, patch, freqs, freqs, coef_bin, weight, n_bins, *sel, dtype=dtype)
    bins = bins.astype(np.float64)
    total = valid_box_sum(g, patch)[np.ix_(rows, cols)][:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        bins /= total * total
        if floor > 0:
            np.maximum(bins[:, 1:], floor / (half * half), out=bins[:, 1:])
        bins[np.broadcast_to(total == 0, bins.shape)] = np.nan
    a_p = pad_valid(upsample_grid(_shi14_alpha(bins, axis=1), rows, cols, (vh, vw)), half)
    a_0 = _shi14_global(g)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (a_p - a_0) / a_0
    return q[:h0, :w0], a_p[:h0, :w0], a_0


# --------------------------------------------------------------------------------------------
# Fitted slope (Liu08 / the Shi14 paper's definition)
# --------------------------------------------------------------------------------------------
def _log_bins(radius: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group integer radii into 0.2-wide bins of log radius; returns (bin of each radius, bin x)."""
    key = round_half_up(np.log(radius) / LOG_BIN)
    keys, inv = np.unique(key, return_inverse=True)
    x = np.bincount(inv, weights=np.log(radius)) / np.bincount(inv)
    return inv, x


def _fit_coefficients(x: np.ndarray) -> np.ndarray:
    """Weights ``c`` with ``slope = c @ y`` for an ordinary least-squares line through ``(x, y)``."""
    d = x - x.mean()
    return d / np.sum(d * d)


def power_spectrum_slope(
    grey: np.ndarray,
    patch: int = 15,
    *,
    floor: float = 1e-12,
    dtype: type = np.complex64,
) -> np.ndarray:
    """Fitted power-spectrum exponent :math:`\\alpha_p` of every patch (:math:`S \\propto f^{-\\alpha}`).

    Parameters
    ----------
    grey : numpy.ndarray
        ``H x W`` grey image.
    patch : int
        Odd patch side :math:`P = 2h + 1`.
    floor : float
        Power floor relative to the patch's DC power: in an exactly flat patch all non-DC power
        is rounding noise; the floor makes the result deterministic (0, as for white noise)
        instead of depending on that noise.
    dtype : type
        ``numpy.complex64`` (default) or ``numpy.complex128`` for the patch spectra.

    Returns
    -------
    numpy.ndarray
        ``H x W`` float64; values at valid positions replicated to the border. About 2 for
        natural sharp texture, larger for blurred patches, 0 for white noise.

    Notes
    -----
    For every patch, :math:`|F(k)|^2` over the half-plane of DFT frequencies, averaged over
    orientations in rings :math:`\\rho = \\operatorname{round}|k|`, :math:`1 \\le \\rho \\le h`
    (DC excluded); ring means averaged in bins of :math:`\\log\\rho` rounded to multiples of 0.2;
    then the least-squares line :math:`\\log S_j = c - \\alpha\\,\\bar x_j` through the bins
    (:math:`\\bar x_j` the mean log radius of bin :math:`j`). The patch is used as it is (no
    window, no mean removal), as both papers describe. On small patches the leakage of the
    patch border adds an :math:`f^{-2}` component, so exponents of steep spectra are biased
    towards 2 (1/f^3 noise gives about 2.6 with 15 x 15 patches).
    """
    patch = check_patch(patch)
    g, (h0, w0) = ensure_size(np.asarray(grey, dtype=np.float64), patch)
    half = patch // 2
    a_freqs = np.arange(-half, half + 1)
    b_freqs = np.arange(half + 1)
    rho = round_half_up(np.hypot(a_freqs[:, None], b_freqs[None, :])).astype(np.int64)
    use = (rho >= 1) & (rho <= half) & ~((b_freqs[None, :] == 0) & (a_freqs[:, None] < 0))
    ring_count = np.bincount(rho[use], minlength=half + 1)
    radius_bin, x = _log_bins(np.arange(1, half + 1, dtype=np.float64))
    rings_per_bin = np.bincount(radius_bin)
    bin_of = np.where(use, radius_bin[np.clip(rho - 1, 0, half - 1)], -1)
    # Mean over the bin's rings of each ring's mean power.
    count = np.where(use, ring_count[np.clip(rho, 0, half)] * rings_per_bin[np.maximum(bin_of, 0)], 1)
    weight = np.where(use, 1.0 / count, 0.0)
    bin_power = _binned_patch_power(g, patch, a_freqs, b_freqs, bin_of, weight, len(x), dtype=dtype)
    total = valid_box_sum(g, patch)
    ref = floor * np.maximum(total * total, 1e-12 * patch**4)  # DC power, at least that of mean 1e-6
    logs = np.log(np.maximum(bin_power.astype(np.float64), ref[:, None, :]))
    alpha = -np.einsum("j,rjc->rc", _fit_coefficients(x), logs)
    return pad_valid(alpha, half)[:h0, :w0]


def global_power_spectrum_slope(grey: np.ndarray, *, floor: float = 1e-12) -> float:
    """The same fitted exponent :math:`\\alpha_0` for the whole image (rings up to half its smaller side)."""
    g = np.asarray(grey, dtype=np.float64)
    rows, cols = g.shape
    spec = np.abs(np.fft.fft2(g)) ** 2
    kr = np.fft.fftfreq(rows) * rows
    kc = np.fft.fftfreq(cols) * cols
    # Put both axes on the same frequency scale (cycles per pixel), radius in units of the
    # smaller side's frequency step.
    n = min(rows, cols)
    rho = round_half_up(np.hypot(kr[:, None] * n / rows, kc[None, :] * n / cols)).astype(np.int64)
    half = n // 2
    keep = (rho >= 1) & (rho <= half)
    ring_sum = np.bincount(rho[keep], weights=spec[keep], minlength=half + 1)[1:]
    ring_cnt = np.bincount(rho[keep], minlength=half + 1)[1:]
    rad = np.arange(1, half + 1, dtype=np.float64)
    ok = ring_cnt > 0
    ring_mean = np.where(ok, ring_sum / np.maximum(ring_cnt, 1), 0.0)
    radius_bin, x = _log_bins(rad)
    sums = np.bincount(radius_bin, weights=ring_mean * ok)
    cnts = np.bincount(radius_bin, weights=ok.astype(np.float64))
    bin_power = sums / np.maximum(cnts, 1)
    tiny = floor * max(float(spec.sum()), np.finfo(np.float64).tiny)
    logs = np.log(np.maximum(bin_power, tiny))
    return float(-_fit_coefficients(x) @ logs)


METHODS = ("shi14", "fit")


def _check_settings(*, patch=15, method="shi14", stride=1) -> None:
    """Raise :class:`~baselines.interface.InputError` for a setting of :func:`spectral_slope` out of range."""
    check_patch(patch, method="spectral_slope")
    check_choice("spectral_slope", "method", method, METHODS)
    check_int("spectral_slope", "stride", stride, minimum=1)


def spectral_slope(rgb: np.ndarray, *, patch: int = 15, method: str = "shi14", stride: int = 1) -> np.ndarray:
    """Blur map from the local power spectrum.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``H x W x 3`` float RGB in ``[0, 1]``.
    patch : int
        Odd patch side.
    method : {"shi14", "fit"}
        ``"shi14"`` (default): the statistic :math:`a_p` of Shi14's released code
        (:func:`shi14_spectrum_feature`); ``"fit"``: the fitted exponent :math:`\\alpha_p`
        (:func:`power_spectrum_slope`).
    stride : int
        Evaluate every ``stride``-th position and interpolate (``"shi14"`` only).

    Returns
    -------
    numpy.ndarray
        ``H x W`` float32 in ``[0, 1]``, 1 = blurred.

    Notes
    -----
    Blur removes high frequencies, so the spectrum of a blurred patch falls off *faster*: a
    larger exponent :math:`\\alpha_p` in :math:`S \\propto f^{-\\alpha}` (a steeper, more
    negative log-log slope :math:`-\\alpha_p`), and a lower mean log power :math:`a_p` of the
    sum-normalised patch. The blur score is therefore

    .. math:: b = \\operatorname{minmax}(-a_p) \\quad\\text{or}\\quad b = \\operatorname{minmax}(q),
              \\; q = (\\alpha_p - \\alpha_0)/\\alpha_0,

    over the image. With ``"shi14"`` the raw :math:`a_p` is used rather than the released
    :math:`(a_p - a_0)/a_0`, whose direction flips with the sign of the whole-image value
    :math:`a_0` (which is close to 0 on some photos, e.g. CUHK out_of_focus0080); undefined
    values (patches summing to 0) count as the most blurred. With ``"fit"``, when
    :math:`\\alpha_0 \\le 0` :math:`\\alpha_p` is used directly; for :math:`\\alpha_0 > 0` the
    min-max normalisation makes both the same.

    ``"shi14"`` is the default because it separates blurred from sharp pixels better on CUHK
    (mean AUC 0.82 on the 12 photos with 15 x 15 patches, against 0.70 for the fitted slope,
    whose small unwindowed patches are dominated by border leakage).
    """
    _check_settings(patch=patch, method=method, stride=stride)
    grey = rgb_to_grey(np.asarray(rgb, dtype=np.float64))
    if method == "shi14":
        a_p = shi14_spectrum_feature(grey, patch, stride=stride)[1]
        finite = np.isfinite(a_p)
        a_p = np.where(finite, a_p, a_p[finite].min() if finite.any() else 0.0)
        q = -a_p
    else:
        alpha = power_spectrum_slope(grey, patch)
        a0 = global_power_spectrum_slope(grey)
        q = (alpha - a0) / a0 if a0 > 0 else alpha
    return mat2gray(q, flat=0.5, tol=1e-12).astype(np.float32)


class SpectralSlope(Detector):
    """Registered detector ``spectral_slope`` (see :func:`spectral_slope`). Not a paper row."""

    name = "spectral_slope"

    def __init__(self, patch: int = 15, method: str = "shi14", stride: int = 1) -> None:
        _check_settings(patch=patch, method=method, stride=stride)
        super().__init__(patch=patch, method=method, stride=stride)

    def compute(self, rgb: np.ndarray) -> np.ndarray:
        return spectral_slope(rgb, **self.settings)
