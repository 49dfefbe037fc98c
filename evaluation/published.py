"""Published numbers of the defocus-blur-detection field, with their sources, beside ours.

The one table is ``evaluation/data/published.csv``: one published number per row, with the
benchmark (a name of :data:`baselines.datasets.DATASETS`), the split (a name of
:data:`baselines.datasets.NAMED_SPLITS`) and its number of photos, the method (the name its
published maps take in ``--maps NAME=DIR``), the metric, the value, how it was computed
(``protocol``) and where it was published (``source``). The metric is a column of
``metrics.csv`` where the source's definition is the one that column computes (e.g. ``mae``: per
image mean of ``|map - mask|`` with the map in ``[0, 1]``, averaged over images; unchanged when map
and mask are both inverted, so the field's white = in focus scoring gives the same number), and
``other:`` followed by the source's definition where no profile of the suite computes it.

Only numbers written as text in the source are kept (a repository's README or saved notebook
output, a web page), never numbers read off a picture of a table; the D-DFFNet repository's
comparison of 14 methods is an image, so only D-DFFNet's own numbers, from a leaderboard page
that lists them, are here.

The report shows the rows whose benchmark, split and number of photos match a tested group
(:func:`published_for`), beside our number for a method of the same name when one was evaluated.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .settings import method_of_label

__all__ = ["OTHER_PREFIX", "PUBLISHED_CSV", "Published", "published_for", "published_rows"]

#: The data file.
PUBLISHED_CSV = Path(__file__).with_name("data") / "published.csv"
#: Prefix of a metric that no profile computes (the rest is the source's definition).
OTHER_PREFIX = "other:"


@dataclass(frozen=True)
class Published:
    """One published number (a row of :data:`PUBLISHED_CSV`)."""

    benchmark: str
    split: str
    n_images: int
    method: str
    metric: str
    value: float
    protocol: str
    source: str

    @property
    def comparable(self) -> bool:
        """Whether a column of ``metrics.csv`` computes this metric."""
        return not self.metric.startswith(OTHER_PREFIX)

    def matches(self, method: str) -> bool:
        """Whether our result row ``method`` is this method (``dd``, ``dd_authors``, ``dd[...]``)."""
        base = method_of_label(method)
        return base == self.method or base.startswith(self.method + "_")


@lru_cache(maxsize=1)
def published_rows() -> tuple[Published, ...]:
    """Every row of :data:`PUBLISHED_CSV`, in file order."""
    with open(PUBLISHED_CSV, newline="", encoding="utf-8") as f:
        return tuple(Published(r["benchmark"], r["split"], int(r["n_images"]), r["method"], r["metric"],
                               float(r["value"]), r["protocol"], r["source"]) for r in csv.DictReader(f))


def published_for(benchmark: str, split: str, n_images: int) -> list[Published]:
    """The published numbers for a tested group: same benchmark, canonical split and number of photos."""
    return [p for p in published_rows() if (p.benchmark, p.split, p.n_images) == (benchmark, split, int(n_images))]
