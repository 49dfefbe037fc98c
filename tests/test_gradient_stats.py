"""Method facts of the local gradient statistics (Liu08 / Shi14): kurtosis and histogram span."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage, stats

from baselines.gradient_stats import (
    GradientStats,
    gradient_histogram_span,
    gradient_stats,
    local_kurtosis,
    scale_mixture_em,
)


def _forward(g):
    dx = np.concatenate([np.diff(g, axis=1), -g[:, -1:]], axis=1)
    dy = np.concatenate([np.diff(g, axis=0), -g[-1:, :]], axis=0)
    return dx, dy


def _em_per_value(x, max_iter=100, tol=1e-3):
    """Plain per-value EM_GMM_2 (the original's arithmetic, one patch at a time)."""
    v1, v2, pi, p_prev, xx = 0.5, 1e-4, 0.5, 1.0, x * x
    for _ in range(max_iter):
        if not abs(p_prev - pi) / p_prev > tol:
            break
        p_prev = pi
        a = pi * np.exp(-xx / (2 * v2)) / np.sqrt(2 * np.pi * v2)
        b = (1 - pi) * np.exp(-xx / (2 * v1)) / np.sqrt(2 * np.pi * v1)
        gam = a / (a + b)
        v1 = np.sum((1 - gam) * xx) / np.sum(1 - gam)
        v2 = np.sum(gam * xx) / np.sum(gam)
        pi = np.mean(gam)
    return max(np.sqrt(v1), np.sqrt(v2))


def test_kurtosis_matches_direct_computation(rng):
    g = rng.random((40, 52))
    p, h = 11, 5
    dx, dy = _forward(g)
    kx = stats.kurtosis(sliding_window_view(dx, (p, p)).reshape(30, 42, -1), axis=-1, fisher=False)
    ky = stats.kurtosis(sliding_window_view(dy, (p, p)).reshape(30, 42, -1), axis=-1, fisher=False)
    expected = np.minimum(np.log(kx), np.log(ky))
    got = local_kurtosis(g, p)
    np.testing.assert_allclose(got[h:-h, h:-h], expected, rtol=0, atol=1e-9)
    # Border: valid values replicated (MATLAB padarray 'replicate').
    np.testing.assert_allclose(got[:h, h:-h], np.repeat(expected[:1], h, axis=0), atol=1e-9)


@pytest.mark.parametrize(
    "noise, kurt",
    [
        ("normal", 3.0),  # difference of two iid normals is normal
        ("uniform", 2.4),  # difference of two iid uniforms is triangular
        ("laplace", 4.5),  # difference of two iid Laplacians: excess 3 / 2
    ],
)
def test_kurtosis_of_known_derivative_distributions(rng, noise, kurt):
    g = getattr(rng, noise)(size=(200, 200))
    q = local_kurtosis(g, 41)
    # min(x, y) of two sample kurtoses of 1681 values is biased low by about 0.03 in log, more
    # for heavy tails.
    tol = 0.06 if noise != "laplace" else 0.15
    assert abs(np.median(q) - np.log(kurt)) < tol


def test_kurtosis_flat_patches_take_the_minimum():
    g = np.zeros((60, 60))
    g[:, 30:] = np.random.default_rng(0).random((60, 30))
    q = local_kurtosis(g, 11)
    assert np.all(np.isfinite(q))
    assert q[30, 5] == pytest.approx(q.min())


def test_em_recovers_the_wide_sigma_of_a_two_scale_mixture():
    rng = np.random.default_rng(3)
    n_fits, n = 50, 4000
    narrow = rng.random((n_fits, n)) < 0.7
    x = np.where(narrow, rng.normal(0, 0.01, (n_fits, n)), rng.normal(0, 0.1, (n_fits, n)))
    y = x * x
    # 64 log bins per fit, as gradient_histogram_span builds them.
    edges = np.exp(np.linspace(np.log(y.min()), np.log(y.max()), 65))[1:-1]
    lab = np.searchsorted(edges, y)
    counts = np.stack([(lab == k).sum(axis=1) for k in range(64)]).astype(np.float64)
    sums = np.stack([np.where(lab == k, y, 0).sum(axis=1) for k in range(64)])
    v1, v2, pi = scale_mixture_em(counts, sums, float(n), max_iter=500, tol=1e-6)
    wide = np.sqrt(np.maximum(v1, v2))
    narrow_sd = np.sqrt(np.minimum(v1, v2))
    assert np.median(wide) == pytest.approx(0.1, rel=0.05)
    assert np.median(narrow_sd) == pytest.approx(0.01, rel=0.1)
    assert np.median(np.where(v2 < v1, pi, 1 - pi)) == pytest.approx(0.7, abs=0.05)


def test_histogram_em_agrees_with_per_value_em():
    rng = np.random.default_rng(5)
    g = ndimage.gaussian_filter(rng.random((48, 56)), 1.0)
    g[:, 28:] = ndimage.gaussian_filter(g[:, 28:], 2.0)
    p = 11
    got = gradient_histogram_span(g, p, bins=64)
    dx, dy = _forward(g)
    mag = np.sqrt(dx * dx + dy * dy)
    rows = range(3, 48 - p + 1 - 3, 5)  # valid positions kept by the 3-pixel crop
    cols = range(3, 56 - p + 1 - 3, 5)
    rel = []
    for r in rows:
        for c in cols:
            ref = _em_per_value(mag[r : r + p, c : c + p].ravel())
            rel.append(abs(got[r + p // 2, c + p // 2] - ref) / ref)
    assert np.median(rel) < 0.01
    assert np.percentile(rel, 90) < 0.05


def test_span_is_lower_on_blurred_texture_and_undefined_on_flat(rng):
    tex = rng.random((80, 80))
    sharp = gradient_histogram_span(tex, 11)
    blurred = gradient_histogram_span(ndimage.gaussian_filter(tex, 2.0), 11)
    assert np.median(blurred) < 0.5 * np.median(sharp)
    flat = gradient_histogram_span(np.full((40, 40), 0.3), 11)
    assert np.all(np.isnan(flat[5:-5, 5:-5]))


def test_span_stride_interpolation_is_close(rng):
    g = ndimage.gaussian_filter(rng.random((90, 100)), 1.5)
    full = gradient_histogram_span(g, 11)
    strided = gradient_histogram_span(g, 11, stride=2)
    assert np.corrcoef(full.ravel(), strided.ravel())[0, 1] > 0.95


def test_small_image_is_padded_not_rejected(rng):
    g = rng.random((16, 16))
    assert local_kurtosis(g, 21).shape == (16, 16)
    assert gradient_histogram_span(g, 21).shape == (16, 16)


def test_detector_scores_the_blurred_half_higher(natural_rgb):
    img = natural_rgb.copy()
    img[:, 80:] = ndimage.gaussian_filter(img[:, 80:], (3, 3, 0))
    for feature in ("span", "kurtosis"):
        out = gradient_stats(img, feature=feature)
        assert out[:, 90:].mean() > out[:, :70].mean()
    out = GradientStats()(img)
    assert out[:, 90:].mean() > out[:, :70].mean() + 0.2


def test_bad_settings():
    with pytest.raises(ValueError, match="odd"):
        GradientStats(patch=10)
    with pytest.raises(ValueError, match="feature"):
        GradientStats(feature="entropy")


def test_out_of_range_settings_fail_with_one_line():
    from baselines.gradient_stats import gradient_stats
    from baselines.interface import InputError

    cases = [
        ({"patch": 10}, "gradient_stats: patch must be an odd integer >= 3, got 10"),
        ({"patch": True}, "gradient_stats: patch must be an odd integer >= 3, got True"),
        ({"bins": 0}, "gradient_stats: bins must be an integer >= 1, got 0"),
        ({"stride": 0}, "gradient_stats: stride must be an integer >= 1, got 0"),  # was silently 1
        ({"feature": "entropy"}, "gradient_stats: feature must be one of 'span', 'kurtosis', got 'entropy'"),
    ]
    for kwargs, message in cases:
        for build in (lambda: GradientStats(**kwargs), lambda: gradient_stats(np.zeros((20, 20, 3)), **kwargs)):
            with pytest.raises(InputError) as info:
                build()
            assert str(info.value) == message
