"""The runner on a Dask cluster (``--scheduler``): the same metrics as one process, a killed worker recovered.

The Dask tests are skipped where the ``dask`` extra is missing (CI installs it with ``.[test]``).
"""

from __future__ import annotations

import csv
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from baselines.gradient_energy import GradientEnergy
from baselines.interface import Detector, InputError, decode_image, read_image
from evaluation import cluster as cluster_module
from evaluation import registry, run
from evaluation.cache import MapCache
from evaluation.cluster import GPU_RESOURCE, parse_scheduler
from evaluation.datasets import Dataset
from evaluation.engine import Backend, _InlineExecutor, evaluate_detector
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
    (["--gpu-workers"], "needs --scheduler ADDRESS"),
    (["--scheduler", "local:2", "--gpu-workers"], "a local:N cluster has none"),
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


class _FiveWorkerClient:
    """Client.scheduler_info of Dask 2025.4 to 2026.6: only the first five workers unless asked for all."""

    def __init__(self, workers):
        self.workers = workers

    def scheduler_info(self, n_workers=5):
        kept = list(self.workers.items())[:None if n_workers == -1 else n_workers]
        return {"workers": dict(kept)}


def test_gpu_workers_are_counted_among_all_the_workers():
    """Six CPU workers and a GPU one, the last: the GPU worker is found, and only it."""
    workers = {f"tcp://10.0.0.{k}:1": {"resources": {}} for k in range(6)}
    workers["tcp://10.0.0.9:1"] = {"resources": {GPU_RESOURCE: 1}}
    assert cluster_module._gpu_worker_count(_FiveWorkerClient(workers)) == 1


def test_a_scheduler_without_the_suite_is_one_line(dask_installed):
    """A plain ``dask scheduler`` cannot unpickle the tasks (Dask's own words below): the error says what to install."""
    from evaluation.cluster import DaskCluster

    exc = RuntimeError("Error during deserialization of the task graph. This frequently\noccurs if the Scheduler "
                       "and Client have different environments.")
    error = DaskCluster("tcp://10.0.0.1:8786").failure(exc)
    assert isinstance(error, OSError) and "on the scheduler's machine" in str(error) and "\n" not in str(error)
    other = RuntimeError("something else")
    assert DaskCluster("tcp://10.0.0.1:8786").failure(other) is other


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


# --- Batches, and the torch methods on Dask workers that declare a GPU ------------------------------------------


class _Recording(Backend):
    """Tasks of 5 photos run in this process, each task's photos recorded."""

    batch = 5

    def __init__(self):
        super().__init__()
        self.tasks = []
        self.paths = []

    def _start(self):
        backend = self

        class _Executor(_InlineExecutor):
            def submit(self, fn, /, *args, **kwargs):
                backend.tasks.append([s.stem for s in args[1]])
                backend.paths += [s.image_path for s in args[1]]
                return super().submit(fn, *args, **kwargs)

        return _Executor()


def test_batched_tasks_score_each_photo_once(cuhk_dir, tmp_path):
    """Tasks of several photos give the maps and scores of one photo per task, each photo in one task."""
    samples = Dataset(cuhk_dir).samples("all", allow_missing=True)
    detector = GradientEnergy()
    caches = [MapCache.for_method(tmp_path / name, "gradient_energy", detector.cache_key()) for name in ("a", "b")]
    backend = _Recording()
    batched = evaluate_detector("gradient_energy", detector, samples, caches[0], backend=backend)
    single = evaluate_detector("gradient_energy", detector, samples, caches[1])
    stems = [s.stem for s in samples]
    assert backend.tasks == [stems[:5], stems[5:10], stems[10:]]
    for name, value in vars(batched.scores).items():
        assert np.array_equal(value, vars(single.scores)[name]) if isinstance(value, np.ndarray) else (
            value == vars(single.scores)[name]), name
    for s in samples:
        assert caches[0].path(s).read_bytes() == caches[1].path(s).read_bytes()


def test_photo_paths_reach_the_workers_absolute(cuhk_dir, tmp_path, monkeypatch):
    """--shared-fs: a worker reads each photo from its path in its own working folder; a relative --data travels resolved."""
    monkeypatch.chdir(cuhk_dir.parent)
    samples = Dataset(Path(cuhk_dir.name)).samples("all", allow_missing=True)
    assert not samples[0].image_path.is_absolute()
    detector, backend = GradientEnergy(), _Recording()
    cache = MapCache.for_method(tmp_path / "c", "gradient_energy", detector.cache_key())
    evaluate_detector("gradient_energy", detector, samples, cache, backend=backend)
    assert backend.paths == [(cuhk_dir / s.image_path.relative_to(cuhk_dir.name)).resolve() for s in samples]
    assert all(cache.has(s) for s in samples)  # cached under the samples as given


@pytest.fixture
def dbm_network():
    pytest.importorskip("torch")
    from dbm.detector import DBM

    return DBM


def test_dbm_travels_as_its_weights_digest(dbm_network, tmp_path):
    """Unpickled elsewhere, DBM finds the shipped weights of that installation and refuses other bytes."""
    from dbm.detector import SHIPPED_WEIGHTS

    net = dbm_network(device="cpu")
    elsewhere = pickle.loads(pickle.dumps(net))
    assert elsewhere.cache_key() == net.cache_key()
    state = net.__getstate__()
    state["_path"] = tmp_path / "other_install" / SHIPPED_WEIGHTS.name  # another machine's path
    moved = dbm_network.__new__(dbm_network)
    moved.__setstate__(dict(state))
    assert moved._path == SHIPPED_WEIGHTS

    copy = tmp_path / "mine.pt"
    copy.write_bytes(SHIPPED_WEIGHTS.read_bytes())
    blob = pickle.dumps(dbm_network(weights=str(copy), device="cpu"))
    copy.write_bytes(copy.read_bytes() + b"\0")  # the worker's file is not the client's
    with pytest.raises(InputError, match=r"mine\.pt: on .*\(SHA-256 differs"):
        pickle.loads(blob)
    copy.unlink()
    with pytest.raises(InputError, match=r"mine\.pt: weight file not found on .*shared file system"):
        pickle.loads(blob)


def test_a_relative_weights_path_travels_resolved(dbm_network, tmp_path, monkeypatch):
    """``--weights dbm=runs/x.pt`` names a file of the client's folder, not of the worker's."""
    from dbm.detector import SHIPPED_WEIGHTS

    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "x.pt").write_bytes(SHIPPED_WEIGHTS.read_bytes())
    monkeypatch.chdir(tmp_path)
    blob = pickle.dumps(dbm_network(weights="runs/x.pt", device="cpu"))
    monkeypatch.chdir(tmp_path / "runs")  # the worker's working folder
    assert pickle.loads(blob)._path == tmp_path / "runs" / "x.pt"


def test_a_gpu_named_for_workers_is_checked_where_it_runs(dbm_network):
    """Built for GPU workers (``devices_elsewhere``), the detector accepts cuda here and checks it on arrival."""
    import torch

    from dbm.device import devices_elsewhere

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the check would pass")
    with pytest.raises(InputError, match="cuda"):
        dbm_network(device="cuda")
    with devices_elsewhere():
        net = dbm_network(device="auto")
    assert net.settings["device"] == "cuda:0"
    with pytest.raises(InputError, match=r"^on .*: device cuda:0: .*use device cpu"):
        pickle.loads(pickle.dumps(net))


def _one_worker_cluster(**kwargs):
    """A LocalCluster of one single-threaded worker process (``kwargs``: e.g. its ``resources``)."""
    import logging

    import distributed

    from evaluation.engine import _single_threaded_children

    with _single_threaded_children():
        return distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                        silence_logs=logging.ERROR, **kwargs)


@pytest.fixture(scope="module")
def gpu_cluster():
    """A Dask cluster of one worker that declares a GPU (it has none: the tests run DBM on its CPU)."""
    distributed = pytest.importorskip("distributed", reason='the dask extra is not installed (pip install ".[dask]")')
    pytest.importorskip("torch")
    cluster = _one_worker_cluster(resources={GPU_RESOURCE: 1})
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def _worker_detectors() -> list[str]:
    from evaluation import engine

    return [d.name for d in engine._WORKER.values()]


def test_dbm_runs_on_the_gpu_workers(gpu_cluster, cuhk_dir, tmp_path, monkeypatch):
    """DBM's tasks go to the worker with the GPU resource, in batches, and give the maps this process gives."""
    monkeypatch.setattr(cluster_module._GPUWorkers, "batch", 3)
    argv = ["--data", str(cuhk_dir), "--split", "even", "--allow-missing", "--methods", "dbm", "--quiet",
            "--save-maps", "--device", "cpu", "--set", "dbm.threads=1"]
    assert run.main([*argv, "--out", str(tmp_path / "here")]) == 0
    assert run.main([*argv, "--out", str(tmp_path / "there"), "--scheduler", gpu_cluster.scheduler.address,
                     "--gpu-workers"]) == 0
    assert list(gpu_cluster.run(_worker_detectors).values()) == [["dbm"]]
    here, there = (_rows(tmp_path / d / "metrics.csv", METRIC_FIELDS) for d in ("here", "there"))
    (key,) = here
    assert "computed on the Dask workers with the GPU resource, device cpu" in there[key].pop("notes")
    here[key].pop("notes")
    assert here == there
    (folder,) = (tmp_path / "here" / "maps").iterdir()  # dbm[threads=1]
    maps = sorted(folder.iterdir())
    assert len(maps) > 3  # more than one batch
    for path in maps:
        assert path.read_bytes() == (tmp_path / "there" / "maps" / folder.name / path.name).read_bytes(), path.name


def test_a_gpu_worker_without_the_gpu_stops_the_run_in_one_line(gpu_cluster, cuhk_dir, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    argv = ["--data", str(cuhk_dir), "--split", "even", "--allow-missing", "--methods", "dbm", "--quiet",
            "--out", str(tmp_path / "o"), "--scheduler", gpu_cluster.scheduler.address, "--gpu-workers"]
    assert run.main(argv) == 2  # --device auto: the workers' cuda:0, which this worker lacks
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the note on the fixture's missing photos
    assert err.startswith("error: on ") and "device cuda:0" in err and "use device cpu" in err


def test_gpu_workers_that_never_come_stop_the_run_in_one_line(dask_installed, cuhk_dir, tmp_path, capsys,
                                                               monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 1)
    cluster = _one_worker_cluster()
    try:
        argv = ["--data", str(cuhk_dir), "--split", "even", "--allow-missing", "--methods", "dbm", "--quiet",
                "--out", str(tmp_path / "o"), "--scheduler", cluster.scheduler_address, "--gpu-workers"]
        assert run.main(argv) == 2
    finally:
        cluster.close()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: --gpu-workers: no worker of tcp://") and "--resources GPU=1" in err


def test_dask_memory_trimming_is_undone_in_workers(monkeypatch):
    """Workers started with Dask's MALLOC_TRIM_THRESHOLD_ get glibc's large-array reuse back; others are left alone."""
    import platform

    from evaluation.engine import _undo_malloc_trim

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert _undo_malloc_trim() is False
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    assert _undo_malloc_trim() is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def _thread_environment() -> dict:
    from dbm.cli import THREAD_VARIABLES

    return {n: os.environ.get(n) for n in THREAD_VARIABLES}


def test_worker_processes_start_single_threaded(monkeypatch):
    """--workers N: each process, including those started after the first tasks, has one thread per library."""
    from dbm.cli import THREAD_VARIABLES
    from evaluation.engine import ProcessPool

    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with ProcessPool(2) as pool:
        executor = pool.executor()
        seen = [executor.submit(_thread_environment).result() for _ in range(3)]
    assert seen == [{n: "1" for n in THREAD_VARIABLES}] * 3
    assert all(n not in os.environ for n in THREAD_VARIABLES)  # this process keeps its own


def _profiler_enabled() -> bool:
    import dask

    return dask.config.get("distributed.worker.profile.enabled")


def test_local_cluster_workers_run_without_the_profiler(dask_installed):
    """local:N workers do not sample their tasks' stacks (a 4-7% cost measured on the methods)."""
    from evaluation.cluster import DaskCluster

    with DaskCluster("local:1") as backend:
        backend.executor()
        assert list(backend.client.run(_profiler_enabled).values()) == [False]


def test_a_restarted_local_worker_is_single_threaded(dask_installed, monkeypatch):
    """local:N: a worker its nanny starts again (after a crash) still has one thread per library, not the client's."""
    from dbm.cli import THREAD_VARIABLES
    from evaluation.cluster import DaskCluster

    for name in THREAD_VARIABLES:
        monkeypatch.setenv(name, "2")  # the client's own --threads 2
    with DaskCluster("local:1") as backend:
        backend.executor()
        first = list(backend.client.run(_thread_environment).values())
        backend.client.restart()
        again = list(backend.client.run(_thread_environment).values())
    assert first == again == [{n: "1" for n in THREAD_VARIABLES}]
