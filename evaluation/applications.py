"""The paper's three applications of blur maps: segmentation, blur degree, magnification.

Ma et al., "Deep Blur Mapping: Exploiting High-Level Semantics by Deep Neural Networks", IEEE TIP
27(10), 2018, Section IV-C ("Applications"), Figs. 10-12. Each application is a pure function of
a photo and its blur map (float in [0, 1], 1 = blurred, as every registered method returns):

* :func:`segment_blur` - blur region segmentation (Fig. 10): GrabCut seeded from the map;
* :func:`blur_degree` and :func:`rank_by_degree` - the overall blur degree S of a photo, the mean
  of its map (Fig. 11), and photos ranked by it (:func:`degree_strip` draws the ranking);
* :func:`magnify_blur` - blur magnification (Fig. 12): a Gaussian blur where the map exceeds 0.1.

:func:`overlay` and :func:`threshold_map` are shared with ``blur-map`` (``--overlay``, ``--mask``).

Command line, on photos with any registered method (built through
:func:`evaluation.registry.build`, with ``--set``, ``--weights`` and ``--device`` as in
``blur-map``) or with precomputed maps (``--map FILE`` per photo, in the photos' order and with the
photo's file stem: 8-bit image, 255 = blurred, or a float ``.npy`` in [0, 1])::

    python -m evaluation.applications segment PHOTOS... [--method NAME | --map FILE ...] --out DIR
    python -m evaluation.applications degree  PHOTOS... [--method NAME | --map FILE ...] --out DIR
    python -m evaluation.applications magnify PHOTOS... [--method NAME | --map FILE ...] --out DIR [--sigma 5]
    python -m evaluation.applications figures --photo P --gt MASK --degree-photos DIR --out reports/applications

Files written (never over an existing file unless ``--overwrite``; names as in ``blur-map``,
:func:`evaluation.predict.plan_output_names`):

* ``segment``: ``<name>_segment.png`` (255 = blurred region) and ``<name>_segment.jpg`` (the photo
  with the blurred region tinted red);
* ``degree``: ``degree.csv`` (photo, S, rank; rank 1 = least blurred) and ``degree.png`` (the
  photos left to right by increasing S, S under each, as Fig. 11);
* ``magnify``: ``<name>_magnified.png`` (lossless, so the sharp region keeps its exact pixels);
* ``figures``: ``segmentation.png``, ``degree.png`` and ``magnification.png``, each method's map and
  result side by side (the README's pictures; ``reports/applications/make.sh``).

Exit status as ``blur-map``: 0 done, 1 some photos skipped or a file not written, 2 nothing done;
every problem one line on stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = [
    "DEFAULT_SIGMA",
    "GRABCUT_BOUNDS",
    "GRABCUT_ITERATIONS",
    "MAGNIFY_THRESHOLD",
    "Segmentation",
    "blur_degree",
    "build_parser",
    "degree_strip",
    "grabcut_seeds",
    "magnify_blur",
    "main",
    "overlay",
    "rank_by_degree",
    "read_map",
    "segment_blur",
    "threshold_map",
]

#: Sec. IV-C.1: blur confidence [0, 0.1) foreground (sharp), [0.1, 0.5) probable foreground,
#: [0.5, 0.9) probable background, [0.9, 1] background.
GRABCUT_BOUNDS = (0.1, 0.5, 0.9)
#: GrabCut iterations. The paper uses "OpenCV 3.2 with default settings"; ``cv2.grabCut`` has no
#: default iteration count, so the count of OpenCV's GrabCut tutorial (5) is used.
GRABCUT_ITERATIONS = 5
#: Sec. IV-C.3: "convolving pixels with blur confidence greater than 0.1".
MAGNIFY_THRESHOLD = 0.1
#: Standard deviation (pixels) of the magnifier's Gaussian; not given in the paper (our choice:
#: clearly visible on the benchmark's 640-pixel photos).
DEFAULT_SIGMA = 5.0
#: Threshold of the fallback segmentation (and the boundary between GrabCut's probable labels).
_HALF = 0.5
#: Colour of blurred pixels in overlays (RGB) and its maximum opacity.
OVERLAY_COLOUR = (255, 0, 0)
OVERLAY_ALPHA = 0.6


def _check_map(blur: Any, shape: Sequence[int] | None = None, *, name: str = "blur map") -> np.ndarray:
    """``blur`` as a finite float32 ``H x W`` array in [0, 1] (the shape of ``shape`` when given)."""
    from baselines.interface import InputError

    arr = np.asarray(blur)
    if arr.ndim != 2:
        raise InputError(f"{name}: expected an H x W map, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape[:2]):
        raise InputError(f"{name}: map is {arr.shape[1]} x {arr.shape[0]} px but the photo is {shape[1]} x "
                         f"{shape[0]}; compute the map at the photo's size")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)) or arr.size == 0 or arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise InputError(f"{name}: map values must be finite and in [0, 1] (1 = blurred); rescale it")
    return np.clip(arr, 0.0, 1.0)


def _as_uint8_rgb(rgb: Any, *, name: str = "photo") -> np.ndarray:
    """``rgb`` as ``H x W x 3`` uint8 (float photos in [0, 1] are rounded; uint8 is kept as is)."""
    arr = np.asarray(rgb)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
        return arr
    from baselines.interface import as_rgb_float

    return np.round(as_rgb_float(arr, name=name) * 255).astype(np.uint8)


def threshold_map(blur: np.ndarray, threshold: float | str = _HALF) -> np.ndarray:
    """Binary blur mask of a map: True = blurred.

    Parameters
    ----------
    blur : numpy.ndarray
        ``H x W`` blur map in [0, 1], 1 = blurred.
    threshold : float or ``"otsu"``
        ``map >= threshold`` is blurred; ``"otsu"``: Otsu's threshold of the map quantised to 256
        levels (as the paper's metrics quantise it), pixels above it blurred. A constant map has
        no Otsu split: all pixels are then blurred when the value is >= 0.5, none otherwise.
        The levels are :func:`evaluation.metrics.quantize`'s (halves round up), as the runner's.

    Returns
    -------
    numpy.ndarray
        ``H x W`` bool.
    """
    import cv2

    blur = _check_map(blur)
    if isinstance(threshold, str):
        if threshold.lower() != "otsu":
            from baselines.interface import InputError

            raise InputError(f"threshold {threshold!r}: use a number in [0, 1] or 'otsu'")
        from .metrics import quantize

        levels = quantize(blur)
        if levels.min() == levels.max():
            return np.full(blur.shape, bool(levels.flat[0] >= 128))
        t, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        return levels > t
    return blur >= np.float32(threshold)


def overlay(rgb: Any, weight: np.ndarray, *, colour: Sequence[int] = OVERLAY_COLOUR,
            alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The photo tinted with ``colour`` in proportion to ``weight`` (a blur map or a mask).

    ``out = (1 - alpha * w) * photo + alpha * w * colour``: sharp pixels (w = 0) keep the photo's
    colour, fully blurred ones (w = 1) are ``alpha`` of the way to ``colour`` (red by default).

    Parameters
    ----------
    rgb : array_like
        The photo, ``H x W x 3`` uint8 or anything :func:`baselines.interface.as_rgb_float` takes.
    weight : numpy.ndarray
        ``H x W`` map in [0, 1] or bool mask (True = blurred).
    colour : sequence of 3 int
        RGB of the tint.
    alpha : float
        Opacity of the tint where ``weight`` is 1.

    Returns
    -------
    numpy.ndarray
        ``H x W x 3`` uint8 RGB.
    """
    photo = _as_uint8_rgb(rgb).astype(np.float32)
    w = _check_map(np.asarray(weight, dtype=np.float32), photo.shape)[:, :, None] * np.float32(alpha)
    tint = np.asarray(colour, dtype=np.float32).reshape(1, 1, 3)
    return np.round((1 - w) * photo + w * tint).astype(np.uint8)


# 1. Blur region segmentation (Fig. 10) ------------------------------------------------------------------------------
def grabcut_seeds(blur: np.ndarray) -> np.ndarray:
    """GrabCut's initial labels from a blur map, by the paper's rule (Sec. IV-C.1).

    Blur confidence in [0, 0.1) -> ``GC_FGD`` (sharp foreground), [0.1, 0.5) -> ``GC_PR_FGD``,
    [0.5, 0.9) -> ``GC_PR_BGD``, [0.9, 1] -> ``GC_BGD`` (blurred background). Values are compared
    in float32, the maps' type, so a stored 0.9 (float32 0.89999998) falls in [0.9, 1].

    Returns
    -------
    numpy.ndarray
        ``H x W`` uint8 of OpenCV's GrabCut labels.
    """
    import cv2

    labels = np.array([cv2.GC_FGD, cv2.GC_PR_FGD, cv2.GC_PR_BGD, cv2.GC_BGD], dtype=np.uint8)
    return labels[np.digitize(_check_map(blur), np.asarray(GRABCUT_BOUNDS, dtype=np.float32))]


@dataclass(frozen=True)
class Segmentation:
    """Result of :func:`segment_blur`.

    Attributes
    ----------
    blurred : numpy.ndarray
        ``H x W`` bool, True = blurred region (GrabCut's background).
    method : str
        ``"grabcut"``, or ``"threshold"`` when GrabCut could not run and the fallback was used.
    note : str
        Why the fallback was used (empty for GrabCut).
    """

    blurred: np.ndarray
    method: str
    note: str = ""


def segment_blur(rgb: Any, blur: np.ndarray, *, iterations: int = GRABCUT_ITERATIONS) -> Segmentation:
    """Blur region segmentation: GrabCut initialised from the blur map (Ma et al. 2018, Sec. IV-C.1, Fig. 10).

    The map seeds GrabCut (Rother, Kolmogorov & Blake, SIGGRAPH 2004) without user input:
    :func:`grabcut_seeds` labels pixels of blur confidence [0, 0.1), [0.1, 0.5), [0.5, 0.9) and
    [0.9, 1] as foreground, probable foreground, probable background and background; OpenCV's
    ``cv2.grabCut`` (``GC_INIT_WITH_MASK``, its default 5-component colour models) then labels
    every pixel. The blurred region is GrabCut's (probable) background. Definite labels are kept
    by GrabCut, so a map of only 0 and 1 is returned as it is.

    Fallback: GrabCut needs colour samples of both sides (at least as many pixels as its models
    have components, 5). When the seeds put (almost) all pixels on one side - a photo entirely
    sharp or entirely blurred by the map - GrabCut cannot run, and the thresholded map
    (``map >= 0.5``, the boundary between the probable labels) is returned with
    ``method="threshold"`` and a note.

    Parameters
    ----------
    rgb : array_like
        The photo, ``H x W x 3`` uint8 or float in [0, 1] (or anything
        :func:`baselines.interface.as_rgb_float` takes).
    blur : numpy.ndarray
        Its blur map, ``H x W`` in [0, 1], 1 = blurred.
    iterations : int
        GrabCut iterations (:data:`GRABCUT_ITERATIONS`; the paper does not give a number).

    Returns
    -------
    Segmentation
    """
    import cv2

    from baselines._checks import check_int

    check_int("segment", "iterations", iterations, minimum=1)
    photo = _as_uint8_rgb(rgb)
    blur = _check_map(blur, photo.shape)
    seeds = grabcut_seeds(blur)
    background = np.isin(seeds, (cv2.GC_BGD, cv2.GC_PR_BGD))
    n_bgd = int(background.sum())
    n_fgd = background.size - n_bgd
    components = 5  # OpenCV's GMM size (GrabCut's fixed componentsCount)
    if min(n_bgd, n_fgd) < components:
        side = "sharp" if n_bgd < components else "blurred"
        return Segmentation(blur >= _HALF, "threshold",
                            f"the map calls (almost) every pixel {side}, so GrabCut has no colour model for the "
                            "other side; the map thresholded at 0.5 is used")
    mask = seeds.copy()
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(np.ascontiguousarray(photo[:, :, ::-1]), mask, None, bgd_model, fgd_model, iterations,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error as exc:  # pragma: no cover - guarded above; OpenCV's own refusal as a last resort
        return Segmentation(blur >= _HALF, "threshold", f"GrabCut failed ({str(exc).splitlines()[-1].strip()}); "
                            "the map thresholded at 0.5 is used")
    return Segmentation(np.isin(mask, (cv2.GC_BGD, cv2.GC_PR_BGD)), "grabcut")


# 2. Blur degree (Fig. 11) ------------------------------------------------------------------------------------------
def blur_degree(blur: np.ndarray) -> float:
    """Overall blur degree S of a photo: the mean of its blur map (Ma et al. 2018, Sec. IV-C.2, Fig. 11).

    Returns
    -------
    float
        S in [0, 1]; 0 = all sharp, 1 = all blurred.
    """
    return float(np.mean(_check_map(blur), dtype=np.float64))


def rank_by_degree(names: Sequence[str], degrees: Sequence[float]) -> list[tuple[str, float, int]]:
    """Photos ranked by increasing blur degree S, as Fig. 11 orders them left to right.

    Returns
    -------
    list of (name, S, rank)
        Sorted by S; rank 1 = least blurred; equal S keep their input order.
    """
    order = np.argsort(np.asarray(degrees, dtype=np.float64), kind="stable")
    return [(names[i], float(degrees[i]), r + 1) for r, i in enumerate(order)]


def degree_strip(photos: Sequence[np.ndarray], labels: Sequence[str], degrees: Sequence[float], *,
                 maps: Sequence[np.ndarray] | None = None, per_row: int = 6, title: str | None = None) -> bytes:
    """PNG of photos ranked by blur degree, left to right by increasing S, S under each (as Fig. 11).

    Parameters
    ----------
    photos : sequence of array
        The photos (RGB uint8 or float in [0, 1]).
    labels : sequence of str
        A short name per photo, printed under S.
    degrees : sequence of float
        S of each photo (:func:`blur_degree`).
    maps : sequence of array, optional
        Their blur maps, drawn under the photos (white = blurred).
    per_row : int
        Thumbnails per row; more photos wrap onto further rows.
    title : str, optional
        A heading.

    Returns
    -------
    bytes
        The PNG file's content.
    """
    from .plotting import png_bytes, pyplot

    plt = pyplot()

    ranked = rank_by_degree(list(range(len(photos))), degrees)  # type: ignore[arg-type]
    cols = max(1, min(per_row, len(photos)))
    groups = [ranked[i:i + cols] for i in range(0, len(ranked), cols)]
    # Layout in inches: every thumbnail gets a box of the photos' median aspect (taller photos shrink
    # to fit it), with the rank and S above the photo and the name under the last tier.
    width, gap, head, foot = 2.3, 0.12, 0.3, 0.28
    box = width * float(np.median([np.asarray(p).shape[0] / np.asarray(p).shape[1] for p in photos]))
    tiers = 1 if maps is None else 2
    group_h = head + tiers * box + (tiers - 1) * 0.08 + foot
    top = 0.45 if title else 0.08
    fig_w, fig_h = gap + cols * (width + gap), top + len(groups) * group_h + 0.05
    fig = plt.figure(figsize=(fig_w, fig_h))
    for g, group in enumerate(groups):
        y = fig_h - top - g * group_h - head  # top of this group's photos, from the bottom
        for c, (i, s, rank) in enumerate(group):
            x = gap + c * (width + gap)
            ax = fig.add_axes([x / fig_w, (y - box) / fig_h, width / fig_w, box / fig_h])
            ax.imshow(_as_uint8_rgb(photos[i]))
            ax.set_title(f"{rank}. S = {s:.3f}", fontsize=11, pad=4)
            last = ax
            if maps is not None:
                last = fig.add_axes([x / fig_w, (y - 2 * box - 0.08) / fig_h, width / fig_w, box / fig_h])
                last.imshow(_check_map(maps[i]), cmap="gray", vmin=0, vmax=1)
            for a in (ax, last):
                a.axis("off")
            last.text(0.5, -0.03, labels[i], transform=last.transAxes, ha="center", va="top", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=12, y=1 - 0.12 / fig_h, va="top")
    return png_bytes(fig)


# 3. Blur magnification (Fig. 12) -----------------------------------------------------------------------------------
def magnify_blur(rgb: Any, blur: np.ndarray, *, sigma: float = DEFAULT_SIGMA,
                 threshold: float = MAGNIFY_THRESHOLD) -> np.ndarray:
    """Blur magnification (Ma et al. 2018, Sec. IV-C.3, Fig. 12): more defocus where the map says blurred.

    The paper's "naive blur magnifier": pixels with blur confidence greater than ``threshold``
    (0.1) are replaced by the photo convolved with a uniform Gaussian kernel of standard
    deviation ``sigma``; the others (the sharp region) are kept bit for bit. The blend is the
    thresholded map (hard), as the paper's rule states; the kernel draws on all pixels within
    about 3 sigma, so the sharp subject's colours spread a little into the blurred side of the
    boundary, as with real defocus.

    Parameters
    ----------
    rgb : array_like
        The photo: ``H x W x 3`` uint8 (kept exactly in the sharp region) or float in [0, 1]
        (converted to 8 bits first).
    blur : numpy.ndarray
        Its blur map, ``H x W`` in [0, 1], 1 = blurred.
    sigma : float
        Standard deviation of the Gaussian in pixels (> 0; :data:`DEFAULT_SIGMA`, not given in the
        paper). Borders are mirrored.
    threshold : float
        Blur confidence above which a pixel is blurred more (:data:`MAGNIFY_THRESHOLD`).

    Returns
    -------
    numpy.ndarray
        ``H x W x 3`` uint8 RGB.
    """
    import cv2

    from baselines._checks import check_float

    check_float("magnify", "sigma", sigma, minimum=0, min_open=True)
    check_float("magnify", "threshold", threshold, minimum=0, maximum=1)
    photo = _as_uint8_rgb(rgb)
    where = _check_map(blur, photo.shape) > np.float32(threshold)
    smooth = cv2.GaussianBlur(photo, (0, 0), sigmaX=float(sigma), sigmaY=float(sigma),
                              borderType=cv2.BORDER_REFLECT_101)
    return np.where(where[:, :, None], smooth, photo)


# Reading maps -------------------------------------------------------------------------------------------------------
def read_map(path: str | Path, shape: Sequence[int] | None = None) -> np.ndarray:
    """Read a precomputed blur map: an 8/16-bit image (255 / 65535 = blurred) or a float ``.npy`` in [0, 1].

    The file is read by :func:`evaluation.datasets.read_map_file`, the reader of the runner's
    ``--maps`` (colour images by their first channel).

    Parameters
    ----------
    path : path
        The map file.
    shape : sequence of int, optional
        The photo's shape; the map must have its height and width.

    Returns
    -------
    numpy.ndarray
        ``H x W`` float32 in [0, 1], 1 = blurred.

    Raises
    ------
    baselines.interface.InputError
        One line naming the file: unreadable, not 2-D, of another size than ``shape``, or
        values outside [0, 1].
    """
    from .datasets import read_map_file

    arr = read_map_file(path)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / np.float32(255)
    return _check_map(arr, shape, name=str(path))


# Command line -------------------------------------------------------------------------------------------------------
_EPILOG = """\
The blur map is float in [0, 1], 1 = blurred (a --map PNG: 255 = blurred). Section IV-C of
Ma et al., IEEE TIP 2018:
  segment   GrabCut seeded from the map: [0, 0.1) sharp, [0.1, 0.5) probably sharp,
            [0.5, 0.9) probably blurred, [0.9, 1] blurred (Fig. 10)
  degree    S = mean of the map; photos ranked by increasing S (Fig. 11)
  magnify   Gaussian blur (--sigma) where the map > 0.1; the sharp region is kept (Fig. 12)
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m evaluation.applications`` and its sub-commands (one-line errors).

    Returns
    -------
    argparse.ArgumentParser
        A :class:`dbm.cli.OneLineParser` with one sub-parser per application; the options every
        command shares come from :func:`dbm.cli.add_common_options`.
    """
    from dbm.cli import OneLineParser, add_common_options

    from .registry import METHODS

    methods = list(METHODS)
    parser = OneLineParser(prog="python -m evaluation.applications", epilog=_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="The paper's applications of blur maps (Sec. IV-C): segment, degree, magnify.")
    add_common_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="{segment,degree,magnify,figures}",
                                help="the application (python -m evaluation.applications NAME --help)")
    common = OneLineParser(add_help=False)
    common.add_argument("photos", nargs="+", help="photos, folders of photos and glob patterns")
    add_common_options(common, out={"required": True, "help": "output folder (created)"}, quiet=True, threads=True,
                       device="the torch methods (DBM) run there", version=False)
    common.add_argument("--recursive", action="store_true", help="also take photos from sub-folders")
    common.add_argument("--overwrite", action="store_true", help="replace files already in --out (default: never)")
    common.add_argument("--method", default=None, choices=methods, metavar="METHOD",
                        help="the method computing the maps (default: dbm): " + ", ".join(methods))
    common.add_argument("--map", action="append", default=[], type=Path, metavar="FILE", dest="maps",
                        help="a precomputed map per photo, in the photos' order and named after it (STEM.png: 8-bit, "
                             "255 = blurred, or STEM.npy: float in [0, 1]); repeatable; instead of --method")
    common.add_argument("--set", action="append", default=[], metavar="METHOD.NAME=VALUE",
                        help="a setting of --method (repeatable; blur-map --list-methods shows them)")
    common.add_argument("--weights", default=None, help="weight file or trained state of --method (as blur-map)")
    seg = sub.add_parser("segment", parents=[common], help="blur region segmentation with GrabCut (Fig. 10)",
                         description="Writes NAME_segment.png (255 = blurred region) and NAME_segment.jpg (overlay).")
    seg.add_argument("--iterations", type=int, default=GRABCUT_ITERATIONS,
                     help=f"GrabCut iterations (default: {GRABCUT_ITERATIONS})")
    sub.add_parser("degree", parents=[common], help="blur degree S = mean of the map, photos ranked (Fig. 11)",
                   description="Writes degree.csv (photo, S, rank) and degree.png (photos by increasing S).")
    mag = sub.add_parser("magnify", parents=[common], help="blur magnification where the map > 0.1 (Fig. 12)",
                         description="Writes NAME_magnified.png (lossless; the sharp region is unchanged).")
    mag.add_argument("--sigma", type=float, default=DEFAULT_SIGMA,
                     help=f"standard deviation of the added Gaussian blur, pixels (default: {DEFAULT_SIGMA:g}; the "
                          "paper gives none)")
    fig = sub.add_parser("figures", help="the README's three figures for several methods on real photos",
                         description="Writes segmentation.png, degree.png and magnification.png into --out.")
    fig.add_argument("--photo", type=Path, required=True,
                     help="the photo of the segmentation and magnification figures")
    fig.add_argument("--gt", type=Path, default=None, help="its ground-truth mask (255 = blurred), shown and scored")
    fig.add_argument("--degree-photos", nargs="+", required=True, help="photos (or a folder) ranked in degree.png")
    fig.add_argument("--methods", default="hifst,dbm", help="comma-separated methods (default: hifst,dbm)")
    fig.add_argument("--sigma", type=float, default=DEFAULT_SIGMA, help="magnification sigma")
    fig.add_argument("--overwrite", action="store_true", help="replace figures already in --out")
    add_common_options(fig, out={"required": True, "help": "output folder (created)"}, quiet=True, threads=True,
                       device="the torch methods (DBM) run there", version=False)
    return parser


def _map_source(args: argparse.Namespace, photos: list[Path]):
    """A function photo index, RGB -> blur map: from ``--map`` files or the ``--method`` detector."""
    from baselines.interface import InputError

    if args.maps:
        if args.method or args.set or args.weights:
            raise InputError("--map gives the maps: drop --method, --set and --weights (or drop --map)")
        if len(args.maps) != len(photos):
            raise InputError(f"--map given {len(args.maps)} times for {len(photos)} photos; give one map per photo, "
                             "in the photos' order")
        for i, (path, photo) in enumerate(zip(args.maps, photos)):
            if not path.is_file():
                raise InputError(f"--map {path}: file not found")
            if path.stem != photo.stem:
                raise InputError(f"--map {path}: map {i + 1} of {len(photos)} is paired with photo {photo}, whose name "
                                 f"differs; give one map per photo, in the photos' order, named after its photo "
                                 f"({photo.stem}.png or {photo.stem}.npy)")
        return lambda i, rgb: read_map(args.maps[i], rgb.shape)
    from .predict import make_detector

    det = make_detector(args.method or "dbm", device=args.device, weights=args.weights, set_items=args.set)
    return lambda i, rgb: det(rgb)


def _write(target: Path, data: bytes, args: argparse.Namespace, photo: Path, ending: str) -> Path:
    from .predict import plan_output_names, write_checked

    return write_checked(target, data, overwrite=args.overwrite,
                         replan=lambda: plan_output_names([photo], args.out, [ending])[0][0][ending])


def _run_photos(args: argparse.Namespace) -> int:
    """``segment``, ``degree`` and ``magnify``: one loop over the photos, results written as they come."""
    from baselines.interface import InputError
    from dbm.cli import report
    from dbm.fileio import describe_os_error

    from .predict import collect_photos, encode_image, plan_output_names, prepare_out, read_and_detect

    endings = {"segment": ("_segment.png", "_segment.jpg"), "magnify": ("_magnified.png",), "degree": ()}[args.command]
    try:
        photos = collect_photos(args.photos, recursive=args.recursive, exclude=args.out)
        source = _map_source(args, photos)
        if args.command == "magnify" and not (np.isfinite(args.sigma) and args.sigma > 0):
            raise InputError(f"--sigma {args.sigma:g}: must be a number of pixels > 0 (default {DEFAULT_SIGMA:g})")
        if args.command == "segment" and args.iterations < 1:
            raise InputError(f"--iterations {args.iterations}: must be at least 1")
        prepare_out(args.out)
        if args.command == "degree":
            stubs = [Path("degree")]
            targets, notes = plan_output_names(stubs, args.out, (".csv", ".png"), overwrite=args.overwrite,
                                               what="result")
        else:
            targets, notes = plan_output_names(photos, args.out, endings, overwrite=args.overwrite, what="result")
    except (InputError, ValueError, FileNotFoundError) as exc:
        report(exc)
        return 2
    for note in notes:
        report(note, prefix="note")
    failed = 0
    rows: list[tuple[Path, float, np.ndarray]] = []
    for i, photo in enumerate(photos):
        computed = read_and_detect(photo, lambda rgb, i=i: source(i, rgb))
        if computed is None:
            failed += 1
            continue
        rgb, blur, t0 = computed
        if args.command == "degree":
            rows.append((photo, blur_degree(blur), _thumbnail(rgb, blur)))
            if not args.quiet:
                print(f"{photo}: S = {rows[-1][1]:.4f} ({time.perf_counter() - t0:.2f} s)")
            continue
        photo8 = _as_uint8_rgb(rgb)
        if args.command == "segment":
            seg = segment_blur(photo8, blur, iterations=args.iterations)
            if seg.method != "grabcut":
                report(f"{photo}: {seg.note}", prefix="note")
            arrays = [seg.blurred.astype(np.uint8) * np.uint8(255), overlay(photo8, seg.blurred)]
        else:
            arrays = [magnify_blur(photo8, blur, sigma=args.sigma)]
        done = []
        for ending, array in zip(endings, arrays):
            target = targets[i][ending]
            try:
                done.append(_write(target, encode_image(ending, array), args, photo, ending))
            except OSError as exc:
                reason = describe_os_error(exc) if exc.strerror else str(exc)
                report(f"{target}: cannot write ({reason}); check that --out {args.out} is writable and has "
                       "free space")
                return 1
        if not args.quiet:
            print(f"{photo} -> {', '.join(map(str, done))} ({time.perf_counter() - t0:.2f} s)")
    if args.command == "degree" and rows:
        ranked = rank_by_degree([str(p) for p, _, _ in rows], [s for _, s, _ in rows])
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["photo", "S", "rank"])
        writer.writerows((name, f"{s:.6f}", rank) for name, s, rank in ranked)
        common = Path(os.path.commonpath([p.resolve().parent for p, _, _ in rows]))
        labels = [str(p.resolve().relative_to(common)) for p, _, _ in rows]
        strip = degree_strip([t[0] for _, _, t in rows], labels, [s for _, s, _ in rows],
                             maps=[t[1] for _, _, t in rows],
                             title="Ranked by blur degree S = mean of the blur map; map under each photo, white = blurred")
        for ending, data in ((".csv", text.getvalue().encode()), (".png", strip)):
            target = targets[0][ending]
            try:
                written = _write(target, data, args, Path("degree"), ending)
            except OSError as exc:
                reason = describe_os_error(exc) if exc.strerror else str(exc)
                report(f"{target}: cannot write ({reason}); check that --out {args.out} is writable")
                return 1
            if not args.quiet:
                print(f"wrote {written}")
    return 1 if failed else 0


def _thumbnail(rgb: np.ndarray, blur: np.ndarray, side: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Photo and map scaled so that the longer side is ``side`` pixels (for the ranking picture)."""
    import cv2

    h, w = blur.shape
    scale = min(1.0, side / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return (cv2.resize(_as_uint8_rgb(rgb), size, interpolation=cv2.INTER_AREA),
            cv2.resize(blur, size, interpolation=cv2.INTER_AREA))


# The README's figures ---------------------------------------------------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _panel_figure(panels: list[tuple[np.ndarray, str, bool]], title: str, panel_width: float) -> bytes:
    """PNG of one row of image panels (array, caption, grey?) with captions of 11 pt."""
    from .plotting import png_bytes, pyplot

    plt = pyplot()

    h, w = panels[0][0].shape[:2]
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_width * len(panels), panel_width * h / w + 0.9),
                             squeeze=False)
    for ax, (img, caption, grey) in zip(axes[0], panels):
        ax.imshow(img, cmap="gray" if grey else None, vmin=0 if grey else None, vmax=1 if grey else None)
        ax.set_title(caption, fontsize=11)
        ax.axis("off")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return png_bytes(fig)


def make_figures(args: argparse.Namespace) -> int:
    """``figures``: the three applications with each of ``--methods`` on real photos, for the README.

    ``segmentation.png``: photo, ground truth, then per method its map and GrabCut's blurred region
    (tinted red; IoU with the ground truth when ``--gt`` is given). ``magnification.png``: photo,
    then per method its map and the magnified photo. ``degree.png``: per method, the
    ``--degree-photos`` ranked by S with their maps. Each method runs once per photo.

    Returns
    -------
    int
        0 all three figures written; 1 a figure could not be written (one line on stderr).

    Raises
    ------
    baselines.interface.InputError, evaluation.registry.UnknownMethodError, OSError
        Before anything is written: a bad photo, mask, method or option, an unreadable folder
        (:func:`main` prints them in one line).
    """
    import cv2

    from baselines.interface import InputError, read_image
    from dbm.cli import report

    from .cli import os_error_message

    from .predict import collect_photos, encode_image, make_detector, plan_output_names, prepare_out, write_checked
    from .registry import METHODS, resolve_methods

    methods = resolve_methods(args.methods)
    photo_path = args.photo
    degree_paths = collect_photos(args.degree_photos)
    rgb = _as_uint8_rgb(read_image(photo_path))
    gt = None
    if args.gt is not None:
        from baselines.datasets import load_mask

        gt = load_mask(args.gt)
        if gt.shape != rgb.shape[:2]:
            raise InputError(f"--gt {args.gt}: mask is {gt.shape[1]} x {gt.shape[0]} px but the photo {photo_path} is "
                             f"{rgb.shape[1]} x {rgb.shape[0]}; give the photo's own mask")
    if not (np.isfinite(args.sigma) and args.sigma > 0):
        raise InputError(f"--sigma {args.sigma:g}: must be a number of pixels > 0 (default {DEFAULT_SIGMA:g})")
    prepare_out(args.out)
    names = ("segmentation.png", "degree.png", "magnification.png")
    planned, notes = plan_output_names([Path(Path(n).stem) for n in names], args.out, [".png"],
                                       overwrite=args.overwrite, what="figure")
    for note in notes:
        report(note, prefix="note")
    label = {m: METHODS[m].paper_row or m for m in methods}
    maps: dict[str, dict[Path, np.ndarray]] = {}
    for m in methods:
        det = make_detector(m, device=args.device)
        maps[m] = {}
        for path in dict.fromkeys([photo_path, *degree_paths]):
            t0 = time.perf_counter()
            maps[m][path] = det(read_image(path))
            if not args.quiet:
                print(f"{m}: {path} ({time.perf_counter() - t0:.1f} s)")

    seg_panels = [(rgb, f"photo\n{photo_path.stem}", False)]
    if gt is not None:
        seg_panels.append((gt.astype(np.float32), "ground truth\n(white = blurred)", True))
    mag_panels = [(rgb, f"photo\n{photo_path.stem}", False)]
    for m in methods:
        blur = maps[m][photo_path]
        seg = segment_blur(rgb, blur)
        score = f", IoU {_iou(seg.blurred, gt):.2f}" if gt is not None else ""
        how = "GrabCut" if seg.method == "grabcut" else "threshold (fallback)"
        seg_panels += [(blur, f"{label[m]} blur map\n(white = blurred)", True),
                       (overlay(rgb, seg.blurred), f"{label[m]}: {how}\n(red = blurred{score})", False)]
        mag_panels += [(blur, f"{label[m]} blur map\n(white = blurred)", True),
                       (magnify_blur(rgb, blur, sigma=args.sigma), f"{label[m]}: magnified\n(sigma {args.sigma:g} px "
                        f"where map > {MAGNIFY_THRESHOLD:g})", False)]
        if gt is not None:
            print(f"{m}: segmentation IoU with the ground truth {_iou(seg.blurred, gt):.3f} ({seg.method})")
    figures = {
        "segmentation.png": _panel_figure(seg_panels, "Blur region segmentation: GrabCut seeded from the blur map "
                                          "(Ma et al. 2018, Sec. IV-C.1, Fig. 10)", 2.6),
        "magnification.png": _panel_figure(mag_panels, f"Blur magnification: Gaussian blur where the map > "
                                           f"{MAGNIFY_THRESHOLD:g} (Sec. IV-C.3, Fig. 12)", 3.0),
    }
    strips = []
    for m in methods:
        photos = [_thumbnail(read_image(p), maps[m][p]) for p in degree_paths]
        png = degree_strip([t[0] for t in photos], [p.stem for p in degree_paths],
                           [blur_degree(maps[m][p]) for p in degree_paths], maps=[t[1] for t in photos],
                           title=f"{label[m]}: photos ranked by blur degree S = mean of the blur map (Sec. IV-C.2, "
                                 "Fig. 11); map under each photo, white = blurred")
        strip = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        if strip is None:  # pragma: no cover - matplotlib wrote the PNG just now
            raise OSError(f"the degree figure of {m} could not be decoded")
        strips.append(strip[:, :, ::-1])  # RGB, as encode_image expects
    width = max(s.shape[1] for s in strips)
    strips = [cv2.copyMakeBorder(s, 0, 0, 0, width - s.shape[1], cv2.BORDER_CONSTANT, value=(255, 255, 255))
              for s in strips]
    figures["degree.png"] = encode_image(".png", np.vstack(strips))  # checks OpenCV's ok flag
    for name, target in zip(names, planned):
        stub = Path(Path(name).stem)
        try:
            written = write_checked(target[".png"], figures[name], overwrite=args.overwrite,
                                    replan=lambda stub=stub: plan_output_names([stub], args.out, [".png"])[0][0][".png"])
        except OSError as exc:
            report(os_error_message(exc, f"check that --out {args.out} is writable and has free space",
                                    path=target[".png"]))
            return 1
        print(f"wrote {written}")
    return 0


def _run(args: argparse.Namespace) -> int:
    """The work of :func:`main`: run the application named on the command line; return the exit status."""
    if args.command is None:
        from dbm.cli import report

        report("name an application: segment, degree, magnify or figures; see python -m evaluation.applications "
               "--help")
        return 2
    if args.command == "figures":
        return make_figures(args)
    return _run_photos(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evaluation.applications``: run one application; return the exit status (module docstring)."""
    from .cli import OUT_HINT, run_cli
    from .registry import UnknownMethodError

    # OSError: unwritable --out, full disk, unreadable folder: one line, never a traceback
    return run_cli(build_parser(), argv, _run, errors=(UnknownMethodError,),
                   hint=OUT_HINT + ", and that the inputs are readable")


if __name__ == "__main__":
    sys.exit(main())
