"""The runner end to end: demo benchmark, outputs, caching and resume, external maps, learned methods, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from baselines.gradient_energy import GradientEnergy
from baselines.interface import Detector
from evaluation import registry, run
from evaluation.demo import ensure_demo
from evaluation.metrics import quantize


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    return ensure_demo(tmp_path_factory.mktemp("demo"))


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    assert run.main(["--methods", "gradient_energy", "--out", str(out), "--quiet", "--save-maps"]) == 0
    printed = capsys.readouterr().out
    assert "synthetic demo, split even, 5 images" in printed
    (row,) = _rows(out / "metrics.csv")
    assert row["dataset"] == "synthetic demo" and row["method"] == "gradient_energy" and row["n_images"] == "5"
    for col in ("ods", "ois", "ap"):
        assert 0 < float(row[col]) <= 1
    assert float(row["sec_per_image"]) > 0
    assert "synthetic demo" in (out / "report.md").read_text()
    for name in ("pr_curves.png", "map_grid.png", "per_image.csv", "pr_curves.csv"):
        assert (out / name).stat().st_size > 0
    # --save-maps: 8-bit PNG, 255 = blurred, equal to the quantised detector output.
    saved = cv2.imread(str(out / "maps" / "gradient_energy" / "demo0002.png"), cv2.IMREAD_UNCHANGED)
    photo = cv2.imread(str(out / "cache" / "demo_data" / "image" / "demo0002.png"))[:, :, ::-1]
    expected = quantize(GradientEnergy()(photo))
    assert saved.dtype == np.uint8 and np.array_equal(saved, expected)


def test_demo_is_deterministic(demo_root, tmp_path):
    again = ensure_demo(tmp_path / "again")
    for sub in ("image", "gt"):
        for path in sorted((demo_root / sub).iterdir()):
            assert path.read_bytes() == (again / sub / path.name).read_bytes(), path.name


def test_demo_masks_are_exact(demo_root):
    """A pixel labelled sharp is the original photo's pixel; a blurred one was changed by the blur."""
    from skimage import data

    img = cv2.imread(str(demo_root / "image" / "demo0002.png"))[:, :, ::-1]
    mask = cv2.imread(str(demo_root / "gt" / "demo0002.png"), cv2.IMREAD_UNCHANGED) == 255
    original = data.astronaut()
    assert np.array_equal(img[~mask], original[~mask])
    assert np.mean(np.any(img[mask] != original[mask], axis=-1)) > 0.9
    assert 0.2 < mask.mean() < 0.8


class _Counting(GradientEnergy):
    calls = 0
    fail_at: int | None = None

    def compute(self, rgb):
        type(self).calls += 1
        if type(self).fail_at is not None and type(self).calls == type(self).fail_at:
            raise KeyboardInterrupt
        return super().compute(rgb)


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setitem(registry.METHODS, "counting", registry.MethodSpec(f"{__name__}:_Counting", "test"))
    _Counting.calls, _Counting.fail_at = 0, None
    return _Counting


def test_interrupted_run_resumes(counting, demo_root, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--data", str(demo_root), "--split", "all", "--methods", "counting", "--out", str(out), "--quiet"]
    counting.fail_at = 4
    assert run.main(args) == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert len(list((out / "cache" / "counting").glob("*/*.png"))) == 3  # three maps were kept
    counting.fail_at, counting.calls = None, 0
    assert run.main(args) == 0
    assert counting.calls == 7  # only the 7 maps not yet computed
    counting.calls = 0
    assert run.main(args) == 0
    assert counting.calls == 0  # everything cached now
    (row,) = _rows(out / "metrics.csv")
    assert row["n_images"] == "10"


def test_cache_folder_option(demo_root, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "elsewhere"
    assert run.main(["--data", str(demo_root), "--methods", "gradient_energy", "--out", str(out),
                     "--cache", str(cache), "--quiet"]) == 0
    assert not (out / "cache").exists()
    assert len(list(cache.glob("gradient_energy/*/*.png"))) == 5


def test_metrics_csv_keeps_other_methods(demo_root, tmp_path, counting):
    out = tmp_path / "out"
    base = ["--data", str(demo_root), "--out", str(out), "--quiet"]
    assert run.main(base + ["--methods", "gradient_energy"]) == 0
    assert run.main(base + ["--methods", "counting"]) == 0
    assert sorted(r["method"] for r in _rows(out / "metrics.csv")) == ["counting", "gradient_energy"]


def test_external_maps_need_no_photos(demo_root, tmp_path):
    data = tmp_path / "masks_only"
    (data / "gt").mkdir(parents=True)
    maps = tmp_path / "maps"
    maps.mkdir()
    for p in (demo_root / "gt").iterdir():
        (data / "gt" / p.name).write_bytes(p.read_bytes())
        mask = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        np.save(maps / f"{p.stem}.npy", (mask == 255).astype(np.float32))  # a perfect map
    out = tmp_path / "out"
    assert run.main(["--data", str(data), "--split", "all", "--methods", "oracle", "--maps", f"oracle={maps}",
                     "--out", str(out), "--quiet"]) == 0
    (row,) = _rows(out / "metrics.csv")
    assert float(row["ods"]) == 1.0 and float(row["ois"]) == 1.0 and row["source"] == "maps"
    # Polarity flag: the same maps read as sharpness are the worst possible.
    assert run.main(["--data", str(data), "--split", "all", "--methods", "flipped",
                     "--maps", f"flipped={maps}:sharp", "--out", str(out), "--quiet"]) == 0
    flipped = [r for r in _rows(out / "metrics.csv") if r["method"] == "flipped"][0]
    assert float(flipped["ods"]) < 0.8


class _Learner(Detector):
    """Learns one number (the blurred fraction of its training masks) and outputs gradient-energy maps."""

    name = "learner"
    trainable = True
    fits = 0

    def fit(self, samples):
        type(self).fits += 1
        self.fraction = float(np.mean([m.mean() for _, m in samples]))
        self.n = len(samples)
        return self

    def get_state(self):
        return {"fraction": np.array(self.fraction), "n": np.array(self.n)}

    def set_state(self, state):
        self.fraction, self.n = float(state["fraction"]), int(state["n"])

    def compute(self, rgb):
        return GradientEnergy().compute(rgb)


def test_learned_method_trains_on_other_split(monkeypatch, demo_root, tmp_path):
    monkeypatch.setitem(registry.METHODS, "learner", registry.MethodSpec(f"{__name__}:_Learner", "test"))
    _Learner.fits = 0
    out = tmp_path / "out"
    args = ["--data", str(demo_root), "--split", "even", "--methods", "learner", "--out", str(out), "--quiet"]
    assert run.main(args) == 0
    (row,) = _rows(out / "metrics.csv")
    assert row["trained_on"] == f"{demo_root.name} odd (5 images)"
    assert run.main(args) == 0
    assert _Learner.fits == 1  # the trained state was cached


def test_learned_method_falls_back_to_demo_training(monkeypatch, demo_root, tmp_path):
    """With --split all there is no training split: learned methods train on the demo's D_o, and say so."""
    monkeypatch.setitem(registry.METHODS, "learner", registry.MethodSpec(f"{__name__}:_Learner", "test"))
    out = tmp_path / "out"
    assert run.main(["--data", str(demo_root), "--split", "all", "--methods", "learner", "--out", str(out),
                     "--quiet", "--limit", "2"]) == 0
    (row,) = _rows(out / "metrics.csv")
    assert row["trained_on"] == "synthetic demo odd (5 images)"
    assert "trained on the built-in synthetic demo" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "gradient_enrgy"], "Did you mean 'gradient_energy'?"),
        (["--data", "/no/such/folder"], "dataset folder not found"),
        (["--maps", "broken"], "expected NAME=DIR"),
        (["--maps", "gradient_energy=/tmp"], "is a registered method"),
        (["--methods", "gradient_energy", "--weights", "dbm=/etc/hostname"], "which --methods does not select"),
        (["--methods", "gradient_energy", "--weights", "gradient_energy=/etc/hostname"], "takes no weight file"),
        (["--methods", "gradient_energy", "--weights", "gradient_energy=/no/file.pt"], "not found"),
    ],
)
def test_errors_are_one_line(argv, message, tmp_path, capsys):
    assert run.main(argv + ["--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err


def test_corrupt_photo_is_one_line_error(demo_root, tmp_path, capsys):
    data = tmp_path / "d"
    (data / "gt").mkdir(parents=True)
    (data / "image").mkdir()
    (data / "gt" / "demo0001.png").write_bytes((demo_root / "gt" / "demo0001.png").read_bytes())
    (data / "image" / "demo0001.jpg").write_bytes(b"this is not a jpeg")
    assert run.main(["--data", str(data), "--split", "all", "--methods", "gradient_energy",
                     "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "demo0001.jpg: not a readable image" in err and "\n" not in err


def test_workers_give_identical_maps(demo_root, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    base = ["--data", str(demo_root), "--split", "all", "--methods", "gradient_energy", "--quiet", "--save-maps"]
    assert run.main(base + ["--out", str(one)]) == 0
    assert run.main(base + ["--out", str(two), "--workers", "2"]) == 0
    for p in sorted((one / "maps" / "gradient_energy").iterdir()):
        assert p.read_bytes() == (two / "maps" / "gradient_energy" / p.name).read_bytes()


def test_suite_dbm_wins_over_the_standard_library_from_any_folder(tmp_path):
    """Outside the repository, Python's own ``dbm`` comes first on sys.path; importing evaluation fixes that."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run([sys.executable, "-c", "import evaluation"], cwd=tmp_path, env=env, capture_output=True)
    if probe.returncode:
        pytest.skip("the suite is not installed (pip install -e .), so it cannot be imported outside the repository")
    plain = "import dbm; print(dbm.__file__)"
    out = subprocess.run([sys.executable, "-c", plain], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    ours = Path(run.__file__).resolve().parents[1] / "dbm" / "__init__.py"
    assert Path(out.stdout.strip()).resolve() != ours  # the standard library's dbm: why evaluation steps in
    code = ("import evaluation, dbm.synth, dbm, sys; assert evaluation.suite_dbm_loaded(), dbm.__file__; "
            "from evaluation.registry import load_class; load_class('dbm'); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True)
