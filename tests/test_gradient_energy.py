"""Method facts for the log local gradient energy reference detector (``baselines.gradient_energy``)."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.gradient_energy import GradientEnergy, gradient_energy
from baselines.interface import InputError


def test_flat_regions_are_blurred():
    rng = np.random.default_rng(0)
    img = np.full((40, 60, 3), 0.5)
    img[:, 30:] += 0.2 * rng.standard_normal((40, 30, 3))
    out = GradientEnergy()(np.clip(img, 0, 1).astype(np.float32))
    assert out[:, :20].mean() > out[:, 40:].mean() + 0.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sigma": 0.0}, "gradient_energy: sigma must be a finite number > 0, got 0.0"),
        ({"sigma": float("nan")}, "gradient_energy: sigma must be a finite number > 0, got nan"),
        ({"window": -5}, "gradient_energy: window must be an integer >= 1, got -5"),
        ({"window": 15.0}, "gradient_energy: window must be an integer >= 1, got 15.0"),
    ],
)
def test_out_of_range_settings(kwargs, message):
    for build in (lambda: GradientEnergy(**kwargs), lambda: gradient_energy(np.zeros((20, 20, 3)), **kwargs)):
        with pytest.raises(InputError) as info:
            build()
        assert str(info.value) == message
    with pytest.raises(InputError, match="^gradient_energy: eps must be a finite number > 0"):
        gradient_energy(np.zeros((20, 20, 3)), eps=0.0)
