"""HiFST speed on a 384 x 384 photo (paper Table VI: 99.7 s for the authors' MATLAB code).

``test_hifst_384`` is the faithful default (every pixel, threads on all available cores, at most
8); the others show one thread and the approximate ``stride=2`` mode.
"""

from baselines.hifst import HiFST, hifst_sharpness


def test_hifst_384(benchmark, photo384):
    benchmark.pedantic(HiFST(), args=(photo384,), rounds=5, warmup_rounds=1)


def test_hifst_384_one_thread(benchmark, photo384):
    benchmark.pedantic(hifst_sharpness, args=(photo384,), kwargs={"workers": 1}, rounds=3, warmup_rounds=1)


def test_hifst_384_stride2_approximate(benchmark, photo384):
    benchmark.pedantic(HiFST(stride=2), args=(photo384,), rounds=5, warmup_rounds=1)
