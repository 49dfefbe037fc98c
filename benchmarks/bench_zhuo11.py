"""Zhuo & Sim 2011 on a 384 x 384 photo (paper Table VI: 11.0 s; authors' code under Octave: 13.5 s).

The matting-Laplacian solve dominates; the stages are timed separately so the limit is visible.
The exact solve is timed with both back ends: CHOLMOD (``"cholmod"``, needs ``cvxopt``; the
detector's default when installed) and SuperLU (``"direct"``). CHOLMOD keeps its last symbolic
analysis, so after the first round a same-size solve is a refactorisation (as for a run over many
photos of one size); ``test_zhuo11_384_solve_cold`` times the first solve of a size.
"""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from baselines._defocus import canny_matlab
from baselines.interface import rgb_to_grey
from baselines.matting import _CHOLMOD_LAST, cholmod_available, matting_laplacian, propagate
from baselines.zhuo11 import Zhuo11, sparse_bilateral_filter, sparse_defocus

EXACT = [
    "direct",
    pytest.param("cholmod", marks=pytest.mark.skipif(not cholmod_available(), reason="needs cvxopt")),
]


def _system(rgb: np.ndarray):
    grey = rgb_to_grey(rgb)
    sparse = sparse_bilateral_filter(sparse_defocus(grey, canny_matlab(grey)), rgb)
    return matting_laplacian(rgb, eps=9e-7), (sparse > 1e-4).astype(np.float64), sparse


def test_zhuo11_384(benchmark, photo384):
    benchmark.pedantic(Zhuo11(), args=(photo384,), rounds=3, iterations=1, warmup_rounds=1)


def test_zhuo11_384_sparse_stage(benchmark, photo384):
    """Canny + gradient ratio + bilateral filter (everything before the propagation)."""
    rgb = photo384.astype(np.float64)

    def run():
        grey = rgb_to_grey(rgb)
        return sparse_bilateral_filter(sparse_defocus(grey, canny_matlab(grey)), rgb)

    benchmark.pedantic(run, rounds=3, iterations=1)


def test_zhuo11_384_laplacian(benchmark, photo384):
    benchmark.pedantic(matting_laplacian, args=(photo384.astype(np.float64),), kwargs={"eps": 9e-7}, rounds=3, iterations=1)


@pytest.mark.parametrize("solver", EXACT)
def test_zhuo11_384_solve(benchmark, photo384, solver):
    lap, known, sparse = _system(photo384.astype(np.float64))
    benchmark.pedantic(
        propagate, args=(lap, known, sparse, 1e-3), kwargs={"method": solver}, rounds=3, iterations=1
    )


@pytest.mark.skipif(not cholmod_available(), reason="needs cvxopt")
def test_zhuo11_384_solve_cold(benchmark, photo384):
    """CHOLMOD without a kept analysis: the first photo of a size."""
    lap, known, sparse = _system(photo384.astype(np.float64))
    benchmark.pedantic(
        propagate,
        args=(lap, known, sparse, 1e-3),
        kwargs={"method": "cholmod"},
        setup=_CHOLMOD_LAST.clear,
        rounds=3,
        iterations=1,
    )


@pytest.fixture(scope="module")
def photo640x480(photo384) -> np.ndarray:
    """The same CUHK photo as ``photo384`` at 640 x 480 (from the 640 x 427 original when present)."""
    from baselines.interface import read_image

    shared = Path(os.environ.get("DBM_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    photo = shared / "data" / "cuhk" / "image" / "out_of_focus0015.jpg"
    rgb = read_image(photo) if photo.is_file() else photo384
    return np.clip(cv2.resize(rgb, (640, 480), interpolation=cv2.INTER_AREA), 0.0, 1.0)


@pytest.mark.parametrize("solver", EXACT)
def test_zhuo11_640x480_solve(benchmark, photo640x480, solver):
    """The propagation at the benchmark's full photo size (640 x 480, 307k unknowns)."""
    lap, known, sparse = _system(photo640x480.astype(np.float64))
    benchmark.pedantic(propagate, args=(lap, known, sparse, 1e-3), kwargs={"method": solver}, rounds=2, iterations=1)
