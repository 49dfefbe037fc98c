"""Wall time of the runner on one process, ``--workers N`` and a Dask cluster, and a projection for K machines.

The workload is the paper's Table III: the 500 D_e photos of CUHK (``--split even``) and its
methods, the learned ones trained on D_o. Run from the repository folder::

    python benchmarks/scaleout.py --data ../shared/data/cuhk_full --keep scaleout_all   # all 500 photos: hours
    python benchmarks/scaleout.py --data ../shared/data/cuhk_full --limit 4 \\
        --methods gradient_energy,spectral_slope                                    # a quick look
    python benchmarks/scaleout.py --data ../shared/data/cuhk_full --split EVERY10TH_DE.txt --train-split odd

Each mode runs ``python -m evaluation.run`` from scratch on the same maps-free cache: the learned
methods are trained once, before anything is timed, and their trained state is kept between the
modes (only the maps are removed). The modes (``--modes``, default all five, in this order):

``one``
    one process, the libraries' default threads (BLAS, OpenCV, FFT and the methods use every core);
``one-thread``
    one process with one thread (``--threads 1``): the work of one worker slot, the baseline
    that process parallelism divides;
``workers``
    ``--workers N`` (N one-thread processes);
``dask``
    ``--scheduler local:N`` (a Dask LocalCluster of N one-thread workers; photos sent as bytes);
``client``
    one process with the CPU methods' maps in the cache (those of the mode measured before it):
    what stays in the client whatever the number of workers, the serial part of the projection.

With ``--keep DIR`` each finished mode is stored in ``DIR/results.json`` with the machine it ran
on, and the same command run again measures only the modes still missing, so a workload longer
than one sitting can be measured in parts; a mode stopped half-way is measured again from
scratch. The table marks modes measured on another CPU than the first one (their ratios are not
comparable).

Printed: each mode's wall time, its speed-up over one process and over one process with one
thread, the compute seconds of the maps (the sum over tasks: the part that runs in parallel),
and a projection for K machines of ``--workers-per-machine`` one-thread workers each, by
Amdahl's law from the Dask run::

    T(K) = serial + (T_dask - serial) * N / (K * workers_per_machine)

where ``serial`` is the wall time of the ``client`` mode (start-up, masks, training state,
scoring every map, the report, and the torch methods' maps, which run in the client in every
mode: the runner computes a method's maps, then scores them, one method after another) and
``T_dask - serial`` the Dask run's parallel part, with its per-task overheads (sending photos
and maps, scheduling, the client storing the maps). Without the ``client`` mode, ``serial`` is
estimated as the one-process wall time less its CPU maps' compute seconds, an overestimate
(reading and decoding each photo, timed outside the map, is counted serial though workers do
it). Also printed: the Dask workers' busy fraction, the CPU maps' compute seconds over
``N * (T_dask - serial)``. This is a measurement script, not a test: it asserts nothing about
speed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the suite's dbm before the standard library's

from dbm.cli import THREAD_VARIABLES  # noqa: E402
from dbm.fileio import atomic_write_bytes  # noqa: E402

from evaluation.machine import machine  # noqa: E402
from evaluation.registry import METHODS, resolve_methods  # noqa: E402
from evaluation.settings import method_of_label  # noqa: E402

#: The modes, in the order they run: key -> (label, runner arguments), ``{n}`` standing for ``--workers``.
MODES = {
    "one": ("one process", []),
    "one-thread": ("one process, --threads 1", ["--threads", "1"]),
    "workers": ("--workers {n}", ["--workers", "{n}"]),
    "dask": ("--scheduler local:{n}", ["--scheduler", "local:{n}"]),
    "client": ("one process, CPU maps cached (the serial part)", []),
}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a whole number of at least 1")
    return value


def _counts(text: str) -> list[int]:
    try:
        return [_positive(x) for x in text.split(",") if x.strip()] or [1]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text}: expected whole numbers of at least 1, e.g. 1,2,4") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="CUHK with all 1,000 photos (e.g. ../shared/data/cuhk_full)")
    p.add_argument("--split", default="even", help="tested split (default: even, the paper's D_e of Table III)")
    p.add_argument("--methods", default="all", help="methods (default: all, the rows of Table III)")
    p.add_argument("--limit", type=int, default=None, help="only the first N photos of the split")
    p.add_argument("--train-split", default=None,
                   help="what the learned methods train on (default: the runner's, D_o for --split even); "
                        "needed with a list file as --split, e.g. every 10th D_e photo with --train-split odd")
    p.add_argument("--workers", type=_positive, default=2, help="processes of --workers N and workers of --scheduler local:N")
    p.add_argument("--modes", default=",".join(MODES), help=f"modes to measure, of {', '.join(MODES)}")
    p.add_argument("--workers-per-machine", type=_positive, default=None,
                   help="one-thread workers per machine in the projection (default: --workers)")
    p.add_argument("--machines", type=_counts, default=[1, 2, 4, 8, 16], help="K values of the projection (default: 1,2,4,8,16)")
    p.add_argument("--keep", type=Path, default=None,
                   help="keep the runs' outputs and results.json in this folder, and resume there (default: removed)")
    p.add_argument("--again", action="store_true", help="measure the chosen modes again even if --keep holds them")
    return p


def _run(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "evaluation.run", *argv], check=False, cwd=REPO,
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"evaluation.run {' '.join(argv)} failed:\n{done.stderr.strip()[-2000:]}")
    return seconds


def _is_torch(folder: Path) -> bool:
    """Whether a method folder of the cache holds a torch method's maps."""
    base = method_of_label(folder.name)
    return base in METHODS and METHODS[base].needs_torch


def _drop_maps(cache: Path, torch_only: bool = False) -> None:
    """Remove the cached maps and their times (``torch_only``: the torch methods'), keep trained states (model.npz)."""
    for folder in cache.iterdir() if cache.is_dir() else ():
        if folder.is_dir() and (_is_torch(folder) or not torch_only):
            for path in list(folder.glob("*/*.png")) + list(folder.glob("*/times.jsonl")):
                path.unlink()


def _cpu_maps(cache: Path) -> int:
    """Number of the CPU methods' maps in the cache."""
    return sum(len(list(f.glob("*/*.png"))) for f in cache.iterdir() if f.is_dir() and not _is_torch(f))


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


def _load(path: Path, workload: dict) -> dict:
    """The modes already measured for this workload in ``results.json`` (none if there is no file)."""
    if not path.is_file():
        return {}
    stored = json.loads(path.read_text())
    if stored["workload"] != workload:
        sys.exit(f"{path}: measured for another workload ({stored['workload']}); use another --keep folder")
    return stored["modes"]


def _save(path: Path, workload: dict, modes: dict) -> None:
    atomic_write_bytes(path, json.dumps({"workload": workload, "modes": modes}, indent=1).encode(), overwrite=True)


def _table(results: dict, workers: int, per_machine: int, machines: list[int]) -> None:
    first_cpu = next(iter(results.values()))["machine"]["cpu"]
    t1 = results.get("one", {}).get("wall_s")
    t1t = results.get("one-thread", {}).get("wall_s")
    print("| mode | wall s | speed-up over one process | over one process, 1 thread | map compute s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, r in results.items():
        other = "" if r["machine"]["cpu"] == first_cpu else f" (other CPU: {r['machine']['cpu']})"
        ups = " | ".join(f"{base / r['wall_s']:.2f}" if base and key != "client" else "-" for base in (t1, t1t))
        compute = "-" if key == "client" else f"{r['compute_s']:.1f}"  # client: the cached maps' old seconds
        print(f"| {r['label']}{other} | {r['wall_s']:.1f} | {ups} | {compute} |")
    if "one" not in results or "dask" not in results:
        print("\n(the projection needs the modes one and dask)")
        return
    one, dask = results["one"], results["dask"]
    if "client" in results:
        serial, how = results["client"]["wall_s"], "measured (mode client)"
    else:
        serial = max(one["wall_s"] - (one["compute_s"] - one["torch_s"]), 0.0)
        how = "estimated from one process, an overestimate (measure it: --modes client)"
    parallel = dask["wall_s"] - serial
    if parallel <= 0:
        print(f"\nserial part {serial:.1f} s is not below the Dask run's wall time: no projection")
        return
    busy = (dask["compute_s"] - dask["torch_s"]) / (workers * parallel)
    print(f"\nserial part {serial:.1f} s, {how}; the Dask run's parallel part {parallel:.1f} s, its {workers} "
          f"workers busy computing maps {busy:.0%} of it\n")
    print(f"| machines K ({per_machine} workers each) | projected wall s | speed-up over one process |")
    print("| ---: | ---: | ---: |")
    for k in machines:
        projected = serial + parallel * workers / (k * per_machine)
        print(f"| {k} | {projected:.1f} | {one['wall_s'] / projected:.2f} |")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    methods = ",".join(resolve_methods(args.methods))
    chosen = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MODES))
    if unknown:
        sys.exit(f"--modes: unknown {', '.join(unknown)}; choose from {', '.join(MODES)}")
    per_machine = args.workers_per_machine or args.workers
    work = Path(tempfile.mkdtemp(prefix="scaleout-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    cache = work / "cache"
    workload = {"data": str(args.data.resolve()), "split": args.split, "methods": methods, "limit": args.limit,
                "train_split": args.train_split, "workers": args.workers}
    base = ["--data", workload["data"], "--split", args.split, "--methods", methods, "--cache", str(cache),
            "--quiet", "--allow-missing"] + (["--limit", str(args.limit)] if args.limit else []) + (
        ["--train-split", args.train_split] if args.train_split else [])
    store = work / "results.json"
    results = _load(store, workload)
    try:
        for key in chosen:
            if key in results and not args.again:
                print(f"{results[key]['label']}: {results[key]['wall_s']:.1f} s (measured before, in {store})",
                      file=sys.stderr)
                continue
            trained = cache / ".trained"  # holds the workload the learned methods were trained for
            if not trained.is_file() or trained.read_text() != json.dumps(workload):
                print(f"training the learned methods (not timed) into {cache} ...", file=sys.stderr)
                shutil.rmtree(work / "warmup", ignore_errors=True)
                _run([*base, "--out", str(work / "warmup"), "--limit", "1"])  # the last --limit wins
                atomic_write_bytes(trained, json.dumps(workload).encode(), overwrite=True)
            label, extra = MODES[key]
            label, extra = label.format(n=args.workers), [x.format(n=args.workers) for x in extra]
            # the libraries' default threads, whatever this shell sets, except in one-thread
            env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
            if key == "one-thread":
                env.update({n: "1" for n in THREAD_VARIABLES})
            _drop_maps(cache, torch_only=key == "client")
            cpu_maps = _cpu_maps(cache)
            if key == "client" and not cpu_maps:
                sys.exit("--modes client needs the CPU methods' maps in the cache: measure another mode before it "
                         "(in the same command or --keep folder)")
            out = work / key
            if out.exists():
                shutil.rmtree(out)
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            seconds = _run([*base, "--out", str(out), *extra], env)
            if key == "client" and _cpu_maps(cache) != cpu_maps:
                sys.exit("--modes client: the cache lacked some CPU methods' maps, so the run computed them: "
                         "measure another mode before it, in the same command")
            compute, torch = _compute_seconds(out)
            results[key] = {"label": label, "wall_s": seconds, "compute_s": compute, "torch_s": torch,
                            "started": started, "machine": machine()}
            results = {k: results[k] for k in MODES if k in results}
            if args.keep is not None:
                _save(store, workload, results)
            print(f"{label}: {seconds:.1f} s", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    if not results:
        return 0
    n = args.limit or "all"
    m = next(iter(results.values()))["machine"]
    print(f"\n{methods} on {n} photos of {args.data} (split {args.split}); {m['cpu']}, {m['cores']} cores\n")
    _table(results, args.workers, per_machine, args.machines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
