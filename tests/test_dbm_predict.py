"""``blur-map`` (``python -m evaluation.predict``) and the registered DBM detectors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from evaluation import predict  # noqa: E402
from dbm.detector import DBM, SHIPPED_WEIGHTS
from evaluation.registry import load_class  # noqa: E402
from dbm.model import build_model, save_weights  # noqa: E402


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """Configuration II with a random trunk and score, saved like a trained network (input 48 px)."""
    net = build_model("II", pretrained=False, seed=0)
    with torch.no_grad():
        net.score.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("w") / "config_ii.pt"
    save_weights(net, path, {"input_size": 48})
    return path


def _photos(folder, natural_rgb):
    folder.mkdir()
    u8 = np.round(natural_rgb[..., ::-1] * 255).astype(np.uint8)
    cv2.imwrite(str(folder / "a.jpg"), u8)
    cv2.imwrite(str(folder / "b.PNG"), u8[:100, :120])
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_predict_writes_one_map_per_photo(tmp_path, natural_rgb, small_weights):
    photos = _photos(tmp_path / "in", natural_rgb)
    extra = tmp_path / "c.bmp"
    cv2.imwrite(str(extra), np.zeros((40, 50, 3), np.uint8))
    rc = predict.main([str(photos), str(extra), "--out", str(tmp_path / "out"), "--method", "dbm_config_ii",
                       "--weights", str(small_weights), "--quiet"])
    assert rc == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a.png", "b.png", "c.png"]
    m = cv2.imread(str(tmp_path / "out" / "b.png"), cv2.IMREAD_UNCHANGED)
    assert m.shape == (100, 120) and m.dtype == np.uint8


def test_predict_reports_bad_input_in_one_line(tmp_path, capsys, small_weights):
    rc = predict.main([str(tmp_path / "missing.jpg"), "--out", str(tmp_path / "o"), "--method", "dbm_config_ii",
                       "--weights", str(small_weights)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "no such file" in err and "\n" not in err


def test_variants_need_weights_of_their_architecture(small_weights):
    with pytest.raises(ValueError, match="no shipped weights"):
        load_class("dbm_dsn")()
    with pytest.raises(ValueError, match="needs depth 1"):
        load_class("dbm_config_i")(weights=str(small_weights))
    det = load_class("dbm_config_ii")(weights=str(small_weights))
    assert det.input_size == 48
    out = det(np.random.default_rng(0).random((97, 131, 3)).astype(np.float32))
    assert out.shape == (97, 131) and 0 <= out.min() and out.max() <= 1


def test_shipped_weights_are_configuration_v():
    assert SHIPPED_WEIGHTS.is_file(), "dbm/weights/dbm_config_v.pt is missing"
    det = DBM()
    assert det.input_size > 0 and det.trained_on
    assert det.input_size == det.meta.get("inference_size", det.meta.get("input_size"))


def test_shipped_dbm_tells_sharp_texture_from_its_blurred_copy():
    """A photo at the network's input size whose right half is strongly defocused scores higher there."""
    from skimage import data

    from dbm.synth import apply_psf, disk_psf

    det = DBM()
    s = det.input_size
    photo = cv2.resize(data.astronaut(), (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    rgb = photo.copy()
    rgb[:, s // 2 :] = apply_psf(photo, disk_psf(6))[:, s // 2 :]
    out = det(rgb)
    assert out[:, int(0.6 * s) :].mean() > out[:, : int(0.4 * s)].mean() + 0.2


def test_map_cache_key_follows_the_weight_file_content(tmp_path):
    """Retrained weights at the same path must not reuse maps cached for the old ones."""
    path = tmp_path / "w.pt"
    keys = []
    for seed in (0, 1, 0):
        net = build_model("II", pretrained=False, seed=seed)
        save_weights(net, path, {"input_size": 48})
        keys.append(load_class("dbm_config_ii")(weights=str(path)).cache_key())
    assert keys[0] != keys[1] and keys[0] == keys[2]


def test_map_cache_key_ignores_the_path_of_the_same_weights(tmp_path):
    """The same weight file copied elsewhere (or reached as the default) keys the same maps."""
    net = build_model("II", pretrained=False, seed=0)
    save_weights(net, tmp_path / "a.pt", {"input_size": 48})
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.pt").write_bytes((tmp_path / "a.pt").read_bytes())
    cls = load_class("dbm_config_ii")
    assert cls(weights=str(tmp_path / "a.pt")).cache_key() == cls(weights=str(tmp_path / "b" / "a.pt")).cache_key()
    assert cls(weights=str(tmp_path / "a.pt")).cache_key() != cls(weights=str(tmp_path / "a.pt"), size=64).cache_key()
