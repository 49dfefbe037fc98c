"""Method facts for the Tang et al. 2016 reconstruction (``baselines.tang16``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from baselines.interface import rgb_to_grey
from baselines.tang16 import Tang16, log_averaged_spectrum_residual, tang16


def _photo() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.coffee()[72:328, 172:428].astype(np.float64) / 255.0)


def _blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([ndimage.gaussian_filter(rgb[..., c], sigma) for c in range(3)], axis=-1)


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    s = score.ravel()
    m = positive.ravel()
    ranks = np.empty(s.size)
    ranks[np.argsort(s, kind="stable")] = np.arange(s.size)
    n_pos = m.sum()
    return float((ranks[m].sum() - n_pos * (n_pos - 1) / 2) / (n_pos * (m.size - n_pos)))


@pytest.fixture(scope="module")
def composite():
    """A sharp photo whose background (outside a disk) is Gaussian-blurred, 8-bit rounded."""
    rgb = _photo()
    yy, xx = np.mgrid[: rgb.shape[0], : rgb.shape[1]]
    blurred = (xx - 130) ** 2 + (yy - 120) ** 2 > 80**2
    out = np.where(blurred[..., None], _blur(rgb, 3.0), rgb)
    return (np.round(out * 255) / 255).astype(np.float32), blurred


def test_blurred_region_is_detected(composite):
    rgb, blurred = composite
    coarse = tang16(rgb, refine=False)
    fine = Tang16()(rgb)
    for blur_map in (coarse, fine):
        assert blur_map[blurred].mean() > blur_map[~blurred].mean() + 0.15
    assert _auc(coarse, blurred) > 0.85
    assert _auc(fine, blurred) > 0.93  # the refinement helps here (coarse about 0.88)


def test_sharpness_falls_with_blur_strength():
    """Vertical strips blurred by sigma 0, 0.7, 1.4, 2.8 (8-bit): the metric falls strip by strip."""
    rgb = _photo()
    grey = rgb_to_grey(rgb)
    strips = np.array_split(np.arange(grey.shape[1]), 4)
    img = grey.copy()
    for sigma, cols in zip((0.0, 0.7, 1.4, 2.8), strips):
        if sigma:
            img[:, cols] = ndimage.gaussian_filter(grey, sigma)[:, cols]
    m = log_averaged_spectrum_residual(np.round(img * 255) / 255)
    means = [m[:, cols[10:-10]].mean() for cols in strips]
    assert all(b < a - 0.2 for a, b in zip(means, means[1:])), means


def test_refinement_follows_region_boundaries():
    """Two colour regions, the right one blurred: the coarse map ramps over the patch width across
    the seam, the superpixel refinement puts the step on the colour boundary."""
    rng = np.random.default_rng(5)
    h, w, seam = 160, 200, 100
    tex = ndimage.gaussian_filter(rng.random((h, w)), 0.7)
    tex = (tex - tex.mean()) / tex.std() * 0.12
    right = _blur(np.repeat(tex[..., None], 3, axis=2), 3.0)[..., 0]
    rgb = np.empty((h, w, 3))
    rgb[:, :seam] = np.array([0.75, 0.3, 0.25]) + tex[:, :seam, None]
    rgb[:, seam:] = np.array([0.25, 0.35, 0.75]) + right[:, seam:, None]
    rgb = np.clip(rgb, 0, 1).astype(np.float32)
    coarse = tang16(rgb, refine=False)
    fine = tang16(rgb)
    step = lambda m: float(np.median(m[:, seam + 2]) - np.median(m[:, seam - 3]))
    far = lambda m: float(np.median(m[:, seam + 30 :]) - np.median(m[:, : seam - 30]))
    assert far(fine) > 0.3
    # the refined step at the seam is (nearly) the whole contrast; the coarse one is not
    assert step(fine) > 0.8 * far(fine)
    assert step(coarse) < 0.8 * far(coarse)


def test_constant_image_is_neutral():
    out = tang16(np.full((48, 64, 3), 0.4, np.float32))
    np.testing.assert_allclose(out, 0.5, atol=1e-6)


def test_out_of_range_settings():
    from baselines.interface import InputError

    cases = [
        ({"spectrum_box": 0}, "tang16: spectrum_box must be an integer >= 1, got 0"),
        ({"patch": -15}, "tang16: patch must be an integer >= 1, got -15"),
        ({"n_segments": 0}, "tang16: n_segments must be an integer >= 1, got 0"),
        ({"compactness": 0.0}, "tang16: compactness must be a finite number > 0, got 0.0"),
        ({"colour_sigma": float("nan")}, "tang16: colour_sigma must be a finite number > 0, got nan"),
        ({"iterations": -1}, "tang16: iterations must be an integer >= 0, got -1"),
        ({"refine": "yes"}, "tang16: refine must be True or False, got 'yes'"),
    ]
    for kwargs, message in cases:
        for build in (lambda: Tang16(**kwargs), lambda: tang16(np.zeros((20, 20, 3)), **kwargs)):
            with pytest.raises(InputError) as info:
                build()
            assert str(info.value) == message
    # zero updates is legitimate: the superpixel means of the coarse map
    assert Tang16(iterations=0)(np.random.default_rng(0).random((32, 32, 3))).shape == (32, 32)
