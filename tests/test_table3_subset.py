"""Table III's methods on a fixed 20-photo subset of D_e, pinned: a change that moves a number is caught.

The subset is every 25th photo of D_e (sorted by name: 10 motion-blurred, 10 out of focus) of the
full CUHK benchmark in ``../shared/data/cuhk_full``; the learned methods (Liu08, Shi14) train on
every 25th photo of D_o, as Table III trains on D_o. The pinned figures are in
``tests/regression/table3_subset.json``; regenerate them, after a change that is meant to move
them, with ``python tests/test_table3_subset.py`` and say why in the commit.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

PINNED = Path(__file__).with_name("regression") / "table3_subset.json"
METHODS = ("liu08", "chakrabarti10", "zhuo11", "su11_svd", "shi14", "chen16", "tang16", "yi16_lbp", "hifst")
TOLERANCE = 2e-3  # across CPUs (AVX2 / AVX-512 kernels) a few pixels may change level


def _subset_lists(data: Path, folder: Path) -> tuple[Path, Path]:
    from baselines.datasets import Dataset

    ds = Dataset(data)
    folder.mkdir(parents=True, exist_ok=True)
    test, train = folder / "de_every25.txt", folder / "do_every25.txt"
    test.write_text("\n".join(ds.stems("even")[::25]) + "\n")
    train.write_text("\n".join(ds.stems("odd")[::25]) + "\n")
    return test, train


def compute(data: Path, out: Path) -> dict[str, dict[str, float]]:
    """Run the runner on the subset; return method -> {ods, ois, ap}."""
    from evaluation import run

    test, train = _subset_lists(data, out / "lists")
    code = run.main(["--data", str(data), "--split", str(test), "--train-split", str(train),
                     "--methods", ",".join(METHODS), "--out", str(out), "--workers", "2", "--quiet"])
    assert code == 0
    with open(out / "metrics.csv", newline="") as fh:
        return {r["method"]: {k: round(float(r[k]), 4) for k in ("ods", "ois", "ap")} for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_table3_subset_is_unchanged(cuhk_full_dir, tmp_path):
    pinned = json.loads(PINNED.read_text())["figures"]
    got = compute(cuhk_full_dir, tmp_path / "out")
    assert set(got) == set(METHODS)
    moved = {m: (got[m], pinned[m]) for m in METHODS
             if any(abs(got[m][k] - pinned[m][k]) > TOLERANCE for k in ("ods", "ois", "ap"))}
    assert not moved, f"figures moved (got, pinned): {moved}"


if __name__ == "__main__":  # regenerate the pinned figures
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared"
    with tempfile.TemporaryDirectory() as tmp:
        figures = compute(shared / "data" / "cuhk_full", Path(tmp))
    PINNED.write_text(json.dumps({"subset": "every 25th photo of D_e; learned methods trained on every 25th of D_o",
                                  "figures": figures}, indent=1) + "\n")
    print(json.dumps(figures, indent=1))
