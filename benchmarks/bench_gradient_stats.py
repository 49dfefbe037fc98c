from baselines.gradient_stats import GradientStats


def test_gradient_stats_384(benchmark, photo384):
    det = GradientStats()
    benchmark(det, photo384)
