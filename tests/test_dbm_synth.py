"""Blur synthesis primitives of the synthetic corpus (no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dbm import synth


@pytest.mark.parametrize("radius", [1.0, 2.5, 7.0])
def test_disk_psf_is_normalised_round_and_of_the_right_area(radius):
    k = synth.disk_psf(radius)
    assert k.shape[0] == k.shape[1] == 2 * int(np.ceil(radius)) + 1
    assert abs(k.sum() - 1) < 1e-5
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
    # support area ~ pi r^2 (pixels at more than half the peak)
    assert abs((k > k.max() / 2).sum() - np.pi * radius**2) < 2 * np.pi * radius + 2


def test_identity_psfs():
    assert synth.disk_psf(0.3).shape == (1, 1)
    assert synth.motion_psf(0.5, 30).shape == (1, 1)


@pytest.mark.parametrize("angle", [0.0, 90.0, 45.0])
def test_motion_psf_is_a_segment_of_the_given_length_and_direction(angle):
    k = synth.motion_psf(15, angle)
    assert abs(k.sum() - 1) < 1e-5
    ys, xs = np.nonzero(k > 1e-4)
    c = k.shape[0] // 2
    extent = np.hypot(xs - c, ys - c).max() * 2
    assert 14 <= extent <= 17
    if angle == 0.0:
        assert set(ys) <= {c - 1, c, c + 1}
    if angle == 90.0:
        assert set(xs) <= {c - 1, c, c + 1}


def test_shake_psf_extent():
    k = synth.shake_psf(20, np.random.default_rng(0))
    assert abs(k.sum() - 1) < 1e-5
    ys, xs = np.nonzero(k > 0)
    assert 15 <= max(np.ptp(xs), np.ptp(ys)) <= 23


def test_apply_psf_preserves_flat_images_and_blurs_edges(natural_rgb):
    flat = np.full((40, 40, 3), 0.4, np.float32)
    np.testing.assert_allclose(synth.apply_psf(flat, synth.disk_psf(4)), flat, atol=1e-4)
    out = synth.apply_psf(natural_rgb, synth.disk_psf(4))
    grad = lambda im: np.abs(np.diff(im.mean(-1), axis=1)).mean()  # noqa: E731
    assert grad(out) < 0.6 * grad(natural_rgb)


def test_normalized_blur_ignores_pixels_outside_the_support():
    img = np.zeros((30, 30, 3), np.float32)
    img[:, 15:] = 1.0  # a bright occluder on the right
    support = np.zeros((30, 30), bool)
    support[:, :15] = True  # the dark background layer
    out = synth.normalized_blur(img, synth.disk_psf(5), support)
    assert out[:, :15].max() < 1e-3  # no halo of the occluder


@pytest.mark.parametrize("kind", ["subject", "subject_ground", "band", "foreground_blur", "split", "all_blurred", "all_sharp"])
def test_scene_masks(kind):
    m = synth.random_scene_mask((120, 160), np.random.default_rng(3), kind)
    assert m.shape == (120, 160) and m.dtype == bool
    if kind == "all_blurred":
        assert m.all()
    elif kind == "all_sharp":
        assert not m.any()
    else:
        assert 0.02 < m.mean() < 0.98
    if kind in ("subject", "subject_ground"):
        assert m[0].mean() > 0.5  # the top of the frame is background, blurred


def test_random_masks_are_mostly_blurred_like_cuhk():
    rng = np.random.default_rng(0)
    frac = np.mean([synth.random_scene_mask((60, 80), rng).mean() for _ in range(200)])
    assert 0.5 < frac < 0.8  # CUHK: about 64% of pixels blurred


def test_snap_mask_follows_image_edges():
    img = np.zeros((60, 80, 3), np.float32)
    img[:, 40:] = 1.0
    mask = np.zeros((60, 80), bool)
    mask[:, 36:] = True  # a boundary 4 px off the image edge
    snapped = synth.snap_mask_to_segments(mask, img, n_segments=40)
    assert snapped[:, 42:].all() and not snapped[:, :38].any()


def test_defocus_from_disparity_grows_with_distance_from_focus(natural_rgb):
    h, w = natural_rgb.shape[:2]
    disp = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
    out, radius = synth.defocus_from_disparity(natural_rgb, disp, focus=0.0, radius_per_unit=8.0, n_layers=4)
    assert radius[:, 0].max() == 0 and radius[:, -1].min() > 7
    lap = lambda im: np.abs(ndimage.laplace(im.mean(-1)))  # noqa: E731
    assert lap(out)[:, : w // 5].mean() > 2 * lap(out)[:, -w // 5 :].mean()


def test_synthesize_partial_blur_labels_the_blurred_part(natural_rgb):
    spec = synth.BlurSpec(p_motion=0.0, defocus_radius=(5, 5), p_depth=0.0, p_snap=0.0, noise_sigma=(0, 0), jpeg_quality=(100, 100))
    mask = np.zeros(natural_rgb.shape[:2], bool)
    mask[:, 80:] = True
    out, m, info = synth.synthesize_partial_blur(natural_rgb, np.random.default_rng(0), spec, mask=mask)
    np.testing.assert_array_equal(m, mask)
    assert info["blur"] == "defocus"
    diff = np.abs(out - natural_rgb).mean(-1)
    assert diff[:, :70].mean() < 0.02 < diff[:, 90:].mean()


def test_synthesize_is_deterministic_and_in_range(natural_rgb):
    a = synth.synthesize_partial_blur(natural_rgb, np.random.default_rng(5))
    b = synth.synthesize_partial_blur(natural_rgb, np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].dtype == np.float32 and 0 <= a[0].min() and a[0].max() <= 1


def test_synth_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, dbm.synth, dbm; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("blur", ["motion", "defocus"])
def test_synthesize_can_force_the_kind_of_blur(natural_rgb, blur):
    mask = np.zeros(natural_rgb.shape[:2], bool)
    mask[:, 80:] = True
    for seed in range(4):
        _, m, info = synth.synthesize_partial_blur(natural_rgb, np.random.default_rng(seed), mask=mask, blur=blur)
        assert info["blur"] == blur
        np.testing.assert_array_equal(m, mask)
    with pytest.raises(ValueError, match="blur must be"):
        synth.synthesize_partial_blur(natural_rgb, np.random.default_rng(0), mask=mask, blur="gaussian")
