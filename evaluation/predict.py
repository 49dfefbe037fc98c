"""Blur maps for photos with any registered method: ``blur-map PHOTO_OR_FOLDER... --out DIR``.

Also ``python -m evaluation.predict``. Every method of Table III of Ma et al., "Deep Blur
Mapping", IEEE TIP 2018 (and the suite's extra detectors) is built through the one front door,
:func:`evaluation.registry.build`; ``blur-map --list-methods`` lists them. ``--method dbm``
(default) uses the shipped Configuration V weights; the other DBM configurations and variants
(``dbm_config_i`` ... ``dbm_dsn``) need ``--weights`` from ``python -m dbm.train``; the learned
classical methods (``liu08``, ``shi14``) need ``--weights`` naming a state the runner saved
(``model.npz``). ``--set METHOD.NAME=VALUE`` changes a method's settings
(:mod:`evaluation.settings`).

Inputs: photos, folders (their photos: the types of :data:`PHOTO_SUFFIXES` in any letter case;
with ``--recursive`` also those of every sub-folder, skipping hidden folders and the ``--out``
folder) and glob patterns (``'shots/*.jpg'``; ``**`` with
``--recursive``), which the command expands itself so that quoting them works on any shell.

Outputs, per photo (:data:`OUTPUT_KINDS`; the blur map is float in [0, 1], 1 = blurred):

* ``<name>.png``: the map as 8-bit grey, 255 = blurred, same size as the photo (always, beside
  the others, unless ``--no-png``);
* ``<name>.npy``: the float32 map (``--npy``);
* ``<name>_mask.png``: a binary mask, 255 = blurred (``--mask T``: map >= T; ``--mask otsu``:
  Otsu's threshold of the map, :func:`evaluation.applications.threshold_map`);
* ``<name>_overlay.jpg`` (or ``.png``): the photo with blurred pixels tinted red in proportion to
  the map (``--overlay``, :func:`evaluation.applications.overlay`).

Nothing is lost or overwritten:

* every photo gets its own name: photos with the same stem (``a.jpg``, ``a.png``, or two folders)
  get ``a``, ``a_1``, ... with names that no other photo of the run claims
  (:func:`plan_output_names`); all the files of one photo share its name;
* a file already in ``--out`` is never replaced unless ``--overwrite`` is given; without it the
  photo's files go to the next free name and a note says so. An input photo is never replaced,
  even with ``--overwrite``. Names are compared ignoring letter case, so the maps stay distinct on
  case-insensitive file systems;
* every file is written to a temporary file in ``--out`` that then takes its name in one step
  (:func:`dbm.fileio.atomic_write`); a failed write (full disk, no permission) stops the run with
  an error naming the file.

Exit status (:mod:`dbm.cli`): 0 all maps written; 1 some photos skipped (unreadable) or a map could
not be written; 2 nothing done (bad option, photo list, setting, weights, device or ``--out``).
Every problem is one line on stderr.
"""

from __future__ import annotations

import argparse
import glob
import io
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from baselines.datasets import IMAGE_EXTENSIONS

__all__ = ["OUTPUT_KINDS", "PHOTO_SUFFIXES", "build_parser", "collect_photos", "encode_image",
           "main",
           "make_detector", "method_listing", "out_of_memory", "plan_output_names", "plan_outputs", "prepare_out",
           "read_and_detect", "write_checked"]

#: The photo types taken from folders and patterns: the suite's one list,
#: :data:`baselines.datasets.IMAGE_EXTENSIONS` (any letter case).
PHOTO_SUFFIXES = IMAGE_EXTENSIONS
#: What ``blur-map`` can write per photo: kind -> file name ending (``overlay`` also as ``_overlay.png``).
OUTPUT_KINDS = {"png": ".png", "npy": ".npy", "mask": "_mask.png", "overlay": "_overlay.jpg"}
_GLOB_CHARS = frozenset("*?[")

EPILOG = """\
what the values mean:
  Every method returns a blur map: one value per pixel, float in [0, 1], 1 = blurred, 0 = sharp,
  at the photo's size (Ma et al., IEEE TIP 2018, Sec. III). The PNG stores it as 8-bit grey
  (255 = blurred); --npy keeps the float32 values. DBM's values are the network's blur
  probabilities; the classical methods' are blur scores (most normalised per photo), so their scale
  differs between methods: choose thresholds per method. --mask 0.5 marks pixels with
  map >= 0.5 as blurred (255);
  --mask otsu picks the threshold per photo (Otsu). The paper's applications (GrabCut
  segmentation, blur degree S = mean of the map, blur magnification) are in
  python -m evaluation.applications.

examples:
  blur-map photo.jpg shots/ --out maps/                   DBM (shipped weights), 8-bit PNG maps
  blur-map 'shots/**/*.jpg' --recursive --out maps/ --method hifst --set hifst.stride=2
  blur-map shots/ --out maps/ --npy --mask otsu --overlay
  blur-map --list-methods                                  every method, its settings and needs
"""


def _is_photo(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in PHOTO_SUFFIXES and not path.name.startswith(".")


def _walk(folder: Path, recursive: bool, exclude: Path | None) -> list[Path]:
    """The photos in ``folder`` (and, when ``recursive``, its sub-folders), sorted."""
    if not recursive:
        return sorted(q for q in folder.iterdir() if _is_photo(q))
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (exclude is None or (here / d).resolve() != exclude))
        found.extend(here / f for f in files if _is_photo(here / f))
    return sorted(found)


def collect_photos(items: Sequence[str | Path], *, recursive: bool = False, exclude: str | Path | None = None
                   ) -> list[Path]:
    """Expand files, folders and glob patterns into a de-duplicated list of photo paths.

    Parameters
    ----------
    items : sequence of str or Path
        Photo files (taken whatever their extension), folders (their photos, sorted) and glob
        patterns (``*``, ``?``, ``[...]``; ``**`` matches sub-folders when ``recursive``), expanded
        here so that a quoted pattern works on every shell; a pattern keeps the photos and
        folders it matches.
    recursive : bool
        Also take the photos of every sub-folder of a folder (hidden folders are skipped).
    exclude : path, optional
        A folder never entered by a recursive walk (``blur-map`` passes ``--out``, so that maps
        written by an earlier run are not taken for photos).

    Returns
    -------
    list of Path
        In the order of ``items``, each folder's photos sorted; a photo named twice is kept once.

    Raises
    ------
    baselines.interface.InputError
        For a missing path, a pattern that matches no photo or a folder without photos.
    """
    from baselines.interface import InputError

    skip = Path(exclude).resolve() if exclude is not None else None
    how = " or its sub-folders" if recursive else " (--recursive also searches sub-folders)"
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if not p.exists() and _GLOB_CHARS & set(str(item)):
            matches = [Path(m) for m in sorted(glob.glob(str(item), recursive=recursive))]
            found = [m for m in matches if _is_photo(m)]
            for folder in (m for m in matches if m.is_dir()):
                found.extend(_walk(folder, recursive, skip))
            if not found:
                raise InputError(f"{item}: pattern matches no photos ({', '.join(PHOTO_SUFFIXES)}); "
                                 "check the pattern (** needs --recursive)")
            out.extend(found)
        elif p.is_dir():
            found = _walk(p, recursive, skip)
            if not found:
                raise InputError(f"{p}: folder{how} holds no photos ({', '.join(PHOTO_SUFFIXES)})")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def _key(name: str) -> str:
    return name.casefold()


def plan_output_names(photos: Sequence[Path], out: Path, endings: Sequence[str], *, overwrite: bool = False,
                      what: str = "map") -> tuple[list[dict[str, Path]], list[str]]:
    """Collision-free output paths for ``photos`` in the folder ``out``, several files per photo.

    Each photo gets the name ``<stem>`` (its files ``<stem><ending>`` for every ending) when none
    of those files was claimed by an earlier photo of the run and (without ``overwrite``) none
    exists in ``out``; otherwise the first ``<stem>_<k>`` (k = 1, 2, ...) whose files no photo
    claims as its own, no earlier photo got and (without ``overwrite``) no file in ``out`` has.
    Input photos in ``out`` are never targets. Names are compared ignoring letter case.

    Parameters
    ----------
    photos : sequence of Path
        The photos, in the order they are processed.
    out : Path
        The output folder (need not exist yet).
    endings : sequence of str
        The file name endings written per photo, e.g. ``(".png", "_mask.png")``.
    overwrite : bool
        Whether existing files in ``out`` (other than input photos) may be replaced.
    what : str
        What the files are, for the notes ("map", "result").

    Returns
    -------
    (list of dict, list of str)
        For each photo, ending -> path; and notes (one line each) on photos whose files could not
        take their photo's name because a file of that name already exists in ``out``.
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
    natural = {_key(f"{p.stem}{e}") for p in photos for e in endings}
    taken: set[str] = set()
    targets: list[dict[str, Path]] = []
    notes: list[str] = []
    for photo in photos:
        own = [f"{photo.stem}{e}" for e in endings]
        if all(_key(n) not in taken and _key(n) not in blocked for n in own):
            chosen = own
        else:
            k = 1
            while True:
                chosen = [f"{photo.stem}_{k}{e}" for e in endings]
                keys = [_key(n) for n in chosen]
                if not any(c in taken or c in blocked or c in natural for c in keys):
                    break
                k += 1
            hit = next((i for i, n in enumerate(own) if _key(n) in blocked and _key(n) not in taken), None)
            if hit is not None:
                name = own[hit]
                why = ("is an input photo" if _key(name) in inputs_here
                       else "already exists and was not written by this run")
                hint = "" if overwrite else f" (--overwrite replaces existing {what}s; input photos never)"
                notes.append(f"{out / name} {why}: the {what} of {photo} goes to {out / chosen[hit]}{hint}")
        taken.update(_key(n) for n in chosen)
        targets.append({e: out / n for e, n in zip(endings, chosen)})
    return targets, notes


def plan_outputs(photos: list[Path], out: Path, *, overwrite: bool = False) -> tuple[list[Path], list[str]]:
    """Collision-free ``<stem>.png`` map paths for ``photos`` in ``out`` (:func:`plan_output_names` with one ending).

    Returns
    -------
    (list of Path, list of str)
        One target per photo, and the notes of :func:`plan_output_names`.
    """
    targets, notes = plan_output_names(photos, out, (".png",), overwrite=overwrite)
    return [t[".png"] for t in targets], notes


def encode_image(ending: str, array: np.ndarray, *, quality: int = 95) -> bytes:
    """Encode an array for a file whose name ends with ``ending`` (``.png``, ``_overlay.jpg``, ``.npy``).

    8-bit grey or RGB arrays become PNG or JPEG (quality ``quality``); any array becomes ``.npy``.

    Raises
    ------
    OSError
        When OpenCV cannot encode the array (the caller reports it with the file name).
    """
    import cv2

    suffix = "." + ending.rsplit(".", 1)[-1]
    if suffix.lower() == ".npy":
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        return buf.getvalue()
    if array.ndim == 3:
        array = np.ascontiguousarray(array[:, :, ::-1])  # RGB -> OpenCV's BGR
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, data = cv2.imencode(suffix, array, params)
    if not ok:
        raise OSError(f"{suffix[1:].upper()} encoding failed for a {array.shape[1]} x {array.shape[0]} image")
    return data.tobytes()


def write_checked(target: Path, data: bytes, *, overwrite: bool, replan) -> Path:
    """Write ``data`` to ``target`` in one step; when the file appeared meanwhile, take the next free name.

    Parameters
    ----------
    target : Path
        The planned path.
    data : bytes
        The file's content.
    overwrite : bool
        Passed to :func:`dbm.fileio.atomic_write_bytes`.
    replan : callable
        Called with no argument when ``target`` was created by someone else since the plan;
        returns the next free path (a note is printed).

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    OSError
        A failed write (nothing is left behind).
    """
    from dbm.cli import report
    from dbm.fileio import atomic_write_bytes

    while True:
        try:
            return atomic_write_bytes(target, data, overwrite=overwrite)
        except FileExistsError:
            again = replan()
            report(f"{target} appeared while this run was writing: it goes to {again}", prefix="note")
            target = again


def prepare_out(out: Path) -> None:
    """Create the output folder, or raise a one-line :class:`~baselines.interface.InputError`."""
    from baselines.interface import InputError

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder; choose a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from dbm.fileio import describe_os_error

        raise InputError(f"--out {out}: cannot create the folder ({describe_os_error(exc)}); "
                         "choose a folder you can write to") from None


_prepare_out = prepare_out  # the old private name


def _needs(name: str) -> str:
    """What a method needs before it maps photos: training, a weight file, its shipped weights, or nothing."""
    import inspect

    from .registry import load_class

    cls = load_class(name)
    if getattr(cls, "trainable", False):
        return "training: --weights model.npz (a state the runner saved)"
    if "weights" in inspect.signature(cls.__init__).parameters:
        from dbm.detector import DBMVariant

        if issubclass(cls, DBMVariant):
            return "weights: --weights FILE (python -m dbm.train)"
        return "no (shipped weights)"
    return "no"


def method_listing() -> str:
    """The text of ``blur-map --list-methods``: every registered method, derived from the registry.

    For each method of :data:`evaluation.registry.METHODS`: its name, its row in the paper's
    Table III (``-`` when not a paper row), whether it needs torch, whether it needs training or a
    weight file, its measured seconds per 384 x 384 photo (the release's Table VI,
    :func:`evaluation.speed.measured_seconds`; ``-`` when not measured), the one-line summary, and
    its ``--set`` settings with their defaults.
    """
    from .registry import METHODS
    from .settings import describe_settings
    from .speed import SIDE, measured_seconds

    seconds, where = measured_seconds()
    rows = [(name, spec.paper_row or "-", "yes" if spec.needs_torch else "no",
             f"{seconds[name][0]:.2f}" if name in seconds else "-", _needs(name))
            for name, spec in METHODS.items()]
    head = ("method", "paper row", "torch", f"s/{SIDE}px", "needs training/weights")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    for (name, spec), row in zip(METHODS.items(), rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        lines.append(f"    {spec.summary}")
        lines.append(f"    settings (--set {name}.NAME=VALUE): {describe_settings(name)}")
    if where:
        lines.append(f"\ns/{SIDE}px: seconds per {SIDE} x {SIDE} photo, mean of the release's Table VI "
                     f"(python -m evaluation.speed), measured on {where}; photos at their own size take longer.")
    return "\n".join(lines)


def _mask_option(text: str) -> float | str:
    """argparse type of ``--mask``: a threshold in [0, 1] or ``otsu``."""
    if text.strip().lower() == "otsu":
        return "otsu"
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a threshold in [0, 1] or otsu, got {text!r}")
    return value


def build_parser(methods: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The command line of ``blur-map`` (``python -m evaluation.predict``).

    Parameters
    ----------
    methods : sequence of str, optional
        The choices of ``--method`` (default: every registered method, :data:`evaluation.registry.METHODS`).

    Returns
    -------
    argparse.ArgumentParser
        A :class:`dbm.cli.OneLineParser`; the options every command shares come from
        :func:`dbm.cli.add_common_options`.
    """
    from dbm.cli import OneLineParser, add_common_options
    from dbm.detector import MAX_SIZE, MIN_SIZE, PRECISIONS

    if methods is None:
        from .registry import METHODS

        methods = list(METHODS)
    methods = list(methods)
    parser = OneLineParser(prog="blur-map", description="Blur maps (1 = blurred) with any registered method.",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="*", help="photos, folders of photos and glob patterns")
    add_common_options(parser, out={"default": None, "help": "output folder (created); required"}, quiet=True,
                       threads=True, device="int8 always runs on the CPU")
    parser.add_argument("--recursive", action="store_true",
                        help="also take photos from sub-folders of the folders given (and let ** match folders)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace files already in --out (default: never; a photo whose name is taken gets "
                             "NAME_1, ...); input photos are never replaced")
    parser.add_argument("--list-methods", action="store_true",
                        help="list every method (paper row, summary, torch, training/weights, settings) and exit")
    parser.add_argument("--method", default="dbm", choices=methods, metavar="METHOD",
                        help="any registered method (default: dbm, the shipped network): " + ", ".join(methods))
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.NAME=VALUE",
                        help="a setting of --method, e.g. --set hifst.stride=2 (repeatable; --list-methods shows them)")
    parser.add_argument("--weights", default=None, help="DBM: weight file from python -m dbm.train; "
                        "liu08/shi14: a state (model.npz) the runner saved when it trained them")
    kinds = parser.add_argument_group("outputs (the 8-bit PNG map, plus any of these)")
    kinds.add_argument("--png", action="store_true", help="write <name>.png (the default; kept for old scripts)")
    kinds.add_argument("--no-png", action="store_true",
                       help="do not write <name>.png, the map as 8-bit grey (255 = blurred), written by default")
    kinds.add_argument("--npy", action="store_true", help="write <name>.npy, the float32 map in [0, 1]")
    kinds.add_argument("--mask", type=_mask_option, default=None, metavar="T|otsu",
                       help="write <name>_mask.png, 255 where the map >= T (in [0, 1]) or above Otsu's threshold")
    kinds.add_argument("--overlay", action="store_true",
                       help="write <name>_overlay.jpg, the photo tinted red where the map says blurred")
    kinds.add_argument("--overlay-format", default="jpg", choices=["jpg", "png"],
                       help="file type of --overlay (default: jpg)")
    dbm = parser.add_argument_group("DBM networks")
    dbm.add_argument("--size", type=int, default=None,
                     help=f"input side, 0 (each photo at its own size) or {MIN_SIZE} to {MAX_SIZE} "
                          "(default: from the weights)")
    dbm.add_argument("--precision", default=None, choices=list(PRECISIONS),
                     help="fp32 (default), bf16 autocast, or int8 (CPU; needs a weight file calibrated by "
                          "python -m dbm.quantize, as the shipped one is)")
    return parser


def _network_settings(args: argparse.Namespace) -> dict:
    """The DBM-only options that were given, checked against the chosen method's settings.

    ``--threads`` applies to every method (:func:`dbm.cli.apply_threads`); a method with a
    ``threads`` setting (the DBM networks) is also given it.
    """
    import inspect

    from baselines.interface import InputError

    from .registry import load_class

    given = {k: getattr(args, k) for k in ("size", "precision") if getattr(args, k) is not None}
    accepted = inspect.signature(load_class(args.method).__init__).parameters
    extra = sorted(k for k in given if k not in accepted)
    if extra:
        raise InputError(f"--{extra[0]}: {args.method} has no such setting (--size and --precision apply to the DBM "
                         "networks)")
    if args.threads is not None and "threads" in accepted:
        given["threads"] = args.threads
    return given


def make_detector(method: str, *, device: str = "auto", weights: str | Path | None = None,
                  set_items: Sequence[str] = (), settings: dict[str, Any] | None = None):
    """Build ``method`` for a command: ``--set`` parsed and checked, the device checked, training required.

    Parameters
    ----------
    method : str
        A key of :data:`evaluation.registry.METHODS` (the command's ``--method``).
    device : str
        The ``--device`` text.
    weights : path, optional
        The ``--weights`` file.
    set_items : sequence of str
        The ``--set METHOD.NAME=VALUE`` texts; each must name ``method``.
    settings : dict, optional
        Further settings from the command's own options (e.g. ``--size``); giving one of them
        with ``--set`` as well is an error.

    Returns
    -------
    baselines.interface.Detector
        Built by :func:`evaluation.registry.build`.

    Raises
    ------
    baselines.interface.InputError
        One line: a bad setting or device, a setting given twice, a learned method without
        ``--weights`` (saying how to train it).
    """
    from baselines.interface import InputError
    from dbm.device import parse_device, resolve_device

    from .registry import build
    from .settings import check_selected, parse_set_options

    parsed = parse_set_options(set_items)
    check_selected(parsed, [method], what="--method")
    chosen = dict(parsed.get(method, {}))
    for name, value in (settings or {}).items():
        if name in chosen:
            raise InputError(f"--{name} and --set {method}.{name} both given; keep one")
        chosen[name] = value
    device = parse_device(device)
    if device not in ("auto", "cpu"):
        resolve_device(device)  # CUDA asked for: a one-line error now when there is none
    det = build(method, device=device, weights=weights, **chosen)
    if det.trainable and weights is None:
        raise det.not_trained()
    return det


def _outputs_asked(args: argparse.Namespace) -> dict[str, str]:
    """kind -> file name ending, for the output options given (the PNG map unless ``--no-png``)."""
    kinds = {}
    if not args.no_png:
        kinds["png"] = OUTPUT_KINDS["png"]
    if args.npy:
        kinds["npy"] = OUTPUT_KINDS["npy"]
    if args.mask is not None:
        kinds["mask"] = OUTPUT_KINDS["mask"]
    if args.overlay:
        kinds["overlay"] = f"_overlay.{args.overlay_format}"
    return kinds


def _render(kind: str, blur: np.ndarray, rgb: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    """The array written for one output kind."""
    from .applications import overlay, threshold_map

    if kind == "npy":
        return blur.astype(np.float32)
    if kind == "mask":
        return threshold_map(blur, args.mask).astype(np.uint8) * np.uint8(255)
    if kind == "overlay":
        return overlay(rgb, blur)
    from .metrics import quantize

    return quantize(blur)  # the runner's levels (halves round up), so the PNG equals its cached map


def out_of_memory(exc: BaseException) -> str | None:
    """A one-line reason when ``exc`` is running out of memory (torch's CPU or CUDA allocator, NumPy), else None.

    torch reports it as a ``RuntimeError`` (``torch.OutOfMemoryError`` on CUDA, "DefaultCPUAllocator:
    can't allocate memory" on the CPU); NumPy as ``MemoryError``. The CUDA cache is emptied so
    that the next photo may fit.

    Parameters
    ----------
    exc : BaseException
        What computing a map raised.

    Returns
    -------
    str or None
        ``out of memory (first line of the error); ...what to do`` or None for any other error.
    """
    text = str(exc).strip()
    if not (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or (isinstance(exc, RuntimeError) and ("out of memory" in text.lower()
                                                   or "can't allocate memory" in text.lower()))):
        return None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    first = text.splitlines()[0][:200] if text else type(exc).__name__
    return (f"out of memory computing its map ({first}); free memory, use a smaller photo or --size, or "
            "--device cpu")


def read_and_detect(photo: Path, detect) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Read ``photo`` and compute its map with ``detect``; None when the photo is skipped.

    An unreadable or unusable photo (``InputError``, ``ValueError``) and running out of memory
    (:func:`out_of_memory`) are reported as one ``skipped:`` line on stderr; any other error propagates.

    Parameters
    ----------
    photo : Path
        The photo file.
    detect : callable
        RGB array -> blur map.

    Returns
    -------
    tuple of (ndarray, ndarray, float) or None
        The photo, its map and the :func:`time.perf_counter` value taken before ``detect`` ran;
        None when the photo was skipped.
    """
    from baselines.interface import InputError, read_image
    from dbm.cli import report

    try:
        rgb = read_image(photo)
        t0 = time.perf_counter()
        blur = detect(rgb)
    except (InputError, ValueError) as exc:
        report(exc, prefix="skipped")
        return None
    except (RuntimeError, MemoryError) as exc:
        reason = out_of_memory(exc)
        if reason is None:
            raise
        report(f"{photo}: {reason}", prefix="skipped")
        return None
    return rgb, blur, t0


def main(argv: list[str] | None = None) -> int:
    """``blur-map`` / ``python -m evaluation.predict``: write the maps; return the exit status (module docstring)."""
    from dbm.cli import CLIError, apply_threads, report

    try:
        args = build_parser().parse_args(argv)
    except CLIError as exc:
        report(exc)
        return 2
    if args.list_methods:
        print(method_listing())
        return 0

    from baselines.interface import InputError

    from dbm.device import parse_device
    from dbm.fileio import describe_os_error

    try:
        if args.out is None:
            raise InputError("--out: required, the folder the maps go to (e.g. --out maps/); see blur-map --help")
        if not args.photos:
            raise InputError("no photos given: name photos, folders or glob patterns; see blur-map --help")
        if args.png and args.no_png:
            raise InputError("--png and --no-png: choose one (the PNG map is written unless --no-png)")
        if not _outputs_asked(args):
            raise InputError("--no-png: nothing left to write; add --npy, --mask T|otsu or --overlay")
        from dbm.detector import MAX_SIZE, MIN_SIZE

        if args.size is not None and args.size != 0 and not MIN_SIZE <= args.size <= MAX_SIZE:
            raise InputError(f"--size {args.size}: use 0 (each photo at its own size) or {MIN_SIZE} to {MAX_SIZE} "
                             f"pixels; below {MIN_SIZE} the network sees a single 16-pixel cell and the map is constant")
        device = parse_device(args.device)
        if args.precision == "int8" and device not in ("auto", "cpu"):
            raise InputError(f"--device {args.device}: --precision int8 runs on the CPU only; use --device cpu")
        photos = collect_photos(args.photos, recursive=args.recursive, exclude=args.out)
        apply_threads(args.threads)
        det = make_detector(args.method, device=device, weights=args.weights, set_items=args.set,
                            settings=_network_settings(args))
        prepare_out(args.out)
        kinds = _outputs_asked(args)
        targets, notes = plan_output_names(photos, args.out, list(kinds.values()), overwrite=args.overwrite)
    except (InputError, ValueError, FileNotFoundError) as exc:
        report(exc)
        return 2
    except OSError as exc:  # an unreadable folder of photos or --out
        from .cli import os_error_message

        report(os_error_message(exc, "check that the photos and --out are readable"))
        return 2
    for note in notes:
        report(note, prefix="note")
    failed = 0
    written = 0
    for photo, planned in zip(photos, targets):
        computed = read_and_detect(photo, det)
        if computed is None:
            failed += 1
            continue
        rgb, blur, t0 = computed
        done = []
        for kind, ending in kinds.items():
            target = planned[ending]
            try:
                data = encode_image(ending, _render(kind, blur, rgb, args))

                def replan(photo=photo, ending=ending):
                    return plan_output_names([photo], args.out, [ending])[0][0][ending]

                done.append(write_checked(target, data, overwrite=args.overwrite, replan=replan))
            except OSError as exc:
                reason = describe_os_error(exc) if exc.strerror else str(exc)
                report(f"{target}: cannot write the map of {photo} ({reason}); check that --out {args.out} is "
                       f"writable and has free space ({written} of {len(photos)} maps written)")
                return 1
        written += 1
        if not args.quiet:
            print(f"{photo} -> {', '.join(map(str, done))} ({time.perf_counter() - t0:.2f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
