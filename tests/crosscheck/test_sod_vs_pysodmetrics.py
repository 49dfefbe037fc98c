"""The ``sod`` metric profile against PySODMetrics itself, on 60 random map/mask pairs and 4 edge cases.

PySODMetrics pins older numpy, scikit-image and OpenCV than the suite, so it is not a test
dependency: ``tox -e sod-crosscheck`` installs it in its own environment and runs this file
(with ``SOD_CROSSCHECK_REQUIRED=1``, so a missing package fails instead of skipping). Elsewhere
the file is skipped; ``tests/test_metric_profiles.py`` checks the formulas on hand-made cases.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

if os.environ.get("SOD_CROSSCHECK_REQUIRED") == "1":
    import py_sod_metrics as psm  # noqa: F401  (must be importable here)
else:
    psm = pytest.importorskip("py_sod_metrics", reason="PySODMetrics is not installed (tox -e sod-crosscheck)")

from evaluation.metrics import MetricsAccumulator  # noqa: E402
from evaluation.profiles import sod_image  # noqa: E402

N_PAIRS = 60  # random pairs; 4 hand-made edge cases are added
TOL = 1e-6


def _blob_mask(rng, h, w):
    """A smooth random region (thresholded low-pass noise), roughly 20-80% of the image."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.standard_normal((h, w)), sigma=max(1.0, min(h, w) / 6))
    return noise > np.quantile(noise, rng.uniform(0.2, 0.8))


def _pairs():
    """60 random (uint8 map, bool mask) pairs of sizes 7..160 px a side (seed 20240613), then 4 edge cases.

    Masks: smooth blobs, rectangles, and a few all-sharp and all-blurred ones; maps: uniform
    noise, the mask blended with noise, smooth maps, binary maps, the mask itself, constant maps,
    maps of a narrow range (to exercise the min-max normalisation).
    """
    rng = np.random.default_rng(20240613)
    pairs = []
    for i in range(N_PAIRS):
        h, w = (int(v) for v in rng.integers(7, 161, 2))
        kind = i % 10
        if kind == 8:
            mask = np.zeros((h, w), bool)
        elif kind == 9:
            mask = np.ones((h, w), bool)
        elif kind % 2:
            mask = np.zeros((h, w), bool)
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            mask[y0:y0 + rng.integers(2, h - y0), x0:x0 + rng.integers(2, w - x0)] = True
        else:
            mask = _blob_mask(rng, h, w)
        q = rng.uniform(0, 1)
        style = (i // 10) % 6
        if style == 0:
            score = rng.random((h, w))
        elif style == 1:
            score = q * mask + (1 - q) * rng.random((h, w))
        elif style == 2:
            from scipy.ndimage import gaussian_filter

            score = gaussian_filter(mask.astype(float) + 0.5 * rng.standard_normal((h, w)), 2)
            score = (score - score.min()) / (np.ptp(score) or 1)
        elif style == 3:
            score = (rng.random((h, w)) < 0.5 * q + 0.5 * mask * q).astype(float)
        elif style == 4:
            score = np.full((h, w), rng.uniform(0, 1)) if i % 3 else 0.3 + 0.1 * rng.random((h, w))
        else:
            score = 0.2 + 0.3 * (0.7 * mask + 0.3 * rng.random((h, w)))
        if i % 7 == 3:  # a perfect binary map: quadrants where map and mask are both constant
            score = mask.astype(float)
        levels = np.clip(np.floor(score * 255 + 0.5), 0, 255).astype(np.uint8)
        pairs.append((levels, mask))
    # Edge cases: a one-pixel quadrant (foreground centroid at the first pixel), a constant map,
    # a perfect map on a block, a three-row image.
    corner = np.zeros((12, 15), bool)
    corner[0, 0] = True
    block = np.zeros((10, 10), bool)
    block[:3, :4] = True
    pairs += [(rng.integers(0, 256, corner.shape).astype(np.uint8), corner),
              (np.full(block.shape, 77, np.uint8), block),
              ((block * 255).astype(np.uint8), block),
              (rng.integers(0, 256, (3, 40)).astype(np.uint8),
               np.vstack([rng.random((2, 40)) < 0.4, np.zeros((1, 40), bool)]))]
    return pairs


def _reference(levels, mask):
    """PySODMetrics' values for one pair (curves indexed by threshold, as ours)."""
    gt = mask.astype(np.uint8) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm, em, sm, wfm, mae = psm.Fmeasure(), psm.Emeasure(), psm.Smeasure(), psm.WeightedFmeasure(), psm.MAE()
    for m in (fm, em, sm, wfm, mae):
        m.step(pred=levels, gt=gt)
    return fm, em, sm, wfm, mae


def test_sod_profile_matches_pysodmetrics_per_image_and_overall():
    pairs = _pairs()
    assert len(pairs) >= 50
    per_metric: dict[str, float] = {}

    def record(name, ours, ref):
        diff = float(np.max(np.abs(np.asarray(ours, float) - np.asarray(ref, float))))
        assert np.all(np.isfinite(ours)) and np.all(np.isfinite(ref)), name
        per_metric[name] = max(per_metric.get(name, 0.0), diff)

    # Per image: every value and both whole curves (PySODMetrics' index k is threshold 255 - k).
    for levels, mask in pairs:
        ours = sod_image(levels, mask)
        fm, em, sm, wfm, mae = _reference(levels, mask)
        record("F curve (per image)", ours["f_curve"], np.flip(fm.changeable_fms[0]))
        record("F adaptive (per image)", ours["f_adaptive"], fm.adaptive_fms[0])
        record("E curve (per image)", ours["e_curve"], np.flip(em.changeable_ems[0]))
        record("E adaptive (per image)", ours["e_adaptive"], em.adaptive_ems[0])
        record("S-measure (per image)", ours["s"], sm.sms[0])
        record("weighted F (per image)", ours["wf"], wfm.weighted_fms[0])
        record("MAE (per image)", ours["mae"], mae.maes[0])

    # Over the set, as the runner reports it.
    acc = MetricsAccumulator(("paper", "sod"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm, em, sm, wfm, mae = psm.Fmeasure(), psm.Emeasure(), psm.Smeasure(), psm.WeightedFmeasure(), psm.MAE()
    for i, (levels, mask) in enumerate(pairs):
        acc.add(f"p{i}", levels, mask)
        for m in (fm, em, sm, wfm, mae):
            m.step(pred=levels, gt=mask.astype(np.uint8) * 255)
    got = acc.scores().profile_values
    f, e = fm.get_results()["fm"], em.get_results()["em"]
    want = {"sod_fbeta_max": f["curve"].max(), "sod_fbeta_mean": f["curve"].mean(), "sod_fbeta_adaptive": f["adp"],
            "sod_emeasure_max": e["curve"].max(), "sod_emeasure_mean": e["curve"].mean(),
            "sod_emeasure_adaptive": e["adp"], "sod_smeasure": sm.get_results()["sm"],
            "sod_wfbeta": wfm.get_results()["wfm"], "sod_mae": mae.get_results()["mae"]}
    assert set(want) == {k for k in got if k.startswith("sod_")}
    for k, v in want.items():
        record(k, got[k], v)

    from importlib.metadata import version

    print(f"\nPySODMetrics {version('pysodmetrics')} vs the sod profile, {len(pairs)} pairs: max |difference|")
    for name, diff in per_metric.items():
        print(f"  {name:28s} {diff:.3g}")
    bad = {k: v for k, v in per_metric.items() if not v <= TOL}
    assert not bad, bad


def test_empty_quadrant_departure():
    """Foreground only in the last column: PySODMetrics' S-measure is NaN (an empty quadrant), ours is finite.

    The quadrants right of the centroid are empty and weigh 0; we count them as 0 (the stated departure).
    Every other sod value still agrees.
    """
    levels = np.zeros((9, 9), np.uint8)
    levels[:, 7:] = 200
    mask = np.zeros((9, 9), bool)
    mask[:, 8] = True
    ours = sod_image(levels, mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PySODMetrics' mean of an empty quadrant
        fm, em, sm, wfm, mae = _reference(levels, mask)
    assert np.isnan(sm.sms[0])
    assert np.isfinite(ours["s"]) and 0 <= ours["s"] <= 1
    assert ours["wf"] == pytest.approx(wfm.weighted_fms[0], abs=TOL)
    np.testing.assert_allclose(ours["f_curve"], np.flip(fm.changeable_fms[0]), atol=TOL)
