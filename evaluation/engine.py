"""Evaluate detectors and external maps on a list of samples, with a resumable map cache.

Each computed map is stored as an 8-bit PNG (``round(255 * score)``, 255 = blurred) under
``CACHE/<method>/<settings-key>/<stem>.png`` the moment it is computed, with its compute time
appended to ``times.jsonl`` beside it. The metrics quantise maps to exactly those 256 levels, so a
cached map scores exactly as a fresh one, and an interrupted run loses nothing already computed:
the same command resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from baselines.interface import THREADS_ENV, Detector
from .datasets import ExternalMaps, Sample
from .metrics import MetricsAccumulator, Scores, quantize

__all__ = ["LazyPairs", "MethodResult", "evaluate_detector", "evaluate_maps", "read_levels", "write_levels"]


@dataclass
class MethodResult:
    """Scores of one method on one split, with what is needed to report them."""

    name: str
    scores: Scores
    seconds: list[float] = field(default_factory=list)
    trained_on: str | None = None
    source: str = "detector"  # or "maps"
    cache_dir: Path | None = None

    @property
    def sec_per_image(self) -> float:
        return float(np.mean(self.seconds)) if self.seconds else float("nan")


def write_levels(path: Path, levels: np.ndarray) -> None:
    """Write uint8 levels as a PNG atomically (a crash never leaves half a file)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(levels))
    if not ok:  # pragma: no cover - OpenCV failure
        raise OSError(f"{path}: PNG encoding failed")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)


def read_levels(path: Path) -> np.ndarray | None:
    """Read a cached 8-bit map, or None when it is missing or unreadable (then it is recomputed)."""
    import cv2

    if not path.is_file():
        return None
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint8 or img.ndim != 2:
        return None
    return img


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
    names = (THREADS_ENV, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
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


def _compute_one(detector: Detector, sample: Sample, mask_shape: tuple[int, int], out_png: Path) -> float:
    rgb = sample.image(mask_shape)
    start = time.perf_counter()
    score = detector(rgb)
    seconds = time.perf_counter() - start
    write_levels(out_png, quantize(score))
    return seconds


def _worker_task(args: tuple[Sample, tuple[int, int], Path]) -> tuple[str, float]:
    sample, mask_shape, out_png = args
    return sample.stem, _compute_one(_WORKER["detector"], sample, mask_shape, out_png)  # type: ignore[arg-type]


def _read_times(path: Path) -> dict[str, float]:
    times: dict[str, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                times[rec["stem"]] = float(rec["seconds"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interruption
    return times


def evaluate_detector(
    name: str,
    detector: Detector,
    samples: Sequence[Sample],
    cache_dir: Path,
    *,
    workers: int = 1,
    progress: Callable[..., Iterator] | None = None,
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
    cache_dir : Path
        Folder for this method and settings; maps go to ``cache_dir/<stem>.png``.
    workers : int
        Processes computing maps in parallel (1 = in this process).
    progress : callable, optional
        ``tqdm``-like wrapper for progress display.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    times_path = cache_dir / "times.jsonl"
    times = _read_times(times_path)
    masks = {s.stem: s.mask() for s in samples}
    todo = [s for s in samples if read_levels(cache_dir / f"{s.stem}.png") is None]
    wrap = progress or (lambda it, **kw: it)

    def record(stem: str, seconds: float) -> None:
        times[stem] = seconds
        with open(times_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"stem": stem, "seconds": round(seconds, 6)}) + "\n")

    if todo:
        desc = f"{name} ({len(samples) - len(todo)} cached)" if len(todo) < len(samples) else name
        if workers > 1 and len(todo) > 1:
            tasks = [(s, masks[s.stem].shape, cache_dir / f"{s.stem}.png") for s in todo]
            # spawn, not fork: forking a process that runs threads (OpenCV, BLAS, torch) can deadlock.
            ctx = multiprocessing.get_context("spawn")
            with _single_threaded_children(), ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_init_worker, initargs=(detector,)
            ) as pool:
                for stem, seconds in wrap(pool.map(_worker_task, tasks), total=len(tasks), desc=desc, unit="img"):
                    record(stem, seconds)
        else:
            for s in wrap(todo, total=len(todo), desc=desc, unit="img"):
                record(s.stem, _compute_one(detector, s, masks[s.stem].shape, cache_dir / f"{s.stem}.png"))

    acc = MetricsAccumulator()
    for s in samples:
        levels = read_levels(cache_dir / f"{s.stem}.png")
        if levels is None or levels.shape != masks[s.stem].shape:
            raise RuntimeError(f"{cache_dir / (s.stem + '.png')}: cached map unreadable; delete it and rerun")
        acc.add(s.stem, levels, masks[s.stem])
    seconds = [times[s.stem] for s in samples if s.stem in times]
    return MethodResult(name, acc.scores(), seconds, getattr(detector, "trained_on", None), "detector", cache_dir)


def evaluate_maps(
    maps: ExternalMaps,
    samples: Sequence[Sample],
    *,
    progress: Callable[..., Iterator] | None = None,
) -> MethodResult:
    """Score precomputed maps (only masks are needed, not photos)."""
    wrap = progress or (lambda it, **kw: it)
    acc = MetricsAccumulator()
    for s in wrap(samples, total=len(samples), desc=maps.name, unit="img"):
        mask = s.mask()
        acc.add(s.stem, maps.load(s, mask.shape), mask)
    return MethodResult(maps.name, acc.scores(), [], None, "maps", None)
