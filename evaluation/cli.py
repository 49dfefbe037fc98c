"""What the evaluation commands share: one-line errors, count options, result files written safely.

The commands of :mod:`evaluation` (``fig2``, ``speed``, ``fidelity``, ``applications``, ...)
follow the conventions of :mod:`dbm.cli`: every problem is one line on stderr,
``error: <option or file>: <what is wrong>; <what to do>``, exit status 2 when nothing was done.
This module holds the pieces they share, so that each rule is written once:

* :class:`OneLineParser`, :func:`add_common_options` (``--out``, ``--quiet``, ``--threads``,
  ``--device``, ``--version``, spelt alike by every command), :func:`apply_threads` and
  :func:`positive_int` (the argparse type of counts: ``--limit``, ``--images``, ``--workers``):
  those of :mod:`dbm.cli` itself, re-exported; argparse errors raise :class:`CLIError`, which
  ``main`` prints with :func:`report` and returns 2;
* :func:`os_error_message`: an ``OSError`` (unwritable folder, full disk) as one line;
* :func:`refuse_existing` and :func:`write_new_files`: result files that are written atomically
  (:func:`dbm.fileio.atomic_write_bytes`) and never replace an existing file unless the command
  was given ``--overwrite``;
* :func:`run_cli`: the body of ``main``: parse the options, apply ``--threads``, run the command,
  turn its ``InputError`` or ``OSError`` into one line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from dbm.cli import CLIError, OneLineParser, add_common_options, apply_threads, positive_int, report

__all__ = ["CLIError", "OUT_HINT", "csv_bytes", "OneLineParser", "RESULTS_OUT", "add_common_options", "apply_threads", "os_error_message",
           "positive_int", "refuse_existing", "report", "run_cli", "write_new_files"]

#: ``--out`` of the commands that write result tables and figures (the runner, ``speed``, ``fig2``):
#: the folder ``blur_results`` of the current folder unless given (:func:`add_common_options`' ``out``).
RESULTS_OUT = {"default": Path("blur_results"), "help": "output folder (default: ./blur_results)"}
#: What to do about an ``OSError`` of a command that writes into ``--out`` (``{out}``: the folder).
OUT_HINT = "check that --out {out} is writable and has free space"


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


def csv_bytes(rows: Iterable[Mapping[str, Any]], fields: Sequence[str] | None = None, *,
              lineterminator: str = "\r\n", extra: str = "raise") -> bytes:
    """A results CSV file's content: a header, then one line per row (UTF-8).

    Parameters
    ----------
    rows : iterable of mapping
        The rows; a field a row lacks is written empty.
    fields : sequence of str, optional
        The columns, in order (default: every row's keys, in the order they first appear).
    lineterminator : str
        The end of each line.
    extra : {'raise', 'ignore'}
        What a key outside ``fields`` does (:class:`csv.DictWriter`'s ``extrasaction``).

    Returns
    -------
    bytes
        The file's content.
    """
    import csv
    import io

    rows = list(rows)
    fields = list(fields) if fields is not None else list(dict.fromkeys(k for r in rows for k in r))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, restval="", extrasaction=extra, lineterminator=lineterminator)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


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


def run_cli(parser: argparse.ArgumentParser, argv: Sequence[str] | None, command: Callable[[argparse.Namespace], Any],
            *, errors: tuple[type[Exception], ...] = (), hint: str = OUT_HINT,
            then: Callable[[argparse.Namespace, Any], int] | None = None) -> int:
    """Parse ``argv``, apply ``--threads``, run ``command``; return the exit status, every problem one line on stderr.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's :class:`OneLineParser` (its errors raise :class:`CLIError`).
    argv : sequence of str or None
        The arguments (None: ``sys.argv[1:]``).
    command : callable
        ``command(args)``: does the work. Its ``InputError`` (and ``errors``) is reported as is,
        its ``OSError`` with :func:`os_error_message` and ``hint``; both give exit status 2.
    errors : tuple of exception types
        Further one-line errors of the command (e.g. :class:`evaluation.registry.UnknownMethodError`).
    hint : str
        What to do about an ``OSError``; ``{out}`` stands for ``args.out``.
    then : callable, optional
        ``then(args, result)``: run after ``command`` succeeded, outside the error handling
        (printing the result); its return value is the exit status. Without it, ``command``'s
        return value is.

    Returns
    -------
    int
        The exit status: 2 for a bad option or a reported error, else as above.
    """
    from baselines.interface import InputError

    try:
        args = parser.parse_args(argv)
    except CLIError as exc:
        report(exc)
        return 2
    apply_threads(getattr(args, "threads", None))
    try:
        result = command(args)
    except (InputError, *errors) as exc:
        report(exc)
        return 2
    except OSError as exc:
        report(os_error_message(exc, hint.format(out=args.out)))
        return 2
    return result if then is None else then(args, result)
