"""The ``--device`` option shared by every command and by the DBM detectors.

One spelling everywhere: ``auto`` (the default: the first CUDA GPU when this torch can use one,
else the CPU), ``cpu``, ``cuda`` (= ``cuda:0``) or ``cuda:N`` (GPU number ``N`` as torch numbers
them, after ``CUDA_VISIBLE_DEVICES``). :func:`parse_device` checks the spelling without importing
torch; :func:`resolve_device` also asks torch whether the device exists and returns the torch
device string to use. Both raise :class:`baselines.interface.InputError` with a one-line message
that names the option and says what to do.

Used by the ``--device`` of every command that runs torch (added by
:func:`dbm.cli.add_common_options`: ``blur-map``, the runner, ``evaluation.speed``,
``evaluation.applications``, ``python -m dbm.train``, ``python -m dbm.quantize``) and by the
``device`` setting of :mod:`dbm.detector`.

Inside :func:`devices_elsewhere`, :func:`resolve_device` checks the spelling only: the runner
builds DBM detectors there that will run on the GPUs of Dask workers (``--scheduler`` with
workers started with ``--resources GPU=1``), which check the device when the detector arrives.
"""

from __future__ import annotations

import contextlib
import re
import threading

from baselines.interface import InputError

__all__ = ["DEVICE_CHOICES", "DEVICE_HELP", "devices_elsewhere", "full_fp32", "parse_device", "resolve_device"]

#: The accepted forms (``N`` is a GPU index: 0, 1, ...).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
#: Help text of a ``--device`` option.
DEVICE_HELP = ("where torch runs: auto (default: the first CUDA GPU when this torch can use one, else the CPU), "
               "cpu, cuda (= cuda:0) or cuda:N (GPU number N)")

_CUDA = re.compile(r"cuda(?::(\d+))?")


_ELSEWHERE = threading.local()


@contextlib.contextmanager
def devices_elsewhere():
    """Within: :func:`resolve_device` answers for the machines the detectors will run on, not this one.

    ``auto`` becomes ``cuda:0`` and a CUDA device is accepted unchecked; the detector checks it
    again, with :func:`resolve_device`, in the process that runs it (:meth:`dbm.detector.DBM.__setstate__`).
    """
    before = getattr(_ELSEWHERE, "on", False)
    _ELSEWHERE.on = True
    try:
        yield
    finally:
        _ELSEWHERE.on = before


@contextlib.contextmanager
def full_fp32(device, enabled: bool = True):
    """Within, on a CUDA ``device``: float32 convolutions and matrix products computed in float32.

    torch computes cuDNN's float32 convolutions in TF32 (a 10-bit mantissa) by default on Ampere and
    later GPUs, so "fp32" maps and ``--amp off`` training would silently differ from the CPU's and
    the paper's float32. Nothing changes on the CPU, or when ``enabled`` is false; the previous
    settings come back on exit. Not thread-safe: callers hold their own lock.
    """
    import torch

    if not enabled or getattr(device, "type", str(device).split(":")[0]) != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9
        targets = [(conv, "fp32_precision", "ieee"), (torch.backends.cuda.matmul, "fp32_precision", "ieee")]
    else:
        targets = [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    try:
        for owner, name, value in targets:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def _forms() -> str:
    return "auto, cpu, cuda or cuda:N (N = GPU number, e.g. cuda:1)"


def parse_device(text: str, *, option: str = "--device") -> str:
    """Check the spelling of a device and return it normalised (no torch needed).

    Parameters
    ----------
    text : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; letter case and surrounding spaces are ignored.
    option : str
        How the caller names the option in messages (``--device``, ``device=``, ...).

    Returns
    -------
    str
        ``"auto"``, ``"cpu"`` or ``"cuda:N"`` (``cuda`` becomes ``cuda:0``).

    Raises
    ------
    InputError
        For any other text (``gpu``, ``cuda:x``, ``mps``, ...), listing the allowed forms.
    """
    raw = str(text)
    value = raw.strip().lower()
    if value in ("auto", "cpu"):
        return value
    m = _CUDA.fullmatch(value)
    if m:
        return f"cuda:{int(m.group(1) or 0)}"
    raise InputError(f"{option} {raw!r}: not a device; use {_forms()}")


def resolve_device(text: str, *, option: str = "--device") -> str:
    """The torch device string for a ``--device`` value, checked against this machine.

    Parameters
    ----------
    text : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (see :func:`parse_device`).
    option : str
        How the caller names the option in messages.

    Returns
    -------
    str
        ``"cpu"`` or ``"cuda:N"``: ``auto`` gives ``"cuda:0"`` when this torch has CUDA and sees a
        GPU, else ``"cpu"``. Inside :func:`devices_elsewhere`: ``auto`` gives ``"cuda:0"``
        and nothing is checked but the spelling.

    Raises
    ------
    InputError
        Bad spelling (:func:`parse_device`); a CUDA device asked for while this torch build has no
        CUDA support, no GPU is visible, or the GPU number does not exist. The message suggests
        ``--device cpu`` (or the GPUs that exist).
    """
    device = parse_device(text, option=option)
    if device == "cpu":
        return "cpu"
    if getattr(_ELSEWHERE, "on", False):
        return "cuda:0" if device == "auto" else device
    import torch

    built = torch.version.cuda is not None or torch.backends.cuda.is_built()
    available = built and torch.cuda.is_available()
    if device == "auto":
        return "cuda:0" if available else "cpu"
    if not built:
        raise InputError(f"{option} {text}: this torch ({torch.__version__}) is a CPU-only build without CUDA; "
                         f"use {option} cpu, or install a CUDA build of torch")
    if not available:
        raise InputError(f"{option} {text}: torch sees no CUDA GPU here (no GPU, no driver, or CUDA_VISIBLE_DEVICES "
                         f"hides them); use {option} cpu")
    index = int(device.split(":")[1])
    count = torch.cuda.device_count()
    if index >= count:
        have = ", ".join(f"cuda:{i}" for i in range(count))
        raise InputError(f"{option} {text}: no such GPU; this machine has {count} ({have}); "
                         f"use one of those or {option} cpu")
    return device
