"""Evaluate detectors and external maps on a list of samples, with a resumable map cache.

Maps are computed once and kept in a :class:`evaluation.cache.MapCache` (keyed by method,
settings, weights and the photo's bytes) the moment they are computed, so an interrupted run loses
nothing already computed: the same command resumes where it stopped. Results go to the report in
memory (:class:`MethodResult`), including the maps of the images the report shows.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterator, Sequence

import numpy as np

from baselines.interface import Detector
from .cache import MapCache
from .datasets import DatasetError, ExternalMaps, Sample
from .metrics import MetricsAccumulator, Scores, quantize

__all__ = ["LazyPairs", "MethodResult", "evaluate_detector", "evaluate_maps"]


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


# Worker-side state: one detector per process, built once by the pool initializer.
_WORKER: dict[str, object] = {}


@contextlib.contextmanager
def _single_threaded_children():
    """Environment inherited by spawned workers: one thread each for BLAS, OpenMP and the methods."""
    from dbm.cli import THREAD_VARIABLES as names

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


def _init_worker(detector: Detector) -> None:
    _WORKER["detector"] = detector
    try:  # avoid oversubscription: each worker process uses one thread for BLAS/OpenCV
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # pragma: no cover
        pass


def _compute_one(detector: Detector, sample: Sample, mask_shape: tuple[int, int], cache: MapCache) -> float:
    rgb = sample.image(mask_shape)
    start = time.perf_counter()
    score = detector(rgb)
    seconds = time.perf_counter() - start
    cache.store(sample, quantize(score), seconds)
    return seconds


def _worker_task(args: tuple[Sample, tuple[int, int], MapCache]) -> str:
    sample, mask_shape, cache = args
    _compute_one(_WORKER["detector"], sample, mask_shape, cache)  # type: ignore[arg-type]
    return sample.stem


def evaluate_detector(
    name: str,
    detector: Detector,
    samples: Sequence[Sample],
    cache: MapCache,
    *,
    workers: int = 1,
    progress: Callable[..., Iterator] | None = None,
    keep: Collection[str] = (),
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
    workers : int
        Processes computing maps in parallel (1 = in this process).
    progress : callable, optional
        ``tqdm``-like wrapper for progress display.
    keep : collection of str
        Stems whose maps are kept in the result (the report's map grid).
    """
    masks = {s.stem: s.mask() for s in samples}
    todo = [s for s in samples if not cache.has(s)]
    wrap = progress or (lambda it, **kw: it)
    if todo:
        desc = f"{name} ({len(samples) - len(todo)} cached)" if len(todo) < len(samples) else name
        if workers > 1 and len(todo) > 1:
            tasks = [(s, masks[s.stem].shape, cache) for s in todo]
            # spawn, not fork: forking a process that runs threads (OpenCV, BLAS, torch) can deadlock.
            ctx = multiprocessing.get_context("spawn")
            with _single_threaded_children(), ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_init_worker, initargs=(detector,)
            ) as pool:
                for _ in wrap(pool.map(_worker_task, tasks), total=len(tasks), desc=desc, unit="img"):
                    pass
        else:
            for s in wrap(todo, total=len(todo), desc=desc, unit="img"):
                _compute_one(detector, s, masks[s.stem].shape, cache)

    acc = MetricsAccumulator()
    times = cache.seconds()
    seconds: dict[str, float] = {}
    kept: dict[str, np.ndarray] = {}
    for s in samples:
        shape = masks[s.stem].shape
        levels = cache.load(s, shape)
        if levels is None:  # damaged since it was written: compute it again
            _compute_one(detector, s, shape, cache)
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
) -> MethodResult:
    """Score precomputed maps (only masks are needed, not photos); ``keep`` as in :func:`evaluate_detector`."""
    if not samples:
        raise DatasetError(f"{maps.folder}: no map file matches an image of the split "
                           "(maps are matched to images by file stem)")
    wrap = progress or (lambda it, **kw: it)
    acc = MetricsAccumulator()
    kept: dict[str, np.ndarray] = {}
    for s in wrap(samples, total=len(samples), desc=maps.name, unit="img"):
        mask = s.mask()
        score = maps.load(s, mask.shape)
        acc.add(s.stem, score, mask)
        if s.stem in keep:
            kept[s.stem] = score if score.dtype == np.uint8 else quantize(score)
    return MethodResult(maps.name, acc.scores(), {}, None, "maps", None, kept)
