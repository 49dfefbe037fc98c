"""Metric profiles ``sod`` and ``dbd`` on cases worked out by hand, ``--metrics`` and ``--maps-resize`` end to end.

The ``sod`` profile is also checked against PySODMetrics itself on 64 map/mask pairs by
``tox -e sod-crosscheck`` (tests/crosscheck/); these hand-made cases check the formulas without it.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from evaluation import run
from evaluation.datasets import Dataset, DatasetError, ExternalMaps
from evaluation.metrics import PROFILE_FIELDS, PROFILES, MetricsAccumulator, parse_profiles
from evaluation.profiles import dbd_fixed_threshold, dbd_kit_fmax, sod_image

REPO = Path(__file__).resolve().parents[1]


def _hist(levels, mask):
    levels, mask = np.asarray(levels, np.uint8), np.asarray(mask, bool)
    return (np.bincount(levels[mask], minlength=256)[None], np.bincount(levels[~mask], minlength=256)[None])


# --- sod ---------------------------------------------------------------------------------------------------------
# A 4 x 4 binary map: blurred = the left two columns (8 px); the map calls rows 0-2 of those
# columns blurred (6 TP) and one pixel of column 2 (1 FP); 2 FN, 7 TN.
MASK = np.zeros((4, 4), bool)
MASK[:, :2] = True
MAP = np.zeros((4, 4), np.uint8)
MAP[:3, :2] = 255
MAP[0, 2] = 255


def test_sod_f_mae_e_on_a_binary_4x4_map():
    v = sod_image(MAP, MASK)
    # The map spans 0..255, so min-max normalisation leaves it 0/1. At t = 0 everything is
    # predicted: P = 1/2, R = 1, F = 1.3 * 0.5 / (0.15 + 1) = 13/23. At t = 1..255: P = 6/7,
    # R = 3/4: F = 1.3 * 18/28 / (1.8/7 + 3/4) = 39/47.
    assert v["f_curve"][0] == pytest.approx(13 / 23)
    np.testing.assert_allclose(v["f_curve"][1:], 39 / 47)
    # Adaptive: mean(pred) = 7/16, threshold 7/8: the 7 pixels at 1, as at t >= 1.
    assert v["f_adaptive"] == pytest.approx(39 / 47)
    # MAE: 2 FN + 1 FP of error 1, over 16 pixels.
    assert v["mae"] == pytest.approx(3 / 16)
    # E-measure at t >= 1: mu_pred = 7/16, mu_gt = 1/2. Parts (count, a, b): TP (6, 9/16, 1/2),
    # FP (1, 9/16, -1/2), FN (2, -7/16, 1/2), TN (7, -7/16, -1/2); xi = 2ab / (a^2 + b^2) =
    # 144/145, -144/145, -112/113, 112/113; (xi + 1)^2 / 4 = 83521/84100, 1/84100, 1/51076,
    # 50625/51076. E = sum(count x value) / (16 - 1).
    e1 = (6 * 83521 / 84100 + 1 / 84100 + 2 / 51076 + 7 * 50625 / 51076) / 15
    np.testing.assert_allclose(v["e_curve"][1:], e1, rtol=1e-12)
    # At t = 0 everything is predicted: mu_pred = 1, a = 0 for all 16 pixels: value 1/4 each.
    assert v["e_curve"][0] == pytest.approx(4 / 15)
    assert v["e_adaptive"] == pytest.approx(e1)


def test_sod_s_measure_on_the_binary_4x4_map():
    # Object score: blurred pixels' map values 1 x 6, 0 x 2: mean 3/4, std (ddof 1) sqrt(1.5/7);
    # sharp pixels' (1 - map) 1 x 7, 0 x 1: mean 7/8, std sqrt(0.875/7). S(x) = 2m / (m^2 + 1 + std).
    s_fg = 1.5 / (0.5625 + 1 + math.sqrt(1.5 / 7))
    s_bg = 1.75 / (0.765625 + 1 + math.sqrt(0.125))
    s_object = 0.5 * s_fg + 0.5 * s_bg
    # Region score: blurred centroid (row 1.5, col 0.5) rounds half to even to (2, 0): split after
    # row 3 and column 1 (MATLAB's 1:X). Top-left 3 x 1: map = mask = 1, constant: SSIM 1 (weight
    # 3/16). Top-right 3 x 3: map mean 4/9, mask mean 1/3, var 5/18 and 1/4, cov 5/24: SSIM =
    # 4 xy cov / ((x^2 + y^2)(var_x + var_y)) = 72/95 (weight 9/16). Bottom-left 1 px: SSIM 1
    # (weight 1/16). Bottom-right 1 x 3: map all 0, mask not constant: SSIM 0 (weight 3/16).
    s_region = 3 / 16 + 9 / 16 * 72 / 95 + 1 / 16
    assert sod_image(MAP, MASK)["s"] == pytest.approx(0.5 * s_object + 0.5 * s_region, rel=1e-12)


def test_sod_weighted_f_by_hand():
    # A perfect map: no error anywhere, so R = 1, P = 1, weighted F = 1.
    assert sod_image(MASK * np.uint8(255), MASK)["wf"] == pytest.approx(1.0)
    # Everything called blurred on a 1 x 4 mask [1, 1, 0, 0]: error 0 on the blurred pixels,
    # and the sharp pixels take the (zero) error of their nearest blurred pixel before smoothing,
    # so the smoothed error never undercuts: Ew = error x (2 - 0.5^(d/5)) with d = 1, 2.
    # TPw = 2, FPw = (2 - 0.5^0.2) + (2 - 0.5^0.4), R = 1, P = TPw / (TPw + FPw), F = 2P / (1 + P).
    fpw = (2 - 0.5 ** 0.2) + (2 - 0.5 ** 0.4)
    p = 2 / (2 + fpw)
    v = sod_image(np.full((1, 4), 255, np.uint8), np.array([[1, 1, 0, 0]], bool))
    assert v["wf"] == pytest.approx(2 * p / (1 + p), rel=1e-12)
    # No blurred pixel in the mask: 0, as PySODMetrics.
    assert sod_image(np.zeros((3, 3), np.uint8), np.zeros((3, 3), bool))["wf"] == 0.0


def test_sod_min_max_normalisation_and_truncation():
    # Levels 51 and 102 only: normalised to 0 and 1, so the map is as good as a 0/255 map.
    mask = np.array([[1, 0]], bool)
    narrow = sod_image(np.array([[102, 51]], np.uint8), mask)
    full = sod_image(np.array([[255, 0]], np.uint8), mask)
    for key in ("mae", "s", "wf", "f_adaptive", "e_adaptive"):
        assert narrow[key] == pytest.approx(full[key])
    np.testing.assert_allclose(narrow["f_curve"], full["f_curve"])
    # Levels 10, 100, 255: normalised 0, 90/245, 1; the curves binarise floor(255 x 90/245) = 93
    # (truncated, not rounded to 94): both blurred pixels predicted up to t = 93 (F = 1), then only
    # the first (P = 1, R = 1/2, F = 0.65 / 0.8 = 0.8125).
    v = sod_image(np.array([[255, 100, 10]], np.uint8), np.array([[1, 1, 0]], bool))
    assert v["f_curve"][93] == pytest.approx(1.0) and v["f_curve"][94] == pytest.approx(0.8125)
    # Adaptive threshold min(2 x mean, 1): levels 255, 242, 242, 0 -> mean 0.72, threshold 1: only the
    # first pixel, the blurred one, is predicted (F = 1; a threshold below 0.95 would take three).
    v = sod_image(np.array([[255, 242, 242, 0]], np.uint8), np.array([[1, 0, 0, 0]], bool))
    assert v["f_adaptive"] == pytest.approx(1.0)
    # A constant map is left as it is (l / 255): MAE of 0.2 on a half-blurred mask = 0.5.
    assert sod_image(np.full((1, 2), 51, np.uint8), mask)["mae"] == pytest.approx(0.5)
    # F is 0 when nothing blurred is predicted, even for a mask with nothing blurred (PySODMetrics).
    assert np.all(sod_image(np.zeros((2, 2), np.uint8), np.zeros((2, 2), bool))["f_curve"] == 0)


def test_sod_profile_averages_over_images():
    acc = MetricsAccumulator(("sod",))
    acc.add("a", MAP, MASK)
    acc.add("b", MASK * np.uint8(255), MASK)  # perfect: F = 1 at every t >= 1, at t = 0 F = 13/23
    got = acc.scores().profile_values
    # Image-mean curve: t = 0: 13/23; t >= 1: (39/47 + 1) / 2. Max over t, mean over the 256 t.
    assert got["sod_fbeta_max"] == pytest.approx((39 / 47 + 1) / 2)
    assert got["sod_fbeta_mean"] == pytest.approx((13 / 23 + 255 * (39 / 47 + 1) / 2) / 256)
    assert got["sod_mae"] == pytest.approx(3 / 32)
    assert got["sod_wfbeta"] == pytest.approx((sod_image(MAP, MASK)["wf"] + 1) / 2)
    assert set(got) == {k for k in PROFILE_FIELDS if k.startswith("sod_")}
    with pytest.raises(ValueError, match="needs each image's map"):
        acc.add_counts("c", None)


def test_in_focus_positive_changes_f_but_not_mae_or_max_mean_e(rng):
    """What PROFILES["sod"].positive states: inverting map and mask keeps MAE and max/mean E, changes F."""
    mask = np.zeros((30, 40), bool)
    mask[:, 25:] = True
    levels = np.round(np.clip(0.3 * mask + 0.7 * rng.random(mask.shape), 0, 1) * 255).astype(np.uint8)
    blur, focus = sod_image(levels, mask), sod_image(255 - levels, ~mask)
    assert focus["mae"] == pytest.approx(blur["mae"])
    assert focus["e_curve"].max() == pytest.approx(blur["e_curve"].max())
    assert focus["e_curve"].mean() == pytest.approx(blur["e_curve"].mean())
    assert abs(focus["f_curve"].max() - blur["f_curve"].max()) > 0.01
    assert abs(focus["wf"] - blur["wf"]) > 0.01
    assert "in focus" in PROFILES["sod"].positive and "max and mean E-measure" in PROFILES["sod"].positive


# --- dbd ---------------------------------------------------------------------------------------------------------
def test_dbd_fixed_threshold_by_hand():
    # Level >= 128 is predicted blurred: 200 TP, 128 FP, 127 FN, 0 TN.
    pos, neg = _hist([[200, 128], [127, 0]], [[1, 0], [1, 0]])
    got = dbd_fixed_threshold(pos, neg)
    assert got["dbd_fbeta_at_128"] == pytest.approx(1.3 / (1.3 + 0.3 + 1))  # TP 1, FP 1, FN 1
    assert got["dbd_iou_at_128"] == pytest.approx(1 / 3)
    # Nothing blurred, nothing predicted: both 1 (a perfect answer); nothing predicted on a blurred image: 0.
    pos, neg = _hist([[0, 127], [10, 0]], [[0, 0], [1, 1]])
    pos = np.vstack([pos, _hist([[0, 0]], [[0, 0]])[0]])
    neg = np.vstack([neg, _hist([[0, 0]], [[0, 0]])[1]])
    got = dbd_fixed_threshold(pos, neg)
    assert got["dbd_fbeta_at_128"] == pytest.approx(0.5) and got["dbd_iou_at_128"] == pytest.approx(0.5)


def test_dbd_kit_fmax_by_hand():
    # Map / its max (200): 1, 0.5, 0.25, 0 at (0,0), (0,1), (1,0), (1,1); blurred (0,0) and (1,0).
    # Thresholds i x 0.00392157: i <= 63 (<= 0.247): 3 predicted, TP 2: P 2/3, R 1, F = 0.7222;
    # i = 64..127: (0,0) and (0,1): P = R = 1/2, F = 0.5; i = 128..254: (0,0): P 1, R 1/2,
    # F = 0.65 / 0.8 = 0.8125; i = 255 (1.00000035 > 1): nothing, F = 0. Best: 0.8125.
    pos, neg = _hist([[200, 100], [50, 0]], [[1, 0], [1, 0]])
    assert dbd_kit_fmax(pos, neg) == pytest.approx(0.8125)
    # An all-zero map scores 0 but is left out of the kit's denominator (totalNum): still 0.8125.
    zpos, zneg = _hist([[0, 0], [0, 0]], [[1, 0], [1, 0]])
    assert dbd_kit_fmax(np.vstack([pos, zpos]), np.vstack([neg, zneg])) == pytest.approx(0.8125)
    # The step is 0.00392157 (> 1/255): a level l is predicted for i <= l - 1 only when the map's
    # maximum is 255, so {l >= 1} is never a prediction: map 1, 255, 0 on mask 1, 1, 0 gets at best
    # {255}: P 1, R 1/2, F = 0.8125 (a step of 1/255 would give F = 1 at i = 1).
    pos, neg = _hist([[1, 255, 0]], [[1, 1, 0]])
    assert dbd_kit_fmax(pos, neg) == pytest.approx(0.8125)
    # A mask with nothing blurred: the kit scores i = 1 on the inverted map against an all-positive
    # mask (the two pixels at 0: P 1, R 2/3, F = 0.8667 / 0.9667 = 26/29) and then, its mask
    # overwritten with ones, the plain map (the pixel at 255: R = 1/3, F = 0.4333 / 0.6333 = 13/19);
    # the best, 26/29, is kept. (Inverting at every i would reach F = 1; never inverting, 13/19.)
    pos, neg = _hist([[0, 0, 255]], [[0, 0, 0]])
    assert dbd_kit_fmax(pos, neg) == pytest.approx(26 / 29)
    # Every map all zero: undefined.
    assert math.isnan(dbd_kit_fmax(zpos, zneg))


def test_dbd_profile_in_the_accumulator_shares_the_mae_column():
    acc = MetricsAccumulator(("dbd",))
    acc.add("a", np.array([[200, 100], [50, 0]], np.uint8), np.array([[1, 0], [1, 0]], bool))
    s = acc.scores()
    assert s.profile_values["dbd_fmax"] == pytest.approx(0.8125)
    assert "mae" in PROFILES["dbd"].metrics and "mae" not in PROFILE_FIELDS  # one column, the suite's MAE
    # MAE at native resolution, no normalisation: |200/255 - 1| + 100/255 + |50/255 - 1| + 0, over 4.
    assert s.mae == pytest.approx((55 + 100 + 205) / 255 / 4)
    assert MetricsAccumulator().profiles == ("paper",)


# --- profiles, --metrics, the report -----------------------------------------------------------------------------
def test_parse_profiles():
    assert parse_profiles("sod") == ("paper", "sod")
    assert parse_profiles("dbd, paper,sod") == ("paper", "dbd", "sod")
    with pytest.raises(ValueError, match="unknown metric profile 'pysod'.*paper, sod, dbd"):
        parse_profiles("pysod")
    for p in PROFILES.values():  # every profile states its conventions
        assert p.positive and p.normalisation and p.binarisation and p.resizing and p.metrics


def _masks_dataset(root: Path, n: int = 3, shape=(40, 48)) -> Path:
    """Masks only (no photos), blurred blocks on even coordinates, so 2x nearest upsampling is exact."""
    (root / "gt").mkdir(parents=True)
    for i in range(n):
        mask = np.zeros(shape, np.uint8)
        mask[:, 2 * (4 + 2 * i):] = 255
        mask[: 2 * (3 + i), :] = 255
        cv2.imwrite(str(root / "gt" / f"m{i}.png"), mask)
    return root


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_runner_metrics_option_adds_columns_and_sections(tmp_path):
    data = _masks_dataset(tmp_path / "d")
    maps = tmp_path / "maps"
    maps.mkdir()
    rng = np.random.default_rng(3)
    for p in (data / "gt").iterdir():
        mask = cv2.imread(str(p), cv2.IMREAD_UNCHANGED) == 255
        noisy = np.clip(0.6 * mask + 0.4 * rng.random(mask.shape), 0, 1)
        cv2.imwrite(str(maps / p.name), np.round(noisy * 255).astype(np.uint8))
    out = tmp_path / "out"
    base = ["--data", str(data), "--split", "all", "--no-polarity-check", "--out", str(out), "--quiet"]
    assert run.main(base + ["--methods", "plain", "--maps", f"plain={maps}"]) == 0
    assert run.main(base + ["--methods", "both", "--maps", f"both={maps}", "--metrics", "sod,dbd"]) == 0
    rows = {r["method"]: r for r in _rows(out / "metrics.csv")}
    assert all(rows["plain"][k] == "" for k in PROFILE_FIELDS)  # default: paper only, columns empty
    assert all(rows["both"][k] != "" for k in PROFILE_FIELDS)
    assert rows["both"]["ods"] == rows["plain"]["ods"]  # the paper's columns are unchanged
    # The same numbers as the accumulator gives on the same maps and masks.
    acc = MetricsAccumulator(("sod", "dbd"))
    for s in Dataset(data).samples("all", need_images=False):
        acc.add(s.stem, cv2.imread(str(maps / f"{s.stem}.png"), cv2.IMREAD_UNCHANGED), s.mask())
    for k, v in acc.scores().profile_values.items():
        assert float(rows["both"][k]) == pytest.approx(v, abs=1e-6)
    report = (out / "report.md").read_text()
    for name in ("sod", "dbd"):
        section = report.split(f"### Metric profile {name}")[1].split("###")[0]
        assert "| both |" in section and "| plain |" not in section
        assert "Positive class: blurred" in section and "in focus" in section
    assert "PySODMetrics" in report and "evaluate_dbd" in report


def test_metrics_option_error_is_one_line(tmp_path, capsys):
    assert run.main(["--metrics", "paper,pysod", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "unknown metric profile 'pysod'" in err and "\n" not in err


# --- --maps-resize ------------------------------------------------------------------------------------------------
def _half_size_maps(data: Path, folder: Path, npy: bool = False) -> None:
    folder.mkdir()
    for p in (data / "gt").iterdir():
        mask = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        small = mask[::2, ::2]
        if npy:
            np.save(folder / f"{p.stem}.npy", (small == 255).astype(np.float64))
        else:
            cv2.imwrite(str(folder / p.name), small)


def test_maps_of_another_size_are_refused_with_the_option_named(tmp_path, capsys):
    data = _masks_dataset(tmp_path / "d")
    _half_size_maps(data, tmp_path / "small")
    assert run.main(["--data", str(data), "--split", "all", "--no-polarity-check", "--methods", "small",
                     "--maps", f"small={tmp_path / 'small'}", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # a note on how the masks were read, then the error
    err = lines[-1]
    assert err.startswith("error: ") and not any(line.startswith("error") for line in lines[:-1])
    assert re.search(r"small/m\d\.png: map is 24x20 px but its mask m\d\.png is 48x40", err)
    assert "--maps-resize bilinear" in err
    assert not (tmp_path / "o" / "metrics.csv").exists()


def test_maps_resize_nearest_restores_the_mask_and_is_noted(tmp_path):
    data = _masks_dataset(tmp_path / "d")
    _half_size_maps(data, tmp_path / "small")
    out = tmp_path / "o"
    assert run.main(["--data", str(data), "--split", "all", "--no-polarity-check", "--methods", "small",
                     "--maps", f"small={tmp_path / 'small'}", "--maps-resize", "nearest", "--metrics", "dbd",
                     "--out", str(out), "--quiet"]) == 0
    (row,) = _rows(out / "metrics.csv")
    assert float(row["ods"]) == 1.0 and float(row["ois"]) == 1.0 and float(row["mae"]) == 0.0
    assert float(row["dbd_iou_at_128"]) == 1.0
    assert "3 maps resized to their masks' size (3 from 24x20 px) with OpenCV cv2.resize INTER_NEAREST" in row["notes"]
    assert "INTER_NEAREST (--maps-resize nearest)" in (out / "report.md").read_text()


@pytest.mark.parametrize("how", ["nearest", "bilinear", "bicubic", "area"])
def test_external_maps_resize_keeps_type_and_range(tmp_path, how):
    data = _masks_dataset(tmp_path / "d", n=1)
    (sample,) = Dataset(data).samples("all", need_images=False)
    for npy in (False, True):
        folder = tmp_path / f"maps_{npy}"
        _half_size_maps(data, folder, npy=npy)
        maps = ExternalMaps("m", folder, resize=how)
        arr = maps.load(sample, (40, 48))
        assert arr.shape == (40, 48) and arr.dtype == (np.float64 if npy else np.uint8)
        assert arr.min() >= 0 and arr.max() <= (1.0 if npy else 255)
        assert maps.resized == {(24, 20): 1}
        # Same size: untouched, not counted.
        assert maps.load(sample, (20, 24)).shape == (20, 24) and maps.resized == {(24, 20): 1}
    with pytest.raises(DatasetError, match="--maps-resize 'lanczos': choose one of nearest, bilinear"):
        ExternalMaps("m", folder, resize="lanczos")


def test_readme_lists_every_profile():
    readme = (REPO / "README.md").read_text()
    for name in PROFILES:
        assert re.search(rf"^\| `{name}` \|", readme, re.M), name
