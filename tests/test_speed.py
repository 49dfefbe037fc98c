"""Table VI regeneration (`python -m evaluation.speed`): it measures, it never asserts a time."""

from __future__ import annotations

import csv
from pathlib import Path

from evaluation import predict, speed

REPO = Path(__file__).resolve().parents[1]


def test_speed_table_written(tmp_path, capsys):
    out = tmp_path / "s"
    assert speed.main(["--methods", "gradient_energy", "--images", "2", "--repeats", "1", "--out", str(out)]) == 0
    with open(out / "speed.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["method"] == "gradient_energy" and float(row["seconds"]) > 0
    assert float(row["std_seconds"]) >= 0 and row["photos"] == "2" and row["device"] == "cpu" and row["cpu"]
    assert "| gradient_energy |" in (out / "speed.md").read_text()
    assert "Table VI" in capsys.readouterr().out
    # what --list-methods shows comes from such a file
    seconds, where = speed.measured_seconds(out / "speed.csv")
    assert seconds["gradient_energy"][0] == float(row["seconds"]) and row["cpu"] in where


def test_list_methods_shows_the_release_speeds(monkeypatch, tmp_path):
    table = tmp_path / "speed.csv"
    table.write_text("method,seconds,std_seconds,cpu,cores\nhifst,1.25,0.1,Some CPU (AVX2),2\n")
    monkeypatch.setattr(speed, "MEASURED", table)
    lines = predict.method_listing().splitlines()
    assert "s/384px" in lines[0]
    (hifst,) = [line for line in lines if line.startswith("hifst ")]
    (dbm,) = [line for line in lines if line.startswith("dbm ")]
    assert " 1.25 " in hifst and " - " in dbm and "Some CPU (AVX2), 2 cores" in lines[-1]
    monkeypatch.setattr(speed, "MEASURED", tmp_path / "missing.csv")
    assert "s/384px: " not in predict.method_listing()  # no file, no claim


def test_shipped_speeds_are_the_committed_table_vi():
    """``evaluation/data/speed_384.csv`` is the copy ``reports/regenerate.sh`` makes of Table VI."""
    assert speed.MEASURED.read_bytes() == (REPO / "reports" / "table6" / "speed.csv").read_bytes()


def test_unknown_method_is_one_line(tmp_path, capsys):
    assert speed.main(["--methods", "hifts", "--out", str(tmp_path)]) == 2
    assert "Did you mean 'hifst'?" in capsys.readouterr().err


def test_images_must_be_positive_and_nothing_is_overwritten(tmp_path, capsys):
    assert speed.main(["--methods", "gradient_energy", "--images", "0", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--images" in err[0]
    (tmp_path / "speed.md").write_text("my table")
    assert speed.main(["--methods", "gradient_energy", "--images", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "speed.md" in err[0] and "--overwrite" in err[0]
    assert (tmp_path / "speed.md").read_text() == "my table" and not (tmp_path / "speed.csv").exists()
    assert speed.main(["--methods", "gradient_energy", "--images", "1", "--repeats", "1", "--overwrite",
                       "--out", str(tmp_path)]) == 0
    assert "| gradient_energy |" in (tmp_path / "speed.md").read_text()
