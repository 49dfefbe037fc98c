"""Shi14 inference speed (training is not timed: it runs once on two half-blurred copies)."""

import cv2
import numpy as np
import pytest

from baselines.shi14 import Shi14


def _pairs(rgb):
    blurred = cv2.GaussianBlur(rgb, (0, 0), 3.0)
    mask = np.zeros(rgb.shape[:2], bool)
    mask[:, : rgb.shape[1] // 2] = True
    return [(np.where(m[..., None], blurred, rgb), m) for m in (mask, ~mask)]


@pytest.fixture(scope="module")
def shi14(photo384):
    return Shi14().fit(_pairs(photo384))


def test_shi14_384(benchmark, shi14, photo384):
    benchmark(shi14, photo384)


def test_shi14_every_pixel_384(benchmark, shi14, photo384):
    """Without the speed settings: every pixel evaluated, BP to a 1e-4 belief change."""
    det = Shi14(ghs_stride=1, spectrum_stride=1, bp_tol=1e-4)
    det.set_state(shi14.get_state())
    benchmark.pedantic(det, args=(photo384,), rounds=2, iterations=1)
