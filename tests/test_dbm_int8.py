"""int8 inference of DBM: quantization, stored calibration, ``precision="int8"``, ``dbm.quantize``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dbm import quantize  # noqa: E402
from dbm.detector import DBM, SHIPPED_WEIGHTS
from evaluation.registry import load_class  # noqa: E402
from dbm.model import build_model, load_weights, quantize_int8, save_weights  # noqa: E402

pytestmark = pytest.mark.skipif("x86" not in torch.backends.quantized.supported_engines,
                                reason="no x86 quantized engine")


def _net(config="II"):
    net = build_model(config, pretrained=False, seed=0).eval()
    with torch.no_grad():
        net.score.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
    return net


def _images(natural_rgb, n=4, size=64):
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        y, x = rng.integers(0, 32, 2)
        crop = cv2.resize(natural_rgb[y : y + 96, x : x + 128], (size, size), interpolation=cv2.INTER_AREA)
        out.append(torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None])
    return out


def test_int8_network_follows_the_float_network(natural_rgb):
    net = _net()
    cal = _images(natural_rgb)
    qnet, qparams = quantize_int8(net, cal)
    # one activation range per quantization point: the input and each of the 4 fused conv+ReLU of stages 1-2
    assert set(qparams) == {"quant", "trunk.stages.0.0", "trunk.stages.0.2", "trunk.stages.1.0", "trunk.stages.1.2"}
    x = torch.from_numpy(np.ascontiguousarray(natural_rgb.transpose(2, 0, 1)))[None]  # not a calibration image
    with torch.inference_mode():
        z, zq = net(x), qnet(x)
    assert zq.shape == z.shape == (1, 1, 128, 160)
    assert float(torch.corrcoef(torch.stack([z.flatten(), zq.flatten()]))[0, 1]) > 0.99
    assert float((z - zq).abs().mean() / z.std()) < 0.05  # quantization error: a few % of the logits' spread
    # the float network is left as it was
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_stored_qparams_rebuild_the_same_int8_network(natural_rgb):
    net = _net()
    qnet, qparams = quantize_int8(net, _images(natural_rgb))
    again, same = quantize_int8(net, qparams=qparams)
    assert same == qparams
    x = _images(natural_rgb, n=1, size=80)[0]
    with torch.inference_mode():
        assert torch.equal(qnet(x), again(x))


def test_quantize_int8_refuses_bad_requests(natural_rgb):
    net = _net()
    with pytest.raises(ValueError, match="either"):
        quantize_int8(net)
    with pytest.raises(ValueError, match="either"):
        quantize_int8(net, _images(natural_rgb, 1), qparams={})
    with pytest.raises(ValueError, match="lack"):
        quantize_int8(net, qparams={"quant": [1.0, 0, 0, 127]})
    with pytest.raises(ValueError, match="plain"):
        quantize_int8(build_model("V", "fusion", pretrained=False, seed=0), _images(natural_rgb, 1))


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """Configuration II weights (input 64 px) and the same file with an int8 calibration from a tiny dataset."""
    from skimage import data

    root = tmp_path_factory.mktemp("int8")
    (root / "train" / "image").mkdir(parents=True)
    (root / "train" / "gt").mkdir()
    photo = data.astronaut()
    for i, (y, x) in enumerate([(0, 0), (100, 200), (250, 50)]):
        cv2.imwrite(str(root / "train" / "image" / f"p{i}.jpg"), photo[y : y + 120, x : x + 160, ::-1])
        cv2.imwrite(str(root / "train" / "gt" / f"p{i}.png"), np.zeros((120, 160), np.uint8))
    plain = root / "plain.pt"
    save_weights(_net(), plain, {"input_size": 64})
    out = root / "int8.pt"
    rc = quantize.main(["--weights", str(plain), "--data", str(root / "train"), "--images", "2", "--out", str(out)])
    assert rc == 0
    return plain, out


def test_quantize_cli_stores_the_calibration_and_keeps_the_weights(calibrated):
    plain, out = calibrated
    net0, meta0 = load_weights(plain)
    net1, meta1 = load_weights(out)
    assert "int8" not in meta0 and meta1["input_size"] == 64
    record = meta1["int8"]
    assert record["backend"] == "x86" and "2 photos" in record["calibration"] and "64 x 64" in record["calibration"]
    assert len(record["qparams"]) == 5
    for a, b in zip(net0.state_dict().values(), net1.state_dict().values()):
        assert torch.equal(a, b)


def test_quantize_cli_reports_errors_in_one_line(tmp_path, capsys, calibrated):
    plain, _ = calibrated
    (tmp_path / "image").mkdir()
    (tmp_path / "gt").mkdir()
    rc = quantize.main(["--weights", str(plain), "--data", str(tmp_path), "--out", str(tmp_path / "x.pt")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_int8_detector_matches_fp32_and_needs_a_calibration(calibrated, natural_rgb):
    plain, with_int8 = calibrated
    cls = load_class("dbm_config_ii")
    with pytest.raises(ValueError, match="no int8 calibration"):
        cls(weights=str(plain), precision="int8")
    with pytest.raises(ValueError, match="CPU only"):
        cls(weights=str(with_int8), precision="int8", device="cuda")
    f32 = cls(weights=str(with_int8))
    i8 = cls(weights=str(with_int8), precision="int8")
    assert f32.settings != i8.settings  # distinct map-cache keys
    a, b = f32(natural_rgb), i8(natural_rgb)
    assert b.shape == a.shape == natural_rgb.shape[:2] and b.dtype == np.float32
    assert 0 <= b.min() and b.max() <= 1
    assert np.abs(a - b).mean() < 0.02


def test_predict_cli_accepts_int8(tmp_path, calibrated, natural_rgb):
    from evaluation import predict

    _, with_int8 = calibrated
    cv2.imwrite(str(tmp_path / "a.png"), np.round(natural_rgb[..., ::-1] * 255).astype(np.uint8))
    rc = predict.main([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--method", "dbm_config_ii",
                       "--weights", str(with_int8), "--precision", "int8", "--quiet"])
    assert rc == 0 and (tmp_path / "o" / "a.png").is_file()


def test_shipped_weights_run_in_int8_close_to_fp32():
    """The shipped file carries an int8 calibration; at a small input the two maps agree closely."""
    from skimage import data

    assert SHIPPED_WEIGHTS.is_file()
    _, meta = load_weights(SHIPPED_WEIGHTS)
    assert "int8" in meta, "the shipped weights lack their int8 calibration (python -m dbm.quantize)"
    photo = cv2.resize(data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    a = DBM(size=192)(photo)
    b = DBM(size=192, precision="int8")(photo)
    assert np.abs(a - b).mean() < 0.03
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98


def test_int8_network_is_padded_and_cropped_like_the_float_one(natural_rgb):
    """Configuration V at 97 x 131 (not multiples of 16): the int8 logits follow the float ones."""
    net = _net("V")
    qnet, _ = quantize_int8(net, _images(natural_rgb, size=96))
    x = torch.from_numpy(np.ascontiguousarray(natural_rgb[:97, :131].transpose(2, 0, 1)))[None]
    with torch.inference_mode():
        z, zq = net(x), qnet(x)
    assert zq.shape == z.shape == (1, 1, 97, 131)
    assert float(torch.corrcoef(torch.stack([z.flatten(), zq.flatten()]))[0, 1]) > 0.99
