"""The machine a result was measured on: CPU model, cores, threads, library versions, GPU.

One description, used by every result that carries timings or provenance: the runner's
``runs.csv`` and ``index.html`` (:func:`evaluation.report.provenance`) and Table VI
(:mod:`evaluation.speed`), so that a time is never shown without the machine that gave it.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import numpy as np

from baselines.interface import THREADS_ENV

__all__ = ["machine"]

#: The vector units that decide the speed of the suite's numeric kernels (``/proc/cpuinfo`` flag,
#: name shown): the same code runs several times faster with AVX-512 or AMX than with AVX2 alone.
_VECTOR_UNITS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_vnni", "VNNI"), ("avx512_bf16", "AVX512-BF16"),
                 ("amx_tile", "AMX"))


def _cpu() -> tuple[str, str, str]:
    """(CPU model with its vector units, physical cores, hardware threads [and those this process may use])."""
    model, cores = platform.processor() or platform.machine(), set()
    vector: list[str] = []
    try:
        phys = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (x.strip() for x in line.partition(":"))
            if key == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value
            elif key == "flags" and not vector:
                have = set(value.split())
                vector = [name for flag, name in _VECTOR_UNITS if flag in have]
            elif key == "physical id":
                phys = value
            elif key == "core id":
                core = value
            elif not line.strip() and core is not None:
                cores.add((phys, core))
                phys = core = None
        if core is not None:
            cores.add((phys, core))
    except OSError:
        pass
    threads = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = threads
    thread_text = f"{threads}" + (f" ({usable} available to the run)" if usable != threads else "")
    limit = os.environ.get(THREADS_ENV)
    if limit:
        thread_text += f", {THREADS_ENV}={limit}"
    model = (model or "unknown") + (f" ({', '.join(vector)})" if vector else "")
    return model, str(len(cores)) if cores else "unknown", thread_text


def _version(dist: str, module: str | None = None) -> str:
    mod = sys.modules.get(module or dist)
    v = getattr(mod, "__version__", None) if mod is not None else None
    if v is None:
        try:
            from importlib.metadata import version

            v = version(dist)
        except Exception:
            return "not installed"
    return str(v)


def _gpu(device: str | None) -> str:
    """The GPU's name when ``device`` is a CUDA device this torch can use, else ``""``."""
    if not device or not str(device).startswith("cuda") or "torch" not in sys.modules:
        return ""
    import torch

    if not torch.cuda.is_available():
        return ""
    index = int(str(device).partition(":")[2] or 0)
    return f"{torch.cuda.get_device_name(index)} (cuda:{index})"


def machine(device: str | None = None) -> dict[str, str]:
    """What a measurement ran on, as ``{field: text}``.

    Parameters
    ----------
    device : str, optional
        The torch device the measured methods used (``cpu``, ``cuda:0``, ...); a CUDA device adds
        its GPU's name.

    Returns
    -------
    dict
        ``cpu`` (model), ``cores`` (physical), ``threads`` (hardware threads, those available to
        this process, ``BLURMAP_THREADS``), ``os``, ``python``, ``numpy``, ``torch``, ``opencv``
        and, with a CUDA ``device``, ``gpu``.
    """
    cpu, cores, threads = _cpu()
    facts = {
        "cpu": cpu,
        "cores": cores,
        "threads": threads,
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": _version("torch"),
        "opencv": _version("opencv-python-headless", "cv2"),
    }
    gpu = _gpu(device)
    if gpu:
        facts["gpu"] = gpu
    return facts
