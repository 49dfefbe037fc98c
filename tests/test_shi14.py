"""Method facts of Shi, Xu & Jia (2014): classifier, learned filters, multi-scale BP, training."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from _blur_synth import dataset, make_pair
from baselines.shi14 import (
    SCALES,
    Shi14,
    fuse_scales,
    gaussian_nb_fit,
    gaussian_nb_posterior,
    learn_filters,
    learned_filter_responses,
)


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(score.ravel())
    y = label.ravel().astype(bool)
    n1, n0 = y.sum(), (~y).sum()
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _bp_edge_list(scores, patches, alpha, iters=400):
    """Independent loopy BP in log-ratio form on an explicit edge list (same graph and potentials)."""
    order = np.argsort(patches)[::-1]
    rows, cols = scores[0].shape
    index, fields, nodes = [], [], 0
    for i in order:
        h = patches[i] // 2
        v = scores[i][h : rows - h, h : cols - h]
        index.append((np.arange(v.size).reshape(v.shape) + nodes, h))
        fields.append(v.ravel())
        nodes += v.size
    x = np.concatenate(fields)
    z = (x - x.mean()) / x.std(ddof=1)
    local = np.abs(z) - np.abs(1 - z)  # log phi(1)/phi(2)
    edges = []
    for idx, _ in index:
        edges.append(np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1))
        edges.append(np.stack([idx[:-1].ravel(), idx[1:].ravel()], 1))
    for (a, ha), (b, hb) in zip(index[:-1], index[1:]):
        o = ha - hb
        edges.append(np.stack([a.ravel(), b[o : o + a.shape[0], o : o + a.shape[1]].ravel()], 1))
    e = np.concatenate(edges)
    src = np.concatenate([e[:, 0], e[:, 1]])
    dst = np.concatenate([e[:, 1], e[:, 0]])
    rev = np.concatenate([np.arange(len(e)) + len(e), np.arange(len(e))])
    t = np.tanh(alpha / 2)
    msg = np.zeros(len(src))
    for _ in range(iters):
        total = local.copy()
        np.add.at(total, dst, msg)
        msg = 2 * np.arctanh(t * np.tanh((total[src] - msg[rev]) / 2))
    total = local.copy()
    np.add.at(total, dst, msg)
    belief = 1 / (1 + np.exp(-total))
    first, h0 = index[0]
    return np.pad(belief[first], h0, mode="edge")


def test_fusion_matches_an_independent_bp(rng):
    base = ndimage.gaussian_filter(rng.random((44, 50)), 3)
    scores = [np.clip(base + 0.1 * rng.standard_normal(base.shape), 0, 1) for _ in SCALES]
    got = fuse_scales(scores, SCALES, tol=1e-7, max_iter=500)
    expected = _bp_edge_list(scores, list(SCALES), 0.5)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_fusion_is_monotone_and_uses_the_largest_patch(rng):
    ramp = np.tile(np.linspace(0, 1, 60), (50, 1))
    out = fuse_scales([ramp] * 3, SCALES)
    assert out.shape == ramp.shape
    inner = out[10:-10, 10:-10]
    # Higher score, higher belief (away from the grid's ends, whose nodes have fewer neighbours).
    assert np.all(np.diff(inner[:, 4:-4], axis=1) >= -1e-4)  # (up to the stopping tolerance)
    assert inner[:, -1].mean() > 0.7 and inner[:, 0].mean() < 0.3
    # Valid positions of the 21-pixel scale, replicated to the border.
    np.testing.assert_array_equal(out[:10], np.repeat(out[10:11], 10, axis=0))


def test_gaussian_naive_bayes_posterior_is_analytic():
    rng = np.random.default_rng(0)
    x0 = rng.normal([0.0, 1.0], [1.0, 2.0], size=(20000, 2))
    x1 = rng.normal([2.0, -1.0], [1.0, 0.5], size=(10000, 2))
    nb = gaussian_nb_fit(np.vstack([x0, x1]), np.r_[np.zeros(20000), np.ones(10000)])
    np.testing.assert_allclose(nb["mean"], [[0, 1], [2, -1]], atol=0.05)
    np.testing.assert_allclose(nb["std"], [[1, 2], [1, 0.5]], rtol=0.03)
    np.testing.assert_allclose(nb["prior"], [2 / 3, 1 / 3])
    q = np.array([[1.0, 0.0]])

    def pdf(v, m, s):
        return np.exp(-0.5 * ((v - m) / s) ** 2) / s

    l0 = 2 / 3 * pdf(1, 0, 1) * pdf(0, 1, 2)
    l1 = 1 / 3 * pdf(1, 2, 1) * pdf(0, -1, 0.5)
    assert gaussian_nb_posterior(q, nb)[0] == pytest.approx(l1 / (l0 + l1), abs=0.02)


def test_learned_filters_separate_sharp_from_blurred_patches():
    rng = np.random.default_rng(2)
    noise = rng.random((200, 200))
    sharp_img, blur_img = noise, ndimage.gaussian_filter(noise, 2.0)
    take = lambda img: sliding_window_view(img, (11, 11))[::7, ::7].reshape(-1, 11, 11)  # noqa: E731
    w = learn_filters(take(sharp_img), take(blur_img), 2)
    assert w.shape == (2, 11, 11)
    resp_sharp = learned_filter_responses(sharp_img, w, clip=False)[5:-5, 5:-5]
    resp_blur = learned_filter_responses(blur_img, w, clip=False)[5:-5, 5:-5]
    ratio = resp_sharp.var(axis=(0, 1)) / resp_blur.var(axis=(0, 1))
    assert np.all(ratio > 50)


def test_filter_responses_are_patch_dot_products_clipped_like_matlab(rng):
    g = rng.random((30, 34))
    w = rng.standard_normal((2, 5, 5))
    out = learned_filter_responses(g, w)
    win = sliding_window_view(g, (5, 5))
    for i in range(2):
        raw = np.einsum("rcij,ij->rc", win, w[i])
        # MATLAB prctile: sorted values sit at the 100 (k - 0.5) / n percentiles.
        srt = np.sort(raw.ravel())
        pos = np.array([3, 97]) / 100 * srt.size - 0.5
        lo, hi = np.interp(pos, np.arange(srt.size), srt)
        np.testing.assert_allclose(out[2:-2, 2:-2, i], np.clip(raw, lo, hi), atol=1e-12)


@pytest.fixture(scope="module")
def trained() -> Shi14:
    return Shi14().fit(dataset(names=("astronaut", "coffee", "rocket", "grass"), size=192, seed=1))


def test_detects_a_known_blurred_region_on_an_unseen_photo(trained):
    rng = np.random.default_rng(7)
    for name in ("chelsea", "brick"):
        rgb, mask = make_pair(name, 192, rng, kind="disk")
        out = trained(rgb)
        assert _auc(out, mask) > 0.85, name


def test_state_round_trip(trained, natural_rgb):
    state = trained.get_state()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    other = Shi14()
    other.set_state({k: v.copy() for k, v in state.items()})
    np.testing.assert_array_equal(other(natural_rgb), trained(natural_rgb))


def test_untrained_and_bad_training_data_fail_clearly(natural_rgb):
    with pytest.raises(ValueError, match="not trained yet"):
        Shi14()(natural_rgb)
    with pytest.raises(ValueError, match="both sharp and blurred"):
        Shi14().fit([(natural_rgb, np.zeros(natural_rgb.shape[:2], bool))])
    with pytest.raises(ValueError, match="lacks"):
        Shi14().set_state({"filters_11": np.zeros((2, 11, 11))})


def test_out_of_range_settings():
    from baselines.interface import InputError

    cases = [
        ({"ghs_stride": 0}, "shi14: ghs_stride must be an integer >= 1, got 0"),
        ({"spectrum_stride": -2}, "shi14: spectrum_stride must be an integer >= 1, got -2"),
        ({"bins": 0}, "shi14: bins must be an integer >= 1, got 0"),
        ({"bp_tol": -1e-3}, "shi14: bp_tol must be a finite number >= 0, got -0.001"),
        ({"train_patches": 0}, "shi14: train_patches must be an integer >= 1, got 0"),
        ({"seed": 1.0}, "shi14: seed must be an integer >= 0, got 1.0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError) as info:
            Shi14(**kwargs)
        assert str(info.value) == message
    assert Shi14(bp_tol=0.0).settings["bp_tol"] == 0.0  # 0: run every sweep


def test_pure_function_settings_checked_before_work():
    from baselines.interface import InputError
    from baselines.shi14 import shi14

    rgb = np.zeros((30, 30, 3))
    for kwargs, setting in [({"scales": (11, 16)}, "scales"), ({"alpha": float("nan")}, "alpha"),
                            ({"bp_iter": 0}, "bp_iter")]:
        with pytest.raises(InputError, match=f"^shi14: {setting} must be "):
            shi14(rgb, [], [], **kwargs)
