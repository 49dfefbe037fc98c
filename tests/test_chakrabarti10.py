"""Method facts for the Chakrabarti et al. 2010 reconstruction (``baselines.chakrabarti10``)."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from baselines.chakrabarti10 import (
    Chakrabarti10,
    _graph_cut,
    box_log_likelihoods,
    box_power_gain,
    chakrabarti10,
    directional_spectra,
    estimate_noise_sigma,
    windowed_gains,
)
from baselines.interface import InputError, rgb_to_grey


def _photo() -> np.ndarray:
    """A photo that is sharp everywhere (scikit-image's rocket, 256 x 256 centre crop)."""
    from skimage import data

    return np.ascontiguousarray(data.rocket()[85:341, 192:448].astype(np.float64) / 255.0)


def _box(img: np.ndarray, length: int, direction: str) -> np.ndarray:
    kernel = np.ones((1, length)) if direction == "horizontal" else np.ones((length, 1))
    return cv2.filter2D(img, -1, kernel / length, borderType=cv2.BORDER_REFLECT)


def _q8(img: np.ndarray) -> np.ndarray:
    return np.round(img * 255) / 255


def test_box_power_gain():
    g = box_power_gain([1, 4, 6], 48)
    np.testing.assert_allclose(g[0], 1.0)
    np.testing.assert_allclose(g[:, 0], 1.0)
    # zeros of a length-L box at multiples of 2 pi / L: bins 12 and 24 for L = 4, 8 and 16 for L = 6
    np.testing.assert_allclose(g[1, [12, 24]], 0.0, atol=1e-20)
    np.testing.assert_allclose(g[2, [8, 16, 24]], 0.0, atol=1e-20)
    assert np.all(np.diff(g[1, :12]) < 0)


@pytest.mark.parametrize("direction", ["horizontal", "vertical", "diagonal", "antidiagonal"])
def test_spectra_of_white_noise(rng, direction):
    """White noise of variance s^2: through the Hann taper ``w`` the derivative along the motion has
    expected power 2 s^2 (1 - rho cos w), rho = sum(w_n w_n+1) / sum(w_n^2), the one across it a
    flat 2 s^2; ``windowed_gains`` predicts the former."""
    s = 0.05
    noise = rng.normal(0.0, s, (200, 200))
    along, across = directional_spectra(noise, direction, window=32, stride=8)
    taper = np.hanning(34)[1:-1]
    rho = np.sum(taper[1:] * taper[:-1]) / np.sum(taper**2)
    expected = 2 * s**2 * (1 - rho * np.cos(2 * np.pi * np.arange(17) / 32))
    np.testing.assert_allclose(windowed_gains([1], 32)[1] * s**2, expected, rtol=1e-9, atol=1e-12)
    inner = (slice(4, -4), slice(4, -4))
    got_along, got_across = along[inner].mean(axis=(0, 1)), across[inner].mean(axis=(0, 1))
    # DC and Nyquist are real coefficients (half the degrees of freedom): looser tolerance
    np.testing.assert_allclose(got_along[1:-1], expected[1:-1], rtol=0.1)
    np.testing.assert_allclose(got_along[[0, -1]], expected[[0, -1]], rtol=0.25)
    np.testing.assert_allclose(got_across[1:-1], 2 * s**2, rtol=0.1)
    np.testing.assert_allclose(got_across[[0, -1]], 2 * s**2, rtol=0.25)


def test_windowed_gains_of_boxes():
    """Leakage-smeared box spectra: no blur is flat (a white signal stays white), and a box still
    removes most of the power at its zeros."""
    g, _ = windowed_gains([1, 6], 48)
    np.testing.assert_allclose(g[0], 1.0, rtol=1e-9)
    assert np.all(g[1, [8, 16]] < 0.02) and g[1, 0] > 0.9


@pytest.mark.parametrize("direction, length", [("horizontal", 9), ("vertical", 6), ("horizontal", 1)])
def test_likelihood_peaks_at_the_true_length(direction, length):
    grey = rgb_to_grey(_photo())
    img = _q8(_box(grey, length, direction) if length > 1 else grey)
    along, across = directional_spectra(img, direction, window=48, stride=8)
    lengths = np.arange(1, 17)  # up to a third of the window (see chakrabarti10's notes)
    ll = box_log_likelihoods(along, across, lengths, noise_sigma=estimate_noise_sigma(img), window=48)
    best = int(lengths[np.argmax(ll.sum(axis=(0, 1)))])
    if length == 1:
        assert best <= 2
    else:
        assert abs(best - length) <= 1, best


def test_graph_cut_is_exact(rng):
    for _ in range(20):
        c0, c1 = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
        wh, wv = rng.random((3, 3)), rng.random((2, 4))

        def energy(lab):
            return np.where(lab, c1, c0).sum() + (wh * (lab[:, 1:] != lab[:, :-1])).sum() + (
                wv * (lab[1:] != lab[:-1])
            ).sum()

        best = min(energy(np.array(b).reshape(3, 4)) for b in itertools.product([False, True], repeat=12))
        assert energy(_graph_cut(c0, c1, wh, wv)) <= best + 1e-3


def test_motion_blurred_region_is_detected():
    """A disk motion-blurred by a horizontal 9-pixel box: the kernel is recovered and the region
    segmented."""
    rgb = _photo()
    yy, xx = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
    inside = (xx - 128) ** 2 + (yy - 120) ** 2 < 75**2
    img = _q8(np.where(inside[..., None], _box(rgb, 9, "horizontal"), rgb)).astype(np.float32)
    blur_map, info = chakrabarti10(img, return_details=True)
    assert info["direction"] == "horizontal"
    assert abs(info["length"] - 9) <= 1
    core = ((xx - 128) ** 2 + (yy - 120) ** 2 < 55**2)
    out = ((xx - 128) ** 2 + (yy - 120) ** 2 > 100**2)
    assert blur_map[core].mean() > 0.7
    assert blur_map[out].mean() < 0.35
    assert Chakrabarti10()(img).shape == img.shape[:2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"min_length": 1}, "min_length must be an integer >= 2"),
        ({"max_length": 64}, r"max_length must be shorter than the window \(64\), got 64"),
        ({"max_length": 2, "min_length": 3}, r"max_length must be an integer >= 3, got 2"),
        ({"directions": ()}, "directions must be a non-empty sequence of 'horizontal'"),
        ({"directions": ("sideways",)}, "directions must be a non-empty sequence of"),
        ({"window": 3}, "window must be an integer >= 4"),
        ({"stride": 0}, "stride must be an integer >= 1"),
        ({"noise_sigma": -0.1}, "noise_sigma must be None or a finite number >= 0"),
        ({"noise_sigma": float("inf")}, "noise_sigma must be None or a finite number >= 0"),
        ({"smoothness": float("nan")}, "smoothness must be a finite number >= 0"),
        ({"colour_weight": -1.0}, "colour_weight must be a finite number >= 0"),
        ({"colour_components": 0}, "colour_components must be an integer >= 1"),
        ({"iterations": 0}, "iterations must be an integer >= 1"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(InputError, match="^chakrabarti10: " + match):
        chakrabarti10(np.random.default_rng(0).random((40, 40, 3)), **kwargs)
    with pytest.raises(InputError, match="^chakrabarti10: " + match):
        Chakrabarti10(**kwargs)
