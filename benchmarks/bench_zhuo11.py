"""Zhuo & Sim 2011 on a 384 x 384 photo (paper Table VI: 11.0 s; authors' code under Octave: 13.5 s).

The matting-Laplacian solve dominates; the stages are timed separately so the limit is visible.
"""

import numpy as np

from baselines._defocus import canny_matlab
from baselines.interface import rgb_to_grey
from baselines.matting import matting_laplacian, propagate
from baselines.zhuo11 import Zhuo11, sparse_bilateral_filter, sparse_defocus


def test_zhuo11_384(benchmark, photo384):
    benchmark.pedantic(Zhuo11(), args=(photo384,), rounds=3, iterations=1)


def test_zhuo11_384_sparse_stage(benchmark, photo384):
    """Canny + gradient ratio + bilateral filter (everything before the propagation)."""
    rgb = photo384.astype(np.float64)

    def run():
        grey = rgb_to_grey(rgb)
        return sparse_bilateral_filter(sparse_defocus(grey, canny_matlab(grey)), rgb)

    benchmark.pedantic(run, rounds=3, iterations=1)


def test_zhuo11_384_laplacian(benchmark, photo384):
    benchmark.pedantic(matting_laplacian, args=(photo384.astype(np.float64),), kwargs={"eps": 9e-7}, rounds=3, iterations=1)


def test_zhuo11_384_solve(benchmark, photo384):
    rgb = photo384.astype(np.float64)
    grey = rgb_to_grey(rgb)
    sparse = sparse_bilateral_filter(sparse_defocus(grey, canny_matlab(grey)), rgb)
    lap = matting_laplacian(rgb, eps=9e-7)
    known = (sparse > 1e-4).astype(np.float64)
    benchmark.pedantic(propagate, args=(lap, known, sparse, 1e-3), rounds=3, iterations=1)
