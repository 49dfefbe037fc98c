"""What the evaluation commands share: one-line errors, count options, result files written safely.

The commands of :mod:`evaluation` (``fig2``, ``speed``, ``fidelity``, ``applications``, ...)
follow the conventions of :mod:`dbm.cli`: every problem is one line on stderr,
``error: <option or file>: <what is wrong>; <what to do>``, exit status 2 when nothing was done.
This module holds the pieces they share, so that each rule is written once:

* :class:`OneLineParser` (the :class:`dbm.cli.OneLineParser` itself, re-exported): argparse errors
  raise :class:`CLIError`, which ``main`` prints with :func:`report` and returns 2;
* :func:`positive_int`: the argparse type of counts (``--limit``, ``--images``, ``--workers``);
* :func:`os_error_message`: an ``OSError`` (unwritable folder, full disk) as one line;
* :func:`refuse_existing` and :func:`write_new_files`: result files that are written atomically
  (:func:`dbm.fileio.atomic_write_bytes`) and never replace an existing file unless the command
  was given ``--overwrite``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Iterable, Mapping

from dbm.cli import CLIError, OneLineParser, report

__all__ = ["CLIError", "OneLineParser", "os_error_message", "positive_int", "refuse_existing", "report",
           "write_new_files"]


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1.

    Parameters
    ----------
    text : str
        The option's value as typed.

    Returns
    -------
    int
        The number.

    Raises
    ------
    argparse.ArgumentTypeError
        For anything else (argparse turns it into its error, which :class:`OneLineParser` makes one line).
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def os_error_message(exc: OSError, hint: str = "", *, path: str | Path | None = None) -> str:
    """One line for an ``OSError``: ``PATH: reason; hint``.

    Parameters
    ----------
    exc : OSError
        The error (its ``filename`` names the file when ``path`` is not given).
    hint : str
        What to do, appended after ``; `` when given.
    path : path, optional
        The file or folder to name (default: the error's own file name, if any).

    Returns
    -------
    str
        The message, without the ``error:`` prefix (:func:`report` adds it).
    """
    from dbm.fileio import describe_os_error

    where = path if path is not None else exc.filename
    text = f"{where}: {describe_os_error(exc)}" if where not in (None, "") else describe_os_error(exc)
    return f"{text}; {hint}" if hint else text


def _exists(path: str | Path) -> str:
    """The one-line refusal to replace ``path``."""
    return f"{path}: exists; pass --overwrite to replace it, or choose another --out"


def refuse_existing(paths: Iterable[str | Path], *, overwrite: bool) -> None:
    """Refuse, before any work, to replace result files that exist, unless ``overwrite``.

    Parameters
    ----------
    paths : iterable of path
        The files the command will write.
    overwrite : bool
        The command's ``--overwrite``: existing files may be replaced.

    Raises
    ------
    baselines.interface.InputError
        One line naming the first file that exists.
    """
    from baselines.interface import InputError

    if overwrite:
        return
    for path in paths:
        if os.path.lexists(path):
            raise InputError(_exists(path))


def write_new_files(files: Mapping[str | Path, bytes], *, overwrite: bool) -> list[Path]:
    """Write result files, each atomically, never replacing an existing one unless ``overwrite``.

    Each file goes through :func:`dbm.fileio.atomic_write_bytes`: no reader sees it half
    written, a failed write leaves no temporary file, and without ``overwrite`` a file created by
    someone else meanwhile is kept.

    Parameters
    ----------
    files : mapping of path to bytes
        Target file -> content, written in this order; their folder must exist.
    overwrite : bool
        The command's ``--overwrite``.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    baselines.interface.InputError
        A target exists and ``overwrite`` is false (one line, naming it).
    OSError
        The write failed (no permission, disk full); :func:`os_error_message` makes it one line.
    """
    from baselines.interface import InputError
    from dbm.fileio import atomic_write_bytes

    written = []
    for path, data in files.items():
        try:
            written.append(atomic_write_bytes(path, data, overwrite=overwrite))
        except FileExistsError:
            raise InputError(_exists(path)) from None
    return written
