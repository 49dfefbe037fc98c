"""Write a run's results: CSV files, one HTML page and a markdown report in the paper's layout, figures.

Files written into the output folder:

``metrics.csv``
    one row per (dataset, split, method): ``method, split, n_images, ods, ois, ap`` then the
    secondary metrics, timing, what a learned method was trained on, the paper table compared to,
    the run's notes, the id of the run that wrote it and the columns of the extra metric profiles
    (:data:`evaluation.metrics.PROFILES`, ``--metrics``; empty where not computed).
``per_image.csv``
    per image: best F (OIS term), its threshold, F at the ODS threshold, MAE, seconds.
``pr_curves.csv``
    per method and threshold: the concatenated-pixel precision and recall (the paper's PR curve)
    and ``f_mean``, the image-mean F whose maximum is ODS.
``runs.csv``
    how each run whose rows are in ``metrics.csv`` was made: date, command line, suite version,
    dataset path and checksums, machine, library versions.
``index.html``
    everything below in one self-contained page (figures embedded, no external file, no script).
``report.md``
    the same tables in markdown, linking the PNG files.
``pr_curves.png``, ``f_threshold.png``
    precision-recall curves in the style of the paper's Figs. 4, 6 and 9 (a panel fitted to the
    data and the full 0-1 view) and the image-mean F against the threshold, for this run's dataset
    and split (``index.html`` draws them for every dataset and split of ``metrics.csv``).
``map_grid.png``, ``map_grid_2.png``, ...
    photo, ground truth and each method's map of this run (the paper's Figs. 5, 7, 8), a few
    methods per page.

Tables: the paper's Table III or V (ours, the paper's and the difference) when the rows carry a
``paper_table`` (CUHK, split D_e or D_o), a plain results table otherwise; Tables II and IV (the
DBM configurations and variants, mapped to the paper's rows by :data:`evaluation.paper.TABLE_II_ROWS`
and :data:`evaluation.paper.TABLE_IV_ROWS`) when such rows are present, with the paper's numbers on
CUHK D_e; the secondary conventions; one table per extra metric profile computed; timings.

Writing into an existing output folder
--------------------------------------
Rows accumulate per (dataset, split, method): a run replaces the rows of the methods it
evaluated on its dataset and split and keeps every other row, so a table can be built in
several runs. ``report.md``, ``index.html`` and ``pr_curves.png`` are rebuilt from the merged CSV
files, so they always show exactly the rows of ``metrics.csv`` (``pr_curves.png``: those of this
run's dataset and split); the map grids show this run's maps. The read-merge-write runs under a
lock on ``OUT/.lock`` and every file is replaced atomically, so concurrent runs into one folder
lose nothing and never leave a half-written file. Rows are grouped by the dataset folder's name;
when one group's rows were scored on different masks (another folder of the same name, another
``--limit``: their checksums in ``runs.csv`` differ), the reports and the runner say so.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import math
import os
import re
import shlex
import subprocess
import textwrap
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from baselines.interface import InputError
from dbm.fileio import atomic_write_bytes

from .engine import MethodResult
from .html import Bullets, Code, Column, Facts, Figure, Heading, Para, Table, render_html, slug
from .metrics import N_LEVELS, PAPER_METRICS, PROFILE_FIELDS, PROFILES, SCALAR_FIELDS, SECONDARY_METRICS
from .machine import machine
from .plotting import DPI, RC, png_bytes, pyplot
from .paper import ABLATION_PAPER_TABLE, ABLATION_TABLES, PAPER_TABLES, TABLE_VI, TABLE_VI_SIZE
from .registry import METHODS
from .settings import method_of_label

__all__ = ["METRIC_FIELDS", "paper_row_for", "ablation_row_for", "write_outputs", "mixed_data", "markdown_table",
           "method_styles", "grid_stems", "render_markdown"]

#: Columns of ``metrics.csv`` (the extra metric profiles' last, empty where a run did not compute them).
METRIC_FIELDS = ("dataset", "split", "method", *SCALAR_FIELDS, "sec_per_image", "trained_on", "source",
                 "paper_table", "notes", "run", *PROFILE_FIELDS, "benchmark")
#: Columns of ``per_image.csv``.
PER_IMAGE_FIELDS = ("dataset", "split", "method", "stem", "n_pixels", "blurred_fraction", "f_best",
                    "best_threshold", "f_at_ods", "mae", "seconds")
#: Columns of ``pr_curves.csv``.
CURVE_FIELDS = ("dataset", "split", "method", "threshold", "precision", "recall", "f_mean")
#: Columns of ``runs.csv``.
RUN_FIELDS = ("run", "date", "command", "suite_version", "dataset", "split", "dataset_path", "n_images",
              "masks_sha256", "photos_sha256", "methods", "cpu", "cores", "threads", "os", "python", "numpy",
              "torch", "opencv")
GROUP = ("dataset", "split")
LOCK_TIMEOUT_S = 3600
#: Images in the map grid (spread evenly over the split) and method columns per page.
GRID_IMAGES = 8
GRID_METHODS_PER_PAGE = 5

#: Colour-blind-safe line colours: the Okabe-Ito palette without its black (kept for DBM) and its
#: yellow (too faint on white), plus a neutral grey. Seven colours against four dash patterns
#: (coprime counts) give 28 distinct colour + style pairs; past 28 methods a marker is added. The
#: order keeps the similar pairs (orange / vermillion, sky blue / blue) two apart, so they share a
#: line style only from the 13th method on.
PALETTE = ("#E69F00", "#56B4E9", "#D55E00", "#0072B2", "#009E73", "#CC79A7", "#7F7F7F")
DASHES = ("solid", (0, (6, 2)), (0, (6, 2, 1.5, 2)), (0, (1.5, 1.5)))
MARKERS = (None, "o", "s", "^", "D", "v", "P", "X")


# Paper rows ------------------------------------------------------------------------------------
def _registered_base(name: str) -> str | None:
    """``name`` if it is a registered method, else its longest registered prefix (``hifst_published`` -> ``hifst``)."""
    if name in METHODS:
        return name
    return max((n for n in METHODS if name.startswith(n + "_")), key=len, default=None)


def paper_row_for(name: str) -> str | None:
    """The paper's row label (Tables III and V) for a method name (``hifst_published`` -> ``HiFST``), if any.

    Settings in the name (``hifst[stride=2]``, see :func:`evaluation.settings.result_label`) are ignored.
    """
    base = _registered_base(method_of_label(name))
    return METHODS[base].paper_row if base else None


def ablation_row_for(table_id: str, name: str) -> str | None:
    """The row of the paper's Table II or IV (``table_id``) that the method ``name`` reproduces, if any.

    Registered names are looked up as they are; another name (precomputed maps, ``--maps
    dbm_dsn_authors=DIR``) by its longest registered prefix.
    """
    rows = ABLATION_TABLES[table_id][2]
    name = method_of_label(name)  # settings in the name do not change the row
    return rows.get(_registered_base(name) or name)


def _ablation_only(name: str) -> bool:
    """A row shown in Table II or IV instead of the main table (every row there but DBM itself)."""
    return any(ablation_row_for(t, name) is not None for t in ABLATION_TABLES) and not _is_dbm(name)


def _is_dbm(name: str) -> bool:
    """The paper's method (Configuration V): drawn on top and thicker, in bold in the tables."""
    return name == "dbm" or (name not in METHODS and paper_row_for(name) == "DBM")


# Numbers ---------------------------------------------------------------------------------------
def _num(x) -> float:
    """A CSV cell or number as float (NaN when empty)."""
    if x is None or x == "":
        return float("nan")
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _fmt(x, digits: int = 3) -> str:
    x = _num(x)
    return "" if math.isnan(x) else f"{x:.{digits}f}"


def _fmt_diff(x) -> str:
    x = _num(x)
    if math.isnan(x):
        return ""
    return "0.000" if round(x, 3) == 0 else f"{x:+.3f}".replace("-", "\u2212")


def _fmt_seconds(x) -> str:
    x = _num(x)
    if math.isnan(x):
        return ""
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def _csv_value(v):
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else f"{v:.6f}"
    return v


# Files -----------------------------------------------------------------------------------------
def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (:func:`dbm.fileio.atomic_write_bytes`)."""
    atomic_write_bytes(path, data, overwrite=True, fsync=True)


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable results file ({exc}); move it away or choose another --out") from None


def _csv_bytes(rows: Iterable[dict], fields: Sequence[str]) -> bytes:
    """A results file of the runner: exactly ``fields``, other keys left out (:func:`evaluation.cli.csv_bytes`)."""
    from .cli import csv_bytes

    return csv_bytes(rows, fields, lineterminator="\n", extra="ignore")


#: A run replaces, in every results file, all rows of each (dataset, split, method) it evaluated.
REPLACE_KEY = ("dataset", "split", "method")


def _merge_rows(path: Path, rows: list[dict], fields: Sequence[str]) -> list[dict]:
    """The rows of ``path`` whose (dataset, split, method) this run did not evaluate, then this run's rows.

    Call under the output folder's lock; nothing is written here.
    """
    new_keys = {tuple(str(r[k]) for k in REPLACE_KEY) for r in rows}
    kept = [old for old in _read_csv(path) if tuple(old.get(k, "") for k in REPLACE_KEY) not in new_keys]
    merged = kept + [{k: _csv_value(row.get(k, "")) for k in fields} for row in rows]
    return [{k: row.get(k, "") for k in fields} for row in merged]


def _groups(rows: Iterable[dict]) -> dict[tuple[str, str], list[dict]]:
    """Rows by (dataset, split), in first-appearance order, methods in registry order."""
    order = {n: i for i, n in enumerate(METHODS)}
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((r["dataset"], r["split"]), []).append(r)
    for g in out.values():
        g.sort(key=lambda r: (order.get(r["method"], len(order)), r["method"]))
    return out


def _paper_order(rows: Sequence[dict], table: dict | None) -> list[dict]:
    """Rows in the order of the paper's table (a method beside the row it reproduces), then the others."""
    order = {n: i for i, n in enumerate(METHODS)}
    labels = list(table) if table else []

    def key(r):
        row = paper_row_for(r["method"])
        at = labels.index(row) if row in labels else len(labels)
        base = _registered_base(r["method"]) or r["method"]
        return at, order.get(base, len(order)), r["method"] not in order, r["method"]

    return sorted(rows, key=key)


# Tables ----------------------------------------------------------------------------------------
def _label(name: str, row: str | None) -> str:
    return name + (f" ({row})" if row else "")


def _metric_columns(group: str, md_prefix: str) -> list[Column]:
    return [Column(m.upper(), group, md=f"{md_prefix}{m.upper()}".strip()) for m in PAPER_METRICS]


def _comparison_table(rows: Sequence[dict], paper: dict | None, row_of, caption: str | None,
                      trained_on: bool = True) -> Table:
    """Algorithm, our ODS/OIS/AP and, with ``paper``, the paper's and the difference (ours - paper)."""
    cols = [Column("Algorithm", align="l"), *_metric_columns("ours" if paper else "", "")]
    if paper:
        cols += _metric_columns("paper", "paper ")
        cols += _metric_columns("ours \u2212 paper", "\u0394 ")
    if trained_on:
        cols.append(Column("trained on", align="l"))
    body, strong = [], set()
    for r in rows:
        row_label = row_of(r["method"])
        cells = [_label(r["method"], row_label)] + [_fmt(r.get(m)) for m in PAPER_METRICS]
        if paper:
            ref = paper.get(row_label) if row_label else None
            cells += [_fmt(v) for v in ref] if ref else ["", "", ""]
            cells += [_fmt_diff(_num(r.get(m)) - v) for m, v in zip(PAPER_METRICS, ref)] if ref else ["", "", ""]
        if trained_on:
            cells.append(r.get("trained_on") or ("precomputed maps" if r.get("source") == "maps" else ""))
        if _is_dbm(r["method"]):
            strong.add(len(body))
        body.append(cells)
    signed = set(range(7, 10)) if paper else set()
    return Table(cols, body, caption, strong=strong, signed=signed)


def markdown_table(rows: Sequence[dict]) -> str:
    """Rows of ``metrics.csv`` in the paper's layout (Algorithm, ODS, OIS, AP), paper numbers beside ours.

    The paper columns (the paper's ODS/OIS/AP and ours minus the paper's) appear when the rows
    carry a ``paper_table`` (CUHK, split D_e or D_o).
    """
    table_id = next((r.get("paper_table") for r in rows if r.get("paper_table")), "")
    paper = PAPER_TABLES[table_id][1] if table_id in PAPER_TABLES else None
    return _md_table(_comparison_table(_paper_order(rows, paper), paper, paper_row_for, None))


def _secondary_table(rows: Sequence[dict]) -> Table:
    cols = [Column("Method", align="l")] + [Column(title) for title in SECONDARY_METRICS.values()]
    body = [[r["method"]] + [_fmt(r.get(k)) for k in SECONDARY_METRICS] for r in rows]
    return Table(cols, body, "Other conventions computed from the same maps; not the paper's (see Metric "
                 "definitions). Adaptive F: for each image, the class (blurred or sharp) that covers less of its "
                 "ground truth, at twice that class's mean score.",
                 strong={i for i, r in enumerate(rows) if _is_dbm(r["method"])})


def _profile_blocks(rows: Sequence[dict], anchor: str) -> list:
    """A heading and table per extra metric profile (:data:`evaluation.metrics.PROFILES`) that some row computed."""
    blocks: list = []
    for name, profile in PROFILES.items():
        own = [k for k in profile.metrics if k in PROFILE_FIELDS]
        members = [r for r in rows if any(str(r.get(k, "")) != "" for k in own)]
        if name == "paper" or not members:
            continue
        cols = [Column("Method", align="l")] + [Column(label) for label in profile.metrics.values()]
        body = [[r["method"]] + [_fmt(r.get(k)) for k in profile.metrics] for r in members]
        blocks += [Heading(f"Metric profile {name}: {profile.title}", 3, f"{anchor}-profile-{name}"),
                   Table(cols, body, "Not the paper's metrics. " + profile.description(),
                         strong={i for i, r in enumerate(members) if _is_dbm(r["method"])})]
    return blocks


def _published_blocks(rows: Sequence[dict], n: int, anchor: str) -> list:
    """The field's published numbers for this benchmark, split and number of photos, beside ours."""
    from baselines.datasets import canonical_split

    from .published import OTHER_PREFIX, PUBLISHED_CSV, published_for

    bench = next((r["benchmark"] for r in rows if r.get("benchmark")), "")
    try:
        split = canonical_split(rows[0]["split"])
    except ValueError:
        return []
    found = published_for(bench, split, n) if bench else []
    if not found:
        return []
    body = []
    for p in found:
        ours = "not computed here (no profile has this definition)"
        if p.comparable:
            mine = [r for r in rows if p.matches(r["method"]) and str(r.get(p.metric, "")) != ""]
            ours = "; ".join(f"{_fmt(r[p.metric])} ({r['method']})" for r in mine) or (
                f"- (evaluate its maps with --maps {p.method}=DIR)")
        metric = p.metric[len(OTHER_PREFIX):] if not p.comparable else SECONDARY_METRICS.get(p.metric, p.metric)
        body.append([p.method, metric, f"{p.value:g}", ours, p.protocol, p.source])
    cols = [Column("Method", align="l"), Column("Metric", align="l"), Column("Published"), Column("Ours", align="l"),
            Column("How it was computed", align="l"), Column("Source", align="l")]
    caption = (f"Published numbers for {bench}, split {split}, {n} photos ({PUBLISHED_CSV.name} of the suite), "
               "with ours where the same method's maps were evaluated here with the same definition.")
    return [Heading("Published numbers of the field", 3, f"{anchor}-published"), Table(cols, body, caption)]


def _paper_seconds(row: str | None) -> str:
    if row not in TABLE_VI:
        return ""
    text = _fmt_seconds(TABLE_VI[row])
    gpu = TABLE_VI.get(f"{row} (GPU)")
    return f"{text} (GPU {_fmt_seconds(gpu)})" if gpu is not None else text


def _timing_table(rows: Sequence[dict], per_image: Sequence[dict]) -> Table:
    """Seconds per image as measured, per megapixel, scaled to Table VI's size, beside Table VI."""
    ref_px = TABLE_VI_SIZE[0] * TABLE_VI_SIZE[1]
    size = f"{TABLE_VI_SIZE[0]} x {TABLE_VI_SIZE[1]}"
    cols = [Column("Method", align="l"), Column("images timed"), Column("mean", "s / image, native size"),
            Column("median", "s / image, native size"), Column("megapixels / image"), Column("s / megapixel"),
            Column(f"ours, scaled to {size}", "s / image", md=f"ours s at {size} (scaled)"),
            Column("paper (Table VI)", "s / image", md=f"paper s at {size} (Table VI)")]
    cols[2].md, cols[3].md = "mean s/image", "median s/image"
    body = []
    for r in rows:
        mine = [p for p in per_image if p["method"] == r["method"]]
        secs = np.array([_num(p.get("seconds")) for p in mine], dtype=float)
        pix = np.array([_num(p.get("n_pixels")) for p in mine], dtype=float)
        ok = ~np.isnan(secs) & ~np.isnan(pix) & (pix > 0)
        row_label = paper_row_for(r["method"])
        if not ok.any():
            why = "precomputed maps: not timed" if r.get("source") == "maps" else "no time recorded"
            sizes = pix[~np.isnan(pix)]
            body.append([r["method"], "0", why, "", _fmt(sizes.mean() / 1e6, 2) if sizes.size else "", "", "",
                         _paper_seconds(row_label)])
            continue
        per_mpx = float(secs[ok].sum() / (pix[ok].sum() / 1e6))
        body.append([r["method"], str(int(ok.sum())), _fmt_seconds(secs[ok].mean()), _fmt_seconds(np.median(secs[ok])),
                     _fmt(pix[ok].mean() / 1e6, 2), _fmt_seconds(per_mpx), _fmt_seconds(per_mpx * ref_px / 1e6),
                     _paper_seconds(row_label)])
    caption = (
        "Compute seconds of each map when it was computed (reading and writing files excluded), at the "
        "photo's native size, on the machine and with the threads of the run that computed it: a map taken "
        "from the cache keeps the time of the run that made it, which may be another run than the one listed "
        "under How this was made, and with --workers N each map ran in its own single-threaded process. "
        f"'Scaled to {size}' multiplies seconds per megapixel by {ref_px / 1e6:.3f} megapixels, assuming time "
        "proportional to pixel count: an estimate, not a measurement (python -m evaluation.speed measures at "
        f"{size}). The paper's Table VI: MATLAB/Caffe on a 3.4 GHz CPU, DBM also on a GTX Titan X GPU; "
        "different code, machine and era, so the ratio between methods is more telling than the seconds.")
    return Table(cols, body, caption, strong={i for i, r in enumerate(rows) if _is_dbm(r["method"])})


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(c.md_title) for c in t.columns) + " |",
             "| " + " | ".join("---:" if c.align == "r" else "---" for c in t.columns) + " |"]
    for row in t.rows:
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


def render_markdown(blocks: Sequence, title: str) -> str:
    """The report's blocks as markdown (figures link their PNG files in the output folder)."""
    md = [f"# {title}", ""]
    for b in blocks:
        if isinstance(b, Heading):
            md += ["#" * min(max(b.level, 2), 4) + " " + b.text, ""]
        elif isinstance(b, Para):
            md += [("> " if b.note else "") + b.text, ""]
        elif isinstance(b, Bullets):
            md += [f"- {i}" for i in b.items] + [""]
        elif isinstance(b, Table):
            md += [_md_table(b), ""]
            if b.caption:
                md += [f"*{b.caption}*", ""]
        elif isinstance(b, Figure):
            if b.name:
                md += [f"![{b.alt}]({b.name})", "", f"*{b.caption}*", ""]
        elif isinstance(b, Code):
            md += ["```", b.text, "```", ""]
        elif isinstance(b, Facts):
            head = b.md_title if b.md_title is not None else b.title
            if head:
                md += [f"**{head}**", ""]
            items = b.md_items if b.md_items is not None else b.items
            md += [f"- {k}: `{v}`" if k == "command" else f"- {k}: {v.replace(chr(10), ' ')}" for k, v in items]
            md += [""]
    return "\n".join(md).rstrip() + "\n"


# Figures ---------------------------------------------------------------------------------------
def method_styles(names: Sequence[str]) -> dict[str, dict]:
    """A distinct matplotlib style per method (colour, dashes, width, marker, z-order).

    DBM (``dbm``, or precomputed maps named after it) is black, thicker and drawn on top. The
    others take :data:`PALETTE` colour ``i % 7`` and :data:`DASHES` style ``i % 4`` in the order
    given, so no two of the first 28 share colour and style; a marker tells further ones apart.
    """
    styles: dict[str, dict] = {}
    top = [n for n in names if _is_dbm(n)]
    rest = [n for n in names if not _is_dbm(n)]
    for i, n in enumerate(top):
        styles[n] = {"color": "#000000", "linestyle": DASHES[i % len(DASHES)], "lw": 3.0, "zorder": 20 - i,
                     "marker": MARKERS[(i // len(DASHES)) % len(MARKERS)]}
    cycle = len(PALETTE) * len(DASHES)
    for i, n in enumerate(rest):
        styles[n] = {"color": PALETTE[i % len(PALETTE)], "linestyle": DASHES[i % len(DASHES)], "lw": 1.8,
                     "zorder": 3, "marker": MARKERS[(i // cycle) % len(MARKERS)]}
    return styles


def _plot_kw(style: dict, n_points: int) -> dict:
    kw = {k: style[k] for k in ("color", "linestyle", "lw", "zorder")}
    if style.get("marker"):
        kw.update(marker=style["marker"], markevery=max(1, n_points // 8), ms=5)
    return kw


def _curves_of(curve_rows: Iterable[dict], group: tuple[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """method -> {"recall", "precision", "f_mean"} (index = threshold) of one (dataset, split)."""
    pts: dict[str, list[tuple[int, float, float, float]]] = {}
    for r in curve_rows:
        if (r["dataset"], r["split"]) == group:
            pts.setdefault(r["method"], []).append(
                (int(r["threshold"]), _num(r["precision"]), _num(r["recall"]), _num(r.get("f_mean"))))
    out = {}
    for name, p in pts.items():
        p.sort()
        out[name] = {"precision": np.array([x[1] for x in p]), "recall": np.array([x[2] for x in p]),
                     "f_mean": np.array([x[3] for x in p])}
    return out


def _legend_label(r: dict, extra: str = "") -> str:
    name = "\n".join(textwrap.wrap(r["method"], 26)) or r["method"]
    return f"{name} (ODS {_fmt(r.get('ods'))}{extra})"


def _fitted_limits(values: list[np.ndarray], pad: float = 0.04) -> tuple[float, float]:
    v = np.concatenate([x[~np.isnan(x)] for x in values]) if values else np.zeros(0)
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    span = max(hi - lo, 0.05)
    return max(0.0, lo - pad * span), min(1.005, hi + pad * span)


def _plotted(rows: Sequence[dict], curves: dict, key: str) -> tuple[list[dict], dict[str, dict], list[dict]]:
    """The rows whose curve ``key`` has a value, their styles, and the rows best ODS first (ties by name)."""
    rows = [r for r in rows if r["method"] in curves and np.any(~np.isnan(curves[r["method"]][key]))]
    styles = method_styles([r["method"] for r in rows])
    ranked = sorted(rows, key=lambda r: (-_num(r.get("ods")) if not math.isnan(_num(r.get("ods"))) else 0, r["method"]))
    return rows, styles, ranked


def pr_figure(rows: Sequence[dict], curves: dict, title: str) -> bytes | None:
    """The paper's PR plot: (a) axes fitted to the data, (b) the full 0-1 view; legend outside, by ODS."""
    rows, styles, ranked = _plotted(rows, curves, "precision")
    if not rows:
        return None
    plt = pyplot()
    with plt.rc_context(RC):
        fig, (ax_fit, ax_full) = plt.subplots(1, 2, figsize=(10.4, 5.2), dpi=DPI)
        fig.subplots_adjust(wspace=0.26, left=0.07, right=0.98, bottom=0.11, top=0.84)
        handles, labels = [], []
        for r in ranked:
            c = curves[r["method"]]
            ok = ~np.isnan(c["precision"]) & ~np.isnan(c["recall"])
            kw = _plot_kw(styles[r["method"]], int(ok.sum()))
            for ax in (ax_fit, ax_full):
                (line,) = ax.plot(c["recall"][ok], c["precision"][ok], **kw)
            handles.append(line)
            labels.append(_legend_label(r))
        pr = [curves[r["method"]] for r in rows]
        ax_fit.set_xlim(*_fitted_limits([c["recall"][~np.isnan(c["precision"])] for c in pr]))
        ax_fit.set_ylim(*_fitted_limits([c["precision"] for c in pr]))
        ax_full.set_xlim(0, 1)
        ax_full.set_ylim(0, 1.005)
        for ax, sub in ((ax_fit, "(a) axes fitted to the curves"), (ax_full, "(b) full range")):
            ax.set_xlabel("Recall")
            ax.set_ylabel("Precision")
            ax.set_title(sub)
            ax.grid(alpha=0.35)
        ax_full.legend(handles, labels, loc="center left", bbox_to_anchor=(1.04, 0.5), frameon=False,
                       handlelength=3.2, borderaxespad=0, title="method (ODS), best first", title_fontsize=10)
        fig.suptitle(title)
        data = png_bytes(fig, tight=True)
    return data


def f_threshold_figure(rows: Sequence[dict], curves: dict, title: str) -> bytes | None:
    """Image-mean F (blur positive) against the threshold; the dot marks each method's ODS."""
    rows, styles, ranked = _plotted(rows, curves, "f_mean")
    if not rows:
        return None
    plt = pyplot()
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(8.6, 5.0), dpi=DPI)
        fig.subplots_adjust(left=0.09, right=0.98, bottom=0.12, top=0.88)
        handles, labels = [], []
        t = np.arange(N_LEVELS) / (N_LEVELS - 1)
        for r in ranked:
            f = curves[r["method"]]["f_mean"]
            ok = ~np.isnan(f)
            style = styles[r["method"]]
            (line,) = ax.plot(t[: len(f)][ok], f[ok], **_plot_kw(style, int(ok.sum())))
            best = int(np.nanargmax(f))
            ax.plot([t[best]], [f[best]], "o", color=style["color"], ms=7, zorder=style["zorder"] + 1,
                    markeredgecolor="white")
            handles.append(line)
            labels.append(_legend_label(r, f", t = {t[best]:.2f}"))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.005)
        ax.set_xlabel("threshold t (a pixel is called blurred when its map value is >= t)")
        ax.set_ylabel("mean over images of F(t)")
        ax.grid(alpha=0.35)
        ax.legend(handles, labels, loc="center left", bbox_to_anchor=(1.03, 0.5), frameon=False, handlelength=3.2,
                  borderaxespad=0, title="method (ODS at its threshold t)", title_fontsize=10)
        ax.set_title(title)
        data = png_bytes(fig, tight=True)
    return data


def grid_stems(samples: Sequence, n_images: int = GRID_IMAGES) -> list[str]:
    """The stems the map grid shows: ``n_images`` spread evenly over the samples."""
    samples = list(samples)
    if len(samples) <= n_images:
        return [s.stem for s in samples]
    picks = np.linspace(0, len(samples) - 1, n_images).round().astype(int)
    return [samples[i].stem for i in dict.fromkeys(picks.tolist())]


def map_grid_pages(results: Sequence[MethodResult], samples: Sequence, stems: Sequence[str],
                   title: str) -> list[tuple[bytes, list[str]]]:
    """Pages of photo, ground truth and up to :data:`GRID_METHODS_PER_PAGE` methods' maps (white = blurred).

    One row per image of ``stems``; every page repeats the photo and the ground truth; DBM comes
    first, then the methods in the registry's (the paper's) order. Maps come
    from the results in memory; a method with no map for an image (``--maps`` with
    ``--allow-missing``) gets a panel saying so. Returns ``(png, methods on the page)`` per page.
    """
    by_stem = {s.stem: s for s in samples}
    chosen = [by_stem[t] for t in stems if t in by_stem]
    if not chosen:
        return []
    plt = pyplot()
    masks, photos, ratios = {}, {}, []
    for s in chosen:
        masks[s.stem] = s.mask()
        photo = None
        if s.image_path is not None:
            try:
                photo = s.image()
            except Exception:  # a photo the grid cannot show is not a reason to lose the run's results
                photo = None
        photos[s.stem] = photo
        h, w = masks[s.stem].shape
        ratios.append(min(max(h / w, 0.5), 1.5))
    order = {n: i for i, n in enumerate(METHODS)}
    # DBM first (beside the ground truth, as in the paper's Fig. 7), then the paper's order.
    results = sorted(results, key=lambda r: (not _is_dbm(r.name), order.get(r.name, len(order)), r.name))
    chunks = [results[i:i + GRID_METHODS_PER_PAGE] for i in range(0, len(results), GRID_METHODS_PER_PAGE)] or [[]]
    pages = []
    cell = 1.8  # inches per panel: 180 px at 100 dpi
    for k, chunk in enumerate(chunks):
        cols = 2 + len(chunk)
        with plt.rc_context(RC):
            head = 0.85
            fig = plt.figure(figsize=(0.45 + cell * cols, head + cell * sum(ratios) + 0.1 * len(chosen)), dpi=DPI)
            H = fig.get_figheight()
            gs = fig.add_gridspec(len(chosen), cols, height_ratios=ratios, left=0.45 / fig.get_figwidth(), right=0.995,
                                  top=1 - head / H, bottom=0.01, wspace=0.04, hspace=0.08)
            for i, s in enumerate(chosen):
                panels: list[tuple[str, np.ndarray | None, str]] = [
                    ("photo", photos[s.stem], "no photo"),
                    ("ground truth", masks[s.stem].astype(np.float32), ""),
                ]
                for r in chunk:
                    levels = r.maps.get(s.stem)
                    panels.append((r.name, None if levels is None else levels.astype(np.float32) / 255.0, "no map"))
                for j, (label, img, missing) in enumerate(panels):
                    ax = fig.add_subplot(gs[i, j])
                    ax.set_xticks([])
                    ax.set_yticks([])
                    for side in ax.spines.values():  # a thin frame: white (blurred) panels stand out from the page
                        side.set_edgecolor("#9a9a9a")
                        side.set_linewidth(0.8)
                    if img is not None:
                        ax.imshow(img, cmap=None if img.ndim == 3 else "gray", vmin=0, vmax=1, interpolation="antialiased")
                    else:
                        ax.set_facecolor("#eeeeee")
                        ax.text(0.5, 0.5, missing, ha="center", va="center", fontsize=11, transform=ax.transAxes)
                    if i == 0:
                        wrapped = "\n".join(textwrap.wrap(label, 17)) or label
                        ax.set_title(wrapped, fontsize=11, fontweight="bold" if _is_dbm(label) else "normal")
                    if j == 0:
                        ax.set_ylabel(s.stem, fontsize=10)
            sub = (f"page {k + 1} of {len(chunks)}: methods {k * GRID_METHODS_PER_PAGE + 1}-"
                   f"{k * GRID_METHODS_PER_PAGE + len(chunk)} of {len(results)}") if len(chunks) > 1 else ""
            fig.suptitle(title + ("\n" + sub if sub else ""), y=1 - 0.08 / H, va="top")
            pages.append((png_bytes(fig), [r.name for r in chunk]))
    return pages


def _remove_stale_pages(path: Path, n_pages: int) -> None:
    pattern = re.compile(rf"{re.escape(path.stem)}_(\d+){re.escape(path.suffix)}")
    for p in path.parent.glob(f"{path.stem}_*{path.suffix}"):
        m = pattern.fullmatch(p.name)
        if m and int(m.group(1)) > n_pages:
            p.unlink(missing_ok=True)
    if n_pages == 0:
        path.unlink(missing_ok=True)


# Provenance ------------------------------------------------------------------------------------
def _suite_version() -> str:
    try:
        from importlib.metadata import version

        v = version("deep-blur-mapping")
    except Exception:
        v = "unknown"
    repo = Path(__file__).resolve().parents[1]
    if (repo / ".git").exists():
        try:
            git = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=10"],
                                 capture_output=True, text=True, timeout=10)
            if git.returncode == 0 and git.stdout.strip():
                described = git.stdout.strip()
                v += f" (git {described.replace('-dirty', ', with uncommitted changes')})"
        except (OSError, subprocess.SubprocessError):
            pass
    return v


def _digest_of_files(entries: Iterable[tuple[str, Path]]) -> str:
    from .cache import file_digest

    h = hashlib.sha256()
    for stem, path in sorted(entries):
        h.update(f"{stem} {file_digest(path)}\n".encode())
    return h.hexdigest()[:16]


def provenance(*, run_id: str, dataset: str, split: str, samples: Sequence, methods: Sequence[str],
               command: str | Sequence[str] | None, dataset_path: Path | None, device: str | None = None) -> dict:
    """One row of ``runs.csv``: how this run was made (``device``: where torch ran, for its GPU's name)."""
    if command is not None and not isinstance(command, str):
        command = " ".join(shlex.quote(str(a)) for a in command)
    masks = [(s.stem, s.mask_path) for s in samples if getattr(s, "mask_path", None) is not None]
    photos = [(s.stem, s.image_path) for s in samples if getattr(s, "image_path", None) is not None]
    try:
        mask_digest = f"{_digest_of_files(masks)} ({len(masks)} masks)" if masks else ""
        photo_digest = f"{_digest_of_files(photos)} ({len(photos)} photos)" if photos else "no photos read"
    except OSError as exc:  # a file gone since it was read: say so rather than lose the results
        mask_digest = photo_digest = f"unavailable ({exc.strerror or exc})"
    return {
        "run": run_id,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "command": command or "(called from Python: evaluation.report.write_outputs)",
        "suite_version": _suite_version(),
        "dataset": dataset,
        "split": split,
        "dataset_path": str(Path(dataset_path).resolve()) if dataset_path else "",
        "n_images": len(samples),
        "masks_sha256": mask_digest,
        "photos_sha256": photo_digest,
        "methods": ", ".join(methods),
        **machine(device),
    }


def _command_for_markdown(command: str) -> str:
    """The command without its ``--out`` (the report's folder) and with split aliases spelled canonically.

    So that ``report.md`` reads the same for runs that differ only in where they wrote and how
    they spelled the split (``--split D_e`` = ``--split even``); ``runs.csv`` and ``index.html``
    keep the command exactly as typed.
    """
    from baselines.datasets import canonical_split

    try:
        words = shlex.split(command)
    except ValueError:
        return command
    out, skip = [], False
    for i, w in enumerate(words):
        if skip:
            skip = False
            continue
        if w == "--out":
            skip = True
            continue
        if w.startswith("--out="):
            continue
        if i > 0 and words[i - 1] in ("--split", "--train-split"):
            w = canonical_split(w)
        elif w.startswith(("--split=", "--train-split=")):
            key, _, value = w.partition("=")
            w = f"{key}={canonical_split(value)}"
        out.append(w)
    return " ".join(shlex.quote(w) for w in out)


def _run_facts(run: dict, shown: Sequence[str] = ()) -> Facts:
    """A run's record: exact in the HTML; in markdown with the day only and the command as
    :func:`_command_for_markdown` writes it, so the markdown report of an unchanged result is unchanged."""
    common = [
        ("suite version", run.get("suite_version", "")),
        ("dataset", f"{run.get('dataset', '')}, split {run.get('split', '')}, {run.get('n_images', '')} images"),
        ("dataset path", run.get("dataset_path", "") or "(not recorded)"),
        ("masks checksum", run.get("masks_sha256", "")),
        ("photos checksum", run.get("photos_sha256", "")),
        ("methods", run.get("methods", "")),
        ("its rows in this report", ", ".join(shown) or "none"),
        ("machine", f"{run.get('cpu', '')}; {run.get('cores', '')} cores, {run.get('threads', '')} threads; "
                    f"{run.get('os', '')}"),
        ("versions", f"Python {run.get('python', '')}, numpy {run.get('numpy', '')}, torch {run.get('torch', '')}, "
                     f"OpenCV {run.get('opencv', '')}"),
    ]
    day = run.get("date", "")[:10]
    md = [("date", day), ("command", _command_for_markdown(run.get("command", "")))] + common
    return Facts([("date", run.get("date", "")), ("command", run.get("command", ""))] + common,
                 title=f"Run {run.get('run', '')}", md_items=md,
                 md_title=f"Run of {day}: {run.get('dataset', '')}, split {run.get('split', '')}")


# The report ------------------------------------------------------------------------------------
METRIC_DEFINITIONS = [
    "ODS: the maximum over the 256 thresholds t of the mean over images of the per-image F(t) "
    "(F = 2PR / (P + R), blur positive, a pixel predicted blurred when its 8-bit level is >= t).",
    "OIS: the mean over images of each image's best F(t).",
    "AP: the mean over the 256 thresholds of the precision of all test pixels concatenated.",
    "PR curve: precision and recall of all test pixels concatenated, one point per threshold (the paper's "
    "Figs. 4, 6, 9). These are the paper's conventions; they reproduce its HiFST numbers from the authors' maps.",
    "Secondary (not the paper's): ODS from pooled counts (BSDS); AP as the area under the PR curve; max F "
    "with beta^2 = 0.3 (blur positive); adaptive F with beta^2 = 0.3 of each image's minority class by its "
    "ground truth (blurred when at most half the image is blurred, else sharp, scored by 1 - map), at twice "
    "that class's mean score, the salient-object rule, which assumes the scored class is a minority; MAE "
    "between the map and the binary mask.",
    "Other fields' metric profiles (python -m evaluation.run --metrics paper,"
    + ",".join(n for n in PROFILES if n != "paper") + "): "
    + "; ".join(f"{n}, {p.title}" for n, p in PROFILES.items() if n != "paper")
    + ". Each computed profile has its own section stating its source, positive class (blur, as everywhere in "
    "this report), normalisation, binarisation and resizing.",
]


def _group_blocks(group: tuple[str, str], rows: list[dict], per_image: list[dict], curves: dict,
                  current: bool) -> tuple[list, dict[str, bytes]]:
    """The blocks of one (dataset, split) and the PNGs drawn for it (``pr_curves``, ``f_threshold``)."""
    dataset, split = group
    n = max((int(_num(r.get("n_images"))) for r in rows if not math.isnan(_num(r.get("n_images")))), default=0)
    title = f"{dataset}, split {split}, {n} images"
    anchor = slug(title)
    blocks: list = [Heading(title, 2, anchor)]
    table_id = next((r.get("paper_table") for r in rows if r.get("paper_table")), "")
    paper = PAPER_TABLES.get(table_id)
    main_rows = [r for r in rows if not _ablation_only(r["method"])]
    if main_rows:
        if paper:
            blocks.append(Heading(f"Results: the paper's {paper[0]}", 3, f"{anchor}-main"))
            missing = [row for row in paper[1] if not any(paper_row_for(r["method"]) == row for r in main_rows)]
            caption = ("Ours, the paper's, and ours minus the paper's (positive: ours higher). "
                       + (f"Paper rows not evaluated here: {', '.join(missing)}." if missing else ""))
            blocks.append(Para(f"Compared with the paper's {paper[0]}."))
        else:
            blocks.append(Heading("Results", 3, f"{anchor}-main"))
            caption = ("No paper column: the paper's Tables III and V are for the CUHK benchmark's halves D_e "
                       f"and D_o (1,000 photos); this is {dataset}, split {split}.")
        blocks.append(_comparison_table(_paper_order(main_rows, paper[1] if paper else None),
                                        paper[1] if paper else None, paper_row_for, caption))
    for tid, (ttitle, tvalues, mapping) in ABLATION_TABLES.items():
        members = [r for r in rows if ablation_row_for(tid, r["method"]) is not None]
        if not any(not _is_dbm(r["method"]) for r in members):
            continue  # DBM alone is in the main table
        order = list(tvalues)
        members.sort(key=lambda r: (order.index(ablation_row_for(tid, r["method"])), r["method"]))
        with_paper = table_id == ABLATION_PAPER_TABLE
        blocks.append(Heading(f"The paper's {ttitle.split(' (')[0]}: {ttitle.split('(')[1].rstrip(')')}", 3,
                              f"{anchor}-table-{tid.lower()}"))
        caption = ("Ours, the paper's, and ours minus the paper's." if with_paper else
                   f"No paper column: the paper's {ttitle.split(' (')[0]} is for CUHK D_e (trained on D_o); "
                   f"this is {dataset}, split {split}.")
        missing = [row for row in tvalues if not any(ablation_row_for(tid, r["method"]) == row for r in members)]
        if missing:
            caption += f" Paper rows not evaluated here: {', '.join(missing)}."
        blocks.append(_comparison_table(members, tvalues if with_paper else None,
                                        lambda name, t=tid: ablation_row_for(t, name), caption))
    blocks += [Heading("Secondary conventions", 3, f"{anchor}-secondary"), _secondary_table(rows)]
    blocks += _profile_blocks(rows, anchor)
    blocks += _published_blocks(rows, n, anchor)
    blocks += [Heading("Timings", 3, f"{anchor}-timings"),
               _timing_table(rows, [p for p in per_image if (p["dataset"], p["split"]) == group])]
    pngs: dict[str, bytes] = {}
    pr = pr_figure(rows, curves, f"Precision-recall, all test pixels concatenated: {dataset}, split {split}")
    if pr is not None:
        pngs["pr_curves"] = pr
        blocks += [Heading("Precision-recall curves", 3, f"{anchor}-pr"),
                   Figure(pr, "Precision against recall over all test pixels concatenated, one point per threshold, "
                          "as in the paper's Figs. 4, 6 and 9: (a) axes fitted to the curves, (b) the full 0-1 square. "
                          "Each method has its own colour and line style; DBM is black, thick and on top.",
                          f"precision-recall curves, {title}", "pr_curves.png" if current else None)]
    ft = f_threshold_figure(rows, curves, f"Mean F over images against threshold: {dataset}, split {split}")
    if ft is not None:
        pngs["f_threshold"] = ft
        blocks += [Heading("F-measure against threshold", 3, f"{anchor}-f"),
                   Figure(ft, "The mean over images of the per-image F at each threshold: its maximum (dot) is the "
                          "ODS, and where it lies shows how each method's map values are calibrated.",
                          f"F against threshold, {title}", "f_threshold.png" if current else None)]
    if (pr is not None or ft is not None) and not current:
        blocks.append(Para("These figures are embedded in index.html only (the PNG files hold the last run's "
                           "dataset and split)."))
    notes = []
    for r in rows:
        for note in (r.get("notes") or "").split(" || "):
            if note and note not in notes:
                notes.append(note)
    if notes:
        blocks += [Heading("Notes", 3, f"{anchor}-notes"), Bullets(notes)]
    return blocks, pngs


def mixed_data(rows: Sequence[dict], runs: Sequence[dict]) -> str:
    """A warning when the rows of one (dataset, split) were scored on different masks, else "".

    Rows are grouped by the dataset folder's name, so two folders of one name (or runs with
    different ``--limit``) would share a table; the masks' checksum in ``runs.csv`` tells them
    apart (a folder moved or copied elsewhere keeps its checksum). Rows without a run record or
    checksum are not judged.
    """
    by_id = {r.get("run"): r for r in runs}
    methods_of: dict[str, list[str]] = {}
    for r in rows:
        digest = by_id.get(r.get("run"), {}).get("masks_sha256", "")
        if digest and not digest.startswith("unavailable"):
            methods_of.setdefault(digest, []).append(r["method"])
    if len(methods_of) < 2:
        return ""
    dataset, split = rows[0]["dataset"], rows[0]["split"]
    parts = "; ".join(f"{', '.join(m)} on masks {d}" for d, m in methods_of.items())
    return (f"not one dataset: the rows of {dataset}, split {split} were scored on different masks ({parts}); "
            "another folder of the same name or another --limit was evaluated into this --out: use one --out per "
            "dataset, or evaluate all the methods again with one command")


def _build(out: Path, merged: list[dict], per_image: list[dict], curve_rows: list[dict], runs: list[dict],
           group: tuple[str, str], grid: list[tuple[str, bytes, list[str]]], grid_title: str) -> tuple[list, dict]:
    blocks: list = []
    current_pngs: dict[str, bytes] = {}
    for g, rows in _groups(merged).items():
        b, pngs = _group_blocks(g, rows, per_image, _curves_of(curve_rows, g), g == group)
        warning = mixed_data(rows, runs)
        if warning:
            b.insert(1, Para(warning[0].upper() + warning[1:] + ".", note=True))
        blocks += b
        if g == group:
            current_pngs = pngs
    if grid:
        blocks.append(Heading("Blur maps", 2, "blur-maps"))
        blocks.append(Para(f"{grid_title}: photo, ground truth (white = blurred) and each method's map of this run "
                           "(white = blurred, 8-bit levels shown linearly), in the style of the paper's Figs. 5, 7 "
                           "and 8. Methods evaluated by earlier runs into this folder are not shown."))
        for k, (name, png, methods) in enumerate(grid):
            blocks.append(Figure(png, f"Page {k + 1} of {len(grid)}: {', '.join(methods) or 'no method'}.",
                                 f"blur maps, page {k + 1}", name))
    fig2 = out / "fig2.png"
    if fig2.is_file():
        try:
            data = fig2.read_bytes()
        except OSError:
            data = b""
        if data:
            blocks += [Heading("Fig. 2: local statistics of blurred and sharp regions", 2, "fig-2"),
                       Figure(data, "Written by python -m evaluation.fig2 into this folder (not by the runner), "
                              "as of " + _dt.datetime.fromtimestamp(fig2.stat().st_mtime, _dt.timezone.utc)
                              .strftime("%Y-%m-%d %H:%M UTC") + "; fig2.csv holds its curves.",
                              "Fig. 2 statistics", "fig2.png")]
    blocks += [Heading("Metric definitions", 2, "metric-definitions"), Bullets(METRIC_DEFINITIONS)]
    blocks.append(Heading("How this was made", 2, "how-this-was-made"))
    used = {r.get("run", "") for r in merged}
    by_id = {r["run"]: r for r in runs}
    listed = [by_id[i] for i in sorted(used - {""}, key=lambda i: by_id.get(i, {}).get("date", ""), reverse=True)
              if i in by_id]
    blocks.append(Para("Each run whose rows are in metrics.csv, newest first. runs.csv and index.html keep each "
                       "command exactly as typed, with the time; report.md shows the day, and the command without "
                       "its --out (this folder) and with split aliases spelled canonically (D_e = even). A checksum is the "
                       "SHA-256 (first 16 hex digits) of the sorted lines 'stem, first 16 hex digits of the file's SHA-256' "
                       "of the evaluated masks or photos: equal checksums, equal data."))
    for run in listed:
        blocks.append(_run_facts(run, [r["method"] for r in merged if r.get("run") == run["run"]]))
    unknown = sorted({f"{r['method']} ({r['dataset']}, {r['split']})" for r in merged
                      if not r.get("run") or r.get("run") not in by_id})
    if unknown:
        blocks.append(Para("No record of how these rows were made (written by an earlier version of the suite): "
                           + ", ".join(unknown) + ".", note=True))
    return blocks, current_pngs


def write_outputs(
    out: Path,
    results: Sequence[MethodResult],
    *,
    dataset: str,
    split: str,
    paper_table: str | None,
    samples: Sequence,
    benchmark: str = "",
    grid: Sequence[str] = (),
    notes: Sequence[str] = (),
    command: str | Sequence[str] | None = None,
    dataset_path: Path | None = None,
    device: str | None = None,
) -> str:
    """Merge this run's results into ``out`` and rebuild the reports; return this run's markdown table.

    The table is followed by a ``warning:`` line when the rows of this run's dataset and split in
    ``out`` were scored on different masks (:func:`mixed_data`); the reports say so too.

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
    benchmark : str
        The dataset's name in :data:`baselines.datasets.DATASETS` ("" for the demo): the published
        numbers of :mod:`evaluation.published` for it are shown beside ours.
    samples : sequence of Sample
        The evaluated images.
    grid : sequence of str
        Stems shown in the map grid.
    notes : sequence of str
        Notes on this run, kept with its rows.
    command : str or sequence of str, optional
        The command line of the run, for "How this was made".
    dataset_path : Path, optional
        The dataset folder (its path and the checksums of its masks and photos are recorded).
    device : str, optional
        The torch device the run's torch methods used (a CUDA device's GPU is recorded).
    """
    from filelock import FileLock

    out.mkdir(parents=True, exist_ok=True)
    run_id = f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')}-{os.getpid()}"
    note_text = " || ".join(notes)
    rows = []
    for r in results:
        row = {"dataset": dataset, "split": split, "method": r.name, **r.scores.as_row(),
               "sec_per_image": r.sec_per_image, "trained_on": r.trained_on or "", "source": r.source,
               "paper_table": paper_table or "", "notes": note_text, "run": run_id, "benchmark": benchmark}
        rows.append(row)
    per_image = [
        {"dataset": dataset, "split": split, "method": r.name, **row, "seconds": r.seconds.get(row["stem"], "")}
        for r in results for row in r.scores.per_image
    ]
    curves = []
    for r in results:
        f_mean = r.scores.f_mean if r.scores.f_mean is not None else np.full(len(r.scores.precision), np.nan)
        curves += [{"dataset": dataset, "split": split, "method": r.name, "threshold": t,
                    "precision": r.scores.precision[t], "recall": r.scores.recall[t], "f_mean": f_mean[t]}
                   for t in range(len(r.scores.precision))]
    run_row = provenance(run_id=run_id, dataset=dataset, split=split, samples=samples,
                         methods=[r.name for r in results], command=command, dataset_path=dataset_path, device=device)
    group = (dataset, split)
    n = max((r.scores.n_images for r in results), default=0)
    grid_title = f"Blur maps (white = blurred), {dataset}, split {split}, {n} images"
    pages = map_grid_pages(results, samples, grid, grid_title)  # this run's maps: drawn before the lock
    with FileLock(str(out / ".lock"), timeout=LOCK_TIMEOUT_S):
        # Everything is merged and rendered in memory first, then written, metrics.csv last: a failure
        # on the way leaves the previous, consistent set of files.
        merged = _merge_rows(out / "metrics.csv", rows, METRIC_FIELDS)
        all_per_image = _merge_rows(out / "per_image.csv", per_image, PER_IMAGE_FIELDS)
        all_curves = _merge_rows(out / "pr_curves.csv", curves, CURVE_FIELDS)
        used = {r.get("run", "") for r in merged}
        runs = [r for r in _read_csv(out / "runs.csv") if r.get("run") in used and r.get("run") != run_id]
        if rows:
            runs.append(run_row)
        grid_files = [("map_grid.png" if k == 0 else f"map_grid_{k + 1}.png", png, methods)
                      for k, (png, methods) in enumerate(pages)]
        blocks, current = _build(out, merged, all_per_image, all_curves, runs, group, grid_files, grid_title)
        title = "Blur mapping results"
        files = {**{out / name: png for name, png, _ in grid_files},
                 **{out / f"{stem}.png": data for stem, data in current.items()},
                 out / "report.md": render_markdown(blocks, title).encode("utf-8"),
                 out / "index.html": render_html(blocks, title).encode("utf-8"),
                 out / "per_image.csv": _csv_bytes(all_per_image, PER_IMAGE_FIELDS),
                 out / "pr_curves.csv": _csv_bytes(all_curves, CURVE_FIELDS),
                 out / "runs.csv": _csv_bytes(runs, RUN_FIELDS),
                 out / "metrics.csv": _csv_bytes(merged, METRIC_FIELDS)}  # last: the rows the others show
        for path, data in files.items():
            _atomic_write(path, data)
        _remove_stale_pages(out / "map_grid.png", len(pages))
        group_rows = _groups(merged).get(group, [])
    table = markdown_table([r for r in group_rows if r["method"] in {x.name for x in results}])
    warning = mixed_data(group_rows, runs)
    return f"{table}\n\nwarning: {warning}" if warning else table
