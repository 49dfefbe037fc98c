"""Benchmarks, the paper's metrics and the runner (``python -m evaluation.run``).

``evaluation`` uses ``baselines`` and ``dbm``; neither imports ``evaluation``.

The suite's network package is called ``dbm``, like Python's standard-library module
:mod:`dbm` (key-value databases), which comes first on ``sys.path`` unless Python is started
in the repository folder. Importing ``evaluation`` therefore loads the suite's ``dbm`` from
beside this package when nothing has imported a ``dbm`` yet, so the runner works from any
folder and from a regular (non-editable) install. The price, in that process only: the
standard-library :mod:`dbm` (and :mod:`shelve`, which uses it) is unavailable.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__all__ = ["blur_map", "dbm_train", "suite_dbm_loaded"]

_OURS = Path(__file__).resolve().parent.parent / "dbm" / "__init__.py"


def _load_suite_dbm() -> None:
    if "dbm" in sys.modules or not _OURS.is_file():
        return
    spec = importlib.util.spec_from_file_location("dbm", _OURS, submodule_search_locations=[str(_OURS.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["dbm"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["dbm"]
        raise


def suite_dbm_loaded() -> bool:
    """True when ``import dbm`` gives this suite's network package (not the standard library's)."""
    module = sys.modules.get("dbm")
    return module is not None and Path(getattr(module, "__file__", "") or "").resolve() == _OURS


def blur_map() -> int:
    """Entry point of the ``blur-map`` command (``python -m evaluation.predict``)."""
    from .predict import main

    return main()


def dbm_train() -> int:
    """Entry point of the ``dbm-train`` command: ``python -m dbm.train`` from any folder.

    ``python -m dbm.train`` finds the standard library's ``dbm`` outside the repository; this
    package loads the suite's first. Under torchrun: ``torchrun ... --no-python dbm-train ...``.
    """
    from dbm.train import main

    return main()


_load_suite_dbm()
