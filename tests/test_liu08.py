"""Method facts of Liu, Li & Jia (2008): features, naive Bayes, blur found after training."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from _blur_synth import blur, dataset, make_pair
from baselines.interface import InputError
from baselines.liu08 import Liu08, histogram_nb_fit, histogram_nb_posterior, hsi_saturation, liu08_features


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(score.ravel())
    y = label.ravel().astype(bool)
    n1, n0 = y.sum(), (~y).sum()
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def test_hsi_saturation_values():
    rgb = np.array([[[1.0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.25, 0.25], [0, 0, 0]]])
    np.testing.assert_allclose(hsi_saturation(rgb), [[1.0, 0.0, 0.25, 0.0]])


def _colour_texture(size: int, seed: int) -> np.ndarray:
    """Three independent 1/f noise channels in [0, 1]: a colourful, scale-free texture."""
    rng = np.random.default_rng(seed)
    f = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :])
    f[0, 0] = 1.0
    chans = []
    for _ in range(3):
        spec = (rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))) / f
        spec[0, 0] = 0
        c = np.real(np.fft.ifft2(spec))
        chans.append((c - c.min()) / (c.max() - c.min()))
    return np.stack(chans, axis=-1)


def test_features_point_the_way_the_paper_says():
    img = _colour_texture(160, 4)
    img[:, 80:] = blur(img[:, 80:], "gaussian", 3.0)
    f = liu08_features(img)
    sharp, blurred = f[20:-20, 15:65], f[20:-20, 95:-15]
    assert np.median(blurred[..., 0]) > np.median(sharp[..., 0]) + 0.2  # steeper spectrum
    assert np.median(blurred[..., 1]) < 0.5 * np.median(sharp[..., 1])  # narrower gradient span
    assert np.median(blurred[..., 2]) < np.median(sharp[..., 2])  # less vivid colour
    assert np.all(f[..., 2] <= 0) and f[..., 2].max() == pytest.approx(0.0)


def test_grey_image_has_no_saturation_feature(natural_rgb):
    grey = np.repeat(natural_rgb.mean(axis=2, keepdims=True), 3, axis=2)
    assert np.all(liu08_features(grey)[..., 2] == 0)


def test_histogram_naive_bayes():
    rng = np.random.default_rng(0)
    x0 = rng.normal(0, 1, (5000, 2))
    x1 = rng.normal(3, 1, (5000, 2))
    x = np.vstack([x0, x1])
    y = np.r_[np.zeros(5000), np.ones(5000)]
    nb = histogram_nb_fit(x, y)
    p = histogram_nb_posterior(np.array([[-1.0, -1.0], [4.0, 4.0], [1.5, 1.5]]), nb)
    assert p[0] < 0.01 and p[1] > 0.99 and 0.2 < p[2] < 0.8
    # Quantile bins: a monotone transform of a feature gives the same posteriors.
    nb_exp = histogram_nb_fit(np.exp(x), y)
    np.testing.assert_allclose(histogram_nb_posterior(np.exp(x[:100]), nb_exp), histogram_nb_posterior(x[:100], nb))


@pytest.fixture(scope="module")
def trained() -> Liu08:
    return Liu08().fit(dataset(names=("astronaut", "coffee", "rocket", "grass", "cat"), size=192, seed=2))


def test_detects_a_known_blurred_region_on_an_unseen_photo(trained):
    rng = np.random.default_rng(11)
    for name in ("chelsea", "brick"):
        rgb, mask = make_pair(name, 192, rng, kind="gaussian")
        assert _auc(trained(rgb), mask) > 0.8, name


def test_state_round_trip(trained, natural_rgb):
    other = Liu08()
    other.set_state({k: v.copy() for k, v in trained.get_state().items()})
    np.testing.assert_array_equal(other(natural_rgb), trained(natural_rgb))


def test_front_door_loads_a_saved_state(trained, natural_rgb, tmp_path):
    from evaluation.registry import build

    np.savez(tmp_path / "model.npz", **trained.get_state())
    loaded = build("liu08", weights=tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded(natural_rgb), trained(natural_rgb))
    np.savez(tmp_path / "other.npz", unrelated=np.zeros(2))
    with pytest.raises(InputError, match="not a saved liu08 state"):
        build("liu08", weights=tmp_path / "other.npz")


def test_untrained_and_bad_training_data_fail_clearly(natural_rgb):
    with pytest.raises(InputError, match="not trained yet: load a state"):
        Liu08()(natural_rgb)
    with pytest.raises(ValueError, match="both blurred and sharp"):
        Liu08().fit([(natural_rgb, np.ones(natural_rgb.shape[:2], bool))])
    with pytest.raises(ValueError, match="mask shape"):
        Liu08().fit([(natural_rgb, np.ones((5, 5), bool))])
    with pytest.raises(ValueError, match="odd"):
        Liu08(patch=14)


def test_blurring_more_raises_the_posterior(trained, natural_rgb):
    light = ndimage.gaussian_filter(natural_rgb, (1.0, 1.0, 0))
    heavy = ndimage.gaussian_filter(natural_rgb, (4.0, 4.0, 0))
    assert trained(heavy).mean() > trained(light).mean()


def test_out_of_range_settings():
    from baselines.interface import InputError

    cases = [
        ({"patch": 14}, "liu08: patch must be an odd integer >= 3, got 14"),
        ({"ghs_stride": 0}, "liu08: ghs_stride must be an integer >= 1, got 0"),
        ({"n_bins": 1}, "liu08: n_bins must be an integer >= 2, got 1"),  # one bin ignores the features
        ({"train_pixels": 0}, "liu08: train_pixels must be an integer >= 1, got 0"),
        ({"seed": -1}, "liu08: seed must be an integer >= 0, got -1"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError) as info:
            Liu08(**kwargs)
        assert str(info.value) == message
