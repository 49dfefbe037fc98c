"""The field's published numbers (evaluation/data/published.csv) and the report's table of them."""

from __future__ import annotations

import csv
import math

import cv2
import numpy as np

from baselines.datasets import DATASETS, NAMED_SPLITS
from evaluation import run
from evaluation.published import OTHER_PREFIX, published_for, published_rows
from evaluation.report import METRIC_FIELDS


def test_every_row_names_a_known_benchmark_split_and_metric_with_its_source():
    rows = published_rows()
    assert rows
    for p in rows:
        assert p.benchmark in DATASETS and p.split in NAMED_SPLITS, p
        assert p.metric in METRIC_FIELDS or (p.metric.startswith(OTHER_PREFIX) and len(p.metric) > len(OTHER_PREFIX)), p
        assert math.isfinite(p.value) and 0 <= p.value <= 1 and p.n_images > 0, p
        assert p.protocol and p.source and p.method == p.method.lower(), p
    assert len({(p.benchmark, p.split, p.n_images, p.method, p.metric, p.value) for p in rows}) == len(rows)


def test_rows_match_on_benchmark_split_and_number_of_photos():
    assert {p.method for p in published_for("cuhk_te1", "test", 100)} == {"sg", "d_dffnet"}
    assert published_for("cuhk_te1", "test", 99) == [] and published_for("cuhk", "test", 100) == []
    assert {p.n_images for p in published_rows() if p.benchmark == "dut" and p.method == "sg"} == {400}
    assert all(p.method != "sg" for p in published_for("dut", "test", 500))  # SG's 400 photos are not DUT's 500


def _te1_maps(root, n):
    """A CUHK TE-1 layout (masks only, white = in focus) and two folders of maps (white = blurred)."""
    gt = root / "te1" / "test" / "gt"
    gt.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("sg", "d_dffnet_authors"):
        (root / name).mkdir()
    for i in range(n):
        sharp = np.zeros((12, 16), np.uint8)
        sharp[:, : 4 + i % 8] = 255
        cv2.imwrite(str(gt / f"{i:03d}.png"), sharp)
        for name in ("sg", "d_dffnet_authors"):
            cv2.imwrite(str(root / name / f"{i:03d}.png"), rng.integers(0, 256, sharp.shape, dtype=np.uint8))
    return root / "te1"


def test_report_shows_published_numbers_beside_ours(tmp_path):
    data = _te1_maps(tmp_path, 100)
    out = tmp_path / "out"
    assert run.main(["--data", str(data), "--dataset", "cuhk_te1", "--split", "test", "--methods", "sg,d_dffnet_authors",
                     "--maps", f"sg={tmp_path / 'sg'}", "--maps", f"d_dffnet_authors={tmp_path / 'd_dffnet_authors'}",
                     "--out", str(out), "--quiet"]) == 0
    with open(out / "metrics.csv", newline="") as f:
        ours = {r["method"]: r for r in csv.DictReader(f)}
    assert {r["benchmark"] for r in ours.values()} == {"cuhk_te1"}
    report = (out / "report.md").read_text()
    assert "Published numbers of the field" in report
    lines = [ln for ln in report.splitlines() if ln.startswith("| sg ") or ln.startswith("| d_dffnet ")]
    mae_sg = next(ln for ln in lines if ln.startswith("| sg ") and "| 0.119 |" in ln)
    assert f"{float(ours['sg']['mae']):.3f} (sg)" in mae_sg and "github.com/shangcai1/SG" in mae_sg
    assert any("| 0.036 |" in ln and "(d_dffnet_authors)" in ln for ln in lines)
    assert any("| 0.769 |" in ln and "not computed here" in ln for ln in lines)


def test_no_published_block_for_another_number_of_photos(tmp_path):
    data = _te1_maps(tmp_path, 100)
    out = tmp_path / "out"
    assert run.main(["--data", str(data), "--dataset", "cuhk_te1", "--split", "test", "--methods", "sg", "--limit", "99",
                     "--maps", f"sg={tmp_path / 'sg'}", "--out", str(out), "--quiet"]) == 0
    assert "Published numbers of the field" not in (out / "report.md").read_text()
