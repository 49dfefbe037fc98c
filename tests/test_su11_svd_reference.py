"""Su11 against the shared reference maps of the third-party MATLAB ``svf.m`` (k = 6, 15 x 15).

``svf.m`` takes the HSV value channel, pads symmetrically (MATLAB ``padarray 'symmetric'``) and
returns the raw ratio beta_1 (NaN where a window is all zero). With those settings our map must
match it; the default settings (the first author's code) differ on purpose.
"""

from __future__ import annotations

import numpy as np
import pytest

from baselines.interface import read_image
from baselines.su11_svd import su11_svd

SVF = dict(k=6, window=15, channel="value", padding="symmetric", normalise=False)
HALF = 7  # 15 // 2: a crop keeps the exact value of pixels HALF or more from its border


def _load(cuhk_dir, reference_dir, stem):
    path = next(p for p in (cuhk_dir / "image").iterdir() if p.stem == stem)
    ref = np.load(reference_dir / "su11_svf" / f"{stem}.npz")["scoremap"]
    return read_image(path), ref


def _check(ours: np.ndarray, ref: np.ndarray) -> float:
    ok = np.isfinite(ref)
    np.testing.assert_allclose(ours[ok], ref[ok], atol=1e-5)
    assert np.all(ours[~ok] == 1.0), "all-zero windows (NaN in svf.m) are defined as 1"
    return float(np.corrcoef(ours[ok], ref[ok])[0, 1])


@pytest.mark.shared
def test_matches_svf_on_crops(cuhk_dir, reference_dir, cuhk_photo_stems):
    """Fast: a 120 x 120 crop of every photo, plus the photo's top-left corner (borders)."""
    assert len(cuhk_photo_stems) == 12
    rs = []
    for stem in cuhk_photo_stems:
        rgb, ref = _load(cuhk_dir, reference_dir, stem)
        assert ref.shape == rgb.shape[:2]
        h, w = ref.shape
        r0, c0 = h // 2 - 60, w // 2 - 60
        crop = su11_svd(rgb[r0 - HALF : r0 + 120 + HALF, c0 - HALF : c0 + 120 + HALF], **SVF)
        rs.append(_check(crop[HALF:-HALF, HALF:-HALF], ref[r0 : r0 + 120, c0 : c0 + 120]))
        corner = su11_svd(rgb[: 40 + HALF, : 40 + HALF], **SVF)
        _check(corner[:40, :40], ref[:40, :40])
    assert min(rs) >= 0.99 and np.mean(rs) >= 0.99


@pytest.mark.shared
@pytest.mark.slow
def test_matches_svf_on_full_photos(cuhk_dir, reference_dir, cuhk_photo_stems):
    """The acceptance criterion: mean Pearson r >= 0.99 over the 12 full photos (NaNs ignored)."""
    rs = []
    for stem in cuhk_photo_stems:
        rgb, ref = _load(cuhk_dir, reference_dir, stem)
        assert np.isfinite(ref).mean() > 0.95
        rs.append(_check(su11_svd(rgb, **SVF), ref))
    assert len(rs) == 12
    assert np.mean(rs) >= 0.99 and min(rs) >= 0.99
