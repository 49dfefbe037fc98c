"""Liu08 inference speed (training is not timed: it runs once on two half-blurred copies)."""

import cv2
import numpy as np
import pytest

from baselines.liu08 import Liu08


@pytest.fixture(scope="module")
def liu08(photo384):
    blurred = cv2.GaussianBlur(photo384, (0, 0), 3.0)
    mask = np.zeros(photo384.shape[:2], bool)
    mask[:, :192] = True
    pairs = [(np.where(m[..., None], blurred, photo384), m) for m in (mask, ~mask)]
    return Liu08().fit(pairs)


def test_liu08_384(benchmark, liu08, photo384):
    benchmark(liu08, photo384)
