"""Method facts for Su et al. 2011's singular value feature (``baselines.su11_svd``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from baselines.su11_svd import Su11SVD, singular_value_feature, su11_svd


def _brute_force(x: np.ndarray, k: int, window: int, padding: str) -> np.ndarray:
    before = window // 2
    after = window - 1 - before
    p = np.pad(x, ((before, after), (before, after)), mode=padding)
    out = np.empty(x.shape)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            s = np.linalg.svd(p[i : i + window, j : j + window], compute_uv=False)
            out[i, j] = s[:k].sum() / s.sum()
    return out


@pytest.mark.parametrize(
    "k, window, padding", [(3, 20, "reflect"), (6, 15, "symmetric"), (1, 4, "reflect"), (2, 5, "symmetric")]
)
def test_matches_per_window_svd(rng, k, window, padding):
    """The batched Gram-matrix path equals an SVD of every window, borders included."""
    x = rng.random((26, 33))
    fast = singular_value_feature(x, k=k, window=window, padding=padding)
    np.testing.assert_allclose(fast, _brute_force(x, k, window, padding), atol=1e-7)


def test_torch_and_numpy_lapack_agree(rng, monkeypatch):
    """The eigenvalues come from torch's LAPACK (MKL) when torch is installed, else from numpy's."""
    torch = pytest.importorskip("torch")
    from baselines import su11_svd as mod

    x = rng.random((30, 41))
    x[5:25, 5:25] = 0.5  # constant windows: rank one, eigenvalues at the rounding level
    padded = np.pad(x, ((10, 9), (10, 9)), mode="reflect")
    gram = mod._gram_rows(padded, 20, slice(0, 30), 41)
    scale = np.tril(gram).max()  # only the lower triangles are written (the upper ones are uninitialised memory)
    np.testing.assert_allclose(
        mod._eigvalsh_lower(gram, torch), mod._eigvalsh_lower(gram, None), rtol=0, atol=1e-12 * scale
    )
    with_torch = singular_value_feature(x)
    monkeypatch.setattr(mod, "_USE_TORCH", False)
    np.testing.assert_allclose(singular_value_feature(x), with_torch, atol=1e-10)


def test_constant_and_zero_windows_are_fully_blurred():
    """A constant window has rank 1 (beta = 1); an all-zero window is defined as 1 too."""
    const = np.full((40, 40), 0.37)
    np.testing.assert_allclose(singular_value_feature(const), 1.0, atol=1e-6)
    zero = np.zeros((40, 40))
    assert np.all(singular_value_feature(zero) == 1.0)
    # a zero patch inside texture: only windows entirely inside the patch are degenerate
    x = np.random.default_rng(0).random((60, 60))
    x[10:45, 10:45] = 0.0
    beta = singular_value_feature(x, k=3, window=15, padding="symmetric")
    assert beta[27, 27] == 1.0  # window rows/cols 20..34 all zero
    assert np.all(np.isfinite(beta))


def test_rank_one_windows_give_one(rng):
    """Every window of an outer product u v^T has rank 1, so beta_1 = 1 for any k."""
    x = np.outer(rng.random(50) + 0.1, rng.random(45) + 0.1)
    for k in (1, 3):
        np.testing.assert_allclose(singular_value_feature(x, k=k, window=20), 1.0, atol=1e-6)


def test_noise_is_sharp_and_blur_raises_beta(rng):
    """White noise spreads its energy over all singular values (low beta); blurring raises it,
    the more the stronger the blur."""
    noise = rng.standard_normal((96, 96))
    means = [singular_value_feature(noise).mean()]
    assert means[0] < 0.4
    for sigma in (1.0, 2.0, 4.0):
        means.append(singular_value_feature(ndimage.gaussian_filter(noise, sigma, mode="reflect")).mean())
    assert all(b > a + 0.05 for a, b in zip(means, means[1:])), means


def test_blurred_half_of_a_photo_is_detected(natural_rgb):
    rgb = natural_rgb.copy()
    half = rgb.shape[1] // 2
    for c in range(3):
        rgb[:, half:, c] = ndimage.gaussian_filter(natural_rgb[:, :, c], 3.0)[:, half:]
    blur = Su11SVD()(rgb)
    margin = 12  # windows straddling the seam see both halves
    assert blur[:, half + margin :].mean() > blur[:, : half - margin].mean() + 0.2


def test_value_channel_and_normalisation(natural_rgb):
    raw = su11_svd(natural_rgb, channel="value", normalise=False)
    v = natural_rgb.max(axis=2)
    np.testing.assert_allclose(raw, singular_value_feature(v).astype(np.float32), atol=1e-6)
    norm = su11_svd(natural_rgb, channel="value")
    assert norm.min() == 0.0 and norm.max() == 1.0
    lo, hi = raw.min(), raw.max()
    np.testing.assert_allclose(norm, (raw - lo) / (hi - lo), atol=1e-5)
    # a constant image: nothing to normalise, the raw value (fully blurred) is kept
    assert np.all(su11_svd(np.full((30, 30, 3), 0.5, np.float32)) > 0.999)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 0}, "k must be"),
        ({"k": 21, "window": 20}, "k must be"),
        ({"window": 1}, "window must be"),
        ({"padding": "edge"}, "padding must be"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        singular_value_feature(np.ones((30, 30)), **kwargs)


def test_bad_channel():
    with pytest.raises(ValueError, match="channel must be"):
        su11_svd(np.ones((30, 30, 3)), channel="red")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 21}, "su11_svd: k must be an integer in [1, 20], got 21"),  # at most the window side
        ({"k": 0}, "su11_svd: k must be an integer in [1, 20], got 0"),
        ({"window": 1}, "su11_svd: window must be an integer >= 2, got 1"),
        ({"window": 20.0}, "su11_svd: window must be an integer >= 2, got 20.0"),
        ({"channel": "red"}, "su11_svd: channel must be one of 'grey', 'value', got 'red'"),
        ({"padding": "edge"}, "su11_svd: padding must be one of 'reflect', 'symmetric', got 'edge'"),
        ({"normalise": 1}, "su11_svd: normalise must be True or False, got 1"),
    ],
)
def test_detector_settings_checked_at_construction(kwargs, message):
    from baselines.interface import InputError

    with pytest.raises(InputError) as info:
        Su11SVD(**kwargs)
    assert str(info.value) == message
    with pytest.raises(InputError) as info:
        su11_svd(np.ones((30, 30, 3)), **kwargs)
    assert str(info.value) == message
