"""Method facts of Yi & Eramian 2016 (``baselines.yi16_lbp``), worked out by hand or by brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from baselines.yi16_lbp import (
    Yi16LBP,
    _down,
    _Guide,
    _up,
    fuse_scales,
    lbp_riu2,
    lbp_sharpness,
    matted_sharpness_maps,
    yi16_sharpness,
)

T_LBP = 0.016 * 255  # 4.08 grey levels
POS = {"right": (1, 2), "above": (0, 1), "left": (1, 0), "below": (2, 1), "above_right": (0, 2),
       "above_left": (0, 0), "below_left": (2, 0), "below_right": (2, 2)}


def centre_code(centre: float = 100, threshold: float = T_LBP, **neighbours: float) -> int:
    patch = np.full((3, 3), float(centre))
    for where, value in neighbours.items():
        patch[POS[where]] = value
    return int(lbp_riu2(patch, threshold)[1, 1])


# LBP codes ----------------------------------------------------------------------------------
def test_flat_and_darker_neighbourhoods_give_code_0():
    assert centre_code() == 0
    assert centre_code(200, **{k: 0 for k in POS}) == 0  # darker neighbours never count


def test_all_neighbours_brighter_gives_code_8():
    assert centre_code(100, **{k: 200 for k in POS}) == 8


def test_threshold_is_strict_on_integer_differences():
    # a neighbour counts when it exceeds the centre by MORE than T_LBP = 4.08
    assert centre_code(right=105) == 1
    assert centre_code(right=104) == 0
    assert centre_code(right=104, threshold=3.99) == 1


def test_diagonal_is_bilinear_and_floored():
    # A lone bright corner reaches the diagonal sample with weight (sqrt(2)/2)^2 = 1/2:
    # +10 -> +5 > 4.08 counts, +9 -> floor(+4.5) = +4 does not.
    assert centre_code(above_right=110) == 1
    assert centre_code(above_right=109) == 0
    # A bright axis neighbour leaks into both adjacent diagonals with weight (1 - o) o = 0.207:
    # +100 lights them (+20.7), +10 does not (+2.07).
    assert centre_code(right=200) == 3
    assert centre_code(right=110) == 1


def test_riu2_mapping_counts_ones_of_uniform_patterns_else_9():
    # Neighbours brightened by +10 only at the axis positions: the diagonals stay below the
    # threshold (at most +4.14 -> floored +4), so the bit pattern is exactly the chosen subset.
    axes = ["right", "above", "left", "below"]
    for chosen in itertools.chain.from_iterable(itertools.combinations(axes, k) for k in range(5)):
        code = centre_code(**{a: 110 for a in chosen})
        assert code == (len(chosen) if len(chosen) <= 1 else 9), chosen
    # Contiguous arcs are uniform: the code is the arc length.
    assert centre_code(right=200, above_right=200, below_right=200) == 3
    assert centre_code(below=200, below_left=200, below_right=200, right=200, above_right=200) == 5
    assert centre_code(right=110, left=110) == 9


def test_codes_are_rotation_invariant(rng):
    img = rng.integers(0, 256, (40, 40)).astype(np.float64)
    codes = lbp_riu2(img, T_LBP)
    assert codes.dtype == np.int8 and codes.min() >= 0 and codes.max() <= 9
    for k in (1, 2, 3):
        np.testing.assert_array_equal(lbp_riu2(np.rot90(img, k), T_LBP)[1:-1, 1:-1], np.rot90(codes, k)[1:-1, 1:-1])


# Windowed sharpness --------------------------------------------------------------------------
def test_flat_region_has_zero_sharpness():
    flat = np.full((50, 60), 117.0)
    assert np.all(lbp_sharpness(flat, 11, T_LBP, normalise=False) == 0)
    assert np.all(lbp_sharpness(flat, 11, T_LBP) == 0)  # a constant map normalises to zeros


def test_one_sharp_code_fills_its_window_with_one_over_s_squared():
    img = np.full((40, 40), 200.0)
    img[20, 17] = 0.0  # a dark dot: all neighbours brighter -> code 8; the neighbours get 0
    s = 11
    share = lbp_sharpness(img, s, T_LBP, normalise=False)
    expected = np.zeros((40, 40))
    expected[15:26, 12:23] = 1.0 / s**2
    np.testing.assert_array_equal(share, expected)


def test_noise_texture_is_sharp_and_its_blurred_copy_is_not(rng):
    noise = rng.integers(0, 256, (120, 120)).astype(np.float64)
    blurred = np.round(ndimage.gaussian_filter(noise, 3.0))
    sharp_share = lbp_sharpness(noise, 11, T_LBP, normalise=False)
    blur_share = lbp_sharpness(blurred, 11, T_LBP, normalise=False)
    assert sharp_share.mean() > 0.5  # codes 6-9 dominate a noise texture
    assert blur_share.max() < 0.02


def test_even_window_rejected():
    with pytest.raises(ValueError, match="odd"):
        lbp_sharpness(np.zeros((30, 30)), 10, T_LBP)


# Coarse-to-fine matting pieces ---------------------------------------------------------------
def test_down_then_up_reproduces_a_linear_ramp_inside():
    h, w = 61, 48
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    ramp = 0.3 * y - 0.7 * x + 2.0
    small = _down(ramp)
    assert small.shape == ((h - 5) // 2 + 1, (w - 5) // 2 + 1)
    np.testing.assert_allclose(small, ramp[2 : h - 2 : 2, 2 : w - 2 : 2][: small.shape[0], : small.shape[1]], atol=1e-12)
    back = _up(small, (h, w))
    inside = (slice(2, 2 + 2 * small.shape[0] - 1), slice(2, 2 + 2 * small.shape[1] - 1))
    np.testing.assert_allclose(back[inside], ramp[inside], atol=1e-12)
    np.testing.assert_array_equal(back[0], back[2])  # beyond the samples: replicated


def test_linear_fit_recovers_an_affine_function_of_colour(rng):
    img = rng.random((30, 40, 3))
    a, b = np.array([0.5, -1.0, 2.0]), 0.25
    alpha = img @ a + b
    coeff = _Guide(img, 1e-7).coefficients(alpha)
    assert coeff.shape == (30, 40, 4)
    np.testing.assert_allclose(coeff[..., :3], np.broadcast_to(a, (30, 40, 3)), atol=1e-4)
    np.testing.assert_allclose(coeff[..., 3], b, atol=1e-4)


def _half_blurred(rng, h=96, w=128, sigma=2.5):
    tex = rng.random((h, w, 3))
    soft = np.stack([ndimage.gaussian_filter(tex[..., c], sigma) for c in range(3)], axis=2)
    out = tex.copy()
    out[:, w // 2 :] = soft[:, w // 2 :]
    return out.astype(np.float32)


def test_matted_maps_separate_sharp_and_blurred_halves(rng):
    img = _half_blurred(rng)
    maps = matted_sharpness_maps(img)
    assert len(maps) == 3
    for m in maps:
        assert m.shape == img.shape[:2] and m.min() >= 0.0 and m.max() <= 1.0
        assert m[:, 10:50].mean() > 0.9 and m[:, 78:118].mean() < 0.1


# Belief propagation ---------------------------------------------------------------------------
def _potentials(maps):
    stack = np.stack([np.asarray(m, np.float64) for m in maps[::-1]])  # last map = layer 0
    z = (stack - stack.mean()) / stack.std(ddof=1)
    return np.exp(-np.abs(1 - z)), np.exp(-np.abs(z))  # (sharp, blurred), layer-major


def _graph(n, h, w):
    """Nodes and edges of loadAdjMatrixFull.m: grids per layer plus same-pixel layer links."""
    idx = np.arange(n * h * w).reshape(n, h, w)
    edges = []
    for layer in range(n):
        edges += list(zip(idx[layer, :-1].ravel(), idx[layer, 1:].ravel()))
        edges += list(zip(idx[layer, :, :-1].ravel(), idx[layer, :, 1:].ravel()))
    for layer in range(n - 1):
        edges += list(zip(idx[layer].ravel(), idx[layer + 1].ravel()))
    return edges


def _exact_marginals(maps, alpha):
    """Brute force over all labellings (tiny graphs only)."""
    sharp, blur = (p.ravel() for p in _potentials(maps))
    n, (h, w) = len(maps), np.shape(maps[0])
    edges = _graph(n, h, w)
    d = np.exp(-alpha)
    p_sharp = np.zeros(sharp.size)
    total = 0.0
    for labels in itertools.product((0, 1), repeat=sharp.size):  # 1 = sharp
        lab = np.array(labels)
        p = np.prod(np.where(lab == 1, sharp, blur))
        p *= np.prod([d if lab[i] != lab[j] else 1.0 for i, j in edges])
        total += p
        p_sharp += p * lab
    return (p_sharp / total).reshape(n, h, w)[0]


def _sequential_lbp(maps, alpha, sweeps=300):
    """Plain sum-product loopy BP, nodes updated one by one in index order (as UGM does)."""
    sharp, blur = (p.ravel() for p in _potentials(maps))
    n, (h, w) = len(maps), np.shape(maps[0])
    nbrs = [[] for _ in range(sharp.size)]
    for i, j in _graph(n, h, w):
        nbrs[i].append(j)
        nbrs[j].append(i)
    pot = np.array([[1.0, np.exp(-alpha)], [np.exp(-alpha), 1.0]])
    msg = {(i, j): np.array([0.5, 0.5]) for i in range(sharp.size) for j in nbrs[i]}
    for _ in range(sweeps):
        for i in range(sharp.size):
            for j in nbrs[i]:
                prod = np.array([sharp[i], blur[i]])
                for k in nbrs[i]:
                    if k != j:
                        prod = prod * msg[(k, i)]
                m = pot @ prod
                msg[(i, j)] = m / m.sum()
    bel = np.empty(sharp.size)
    for i in range(sharp.size):
        prod = np.array([sharp[i], blur[i]])
        for k in nbrs[i]:
            prod = prod * msg[(k, i)]
        bel[i] = prod[0] / prod.sum()
    return bel.reshape(n, h, w)[0]


@pytest.mark.parametrize("shape, n_maps", [((1, 7), 1), ((5, 1), 1), ((1, 1), 3)])
def test_fusion_is_exact_on_trees(rng, shape, n_maps):
    """On a chain (one row, one column, or one pixel through the layers) BP is exact."""
    maps = [rng.random(shape) for _ in range(n_maps)]
    belief, sweeps = fuse_scales(maps, alpha=0.5, tol=1e-12)
    assert belief.shape == shape and sweeps < 100
    np.testing.assert_allclose(belief, _exact_marginals(maps, 0.5), atol=1e-10)


@pytest.mark.parametrize("shape", [(4, 5), (5, 4), (3, 3)])
def test_fusion_matches_plain_sequential_loopy_bp(rng, shape):
    """Red/black updates reach the fixed point of UGM's node-order schedule (odd sizes: padding)."""
    maps = [rng.random(shape) for _ in range(3)]
    belief, _ = fuse_scales(maps, alpha=0.5, tol=1e-12)
    np.testing.assert_allclose(belief, _sequential_lbp(maps, 0.5), atol=1e-8)


def test_fusion_follows_consistent_evidence():
    """Maps that agree that the left half is sharp give a belief above 1/2 there, below it right."""
    m = np.zeros((20, 30))
    m[:, :15] = 1.0
    belief, _ = fuse_scales([m, m, m])
    assert np.all(belief[:, :12] > 0.5) and np.all(belief[:, 18:] < 0.5)
    assert 0.0 < belief.min() and belief.max() < 1.0


# Whole method and detector ---------------------------------------------------------------------
def test_detector_finds_the_blurred_half(rng):
    img = _half_blurred(rng)
    blur = Yi16LBP()(img)
    assert blur.dtype == np.float32 and blur.shape == img.shape[:2]
    assert blur[:, 10:50].mean() < 0.1 and blur[:, 78:118].mean() > 0.9
    sharp, per_scale = yi16_sharpness(img, return_scales=True)
    np.testing.assert_allclose(blur, 1.0 - sharp, atol=1e-6)
    assert len(per_scale) == 3


def test_uniform_images_are_blurred_everywhere():
    det = Yi16LBP()
    for value in (0.0, 0.5, 1.0):
        assert det(np.full((40, 50, 3), value, np.float32)).min() > 0.85


def test_small_images_work(rng):
    """The original needs two 2x reductions to keep a 3 x 3 window; below 21 px fewer are used."""
    for shape in [(16, 16), (20, 64), (21, 21)]:
        out = Yi16LBP()(_half_blurred(rng, *shape, sigma=1.5))
        assert out.shape == shape and np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scales": (11, 14)}, "yi16_lbp: scales must be a non-empty sequence of odd integers >= 1, got (11, 14)"),
        ({"t_lbp": 1.5}, "yi16_lbp: t_lbp must be a finite number in [0, 1], got 1.5"),
        ({"t_sharp": float("nan")}, "yi16_lbp: t_sharp must be a finite number in [0, 1], got nan"),
        ({"t_blur": -0.01}, "yi16_lbp: t_blur must be a finite number in [0, 1], got -0.01"),
        # seeds would be both sharp and blurred
        ({"t_sharp": 0.2, "t_blur": 0.3}, "yi16_lbp: t_blur must be <= t_sharp (0.2), got 0.3"),
        ({"alpha": -0.5}, "yi16_lbp: alpha must be a finite number >= 0, got -0.5"),
    ],
)
def test_out_of_range_settings(kwargs, message):
    from baselines.interface import InputError
    from baselines.yi16_lbp import Yi16LBP, yi16_sharpness

    with pytest.raises(InputError) as info:
        Yi16LBP(**kwargs)
    assert str(info.value) == message
    with pytest.raises(InputError) as info:
        yi16_sharpness(np.zeros((24, 24, 3)), **kwargs)
    assert str(info.value) == message


def test_matting_settings_checked():
    from baselines.interface import InputError
    from baselines.yi16_lbp import yi16_sharpness

    for kwargs, setting in [({"eps": 0.0}, "eps"), ({"lam": -1.0}, "lam"), ({"levels": 0}, "levels"),
                            ({"max_iter": 0}, "max_iter"), ({"tol": float("nan")}, "tol")]:
        with pytest.raises(InputError, match=f"^yi16_lbp: {setting} must be "):
            yi16_sharpness(np.zeros((24, 24, 3)), **kwargs)
