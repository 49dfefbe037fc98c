"""DBM speed on one 384 x 384 photo (paper, Table VI: 1.8 s on CPU, 27 ms on a Titan X GPU).

``size=384`` makes the network run at 384 x 384 whatever size the shipped weights were trained
at, so the numbers compare with the paper's. Two CPU threads, as on the reference machine.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dbm.detector import DBM  # noqa: E402


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_dbm_384_cpu_2_threads(benchmark, photo384, precision):
    det = DBM(size=384, precision=precision, threads=2)
    det(photo384)  # warm-up (oneDNN primitive creation)
    benchmark.extra_info.update(precision=precision, threads=2, device="cpu")
    benchmark(det, photo384)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_dbm_384_gpu(benchmark, photo384, precision):
    det = DBM(size=384, precision=precision, device="cuda")
    det(photo384)

    def run():
        out = det(photo384)  # includes the host<->device copies and the resize back
        torch.cuda.synchronize()
        return out

    benchmark.extra_info.update(precision=precision, device=torch.cuda.get_device_name())
    benchmark(run)
