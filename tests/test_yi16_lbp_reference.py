"""Yi16 against the authors' own MATLAB code (``demo.m``, run under Octave) on the 12 CUHK photos.

The reference ``.npz`` files hold ``final_map`` and the matted per-scale maps ``scale1..3``
(s = 11, 15, 21), so every stage is checked on its own: the per-scale maps (LBP, seeds,
coarse-to-fine matting) from the photo, and the belief-propagation fusion from the reference's
own per-scale maps.
"""

from __future__ import annotations

import numpy as np
import pytest

from baselines.interface import read_image
from baselines.yi16_lbp import fuse_scales, yi16_sharpness

SCALES = ("scale1", "scale2", "scale3")
# Both BP schedules converge (summed message change < 1e-4) on these: maps agree to ~1e-6.
CONVERGING = ("out_of_focus0035", "out_of_focus0142")


def _load(cuhk_dir, reference_dir, stem):
    path = next(p for p in (cuhk_dir / "image").iterdir() if p.stem == stem)
    return read_image(path), np.load(reference_dir / "yi16" / f"{stem}.npz")


def _r(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.shared
@pytest.mark.parametrize("stem", CONVERGING)
def test_fusion_matches_reference_given_its_scale_maps(reference_dir, stem):
    ref = np.load(reference_dir / "yi16" / f"{stem}.npz")
    belief, sweeps = fuse_scales([ref[k] for k in SCALES])
    assert sweeps < 100
    np.testing.assert_allclose(belief, ref["final_map"], atol=1e-4)


@pytest.mark.shared
def test_one_photo_every_stage(cuhk_dir, reference_dir):
    """Fast: out_of_focus0035, where a seed value of 1 - 9e-16 (MATLAB's rgb2gray) would differ."""
    rgb, ref = _load(cuhk_dir, reference_dir, "out_of_focus0035")
    final, per_scale = yi16_sharpness(rgb, return_scales=True)
    for ours, key in zip(per_scale, SCALES):
        assert ours.shape == ref[key].shape
        np.testing.assert_allclose(ours, ref[key], atol=1e-3)
    np.testing.assert_allclose(final, ref["final_map"], atol=1e-3)


@pytest.mark.shared
@pytest.mark.slow
def test_all_photos(cuhk_dir, reference_dir, cuhk_photo_stems):
    """The acceptance criterion: final map mean Pearson r >= 0.99, worst >= 0.97 (and per scale)."""
    finals, scales = [], []
    for stem in cuhk_photo_stems:
        rgb, ref = _load(cuhk_dir, reference_dir, stem)
        final, per_scale = yi16_sharpness(rgb, return_scales=True)
        finals.append(_r(final, ref["final_map"]))
        scales.append([_r(ours, ref[key]) for ours, key in zip(per_scale, SCALES)])
        # Per-scale maps are reproduced, not just correlated: 1e-3 is far above float32 storage
        # error and far below a changed seed (which moves a region by up to 1).
        for ours, key in zip(per_scale, SCALES):
            assert np.abs(ours - ref[key]).mean() < 1e-4, (stem, key)
    assert len(finals) == 12
    assert np.mean(finals) >= 0.99 and min(finals) >= 0.97, finals
    assert min(finals) >= 0.999, finals  # measured: 1.000000 on all 12
    assert np.min(scales) >= 0.999, scales
