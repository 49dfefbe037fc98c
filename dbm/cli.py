"""What the DBM commands share: argument errors in one line, and the exit statuses.

``blur-map``, ``python -m dbm.train`` and ``python -m dbm.quantize`` report every
problem as one line on stderr, ``error: <option or file>: <what is wrong>; <what to do>``, with no
traceback, and exit with:

* ``0``: everything was done;
* ``1``: the run started but did not finish everything (a photo skipped, a map not written);
* ``2``: nothing was done (bad option, missing file, unusable device or folder).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

__all__ = ["CLIError", "OneLineParser", "report"]


class CLIError(Exception):
    """A command-line problem; its message is one line naming the option or file and what to do."""


class OneLineParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors raise :class:`CLIError` instead of exiting.

    Unknown options, missing arguments and bad choices thus reach the command's ``main``, which
    prints them in one line (:func:`report`) and returns 2, instead of argparse's usage block and
    ``SystemExit``. ``--help`` still prints the help and exits.
    """

    def error(self, message: str) -> NoReturn:
        raise CLIError(" ".join(f"{message}; see {self.prog} --help".split()))


def report(message: object, *, prefix: str = "error") -> None:
    """Print ``prefix: message`` as one line on stderr (newlines in the message become spaces)."""
    print(f"{prefix}: {' '.join(str(message).split())}", file=sys.stderr)
