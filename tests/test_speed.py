"""Table VI regeneration (`python -m evaluation.speed`): it measures, it never asserts a time."""

from __future__ import annotations

import csv

from evaluation import speed


def test_speed_table_written(tmp_path, capsys):
    out = tmp_path / "s"
    assert speed.main(["--methods", "gradient_energy", "--images", "2", "--repeats", "1", "--out", str(out)]) == 0
    with open(out / "speed.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["method"] == "gradient_energy" and float(row["seconds"]) > 0
    assert "| gradient_energy |" in (out / "speed.md").read_text()
    assert "Table VI" in capsys.readouterr().out


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
