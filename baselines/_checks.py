"""Validation of detector settings: one-line :class:`~baselines.interface.InputError` messages.

Every detector checks its settings twice with the same helpers: in its pure function (so a direct
call fails before any work) and in its :class:`~baselines.interface.Detector` wrapper's
``__init__`` (so ``get_detector("hifst", stride=0)`` fails at once, not on the first image).
A message names the method, the setting, the allowed range or values and the value given::

    hifst: stride must be an integer >= 1, got 0

Rules shared by all helpers: ``bool`` is never accepted as a number; numbers must be finite
(NaN and infinities are rejected); integers must be of an integer type (Python or NumPy), not a
float that happens to be whole. The helpers only check: they return the value unchanged (or as
a plain ``int`` / ``float`` / ``tuple`` for the callers that want one), so validated settings
keep their type and the cache keys built from them do not change.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence

import numpy as np

from .interface import InputError

__all__ = [
    "check_bool",
    "check_choice",
    "check_float",
    "check_int",
    "check_int_sequence",
    "fail",
]


def fail(method: str | None, name: str, rule: str, value: Any) -> InputError:
    """The :class:`InputError` for setting ``name`` of ``method``: ``"method: name must be rule, got value"``."""
    where = f"{method}: " if method else ""
    return InputError(f"{where}{name} must be {rule}, got {_show(value)}")


def _show(value: Any) -> str:
    text = repr(value)
    text = " ".join(text.split())  # one line, whatever the object's repr
    return text if len(text) <= 80 else text[:77] + "..."


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not _is_bool(value)


def _is_real(value: Any) -> bool:
    return isinstance(value, (numbers.Real, np.integer, np.floating)) and not _is_bool(value)


def _range_text(minimum, maximum, min_open: bool = False, max_open: bool = False) -> str:
    if minimum is not None and maximum is not None:
        return f"in {'(' if min_open else '['}{minimum}, {maximum}{')' if max_open else ']'}"
    if minimum is not None:
        return f"{'>' if min_open else '>='} {minimum}"
    if maximum is not None:
        return f"{'<' if max_open else '<='} {maximum}"
    return ""


def check_int(
    method: str | None,
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    odd: bool = False,
    allow_none: bool = False,
) -> int | None:
    """Check an integer setting.

    Parameters
    ----------
    method : str or None
        Registry name of the method, the message's prefix (``None``: no prefix).
    name : str
        Name of the setting.
    value
        The value given: a Python or NumPy integer (not ``bool``, not a float).
    minimum, maximum : int, optional
        Inclusive bounds.
    odd : bool
        Require an odd value.
    allow_none : bool
        Also accept ``None`` (returned as is).

    Returns
    -------
    int or None
        ``int(value)``.

    Raises
    ------
    InputError
        ``"method: name must be an [odd ]integer >= minimum, got value"`` (or ``in [min, max]``).
    """
    if allow_none and value is None:
        return None
    ok = _is_int(value)
    if ok:
        v = int(value)
        ok = (minimum is None or v >= minimum) and (maximum is None or v <= maximum) and (not odd or v % 2 == 1)
    if not ok:
        rule = f"{'an odd' if odd else 'an'} integer"
        bounds = _range_text(minimum, maximum)
        if bounds:
            rule += " " + bounds
        if allow_none:
            rule = "None or " + rule
        raise fail(method, name, rule, value)
    return v


def check_float(
    method: str | None,
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
    allow_none: bool = False,
) -> float | None:
    """Check a real-valued setting: finite, within bounds.

    Parameters
    ----------
    method, name, value
        As :func:`check_int`; ``value`` may be any real number type (not ``bool``).
    minimum, maximum : float, optional
        Bounds, inclusive unless ``min_open`` / ``max_open`` (``min_open=True`` with
        ``minimum=0`` means "> 0").
    allow_none : bool
        Also accept ``None`` (returned as is).

    Returns
    -------
    float or None
        ``float(value)``.

    Raises
    ------
    InputError
        ``"method: name must be a finite number > 0, got nan"`` and the like.
    """
    if allow_none and value is None:
        return None
    ok = _is_real(value)
    if ok:
        v = float(value)
        ok = math.isfinite(v)
        if ok and minimum is not None:
            ok = v > minimum if min_open else v >= minimum
        if ok and maximum is not None:
            ok = v < maximum if max_open else v <= maximum
    if not ok:
        rule = "a finite number"
        bounds = _range_text(minimum, maximum, min_open, max_open)
        if bounds:
            rule += " " + bounds
        if allow_none:
            rule = "None or " + rule
        raise fail(method, name, rule, value)
    return v


def check_choice(method: str | None, name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``choices`` (compared with ``==``, strings exactly).

    Raises
    ------
    InputError
        ``"method: name must be one of 'a', 'b', got 'c'"``.
    """
    choices = tuple(choices)
    try:
        ok = any(type(value) is type(c) and value == c for c in choices)
    except Exception:  # pragma: no cover - exotic __eq__
        ok = False
    if not ok:
        raise fail(method, name, "one of " + ", ".join(map(repr, choices)), value)
    return value


def check_bool(method: str | None, name: str, value: Any) -> bool:
    """Check a flag: ``True`` or ``False`` (NumPy booleans too; not 0 / 1)."""
    if not _is_bool(value):
        raise fail(method, name, "True or False", value)
    return bool(value)


def check_int_sequence(
    method: str | None,
    name: str,
    value: Any,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    odd: bool = False,
) -> tuple[int, ...]:
    """Check a non-empty sequence of integers, each as :func:`check_int` would.

    Returns
    -------
    tuple of int

    Raises
    ------
    InputError
        ``"method: name must be a non-empty sequence of odd integers >= 3, got (8, 16)"``.
    """
    items: Sequence[Any] | None = None
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, (str, bytes)):
        items = list(np.asarray(value, dtype=object).ravel()) if isinstance(value, np.ndarray) else list(value)
    ok = bool(items) and all(_is_int(v) for v in items)
    if ok:
        for v in items:
            v = int(v)
            if (minimum is not None and v < minimum) or (maximum is not None and v > maximum) or (odd and v % 2 != 1):
                ok = False
                break
    if not ok:
        rule = f"a non-empty sequence of {'odd ' if odd else ''}integers"
        bounds = _range_text(minimum, maximum)
        if bounds:
            rule += " " + bounds
        raise fail(method, name, rule, value)
    return tuple(int(v) for v in items)
