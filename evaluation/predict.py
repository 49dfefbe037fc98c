"""Blur maps for photos with any registered method: ``blur-map PHOTO_OR_FOLDER... --out DIR``.

Also ``python -m evaluation.predict``. Writes ``DIR/<stem>.png`` for every photo (8-bit grey,
255 = blurred, same size as the photo). Folders are read non-recursively (``.jpg``, ``.jpeg``,
``.png``, ``.bmp``, ``.tif``, ``.tiff``, ``.webp`` in any case). Methods are built through the
one front door, :func:`evaluation.registry.build`. ``--method dbm`` (default) uses the shipped
Configuration V weights; the other DBM configurations and variants (``dbm_config_i`` ...
``dbm_dsn``) need ``--weights`` from ``python -m dbm.train``; the learned classical methods
(``liu08``, ``shi14``) need ``--weights`` naming a state the runner saved (``model.npz``).

Nothing is lost or overwritten:

* every map gets its own file: photos with the same stem (``a.jpg``, ``a.png``, or two folders)
  get ``a.png``, ``a_1.png``, ... with names that no other photo of the run claims
  (:func:`plan_outputs`);
* a file already in ``--out`` is never replaced unless ``--overwrite`` is given; without it the
  map goes to the next free name and a note says so. An input photo is never replaced, even with
  ``--overwrite``. Names are compared ignoring letter case, so the maps stay distinct on
  case-insensitive file systems;
* every map is written to a temporary file in ``--out`` that then takes its name in one step
  (:func:`dbm.fileio.atomic_write`); a failed write (full disk, no permission) stops the run with
  an error naming the file.

Exit status (:mod:`dbm.cli`): 0 all maps written; 1 some photos skipped (unreadable) or a map could
not be written; 2 nothing done (bad option, photo list, weights, device or ``--out``). Every
problem is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["MAX_SIZE", "MIN_SIZE", "main", "collect_photos", "plan_outputs"]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Smallest ``--size`` (other than 0): two cells of Configuration V's 16-pixel stride; below it the
#: network sees a single cell and the map is constant.
MIN_SIZE = 32
#: Largest ``--size``: a 4096 x 4096 input already needs about 4 GB for the first VGG16 stage.
MAX_SIZE = 4096


def collect_photos(items: list[str | Path]) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of photo paths.

    Raises
    ------
    baselines.interface.InputError
        For a missing path or a folder without photos.
    """
    from baselines.interface import InputError

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in PHOTO_SUFFIXES)
            if not found:
                raise InputError(f"{p}: folder holds no photos ({', '.join(PHOTO_SUFFIXES)})")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def _key(name: str) -> str:
    return name.casefold()


def plan_outputs(photos: list[Path], out: Path, *, overwrite: bool = False) -> tuple[list[Path], list[str]]:
    """Collision-free map paths for ``photos`` in the folder ``out``.

    Each photo gets ``<stem>.png`` when no earlier photo of the run has that name and (without
    ``overwrite``) no file of that name is in ``out``; otherwise the first ``<stem>_<k>.png``
    (k = 1, 2, ...) that no photo claims as its own name, no earlier photo got and (without
    ``overwrite``) no file in ``out`` has. Input photos in ``out`` are never targets. Names are
    compared ignoring letter case.

    Parameters
    ----------
    photos : list of Path
        The photos, in the order they are processed.
    out : Path
        The output folder (need not exist yet).
    overwrite : bool
        Whether existing files in ``out`` (other than input photos) may be replaced.

    Returns
    -------
    (list of Path, list of str)
        One target per photo, and notes (one line each) on maps that could not take their
        photo's name because a file of that name already exists in ``out``.
    """
    existing: set[str] = set()
    if out.is_dir():
        existing = {_key(p.name) for p in out.iterdir()}
    try:
        out_resolved = out.resolve()
        inputs_here = {_key(p.name) for p in photos if p.resolve().parent == out_resolved}
    except OSError:  # pragma: no cover - unresolvable paths: protect by name only
        inputs_here = set()
    blocked = existing if not overwrite else (existing & inputs_here)
    natural = {_key(f"{p.stem}.png") for p in photos}
    taken: set[str] = set()
    targets: list[Path] = []
    notes: list[str] = []
    for photo in photos:
        name = f"{photo.stem}.png"
        if _key(name) not in taken and _key(name) not in blocked:
            chosen = name
        else:
            k = 1
            while True:
                chosen = f"{photo.stem}_{k}.png"
                key = _key(chosen)
                if key not in taken and key not in blocked and key not in natural:
                    break
                k += 1
            if _key(name) in blocked and _key(name) not in taken:
                why = ("is an input photo" if _key(name) in inputs_here
                       else "already exists and was not written by this run")
                hint = "" if overwrite else " (--overwrite replaces existing maps; input photos never)"
                notes.append(f"{out / name} {why}: the map of {photo} goes to {out / chosen}{hint}")
        taken.add(_key(chosen))
        targets.append(out / chosen)
    return targets, notes


def _parser(methods: list[str]) -> argparse.ArgumentParser:
    from dbm.cli import OneLineParser
    from dbm.device import DEVICE_HELP

    parser = OneLineParser(prog="blur-map", description="Blur maps (255 = blurred) with any registered method.")
    parser.add_argument("photos", nargs="+", help="photos and/or folders of photos")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace maps already in --out (default: never; a map whose name is taken goes to "
                             "NAME_1.png, ...); input photos are never replaced")
    parser.add_argument("--method", default="dbm", choices=methods, metavar="METHOD",
                        help="any registered method (default: dbm, the shipped network): " + ", ".join(methods))
    parser.add_argument("--weights", default=None, help="DBM: weight file from python -m dbm.train; "
                        "liu08/shi14: a state (model.npz) the runner saved when it trained them")
    parser.add_argument("--size", type=int, default=None,
                        help=f"DBM networks: input side, 0 (each photo at its own size) or {MIN_SIZE} to {MAX_SIZE} "
                             "(default: from the weights)")
    parser.add_argument("--precision", default=None, choices=["fp32", "bf16", "int8"],
                        help="DBM networks: fp32 (default), bf16 autocast, or int8 (CPU; needs a weight file "
                             "calibrated by python -m dbm.quantize, as the shipped one is)")
    parser.add_argument("--device", default="auto", help=DEVICE_HELP + "; int8 always runs on the CPU")
    parser.add_argument("--threads", type=int, default=None, help="DBM networks: CPU threads of the forward pass "
                        "(default: torch's); the classical methods follow $BLURMAP_THREADS")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def _network_settings(args: argparse.Namespace) -> dict:
    """The DBM-only options that were given, checked against the chosen method's settings."""
    import inspect

    from baselines.interface import InputError

    from .registry import load_class

    given = {k: getattr(args, k) for k in ("size", "precision", "threads") if getattr(args, k) is not None}
    accepted = inspect.signature(load_class(args.method).__init__).parameters
    extra = sorted(k for k in given if k not in accepted)
    if extra:
        raise InputError(f"--{extra[0]}: {args.method} has no such setting (--size, --precision and --threads "
                         "apply to the DBM networks)")
    return given


def _prepare_out(out: Path) -> None:
    from baselines.interface import InputError

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder; choose a folder for the maps")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from dbm.fileio import describe_os_error

        raise InputError(f"--out {out}: cannot create the folder ({describe_os_error(exc)}); "
                         "choose a folder you can write to") from None


def main(argv: list[str] | None = None) -> int:
    """``blur-map`` / ``python -m evaluation.predict``: write the maps; return the exit status (module docstring)."""
    from dbm.cli import CLIError, report

    from .registry import METHODS, build

    try:
        args = _parser(list(METHODS)).parse_args(argv)
    except CLIError as exc:
        report(exc)
        return 2

    import cv2

    from baselines.interface import InputError, read_image

    from dbm.device import parse_device, resolve_device
    from dbm.fileio import atomic_write_bytes, describe_os_error

    try:
        if args.size is not None and args.size != 0 and not MIN_SIZE <= args.size <= MAX_SIZE:
            raise InputError(f"--size {args.size}: use 0 (each photo at its own size) or {MIN_SIZE} to {MAX_SIZE} "
                             f"pixels; below {MIN_SIZE} the network sees a single 16-pixel cell and the map is constant")
        if args.threads is not None and args.threads < 1:
            raise InputError(f"--threads {args.threads}: must be at least 1")
        device = parse_device(args.device)
        if args.precision == "int8" and device not in ("auto", "cpu"):
            raise InputError(f"--device {args.device}: --precision int8 runs on the CPU only; use --device cpu")
        if device not in ("auto", "cpu"):
            resolve_device(device)  # CUDA asked for: a one-line error now when there is none
        photos = collect_photos(args.photos)
        det = build(args.method, device=device, weights=args.weights, **_network_settings(args))
        if det.trainable and args.weights is None:
            raise det.not_trained()
        _prepare_out(args.out)
        targets, notes = plan_outputs(photos, args.out, overwrite=args.overwrite)
    except (InputError, ValueError, FileNotFoundError) as exc:
        report(exc)
        return 2
    for note in notes:
        report(note, prefix="note")
    failed = 0
    written = 0
    for photo, target in zip(photos, targets):
        try:
            rgb = read_image(photo)
            t0 = time.perf_counter()
            blur = det(rgb)
        except (InputError, ValueError) as exc:
            report(exc, prefix="skipped")
            failed += 1
            continue
        ok, png = cv2.imencode(".png", np.round(np.clip(blur, 0, 1) * 255).astype(np.uint8))
        try:
            if not ok:
                raise OSError(f"PNG encoding failed for a {blur.shape[1]} x {blur.shape[0]} map")
            while True:
                try:
                    atomic_write_bytes(target, png.tobytes(), overwrite=args.overwrite)
                    break
                except FileExistsError:  # created by someone else since the plan: take the next free name
                    again, _ = plan_outputs([photo], args.out, overwrite=False)
                    report(f"{target} appeared while this run was writing: the map of {photo} goes to {again[0]}",
                           prefix="note")
                    target = again[0]
        except OSError as exc:
            reason = describe_os_error(exc) if exc.strerror else str(exc)
            report(f"{target}: cannot write the map of {photo} ({reason}); check that --out {args.out} is writable "
                   f"and has free space ({written} of {len(photos)} maps written)")
            return 1
        written += 1
        if not args.quiet:
            print(f"{photo} -> {target} ({time.perf_counter() - t0:.2f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
