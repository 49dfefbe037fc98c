"""What every command of the suite shares: its common options, one-line errors, the exit statuses.

The commands (``blur-map``, ``python -m evaluation.run`` and the other ``evaluation`` commands,
``python -m dbm.train``, ``python -m dbm.quantize``, ``python -m dbm.corpus``) report every
problem as one line on stderr, ``error: <option or file>: <what is wrong>; <what to do>``, with no
traceback, and exit with:

* ``0``: everything was done;
* ``1``: the run started but did not finish everything (a photo skipped, a map not written);
* ``2``: nothing was done (bad option, missing file, unusable device or folder).

They spell their shared options alike, each built once here by :func:`add_common_options`, on
every command where it makes sense:

* ``--out``: where the results go (a folder; a file for ``dbm.quantize``); never one of the
  inputs, and an existing result is replaced only with ``--overwrite``;
* ``--quiet``: no progress bars or progress lines (errors, notes and the final summary still print);
* ``--threads N``: the CPU threads of torch, OpenCV, BLAS and the classical methods
  (:func:`apply_threads`; default: the libraries' own choice, every available core);
* ``--device auto|cpu|cuda|cuda:N``: where torch runs (:mod:`dbm.device`; default ``auto``);
* ``--version``: print the command's name and the suite's version (:data:`dbm.__version__`, the
  one place the version is written; ``pyproject.toml`` reads it from there) and exit 0.

An old spelling of an option stays accepted, hidden from ``--help``
(:meth:`OneLineParser.add_alias`): ``--to`` for ``--out``, ``--no-progress`` for ``--quiet``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Mapping, NoReturn, Sequence

from baselines.interface import THREADS_ENV

__all__ = ["CLIError", "DefaultsHelpFormatter", "OneLineParser", "QUIET_HELP", "THREADS_HELP", "THREAD_VARIABLES",
           "VERSION_HELP", "add_common_options", "apply_threads", "positive_int", "report", "version_text"]

#: Help text of ``--quiet``.
QUIET_HELP = "no progress bars or progress lines (errors, notes and the final summary still print)"
#: Help text of ``--threads``.
THREADS_HELP = ("CPU threads of torch, OpenCV, BLAS and the classical methods (default: the libraries' own choice, "
                "every available core)")
#: Help text of ``--version``.
VERSION_HELP = "print the suite's version and exit"
#: Environment variables that carry a thread count: the classical methods' budget
#: (:func:`baselines.interface.thread_budget`), then OpenMP (torch, OpenCV), OpenBLAS and MKL, which read
#: theirs when they are loaded (libraries loaded later, and child processes).
THREAD_VARIABLES = (THREADS_ENV, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class CLIError(Exception):
    """A command-line problem; its message is one line naming the option or file and what to do."""


class OneLineParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors raise :class:`CLIError` instead of exiting.

    Unknown options, missing arguments and bad choices thus reach the command's ``main``, which
    prints them in one line (:func:`report`) and returns 2, instead of argparse's usage block and
    ``SystemExit``. ``--help`` and ``--version`` still print and exit 0.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._aliases: dict[str, str] = {}  # hidden old spelling -> the documented option

    def error(self, message: str) -> NoReturn:
        raise CLIError(" ".join(f"{message}; see {self.prog} --help".split()))

    def add_alias(self, alias: str, *, of: str) -> None:
        """Accept ``alias`` as a second spelling of the option ``of``, hidden from ``--help``.

        The alias is read as ``of`` itself (``--to DIR`` and ``--to=DIR`` as ``--out DIR``), so
        ``of`` keeps its type, default and ``required`` and is the one that ``--help`` and error
        messages name. Aliases are not inherited through ``parents=``.

        Parameters
        ----------
        alias : str
            The old spelling, e.g. ``--to``.
        of : str
            The documented option it stands for, e.g. ``--out`` (already added).
        """
        if of not in self._option_string_actions:
            raise ValueError(f"{of}: no such option to alias")
        if alias in self._option_string_actions or alias in self._aliases:
            raise ValueError(f"{alias}: already an option")
        self._aliases[alias] = of

    def aliases(self) -> dict[str, str]:
        """The hidden old spellings of this parser's options, alias -> option (:meth:`add_alias`)."""
        return dict(self._aliases)

    def _spelt_out(self, args: Sequence[str]) -> list[str]:
        """``args`` with every alias (before a ``--``) replaced by the option it stands for."""
        out, options = [], True
        for arg in args:
            if options and arg == "--":
                options = False
            elif options and arg.startswith("--"):
                name, eq, value = arg.partition("=")
                if name in self._aliases:
                    arg = self._aliases[name] + eq + value
            out.append(arg)
        return out

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):
        """:meth:`argparse.ArgumentParser.parse_known_args`, the hidden aliases read as their options."""
        if self._aliases:
            args = self._spelt_out(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default after its help, unless the help states it or there is none.

    Unlike :class:`argparse.ArgumentDefaultsHelpFormatter`, it adds nothing to a help text that
    already says ``default`` (the common options' texts do) or to an option whose default is
    None, False or empty (a flag, or an option that is off unless given).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default == "":
            return text
        return super()._get_help_string(action)


def report(message: object, *, prefix: str = "error") -> None:
    """Print ``prefix: message`` as one line on stderr (newlines in the message become spaces)."""
    print(f"{prefix}: {' '.join(str(message).split())}", file=sys.stderr)


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


def version_text(prog: str = "%(prog)s") -> str:
    """What ``--version`` prints: the command's name and the suite's version.

    Parameters
    ----------
    prog : str
        The command's name (default: argparse's ``%(prog)s``, filled in with the parser's ``prog``).

    Returns
    -------
    str
        ``PROG VERSION``; the version is :data:`dbm.__version__`, the one place it is written.
    """
    from . import __version__

    return f"{prog} {__version__}"


def add_common_options(parser: argparse.ArgumentParser, *, out: Mapping[str, Any] | None = None,
                       quiet: bool = False, threads: bool = False, device: str | None = None,
                       version: bool = True, aliases: Mapping[str, str] | None = None,
                       group: Any = None) -> None:
    """Add the options every command spells alike (module docstring), each only where it applies.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser (a :class:`OneLineParser` when ``aliases`` are given).
    out : mapping, optional
        Keyword arguments of ``--out`` for :meth:`~argparse.ArgumentParser.add_argument`: at least
        ``help`` (what goes there), and ``default`` or ``required``; ``type`` defaults to
        :class:`pathlib.Path`. None: no ``--out``.
    quiet : bool
        Add ``--quiet`` (``args.quiet``, default False).
    threads : bool
        Add ``--threads N`` (``args.threads``: an int >= 1, or None for the libraries' default);
        the command passes it to :func:`apply_threads`.
    device : str, optional
        Add ``--device`` (``args.device``, default ``auto``; checked later by
        :func:`dbm.device.resolve_device`); the string, when not empty, is appended to its help
        (what runs there). None: no ``--device``.
    version : bool
        Add ``--version`` (for a sub-command's parser: False; the command's own parser has it).
    aliases : mapping of str to str, optional
        Hidden old spellings, alias -> option (``{"--to": "--out"}``), see :meth:`OneLineParser.add_alias`.
    group : argparse argument group, optional
        Where the options appear in ``--help`` (default: ``parser`` itself).
    """
    where = parser if group is None else group
    if out is not None:
        where.add_argument("--out", **{"type": Path, **out})
    if quiet:
        where.add_argument("--quiet", action="store_true", help=QUIET_HELP)
    if threads:
        where.add_argument("--threads", type=positive_int, default=None, metavar="N", help=THREADS_HELP)
    if device is not None:
        from .device import DEVICE_HELP

        where.add_argument("--device", default="auto", help=DEVICE_HELP + (f"; {device}" if device else ""))
    if version:
        where.add_argument("--version", action="version", version=version_text(), help=VERSION_HELP)
    for alias, option in (aliases or {}).items():
        parser.add_alias(alias, of=option)


def apply_threads(n: int | None) -> None:
    """Run this process, and the processes it starts, with ``n`` CPU threads (``--threads``).

    Sets :data:`THREAD_VARIABLES` (the classical methods' budget, and OpenMP/OpenBLAS/MKL for the
    libraries loaded afterwards, torch included, and for child processes), OpenCV's thread count,
    torch's when torch is already loaded, and that of the BLAS already loaded when
    ``threadpoolctl`` is installed.

    Parameters
    ----------
    n : int or None
        The thread count (>= 1); None leaves every default as it is.
    """
    if n is None:
        return
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)
    try:
        import cv2

        cv2.setNumThreads(n)
    except ImportError:  # pragma: no cover - OpenCV is a dependency
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:  # pragma: no cover - optional
        threadpool_limits(n)
