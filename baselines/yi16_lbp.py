"""Yi & Eramian 2016: defocus blur segmentation from local binary patterns (row "Yi16").

X. Yi and M. Eramian, "LBP-based segmentation of defocus blur", IEEE Transactions on Image
Processing 25(4), pp. 1626-1638, 2016. Authors' code: ``github.com/xinario/defocus_segmentation``
(``demo.m``, ``lbpCode.m``, ``lbpSharpness.m``, ``localSharpScoreLBP.m``, ``solveAlphaC2F.m`` and
Levin's matting files it calls, ``multiScaleBlurInferenceFull.m``, ``loadAdjMatrixFull.m`` and
the UGM loopy belief propagation ``UGM_Infer_LBPC.c``).

Sharp texture produces many local binary patterns whose neighbours clearly exceed the centre;
blur flattens the neighbourhood, so almost no neighbour passes the threshold. The full method

1. codes every pixel with the rotation-invariant uniform LBP (8 neighbours, radius 1, threshold
   :math:`T_{LBP}`),
2. takes the share of codes 6-9 in an ``s x s`` window (``s`` = 11, 15, 21), min-max normalised,
3. turns each map into sharp (> 0.3) and blurred (< 0.01) seeds and spreads them over the image
   with Levin et al.'s closed-form matting (coarse-to-fine, solved at 1/4 resolution),
4. fuses the three matted maps with loopy belief propagation on a three-layer grid graph.

:func:`yi16_sharpness` returns the authors' ``final_map`` (high = sharp); the detector
:class:`Yi16LBP` returns ``1 - final_map`` (1 = blurred).

On the full benchmark (Table III, all 500 D_e photos; figures in ``reports/table3`` and the
README): ODS -0.002, OIS +0.002, AP +0.031 against the paper. The image-averaged PR curve is
within 0.02 of the curve published with the authors' maps (mean recall difference 0.020, mean
precision difference 0.012), and on the 12 reference photos the maps equal the authors' code's
(r = 1.0000000), so the AP difference comes from the maps the paper scored (an earlier version
of the authors' code, or the evaluation of the saturated top levels, where half of the blurred
pixels sit at level 246 or above), not from this implementation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from ._checks import check_bool, check_float, check_int, check_int_sequence, fail
from .interface import Detector, thread_budget
from .matlab import im2double, mat2gray, matlab_round, padarray, rgb_to_grey
from .matting import matting_laplacian, propagate

__all__ = ["Yi16LBP", "fuse_scales", "lbp_riu2", "lbp_sharpness", "matted_sharpness_maps", "yi16_sharpness"]

#: Offset of the diagonal neighbours on the unit circle, ``sqrt(2)/2`` (``interpOff``).
_DIAG = np.sqrt(2.0) / 2.0
#: LBP codes counted as sharp in the window (``lbpmap_patch >= 6``).
_SHARP_CODES = 6
#: Window radius of the matting Laplacian and of the coarse-to-fine linear fits (``win_size``).
_WIN = 1
#: Below this standard deviation the stacked matted maps count as constant (not standardised).
_FLAT_SPREAD = 1e-6


# --------------------------------------------------------------------------------------------
# LBP sharpness (lbpCode.m, lbpSharpness.m)
# --------------------------------------------------------------------------------------------
def lbp_riu2(grey: np.ndarray, threshold: float) -> np.ndarray:
    """Rotation-invariant uniform LBP code (``LBP_{8,1}^{riu2}``) of every pixel.

    Parameters
    ----------
    grey : numpy.ndarray
        ``H x W`` grey image on the 0-255 scale (the authors pass ``uint8``).
    threshold : float
        :math:`T_{LBP}` on the same scale (the authors use ``0.016 * 255``).

    Returns
    -------
    numpy.ndarray
        ``H x W`` int8 codes: 0-8 = number of neighbours above the threshold for uniform
        patterns (at most two 0/1 transitions around the circle), 9 = non-uniform.

    Notes
    -----
    With centre :math:`g_c` and neighbours :math:`g_p`, :math:`p = 0..7` counter-clockwise from
    the right one,

    .. math::

        s_p = [\\lfloor g_p \\rfloor - g_c > T_{LBP}], \\qquad
        U = \\sum_{p=0}^{7} |s_p - s_{p-1}|, \\qquad
        \\mathrm{LBP} = \\begin{cases} \\sum_p s_p & U \\le 2 \\\\ 9 & \\text{else.} \\end{cases}

    The four diagonal neighbours lie at distance 1 and are bilinear interpolations with
    :math:`o = \\sqrt{2}/2`, e.g. :math:`g_1 = (1-o)((1-o) g_c + o\\, g_{right}) +
    o((1-o) g_{above} + o\\, g_{above\\,right})`, floored to integers as in ``lbpCode.m``; the
    image border is replicated.
    """
    img = np.asarray(grey, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"lbp_riu2: expected an H x W grey image, got shape {img.shape}")
    p = padarray(img, 1, "replicate")
    right, left = p[1:-1, 2:], p[1:-1, :-2]
    above, below = p[:-2, 1:-1], p[2:, 1:-1]
    o = _DIAG
    q = 1.0 - o
    # Same expressions (and evaluation order) as lbpCode.m, so flooring sees identical doubles.
    neighbours = (
        right,
        q * (q * img + o * right) + o * (q * above + o * p[:-2, 2:]),
        above,
        q * (q * img + o * left) + o * (q * above + o * p[:-2, :-2]),
        left,
        q * (q * img + o * left) + o * (q * below + o * p[2:, :-2]),
        below,
        q * (q * img + o * right) + o * (q * below + o * p[2:, 2:]),
    )
    bits = [(np.floor(g) - img) > threshold for g in neighbours]
    code = np.zeros(img.shape, dtype=np.int8)
    transitions = np.zeros(img.shape, dtype=np.int8)
    for k in range(8):
        code += bits[k]
        transitions += bits[k] != bits[k - 1]
    code[transitions > 2] = 9
    return code


def lbp_sharpness(grey: np.ndarray, s: int, threshold: float, *, normalise: bool = True) -> np.ndarray:
    """LBP sharpness (paper Eq. 15): share of codes 6-9 in the ``s x s`` window of every pixel.

    Parameters
    ----------
    grey : numpy.ndarray
        ``H x W`` grey image, 0-255 scale.
    s : int
        Odd window side.
    threshold : float
        :math:`T_{LBP}` on the 0-255 scale.
    normalise : bool
        Min-max normalise the map over the image, as ``lbpSharpness.m`` does (default).

    Returns
    -------
    numpy.ndarray
        ``H x W`` float64 in ``[0, 1]``, high = sharp.

    Notes
    -----
    .. math:: m_{LBP}(x) = \\frac{1}{s^2} \\sum_{y \\in W_s(x)} [\\mathrm{LBP}(y) \\ge 6]

    with the code map replicated beyond the border (``padarray(..., 'replicate')``), computed
    with a summed-area table (exact integer counts).
    """
    return _window_share(lbp_riu2(grey, threshold), s, normalise=normalise)


def _window_share(codes: np.ndarray, s: int, *, normalise: bool = True) -> np.ndarray:
    """Share of sharp codes (>= 6) in every ``s x s`` window, code map replicated at the border."""
    s = int(s)
    if s < 1 or s % 2 == 0:
        raise ValueError(f"lbp_sharpness: the window side must be a positive odd integer, got {s}")
    r = (s - 1) // 2
    sharp = padarray((codes >= _SHARP_CODES).astype(np.float64), r, "replicate")
    c = np.zeros((sharp.shape[0] + 1, sharp.shape[1] + 1))
    c[1:, 1:] = sharp.cumsum(0).cumsum(1)
    count = c[s:, s:] - c[:-s, s:] - c[s:, :-s] + c[:-s, :-s]
    out = count / float(s * s)
    # normPatch, (x - min) / max(x - min), is mat2gray; a constant map becomes all zeros
    return mat2gray(out) if normalise else out


# --------------------------------------------------------------------------------------------
# Coarse-to-fine matting (localSharpScoreLBP.m -> Levin's solveAlphaC2F.m)
# --------------------------------------------------------------------------------------------
def _down(img: np.ndarray) -> np.ndarray:
    """``downSmpIm(I, 2)``: [1 4 6 4 1]/16 binomial filter, keep rows/columns 2, 4, ... (0-based).

    Only output samples whose filter support lies inside the image are kept (``2:2:end-2``), so
    the zero padding of MATLAB's ``conv2(..., 'same')`` never enters.
    """
    f = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
    h, w = img.shape[:2]
    nh, nw = (h - 5) // 2 + 1, (w - 5) // 2 + 1
    rows = sum(f[t] * img[t : t + 2 * nh - 1 : 2] for t in range(5))
    return sum(f[t] * rows[:, t : t + 2 * nw - 1 : 2] for t in range(5))


def _up1d(img: np.ndarray, big: int, axis: int) -> np.ndarray:
    """``upSmpIm`` along one axis (default [1 2 1]/2 filter): from ``n`` to ``big`` samples.

    ``upSmpIm`` puts the coarse samples at every second fine position starting at
    ``lo = floor((big - 2n + 1)/2)`` (0-based; the inverse placement of :func:`_down`),
    replicates the first and last one outwards and fills the zeros in between with the filter,
    then crops its 1-sample margin. The result is exact linear interpolation: sample ``k`` at
    ``lo + 2k``, the mean of samples ``k`` and ``k + 1`` at ``lo + 2k + 1``, and copies of the
    end samples beyond.
    """
    x = np.moveaxis(img, axis, 0)
    n = x.shape[0]
    lo = (big - 2 * n + 1) // 2
    if lo < 0 or lo + 2 * n - 1 > big:
        raise ValueError(f"_up: cannot place {n} samples on {big}")
    out = np.empty((big,) + x.shape[1:])
    out[lo : lo + 2 * n - 1 : 2] = x
    mid = out[lo + 1 : lo + 2 * n - 2 : 2]
    np.add(x[:-1], x[1:], out=mid)
    mid *= 0.5
    out[:lo] = x[0]
    out[lo + 2 * n - 1 :] = x[-1]
    return np.moveaxis(out, 0, axis)


def _up(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``upSmpIm(I, [H W])``: separable linear interpolation back to the finer level."""
    return _up1d(_up1d(img, shape[0], 0), shape[1], 1)


def _inv3_sym(m: np.ndarray) -> np.ndarray:
    """Inverse of stacked symmetric positive definite 3 x 3 matrices (adjugate / determinant)."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 1], m[..., 1, 2], m[..., 2, 2]
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    out = np.stack([c00, c01, c02, c01, c11, c12, c02, c12, c22], axis=-1) / det[..., None]
    return out.reshape(m.shape)


class _Guide:
    """Window statistics of one pyramid level, for the linear fits of ``getLinearCoeff.m``.

    For every interior ``3 x 3`` window: mean colour :math:`\\mu`, centred colours and
    :math:`(\\Sigma + \\varepsilon/9\\, U)^{-1}`. They depend on the image only, so the three
    scales share them.
    """

    def __init__(self, img: np.ndarray, eps: float) -> None:
        h, w, c = img.shape
        side = 2 * _WIN + 1
        self.hc, self.wc = h - 2 * _WIN, w - 2 * _WIN
        self.pos = [(dy, dx) for dy in range(side) for dx in range(side)]
        wins = [img[dy : dy + self.hc, dx : dx + self.wc] for dy, dx in self.pos]
        n = float(len(wins))
        self.mu = sum(wins) / n
        self.dev = [x - self.mu for x in wins]
        cov = np.einsum("khwi,khwj->hwij", np.asarray(self.dev), np.asarray(self.dev)) / n
        cov += (eps / n) * np.eye(c)
        self.inv = _inv3_sym(cov) if c == 3 else np.linalg.inv(cov)

    def coefficients(self, alpha: np.ndarray) -> np.ndarray:
        """``getLinearCoeff``: per-pixel ``[a_R, a_G, a_B, b]`` with ``alpha ~ a . I + b`` in the window.

        Ridge least squares in every interior window,
        :math:`a = (\\Sigma + \\varepsilon/9\\, U)^{-1} \\operatorname{cov}(I, \\alpha)`,
        :math:`b = \\bar\\alpha - a \\cdot \\mu`; border pixels copy the nearest interior row, then
        column.
        """
        wins = [alpha[dy : dy + self.hc, dx : dx + self.wc] for dy, dx in self.pos]
        n = float(len(wins))
        mean_a = sum(wins) / n
        cross = sum(d * (a - mean_a)[..., None] for d, a in zip(self.dev, wins)) / n
        a = np.einsum("hwij,hwj->hwi", self.inv, cross)
        b = mean_a - np.einsum("hwi,hwi->hw", a, self.mu)
        coeff = np.concatenate([a, b[..., None]], axis=2)
        return padarray(coeff, _WIN, "replicate")


def _pyramid_levels(shape: tuple[int, int], levels: int) -> int:
    """Levels actually used: fewer than asked when a coarser image would have no 3 x 3 window."""
    h, w = shape
    used = 1
    while used < levels:
        h, w = (h - 5) // 2 + 1, (w - 5) // 2 + 1
        if min(h, w) < 2 * _WIN + 1:
            break
        used += 1
    return used


def _matte(
    images: list[np.ndarray],
    guides: list[_Guide | None],
    known: np.ndarray,
    values: np.ndarray,
    *,
    eps: float,
    lam: float,
) -> np.ndarray | None:
    """Alpha matte from constraints, coarse-to-fine as ``solveAlphaC2F(I, map, vals, levels, 1)``.

    ``images[0]`` is the photo in ``[0, 1]``, ``images[k]`` its ``k``-th :func:`_down`;
    ``known`` / ``values`` the full-size constraint map (0/1) and values. Both are downsampled and
    rounded level by level, the matting system is solved only at the coarsest level
    (``active_levels_num = 1``), and the matte is brought back up with the image-guided linear
    fits (``upSampleAlphaUsingImg``). Returns None when no constraint survives at the coarsest
    level.
    """
    both = np.stack([known, values], axis=2)
    for _ in images[1:]:
        both = matlab_round(_down(both))
    known, values = both[..., 0], both[..., 1]
    if not np.any(known > 0):
        return None
    lap = matting_laplacian(images[-1], eps=eps, radius=_WIN, known=known > 0)
    alpha = propagate(lap, known, values, lam).reshape(known.shape)
    alpha = np.clip(alpha, 0.0, 1.0)  # solveAlpha.m
    for level in range(len(images) - 1, 0, -1):
        coeff = _up(guides[level].coefficients(alpha), images[level - 1].shape[:2])
        alpha = coeff[..., -1] + np.einsum("hwc,hwc->hw", coeff[..., :-1], images[level - 1])
    return np.clip(alpha, 0.0, 1.0)  # localSharpScoreLBP.m


# --------------------------------------------------------------------------------------------
# Multi-scale fusion by loopy belief propagation (multiScaleBlurInferenceFull.m, UGM)
# --------------------------------------------------------------------------------------------
class _LayeredGrid:
    """Index bookkeeping of the ``n``-layer 4-connected grid graph, split into red/black nodes.

    Node ``(l, i, j)`` has colour ``c = (i + j + l) % 2``; every edge joins the two colours, so
    updating all red nodes, then all black ones, is a valid sequential (Gauss-Seidel) schedule.
    Node arrays are stored as ``[c, l, i % 2, i // 2, j // 2]`` (the column parity follows from
    ``c``, ``l`` and ``i % 2``), on a grid padded to even size; padding nodes only ever send
    neutral messages. Messages are stored by sender: ``msgs[k, c, l, pi, a, b]`` is the message
    node ``(c, l, pi, a, b)`` sends in direction ``k``.
    """

    #: Directions: 0 up, 1 down, 2 left, 3 right, 4 previous layer, 5 next layer.
    OPPOSITE = (1, 0, 3, 2, 5, 4)

    def __init__(self, n_layers: int, h: int, w: int) -> None:
        self.n, self.h, self.w = n_layers, h, w
        self.hh, self.wh = (h + 1) // 2, (w + 1) // 2
        # links[c][pi][k]: (receiver index, sender index) pairs, the receivers being the colour-c
        # nodes on rows of parity pi, the senders their neighbours in direction k (colour 1 - c).
        self.links = [[[self._pairs(c, pi, k) for k in range(6)] for pi in (0, 1)] for c in (0, 1)]

    @staticmethod
    def col_parity(c: int, layer: int, pi: int) -> int:
        return (c + layer + pi) % 2

    def _pairs(self, c: int, pi: int, k: int) -> list[tuple[tuple, tuple]]:
        all_, head, tail = slice(None), slice(1, None), slice(None, -1)
        if k == 0:  # neighbour (i - 1, j): other row parity; block row a - 1 for even rows
            return [((all_, 1, all_, all_), (all_, 0, all_, all_))] if pi else [((all_, 0, head, all_), (all_, 1, tail, all_))]
        if k == 1:  # neighbour (i + 1, j)
            return [((all_, 0, all_, all_), (all_, 1, all_, all_))] if not pi else [((all_, 1, tail, all_), (all_, 0, head, all_))]
        if k in (2, 3):  # neighbour (i, j -/+ 1): the block column shift depends on j % 2
            pairs = []
            for layer in range(self.n):
                pj = self.col_parity(c, layer, pi)
                if (k == 2) == (pj == 1):
                    pairs.append(((layer, pi, all_, all_), (layer, pi, all_, all_)))
                elif k == 2:
                    pairs.append(((layer, pi, all_, head), (layer, pi, all_, tail)))
                else:
                    pairs.append(((layer, pi, all_, tail), (layer, pi, all_, head)))
            return pairs
        if self.n == 1:
            return []
        if k == 4:  # same pixel, previous layer
            return [((head, pi, all_, all_), (tail, pi, all_, all_))]
        return [((tail, pi, all_, all_), (head, pi, all_, all_))]

    def split(self, maps: np.ndarray, fill: float) -> np.ndarray:
        """``n x H x W`` -> ``2 x n x 2 x H/2 x W/2`` colour-major layout."""
        n, h, w = maps.shape
        pad = np.full((n, 2 * self.hh, 2 * self.wh), fill)
        pad[:, :h, :w] = maps
        pad = pad.reshape(n, self.hh, 2, self.wh, 2)
        out = np.empty((2, n, 2, self.hh, self.wh))
        for c in (0, 1):
            for layer in range(n):
                for pi in (0, 1):
                    out[c, layer, pi] = pad[layer, :, pi, :, self.col_parity(c, layer, pi)]
        return out

    def merge_layer(self, parts: Sequence[np.ndarray], layer: int) -> np.ndarray:
        """Inverse of :meth:`split` for one layer: ``parts[c]`` is ``2 x H/2 x W/2``."""
        out = np.empty((self.hh, 2, self.wh, 2))
        for c in (0, 1):
            for pi in (0, 1):
                out[:, pi, :, self.col_parity(c, layer, pi)] = parts[c][pi]
        return out.reshape(2 * self.hh, 2 * self.wh)[: self.h, : self.w]

    def neutralise_padding(self, msgs: np.ndarray, c: int, pi: int) -> None:
        """Keep messages from padding nodes, and from real nodes into padding, at 1."""
        if self.h % 2:  # the padding row is i = h: odd parity, last block row
            if pi == 1:
                msgs[:, :, 1, -1, :] = 1.0
            else:
                msgs[1, :, 0, -1, :] = 1.0
        if self.w % 2:  # the padding column is j = w: odd parity, last block column
            for layer in range(self.n):
                if self.col_parity(c, layer, pi) == 1:
                    msgs[:, layer, pi, :, -1] = 1.0
                else:
                    msgs[3, layer, pi, :, -1] = 1.0

    def belief_ratio(self, phi: np.ndarray, msgs: np.ndarray, c: int, pi: int, out: np.ndarray) -> None:
        """``out[:, pi]`` = potential ratio times all incoming message ratios (colour ``c``)."""
        np.copyto(out[:, pi], phi[c][:, pi])
        for k in range(6):
            src = msgs[self.OPPOSITE[k], 1 - c]
            for dst, s in self.links[c][pi][k]:
                out[dst] *= src[s]

    def send(self, msgs_in: np.ndarray, msgs_out: np.ndarray, c: int, pi: int, d: float, bufs: tuple) -> None:
        """Messages out of the colour-``c`` nodes on rows of parity ``pi`` (sum-product, ratios).

        ``bufs`` holds the belief ratio (already filled by :meth:`belief_ratio`), ``d`` times it,
        and two scratch arrays, all of node-array shape ``n x 2 x H/2 x W/2``.
        """
        ratio, d_ratio, num, den = bufs
        np.multiply(ratio[:, pi], d, out=d_ratio[:, pi])
        out = msgs_out[:, c]
        for k in range(6):
            src = msgs_in[self.OPPOSITE[k], 1 - c]
            for dst, s in self.links[c][pi][k]:
                rho = src[s]
                nm, dn = num[dst], den[dst]
                np.multiply(rho, d, out=nm)
                nm += ratio[dst]
                np.add(rho, d_ratio[dst], out=dn)
                np.divide(nm, dn, out=out[k][dst])
        self.neutralise_padding(out, c, pi)


def _workers() -> int:
    return thread_budget(cap=2)


def _converged(new: np.ndarray, old: np.ndarray, tol: float, d: float, buf: np.ndarray) -> bool:
    """UGM's test ``sum(abs(newMsgs - oldMsgs)) < tol`` over both states of every message.

    With ratios, a message's change summed over its two normalised states is
    :math:`2 |\\rho - \\rho'| / ((1 + \\rho)(1 + \\rho'))`, and :math:`\\rho \\in [d, 1/d]`
    brackets it between ``lo`` and ``hi`` times :math:`|\\rho - \\rho'|`. The sum is built one
    block of messages at a time and stops as soon as the answer is certain, so a sweep far from
    convergence costs one block; the exact sum is only needed when the bracket straddles ``tol``.
    """
    lo, hi = 2.0 / (1.0 + 1.0 / d) ** 2, 2.0 / (1.0 + d) ** 2
    blocks = [(k, c) for c in (0, 1) for k in range(new.shape[0])]
    total = 0.0
    for k, c in blocks:
        np.subtract(new[k, c], old[k, c], out=buf)
        np.abs(buf, out=buf)
        total += float(buf.sum())
        if total * lo >= tol:
            return False
    if total * hi < tol:
        return True
    exact = 0.0
    for k, c in blocks:
        a, b = new[k, c], old[k, c]
        np.subtract(a, b, out=buf)
        np.abs(buf, out=buf)
        buf /= 1.0 + a
        buf /= 1.0 + b
        exact += 2.0 * float(buf.sum())
        if exact >= tol:
            return False
    return True


def fuse_scales(
    maps: Sequence[np.ndarray], *, alpha: float = 0.5, max_iter: int = 100, tol: float = 1e-4
) -> tuple[np.ndarray, int]:
    """Fuse per-scale sharpness maps by loopy belief propagation (paper Eq. 19).

    Parameters
    ----------
    maps : sequence of numpy.ndarray
        ``H x W`` sharpness maps, finest window first (the authors' ``scale1, scale2, scale3``).
    alpha : float
        Pairwise weight: neighbouring nodes with different labels cost :math:`e^{-\\alpha}`.
    max_iter, tol : int, float
        Stop after ``max_iter`` sweeps, or when the summed absolute change of all normalised
        messages in a sweep drops below ``tol`` (UGM's ``UGM_Infer_LBPC`` rule and defaults).

    Returns
    -------
    belief : numpy.ndarray
        ``H x W`` float64 belief that the nodes of the LAST map (largest window) are in the
        sharp state, i.e. the authors' ``final_map``.
    sweeps : int
        Sweeps run.

    Notes
    -----
    The graph (``loadAdjMatrixFull.m``) has one layer per scale, in the order last map first,
    each a 4-connected grid, plus an edge between the same pixel in consecutive layers. With
    :math:`x` all map values standardised together (mean 0, sample standard deviation 1; left as
    they are when they are numerically constant), the
    node potentials are :math:`\\phi(\\text{sharp}) = e^{-|1 - x|}`,
    :math:`\\phi(\\text{blurred}) = e^{-|x|}`, and the edge potentials 1 for equal labels and
    :math:`d = e^{-\\alpha}` otherwise. Sum-product messages are kept as ratios
    :math:`\\rho = m(\\text{sharp}) / m(\\text{blurred})`; the message from node :math:`n` to
    :math:`m` is

    .. math::

        \\rho_{n \\to m} = \\frac{R_n + d\\, \\rho_{m \\to n}}{d\\, R_n + \\rho_{m \\to n}},
        \\qquad R_n = \\frac{\\phi_n(\\text{sharp})}{\\phi_n(\\text{blurred})}
        \\prod_{k \\in N(n)} \\rho_{k \\to n},

    and the belief is :math:`R_n / (1 + R_n)`. Messages start uniform. UGM updates nodes one by
    one in index order; here all nodes of one colour of a red/black colouring are updated at
    once (in two threads), then the other colour: also a sequential schedule, with the same
    fixed points. A sweep's change :math:`\\sum |\\Delta m|` over both states of every message
    is :math:`2 \\sum |\\Delta\\rho| / ((1 + \\rho)(1 + \\rho'))`; since
    :math:`\\rho \\in [d, 1/d]`, partial sums of :math:`|\\Delta\\rho|` bracket it and the exact
    sum is only computed when the bracket straddles ``tol``. Memory: two message buffers of
    ``6 n`` doubles per pixel each (about 230 MB for three maps of 1024 x 768).
    """
    if len(maps) == 0:
        raise ValueError("fuse_scales: need at least one map")
    stack = np.stack([np.asarray(m, dtype=np.float64) for m in maps[::-1]])
    if stack.ndim != 3:
        raise ValueError(f"fuse_scales: maps must be H x W arrays of one size, got {stack.shape}")
    n, h, w = stack.shape
    sd = stack.std(ddof=1) if stack.size > 1 else 0.0
    # Numerically constant maps (UGM_standardizeCols would divide by ~0) are used as they are.
    z = (stack - stack.mean()) / sd if sd > _FLAT_SPREAD else stack
    grid = _LayeredGrid(n, h, w)
    phi = grid.split(np.exp(np.abs(z) - np.abs(1.0 - z)), 1.0)
    d = float(np.exp(-alpha))
    shape = (6, 2, n, 2, grid.hh, grid.wh)
    msgs = [np.ones(shape), np.ones(shape)]
    scratch = tuple(np.empty(phi.shape[1:]) for _ in range(4))
    pool = ThreadPoolExecutor(_workers()) if _workers() > 1 else None

    def half_sweep(src: np.ndarray, dst: np.ndarray, c: int) -> None:
        def part(pi: int) -> None:
            grid.belief_ratio(phi, src, c, pi, scratch[0])
            grid.send(src, dst, c, pi, d, scratch)

        if pool is None:
            part(0)
            part(1)
        else:
            list(pool.map(part, (0, 1)))

    old, new = 0, 1
    sweeps = 0
    try:
        for sweeps in range(1, int(max_iter) + 1):
            # Colour 0 reads colour 1's messages of the previous sweep, colour 1 the fresh ones.
            half_sweep(msgs[old], msgs[new], 0)
            half_sweep(msgs[new], msgs[new], 1)
            converged = _converged(msgs[new], msgs[old], tol, d, scratch[2])
            old, new = new, old
            if converged:
                break
    finally:
        if pool is not None:
            pool.shutdown()
    parts = []
    for c in (0, 1):
        ratio = np.empty(phi.shape[1:])
        for pi in (0, 1):
            grid.belief_ratio(phi, msgs[old], c, pi, ratio)
        parts.append(ratio[0] / (1.0 + ratio[0]))
    return grid.merge_layer(parts, 0), sweeps


# --------------------------------------------------------------------------------------------
# The method
# --------------------------------------------------------------------------------------------
def _check_settings(
    *,
    scales=(11, 15, 21),
    t_lbp=0.016,
    t_sharp=0.3,
    t_blur=0.01,
    alpha=0.5,
    eps=1e-7,
    lam=100.0,
    levels=3,
    max_iter=100,
    tol=1e-4,
    return_scales=False,
) -> None:
    """Raise :class:`~baselines.interface.InputError` for a setting of :func:`yi16_sharpness` out of range."""
    who = "yi16_lbp"
    check_int_sequence(who, "scales", scales, minimum=1, odd=True)
    check_float(who, "t_lbp", t_lbp, minimum=0, maximum=1)
    t_sharp = check_float(who, "t_sharp", t_sharp, minimum=0, maximum=1)
    t_blur = check_float(who, "t_blur", t_blur, minimum=0, maximum=1)
    if t_blur > t_sharp:
        raise fail(who, "t_blur", f"<= t_sharp ({t_sharp:g})", t_blur)
    check_float(who, "alpha", alpha, minimum=0)
    check_float(who, "eps", eps, minimum=0, min_open=True)
    check_float(who, "lam", lam, minimum=0, min_open=True)
    check_int(who, "levels", levels, minimum=1)
    check_int(who, "max_iter", max_iter, minimum=1)
    check_float(who, "tol", tol, minimum=0)
    check_bool(who, "return_scales", return_scales)


def matted_sharpness_maps(
    rgb: np.ndarray,
    *,
    scales: Sequence[int] = (11, 15, 21),
    t_lbp: float = 0.016,
    t_sharp: float = 0.3,
    t_blur: float = 0.01,
    eps: float = 1e-7,
    lam: float = 100.0,
    levels: int = 3,
) -> list[np.ndarray]:
    """Per-scale matted LBP sharpness (``localSharpScoreLBP.m``, the authors' ``feature.scale*``).

    Parameters
    ----------
    rgb : numpy.ndarray
        ``H x W x 3`` float RGB in ``[0, 1]`` (quantised to 8 bits, as the authors read JPEGs).
    scales : sequence of int
        Window sides ``s`` of the LBP sharpness, finest first (``s1, s2, s3``).
    t_lbp : float
        :math:`T_{LBP}` as a fraction of 255 (``blurSensitivity``).
    t_sharp, t_blur : float
        Seed thresholds :math:`T_{m1}` (sharp: normalised sharpness above) and :math:`T_{m2}`
        (blurred: below).
    eps, lam : float
        Matting regulariser :math:`\\varepsilon` (``getLaplacian1.m``) and seed weight
        :math:`\\lambda` (``solveAlpha.m``).
    levels : int
        Pyramid levels of the coarse-to-fine matting (``levels_num``); the system is solved at
        the coarsest.

    Returns
    -------
    list of numpy.ndarray
        One ``H x W`` float64 map in ``[0, 1]`` per scale, high = sharp.

    Notes
    -----
    Per scale ``s``: :math:`m = ` :func:`lbp_sharpness` (grey levels by MATLAB's ``rgb2gray`` of
    the 8-bit photo); seeds are sharp where :math:`m > T_{m1}` and blurred where
    :math:`1 - m > 1 - T_{m2}` (paper Eq. 21). Seeds are painted white / black into the photo
    :math:`I`; the pixels the painting changed are constrained (value 1 sharp, 0 blurred).
    Levin's ``solveAlphaC2F`` with 3 levels and 1 active level downsamples photo and constraints
    twice (binomial filter, constraints rounded) and solves

    .. math:: (L + \\lambda D)\\,\\alpha = \\lambda D v

    at 1/4 resolution only, :math:`L` the matting Laplacian of the coarse photo (3 x 3 windows,
    :math:`\\varepsilon = 10^{-7}`), :math:`D` the constrained pixels, :math:`\\lambda = 100`.
    The matte is clipped to ``[0, 1]`` and brought back to full size twice by fitting
    :math:`\\alpha \\approx a^\\top I + b` in every 3 x 3 window of the coarser level,
    interpolating :math:`(a, b)` linearly and applying them to the finer photo; the result is
    clipped to ``[0, 1]``.
    """
    _check_settings(scales=scales, t_lbp=t_lbp, t_sharp=t_sharp, t_blur=t_blur, eps=eps, lam=lam, levels=levels)
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"yi16_lbp: expected an H x W x 3 RGB image, got shape {rgb.shape}")
    scales = [int(s) for s in scales]
    levels8 = np.round(rgb.astype(np.float64) * 255.0)  # the 8-bit photo the authors read
    img = im2double(levels8.astype(np.uint8))
    grey = matlab_round(rgb_to_grey(levels8))  # rgb2gray of uint8: rounded grey levels
    n_levels = _pyramid_levels(img.shape[:2], int(levels))
    images = [img]
    for _ in range(n_levels - 1):
        images.append(_down(images[-1]))
    guides: list[_Guide | None] = [None] + [_Guide(im, eps) for im in images[1:]]
    codes = lbp_riu2(grey, t_lbp * 255.0)
    # Painting a seed white (sharp) or black (blurred) constrains it only where that changes the
    # pixel: sum(abs(I - mI), 3) > 0.001 in localSharpScoreLBP.m.
    not_white = np.abs(img - 1.0).sum(axis=2) > 0.001
    not_black = np.abs(img).sum(axis=2) > 0.001
    matted = []
    for s in scales:
        sharp = _window_share(codes, s)
        # im2bw(normPatch(lbp), T_m1) and im2bw(1 - normPatch(lbp), 1 - T_m2); normPatch of an
        # already normalised map is the identity.
        sharp_seed = (sharp > t_sharp) & not_white
        blur_seed = ((1.0 - sharp) > (1.0 - t_blur)) & not_black
        known = (sharp_seed | blur_seed).astype(np.float64)
        alpha_map = _matte(images, guides, known, sharp_seed.astype(np.float64), eps=eps, lam=lam)
        matted.append(sharp if alpha_map is None else alpha_map)
    return matted


def yi16_sharpness(
    rgb: np.ndarray,
    *,
    scales: Sequence[int] = (11, 15, 21),
    t_lbp: float = 0.016,
    t_sharp: float = 0.3,
    t_blur: float = 0.01,
    alpha: float = 0.5,
    eps: float = 1e-7,
    lam: float = 100.0,
    levels: int = 3,
    max_iter: int = 100,
    tol: float = 1e-4,
    return_scales: bool = False,
):
    """Yi & Eramian's LBP defocus sharpness map, full method (``demo.m``).

    Parameters
    ----------
    rgb : numpy.ndarray
        ``H x W x 3`` float RGB in ``[0, 1]`` (quantised to 8 bits, as the authors read JPEGs).
    scales, t_lbp, t_sharp, t_blur, eps, lam, levels
        Per-scale maps, see :func:`matted_sharpness_maps` (defaults: the authors' ``demo.m``).
    alpha : float
        Pairwise weight of the belief propagation (``alphaval``).
    max_iter, tol : int, float
        Belief propagation stopping rule (see :func:`fuse_scales`).
    return_scales : bool
        Also return the matted sharpness map of every scale.

    Returns
    -------
    final : numpy.ndarray
        ``H x W`` float64 in ``(0, 1)``, **high = sharp** (the authors' ``final_map``).
    per_scale : list of numpy.ndarray
        Only with ``return_scales``: the matted maps (``feature.scale1..3``), in ``[0, 1]``.

    Notes
    -----
    :func:`matted_sharpness_maps` followed by :func:`fuse_scales`, whose output is the belief of
    the largest-window layer.

    Departures
    ----------
    * The sharp seed value is exactly 1. The original takes ``rgb2gray`` of the white painted
      pixels, which is ``1 - 9e-16`` in MATLAB (exactly 1 in Octave, which made the reference
      outputs); at coarse pixels exactly half covered by seeds MATLAB's rounding then turns a
      sharp constraint into a blurred one. With MATLAB's value, 6 of the 12 reference photos
      change in whole regions of some scale (final map r = 0.967 on motion0138 instead of
      1.000). The LBP grey levels use MATLAB's ``rgb2gray`` weights (Octave's are
      rounded to 6 digits; no difference on the reference photos).
    * Belief propagation updates nodes by a red/black colouring (in two threads) instead of
      UGM's node-index order: same fixed points, maps agree with the authors' to about 1e-6 when
      both converge (1e-2 on a photo where neither converges in 100 sweeps).
    * Degenerate inputs, where the original divides by zero or fails: a constant LBP map is
      normalised to zeros; a scale whose seeds all vanish at the coarsest level keeps its
      unmatted LBP map; matted maps without spread (standard deviation below 1e-6: all sharp or
      all blurred) are not standardised but used as they are; images with a side below 21 px
      use fewer pyramid levels (each level needs a 3 x 3 window).
    """
    _check_settings(
        scales=scales,
        t_lbp=t_lbp,
        t_sharp=t_sharp,
        t_blur=t_blur,
        alpha=alpha,
        eps=eps,
        lam=lam,
        levels=levels,
        max_iter=max_iter,
        tol=tol,
        return_scales=return_scales,
    )
    matted = matted_sharpness_maps(
        rgb, scales=scales, t_lbp=t_lbp, t_sharp=t_sharp, t_blur=t_blur, eps=eps, lam=lam, levels=levels
    )
    final, _ = fuse_scales(matted, alpha=alpha, max_iter=max_iter, tol=tol)
    return (final, matted) if return_scales else final


class Yi16LBP(Detector):
    """Registered detector ``yi16_lbp``: ``1 - final_map`` of :func:`yi16_sharpness` (1 = blurred).

    Settings are the authors' ``demo.m`` parameters (window sides, :math:`T_{LBP}`, seed
    thresholds, belief propagation weight); the departures from their code are listed in
    :func:`yi16_sharpness`.
    """

    name = "yi16_lbp"
    version = "2"  # the matting Laplacian now sums windows directly (maps may move by ~1e-6)

    def __init__(
        self,
        scales: Sequence[int] = (11, 15, 21),
        t_lbp: float = 0.016,
        t_sharp: float = 0.3,
        t_blur: float = 0.01,
        alpha: float = 0.5,
    ) -> None:
        _check_settings(scales=scales, t_lbp=t_lbp, t_sharp=t_sharp, t_blur=t_blur, alpha=alpha)
        super().__init__(scales=tuple(int(s) for s in scales), t_lbp=t_lbp, t_sharp=t_sharp, t_blur=t_blur, alpha=alpha)

    def compute(self, rgb: np.ndarray) -> np.ndarray:
        return (1.0 - yi16_sharpness(rgb, **self.settings)).astype(np.float32)
