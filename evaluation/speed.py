"""Table VI: seconds per 384 x 384 x 3 photo for every method, beside the paper's.

``python -m evaluation.speed [--methods all] [--data DIR] [--images 10] [--repeats 3] --out OUT``

As in the paper, photos of the benchmark (the synthetic demo without ``--data``) are resized to
384 x 384 and each method maps each of them; the reported time is the median over repeats of the
mean over images, after one warm-up call (which also trains learned methods on the demo's D_o and
loads DBM's weights). Timing is wall-clock in this process, with the threads the method chooses
(``--threads N`` or ``$BLURMAP_THREADS`` caps them). Writes ``OUT/speed.csv`` and ``OUT/speed.md``, each atomically;
existing ones are replaced only with ``--overwrite``.

For per-method statistics with pytest-benchmark, see ``benchmarks/`` (``tox -e bench``).
"""

from __future__ import annotations

import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from baselines.interface import InputError
from .datasets import Dataset
from .paper import TABLE_VI
from .registry import METHODS, UnknownMethodError, resolve_methods

__all__ = ["build_parser", "time_methods", "main"]

SIDE = 384


def _photos(ds: Dataset, n: int) -> list[np.ndarray]:
    import cv2

    samples = ds.samples("all", allow_missing=True)[:n]
    return [np.ascontiguousarray(cv2.resize(s.image(), (SIDE, SIDE), interpolation=cv2.INTER_AREA)) for s in samples]


def time_methods(methods: list[str], photos: list[np.ndarray], repeats: int, device: str, cache: Path,
                 progress=None) -> list[dict]:
    """Seconds per photo of each method (median over ``repeats`` of the mean over photos)."""
    from .registry import build
    from .run import _prepare_trainable_on_demo

    rows = []
    wrap = progress or (lambda it, **kw: it)
    for name in wrap(methods, desc="methods", unit="method"):
        det = build(name, device=device)
        trained_on = _prepare_trainable_on_demo(det, name, cache) if det.trainable else ""
        det(photos[0])  # warm-up: imports, weight loading, caches
        means = []
        for _ in range(repeats):
            start = time.perf_counter()
            for p in photos:
                det(p)
            means.append((time.perf_counter() - start) / len(photos))
        row_label = METHODS[name].paper_row
        rows.append({
            "method": name,
            "paper_row": row_label or "",
            "seconds": statistics.median(means),
            "min_seconds": min(means),
            "paper_seconds": TABLE_VI.get(row_label, "") if row_label else "",
            "trained_on": trained_on,
        })
    return rows


def _markdown(rows: list[dict], n_images: int, repeats: int) -> str:
    cpu = platform.processor() or platform.machine()
    threads = os.environ.get("BLURMAP_THREADS", "all available")
    lines = [
        f"# Table VI: seconds per {SIDE} x {SIDE} x 3 photo",
        "",
        f"{n_images} photos, median of {repeats} repeats after a warm-up; {os.cpu_count()} CPU cores ({cpu}), "
        f"method threads: {threads}. Paper: MATLAB/Caffe on a 3.4 GHz CPU (DBM GPU: Titan X, 0.027 s).",
        "",
        "| Method | ours (s) | paper (s) | speed-up |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        paper = r["paper_seconds"]
        speedup = f"{paper / r['seconds']:.1f}x" if paper else ""
        label = r["method"] + (f" ({r['paper_row']})" if r["paper_row"] else "")
        lines.append(f"| {label} | {r['seconds']:.3f} | {paper if paper else ''} | {speedup} |")
    return "\n".join(lines) + "\n"


def build_parser():
    """The command line of ``python -m evaluation.speed`` (one-line errors, :mod:`evaluation.cli`)."""
    from .cli import RESULTS_OUT, OneLineParser, add_common_options, positive_int

    p = OneLineParser(prog="python -m evaluation.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default="all", help="'all' or a comma-separated list")
    p.add_argument("--data", type=Path, help="benchmark folder (default: the synthetic demo)")
    p.add_argument("--images", type=positive_int, default=10, help="number of photos (the paper used 10)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed passes over the photos (median reported)")
    add_common_options(p, out=RESULTS_OUT, quiet=True, threads=True, device="the torch methods (DBM) run there")
    p.add_argument("--cache", type=Path, default=None, help="demo data and trained states (default: OUT/cache)")
    p.add_argument("--overwrite", action="store_true", help="replace speed.csv and speed.md if --out holds them")
    return p


def _csv_bytes(rows: list[dict]) -> bytes:
    """``speed.csv``: one row per method (the keys of :func:`time_methods`' rows)."""
    import io

    text = io.StringIO()
    w = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return text.getvalue().encode()


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
