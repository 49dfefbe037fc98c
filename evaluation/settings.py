"""Method settings from the command line: ``--set METHOD.NAME=VALUE`` (``blur-map``, the runner, the applications).

Every registered detector (:data:`evaluation.registry.METHODS`) takes its settings as keyword
arguments of its class's ``__init__``; this module is the one place that turns command-line text
into those keyword arguments. The type of each setting is read from the signature (its annotation,
else its default), so nothing is listed twice:

=====================  ===============================================  ==========================
annotation / default   accepted text                                    example
=====================  ===============================================  ==========================
``int``                a whole number                                   ``hifst.stride=2``
``float``              a finite number                                  ``zhuo11.lam=0.002``
``bool``               ``true``/``false`` (also ``1/0``, ``yes/no``,    ``tang16.refine=false``
                       ``on/off``)
``str``                the text as given                                ``zhuo11.canny=octave``
``tuple`` / sequence   comma-separated items of the element type        ``hifst.scales=7,15,31``
``X | None``           ``none``, or a value of type ``X``               ``dbm.size=none``
=====================  ===============================================  ==========================

Only the *type* is checked here; the range (``stride >= 1``, a known ``canny`` variant ...) is
checked by the method itself when :func:`evaluation.registry.build` constructs it, with a one-line
:class:`~baselines.interface.InputError` naming the setting. Settings typed here become part of
the detector's :attr:`~baselines.interface.Detector.settings` and therefore of its cache key:
a float setting is always a ``float`` (``sigma=1`` and ``sigma=1.0`` give the same key), so two
runs with different values never share cached maps and two spellings of one value always do.

``weights`` and ``device`` are not settings here: they have their own options (``--weights``,
``--device``), which the commands check against the method (:data:`OWN_OPTIONS`).

References
----------
K. Ma, H. Fu, T. Liu, Z. Wang, D. Tao, "Deep Blur Mapping: Exploiting High-Level Semantics by Deep
Neural Networks", IEEE TIP 27(10), 2018 (the methods of its Table III are the registered detectors).
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from baselines.interface import InputError

__all__ = ["OWN_OPTIONS", "Setting", "check_selected", "describe_settings", "method_of_label", "method_settings",
           "result_label", "parse_set_options", "parse_value"]

#: Keyword arguments of some detectors that have their own command-line option instead of ``--set``.
OWN_OPTIONS = {"weights": "--weights", "device": "--device"}

_SCALARS = ("int", "float", "bool", "str")
_SEQUENCES = ("tuple", "Tuple", "list", "List", "Sequence", "Iterable", "Collection")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
_EXPECTED = {
    "int": "a whole number",
    "float": "a finite number",
    "bool": "true or false",
    "str": "text",
}


@dataclass(frozen=True)
class Setting:
    """One setting of a registered method, as read from its class's ``__init__`` signature.

    Attributes
    ----------
    name : str
        The keyword argument.
    kind : str
        ``int``, ``float``, ``bool``, ``str`` or ``any`` (unknown type: the text is passed on).
    default : object
        The default value (``inspect.Parameter.empty`` when there is none).
    optional : bool
        Whether ``None`` is accepted (annotation ``X | None`` or ``Optional[X]``, or default None).
    sequence : bool
        Whether the value is a sequence of ``kind`` items (passed as a tuple).
    """

    name: str
    kind: str
    default: Any
    optional: bool = False
    sequence: bool = False

    @property
    def expected(self) -> str:
        """What text the setting accepts, in words (for error messages and listings)."""
        word = _EXPECTED.get(self.kind, "a value")
        text = f"comma-separated items, each {word}" if self.sequence else word
        return f"{text}, or none" if self.optional else text

    @property
    def type_name(self) -> str:
        """The type as written in Python (``int``, ``tuple[int, ...]``, ``float | None``)."""
        base = f"tuple[{self.kind}, ...]" if self.sequence else self.kind
        return f"{base} | None" if self.optional else base

    def show_default(self) -> str:
        """The default as ``--set`` would spell it (``7,15,31,63`` for a tuple)."""
        if self.default is inspect.Parameter.empty:
            return "(required)"
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        if isinstance(self.default, (tuple, list)):
            return ",".join(str(v) for v in self.default)
        return str(self.default)


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` outside brackets (``tuple[int, ...] | None`` -> two parts)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation)


def _kind_of_value(value: Any) -> tuple[str, bool]:
    """(kind, sequence) inferred from a default value."""
    if isinstance(value, bool):
        return "bool", False
    if isinstance(value, int):
        return "int", False
    if isinstance(value, float):
        return "float", False
    if isinstance(value, str):
        return "str", False
    if isinstance(value, (tuple, list)) and value:
        kind, nested = _kind_of_value(value[0])
        return (kind if not nested else "any"), True
    return "any", False


def _read_parameter(param: inspect.Parameter) -> Setting:
    """The :class:`Setting` of one ``__init__`` parameter (annotation first, then the default)."""
    text = re.sub(r"\btyping\.", "", _annotation_text(param.annotation)).replace(" ", "")
    optional = param.default is None
    match = re.fullmatch(r"Optional\[(.*)\]", text)
    if match:
        text, optional = match.group(1), True
    parts = [p for p in _split_top_level(text, "|") if p]
    if "None" in parts:
        optional = True
        parts = [p for p in parts if p != "None"]
    kind, sequence = "any", False
    if len(parts) == 1:
        part = parts[0]
        outer = re.fullmatch(r"(\w+)\[(.*)\]", part)
        if part in _SCALARS:
            kind = part
        elif outer and outer.group(1) in _SEQUENCES:
            items = [p for p in _split_top_level(outer.group(2), ",") if p != "..."]
            if items and all(i == items[0] for i in items) and items[0] in _SCALARS:
                kind, sequence = items[0], True
        elif part in _SEQUENCES:
            sequence = True
    if kind == "any" and param.default not in (None, inspect.Parameter.empty):
        kind, seq_default = _kind_of_value(param.default)
        sequence = sequence or seq_default
    return Setting(param.name, kind, param.default, optional, sequence)


def method_settings(method: str) -> dict[str, Setting]:
    """The settings ``--set`` accepts for a registered method, read from its class's signature.

    Parameters
    ----------
    method : str
        A key of :data:`evaluation.registry.METHODS`.

    Returns
    -------
    dict
        name -> :class:`Setting`, in the signature's order, without :data:`OWN_OPTIONS`.

    Raises
    ------
    evaluation.registry.UnknownMethodError
        For a name that is not registered.
    """
    from .registry import load_class

    params = inspect.signature(load_class(method).__init__).parameters
    return {
        name: _read_parameter(p)
        for name, p in params.items()
        if name != "self" and name not in OWN_OPTIONS
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def describe_settings(method: str) -> str:
    """``name=default, ...`` for the listing of ``blur-map --list-methods`` (``(none)`` when empty)."""
    settings = method_settings(method)
    return ", ".join(f"{s.name}={s.show_default()}" for s in settings.values()) or "(none)"


def _scalar(text: str, kind: str) -> Any:
    """Convert one item; raise ``ValueError`` when it is not of ``kind``."""
    if kind == "int":
        if not re.fullmatch(r"[+-]?\d+", text.strip()):
            raise ValueError(text)
        return int(text)
    if kind == "float":
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value
    if kind == "bool":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(text)
    return text


def parse_value(setting: Setting, text: str, *, label: str | None = None) -> Any:
    """Convert the text of ``--set`` to the value of ``setting`` (type only: the method checks the range).

    Parameters
    ----------
    setting : Setting
        From :func:`method_settings`.
    text : str
        The text after ``=``.
    label : str, optional
        How the error message names the option (default ``--set NAME=TEXT``).

    Raises
    ------
    baselines.interface.InputError
        One line naming the setting, the text given and the expected type.
    """
    label = label or f"--set {setting.name}={text}"
    if setting.optional and text.strip().lower() == "none":
        return None
    try:
        if setting.sequence:
            items = [t.strip() for t in text.split(",") if t.strip()]
            return tuple(_scalar(t, setting.kind) for t in items)
        return _scalar(text, setting.kind)
    except ValueError:
        raise InputError(f"{label}: {setting.name} expects {setting.expected} ({setting.type_name}), got "
                         f"{text!r}; its default is {setting.show_default()}") from None


def parse_set_options(items: Iterable[str], *, option: str = "--set") -> dict[str, dict[str, Any]]:
    """Parse ``METHOD.NAME=VALUE`` texts into ``{method: {name: value}}`` for :func:`~evaluation.registry.build`.

    Parameters
    ----------
    items : iterable of str
        The values of the repeatable ``--set`` option, e.g. ``["zhuo11.canny=octave", "hifst.stride=2"]``.
    option : str
        The option's name, for the messages.

    Returns
    -------
    dict
        method -> {setting: typed value}; empty when no item is given.

    Raises
    ------
    baselines.interface.InputError
        One line for a malformed item, an unknown method or setting (with a "did you mean" and the
        method's settings), a setting given twice, ``weights``/``device`` (which have their own
        options) or a value of the wrong type.
    """
    from .registry import METHODS

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        method, dot, name = key.strip().rpartition(".")
        name = name.strip()
        if not sep or not dot or not method or not name:
            raise InputError(f"{option} {item}: expected METHOD.NAME=VALUE, e.g. {option} hifst.stride=2")
        label = f"{option} {item}"
        if method not in METHODS:
            close = difflib.get_close_matches(method, list(METHODS), n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InputError(f"{label}: unknown method {method!r}.{hint} Known methods: {', '.join(METHODS)}")
        if name in OWN_OPTIONS:
            raise InputError(f"{label}: {name} is not a --set setting; use {OWN_OPTIONS[name]}")
        settings = method_settings(method)
        if name not in settings:
            close = difflib.get_close_matches(name, list(settings), n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            known = ", ".join(settings) or "none"
            raise InputError(f"{label}: {method} has no setting {name!r}.{hint} Settings of {method}: {known}")
        if name in out.get(method, {}):
            raise InputError(f"{label}: {method}.{name} is given twice; keep one {option}")
        out.setdefault(method, {})[name] = parse_value(settings[name], text, label=label)
    return out


def check_selected(settings: dict[str, dict[str, Any]], selected: Sequence[str], *, option: str = "--set",
                   what: str = "--methods") -> None:
    """Refuse settings for a method that the command does not run.

    Parameters
    ----------
    settings : dict
        From :func:`parse_set_options`.
    selected : sequence of str
        The methods the command runs.
    option, what : str
        How the messages name the setting option and the option that selects methods.

    Raises
    ------
    baselines.interface.InputError
        One line naming the method whose settings would be ignored and how to select it.
    """
    unused = [m for m in settings if m not in selected]
    if unused:
        names = ", ".join(f"{unused[0]}.{n}" for n in settings[unused[0]])
        raise InputError(f"{option} {names}: {unused[0]} is not run ({what} selects {', '.join(selected)}); "
                         f"add {unused[0]} to {what} or drop the setting")


def result_label(method: str, values: dict[str, Any] | None) -> str:
    """The name a method's results carry in the tables: ``hifst``, or ``hifst[stride=2]`` with ``--set``.

    Rows of ``metrics.csv`` are keyed by this label, so a run with other settings adds a row
    instead of replacing the default one; the paper row is found from the part before ``[``.
    """
    if not values:
        return method
    return f"{method}[{','.join(f'{k}={values[k]}' for k in sorted(values))}]"


def method_of_label(label: str) -> str:
    """The method of a result label (:func:`result_label`'s inverse): ``hifst[stride=2]`` -> ``hifst``."""
    return label.split("[", 1)[0]

