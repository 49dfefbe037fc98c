"""The fidelity tool on the HiFST authors' own maps: correlation 1 and their published curve recovered."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from evaluation import fidelity


@pytest.mark.shared
def test_authors_maps_reproduce_the_published_curve(cuhk_dir, tmp_path, capsys):
    published = cuhk_dir / "published_maps" / "hifst"
    ours = tmp_path / "maps" / "hifst"
    ours.mkdir(parents=True)
    for p in sorted(published.glob("*.png")):  # as the runner saves maps: 255 = blurred
        cv2.imwrite(str(ours / p.name), 255 - cv2.imread(str(p), cv2.IMREAD_UNCHANGED))
    assert fidelity.main(["--data", str(cuhk_dir), "--maps", str(tmp_path / "maps"), "--published", str(cuhk_dir),
                          "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "fidelity.md").read_text()
    assert "1000 images: Pearson r mean 1.00000, worst 1.00000" in text
    (row,) = list(csv.DictReader(open(tmp_path / "out" / "fidelity.csv")))
    assert row["method"] == "hifst" and row["n_images"] == "1000"
    assert float(row["precision_max_abs"]) < 1e-5 and float(row["recall_max_abs"]) < 1e-5


def test_bad_curve_file_is_one_line(tmp_path):
    bad = tmp_path / "c.txt"
    bad.write_text("0.5 0.5\n")
    with pytest.raises(fidelity.InputError, match="256 rows"):
        fidelity.read_published_curve(bad)


def test_cli_errors_are_one_line_and_nothing_is_overwritten(tmp_path, capsys):
    data = tmp_path / "cuhk"
    (data / "gt").mkdir(parents=True)
    cv2.imwrite(str(data / "gt" / "motion0001.png"), (np.arange(64).reshape(8, 8) >= 32).astype(np.uint8) * 255)
    maps = tmp_path / "maps"
    maps.mkdir()
    args = ["--data", str(data), "--maps", str(maps), "--published", str(tmp_path), "--out", str(tmp_path / "out")]
    assert fidelity.main(["--data", str(data)]) == 2  # argparse's error, one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--maps" in err[0]
    assert fidelity.main(args) == 0
    assert (tmp_path / "out" / "fidelity.csv").read_text().startswith("method,published")
    capsys.readouterr()
    assert fidelity.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fidelity.csv" in err[0] and "--overwrite" in err[0]
    assert fidelity.main([*args, "--overwrite"]) == 0
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert fidelity.main([*args[:-1], str(blocker / "sub")]) == 2  # --out under a file: cannot be created
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--out" in err[0]
