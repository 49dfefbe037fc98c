"""Wall time of the runner on one process, ``--workers N`` and a Dask cluster, and a projection for K machines.

The workload is the paper's Table III: the 500 D_e photos of CUHK (``--split even``) and its
methods, the learned ones trained on D_o. Run from the repository folder::

    python benchmarks/scaleout.py --data ../shared/data/cuhk_full                  # all 500 photos: hours
    python benchmarks/scaleout.py --data ../shared/data/cuhk_full --limit 4 \\
        --methods gradient_energy,spectral_slope                                    # a quick look
    python benchmarks/scaleout.py --data ../shared/data/cuhk_full --split EVERY5TH_DE.txt --train-split odd

Each mode runs ``python -m evaluation.run`` from scratch on the same maps-free cache: the learned
methods are trained once, before anything is timed, and their trained state is kept between the
modes (only the maps are removed). Printed: each mode's wall time and speed-up over one process,
the compute seconds of the maps (the part that runs in parallel), and, from those, a projection
for K machines of ``--workers-per-machine`` one-thread workers each, by Amdahl's law with the
parallel efficiency measured on the Dask run here (which includes sending photos and maps and the
scheduler's overhead)::

    T(K) = serial + compute / (K * workers_per_machine * efficiency)

where ``serial`` is what one process spends outside the maps (start-up, masks, training state,
scoring, the report; on a cluster the client also reads and sends the photos), ``compute`` the
sum of the maps' compute seconds and ``efficiency = compute / (slots * (T_dask - serial))``. The
torch methods (DBM) run in the client in every mode, so their maps count as serial. This is a
measurement script, not a test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the suite's dbm before the standard library's

from evaluation.registry import METHODS, resolve_methods  # noqa: E402
from evaluation.settings import method_of_label  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="CUHK with all 1,000 photos (e.g. ../shared/data/cuhk_full)")
    p.add_argument("--split", default="even", help="tested split (default: even, the paper's D_e of Table III)")
    p.add_argument("--methods", default="all", help="methods (default: all, the rows of Table III)")
    p.add_argument("--limit", type=int, default=None, help="only the first N photos of the split")
    p.add_argument("--train-split", default=None,
                   help="what the learned methods train on (default: the runner's, D_o for --split even); "
                        "needed with a list file as --split, e.g. every 5th D_e photo with --train-split odd")
    p.add_argument("--workers", type=int, default=2, help="processes of --workers N and workers of --scheduler local:N")
    p.add_argument("--workers-per-machine", type=int, default=None,
                   help="one-thread workers per machine in the projection (default: --workers)")
    p.add_argument("--machines", default="1,2,4,8,16", help="K values of the projection")
    p.add_argument("--keep", type=Path, default=None, help="keep the runs' outputs in this folder (default: removed)")
    return p


def _run(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "evaluation.run", *argv], cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"evaluation.run {' '.join(argv)} failed:\n{done.stderr.strip()[-2000:]}")
    return seconds


def _drop_maps(cache: Path) -> None:
    """Remove the cached maps and their times, keep the learned methods' trained states (model.npz)."""
    for path in list(cache.glob("*/*/*.png")) + list(cache.glob("*/*/times.jsonl")):
        path.unlink()


def _compute_seconds(out: Path) -> tuple[float, float]:
    """Sum of the maps' compute seconds from ``per_image.csv``: (all methods, the torch methods)."""
    total = torch = 0.0
    with open(out / "per_image.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            s = float(row["seconds"] or 0)
            total += s
            base = method_of_label(row["method"])
            if base in METHODS and METHODS[base].needs_torch:
                torch += s
    return total, torch


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    methods = ",".join(resolve_methods(args.methods))
    per_machine = args.workers_per_machine or args.workers
    work = Path(tempfile.mkdtemp(prefix="scaleout-")) if args.keep is None else args.keep
    cache = work / "cache"
    base = ["--data", str(args.data.resolve()), "--split", args.split, "--methods", methods, "--cache", str(cache),
            "--quiet", "--allow-missing"] + (["--limit", str(args.limit)] if args.limit else []) + (
        ["--train-split", args.train_split] if args.train_split else [])
    try:
        print(f"training the learned methods (not timed) into {cache} ...", file=sys.stderr)
        _run([*base, "--out", str(work / "warmup"), "--limit", "1"])  # the last --limit wins
        modes = [("one process", []), (f"--workers {args.workers}", ["--workers", str(args.workers)]),
                 (f"--scheduler local:{args.workers}", ["--scheduler", f"local:{args.workers}"])]
        results = []
        for label, extra in modes:
            _drop_maps(cache)
            out = work / label.replace(" ", "_").replace(":", "").strip("-")
            seconds = _run([*base, "--out", str(out), *extra])
            results.append((label, seconds, *_compute_seconds(out)))
            print(f"{label}: {seconds:.1f} s", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    n = args.limit or "all"
    print(f"\n{methods} on {n} photos of {args.data} (split {args.split}); {os.cpu_count()} cores here\n")
    print("| mode | wall s | speed-up | map compute s |")
    print("| --- | ---: | ---: | ---: |")
    t1 = results[0][1]
    for label, seconds, compute, _ in results:
        print(f"| {label} | {seconds:.1f} | {t1 / seconds:.2f} | {compute:.1f} |")
    _, t_one, compute_one, torch_one = results[0]
    parallel = compute_one - torch_one
    serial = max(t_one - parallel, 0.0)
    t_dask = results[2][1]
    efficiency = parallel / (args.workers * (t_dask - serial)) if t_dask > serial and parallel > 0 else float("nan")
    print(f"\nserial part {serial:.1f} s, parallel part {parallel:.1f} s (maps of the CPU methods), parallel "
          f"efficiency of the Dask run {efficiency:.2f} per worker\n")
    print(f"| machines K ({per_machine} workers each) | projected wall s | speed-up |")
    print("| ---: | ---: | ---: |")
    for k in (int(x) for x in args.machines.split(",")):
        projected = serial + parallel / (k * per_machine * efficiency) if efficiency == efficiency else float("nan")
        print(f"| {k} | {projected:.1f} | {t_one / projected:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
