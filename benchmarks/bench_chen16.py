"""Chen, Chen & Chang 2016 on a 384 x 384 photo (paper Table VI: 1.0 s)."""

from baselines.chen16 import Chen16


def test_chen16_384(benchmark, photo384):
    benchmark.pedantic(Chen16(), args=(photo384,), rounds=5, iterations=1)
