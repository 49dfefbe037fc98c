"""Log local gradient energy: the simplest blur cue, kept as a reference detector.

Not a row of the paper. It proves the detector interface end to end and gives every table a floor:
a method that cannot beat local gradient energy has learned nothing beyond "smooth = blurred",
which is exactly the confusion (flat sharp regions) the paper is about.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._checks import check_float, check_int
from .interface import Detector
from .matlab import mat2gray, rgb_to_grey

__all__ = ["GradientEnergy", "gradient_energy"]


def _check_settings(*, sigma=1.0, window=15, eps=1e-6) -> None:
    """Raise :class:`~baselines.interface.InputError` for a setting of :func:`gradient_energy` out of range."""
    check_float("gradient_energy", "sigma", sigma, minimum=0, min_open=True)
    check_int("gradient_energy", "window", window, minimum=1)
    check_float("gradient_energy", "eps", eps, minimum=0, min_open=True)


def gradient_energy(rgb: np.ndarray, *, sigma: float = 1.0, window: int = 15, eps: float = 1e-6) -> np.ndarray:
    """Blur map from the log of the local mean squared gradient.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``H x W x 3`` float RGB in ``[0, 1]``.
    sigma : float
        Scale of the Gaussian derivative filters, in pixels.
    window : int
        Side of the square window the squared gradient is averaged over.
    eps : float
        Floor added before the logarithm, so flat regions stay finite.

    Returns
    -------
    numpy.ndarray
        ``H x W`` float32 in ``[0, 1]``, 1 = blurred (lowest gradient energy in the image).

    Notes
    -----
    With grey image :math:`I` and Gaussian derivatives :math:`I_x, I_y` at scale ``sigma``,

    .. math::

        E = \\log\\left(\\varepsilon + \\frac{1}{|W|}\\sum_{W} (I_x^2 + I_y^2)\\right), \\qquad
        b = 1 - \\frac{E - \\min E}{\\max E - \\min E}

    and :math:`b = 0.5` everywhere when :math:`E` is constant.
    """
    _check_settings(sigma=sigma, window=window, eps=eps)
    grey = rgb_to_grey(np.asarray(rgb, dtype=np.float64))
    gx = ndimage.gaussian_filter(grey, sigma, order=(0, 1), mode="reflect")
    gy = ndimage.gaussian_filter(grey, sigma, order=(1, 0), mode="reflect")
    energy = ndimage.uniform_filter(gx * gx + gy * gy, size=window, mode="reflect")
    log_e = np.log(eps + np.maximum(energy, 0.0))
    return (1.0 - mat2gray(log_e, flat=0.5, tol=1e-12)).astype(np.float32)


class GradientEnergy(Detector):
    """Registered detector ``gradient_energy`` (see :func:`gradient_energy`)."""

    name = "gradient_energy"

    def __init__(self, sigma: float = 1.0, window: int = 15) -> None:
        _check_settings(sigma=sigma, window=window)
        super().__init__(sigma=sigma, window=window)

    def compute(self, rgb: np.ndarray) -> np.ndarray:
        return gradient_energy(rgb, **self.settings)
