"""The one explicit registry of blur detectors: name -> :class:`MethodSpec`.

Every method the runner can evaluate is listed in :data:`METHODS`, a plain dict. Specs name
their detector class as ``"module:Class"`` and are imported only when used, so torch-based
methods cost nothing until asked for and ``baselines`` never needs torch.

``--methods all`` expands to every spec with ``in_all=True`` (plus external ``--maps``).
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["METHODS", "MethodSpec", "UnknownMethodError", "get_detector", "load_class", "resolve_methods"]


@dataclass(frozen=True)
class MethodSpec:
    """How to build one registered detector.

    Attributes
    ----------
    target : str
        ``"package.module:ClassName"`` of a :class:`baselines.interface.Detector` subclass.
    summary : str
        One line for ``--help`` and reports.
    paper_row : str, optional
        The row label of this method in the paper's Tables III and V (``"HiFST"``), so the
        report can print the paper's numbers beside ours.
    in_all : bool
        Whether ``--methods all`` includes it (False for variants that need user weights).
    needs_torch : bool
        Whether the detector imports torch (informational; imports are lazy anyway).
    """

    target: str
    summary: str
    paper_row: str | None = None
    in_all: bool = True
    needs_torch: bool = False


#: name -> spec. Keep one line per method, alphabetical within each group.
METHODS: dict[str, MethodSpec] = {
    # Simple reference detector proving the interface ------------------------------------------
    "gradient_energy": MethodSpec("baselines.gradient_energy:GradientEnergy", "log local gradient energy (not a paper row)"),
}


class UnknownMethodError(KeyError):
    """An unknown method name; the message lists the known ones and a close match."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def _unknown(name: str, known: Iterable[str]) -> UnknownMethodError:
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownMethodError(f"unknown method {name!r}.{hint} Known methods: {', '.join(known)}")


def load_class(name: str) -> type:
    """Import and return the detector class registered as ``name``."""
    try:
        spec = METHODS[name]
    except KeyError:
        raise _unknown(name, METHODS) from None
    module_name, _, attr = spec.target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def get_detector(name: str, **settings: Any):
    """Build the registered detector ``name`` with optional setting overrides."""
    return load_class(name)(**settings)


def resolve_methods(text: str | Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """Expand a ``--methods`` value into a list of names.

    Parameters
    ----------
    text : str or iterable of str
        ``"all"``, a comma-separated list, or a list of names (``"all"`` may appear in it).
    extra : iterable of str
        Further valid names, e.g. the external ``--maps`` methods; ``all`` includes them.

    Raises
    ------
    UnknownMethodError
        For a name that is neither registered nor in ``extra``.
    """
    extra = list(extra)
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    items = [t for t in items if t]
    known = set(METHODS) | set(extra)
    out: list[str] = []
    for item in items:
        if item == "all":
            names = [n for n, s in METHODS.items() if s.in_all] + extra
        elif item in known:
            names = [item]
        else:
            raise _unknown(item, known | {"all"})
        out.extend(n for n in names if n not in out)
    if not out:
        raise UnknownMethodError("no methods given; use --methods all or a comma-separated list")
    return out
