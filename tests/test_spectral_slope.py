"""Method facts of the local power spectrum features (Liu08 fitted slope, Shi14 released statistic)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from baselines.spectral_slope import (
    SpectralSlope,
    global_power_spectrum_slope,
    power_spectrum_slope,
    shi14_spectrum_feature,
    spectral_slope,
)


def _shi14_statistic_per_patch(patch: np.ndarray) -> float:
    """``LocalPowerSpectrumSlope``'s per-patch value, written out literally with one FFT per patch."""
    p = patch.shape[0]
    h = (p - 1) // 2
    x = patch / patch.sum()
    s = np.abs(np.fft.fft2(x))[:h, :h] ** 2 / h / h
    v, u = np.meshgrid(np.arange(1, h + 1), np.arange(1, h + 1), indexing="ij")
    f = np.floor(np.hypot(u, v) + 0.5)
    rings = np.unique(f)
    sf = np.array([s[f == c].mean() for c in rings])  # calculateSf (MEX: mean)
    log_c = np.log(rings)
    c_new = np.unique(np.floor(log_c / 0.2 + 0.5) * 0.2)
    data = np.zeros(len(c_new))
    idx = -1
    for i in range(len(rings)):  # rearrange
        if idx + 1 < len(c_new) and log_c[i] >= c_new[idx + 1]:
            idx += 1
        data[idx] += sf[i]
    logs = np.log(data[:-1])
    return float(np.mean(logs[np.isfinite(logs)]))


def _power_law_noise(n: int, exponent: float, seed: int) -> np.ndarray:
    """Gaussian noise with power spectrum 1/f^exponent, scaled to [0, 1]."""
    rng = np.random.default_rng(seed)
    f = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    f[0, 0] = 1.0
    spec = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) * f ** (-exponent / 2)
    spec[0, 0] = 0
    img = np.real(np.fft.ifft2(spec))
    return (img - img.min()) / (img.max() - img.min())


@pytest.mark.parametrize("p", [11, 15, 21])
def test_shi14_statistic_matches_per_patch_fft(rng, p):
    g = ndimage.gaussian_filter(rng.random((36, 44)), 0.7) + 0.1
    _, a_p, _ = shi14_spectrum_feature(g, p, dtype=np.complex128, floor=0)
    h = p // 2
    for r, c in [(h, h), (h + 3, h + 7), (35 - h, 43 - h), (17, 21)]:
        expected = _shi14_statistic_per_patch(g[r - h : r + h + 1, c - h : c + h + 1])
        assert a_p[r, c] == pytest.approx(expected, abs=1e-9)
    # Single precision (the default) agrees to ~1e-5 on textured content.
    _, a32, _ = shi14_spectrum_feature(g, p)
    np.testing.assert_allclose(a32, a_p, atol=1e-4)


def test_shi14_global_normalisation_and_odd_sizes(rng):
    g = rng.random((70, 90))  # the original's bin assignment overruns on this size
    q, a_p, a_0 = shi14_spectrum_feature(g, 11)
    np.testing.assert_allclose(q, (a_p - a_0) / a_0)
    assert np.isfinite(a_0)


def test_shi14_statistic_is_lower_on_blurred_texture(rng):
    tex = rng.random((80, 80))
    _, sharp, _ = shi14_spectrum_feature(tex, 15)
    _, blurred, _ = shi14_spectrum_feature(ndimage.gaussian_filter(tex, 2.0), 15)
    assert np.median(blurred) < np.median(sharp) - 1.0


def test_shi14_stride_interpolates(natural_rgb):
    g = natural_rgb.mean(axis=2).astype(np.float64)
    _, full, _ = shi14_spectrum_feature(g, 11)
    _, strided, _ = shi14_spectrum_feature(g, 11, stride=2)
    # Exact at the evaluated positions, interpolated in between (smooth on a photo).
    np.testing.assert_allclose(strided[5:-5:2, 5:-5:2], full[5:-5:2, 5:-5:2], atol=1e-4)
    assert np.corrcoef(full.ravel(), strided.ravel())[0, 1] > 0.98


@pytest.fixture(scope="module")
def power_law_images():
    return {a: _power_law_noise(192, a, seed=int(10 * a)) for a in (0.0, 1.0, 2.0, 3.0)}


def test_fitted_slope_recovers_power_law_exponent(power_law_images):
    medians = {}
    for a, img in power_law_images.items():
        medians[a] = float(np.median(power_spectrum_slope(img, 21)))
        assert global_power_spectrum_slope(img) == pytest.approx(a, abs=0.15)
    assert medians[0.0] == pytest.approx(0.0, abs=0.1)
    assert medians[1.0] == pytest.approx(1.0, abs=0.2)
    assert medians[2.0] == pytest.approx(2.0, abs=0.25)
    # Border leakage (no window, as in the papers) pulls steep spectra towards 2.
    assert 2.3 < medians[3.0] < 3.0
    assert medians[0.0] < medians[1.0] < medians[2.0] < medians[3.0]


def test_blur_steepens_the_fitted_slope(power_law_images):
    img = power_law_images[1.0]
    sharp = np.median(power_spectrum_slope(img, 15))
    blurred = np.median(power_spectrum_slope(ndimage.gaussian_filter(img, 1.5), 15))
    assert blurred > sharp + 1.0


def test_flat_patches_are_deterministic():
    g = np.full((40, 40), 0.5)
    g[:, 20:] = np.random.default_rng(1).random((40, 20))
    alpha = power_spectrum_slope(g, 11)
    assert np.all(np.isfinite(alpha))
    assert alpha[20, 5] == pytest.approx(0.0, abs=1e-6)  # floored flat spectrum
    _, a_p, _ = shi14_spectrum_feature(g, 11)
    assert a_p[20, 5] < a_p[20, 34] - 5  # flat: lowest values


@pytest.mark.parametrize("method, margin", [("shi14", 0.1), ("fit", 0.02)])
def test_detector_scores_the_blurred_half_higher(natural_rgb, method, margin):
    img = natural_rgb.copy()
    img[:, 80:] = ndimage.gaussian_filter(img[:, 80:], (3, 3, 0))
    out = spectral_slope(img, method=method)
    # The fitted slope of small unwindowed patches is a weak cue (border leakage), hence the
    # small margin.
    assert out[:, 95:].mean() > out[:, :65].mean() + margin


def test_bad_settings():
    with pytest.raises(ValueError, match="method"):
        SpectralSlope(method="welch")
    with pytest.raises(ValueError, match="odd"):
        SpectralSlope(patch=8)


def test_out_of_range_settings_fail_with_one_line():
    from baselines.interface import InputError
    from baselines.spectral_slope import spectral_slope

    cases = [
        ({"patch": 1}, "spectral_slope: patch must be an odd integer >= 3, got 1"),
        ({"stride": 0}, "spectral_slope: stride must be an integer >= 1, got 0"),  # was every pixel
        ({"method": "welch"}, "spectral_slope: method must be one of 'shi14', 'fit', got 'welch'"),
    ]
    for kwargs, message in cases:
        for build in (lambda: SpectralSlope(**kwargs), lambda: spectral_slope(np.zeros((20, 20, 3)), **kwargs)):
            with pytest.raises(InputError) as info:
                build()
            assert str(info.value) == message
