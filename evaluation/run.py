"""Evaluate blur detectors on a benchmark the way the paper does: ``python -m evaluation.run``.

Examples
--------
Every method on the built-in synthetic demo benchmark (no download needed)::

    python -m evaluation.run --methods all

The paper's Table III protocol on the CUHK benchmark (learned methods trained on D_o)::

    python -m evaluation.run --data CUHK --split even --methods all --out results/table3

Precomputed maps (PNG or NPY, matched by file stem; ``:sharp`` when high values mean sharp)::

    python -m evaluation.run --data CUHK --split even --methods hifst_published \\
        --maps hifst_published=CUHK_MAPS/hifst:sharp --out OUT

On a Dask cluster (:mod:`evaluation.cluster`; ``local:N`` starts one of N processes here)::

    python -m evaluation.run --data CUHK --split even --methods all --scheduler tcp://HOST:8786

Writes ``OUT/metrics.csv``, ``OUT/report.md``, ``OUT/per_image.csv``, ``OUT/pr_curves.png``,
``OUT/map_grid.png`` and, with ``--save-maps``, ``OUT/maps/METHOD/STEM.png`` (255 = blurred).
Maps are cached in ``OUT/cache`` (or ``--cache DIR``) per method, settings and image: rerun an
interrupted command to resume it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from baselines.datasets import DATASETS, MANIFEST_NAME, POLARITIES, canonical_split, training_split_of
from baselines.interface import InputError
from dbm.fileio import atomic_write_bytes

from .cache import MapCache, file_digest, samples_digest
from .cluster import GPU_RESOURCE, GPU_WORKERS_HELP, SCHEDULER_HELP
from .cli import RESULTS_OUT, CLIError, OneLineParser, add_common_options, apply_threads, positive_int, report
from .datasets import MAP_RESIZE, Dataset, DatasetError, ExternalMaps, parse_maps_option, split_text_of
from .engine import Backend, InProcess, LazyPairs, MethodResult, ProcessPool, evaluate_detector, evaluate_maps
from .metrics import PROFILES, parse_profiles
from .paper import TABLE_OF_SPLIT
from .registry import METHODS, UnknownMethodError, build, load_class, resolve_methods
from .settings import check_selected, parse_set_options, result_label

__all__ = ["main", "build_parser"]

DEMO_LABEL = "synthetic demo"


def _metric_profiles(text: str) -> tuple[str, ...]:
    """argparse type of ``--metrics``: :func:`evaluation.metrics.parse_profiles`, its error as argparse's."""
    try:
        return parse_profiles(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m evaluation.run`` (``blur-eval``); common options from :func:`add_common_options`."""
    p = OneLineParser(
        prog="python -m evaluation.run",
        description="Evaluate local blur detectors with the paper's metrics (ODS, OIS, AP, PR curve).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="methods: " + ", ".join(f"{n}{'' if s.in_all else ' (not in all)'}" for n, s in METHODS.items()),
    )
    p.add_argument("--methods", default="all", help="'all' or a comma-separated list (default: all)")
    p.add_argument("--data", type=Path, help="benchmark folder: CUHK (image/, gt/) or another dataset of the "
                   "README's table; default: the built-in synthetic demo benchmark")
    p.add_argument("--dataset", choices=list(DATASETS), default=None,
                   help="read --data as this dataset (its layout and mask polarity; default: what the folder's "
                   f"{MANIFEST_NAME} declares, else what its layout says: image/ + gt/ is cuhk)")
    p.add_argument("--polarity", choices=["auto", *POLARITIES], default="auto",
                   help="what a white pixel of --data's masks means: " + ", ".join(f"{k}: {v}" for k, v in
                   POLARITIES.items()) + " (default auto: the dataset's)")
    p.add_argument("--no-polarity-check", action="store_true",
                   help="do not stop when the masks look inverted (their 'blurred' region sharper than the rest)")
    p.add_argument("--split", default=None, help="all, odd (also D_o), even (also D_e), train, test (datasets "
                   "in two folders) or a list file (default: the dataset's: even, the paper's D_e, for CUHK)")
    p.add_argument("--train-split", default=None, help="split learned methods train on "
                   "(default: odd when testing even, even when testing odd, train when testing test)")
    p.add_argument("--train-data", type=Path, help="dataset learned methods train on (default: --data)")
    p.add_argument("--maps", action="append", default=[], metavar="NAME=DIR[:sharp]",
                   help="evaluate precomputed maps in DIR as method NAME (repeatable)")
    p.add_argument("--maps-resize", choices=list(MAP_RESIZE), default=None,
                   help="resize --maps maps whose size differs from their mask's to the mask's size with this "
                   "OpenCV interpolation (default: such a map is an error); the report's notes say so")
    p.add_argument("--metrics", type=_metric_profiles, default=("paper",), metavar="PROFILES",
                   help="metric profiles, comma-separated: " + "; ".join(f"{n}: {v.title}" for n, v in PROFILES.items())
                   + " (default: paper, always included; extra profiles add columns to metrics.csv and a report "
                   "section each)")
    p.add_argument("--weights", action="append", default=[], metavar="NAME=PATH",
                   help="weight file for a learned method, e.g. dbm=runs/odd/final.pt (repeatable); "
                   "the DBM configurations and variants (not in all) need one")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="a setting of a selected method, e.g. --set hifst.stride=2 (repeatable; part of the cache "
                   "key; blur-map --list-methods shows every method's settings)")
    p.add_argument("--cache", type=Path, default=None,
                   help="folder for cached maps, trained states and the demo data (default: OUT/cache)")
    p.add_argument("--save-maps", action="store_true", help="also write OUT/maps/METHOD/STEM.png (255 = blurred)")
    p.add_argument("--allow-missing", action="store_true", help="evaluate the images whose photos are present")
    p.add_argument("--workers", type=positive_int, default=1, help="processes computing maps in parallel (CPU methods)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS|local:N", help=SCHEDULER_HELP)
    p.add_argument("--shared-fs", action="store_true",
                   help="with --scheduler: the workers read the photos from their absolute paths, the same on every "
                        "machine (default: the client sends "
                        "each photo's bytes, so workers need not share this file system)")
    p.add_argument("--gpu-workers", action="store_true", help=GPU_WORKERS_HELP)
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N images of the split")
    add_common_options(p, out=RESULTS_OUT, quiet=True, threads=True, device="the DBM networks run there")
    return p


def _progress(quiet: bool):
    if quiet:
        return None
    from tqdm.auto import tqdm

    def wrap(it, **kw):
        return tqdm(it, leave=False, dynamic_ncols=True, file=sys.stderr, **kw)

    return wrap


def _parse_weights(items: Sequence[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise DatasetError(f"--weights {item!r}: expected NAME=PATH, e.g. dbm=runs/odd/final.pt")
        if not Path(path).is_file():
            raise DatasetError(f"--weights {item!r}: {path} not found (write one with python -m dbm.train)")
        out[name.strip()] = Path(path)
    return out


def _train_or_load(detector, name: str, samples, trained_on: str, cache_root: Path, verbose: bool) -> str:
    """Fit a learned detector on ``samples`` or load the state cached for them; return the cache suffix.

    The state is keyed by the detector's settings and the bytes of every training photo and mask,
    and written under a lock, so concurrent runs train once and a changed photo retrains.
    """
    from filelock import FileLock

    suffix = f"-train{samples_digest(samples)}"
    state_path = cache_root / name / f"{detector.cache_key()}{suffix}" / "model.npz"
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(state_path.with_suffix(".lock"))):
        if state_path.is_file():
            try:
                with np.load(state_path, allow_pickle=False) as data:
                    detector.set_state({k: data[k] for k in data.files})
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # damaged: train again
                state_path.unlink()
        if not state_path.is_file():
            if verbose:
                print(f"training {name} on {trained_on} ...", file=sys.stderr)
            detector.fit(LazyPairs(samples))
            buf = io.BytesIO()
            np.savez(buf, **detector.get_state())
            atomic_write_bytes(state_path, buf.getvalue(), overwrite=True)
    detector.trained_on = trained_on
    return suffix


def _demo_dataset(cache_root: Path) -> Dataset:
    """The built-in synthetic demo benchmark, built once (under a lock: runs may share a cache)."""
    from filelock import FileLock

    from .demo import ensure_demo

    cache_root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(cache_root / ".demo.lock")):
        return Dataset(ensure_demo(cache_root / "demo_data"), DEMO_LABEL)


def _demo_training_samples(cache_root: Path):
    samples = _demo_dataset(cache_root).samples("odd")
    return samples, f"{DEMO_LABEL} odd ({len(samples)} images)"


def _prepare_trainable_on_demo(detector, name: str, cache_root: Path) -> str:
    """Train a learned detector on the built-in demo's D_o; return what it was trained on."""
    samples, trained_on = _demo_training_samples(cache_root)
    _train_or_load(detector, name, samples, trained_on, cache_root, verbose=False)
    return trained_on


def _prepare_trainable(detector, name: str, args, dataset: Dataset, dataset_label: str, cache_root: Path,
                       split: str, notes: list[str], progress) -> str:
    """Train a learned detector on the training split (or load its cached state); return the cache suffix.

    The training split is ``--train-split`` or the complement of the test split (D_o for D_e and
    vice versa) of ``--train-data`` or the evaluated dataset; when it has no photos (``--split all``,
    or only test photos present), the built-in synthetic demo's D_o is used and a note says so.
    """
    train_split = canonical_split(args.train_split) if args.train_split else training_split_of(split)
    train_ds, train_label = (Dataset(args.train_data), None) if args.train_data else (dataset, dataset_label)
    train_label = train_label or train_ds.label
    samples = []
    if train_split is not None and _has_any_photo(train_ds, train_split):
        samples = train_ds.samples(train_split, need_images=True, allow_missing=True)
        # the same mask file is the same image (a stem may repeat in another folder of a dataset)
        tested = {s.mask_path.resolve() for s in dataset.samples(split, need_images=False)}
        overlap = sorted(s.stem for s in samples if s.mask_path.resolve() in tested)
        if overlap:
            raise DatasetError(f"{name} would train on {len(overlap)} image(s) of the tested split "
                               f"({', '.join(overlap[:4])}...); choose a --train-split disjoint from --split")
    if samples:
        trained_on = f"{train_label} {split_text_of(train_split)} ({len(samples)} images)"
    else:
        samples, trained_on = _demo_training_samples(cache_root)
        notes.append(f"{name}: no training photos in the evaluated dataset's training split, so it was "
                     f"trained on the built-in {trained_on}")
    return _train_or_load(detector, name, samples, trained_on, cache_root, verbose=progress is not None)


def tested_digests(samples) -> frozenset[str]:
    """Content digests of the tested photos (memoised by :func:`file_digest`)."""
    return frozenset(file_digest(s.image_path) for s in samples if s.image_path is not None)


def _has_any_photo(ds: Dataset, split: str) -> bool:
    return ds.has_split(split) and any(s.image_path for s in ds.samples(split, need_images=False))


def _check_polarity(ds: Dataset, args, notes: list[str], *, what: str = "--data") -> None:
    """Stop if ``ds``'s masks look inverted (unless ``--no-polarity-check``); note how its masks were read.

    The note is written when the dataset is not plain CUHK (another dataset, inverted masks, a
    polarity override) or the check was skipped, so a report says how its ground truth was read.
    """
    fix = None
    if what != "--data":  # --dataset/--polarity describe --data only
        fix = (f"declare its polarity in {ds.root / MANIFEST_NAME} (e.g. {{\"polarity\": \"sharp\"}}) "
               "or pass --no-polarity-check")
    check = None if args.no_polarity_check else ds.check_polarity(fix=fix)
    plain = ds.spec.name == "cuhk" and ds.polarity == "blur"
    if plain and check is not None and check.ratios:
        return
    how = "not checked (--no-polarity-check)" if check is None else check.summary()
    notes.append(f"{what} {ds.label}: read as {ds.spec.name} ({ds.spec.title}; chosen by {ds.declared_by}), masks "
                 f"{POLARITIES[ds.polarity]}{', inverted to 1 = blurred' if ds.polarity == 'sharp' else ''}; {how}")
    print(f"note: {notes[-1]}", file=sys.stderr)


def _backend(args) -> Backend:
    """Where the CPU methods' maps are computed: ``--scheduler`` (Dask), ``--workers N`` or this process."""
    if args.scheduler is not None:
        if args.workers > 1:
            raise DatasetError(f"--scheduler {args.scheduler} and --workers {args.workers} are alternatives: give "
                               "the local cluster its workers with --scheduler local:N")
        from .cluster import DaskCluster

        return DaskCluster(args.scheduler, shared_fs=args.shared_fs, gpu_workers=args.gpu_workers)
    if args.shared_fs:
        raise DatasetError("--shared-fs says how Dask workers read the photos; it needs --scheduler")
    if args.gpu_workers:
        raise DatasetError("--gpu-workers sends DBM to the GPU workers of a Dask cluster; it needs --scheduler ADDRESS")
    return ProcessPool(args.workers) if args.workers > 1 else InProcess()


def run(args: argparse.Namespace) -> list[MethodResult]:
    with _backend(args) as backend, contextlib.ExitStack() as stack:
        return _run(args, backend, stack)


def _run(args: argparse.Namespace, backend: Backend, stack: contextlib.ExitStack) -> list[MethodResult]:
    progress = _progress(args.quiet)
    out: Path = args.out
    cache_root = args.cache or out / "cache"
    notes: list[str] = []

    maps = {}
    for text in args.maps:
        name, folder, sharp = parse_maps_option(text)
        if name in METHODS:
            raise DatasetError(f"--maps {text!r}: {name!r} is a registered method; give the maps another name")
        maps[name] = ExternalMaps(name, folder, high_is_sharp=sharp, resize=args.maps_resize)
    methods = resolve_methods(args.methods, extra=list(maps))
    weights = _parse_weights(args.weights)
    settings = parse_set_options(args.set)
    check_selected(settings, [m for m in methods if m not in maps])
    from dbm.device import devices_elsewhere, parse_device, resolve_device

    device = parse_device(args.device)  # the spelling, without torch
    torch_backend = backend.for_torch()
    remote_torch = not isinstance(torch_backend, InProcess)  # --gpu-workers: Dask workers with GPUs
    if remote_torch:
        stack.enter_context(devices_elsewhere())  # --device names their device, which they check
        remote_device = resolve_device(device)
    if device not in ("auto", "cpu"):
        resolve_device(device)  # CUDA asked for: a one-line error now when there is none
    for name, values in settings.items():  # a bad --set value stops the run before any map is computed
        build(name, device=device, weights=weights.get(name), **values)
    for name in maps:
        if name not in methods:
            print(f"note: --maps {name} is not evaluated: add {name} to --methods (or use --methods all)",
                  file=sys.stderr)
    unused = sorted(set(weights) - set(methods))
    if unused:
        raise DatasetError(f"--weights given for {', '.join(unused)}, which --methods does not select")

    if args.data is None:
        if args.dataset or args.polarity != "auto":
            raise DatasetError("--dataset and --polarity describe the folder given by --data; add --data DIR")
        dataset = _demo_dataset(cache_root)
        label, is_cuhk = DEMO_LABEL, False
    else:
        dataset = Dataset(args.data, dataset=args.dataset, polarity=args.polarity)
        label = dataset.label
        is_cuhk = (dataset.spec.name == "cuhk" and len(dataset.masks) == 1000
                   and all(s.startswith(("motion", "out_of_focus")) for s in dataset.masks))
    _check_polarity(dataset, args, notes)
    if args.train_data:
        _check_polarity(Dataset(args.train_data), args, notes, what="--train-data")
    split = canonical_split(args.split or dataset.default_split)
    split_label = split_text_of(split)
    paper_table = TABLE_OF_SPLIT.get(split) if is_cuhk else None

    need_images = any(m not in maps for m in methods)
    all_stems = dataset.stems(split)
    samples = dataset.samples(split, need_images=need_images, allow_missing=args.allow_missing)
    if args.limit:
        samples = samples[: args.limit]
    for name, m in maps.items():
        if name in methods:
            missing = m.missing([s.stem for s in samples])
            if missing and not args.allow_missing:
                raise DatasetError(f"{m.folder}: {len(missing)} of {len(samples)} maps missing "
                                   f"({', '.join(missing[:8])}); pass --allow-missing to evaluate the rest")
    if len(samples) < len(all_stems):
        notes.append(f"evaluated {len(samples)} of the {len(all_stems)} images of split {split_label} "
                     "(the others have no photo, or --limit was given)")
        print(f"note: {notes[-1]}", file=sys.stderr)

    from .report import grid_stems, write_outputs

    grid = grid_stems(samples)
    # Every detector is built and checked before any map is computed: a network trained on some of
    # the tested photos stops the run at once, not after the other methods' maps.
    detectors = {}
    tested = tested_digests(samples)
    for name in methods:
        if name in maps:
            continue
        weight_file = weights.get(name)
        shipped = getattr(load_class(name), "shipped", ())
        if weight_file is None and len(shipped) > 1:  # the shipped network that never saw these photos
            weight_file = load_class(name).weights_unseen_by(tested)
            if weight_file is not None and weight_file != shipped[0]:
                notes.append(f"{name}: the shipped network {weight_file.name} was used (the default one was "
                             "trained on some of the tested photos)")
        detector = build(name, device=device, weights=weight_file, **settings.get(name, {}))
        seen = detector.training_digests() & tested
        if seen:
            raise DatasetError(f"{name}: its weights were trained on {len(seen)} of the {len(samples)} tested photos; "
                               "test on photos it never saw (the paper: train on D_o, test on D_e) or give "
                               f"--weights {name}=FILE trained on other photos")
        detectors[name] = detector
    results: list[MethodResult] = []
    for name in methods:
        if name in maps:
            subset = [s for s in samples if s.stem in maps[name].files]
            results.append(evaluate_maps(maps[name], subset, progress=progress, keep=grid, profiles=args.metrics))
            if maps[name].resize_note():
                notes.append(maps[name].resize_note())
            continue
        detector = detectors[name]
        suffix = ""
        if detector.trainable and name in weights:  # a saved state: its bytes key the maps
            suffix = f"-state{file_digest(weights[name])}"
        elif detector.trainable:
            suffix = _prepare_trainable(detector, name, args, dataset, label, cache_root, split, notes, progress)
        cache = MapCache.for_method(cache_root, name, f"{detector.cache_key()}{suffix}")
        shown_as = result_label(name, settings.get(name))
        where = backend
        if METHODS[name].needs_torch:  # here, on --device, or on the GPU workers (not a CPU-only precision)
            where = InProcess()
            if remote_torch and detector.settings.get("device", "cpu") == remote_device:
                where = torch_backend
                notes.append(f"{shown_as}: maps not in the cache computed on the Dask workers with the {GPU_RESOURCE} "
                             f"resource, device {remote_device}")
        result = evaluate_detector(shown_as, detector, samples, cache, backend=where, progress=progress, keep=grid,
                                   profiles=args.metrics)
        results.append(result)
        if args.save_maps:
            dest = out / "maps" / shown_as
            dest.mkdir(parents=True, exist_ok=True)
            for s in samples:
                shutil.copyfile(cache.path(s), dest / f"{s.stem}.png")

    torch_ran = any(METHODS[r.name].needs_torch for r in results if r.name in METHODS)
    table = write_outputs(out, results, dataset=label, split=split_label, paper_table=paper_table,
                          benchmark="" if args.data is None else dataset.spec.name, samples=samples, grid=grid,
                          notes=notes, dataset_path=dataset.root,
                          device=str(resolve_device(device)) if torch_ran and not remote_torch else None,
                          command=["python", "-m", "evaluation.run", *getattr(args, "argv", [])])
    print(f"\n{label}, split {split_label}, {len(samples)} images\n")
    print(table)
    print(f"\nwrote {out / 'metrics.csv'}, {out / 'report.md'}, {out / 'pr_curves.png'}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except CLIError as exc:
        report(exc)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for the report's "How this was made"
    apply_threads(args.threads)
    try:
        run(args)
    except (InputError, UnknownMethodError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: maps computed so far are kept in {args.cache or args.out / 'cache'}; "
              "run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
