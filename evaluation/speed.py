"""Table VI: seconds per 384 x 384 x 3 photo for every method, beside the paper's.

``python -m evaluation.speed [--methods all] [--data DIR] [--images 10] [--repeats 3] --out OUT``

As in the paper, photos of the benchmark (the synthetic demo without ``--data``) are resized to
384 x 384 and each method maps each of them; the reported time is the mean +- standard deviation
over the photos of each photo's median over ``--repeats`` calls, after one warm-up call (which also
trains learned methods on the demo's D_o and loads DBM's weights). The machine (CPU model, cores,
threads, library versions, the GPU when CUDA is used: :func:`evaluation.machine.machine`) is
written with the times. Timing is wall-clock in this process, with the threads the method chooses
(``--threads N`` or ``$BLURMAP_THREADS`` caps them). Writes ``OUT/speed.csv`` and ``OUT/speed.md``, each atomically;
existing ones are replaced only with ``--overwrite``.

For per-method statistics with pytest-benchmark, see ``benchmarks/`` (``tox -e bench``).
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from .datasets import Dataset
from .paper import TABLE_VI
from .registry import METHODS, UnknownMethodError, resolve_methods

__all__ = ["MEASURED", "build_parser", "main", "measured_seconds", "time_methods"]

SIDE = 384
#: The release's Table VI as measured (a copy of ``reports/table6/speed.csv``, which
#: ``reports/regenerate.sh`` writes and copies here; a test checks that the two agree), shipped so
#: that ``blur-map --list-methods`` can say how fast each method is.
MEASURED = Path(__file__).parent / "data" / "speed_384.csv"


def measured_seconds(path: Path | None = None) -> tuple[dict[str, tuple[float, float]], str]:
    """The release's measured seconds per 384 x 384 photo, and the machine they were measured on.

    Parameters
    ----------
    path : path, optional
        A ``speed.csv`` written by this command (default: :data:`MEASURED`).

    Returns
    -------
    dict
        Method -> (mean, standard deviation) in seconds; empty when the file is missing or unreadable.
    str
        The machine, e.g. ``"Intel Xeon (AVX2, AVX-512), 2 cores"``; empty with the dict.
    """
    try:
        with open(MEASURED if path is None else path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        seconds = {r["method"]: (float(r["seconds"]), float(r.get("std_seconds") or "nan")) for r in rows}
    except (OSError, ValueError, KeyError, csv.Error):
        return {}, ""
    first = rows[0] if rows else {}
    where = f"{first.get('cpu', 'unknown CPU')}, {first.get('cores', '?')} cores" if first else ""
    return seconds, where


def _photos(ds: Dataset, n: int) -> list[np.ndarray]:
    import cv2

    samples = ds.samples("all", allow_missing=True)[:n]
    return [np.ascontiguousarray(cv2.resize(s.image(), (SIDE, SIDE), interpolation=cv2.INTER_AREA)) for s in samples]


def time_methods(methods: list[str], photos: list[np.ndarray], repeats: int, device: str, cache: Path,
                 progress=None) -> list[dict]:
    """Seconds per photo of each method: mean +- std over the photos after a warm-up.

    Each photo's time is the median of ``repeats`` timed calls (wall clock, this process); the
    row gives the mean, standard deviation, median and minimum of those per-photo times.

    Parameters
    ----------
    methods : list of str
        Registered method names.
    photos : list of ndarray
        The photos, already at :data:`SIDE` x :data:`SIDE`.
    repeats : int
        Timed calls per photo.
    device : str
        Where torch methods run (``auto``, ``cpu``, ``cuda:N``).
    cache : path
        Where learned methods' demo training data and states go.
    progress : callable, optional
        ``tqdm``-like wrapper of the loop over methods.

    Returns
    -------
    list of dict
        One row per method: ``method``, ``paper_row``, ``seconds`` (mean), ``std_seconds``,
        ``median_seconds``, ``min_seconds``, ``paper_seconds``, ``photos``, ``repeats``,
        ``trained_on``, ``device`` and the facts of :func:`evaluation.machine.machine`.
    """
    from dbm.device import resolve_device

    from .machine import machine
    from .registry import build
    from .run import _prepare_trainable_on_demo

    rows = []
    wrap = progress or (lambda it, **kw: it)
    for name in wrap(methods, desc="methods", unit="method"):
        det = build(name, device=device)
        trained_on = _prepare_trainable_on_demo(det, name, cache) if det.trainable else ""
        det(photos[0])  # warm-up: imports, weight loading, caches
        per_photo = []
        for p in photos:
            calls = []
            for _ in range(repeats):
                start = time.perf_counter()
                det(p)
                calls.append(time.perf_counter() - start)
            per_photo.append(statistics.median(calls))
        used = str(resolve_device(device)) if METHODS[name].needs_torch else "cpu"
        row_label = METHODS[name].paper_row
        rows.append({
            "method": name,
            "paper_row": row_label or "",
            "seconds": statistics.fmean(per_photo),
            "std_seconds": statistics.pstdev(per_photo),
            "median_seconds": statistics.median(per_photo),
            "min_seconds": min(per_photo),
            "paper_seconds": TABLE_VI.get(row_label, "") if row_label else "",
            "photos": len(photos),
            "repeats": repeats,
            "trained_on": trained_on,
            "device": used,
            **machine(used),
        })
    return rows


def _markdown(rows: list[dict], n_images: int, repeats: int) -> str:
    facts = {k: v for k, v in rows[0].items() if k in ("cpu", "cores", "threads", "os", "python", "numpy", "torch",
                                                        "opencv", "gpu")}
    gpus = sorted({r["gpu"] for r in rows if r.get("gpu")})
    lines = [
        f"# Table VI: seconds per {SIDE} x {SIDE} x 3 photo",
        "",
        f"Mean +- standard deviation over {n_images} photos resized to {SIDE} x {SIDE} (each photo: the median of "
        f"{repeats} calls), after a warm-up call. Machine: {facts['cpu']}, {facts['cores']} physical cores, "
        f"{facts['threads']} hardware threads; {facts['os']}; Python {facts['python']}, numpy {facts['numpy']}, "
        f"torch {facts['torch']}, OpenCV {facts['opencv']}"
        + (f"; GPU: {', '.join(gpus)}" if gpus else "; no GPU used") + ". "
        "Paper: MATLAB/Caffe on a 3.4 GHz CPU (DBM on a GTX Titan X GPU: 0.027 s).",
        "",
        "| Method | ours (s) | device | paper (s) | ours faster by |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for r in rows:
        paper = r["paper_seconds"]
        speedup = f"{paper / r['seconds']:.1f}x" if paper else ""
        label = r["method"] + (f" ({r['paper_row']})" if r["paper_row"] else "")
        lines.append(f"| {label} | {r['seconds']:.3f} +- {r['std_seconds']:.3f} | {r['device']} | "
                     f"{paper if paper else ''} | {speedup} |")
    return "\n".join(lines) + "\n"


def build_parser():
    """The command line of ``python -m evaluation.speed`` (one-line errors, :mod:`evaluation.cli`)."""
    from .cli import RESULTS_OUT, OneLineParser, add_common_options, positive_int

    p = OneLineParser(prog="python -m evaluation.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="all", help="'all' or a comma-separated list")
    p.add_argument("--data", type=Path, help="benchmark folder (default: the synthetic demo)")
    p.add_argument("--images", type=positive_int, default=10, help="number of photos (the paper used 10)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed calls per photo (each photo's median is its time)")
    add_common_options(p, out=RESULTS_OUT, quiet=True, threads=True, device="the torch methods (DBM) run there")
    p.add_argument("--cache", type=Path, default=None, help="demo data and trained states (default: OUT/cache)")
    p.add_argument("--overwrite", action="store_true", help="replace speed.csv and speed.md if --out holds them")
    return p


def _csv_bytes(rows: list[dict]) -> bytes:
    """``speed.csv``: one row per method, every row's keys as columns (``gpu`` only on CUDA rows)."""
    from .cli import csv_bytes

    return csv_bytes(rows)


def _time_and_write(args) -> str:
    """The work of :func:`main`: time the methods, write ``speed.csv`` and ``speed.md``; return the Markdown."""
    from .cli import refuse_existing, write_new_files
    from .predict import prepare_out

    targets = {"csv": args.out / "speed.csv", "md": args.out / "speed.md"}
    refuse_existing(targets.values(), overwrite=args.overwrite)
    methods = resolve_methods(args.methods)
    from .demo import ensure_demo

    cache = args.cache or args.out / "cache"
    ds = Dataset(args.data) if args.data else Dataset(ensure_demo(cache / "demo_data"), "synthetic demo")
    photos = _photos(ds, args.images)
    from tqdm.auto import tqdm

    rows = time_methods(methods, photos, args.repeats, args.device, cache,
                        progress=lambda it, **kw: tqdm(it, file=sys.stderr, leave=False, disable=args.quiet, **kw))
    md = _markdown(rows, len(photos), args.repeats)
    prepare_out(args.out)
    write_new_files({targets["csv"]: _csv_bytes(rows), targets["md"]: md.encode()}, overwrite=args.overwrite)
    return md


def main(argv: list[str] | None = None) -> int:
    """``python -m evaluation.speed``: time the methods, write the table; return the exit status.

    Returns
    -------
    int
        0 written; 2 nothing written (a bad option, method or dataset, an existing ``speed.csv``
        or ``speed.md`` without ``--overwrite``, an unwritable ``--out``): one line on stderr.
    """
    from .cli import run_cli

    def show(args, md: str) -> int:
        print(md)
        return 0

    return run_cli(build_parser(), argv, _time_and_write, errors=(UnknownMethodError,), then=show)


if __name__ == "__main__":
    sys.exit(main())
