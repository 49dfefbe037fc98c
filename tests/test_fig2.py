"""Fig. 2 statistics on images whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from evaluation import fig2
from evaluation.demo import ensure_demo


class _Sample:
    def __init__(self, rgb, mask):
        self.rgb, self.m = rgb, mask

    def mask(self):
        return self.m

    def image(self, shape=None):
        return self.rgb


def test_blur_steepens_the_spectrum_and_narrows_gradients(rng):
    """Thirds: flat grey (flat sharp), white noise (structured sharp), the noise Gaussian-blurred (blurred)."""
    noise = rng.random((160, 330))
    grey = np.full_like(noise, 0.5)
    grey[:, 110:220] = noise[:, 110:220]
    grey[:, 220:] = ndimage.gaussian_filter(noise, 2.0)[:, 220:]
    mask = np.zeros_like(grey, bool)
    mask[:, 220:] = True
    stats = fig2.patch_statistics([_Sample(np.dstack([grey] * 3), mask)], patches_per_kind=50)
    # White noise has a flat spectrum (slope ~0); blur makes it fall steeply.
    assert abs(stats["slope"]["structured sharp"]) < 0.6
    assert stats["slope"]["blurred"] < -3
    # Blurred gradients are concentrated near 0: higher density at 0 than the sharp noise's.
    centre = int(np.searchsorted(stats["grad_edges"], 0.0, side="right")) - 1  # the bin holding 0
    assert stats["grad_hist"]["blurred"][centre] > 2 * stats["grad_hist"]["structured sharp"][centre]
    # The flat region's gradients are all exactly 0: the split puts it below the energy median.
    assert stats["grad_hist"]["flat sharp"][centre] > stats["grad_hist"]["blurred"][centre]
    assert stats["n_patches"]["flat sharp"] > 0


def test_cli_on_demo(tmp_path, capsys):
    out = tmp_path / "f"
    assert fig2.main(["--out", str(out), "--limit", "3"]) == 0
    assert (out / "fig2.png").stat().st_size > 0
    text = (out / "fig2.csv").read_text()
    assert "a_gradient_density,blurred" in text and "b_power_spectrum,flat sharp" in text
    assert "power-spectral slope" in capsys.readouterr().out
