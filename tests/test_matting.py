"""Facts about the closed-form matting Laplacian and the sparse propagation solve."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from baselines.matting import cholmod_available, matting_laplacian, propagate

SOLVERS = [
    "direct",
    pytest.param("cholmod", marks=pytest.mark.skipif(not cholmod_available(), reason="cvxopt not installed")),
    "cg",
]


def _brute_laplacian(img: np.ndarray, eps: float, radius: int, known=None) -> np.ndarray:
    """Levin's getLaplacian1 written naively, window by window (reference for small images)."""
    h, w, c = img.shape
    side = 2 * radius + 1
    nw = side * side
    idx = np.arange(h * w).reshape(h, w)  # row-major pixel numbering
    a = np.zeros((h * w, h * w))
    for y in range(radius, h - radius):
        for x in range(radius, w - radius):
            if known is not None and known[y - radius : y + radius + 1, x - radius : x + radius + 1].all():
                continue
            win = img[y - radius : y + radius + 1, x - radius : x + radius + 1].reshape(nw, c)
            mu = win.mean(axis=0)
            cov = win.T @ win / nw - np.outer(mu, mu) + eps / nw * np.eye(c)
            d = win - mu
            vals = (1.0 + d @ np.linalg.inv(cov) @ d.T) / nw
            ii = idx[y - radius : y + radius + 1, x - radius : x + radius + 1].ravel()
            a[np.ix_(ii, ii)] += vals
    return np.diag(a.sum(axis=1)) - a


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("radius", [1, 2])
@pytest.mark.parametrize("with_known", [False, True])
def test_matches_naive_window_loop(rng, channels, radius, with_known):
    img = rng.random((9, 12, channels))
    known = rng.random((9, 12)) < 0.6 if with_known else None
    lap = matting_laplacian(img, eps=1e-3, radius=radius, known=known)
    assert isinstance(lap, scipy.sparse.csr_matrix)
    np.testing.assert_allclose(lap.toarray(), _brute_laplacian(img, 1e-3, radius, known), atol=1e-10)


def test_known_windows_are_skipped(rng):
    img = rng.random((10, 10, 3))
    known = np.zeros((10, 10), bool)
    known[:5] = True  # rows 0-4 known: windows centred on rows 1-3 are all known
    full = matting_laplacian(img).toarray()
    skipped = matting_laplacian(img, known=known).toarray()
    assert not np.allclose(full, skipped)
    # Rows 0-1 only belong to windows centred on rows 1-2, all of which are skipped.
    assert np.allclose(skipped[: 2 * 10], 0.0)
    # Pixels of row 6 and below see exactly the same windows in both.
    np.testing.assert_allclose(skipped[60:, 60:], full[60:, 60:], atol=1e-12)


def test_symmetric_rows_sum_to_zero_psd(rng):
    img = rng.random((12, 15, 3))
    lap = matting_laplacian(img)
    dense = lap.toarray()
    np.testing.assert_allclose(dense, dense.T, atol=1e-9 * np.abs(dense).max())
    np.testing.assert_allclose(dense.sum(axis=1), 0.0, atol=1e-8 * np.abs(dense).max())
    eig = np.linalg.eigvalsh((dense + dense.T) / 2)
    assert eig.min() > -1e-8 * eig.max()


def test_affine_in_colour_alpha_is_in_null_space(rng):
    """Alpha = a . I + b (constant or linear in colour) costs nothing as eps -> 0."""
    img = rng.random((14, 13, 3))
    lap = matting_laplacian(img, eps=1e-12)
    const = np.ones(img.shape[0] * img.shape[1])
    linear = (img @ np.array([0.3, -1.2, 0.7]) + 0.25).ravel()
    random = rng.random(const.size)
    assert abs(const @ lap @ const) < 1e-9
    assert linear @ lap @ linear < 1e-6 * (random @ lap @ random)


def test_grey_image_2d_equals_single_channel(rng):
    img = rng.random((8, 9))
    a = matting_laplacian(img)
    b = matting_laplacian(img[:, :, None])
    assert (a != b).nnz == 0


def test_pixel_order_is_row_major(rng):
    """A colour edge between two columns decouples the columns, not the rows: row-major layout."""
    img = np.zeros((6, 8, 1))
    img[:, 4:] = 1.0
    lap = matting_laplacian(img, eps=1e-9).toarray()
    # Pixels (2, 3) and (2, 4) sit on opposite sides of the edge; (2, 3) and (3, 3) do not.
    i, right, below = 2 * 8 + 3, 2 * 8 + 4, 3 * 8 + 3
    assert lap[i, below] < -1e-3
    assert abs(lap[i, right]) < abs(lap[i, below])


def test_bad_arguments():
    with pytest.raises(ValueError, match="H x W x 1 or H x W x 3"):
        matting_laplacian(np.zeros((5, 5, 2)))
    with pytest.raises(ValueError, match="radius"):
        matting_laplacian(np.zeros((5, 5)), radius=0)
    with pytest.raises(ValueError, match="known"):
        matting_laplacian(np.zeros((5, 5)), known=np.zeros((4, 4), bool))


@pytest.mark.parametrize("method", SOLVERS)
def test_propagate_matches_dense_solve(rng, method):
    img = rng.random((20, 24, 3))
    lap = matting_laplacian(img)
    weights = (rng.random((20, 24)) < 0.2) * rng.uniform(0.5, 2.0, (20, 24))
    values = rng.random((20, 24))
    lam = 0.01
    dense = lap.toarray() + lam * np.diag(weights.ravel())
    expected = np.linalg.solve(dense, lam * (weights * values).ravel())
    got = propagate(lap, weights, values, lam, method=method)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("method", SOLVERS)
def test_propagate_flat_weights_recovers_planted_solution(rng, method):
    """With every pixel weighted, v = x + L x / (lam w) has the planted solution x."""
    lap = matting_laplacian(rng.random((16, 18, 3)))
    x_true = rng.random(16 * 18)
    weights = rng.uniform(0.5, 2.0, 16 * 18)
    lam = 0.1
    values = x_true + (lap @ x_true) / (lam * weights)
    np.testing.assert_allclose(propagate(lap, weights, values, lam, method=method), x_true, atol=1e-7)


def test_propagate_constant_and_interpolation():
    """Equal constraints propagate to a constant; a large lambda pins the constrained pixels.

    (No maximum principle: the matting Laplacian has positive off-diagonal entries, so values
    between constraints may leave their range; that is why no bound is asserted.)
    """
    img = np.random.default_rng(3).random((15, 15, 3))
    lap = matting_laplacian(img)
    weights = np.zeros((15, 15))
    weights[3, 4] = weights[11, 9] = 1.0
    x = propagate(lap, weights, np.full((15, 15), 2.5), 1e-3)
    np.testing.assert_allclose(x, 2.5, atol=1e-8)
    vals = np.zeros((15, 15))
    vals[3, 4], vals[11, 9] = 1.0, 3.0
    x = propagate(lap, weights, vals, 1e6).reshape(15, 15)
    assert abs(x[3, 4] - 1.0) < 1e-3 and abs(x[11, 9] - 3.0) < 1e-3


def test_window_statistics_are_local_on_a_near_flat_image(rng):
    """Entries depend only on each pixel's 5 x 5 neighbourhood, even in near-flat windows.

    Near-flat windows have covariances close to eps, so their window sums must be exact to
    rounding: a running (cumulative) sum over a large image loses them.
    """
    img = 0.6 + 1e-3 * rng.random((160, 200, 3))
    full = matting_laplacian(img, eps=1e-7)
    y0, x0 = 120, 150
    crop = matting_laplacian(img[y0 - 4 : y0 + 5, x0 - 4 : x0 + 5], eps=1e-7)
    for dy, dx in [(0, 0), (1, -2), (-2, 1)]:
        row_full = full[(y0 + dy) * 200 + (x0 + dx)].toarray().reshape(160, 200)
        row_crop = crop[(4 + dy) * 9 + (4 + dx)].toarray().reshape(9, 9)
        np.testing.assert_allclose(row_full[y0 - 4 : y0 + 5, x0 - 4 : x0 + 5], row_crop, rtol=1e-9, atol=1e-12)


def test_propagate_auto_and_fallbacks(rng, monkeypatch):
    """'auto' is an exact solve; CHOLMOD falls back to LU on a non-definite matrix; 'cholmod'
    without cvxopt is a clear error."""
    import baselines.matting as matting

    img = rng.random((12, 14, 3))
    lap = matting_laplacian(img)
    weights = (rng.random((12, 14)) < 0.3).astype(float)
    values = rng.random((12, 14))
    exact = propagate(lap, weights, values, 1e-3, method="direct")
    np.testing.assert_allclose(propagate(lap, weights, values, 1e-3, method="auto"), exact, rtol=1e-8, atol=1e-10)
    # An indefinite system (not a Laplacian): Cholesky cannot factor it, LU can.
    neg = -scipy.sparse.identity(25, format="csr")
    x = propagate(neg, np.ones((5, 5)), np.ones((5, 5)), 0.5, method="auto")
    np.testing.assert_allclose(x, -1.0, rtol=1e-12)  # (-1 + 0.5) x = 0.5
    monkeypatch.setattr(matting, "cholmod_available", lambda: False)
    with pytest.raises(ImportError, match="cvxopt"):
        propagate(lap, weights, values, 1e-3, method="cholmod")
    np.testing.assert_array_equal(propagate(lap, weights, values, 1e-3, method="auto"), exact)


@pytest.mark.skipif(not cholmod_available(), reason="cvxopt not installed")
def test_cholmod_reuses_analysis_only_for_the_same_pattern(rng):
    """Consecutive systems of one size share CHOLMOD's symbolic analysis; each is solved exactly."""
    for shape in [(16, 18), (16, 18), (17, 18), (16, 18)]:
        lap = matting_laplacian(rng.random(shape + (3,)))
        weights = (rng.random(shape) < 0.2).astype(float)
        values = rng.random(shape)
        np.testing.assert_allclose(
            propagate(lap, weights, values, 1e-2, method="cholmod"),
            propagate(lap, weights, values, 1e-2, method="direct"),
            rtol=1e-7, atol=1e-9,
        )


def test_propagate_errors():
    lap = matting_laplacian(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="no pixel has a positive weight"):
        propagate(lap, np.zeros(25), np.ones(25), 1.0)
    with pytest.raises(ValueError, match="entries"):
        propagate(lap, np.ones(24), np.ones(24), 1.0)
    with pytest.raises(ValueError, match="lam"):
        propagate(lap, np.ones(25), np.ones(25), 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        propagate(lap, -np.ones(25), np.ones(25), 1.0)
    with pytest.raises(ValueError, match="unknown method"):
        propagate(lap, np.ones(25), np.ones(25), 1.0, method="magic")


@pytest.mark.slow
def test_propagate_640x480_direct_is_exact():
    """A full-size (640 x 480) system is solved directly in seconds, to rounding accuracy."""
    rng = np.random.default_rng(0)
    img = rng.random((48, 64, 3)).repeat(10, axis=0).repeat(10, axis=1)  # 480 x 640, blocky
    img += 0.01 * rng.standard_normal(img.shape)
    lap = matting_laplacian(img)
    weights = (rng.random((480, 640)) < 0.05).astype(float)
    values = rng.random((480, 640))
    x = propagate(lap, weights, values, 1e-3)
    rhs = 1e-3 * (weights * values).ravel()
    residual = lap @ x + 1e-3 * weights.ravel() * x - rhs
    assert np.linalg.norm(residual) < 1e-9 * np.linalg.norm(rhs)
