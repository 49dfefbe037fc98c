from baselines.gradient_energy import GradientEnergy


def test_gradient_energy_384(benchmark, photo384):
    det = GradientEnergy()
    benchmark(det, photo384)
