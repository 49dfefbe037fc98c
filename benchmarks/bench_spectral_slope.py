from baselines.spectral_slope import SpectralSlope


def test_spectral_slope_384(benchmark, photo384):
    det = SpectralSlope()
    benchmark(det, photo384)


def test_spectral_slope_fit_384(benchmark, photo384):
    det = SpectralSlope(method="fit")
    benchmark(det, photo384)
