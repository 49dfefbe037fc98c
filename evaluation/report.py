"""Write a run's results: CSV files, a markdown table in the paper's layout, PR curves, map grids.

Files written into the output folder:

``metrics.csv``
    one row per (dataset, split, method): ``method, split, n_images, ods, ois, ap`` then the
    secondary metrics, timing, what a learned method was trained on. Rows of earlier runs into the
    same folder are kept unless this run re-evaluated them.
``per_image.csv``
    per image: best F (OIS term), its threshold, F at the ODS threshold, MAE, seconds.
``pr_curves.csv`` and ``pr_curves.png``
    the concatenated-pixel precision-recall curve of every method (the paper's Figs. 4, 6, 9).
``report.md``
    the markdown table, with the paper's numbers beside ours where the paper has them.
``map_grid.png``
    photos, ground truth and every method's map for a few images.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .engine import MethodResult, read_levels
from .paper import TABLE_VI, table_for_split
from .registry import METHODS

__all__ = ["paper_row_for", "write_outputs", "markdown_table"]

PRIMARY = ("ods", "ois", "ap")
METRIC_FIELDS = (
    "dataset", "split", "method", "n_images", "ods", "ois", "ap", "ods_threshold", "ods_pooled",
    "ap_area", "fbeta_max", "fbeta_adaptive", "mae", "sec_per_image", "trained_on", "source",
)


def paper_row_for(name: str) -> str | None:
    """The paper's row label for a method name (``hifst_published`` -> ``HiFST``), if any."""
    if name in METHODS:
        return METHODS[name].paper_row
    prefixes = sorted((n for n in METHODS if name.startswith(n + "_")), key=len, reverse=True)
    return METHODS[prefixes[0]].paper_row if prefixes else None


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.{digits}f}"


def _metric_rows(results: Sequence[MethodResult], dataset: str, split: str) -> list[dict]:
    rows = []
    for r in results:
        row = {"dataset": dataset, "split": split, "method": r.name, **r.scores.as_row()}
        row["sec_per_image"] = r.sec_per_image
        row["trained_on"] = r.trained_on or ""
        row["source"] = r.source
        rows.append(row)
    return rows


def _merge_csv(path: Path, rows: list[dict], key: Sequence[str], fields: Sequence[str]) -> None:
    """Write ``rows`` to ``path``, keeping existing rows whose key this run did not produce."""
    new_keys = {tuple(str(r[k]) for k in key) for r in rows}
    kept: list[dict] = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as fh:
            for old in csv.DictReader(fh):
                if tuple(old.get(k, "") for k in key) not in new_keys:
                    kept.append(old)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        for row in kept + rows:
            writer.writerow({k: _csv_value(row.get(k, "")) for k in fields})


def _csv_value(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6f}"
    return v


def markdown_table(results: Sequence[MethodResult], split: str, dataset: str, is_cuhk: bool) -> str:
    """The results in the paper's layout (Algorithm, ODS, OIS, AP), paper numbers beside ours."""
    paper = table_for_split(split) if is_cuhk else None
    lines = []
    header = "| Algorithm | ODS | OIS | AP |"
    sep = "| --- | ---: | ---: | ---: |"
    if paper:
        header += " paper ODS | paper OIS | paper AP |"
        sep += " ---: | ---: | ---: |"
    header += " s/image | paper s/image | trained on |"
    sep += " ---: | ---: | --- |"
    lines += [header, sep]
    for r in results:
        row_label = paper_row_for(r.name)
        cells = [r.name + (f" ({row_label})" if row_label else "")]
        cells += [_fmt(getattr(r.scores, m)) for m in PRIMARY]
        if paper:
            ref = paper[1].get(row_label) if row_label else None
            cells += [_fmt(v) for v in ref] if ref else ["", "", ""]
        cells.append(_fmt(r.sec_per_image, 2) if r.seconds else ("precomputed" if r.source == "maps" else ""))
        cells.append(_fmt(TABLE_VI.get(row_label), 3) if row_label in TABLE_VI else "")
        cells.append(r.trained_on or "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _secondary_table(results: Sequence[MethodResult]) -> str:
    lines = [
        "| Method | ODS (pooled counts, BSDS) | AP (area under PR) | max F(beta^2=0.3) | adaptive F(beta^2=0.3) | MAE |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        s = r.scores
        lines.append(
            f"| {r.name} | {_fmt(s.ods_pooled)} | {_fmt(s.ap_area)} | {_fmt(s.fbeta_max)} | "
            f"{_fmt(s.fbeta_adaptive)} | {_fmt(s.mae)} |"
        )
    return "\n".join(lines)


def plot_pr_curves(results: Sequence[MethodResult], path: Path, title: str) -> None:
    """Concatenated-pixel PR curves of all methods in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=120)
    for r in sorted(results, key=lambda r: -r.scores.ods):
        ok = ~np.isnan(r.scores.precision)
        ax.plot(r.scores.recall[ok], r.scores.precision[ok], lw=1.6, label=f"{r.name} (ODS {r.scores.ods:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_map_grid(
    results: Sequence[MethodResult],
    samples: Sequence,
    maps_source: dict[str, object],
    path: Path,
    title: str,
    n_images: int = 4,
) -> None:
    """Photo, ground truth and each method's map (white = blurred) for a few images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = list(samples)[:: max(1, len(samples) // n_images)][:n_images]
    cols = 2 + len(results)
    fig, axes = plt.subplots(len(chosen), cols, figsize=(1.9 * cols, 1.6 * len(chosen) + 0.4), dpi=110, squeeze=False)
    for i, sample in enumerate(chosen):
        mask = sample.mask()
        panels: list[tuple[str, np.ndarray | None]] = []
        photo = None
        if sample.image_path is not None:
            try:
                photo = sample.image()
            except Exception:
                photo = None
        panels.append(("photo", photo))
        panels.append(("ground truth", mask.astype(np.float32)))
        for r in results:
            panels.append((r.name, _load_map(r, sample, maps_source, mask.shape)))
        for j, (label, img) in enumerate(panels):
            ax = axes[i, j]
            ax.axis("off")
            if img is not None:
                ax.imshow(img, cmap=None if img.ndim == 3 else "gray", vmin=0, vmax=1)
            if i == 0:
                ax.set_title(label, fontsize=7)
        axes[i, 0].text(0, -0.05, sample.stem, transform=axes[i, 0].transAxes, fontsize=6, va="top")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _load_map(r: MethodResult, sample, maps_source: dict[str, object], shape) -> np.ndarray | None:
    if r.cache_dir is not None:
        levels = read_levels(r.cache_dir / f"{sample.stem}.png")
        return None if levels is None else levels.astype(np.float32) / 255.0
    source = maps_source.get(r.name)
    if source is None:
        return None
    arr = source.load(sample, shape)  # type: ignore[attr-defined]
    return arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float32)


def write_outputs(
    out: Path,
    results: Sequence[MethodResult],
    *,
    dataset: str,
    split: str,
    is_cuhk: bool,
    samples: Sequence,
    maps_source: dict[str, object],
    notes: Sequence[str] = (),
) -> str:
    """Write every output file and return the markdown table printed to the console."""
    out.mkdir(parents=True, exist_ok=True)
    _merge_csv(out / "metrics.csv", _metric_rows(results, dataset, split), ("dataset", "split", "method"), METRIC_FIELDS)

    per_image = []
    for r in results:
        times = dict(zip([s.stem for s in samples], r.seconds)) if len(r.seconds) == len(samples) else {}
        for row in r.scores.per_image:
            per_image.append({"dataset": dataset, "split": split, "method": r.name, **row,
                              "seconds": times.get(row["stem"], "")})
    _merge_csv(
        out / "per_image.csv", per_image, ("dataset", "split", "method", "stem"),
        ("dataset", "split", "method", "stem", "n_pixels", "blurred_fraction", "f_best", "best_threshold",
         "f_at_ods", "mae", "seconds"),
    )
    curves = [
        {"dataset": dataset, "split": split, "method": r.name, "threshold": t,
         "precision": r.scores.precision[t], "recall": r.scores.recall[t]}
        for r in results for t in range(len(r.scores.precision))
    ]
    _merge_csv(out / "pr_curves.csv", curves, ("dataset", "split", "method", "threshold"),
               ("dataset", "split", "method", "threshold", "precision", "recall"))

    n = results[0].scores.n_images if results else 0
    title = f"{dataset}, split {split}, {n} images"
    plot_pr_curves(results, out / "pr_curves.png", f"Precision-recall (all test pixels concatenated)\n{title}")
    plot_map_grid(results, samples, maps_source, out / "map_grid.png", f"Blur maps (white = blurred), {title}")

    table = markdown_table(results, split, dataset, is_cuhk)
    md = [
        f"# Blur mapping results: {title}",
        "",
        table,
        "",
        "ODS = max over thresholds of the image-mean F; OIS = mean of per-image best F; AP = mean over the "
        "256 thresholds of the precision of all test pixels concatenated (the paper's conventions).",
        "",
        "## Secondary conventions (not the paper's)",
        "",
        _secondary_table(results),
        "",
        "![PR curves](pr_curves.png)",
        "",
        "![maps](map_grid.png)",
    ]
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return table
