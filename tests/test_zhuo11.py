"""Method facts for Zhuo & Sim 2011 (re-blur defocus estimation) and the shared defocus helpers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from scipy.special import erf

from baselines._defocus import canny_matlab, canny_octave, gradient_ratio
from baselines.zhuo11 import Zhuo11, sparse_bilateral_filter, sparse_defocus, zhuo11_defocus


def _blurred_steps(
    sigma: float, shape=(48, 96), period: int = 24, lo: float = 0.2, hi: float = 0.8, offset: float = 0.0
) -> np.ndarray:
    """Vertical step edges every ``period`` columns, blurred by an exact Gaussian of scale sigma.

    Each pixel samples the continuous blurred profile (sum of erf steps) at its centre. The
    steps sit on pixel centres (columns period/2, 3 period/2, ...) shifted by ``offset`` pixels.
    """
    h, w = shape
    x = np.arange(w, dtype=np.float64)
    prof = np.zeros(w)
    sign = 1.0
    for x0 in np.arange(period // 2, w, period) + offset:
        prof += sign * 0.5 * (1.0 + erf((x - x0) / (sigma * np.sqrt(2.0))))
        sign = -sign
    grey = lo + (hi - lo) * prof
    return np.repeat(np.repeat(grey[None, :], h, axis=0)[:, :, None], 3, axis=2)


@pytest.mark.parametrize("sigma", [0.8, 1.0, 1.5, 2.0, 2.5])
def test_step_edge_sigma_recovered_within_10_percent(sigma):
    rgb = _blurred_steps(sigma)
    grey = rgb[:, :, 0]
    edges = canny_matlab(grey)
    assert edges.any()
    est = sparse_defocus(grey, edges)
    vals = est[edges & (est > 0)]
    assert vals.size > 0.5 * edges.sum()
    assert abs(np.median(vals) - sigma) < 0.1 * sigma
    # After the bilateral filter and the propagation the whole map carries that sigma.
    res = zhuo11_defocus(rgb)
    assert abs(np.median(res.full) - sigma) < 0.1 * sigma
    inner = res.full[5:-5, 5:-5]
    assert np.all(np.abs(inner - sigma) < 0.15 * sigma)


@pytest.mark.parametrize("offset", [0.0, 0.5])
def test_gradient_ratio_matches_closed_form(offset):
    """R = sqrt((s^2 + s2^2) / (s^2 + s1^2)) at a Gaussian-blurred step.

    Off the step by d pixels each magnitude falls by exp(-d^2 / (2 (s^2 + s_i^2))), so half a
    pixel away R is lower by a known factor (the method's bias for edges between pixels).
    """
    sigma = 1.7
    grey = _blurred_steps(sigma, shape=(40, 200), period=100, offset=offset)[:, :, 0]
    ratio = gradient_ratio(grey, 1.0, 1.5, 11, 7)
    cols = [50, 150] if offset == 0 else [50, 51, 150, 151]
    v1, v2 = sigma**2 + 1.0, sigma**2 + 1.5**2
    expected = np.sqrt(v2 / v1) * np.exp(-(offset**2) / (2 * v1) + offset**2 / (2 * v2))
    np.testing.assert_allclose(ratio[20, cols], expected, rtol=1e-4)


def test_sharper_region_scores_lower(natural_rgb):
    """Left half re-blurred with sigma 2: the detector calls it more blurred than the right."""
    rgb = natural_rgb.astype(np.float64).copy()
    half = rgb.shape[1] // 2
    blurred = np.stack([ndimage.gaussian_filter(rgb[..., c], 2.0) for c in range(3)], axis=-1)
    rgb[:, :half] = blurred[:, :half]
    out = Zhuo11()(rgb.astype(np.float32))
    assert np.median(out[:, : half - 8]) > np.median(out[:, half + 8 :]) + 0.1


def test_sparse_estimates_only_on_edges_and_clipped():
    rng = np.random.default_rng(0)
    grey = ndimage.gaussian_filter(rng.random((64, 64)), 1.0)
    edges = canny_matlab(grey)
    est = sparse_defocus(grey, edges, max_blur=1.2)
    assert np.all(est[~edges] == 0)
    assert est.max() <= 1.2 and est.min() >= 0
    assert np.any(est > 0)


def test_bilateral_filter_facts():
    rng = np.random.default_rng(1)
    guide = rng.random((30, 40, 3))
    sparse = np.zeros((30, 40))
    mask = rng.random((30, 40)) < 0.1
    sparse[mask] = rng.uniform(0.5, 2.5, mask.sum())
    out = sparse_bilateral_filter(sparse, guide)
    # Support is kept and values stay within the range of their inputs (a weighted mean).
    assert np.array_equal(out > 1e-4, mask)
    assert out[mask].min() >= sparse[mask].min() - 1e-12 and out[mask].max() <= sparse[mask].max() + 1e-12
    # A constant sparse map is unchanged.
    const = np.where(mask, 1.3, 0.0)
    np.testing.assert_allclose(sparse_bilateral_filter(const, guide)[mask], 1.3)
    # The exp(-s) factor favours smaller values: two equidistant neighbours average below the mean.
    two = np.zeros((21, 21))
    two[10, 9], two[10, 11] = 1.0, 2.0
    res = sparse_bilateral_filter(two, np.zeros((21, 21, 3)))
    far = np.exp(-4 / (2 * 5.0**2))  # spatial weight two pixels away, sigma_s = 5
    w1, w2 = np.exp(-1.0), np.exp(-2.0)
    np.testing.assert_allclose(res[10, 9], (w1 * 1 + far * w2 * 2) / (w1 + far * w2))
    np.testing.assert_allclose(res[10, 11], (far * w1 * 1 + w2 * 2) / (far * w1 + w2))


def test_canny_step_is_one_pixel_thin_and_scale_invariant():
    grey = _blurred_steps(1.0, shape=(40, 50), period=50, offset=0.2)[:, :, 0]  # step at x = 25.2
    edges = canny_matlab(grey)
    cols = np.nonzero(edges.any(axis=0))[0]
    assert list(cols) == [25]
    assert edges[1:-1, 25].all() and not edges[[0, -1]].any()
    assert not canny_matlab(np.full((20, 20), 0.3)).any()
    rng = np.random.default_rng(5)
    tex = ndimage.gaussian_filter(rng.random((48, 48)), 1.5)
    np.testing.assert_array_equal(canny_matlab(tex), canny_matlab(3.0 * tex))


def test_given_edge_map_is_used_and_flat_image_is_safe():
    rgb = _blurred_steps(1.5)
    empty = zhuo11_defocus(rgb, edge_map=np.zeros(rgb.shape[:2]))
    assert not empty.edges.any() and np.all(empty.full == 0)
    flat = Zhuo11()(np.full((32, 32, 3), 0.5, np.float32))
    assert np.all(flat == 0)
    with pytest.raises(ValueError, match="edge_map"):
        zhuo11_defocus(rgb, edge_map=np.zeros((3, 3)))


def test_exact_solvers_agree(natural_rgb):
    """CHOLMOD and SuperLU solve the same equation exactly: the maps agree to rounding."""
    from baselines.matting import cholmod_available

    if not cholmod_available():
        pytest.skip("cvxopt not installed")
    rgb = natural_rgb.astype(np.float64)
    a = zhuo11_defocus(rgb, solver="cholmod").full
    b = zhuo11_defocus(rgb, solver="direct").full
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


def test_detector_maps_sigma_to_unit_range():
    rgb = _blurred_steps(1.5).astype(np.float32)
    out = Zhuo11()(rgb)
    assert abs(float(np.median(out)) - 1.5 / 3.0) < 0.05
    with pytest.raises(ValueError, match="solver"):
        Zhuo11(solver="magic")


def test_canny_setting_is_checked_and_keys_the_cache():
    rgb = _blurred_steps(1.5)
    with pytest.raises(ValueError, match="canny must be one of"):
        Zhuo11(canny="opencv")
    with pytest.raises(ValueError, match="canny must be one of"):
        zhuo11_defocus(rgb, canny="Octave")
    assert Zhuo11().settings["canny"] == "matlab"
    assert Zhuo11(canny="octave").cache_key() != Zhuo11().cache_key()


def test_octave_canny_step_facts():
    """Octave's Canny: one-pixel-thin edges, never on the border, nothing on a flat image,
    invariant to contrast scaling; its even-length smoothing kernel samples the image half a
    pixel to the right, so a step at x = 25.6 is found at column 25 (MATLAB-style: 26)."""
    grey = _blurred_steps(1.0, shape=(40, 50), period=50, offset=0.6)[:, :, 0]  # step at x = 25.6
    edges = canny_octave(grey)
    assert list(np.nonzero(edges.any(axis=0))[0]) == [25]
    assert list(np.nonzero(canny_matlab(grey).any(axis=0))[0]) == [26]
    assert edges[1:-1, 25].all() and not edges[[0, -1]].any()
    assert not canny_octave(np.full((20, 20), 0.3)).any()
    rng = np.random.default_rng(5)
    tex = ndimage.gaussian_filter(rng.random((48, 48)), 1.5)
    np.testing.assert_array_equal(canny_octave(tex), canny_octave(3.0 * tex))
    # Steps a quarter pixel right of pixel centres: both Cannys pick the same columns, so the
    # whole pipeline gives the same sigma (on-centre steps sit on Octave's half-pixel ties).
    rgb = _blurred_steps(1.5, offset=0.25)
    oct_, mat = zhuo11_defocus(rgb, canny="octave"), zhuo11_defocus(rgb, canny="matlab")
    assert np.array_equal(oct_.edges.any(axis=0), mat.edges.any(axis=0))
    assert abs(np.median(oct_.full) - 1.5) < 0.1 * 1.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lam": 0.0}, "zhuo11: lam must be a finite number > 0, got 0.0"),  # the solve would be singular
        ({"std": float("nan")}, "zhuo11: std must be a finite number > 0, got nan"),
        ({"max_blur": -3.0}, "zhuo11: max_blur must be a finite number > 0, got -3.0"),
        ({"canny_thresh": 1.5}, "zhuo11: canny_thresh must be a finite number in (0, 1], got 1.5"),
        ({"canny_sigma": 0}, "zhuo11: canny_sigma must be a finite number > 0, got 0"),
    ],
)
def test_out_of_range_settings(kwargs, message):
    from baselines.interface import InputError

    with pytest.raises(InputError) as info:
        zhuo11_defocus(_blurred_steps(1.5), **kwargs)
    assert str(info.value) == message
    if not any(k.startswith("canny_") for k in kwargs):  # the detector has no Canny settings
        with pytest.raises(InputError) as info:
            Zhuo11(**kwargs)
        assert str(info.value) == message
