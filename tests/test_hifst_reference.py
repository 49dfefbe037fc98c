"""HiFST against the authors' code: Octave runs of HiFST.m and the authors' published maps.

* ``reference/hifst/<stem>.npz`` (5 photos): ``FinalMap``, ``T`` and ``D`` of ``HiFST(I, 1, 0)``.
* ``data/cuhk/published_maps/hifst/<stem>.png`` (all 12 photos): mat2gray(FinalMap), 8-bit, made
  by the authors with MATLAB.

Measured when written: r >= 0.99995 with every Octave ``FinalMap`` and ``T`` (max |T| error 9e-4)
except out_of_focus0607 (0.99995 / 0.99995); with the published maps r >= 0.99991 and >= 99.99 % of
pixels within one grey level on 11 photos. out_of_focus0607 (r = 0.99907 with its published map) is
sensitive to the JPEG decoder in its textured bottom rows: the Octave run of the original code
itself reaches only r = 0.99909 with the authors' MATLAB map there.
"""

from __future__ import annotations

import numpy as np
import pytest

from baselines.interface import read_image
from baselines.hifst import hifst_sharpness

DECODER_SENSITIVE = ("out_of_focus0607",)
_CACHE: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _maps(cuhk_dir, stem):
    if stem not in _CACHE:
        path = next(p for p in (cuhk_dir / "image").iterdir() if p.stem == stem)
        _CACHE[stem] = hifst_sharpness(read_image(path), return_intermediates=True)
    return _CACHE[stem]


def _published(cuhk_dir, stem) -> np.ndarray:
    import cv2

    img = cv2.imread(str(cuhk_dir / "published_maps" / "hifst" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    assert img is not None, stem
    return img.astype(np.float64)


def _r(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _as_published(final: np.ndarray) -> np.ndarray:
    """mat2gray, then 8 bits as MATLAB's imwrite rounds."""
    f = final.astype(np.float64)
    return np.floor((f - f.min()) / (f.max() - f.min()) * 255 + 0.5)


@pytest.mark.shared
def test_authors_check_value_and_octave_run_motion0138(cuhk_dir, reference_dir):
    """DemoHiFST.m: 'you must get mean2(FinalMap) = 0.1809' on motion0138.jpg."""
    final, t, d = _maps(cuhk_dir, "motion0138")
    assert float(final.mean()) == pytest.approx(0.1809, abs=0.002)
    ref = np.load(reference_dir / "hifst" / "motion0138.npz")
    assert float(final.mean()) == pytest.approx(float(ref["FinalMap"].mean()), abs=2e-4)
    assert np.abs(t - ref["T"]).max() < 5e-3
    assert _r(d, ref["D"]) > 0.9999
    assert _r(final, ref["FinalMap"]) > 0.9999
    diff = np.abs(_as_published(final) - _published(cuhk_dir, "motion0138"))
    assert diff.max() <= 2 and (diff == 0).mean() > 0.99


@pytest.mark.shared
@pytest.mark.slow
def test_octave_runs(cuhk_dir, reference_dir):
    stems = sorted(p.stem for p in (reference_dir / "hifst").glob("*.npz"))
    assert len(stems) == 5
    r_final = []
    for stem in stems:
        final, t, d = _maps(cuhk_dir, stem)
        ref = np.load(reference_dir / "hifst" / f"{stem}.npz")
        assert final.shape == ref["FinalMap"].shape
        r_final.append(_r(final, ref["FinalMap"]))
        assert _r(t, ref["T"]) > 0.9999, stem
        assert _r(d, ref["D"]) > 0.999, stem
        if stem not in DECODER_SENSITIVE:
            assert np.abs(t - ref["T"]).max() < 5e-3, stem
            assert r_final[-1] > 0.99999, stem
    assert np.mean(r_final) >= 0.995 and min(r_final) >= 0.99


@pytest.mark.shared
@pytest.mark.slow
def test_published_maps_all_photos(cuhk_dir, cuhk_photo_stems):
    assert len(cuhk_photo_stems) == 12
    rs = []
    for stem in cuhk_photo_stems:
        final, _, _ = _maps(cuhk_dir, stem)
        published = _published(cuhk_dir, stem)
        assert final.shape == published.shape, stem
        rs.append(_r(final, published))
        if stem not in DECODER_SENSITIVE:
            assert rs[-1] > 0.9998, stem
            assert (np.abs(_as_published(final) - published) <= 1).mean() > 0.999, stem
    assert np.mean(rs) >= 0.995 and min(rs) >= 0.99
