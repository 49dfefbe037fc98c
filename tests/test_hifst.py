"""HiFST (Golestaneh & Karam 2017): pieces checked against direct computations, and method facts.

The fast transform (separable matrix products, even/odd folding, blocked frequencies, partial sort)
is checked pixel by pixel against the literal definition: the orthonormal DCT ``D P D^T`` of every
zero-padded patch, the coefficients MATLAB's ``FreqBands`` leaves at 0, sorted.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from baselines import hifst as hf
from baselines.hifst import HiFST, hifst_sharpness, high_frequency_mask, local_entropy, recursive_filter
from baselines.interface import InputError
from baselines.matlab import dctmtx


# --------------------------------------------------------------------------------- references
def _freq_bands(m: int) -> np.ndarray:
    """MATLAB ``FreqBands(m)`` of HiFST.m, transcribed loop for loop (1-based ranges)."""
    idx = np.zeros((m, m), int)
    half = (m - 1) // 2
    for i in range(1, m + 1):
        hi = half - i + 2
        if hi >= 1:
            idx[0:hi, i - 1] = 1
    for i in range(1, m + 1):
        if m - half - i + 1 <= 0:
            if m - i >= 1:
                idx[0 : m - i, i - 1] = 2
        else:
            idx[m - half - i : m - i, i - 1] = 2
    idx[0, 0] = 3
    return idx


def _dctmtx(m: int) -> np.ndarray:
    """``dctmtx(m)`` from its formula."""
    k, x = np.indices((m, m))
    d = np.sqrt(2.0 / m) * np.cos(np.pi * (2 * x + 1) * k / (2 * m))
    d[0] /= np.sqrt(2.0)
    return d


def _layers_direct(grad: np.ndarray, scales, n_layers: int) -> np.ndarray:
    pad = max(scales) // 2
    gp = np.pad(grad, pad)
    h, w = grad.shape
    out = np.empty((h, w, n_layers))
    for r in range(h):
        for c in range(w):
            values = []
            for m in scales:
                half = m // 2
                patch = gp[r + pad - half : r + pad + half + 1, c + pad - half : c + pad + half + 1]
                d = _dctmtx(m)
                coef = np.abs(d @ patch @ d.T)
                values.append(coef[_freq_bands(m) == 0])
            out[r, c] = np.sort(np.concatenate(values))[:n_layers]
    return out


def _entropy_direct(u8: np.ndarray, size: int) -> np.ndarray:
    r = size // 2
    windows = sliding_window_view(np.pad(u8, r, mode="symmetric"), (size, size))
    out = np.empty(u8.shape)
    for i in range(u8.shape[0]):
        for j in range(u8.shape[1]):
            _, counts = np.unique(windows[i, j], return_counts=True)
            p = counts / counts.sum()
            out[i, j] = -(p * np.log2(p)).sum()
    return out


def _rf_direct(img, sigma_s, sigma_r, n, joint):
    """Gastal & Oliveira's RF.m, scalar loops, one grey joint channel."""
    f = img.astype(np.float64).copy()
    h, w = f.shape
    dx = np.zeros((h, w))
    dy = np.zeros((h, w))
    dx[:, 1:] = np.abs(np.diff(joint, axis=1))
    dy[1:, :] = np.abs(np.diff(joint, axis=0))
    dhdx = 1 + sigma_s / sigma_r * dx
    dvdy = 1 + sigma_s / sigma_r * dy
    for i in range(n):
        sigma = sigma_s * np.sqrt(3) * 2 ** (n - (i + 1)) / np.sqrt(4**n - 1)
        a = np.exp(-np.sqrt(2) / sigma)
        for y in range(h):
            for x in range(1, w):
                f[y, x] += a ** dhdx[y, x] * (f[y, x - 1] - f[y, x])
            for x in range(w - 2, -1, -1):
                f[y, x] += a ** dhdx[y, x + 1] * (f[y, x + 1] - f[y, x])
        for x in range(w):
            for y in range(1, h):
                f[y, x] += a ** dvdy[y, x] * (f[y - 1, x] - f[y, x])
            for y in range(h - 2, -1, -1):
                f[y, x] += a ** dvdy[y + 1, x] * (f[y + 1, x] - f[y, x])
    return f


def _texture(rng, shape, sigma=0.7):
    import cv2

    noise = rng.random(shape + (3,)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), sigma), 0, 1)


def _blur(rgb, sigma):
    import cv2

    return cv2.GaussianBlur(rgb, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


# ------------------------------------------------------------------------------- the pieces
@pytest.mark.parametrize("m", [3, 7, 15, 31, 63])
def test_mask_is_matlab_freqbands_zero(m):
    mask = high_frequency_mask(m)
    np.testing.assert_array_equal(mask, _freq_bands(m) == 0)
    assert mask.sum() == m * (m + 1) // 2


def test_mask_counts_and_layers():
    assert sum(high_frequency_mask(m).sum() for m in hf.DEFAULT_SCALES) == 2660
    assert sum(hf.DEFAULT_SCALES) + 1 == 117
    np.testing.assert_array_equal(
        high_frequency_mask(3), [[False, False, True], [False, True, True], [True, True, True]]
    )
    with pytest.raises(ValueError):
        high_frequency_mask(8)


def test_dct_matrix_is_dctmtx():
    for m in (7, 63):
        np.testing.assert_allclose(dctmtx(m), _dctmtx(m), atol=1e-12)


@pytest.mark.parametrize(
    ("scales", "n_layers", "precision"),
    [((7, 15, 31, 63), 117, "float64"), ((7, 15, 31, 63), 117, "float32"), ((3, 5, 9), 18, "float64")],
)
def test_sorted_layers_match_direct_dct_of_every_patch(rng, scales, n_layers, precision):
    grad = rng.random((13, 17)) * 300.0
    grad[4:8, 5:11] = 0.0  # a flat area: exact zeros must stay the smallest values
    dtype = np.float64 if precision == "float64" else np.float32
    ours = hf._sorted_layers(grad, scales, n_layers, dtype, workers=1)
    ref = _layers_direct(grad, scales, n_layers)
    atol = 1e-9 if precision == "float64" else 2e-3
    np.testing.assert_allclose(ours, ref, atol=atol, rtol=0)


def test_sorted_layers_tiling_and_threads_do_not_change_results(rng, monkeypatch):
    grad = rng.random((9, 50)) * 255.0
    one = hf._sorted_layers(grad, (7, 15), 23, np.float64, workers=1)
    two = hf._sorted_layers(grad, (7, 15), 23, np.float64, workers=2)
    np.testing.assert_array_equal(one, two)
    monkeypatch.setattr(hf, "_TILE_PIXELS", 16)  # several tiles per row, ragged last tile
    np.testing.assert_allclose(hf._sorted_layers(grad, (7, 15), 23, np.float64, workers=2), one, atol=1e-9)


def test_float32_results_do_not_depend_on_workers(rng):
    """Products big enough for OpenBLAS to thread them, whose threaded kernels round differently."""
    grad = rng.random((4, 300)).astype(np.float32) * 255.0
    runs = [hf._sorted_layers(grad, hf.DEFAULT_SCALES, 117, np.float32, workers=w) for w in (1, 2, 1, 2)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run, runs[0])


def test_strided_layers_are_the_full_layers_subsampled(rng):
    """HiFST.m's ``Slid``: the loop visits every s-th pixel of every s-th row, nothing else changes."""
    grad = rng.random((23, 31)) * 200.0
    full = hf._sorted_layers(grad, hf.DEFAULT_SCALES, 117, np.float64, workers=1)
    for s in (2, 3, 5):
        # equal up to BLAS rounding (AVX-512 kernels block the DCT products differently by size)
        np.testing.assert_allclose(hf._sorted_layers(grad, hf.DEFAULT_SCALES, 117, np.float64, 2, s), full[::s, ::s],
                                   rtol=1e-12, atol=1e-10)


def test_strided_mode_approximates_the_full_map(rng):
    sharp = _texture(rng, (96, 160))
    img = sharp.copy()
    img[:, 80:] = _blur(sharp, 3.0)[:, 80:]
    full = hifst_sharpness(img)
    fast, t, d = hifst_sharpness(img, stride=2, return_intermediates=True)
    assert fast.shape == full.shape and t.shape == d.shape == (48, 80)
    assert np.corrcoef(fast.ravel(), full.ravel())[0, 1] > 0.95
    blur = HiFST(stride=2)(img)
    assert blur[:, 96:152].mean() - blur[:, 8:64].mean() > 0.4
    with pytest.raises(ValueError, match="stride"):
        hifst_sharpness(img, stride=0)


def test_entropy_filter_matches_direct_histograms(rng):
    for shape in [(9, 11), (20, 7), (3, 4)]:
        u8 = (rng.random(shape) ** 3 * 30).astype(np.uint8)
        np.testing.assert_allclose(local_entropy(u8, 7), _entropy_direct(u8, 7), atol=1e-12)
    u8 = rng.integers(0, 256, (12, 14)).astype(np.uint8)
    np.testing.assert_allclose(local_entropy(u8, 5), _entropy_direct(u8, 5), atol=1e-12)


def test_entropy_filter_threads_do_not_change_results(rng):
    u8 = (rng.random((40, 57)) * 60).astype(np.uint8)
    np.testing.assert_array_equal(local_entropy(u8, 7, workers=2), local_entropy(u8, 7, workers=1))


def test_entropy_filter_known_values():
    assert np.all(local_entropy(np.full((10, 10), 7, np.uint8)) == 0)
    checker = (np.indices((15, 15)).sum(axis=0) % 2).astype(np.uint8)
    # a 7 x 7 window of a checkerboard holds 25 of one level and 24 of the other
    p = np.array([25, 24]) / 49
    np.testing.assert_allclose(local_entropy(checker)[7, 7], -(p * np.log2(p)).sum(), atol=1e-12)
    # 49 distinct values: log2(49) bits
    distinct = np.arange(49, dtype=np.uint8).reshape(7, 7)
    assert local_entropy(distinct)[3, 3] == pytest.approx(np.log2(49))
    with pytest.raises(ValueError):
        local_entropy(np.zeros((4, 4)))


def test_recursive_filter_matches_scalar_loops(rng):
    img = rng.random((6, 9))
    joint = rng.random((6, 9))
    for sigma_s, sigma_r, n in ((15, 0.25, 3), (5, 2.0, 2)):
        ours = recursive_filter(img, sigma_s, sigma_r, n, joint)
        np.testing.assert_allclose(ours, _rf_direct(img, sigma_s, sigma_r, n, joint), atol=1e-12)


def test_recursive_filter_preserves_constants_and_edges():
    flat = np.full((20, 30), 0.3)
    np.testing.assert_allclose(recursive_filter(flat, 15, 0.25, 3), flat, atol=1e-12)
    step = np.zeros((20, 30))
    step[:, 15:] = 1.0
    out = recursive_filter(step, 15, 0.25, 3, step)
    assert out[:, :15].max() < 0.01 and out[:, 15:].min() > 0.99  # the guide's edge stops smoothing
    smooth = recursive_filter(step, 15, 0.25, 3, np.zeros_like(step))
    # no edge in the guide: the step is smoothed into a monotone ramp
    assert 0.3 < smooth[10, 14] < smooth[10, 15] < 0.7
    assert np.all(np.diff(smooth[10]) > 0)


# ------------------------------------------------------------------------------ method facts
def test_blurred_half_scores_blurred(rng):
    sharp = _texture(rng, (96, 160))
    img = sharp.copy()
    img[:, 80:] = _blur(sharp, 3.0)[:, 80:]
    blur = HiFST()(img)
    assert blur[:, 8:64].mean() < 0.4
    assert blur[:, 96:152].mean() > 0.8
    sharpness = hifst_sharpness(img)
    assert sharpness[:, 8:64].mean() > 5 * sharpness[:, 96:152].mean()


def test_sharpness_decreases_with_blur(rng):
    sharp = _texture(rng, (72, 216))
    img = np.concatenate([_blur(sharp, s)[:, i * 72 : (i + 1) * 72] for i, s in enumerate((0.5, 1.5, 3.0))], axis=1)
    sharpness = hifst_sharpness(img)
    means = [sharpness[8:-8, i * 72 + 12 : (i + 1) * 72 - 12].mean() for i in range(3)]
    assert means[0] > means[1] > means[2]


def test_transpose_equivariance_of_t_and_d(natural_rgb):
    img = natural_rgb[:40, :56]
    _, t, d = hifst_sharpness(img, precision="float64", return_intermediates=True)
    flipped = np.ascontiguousarray(img.transpose(1, 0, 2))
    _, tt, dt = hifst_sharpness(flipped, precision="float64", return_intermediates=True)
    np.testing.assert_allclose(tt, t.T, atol=1e-6)
    np.testing.assert_allclose(dt, d.T, atol=1e-5)


def test_float32_agrees_with_float64(natural_rgb):
    img = natural_rgb[:64, :80]
    f32, t32, _ = hifst_sharpness(img, return_intermediates=True)
    f64, t64, _ = hifst_sharpness(img, precision="float64", return_intermediates=True)
    assert np.abs(t32 - t64).max() < 2e-3
    assert np.corrcoef(f32.ravel(), f64.ravel())[0, 1] > 0.9999


def test_intermediates_ranges(natural_rgb):
    final, t, d = hifst_sharpness(natural_rgb[:64, :80], return_intermediates=True)
    assert final.dtype == np.float32 and final.shape == (64, 80)
    assert t.min() >= 0 and t.max() == pytest.approx(1.0)
    assert d.min() >= 0 and d.max() <= np.log2(49) + 1e-6
    assert final.min() >= 0 and final.max() <= d.max() + 1e-6  # RF is a convex combination


def test_flat_image_is_blurred_everywhere():
    flat = np.full((40, 50, 3), 0.4, np.float32)
    assert np.all(hifst_sharpness(flat) == 0)
    assert np.all(HiFST()(flat) == 1)


def test_input_quantised_to_8_bits(natural_rgb):
    img = natural_rgb[:48, :64]
    u8 = np.round(img * 255) / 255
    np.testing.assert_array_equal(hifst_sharpness(img + 0.3 / 255 * (img < 0.99)), hifst_sharpness(u8))


def test_bad_settings():
    img = np.zeros((20, 20, 3), np.float32)
    with pytest.raises(ValueError, match="odd"):
        hifst_sharpness(img, scales=(8, 16))
    with pytest.raises(ValueError, match="n_layers"):
        hifst_sharpness(img, scales=(3,), n_layers=7)
    with pytest.raises(ValueError, match="precision"):
        hifst_sharpness(img, precision="half")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stride": 0}, "hifst: stride must be an integer >= 1, got 0"),
        ({"stride": 1.5}, "hifst: stride must be an integer >= 1, got 1.5"),
        ({"stride": True}, "hifst: stride must be an integer >= 1, got True"),
        ({"scales": (7, 8)}, "hifst: scales must be a non-empty sequence of odd integers >= 3, got (7, 8)"),
        ({"scales": ()}, "hifst: scales must be a non-empty sequence of odd integers >= 3, got ()"),
        ({"precision": "half"}, "hifst: precision must be one of 'float32', 'float64', got 'half'"),
    ],
)
def test_detector_settings_fail_at_construction(kwargs, message):
    """HiFST(...) rejects bad settings itself, with one line naming method, setting and range."""
    with pytest.raises(InputError) as info:
        HiFST(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "kwargs, setting",
    [
        ({"n_layers": 0}, "n_layers"),
        ({"scales": (3,), "n_layers": 7}, "n_layers"),  # only 6 coefficients are kept at M = 3
        ({"entropy_size": 8}, "entropy_size"),
        ({"entropy_size": 17}, "entropy_size"),  # 17 x 17 windows overflow the uint8 counts
        ({"sigma_s": float("nan")}, "sigma_s"),
        ({"sigma_r": 0.0}, "sigma_r"),
        ({"rf_iterations": 0}, "rf_iterations"),
        ({"workers": 0}, "workers"),
        ({"return_intermediates": 1}, "return_intermediates"),
    ],
)
def test_function_settings_fail_before_work(kwargs, setting):
    with pytest.raises(InputError, match=rf"^hifst: {setting} must be "):
        hifst_sharpness(np.zeros((20, 20, 3), np.float32), **kwargs)


def test_transform_sets_every_loaded_openblas_to_one_thread():
    """cvxopt (Zhuo11's solver) loads its own OpenBLAS; numpy's must still be the one held at one thread."""
    pytest.importorskip("cvxopt")
    import cvxopt.cholmod  # noqa: F401  (loads cvxopt's BLAS)

    with hf._OpenBLAS.single_threaded():
        api = hf._OpenBLAS._api
        assert api is not None and len(api) >= 2, "numpy's and cvxopt's OpenBLAS should both be found"
        assert all(getter() == 1 for _, getter in api)
    assert [getter() for _, getter in api] == hf._OpenBLAS._saved  # restored afterwards
