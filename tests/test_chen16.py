"""Method facts for Chen, Chen & Chang 2016 (fast defocus map, superpixel propagation).

No reference output exists (the authors' SLIC is a Windows-only binary), so these tests pin
what the paper and code state: the edge estimate is a known monotone function of the Gaussian
blur, superpixels take the median of at least 10 estimates, the graph propagation is a
row-normalised weighted average, and a more blurred region scores higher.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.special import erf

from baselines.chen16 import Chen16, _superpixel_medians, chen16_defocus, superpixel_propagation


def _estimate_to_sigma(est: np.ndarray) -> np.ndarray:
    """Invert Chen's s = s2 / sqrt(R^2 - 1) with R^2 = (sigma^2 + s2^2) / (sigma^2 + s1^2)."""
    s1, s2 = 1.0, 1.5
    with np.errstate(divide="ignore", invalid="ignore"):  # -1 = "no value" entries give NaN
        r2 = 1.0 + (s2 / est) ** 2
        return np.sqrt((s2**2 - r2 * s1**2) / (r2 - 1.0))


def _two_blur_image(sig_left: float, sig_right: float, shape=(96, 128), seed: int = 0) -> np.ndarray:
    """Random 8 x 8 grey blocks; left half blurred by sig_left, right half by sig_right."""
    rng = np.random.default_rng(seed)
    h, w = shape
    blocks = rng.uniform(0.15, 0.85, (h // 8, w // 8)).repeat(8, axis=0).repeat(8, axis=1)
    left = ndimage.gaussian_filter(blocks, sig_left, mode="nearest")
    right = ndimage.gaussian_filter(blocks, sig_right, mode="nearest")
    grey = np.where(np.arange(w)[None, :] < w // 2, left, right)
    return np.repeat(grey[:, :, None], 3, axis=2)


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 3.0])
def test_step_edge_blur_recovered_within_10_percent(sigma):
    """At a step centred on a pixel, the edge estimate inverts to the true sigma."""
    h, w = 40, 96
    x = np.arange(w, dtype=np.float64)
    grey = 0.2 + 0.6 * 0.5 * (1 + erf((x - 48.0) / (sigma * np.sqrt(2))))
    rgb = np.repeat(np.repeat(grey[None, :], h, axis=0)[:, :, None], 3, axis=2)
    res = chen16_defocus(rgb, labels=np.zeros((h, w), int))
    est = res.sparse[5:-5, 48]
    assert np.all(est > 0)
    np.testing.assert_allclose(_estimate_to_sigma(est), sigma, rtol=0.1)


def test_two_regions_sharper_scores_lower():
    rgb = _two_blur_image(1.0, 2.5)
    res = chen16_defocus(rgb)
    half = rgb.shape[1] // 2
    left, right = res.full[:, : half - 8], res.full[:, half + 8 :]
    assert np.median(left) < np.median(right)
    assert res.full.min() == 0.0 and res.full.max() == 1.0
    # The per-superpixel medians, inverted, sit near the true blurs (Gaussian filtering of
    # 8-pixel blocks is not an isolated step, hence the looser tolerance).
    cols = np.array([np.mean(np.nonzero(res.labels == k)[1]) for k in range(res.labels.max() + 1)])
    valid = res.seeds > 0
    sig = _estimate_to_sigma(res.seeds)
    assert abs(np.median(sig[valid & (cols < half - 8)]) - 1.0) < 0.25
    assert abs(np.median(sig[valid & (cols > half + 8)]) - 2.5) < 0.5


def test_superpixel_medians_follow_matlab():
    labels = np.repeat(np.arange(3), 12).reshape(3, 12)
    values = np.arange(36, dtype=float).reshape(3, 12)
    mask = np.ones_like(values, bool)
    mask[1, 3:] = False  # superpixel 1 keeps only 3 values: too few
    mask[2, 0] = False  # superpixel 2 keeps 11 values: odd count
    out = _superpixel_medians(labels, values, mask, 3, 10)
    np.testing.assert_array_equal(out, [np.median(values[0]), -1.0, np.median(values[2, 1:])])
    assert out[0] == 5.5  # even count: mean of the two middle values


def test_propagation_is_a_normalised_average():
    rng = np.random.default_rng(2)
    rgb = rng.random((40, 40, 3))
    labels = (np.arange(40)[:, None] // 10) * 4 + np.arange(40)[None, :] // 10  # 16 squares
    seeds = np.full(16, -1.0)
    seeds[5] = 2.0
    np.testing.assert_allclose(superpixel_propagation(rgb, labels, seeds), 2.0)
    seeds[10] = 4.0
    out = superpixel_propagation(rgb, labels, seeds)
    assert np.all(out >= 2.0 - 1e-9) and np.all(out <= 4.0 + 1e-9)
    assert out[5] < out[10]
    assert np.all(np.isnan(superpixel_propagation(rgb, labels, np.full(16, -1.0))))


def test_no_usable_superpixel_gives_zero_map():
    out = Chen16()(np.full((32, 32, 3), 0.4, np.float32))
    assert np.all(out == 0)


def test_given_labels_and_edges_are_used():
    rgb = _two_blur_image(1.0, 2.0, shape=(64, 64))
    labels = np.repeat(np.arange(4), 16)[None, :].repeat(64, axis=0)  # four vertical bands
    res = chen16_defocus(rgb, labels=labels)
    assert res.labels.max() == 3 and len(res.seeds) == 4
    assert len(np.unique(res.full)) <= 4
    res = chen16_defocus(rgb, edge_map=np.zeros((64, 64)), labels=labels)
    assert np.all(res.sparse == 0) and np.all(res.full == 0)
    with pytest.raises(ValueError, match="labels"):
        chen16_defocus(rgb, labels=np.zeros((3, 3), int))


def test_slic_gives_about_200_superpixels(natural_rgb):
    res = chen16_defocus(natural_rgb.astype(np.float64))
    assert 120 <= res.labels.max() + 1 <= 260


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": 0.0}, "chen16: alpha must be a finite number in (0, 1], got 0.0"),  # singular system
        ({"alpha": 1.5}, "chen16: alpha must be a finite number in (0, 1], got 1.5"),
        ({"beta": -60.0}, "chen16: beta must be a finite number >= 0, got -60.0"),
        ({"std": 0}, "chen16: std must be a finite number > 0, got 0"),
        ({"n_segments": 0}, "chen16: n_segments must be an integer >= 1, got 0"),
        ({"compactness": float("inf")}, "chen16: compactness must be a finite number > 0, got inf"),
    ],
)
def test_out_of_range_settings(kwargs, message):
    from baselines.interface import InputError

    with pytest.raises(InputError) as info:
        Chen16(**kwargs)
    assert str(info.value) == message
    with pytest.raises(InputError) as info:
        chen16_defocus(np.zeros((20, 20, 3)), **kwargs)
    assert str(info.value) == message


def test_min_seeds_checked():
    from baselines.interface import InputError

    with pytest.raises(InputError, match=r"^chen16: min_seeds must be an integer >= 1, got 0$"):
        chen16_defocus(np.zeros((20, 20, 3)), min_seeds=0)
