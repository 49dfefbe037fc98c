"""Write a run's results: CSV files, a markdown report in the paper's layout, PR curves, map grids.

Files written into the output folder:

``metrics.csv``
    one row per (dataset, split, method): ``method, split, n_images, ods, ois, ap`` then the
    secondary metrics, timing, what a learned method was trained on, the paper table compared to
    and the run's notes.
``per_image.csv``
    per image: best F (OIS term), its threshold, F at the ODS threshold, MAE, seconds.
``pr_curves.csv`` and ``pr_curves.png``
    the concatenated-pixel precision-recall curve of every method (the paper's Figs. 4, 6, 9).
``report.md``
    the markdown tables, with the paper's numbers beside ours where the paper has them.
``map_grid.png``
    photos, ground truth and every method of this run for a few images.

Writing into an existing output folder
--------------------------------------
Rows accumulate per (dataset, split, method): a run replaces the rows of the methods it
evaluated on its dataset and split and keeps every other row, so a table can be built in
several runs. ``report.md`` and ``pr_curves.png`` are rebuilt from the merged CSV files, so they
always show exactly the rows of ``metrics.csv`` (``pr_curves.png``: those of this run's dataset
and split). The read-merge-write runs under a lock on ``OUT/.lock`` and every file is replaced
atomically, so concurrent runs into one folder lose nothing and never leave a half-written file.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .engine import MethodResult
from .metrics import PAPER_METRICS, SCALAR_FIELDS, SECONDARY_METRICS
from .paper import PAPER_TABLES, TABLE_VI
from .registry import METHODS

__all__ = ["METRIC_FIELDS", "paper_row_for", "write_outputs", "markdown_table"]

#: Columns of ``metrics.csv``.
METRIC_FIELDS = ("dataset", "split", "method", *SCALAR_FIELDS, "sec_per_image", "trained_on", "source",
                 "paper_table", "notes")
#: Columns of ``per_image.csv``.
PER_IMAGE_FIELDS = ("dataset", "split", "method", "stem", "n_pixels", "blurred_fraction", "f_best",
                    "best_threshold", "f_at_ods", "mae", "seconds")
#: Columns of ``pr_curves.csv``.
CURVE_FIELDS = ("dataset", "split", "method", "threshold", "precision", "recall")
GROUP = ("dataset", "split")
LOCK_TIMEOUT_S = 3600


def paper_row_for(name: str) -> str | None:
    """The paper's row label for a method name (``hifst_published`` -> ``HiFST``), if any."""
    if name in METHODS:
        return METHODS[name].paper_row
    prefixes = sorted((n for n in METHODS if name.startswith(n + "_")), key=len, reverse=True)
    return METHODS[prefixes[0]].paper_row if prefixes else None


def _fmt(x, digits: int = 3) -> str:
    x = _num(x)
    return "" if math.isnan(x) else f"{x:.{digits}f}"


def _num(x) -> float:
    """A CSV cell or number as float (NaN when empty)."""
    if x is None or x == "":
        return float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _csv_value(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6f}"
    return v


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file in the same folder, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _merge_csv(path: Path, rows: list[dict], key: Sequence[str], fields: Sequence[str]) -> list[dict]:
    """Replace the rows of ``path`` whose key this run produced, keep the others; return all rows.

    Call under the output folder's lock.
    """
    new_keys = {tuple(str(r[k]) for k in key) for r in rows}
    kept: list[dict] = []
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as fh:
            for old in csv.DictReader(fh):
                if tuple(old.get(k, "") for k in key) not in new_keys:
                    kept.append(old)
    merged = kept + [{k: _csv_value(row.get(k, "")) for k in fields} for row in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in merged:
        writer.writerow({k: row.get(k, "") for k in fields})
    _atomic_write(path, buf.getvalue().encode("utf-8"))
    return merged


def _groups(rows: Iterable[dict]) -> dict[tuple[str, str], list[dict]]:
    """Rows by (dataset, split), in first-appearance order, methods in registry order."""
    order = {n: i for i, n in enumerate(METHODS)}
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((r["dataset"], r["split"]), []).append(r)
    for g in out.values():
        g.sort(key=lambda r: (order.get(r["method"], len(order)), r["method"]))
    return out


def markdown_table(rows: Sequence[dict]) -> str:
    """Rows of ``metrics.csv`` in the paper's layout (Algorithm, ODS, OIS, AP), paper numbers beside ours.

    The paper columns appear when the rows carry a ``paper_table`` (CUHK, split D_e or D_o).
    """
    table_id = next((r.get("paper_table") for r in rows if r.get("paper_table")), "")
    paper = PAPER_TABLES.get(table_id)
    header = "| Algorithm | ODS | OIS | AP |"
    sep = "| --- | ---: | ---: | ---: |"
    if paper:
        header += " paper ODS | paper OIS | paper AP |"
        sep += " ---: | ---: | ---: |"
    header += " s/image | paper s/image | trained on |"
    sep += " ---: | ---: | --- |"
    lines = [header, sep]
    for r in rows:
        row_label = paper_row_for(r["method"])
        cells = [r["method"] + (f" ({row_label})" if row_label else "")]
        cells += [_fmt(r.get(m)) for m in PAPER_METRICS]
        if paper:
            ref = paper[1].get(row_label) if row_label else None
            cells += [_fmt(v) for v in ref] if ref else ["", "", ""]
        sec = _fmt(r.get("sec_per_image"), 2)
        cells.append(sec or ("precomputed" if r.get("source") == "maps" else ""))
        cells.append(_fmt(TABLE_VI.get(row_label), 3) if row_label in TABLE_VI else "")
        cells.append(r.get("trained_on") or "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _secondary_table(rows: Sequence[dict]) -> str:
    lines = ["| Method | " + " | ".join(SECONDARY_METRICS.values()) + " |",
             "| --- |" + " ---: |" * len(SECONDARY_METRICS)]
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(_fmt(r.get(k)) for k in SECONDARY_METRICS) + " |")
    return "\n".join(lines)


def _curves_of(curve_rows: Iterable[dict], group: tuple[str, str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """method -> (recall, precision) of one (dataset, split) from ``pr_curves.csv`` rows."""
    pts: dict[str, list[tuple[int, float, float]]] = {}
    for r in curve_rows:
        if (r["dataset"], r["split"]) == group:
            pts.setdefault(r["method"], []).append((int(r["threshold"]), _num(r["precision"]), _num(r["recall"])))
    out = {}
    for name, p in pts.items():
        p.sort()
        out[name] = (np.array([x[2] for x in p]), np.array([x[1] for x in p]))
    return out


def plot_pr_curves(rows: Sequence[dict], curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path,
                   title: str) -> None:
    """Concatenated-pixel PR curves of the methods in ``rows`` in one PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=120)
    for r in sorted(rows, key=lambda r: -_num(r.get("ods"))):
        if r["method"] not in curves:
            continue
        recall, precision = curves[r["method"]]
        ok = ~np.isnan(precision)
        ax.plot(recall[ok], precision[ok], lw=1.6, label=f"{r['method']} (ODS {_fmt(r.get('ods'))})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _save_figure(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png")
    _atomic_write(path, buf.getvalue())


def grid_stems(samples: Sequence, n_images: int = 4) -> list[str]:
    """The stems the map grid shows: ``n_images`` spread evenly over the samples."""
    return [s.stem for s in list(samples)[:: max(1, len(samples) // n_images)][:n_images]]


def plot_map_grid(results: Sequence[MethodResult], samples: Sequence, stems: Sequence[str], path: Path,
                  title: str) -> None:
    """Photo, ground truth and each method's map (white = blurred) for the images ``stems``.

    Maps come from the results in memory; a method with no map for an image (``--maps`` with
    ``--allow-missing``) gets an empty panel saying so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_stem = {s.stem: s for s in samples}
    chosen = [by_stem[t] for t in stems if t in by_stem]
    if not chosen:
        return
    cols = 2 + len(results)
    fig, axes = plt.subplots(len(chosen), cols, figsize=(1.9 * cols, 1.6 * len(chosen) + 0.4), dpi=110, squeeze=False)
    for i, sample in enumerate(chosen):
        mask = sample.mask()
        photo = None
        if sample.image_path is not None:
            try:
                photo = sample.image()
            except Exception:  # a photo the grid cannot show is not a reason to lose the run's results
                photo = None
        panels: list[tuple[str, np.ndarray | None]] = [("photo", photo), ("ground truth", mask.astype(np.float32))]
        for r in results:
            levels = r.maps.get(sample.stem)
            panels.append((r.name, None if levels is None else levels.astype(np.float32) / 255.0))
        for j, (label, img) in enumerate(panels):
            ax = axes[i, j]
            ax.axis("off")
            if img is not None:
                ax.imshow(img, cmap=None if img.ndim == 3 else "gray", vmin=0, vmax=1)
            else:
                ax.text(0.5, 0.5, "no map" if j >= 2 else "no photo", ha="center", va="center",
                        fontsize=7, transform=ax.transAxes)
            if i == 0:
                ax.set_title(label, fontsize=7)
        axes[i, 0].text(0, -0.05, sample.stem, transform=axes[i, 0].transAxes, fontsize=6, va="top")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _render_report(metric_rows: Sequence[dict]) -> str:
    md = ["# Blur mapping results", ""]
    for (dataset, split), rows in _groups(metric_rows).items():
        n = max(int(_num(r.get("n_images")) if not math.isnan(_num(r.get("n_images"))) else 0) for r in rows)
        md += [f"## {dataset}, split {split}, {n} images", ""]
        table_id = next((r.get("paper_table") for r in rows if r.get("paper_table")), "")
        if table_id in PAPER_TABLES:
            md += [f"Compared with the paper's {PAPER_TABLES[table_id][0]}.", ""]
        md += [markdown_table(rows), "", "Secondary conventions (not the paper's):", "", _secondary_table(rows), ""]
        notes = []
        for r in rows:
            for note in (r.get("notes") or "").split(" || "):
                if note and note not in notes:
                    notes.append(note)
        if notes:
            md += ["Notes:", ""] + [f"- {n_}" for n_ in notes] + [""]
    md += [
        "ODS = max over thresholds of the image-mean F; OIS = mean of per-image best F; AP = mean over the "
        "256 thresholds of the precision of all test pixels concatenated (the paper's conventions). "
        "s/image: compute seconds per image at its native size, measured when the map was computed.",
        "",
        "![PR curves](pr_curves.png)",
        "",
        "![maps](map_grid.png)",
    ]
    return "\n".join(md) + "\n"


def write_outputs(
    out: Path,
    results: Sequence[MethodResult],
    *,
    dataset: str,
    split: str,
    paper_table: str | None,
    samples: Sequence,
    grid: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """Merge this run's results into ``out`` and rebuild the reports; return this run's markdown table.

    Parameters
    ----------
    out : Path
        Output folder (created when missing).
    results : sequence of MethodResult
        This run's results (their ``maps`` feed the map grid).
    dataset, split : str
        Labels of the evaluated dataset and split (canonical split name).
    paper_table : str or None
        Key of :data:`evaluation.paper.PAPER_TABLES` compared with (CUHK D_e -> ``"III"``).
    samples : sequence of Sample
        The evaluated images.
    grid : sequence of str
        Stems shown in the map grid.
    notes : sequence of str
        Notes on this run, kept with its rows.
    """
    from filelock import FileLock

    out.mkdir(parents=True, exist_ok=True)
    note_text = " || ".join(notes)
    rows = []
    for r in results:
        row = {"dataset": dataset, "split": split, "method": r.name, **r.scores.as_row(),
               "sec_per_image": r.sec_per_image, "trained_on": r.trained_on or "", "source": r.source,
               "paper_table": paper_table or "", "notes": note_text}
        rows.append(row)
    per_image = [
        {"dataset": dataset, "split": split, "method": r.name, **row, "seconds": r.seconds.get(row["stem"], "")}
        for r in results for row in r.scores.per_image
    ]
    curves = [
        {"dataset": dataset, "split": split, "method": r.name, "threshold": t,
         "precision": r.scores.precision[t], "recall": r.scores.recall[t]}
        for r in results for t in range(len(r.scores.precision))
    ]
    group = (dataset, split)
    with FileLock(str(out / ".lock"), timeout=LOCK_TIMEOUT_S):
        merged = _merge_csv(out / "metrics.csv", rows, ("dataset", "split", "method"), METRIC_FIELDS)
        _merge_csv(out / "per_image.csv", per_image, ("dataset", "split", "method", "stem"), PER_IMAGE_FIELDS)
        all_curves = _merge_csv(out / "pr_curves.csv", curves, ("dataset", "split", "method", "threshold"), CURVE_FIELDS)
        group_rows = _groups(merged).get(group, [])
        n = max((r.scores.n_images for r in results), default=0)
        title = f"{dataset}, split {split}, {n} images"
        plot_pr_curves(group_rows, _curves_of(all_curves, group), out / "pr_curves.png",
                       f"Precision-recall (all test pixels concatenated)\n{dataset}, split {split}")
        plot_map_grid(results, samples, grid, out / "map_grid.png", f"Blur maps (white = blurred), {title}")
        _atomic_write(out / "report.md", _render_report(merged).encode("utf-8"))
    return markdown_table([r for r in group_rows if r["method"] in {x.name for x in results}])
