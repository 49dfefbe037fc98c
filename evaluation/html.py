"""A report as a list of blocks, rendered to one self-contained HTML page (and, by :mod:`evaluation.report`, to markdown).

The page needs nothing but itself: styles are inline, there is no script, and every figure is a
PNG embedded as a ``data:`` URL, so ``index.html`` reads the same offline, attached to an email
or moved out of its folder. Figures keep their natural size (one image pixel per CSS pixel, so
text drawn at 10 pt on a 100-dpi figure reads at 10 pt or more at 100% zoom) and shrink only
when the window is narrower than the figure.
"""

from __future__ import annotations

import base64
import html
import re
import struct
from dataclasses import dataclass, field
from typing import Sequence

__all__ = ["Heading", "Para", "Bullets", "Column", "Table", "Figure", "Code", "Facts", "render_html", "slug"]


@dataclass
class Heading:
    text: str
    level: int = 2
    anchor: str | None = None


@dataclass
class Para:
    text: str
    note: bool = False  # drawn as a highlighted note


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Column:
    """A table column: ``name`` under an optional ``group`` header; ``md`` is its markdown title."""

    name: str
    group: str = ""
    md: str | None = None
    align: str = "r"  # "l" or "r"

    @property
    def md_title(self) -> str:
        if self.md is not None:
            return self.md
        return f"{self.group} {self.name}".strip()


@dataclass
class Table:
    columns: list[Column]
    rows: list[list[str]]
    caption: str | None = None
    #: indices of rows drawn in bold (DBM)
    strong: set[int] = field(default_factory=set)
    #: columns whose signed values are coloured (differences)
    signed: set[int] = field(default_factory=set)


@dataclass
class Figure:
    """A PNG figure: ``png`` is embedded in the HTML; ``name`` is its file in the output folder, if any."""

    png: bytes
    caption: str
    alt: str
    name: str | None = None
    anchor: str | None = None


@dataclass
class Code:
    text: str


@dataclass
class Facts:
    """Key-value pairs (a definition list)."""

    items: list[tuple[str, str]]
    title: str | None = None
    #: what the markdown report shows instead (None: the same)
    md_items: list[tuple[str, str]] | None = None
    md_title: str | None = None


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; font-size: 16px;
       line-height: 1.45; color: #1b1b1b; background: #fff; margin: 0; }
main { max-width: 1320px; margin: 0 auto; padding: 1.2em 1.5em 4em; }
h1 { font-size: 1.8em; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.45em; margin: 2em 0 0.5em; padding-top: 0.4em; border-top: 2px solid #d0d7de; }
h3 { font-size: 1.15em; margin: 1.5em 0 0.4em; }
p.note { background: #fff8e1; border-left: 4px solid #b58900; padding: 0.4em 0.8em; }
nav ul { columns: 2; margin: 0.3em 0 1em; }
table { border-collapse: collapse; margin: 0.4em 0 0.3em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 0.25em 0.6em; }
thead th { background: #f3f5f7; }
td.r, th.r { text-align: right; }
td.l, th.l { text-align: left; }
tr.strong td { font-weight: 600; }
td.pos { color: #0a5fa4; }
td.neg { color: #b34700; }
caption { caption-side: bottom; text-align: left; font-size: 0.9em; color: #444; padding-top: 0.3em; max-width: 60em; }
figure { margin: 0.8em 0 1.6em; }
figure img { max-width: 100%; height: auto; border: 1px solid #e5e8eb; }
figcaption { font-size: 0.92em; color: #333; max-width: 60em; margin-top: 0.3em; }
pre { background: #f6f8fa; padding: 0.6em 0.8em; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; margin: 0.4em 0 1em; }
dt { font-weight: 600; }
dd { margin: 0; word-break: break-word; }
"""


def slug(text: str) -> str:
    """An HTML id from a heading: lower-case letters, digits and hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def png_size(png: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG header, or None when ``png`` is not a PNG."""
    if len(png) >= 24 and png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR":
        return struct.unpack(">II", png[16:24])
    return None


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def _table(t: Table) -> str:
    out = ["<table>"]
    if t.caption:
        out.append(f"<caption>{_e(t.caption)}</caption>")
    out.append("<thead>")
    grouped = any(c.group for c in t.columns)
    if grouped:
        first, second = [], []
        i = 0
        while i < len(t.columns):
            c = t.columns[i]
            if not c.group:
                first.append(f'<th rowspan="2" class="{c.align}" scope="col">{_e(c.name)}</th>')
                i += 1
                continue
            j = i
            while j < len(t.columns) and t.columns[j].group == c.group:
                second.append(f'<th class="{t.columns[j].align}" scope="col">{_e(t.columns[j].name)}</th>')
                j += 1
            first.append(f'<th colspan="{j - i}" scope="colgroup">{_e(c.group)}</th>')
            i = j
        out.append("<tr>" + "".join(first) + "</tr>")
        out.append("<tr>" + "".join(second) + "</tr>")
    else:
        out.append("<tr>" + "".join(f'<th class="{c.align}" scope="col">{_e(c.name)}</th>' for c in t.columns) + "</tr>")
    out.append("</thead><tbody>")
    for k, row in enumerate(t.rows):
        cells = []
        for j, (c, v) in enumerate(zip(t.columns, row)):
            cls = c.align
            if j in t.signed and v:
                cls += " pos" if v.startswith("+") else " neg" if v.startswith(("-", "\u2212")) else ""
            cells.append(f'<td class="{cls}">{_e(v)}</td>')
        out.append(("<tr class='strong'>" if k in t.strong else "<tr>") + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _figure(f: Figure) -> str:
    size = png_size(f.png)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    data = base64.b64encode(f.png).decode("ascii")
    ident = f' id="{_e(f.anchor)}"' if f.anchor else ""
    return (f'<figure{ident}><img src="data:image/png;base64,{data}" alt="{_e(f.alt)}"{dims}>'
            f"<figcaption>{_e(f.caption)}</figcaption></figure>")


def render_html(blocks: Sequence, title: str) -> str:
    """The whole page: a title, a table of contents of the level-2 headings, then the blocks."""
    body: list[str] = []
    toc: list[str] = []
    used: set[str] = set()
    for b in blocks:
        if isinstance(b, Heading):
            anchor = b.anchor or slug(b.text)
            base, n = anchor, 2
            while anchor in used:
                anchor, n = f"{base}-{n}", n + 1
            used.add(anchor)
            level = min(max(b.level, 2), 4)
            body.append(f'<h{level} id="{_e(anchor)}">{_e(b.text)}</h{level}>')
            if level == 2:
                toc.append(f'<li><a href="#{_e(anchor)}">{_e(b.text)}</a></li>')
        elif isinstance(b, Para):
            body.append(("<p class='note'>" if b.note else "<p>") + f"{_e(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_e(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            body.append(_table(b))
        elif isinstance(b, Figure):
            body.append(_figure(b))
        elif isinstance(b, Code):
            body.append(f"<pre><code>{_e(b.text)}</code></pre>")
        elif isinstance(b, Facts):
            if b.title:
                body.append(f"<h4>{_e(b.title)}</h4>")
            body.append("<dl>" + "".join(
                f"<dt>{_e(k)}</dt><dd>{f'<code>{_e(v)}</code>' if k == 'command' else _e(v)}</dd>" for k, v in b.items)
                + "</dl>")
        else:  # pragma: no cover - a programming error
            raise TypeError(f"unknown report block {b!r}")
    nav = f'<nav aria-label="Contents"><ul>{"".join(toc)}</ul></nav>' if toc else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_e(title)}</h1>\n{nav}\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )
