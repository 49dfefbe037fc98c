from baselines.chakrabarti10 import Chakrabarti10


def test_chakrabarti10_384(benchmark, photo384):
    benchmark(Chakrabarti10(), photo384)
