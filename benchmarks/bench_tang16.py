from baselines.tang16 import Tang16


def test_tang16_384(benchmark, photo384):
    benchmark(Tang16(), photo384)


def test_tang16_coarse_only_384(benchmark, photo384):
    """The log averaged spectrum residual alone, without the superpixel refinement."""
    benchmark(Tang16(refine=False), photo384)
