"""Evaluate detectors and external maps on a list of samples, with a resumable map cache.

Maps are computed once and kept in a :class:`evaluation.cache.MapCache` (keyed by method,
settings, weights and the photo's bytes) the moment they are computed, so an interrupted run loses
nothing already computed: the same command resumes where it stopped. Results go to the report in
memory (:class:`MethodResult`), including the maps of the images the report shows.

Where the maps are computed is a :class:`Backend`: this process (:class:`InProcess`), N spawned
processes (:class:`ProcessPool`, the runner's ``--workers N``) or a Dask cluster
(:class:`evaluation.cluster.DaskCluster`, ``--scheduler``). All three run the one task function
:func:`compute_maps` (:func:`compute_map` on a batch of photos, one photo except on Dask GPU
workers) through one submission loop, and this process writes every returned map into the cache
as it arrives.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import pickle
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Collection, Iterator, Sequence

import numpy as np

from baselines.interface import Detector, InputError
from .cache import MapCache
from .datasets import DatasetError, ExternalMaps, Sample
from .metrics import MetricsAccumulator, Scores, quantize

__all__ = ["Backend", "InProcess", "LazyPairs", "MethodResult", "ProcessPool", "ShippedDetector", "compute_map",
           "compute_maps", "evaluate_detector", "evaluate_maps"]


@dataclass
class MethodResult:
    """Scores of one method on one split, with what is needed to report them."""

    name: str
    scores: Scores
    #: compute seconds per image stem (a cached map keeps the time of the run that computed it)
    seconds: dict[str, float] = field(default_factory=dict)
    trained_on: str | None = None
    source: str = "detector"  # or "maps"
    cache: MapCache | None = None
    #: 8-bit maps (255 = blurred) of the images the report shows, by stem
    maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def sec_per_image(self) -> float:
        return float(np.mean(list(self.seconds.values()))) if self.seconds else float("nan")


class LazyPairs(Sequence):
    """``(rgb, mask)`` training pairs loaded from disk on access, so 500 photos need not fit in memory."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        sample = self.samples[i]
        mask = sample.mask()
        return sample.image(mask.shape), mask


# --- Where maps are computed ---------------------------------------------------------------------------------
#
# Every map is computed by one task function, :func:`compute_maps`, submitted through one loop
# (:func:`_computed`) to a concurrent.futures executor chosen by the runner: this process
# (:class:`InProcess`), N local processes (:class:`ProcessPool`, ``--workers N``) or a Dask cluster
# (:class:`evaluation.cluster.DaskCluster`, ``--scheduler``). The client keeps the cache: it writes
# each map the moment its result arrives, and scores the maps from the cache afterwards.

#: Detectors unpickled in this (worker) process, by the digest of their pickle (the latest only).
_WORKER: dict[str, Detector] = {}


class ShippedDetector:
    """A detector pickled once by the client, unpickled once per worker process and kept there.

    It travels with every task (a few kilobytes: a trained Liu08 is under 3 kB), so a worker that
    joins late or was restarted after a crash needs nothing else; the process keeps the unpickled
    detector, so its per-instance caches survive from one photo to the next.

    Parameters
    ----------
    detector : Detector
        A ready detector (trained already, if it learns); its class must be importable where it runs.
    """

    def __init__(self, detector: Detector) -> None:
        self.blob = pickle.dumps(detector, protocol=pickle.HIGHEST_PROTOCOL)
        self.key = hashlib.sha256(self.blob).hexdigest()

    def get(self) -> Detector:
        """The detector, unpickled on the first call in this process."""
        detector = _WORKER.get(self.key)
        if detector is None:
            _prepare_worker()
            detector = pickle.loads(self.blob)
            _WORKER.clear()
            _WORKER[self.key] = detector
        return detector


#: glibc's ``mallopt`` parameters, and the values :func:`_undo_malloc_trim` sets: the largest
#: thresholds glibc's own adaptive rule reaches on 64-bit Linux (mmap 32 MiB, trim twice that).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 32 << 20, 64 << 20


def _undo_malloc_trim() -> bool:
    """In a worker started with ``MALLOC_TRIM_THRESHOLD_`` set: give large arrays back glibc's usual heap reuse.

    Dask's nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.
    pre-spawn-environ``), and setting it switches off glibc's adaptive mmap threshold: every
    temporary array over 128 kB is then a fresh ``mmap`` whose pages fault in again. The methods
    make many such arrays: measured on one 2-core Intel machine (one thread, 3 CUHK photos), the
    variable made gradient_stats 1.65x, HiFST 1.5x and Chakrabarti10 1.25x slower, and the
    ``--scheduler local:2`` run of 50 photos 27% slower per map than ``--workers 2``. Setting
    both thresholds to the values the adaptive rule grows to restores the speed (within 4%).
    Returns whether it did (only where the variable is set and the C library is glibc).
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    except (OSError, AttributeError):  # not glibc
        return False


def _prepare_worker() -> None:
    """In a worker process, before its first map: the thread budget, and malloc as in one process.

    The methods' thread budget follows the process's ``OMP_NUM_THREADS``: the runner's own
    workers get 1 (:func:`_single_threaded_children`), and Dask's nannies set
    ``OMP_NUM_THREADS=1`` by default (``distributed.nanny.pre-spawn-environ``), so N single-threaded
    workers on N cores never run N x cores threads; a worker started with another value uses that.
    Dask's memory trimming is undone (:func:`_undo_malloc_trim`).
    """
    from baselines.interface import THREADS_ENV, thread_budget

    _undo_malloc_trim()

    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp:
        os.environ.setdefault(THREADS_ENV, omp)
    try:
        import cv2

        cv2.setNumThreads(thread_budget())
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass


def compute_map(detector: Detector | ShippedDetector, sample: Sample, mask_shape: tuple[int, int],
                data: bytes | None = None) -> tuple[str, np.ndarray, float]:
    """The one task: the 8-bit map of one photo and its compute time, wherever it runs.

    Parameters
    ----------
    detector : Detector or ShippedDetector
        The detector (a :class:`ShippedDetector` when the task runs in another process).
    sample : Sample
        The image; its photo is read from ``sample.image_path`` unless ``data`` is given.
    mask_shape : tuple of int
        The mask's height and width, which the photo must have.
    data : bytes, optional
        The photo file's bytes, sent by the client to a worker that may not see its file system.

    Returns
    -------
    tuple
        ``(stem, levels, seconds)``: the map quantised to uint8 levels (255 = blurred) and the
        seconds of the detector call (reading and decoding excluded).
    """
    if isinstance(detector, ShippedDetector):
        detector = detector.get()
    rgb = sample.image(mask_shape, data)
    start = time.perf_counter()
    score = detector(rgb)
    seconds = time.perf_counter() - start
    return sample.stem, quantize(score), seconds


def compute_maps(detector: Detector | ShippedDetector, samples: Sequence[Sample],
                 mask_shapes: Sequence[tuple[int, int]],
                 data: Sequence[bytes | None] | None = None) -> list[tuple[str, np.ndarray, float]]:
    """The task every backend runs: :func:`compute_map` for each photo of a batch, in order.

    A batch is one photo, except for the torch methods on Dask GPU workers, where several photos
    per task spread the scheduling and transfer overhead (:attr:`Backend.batch`). The batch's
    maps come back together; a task that fails or whose worker dies yields none of them.
    """
    data = data if data is not None else [None] * len(samples)
    return [compute_map(detector, s, shape, d) for s, shape, d in zip(samples, mask_shapes, data, strict=True)]


class Backend:
    """Where :func:`compute_maps` runs: a concurrent.futures executor and how work travels to it.

    Subclasses set :attr:`slots` (tasks that run at once), :attr:`batch` (photos per task),
    :attr:`sends_photos` (photos travel as bytes, for workers that do not share the client's file
    system) and implement :meth:`_start`. Use as a context manager; the executor is started on
    first use, so a run whose maps are all cached starts nothing.
    """

    #: tasks that run at once (the loop keeps twice as many submitted)
    slots: int = 1
    #: photos per task
    batch: int = 1
    #: whether the client sends each photo's bytes with its task
    sends_photos: bool = False

    def __init__(self) -> None:
        self._executor: Executor | None = None

    def executor(self) -> Executor:
        """The executor, started on the first call."""
        if self._executor is None:
            self._executor = self._start()
        return self._executor

    def _start(self) -> Executor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def window(self) -> int:
        """Tasks kept submitted at once: enough to keep every slot busy, few photos held in memory."""
        return 2 * max(1, self.slots)

    def ship(self, detector: Detector) -> Detector | ShippedDetector:
        """What :func:`compute_maps` receives as its detector."""
        return ShippedDetector(detector)

    def for_torch(self) -> "Backend":
        """Where the torch methods (DBM) run: this process, on ``--device``, unless sent to GPU workers.

        torch already spreads one photo over every core of this process (or runs on its GPU), and
        N CPU workers would hold N copies of the network; :class:`evaluation.cluster.DaskCluster`
        overrides this for ``--gpu-workers`` (the workers with the ``GPU`` resource).
        """
        return InProcess()

    def failure(self, exc: BaseException) -> BaseException:
        """The error to raise for a task that failed with ``exc`` (one line for this backend's own failures)."""
        return exc

    def close(self) -> None:
        """Stop the executor (and what it started)."""
        if self._executor is not None:  # the tasks not started are dropped; running ones end (one batch each)
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _InlineExecutor(Executor):
    """A concurrent.futures executor that runs each task in this process when it is submitted."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # an interruption (KeyboardInterrupt) is not a task's result: it propagates
            future.set_exception(exc)
        return future


class InProcess(Backend):
    """Maps computed in this process, one at a time (the default; also for the torch methods)."""

    @property
    def window(self) -> int:
        return 1  # each map is cached before the next is computed

    def _start(self) -> Executor:
        return _InlineExecutor()

    def ship(self, detector: Detector) -> Detector:
        return detector


class ProcessPool(Backend):
    """``workers`` spawned processes of this machine, one thread each (``--workers N``).

    Parameters
    ----------
    workers : int
        Number of processes.
    """

    def __init__(self, workers: int) -> None:
        super().__init__()
        self.slots = workers

    def _start(self) -> Executor:
        # spawn, not fork: forking a process that runs threads (OpenCV, BLAS, torch) can deadlock.
        return ProcessPoolExecutor(self.slots, mp_context=_SingleThreadedSpawn())

    def failure(self, exc: BaseException) -> BaseException:
        if isinstance(exc, BrokenProcessPool):
            return OSError("a worker process died (out of memory?); the maps computed so far are cached: "
                           "run the same command again to resume, with fewer --workers")
        return exc


_ENVIRON_LOCK = threading.RLock()


@contextlib.contextmanager
def _single_threaded_children():
    """Environment inherited by processes started within: one thread each for BLAS, OpenMP and the methods."""
    from dbm.cli import THREAD_VARIABLES as names

    with _ENVIRON_LOCK:  # a pool may start a replacement process from its own thread
        saved = {n: os.environ.get(n) for n in names}
        os.environ.update({n: "1" for n in names})
        try:
            yield
        finally:
            for n, v in saved.items():
                if v is None:
                    os.environ.pop(n, None)
                else:
                    os.environ[n] = v


class _SingleThreadedSpawn(multiprocessing.context.SpawnContext):
    """The spawn start method, every process started in :func:`_single_threaded_children`'s environment.

    A ProcessPoolExecutor starts its processes as tasks are submitted (and again when one dies),
    not when it is created, so the environment is set at each start. (Until this class, the
    runner's ``--workers`` processes started with every thread of the machine: two of them ran
    Chakrabarti10 three times slower per photo than one.)
    """

    class Process(multiprocessing.context.SpawnProcess):
        def start(self) -> None:
            with _single_threaded_children():
                super().start()


def _photo_bytes(sample: Sample) -> bytes:
    try:
        return Path(sample.image_path).read_bytes()
    except OSError as exc:
        raise InputError(f"{sample.image_path}: cannot read file ({exc.strerror or exc})") from None


def _absolute(sample: Sample) -> Sample:
    """``sample`` with an absolute photo path (the same for the cache: its key is the photo's bytes)."""
    if sample.image_path is None or Path(sample.image_path).is_absolute():
        return sample
    return replace(sample, image_path=Path(sample.image_path).resolve())


def _computed(detector: Detector, todo: Sequence[Sample], masks: dict[str, np.ndarray],
              backend: Backend) -> Iterator[tuple[Sample, np.ndarray, float]]:
    """Submit :func:`compute_maps` for the samples of ``todo``; yield ``(sample, levels, seconds)`` as tasks end.

    Each task takes :attr:`Backend.batch` consecutive samples; at most :attr:`Backend.window`
    tasks are submitted at once (so a cluster's photos are never all in memory); each sample is
    in exactly one task, which has one future, so each result arrives once. A failed task stops
    the loop with its error (:meth:`Backend.failure`) and cancels the others.
    """
    pool = backend.executor()
    shipped = backend.ship(detector)
    size = max(1, backend.batch)
    batches = iter([todo[i:i + size] for i in range(0, len(todo), size)])
    pending: dict[Future, list[Sample]] = {}
    try:
        while True:
            while len(pending) < backend.window:
                batch = next(batches, None)
                if batch is None:
                    break
                data = [_photo_bytes(s) for s in batch] if backend.sends_photos else None
                shapes = [masks[s.stem].shape for s in batch]
                # paths read by the task are absolute: a worker elsewhere (--shared-fs) has its own folder
                sent = batch if data is not None else [_absolute(s) for s in batch]
                pending[pool.submit(compute_maps, shipped, sent, shapes, data)] = batch
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                batch = pending.pop(future)
                try:
                    answers = future.result()
                except Exception as exc:  # a failed or cancelled task (CancelledError is an Exception)
                    error = backend.failure(exc)
                    if error is exc:
                        raise
                    raise error from None
                for s, (stem, levels, seconds) in zip(batch, answers, strict=True):
                    if stem != s.stem:  # pragma: no cover - a task answering for another photo
                        raise RuntimeError(f"the task for {s.stem} returned the map of {stem}")
                    yield s, levels, seconds
    finally:
        for future in pending:
            future.cancel()


def evaluate_detector(
    name: str,
    detector: Detector,
    samples: Sequence[Sample],
    cache: MapCache,
    *,
    backend: Backend | None = None,
    progress: Callable[..., Iterator] | None = None,
    keep: Collection[str] = (),
    profiles: Sequence[str] = ("paper",),
) -> MethodResult:
    """Compute (or take from the cache) the map of every sample and score them.

    Parameters
    ----------
    name : str
        Method name, for messages.
    detector : Detector
        A ready detector (trained already, if it learns).
    samples : sequence of Sample
        Images to evaluate; each must have a photo.
    cache : MapCache
        The cache of this method, settings and training state.
    backend : Backend, optional
        Where the maps are computed (default: :class:`InProcess`); its results are cached here,
        in this process, as each arrives.
    progress : callable, optional
        ``tqdm``-like wrapper for progress display.
    keep : collection of str
        Stems whose maps are kept in the result (the report's map grid).
    profiles : sequence of str
        Metric profiles to compute (:data:`evaluation.metrics.PROFILES`; ``paper`` always).
    """
    masks = {s.stem: s.mask() for s in samples}
    todo = [s for s in samples if not cache.has(s)]
    wrap = progress or (lambda it, **kw: it)
    if todo:
        desc = f"{name} ({len(samples) - len(todo)} cached)" if len(todo) < len(samples) else name
        results = _computed(detector, todo, masks, backend or InProcess())
        for s, levels, seconds in wrap(results, total=len(todo), desc=desc, unit="img"):
            cache.store(s, levels, seconds)

    acc = MetricsAccumulator(profiles)
    times = cache.seconds()
    seconds: dict[str, float] = {}
    kept: dict[str, np.ndarray] = {}
    for s in samples:
        shape = masks[s.stem].shape
        levels = cache.load(s, shape)
        if levels is None:  # damaged since it was written: compute it again, where the others were computed
            for _, fresh, t in _computed(detector, [s], masks, backend or InProcess()):
                cache.store(s, fresh, t)
            levels, times = cache.load(s, shape), cache.seconds()
            if levels is None:
                raise OSError(f"{cache.path(s)}: the map just written cannot be read back; check the disk")
        acc.add(s.stem, levels, masks[s.stem])
        t = cache.seconds_of(s, times)
        if t is not None:
            seconds[s.stem] = t
        if s.stem in keep:
            kept[s.stem] = levels
    return MethodResult(name, acc.scores(), seconds, getattr(detector, "trained_on", None), "detector", cache, kept)


def evaluate_maps(
    maps: ExternalMaps,
    samples: Sequence[Sample],
    *,
    progress: Callable[..., Iterator] | None = None,
    keep: Collection[str] = (),
    profiles: Sequence[str] = ("paper",),
) -> MethodResult:
    """Score precomputed maps (masks needed, not photos); ``keep``, ``profiles``: see :func:`evaluate_detector`."""
    if not samples:
        raise DatasetError(f"{maps.folder}: no map file matches an image of the split "
                           "(maps are matched to images by file stem)")
    wrap = progress or (lambda it, **kw: it)
    acc = MetricsAccumulator(profiles)
    kept: dict[str, np.ndarray] = {}
    for s in wrap(samples, total=len(samples), desc=maps.name, unit="img"):
        mask = s.mask()
        score = maps.load(s, mask.shape)
        acc.add(s.stem, score, mask)
        if s.stem in keep:
            kept[s.stem] = score if score.dtype == np.uint8 else quantize(score)
    return MethodResult(maps.name, acc.scores(), {}, None, "maps", None, kept)
