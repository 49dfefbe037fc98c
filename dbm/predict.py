"""Blur maps for photos: ``python -m dbm.predict PHOTO_OR_FOLDER... --out DIR``.

Writes ``DIR/<stem>.png`` for every photo (8-bit grey, 255 = blurred, same size as the photo).
Folders are read non-recursively (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``, ``.tif``, ``.tiff``,
``.webp`` in any case). ``--method dbm`` (default) uses the shipped Configuration V weights; the
other configurations and variants (``dbm_config_i`` ... ``dbm_dsn``) need ``--weights`` from
``python -m dbm.train``; any ``--weights`` file can also be used with ``--method dbm`` when it is a
Configuration V network.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "collect_photos"]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def collect_photos(items: list[str | Path]) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of photo paths."""
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


def main(argv: list[str] | None = None) -> int:
    from .detector import DETECTORS

    parser = argparse.ArgumentParser(prog="blur-map", description="Blur maps (255 = blurred) with DBM.")
    parser.add_argument("photos", nargs="+", help="photos and/or folders of photos")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--method", default="dbm", choices=sorted(DETECTORS), help="network (default: shipped DBM)")
    parser.add_argument("--weights", default=None, help="weight file from python -m dbm.train")
    parser.add_argument("--size", type=int, default=None, help="network input side (0: photo size; default: from the weights)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"],
                        help="arithmetic: fp32 (default), bf16 autocast, or int8 (CPU; needs a weight file calibrated by "
                             "python -m dbm.quantize, as the shipped one is)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    import cv2

    from baselines.interface import InputError, read_image

    try:
        photos = collect_photos(args.photos)
        det = DETECTORS[args.method](weights=args.weights, size=args.size, precision=args.precision,
                                     threads=args.threads, device=args.device)
    except (InputError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    stems: dict[str, int] = {}
    failed = 0
    for photo in photos:
        try:
            rgb = read_image(photo)
        except InputError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            failed += 1
            continue
        t0 = time.perf_counter()
        blur = det(rgb)
        stem = photo.stem
        if stem in stems:  # same stem from two folders or two suffixes
            stems[stem] += 1
            stem = f"{stem}_{stems[stem]}"
        else:
            stems[stem] = 0
        target = args.out / f"{stem}.png"
        cv2.imwrite(str(target), np.round(blur * 255).astype(np.uint8))
        if not args.quiet:
            print(f"{photo} -> {target} ({time.perf_counter() - t0:.2f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
