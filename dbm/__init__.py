"""Deep Blur Mapping (Ma et al., IEEE TIP 2018): the network, training, inference, shipped weights.

Light on import: torch is imported by :mod:`dbm.model`, :mod:`dbm.train`, :mod:`dbm.detector` and
:mod:`dbm.detector` only when used; :mod:`dbm.synth` needs numpy/scipy/OpenCV only;
:mod:`dbm.device` (the ``--device`` option), :mod:`dbm.cli` (the options every command shares,
one-line errors, exit statuses) and
:mod:`dbm.fileio` (atomic, no-clobber writes) need no torch. Nothing here imports ``evaluation``.
"""

__all__ = ["__version__"]
#: The suite's version: the one place it is written (``pyproject.toml`` and every ``--version`` read it).
__version__ = "0.1.0"
