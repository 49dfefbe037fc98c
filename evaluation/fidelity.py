"""How close our methods are to the published results on the whole CUHK benchmark.

``python -m evaluation.fidelity --data CUHK --maps table3/maps table5/maps --published CUHK_EXTRAS --out DIR``

Two checks, on every image for which a map exists in the ``--maps`` folders (``METHOD/STEM.png``,
255 = blurred, as the runner writes with ``--save-maps``; Table III's and Table V's folders together
cover all 1,000 images):

* **HiFST against the authors' published maps** (``PUBLISHED/published_maps/hifst``, high = sharp):
  the Pearson correlation of our blur map with ``255 - published`` per image; mean, worst and the
  worst image.
* **Image-averaged PR curves** (the convention of the curves published with the HiFST evaluation
  code: at each threshold the mean over images of the per-image precision and recall, an undefined
  precision left out) of every method with a counterpart in ``PUBLISHED/published_pr_curves``
  (:attr:`evaluation.registry.MethodSpec.published_curve`), against that curve: the mean and the
  largest absolute difference in precision and in recall over the 256 thresholds.

Writes ``fidelity.md`` and ``fidelity.csv`` into ``--out``, each atomically; existing ones are
replaced only with ``--overwrite``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from baselines.interface import InputError, read_raw
from .datasets import Dataset
from .metrics import MetricsAccumulator
from .registry import METHODS

__all__ = ["build_parser", "curve_distance", "hifst_correlation", "main", "read_published_curve"]


def read_published_curve(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(precision, recall)`` of a published curve file (row k = threshold k, ``score >= k``)."""
    try:
        arr = np.loadtxt(path, ndmin=2)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a published PR curve (two columns, precision and recall): {exc}") from exc
    if arr.shape != (256, 2):
        raise InputError(f"{path}: expected 256 rows of precision and recall, got shape {arr.shape}")
    return arr[:, 0], arr[:, 1]


def _map_files(folders: Sequence[Path], method: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in folders:
        sub = Path(folder) / method
        if sub.is_dir():
            for p in sorted(sub.glob("*.png")):
                found.setdefault(p.stem, p)
    return found


def _levels(path: Path) -> np.ndarray:
    arr = read_raw(path)
    return arr[:, :, 0] if arr.ndim == 3 else arr


def curve_distance(samples: dict, files: dict[str, Path], published: tuple[np.ndarray, np.ndarray]) -> dict:
    """Our image-averaged PR curve over ``files`` against a published one (mean/max |difference|)."""
    acc = MetricsAccumulator()
    for stem in sorted(files):
        acc.add(stem, _levels(files[stem]), samples[stem].mask())
    s = acc.scores()
    dp = np.abs(s.precision_image_mean - published[0])
    dr = np.abs(s.recall_image_mean - published[1])
    return {"n_images": s.n_images, "precision_mean_abs": float(np.nanmean(dp)), "precision_max_abs": float(np.nanmax(dp)),
            "recall_mean_abs": float(np.nanmean(dr)), "recall_max_abs": float(np.nanmax(dr))}


def hifst_correlation(files: dict[str, Path], published_dir: Path) -> dict:
    """Pearson r of our HiFST maps with the authors' published maps (inverted: theirs are high = sharp)."""
    rs: dict[str, float] = {}
    for stem, path in sorted(files.items()):
        theirs = published_dir / f"{stem}.png"
        if not theirs.is_file():
            continue
        a = _levels(path).astype(np.float64).ravel()
        b = 255.0 - _levels(theirs).astype(np.float64).ravel()
        if a.std() == 0 or b.std() == 0:
            rs[stem] = float("nan")
            continue
        rs[stem] = float(np.corrcoef(a, b)[0, 1])
    if not rs:
        raise InputError(f"{published_dir}: no published HiFST map matches our maps")
    values = np.array(list(rs.values()))
    worst = min(rs, key=lambda k: rs[k] if np.isfinite(rs[k]) else -2)
    return {"n_images": len(rs), "r_mean": float(np.nanmean(values)), "r_worst": rs[worst], "worst_image": worst,
            "below_0_999": int(np.sum(values < 0.999))}


def build_parser():
    """The command line of ``python -m evaluation.fidelity`` (one-line errors, :mod:`evaluation.cli`)."""
    from .cli import OneLineParser, add_common_options

    p = OneLineParser(prog="python -m evaluation.fidelity", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="CUHK folder (gt/ masks)")
    p.add_argument("--maps", type=Path, nargs="+", required=True, help="folders holding METHOD/STEM.png maps")
    p.add_argument("--published", type=Path, required=True,
                   help="folder with published_pr_curves/ and published_maps/hifst/")
    add_common_options(p, out={"required": True, "help": "output folder (created)"})
    p.add_argument("--overwrite", action="store_true", help="replace fidelity.csv and fidelity.md if --out holds them")
    return p


FIELDS = ["method", "published", "n_images", "precision_mean_abs", "precision_max_abs", "recall_mean_abs",
          "recall_max_abs"]


def _csv_bytes(rows: list[dict]) -> bytes:
    """``fidelity.csv``: one row per method with a published curve (:data:`FIELDS`)."""
    from .cli import csv_bytes

    return csv_bytes(rows, FIELDS)


def _markdown(rows: list[dict], corr: dict | None) -> str:
    """``fidelity.md``: the HiFST correlation and the curve distances."""
    md = ["# Fidelity to the published results (CUHK)", ""]
    if corr:
        md += [f"HiFST vs the authors' published maps, {corr['n_images']} images: Pearson r mean "
               f"{corr['r_mean']:.5f}, worst {corr['r_worst']:.5f} ({corr['worst_image']}); "
               f"{corr['below_0_999']} images below 0.999.", ""]
    md += ["Image-averaged PR curve against the curve published with the HiFST evaluation code "
           "(absolute differences over the 256 thresholds):", "",
           "| method | published | images | P mean | P max | R mean | R max |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        md.append(f"| {r['method']} | {r['published']} | {r['n_images']} | {r['precision_mean_abs']:.4f} | "
                  f"{r['precision_max_abs']:.4f} | {r['recall_mean_abs']:.4f} | {r['recall_max_abs']:.4f} |")
    return "\n".join(md) + "\n"


def _compare(args) -> str:
    """The work of :func:`main`: compare, write ``fidelity.csv`` and ``fidelity.md``; return the Markdown."""
    from .cli import refuse_existing, write_new_files
    from .predict import prepare_out

    targets = {"csv": args.out / "fidelity.csv", "md": args.out / "fidelity.md"}
    refuse_existing(targets.values(), overwrite=args.overwrite)
    samples = {s.stem: s for s in Dataset(args.data).samples("all", need_images=False)}
    rows = []
    for name, spec in METHODS.items():
        if not spec.published_curve:
            continue
        files = {k: v for k, v in _map_files(args.maps, name).items() if k in samples}
        if not files:
            continue
        curve = read_published_curve(args.published / "published_pr_curves" /
                                     f"BlurDetection_{spec.published_curve}_PRCurve.txt")
        rows.append({"method": name, "published": spec.published_curve, **curve_distance(samples, files, curve)})
    hifst_files = _map_files(args.maps, "hifst")
    corr = hifst_correlation(hifst_files, args.published / "published_maps" / "hifst") if hifst_files else None
    md = _markdown(rows, corr)
    prepare_out(args.out)
    write_new_files({targets["csv"]: _csv_bytes(rows), targets["md"]: md.encode()}, overwrite=args.overwrite)
    return md


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evaluation.fidelity``: compare, write the two files; return the exit status.

    Returns
    -------
    int
        0 written; 2 nothing written (a bad option, dataset, map or curve file, an existing
        ``fidelity.csv`` or ``fidelity.md`` without ``--overwrite``, an unwritable ``--out``):
        one line on stderr.
    """
    from .cli import run_cli

    def show(args, md: str) -> int:
        print(md, end="")
        return 0

    return run_cli(build_parser(), argv, _compare, then=show)


if __name__ == "__main__":
    sys.exit(main())
