"""Speed benchmarks (pytest-benchmark), run with ``tox -e bench`` or
``python -m pytest benchmarks --benchmark-only``.

The paper's Table VI times methods on 384 x 384 x 3 photos of the benchmark; the fixture
:func:`photo384` is a CUHK photo resized to that size when ``../shared`` exists, else
scikit-image's astronaut resized. Benchmarks measure; they never assert a time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def photo384() -> np.ndarray:
    import cv2

    from baselines.interface import read_image

    shared = Path(os.environ.get("DBM_SHARED", REPO.parent / "shared"))
    photo = shared / "data" / "cuhk" / "image" / "out_of_focus0015.jpg"
    if photo.is_file():
        rgb = read_image(photo)
    else:
        from skimage import data

        rgb = data.astronaut().astype(np.float32) / 255.0
    return np.ascontiguousarray(cv2.resize(rgb, (384, 384), interpolation=cv2.INTER_AREA))
