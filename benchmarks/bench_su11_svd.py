from baselines import su11_svd as su11_module
from baselines.su11_svd import Su11SVD


def test_su11_svd_384(benchmark, photo384):
    """Defaults (first author's code): k = 3, 20 x 20 windows."""
    benchmark(Su11SVD(), photo384)


def test_su11_svd_384_numpy_lapack(benchmark, photo384, monkeypatch):
    """Defaults with numpy's LAPACK instead of torch's (what runs when torch is not installed)."""
    monkeypatch.setattr(su11_module, "_USE_TORCH", False)
    benchmark(Su11SVD(), photo384)


def test_su11_svd_svf_settings_384(benchmark, photo384):
    """The third-party svf.m settings: k = 6, 15 x 15 windows, HSV value channel."""
    det = Su11SVD(k=6, window=15, channel="value", padding="symmetric", normalise=False)
    benchmark(det, photo384)
