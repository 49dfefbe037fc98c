"""The runner on a Dask cluster (``--scheduler``): the same metrics as one process, a killed worker recovered.

The Dask tests are skipped where the ``dask`` extra is missing (CI installs it with ``.[test]``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from baselines.gradient_energy import GradientEnergy
from baselines.interface import Detector, InputError, decode_image, read_image
from evaluation import registry, run
from evaluation.cluster import parse_scheduler
from evaluation.report import METRIC_FIELDS, PER_IMAGE_FIELDS

#: Columns that say when and how fast a run was, not what it measured.
RUN_COLUMNS = {"run", "sec_per_image", "seconds"}
KILL_MARKER = "DBM_TEST_KILL_MARKER"


class _Learner(Detector):
    """A learned method: its maps depend on the state it learns (the blurred fraction of its training masks)."""

    name = "learner"
    trainable = True

    def fit(self, samples):
        self.fraction = float(np.mean([m.mean() for _, m in samples]))
        return self

    def get_state(self):
        return {"fraction": np.array(self.fraction)}

    def set_state(self, state):
        self.fraction = float(state["fraction"])

    def compute(self, rgb):
        return GradientEnergy().compute(rgb) ** (1.0 + self.fraction)  # an untrained copy would fail here


class _Killer(GradientEnergy):
    """Gradient energy, but the first call anywhere kills its process (a worker dying mid-run)."""

    name = "killer"

    def compute(self, rgb):
        try:
            fd = os.open(os.environ[KILL_MARKER], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().compute(rgb)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os._exit(1)


@pytest.fixture(scope="module")
def registered():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(registry.METHODS, "learner", registry.MethodSpec(f"{__name__}:_Learner", "test"))
        mp.setitem(registry.METHODS, "killer", registry.MethodSpec(f"{__name__}:_Killer", "test"))
        yield


def _base(cuhk_dir: Path, methods: str, out: Path) -> list[str]:
    return ["--data", str(cuhk_dir), "--split", "all", "--allow-missing", "--methods", methods, "--out", str(out),
            "--quiet", "--save-maps"]


def _rows(path: Path, fields) -> dict[str, dict]:
    """The rows of a results CSV by (method, stem), without the run's identity and timings."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and list(rows[0]) == list(fields)
    return {(r["method"], r.get("stem", "")): {k: v for k, v in r.items() if k not in RUN_COLUMNS} for r in rows}


@pytest.fixture(scope="module")
def single(registered, cuhk_dir, tmp_path_factory) -> Path:
    """The reference: one process."""
    out = tmp_path_factory.mktemp("single")
    assert run.main(_base(cuhk_dir, "gradient_energy,spectral_slope,learner", out)) == 0
    return out


@pytest.fixture
def dask_installed():
    pytest.importorskip("distributed", reason='the dask extra is not installed (pip install ".[dask]")')


def _assert_same(out: Path, reference: Path, rename: dict[str, str] | None = None) -> None:
    """Metrics, per-image rows and maps of ``out`` equal ``reference``'s (``rename``: method in out -> in reference)."""
    rename = rename or {}
    for name, fields in (("metrics.csv", METRIC_FIELDS), ("per_image.csv", PER_IMAGE_FIELDS)):
        mine = _rows(out / name, fields)
        ref = _rows(reference / name, fields)
        assert mine, name
        for (method, stem), row in mine.items():
            want = dict(ref[(rename.get(method, method), stem)])
            want["method"] = method
            if method in rename:  # the reference run's notes also speak of its other methods
                row, want = ({k: v for k, v in r.items() if k != "notes"} for r in (row, want))
            assert row == want, (name, method, stem)
    for folder in (out / "maps").iterdir():
        ref = reference / "maps" / rename.get(folder.name, folder.name)
        files = sorted(p.name for p in folder.iterdir())
        assert len(files) == 12 and files == sorted(p.name for p in ref.iterdir())
        for name in files:
            assert (folder / name).read_bytes() == (ref / name).read_bytes(), (folder.name, name)


def test_local_cluster_matches_one_process(dask_installed, single, cuhk_dir, tmp_path):
    """Two worker processes receiving the photos' bytes and the trained learner: the same numbers, bit for bit."""
    out = tmp_path / "dask"
    assert run.main(_base(cuhk_dir, "gradient_energy,spectral_slope,learner", out) + ["--scheduler", "local:2"]) == 0
    _assert_same(out, single)
    (row,) = [r for r in _rows(out / "metrics.csv", METRIC_FIELDS).values() if r["method"] == "learner"]
    assert row["trained_on"] == "synthetic demo odd (5 images)" and row["n_images"] == "12"


def test_killed_worker_is_replaced_and_nothing_counted_twice(dask_installed, single, cuhk_dir, tmp_path,
                                                             monkeypatch):
    """A worker dies on its first photo: Dask gives the photo to another; every photo is scored once."""
    marker = tmp_path / "killed"
    monkeypatch.setenv(KILL_MARKER, str(marker))  # inherited by the local cluster's workers
    out = tmp_path / "dask"
    argv = _base(cuhk_dir, "killer", out) + ["--scheduler", "local:2", "--shared-fs"]
    assert run.main(argv) == 0
    assert marker.is_file() and int(marker.read_text()) != os.getpid()  # a worker, not this process, died
    _assert_same(out, single, rename={"killer": "gradient_energy"})
    times = [line for p in (out / "cache" / "killer").glob("*/times.jsonl") for line in p.read_text().splitlines()]
    assert len(times) == 12  # each map computed and recorded once


@pytest.mark.parametrize("argv, message", [
    (["--scheduler", "local:2", "--workers", "2"], "are alternatives"),
    (["--shared-fs"], "needs --scheduler"),
    (["--scheduler", "local:0"], "at least one worker"),
    (["--scheduler", "myhost:8786"], "expected local:N"),
])
def test_bad_scheduler_options_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # also where Dask is missing
    assert run.main(["--methods", "gradient_energy", "--out", str(tmp_path / "o"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_missing_dask_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)  # import distributed raises ImportError
    assert run.main(["--methods", "gradient_energy", "--out", str(tmp_path / "o"), "--quiet",
                     "--scheduler", "local:2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and 'pip install ".[dask]"' in err and "\n" not in err


def test_parse_scheduler():
    assert parse_scheduler("local:3") == 3
    assert parse_scheduler(" tcp://10.0.0.1:8786 ") == "tcp://10.0.0.1:8786"
    with pytest.raises(InputError, match="expected local:N"):
        parse_scheduler("local")


def test_photo_bytes_decode_as_the_file(cuhk_dir):
    """What a worker decodes from the bytes it was sent is the photo the file gives, and damage is refused alike."""
    path = sorted((cuhk_dir / "image").iterdir())[0]
    data = path.read_bytes()
    assert np.array_equal(decode_image(data, name=str(path)), read_image(path))
    with pytest.raises(InputError, match=f"{path.name}: damaged JPEG data"):
        decode_image(data[: len(data) // 2] + bytes(64) + data[-2:], name=str(path))
