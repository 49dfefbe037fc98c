"""Classical local blur detectors (the rows of the paper's Table III), one file per method.

Each module holds a pure function with the algorithm and a thin :class:`~baselines.interface.Detector`
wrapper; the runner finds them through ``evaluation.registry``. Importing this package never
imports torch.
"""

from .interface import Detector, InputError, as_rgb_float, read_image

__all__ = ["Detector", "InputError", "as_rgb_float", "read_image"]
