"""DBM speed on one 384 x 384 photo (paper, Table VI: 1.8 s on CPU, 27 ms on a Titan X GPU).

``size=384`` makes the network run at 384 x 384 whatever size the shipped weights were trained
at, so the numbers compare with the paper's; the ``size`` cases run the network at a smaller
square input (the photo is still 384 x 384; the map is resized back). Two CPU threads, as on the
reference machine. ``int8`` needs the int8 calibration stored in the weight file
(``python -m dbm.quantize``).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from dbm.detector import DBM  # noqa: E402


def _detector(precision: str, size: int, **kw) -> DBM:
    try:
        return DBM(size=size, precision=precision, **kw)
    except ValueError as exc:  # int8 without a calibration in the weight file
        pytest.skip(str(exc))


@pytest.mark.parametrize("precision", ["fp32", "int8", "bf16"])
def test_dbm_384_cpu_2_threads(benchmark, photo384, precision):
    det = _detector(precision, 384, threads=2)
    det(photo384)  # warm-up (oneDNN primitive creation, int8 conversion)
    benchmark.extra_info.update(precision=precision, threads=2, device="cpu", size=384)
    benchmark(det, photo384)


@pytest.mark.parametrize("size", [256, 320])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_dbm_smaller_input_cpu_2_threads(benchmark, photo384, precision, size):
    det = _detector(precision, size, threads=2)
    det(photo384)
    benchmark.extra_info.update(precision=precision, threads=2, device="cpu", size=size)
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
