"""The paper's three applications of blur maps (Ma et al., IEEE TIP 2018, Sec. IV-C, Figs. 10-12),
on images whose answer is known: a sharp textured subject pasted on a Gaussian-blurred background."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from _blur_synth import photo
from baselines.interface import InputError
from evaluation import applications as app
from evaluation.registry import build


def _square(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    s = min(h, w)
    return a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]


def composite(size: int = 192, sigma: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's astronaut (sharp, inside an ellipse) on its rocket photo blurred with a Gaussian of ``sigma``.

    Returns the RGB float32 photo and the true mask (True = blurred).
    """
    subject = _square(photo("astronaut", size))[:size, :size]
    background = _square(photo("rocket", round(size * 640 / 427) + 1))[:size, :size]
    yy, xx = np.mgrid[0:size, 0:size]
    sharp = ((yy - size / 2) / (0.34 * size)) ** 2 + ((xx - size / 2) / (0.30 * size)) ** 2 <= 1
    if sigma > 0:
        background = cv2.GaussianBlur(background, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    rgb = np.where(sharp[:, :, None], subject, background).astype(np.float32)
    return rgb, ~sharp


@pytest.fixture(scope="module")
def scene():
    return composite()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a, b).sum() / np.logical_or(a, b).sum())


# --- 1. Segmentation (Fig. 10) -----------------------------------------------------------------------------------
def test_grabcut_seeds_follow_the_papers_intervals():
    blur = np.array([[0.0, 0.0999, 0.1, 0.4999, 0.5, 0.8999, 0.9, 1.0]], np.float32)
    expected = [cv2.GC_FGD, cv2.GC_FGD, cv2.GC_PR_FGD, cv2.GC_PR_FGD, cv2.GC_PR_BGD, cv2.GC_PR_BGD, cv2.GC_BGD,
                cv2.GC_BGD]
    assert app.grabcut_seeds(blur).tolist() == [expected]


def test_segmentation_from_the_true_map(scene):
    rgb, truth = scene
    hard = app.segment_blur(rgb, truth.astype(np.float32))
    assert hard.method == "grabcut" and _iou(hard.blurred, truth) >= 0.9
    # a soft true map (a 12-pixel-wide band of probable labels along the boundary): GrabCut decides the band
    soft = cv2.GaussianBlur(truth.astype(np.float32), (0, 0), 4.0)
    seg = app.segment_blur(rgb, soft)
    iou = _iou(seg.blurred, truth)
    print(f"\nsegmentation IoU from the true map: {_iou(hard.blurred, truth):.3f} (binary), {iou:.3f} (soft)")
    assert seg.method == "grabcut" and iou >= 0.9


def test_segmentation_from_hifst_and_dbm(scene):
    """The IoU each method's map gives on the composite (printed; one HiFST and one DBM call, 192 x 192)."""
    pytest.importorskip("torch")
    rgb, truth = scene
    scores = {}
    for name in ("hifst", "dbm"):
        seg = app.segment_blur(rgb, build(name, device="cpu")(rgb) if name == "dbm" else build(name)(rgb))
        scores[name] = _iou(seg.blurred, truth)
    print(f"\nsegmentation IoU with the true mask: HiFST {scores['hifst']:.3f}, DBM {scores['dbm']:.3f} "
          f"(calling every pixel blurred: {truth.mean():.3f})")
    # both beat the trivial all-blurred answer by a margin (measured: 0.916 and 0.909)
    assert all(v >= truth.mean() + 0.15 for v in scores.values()), scores


@pytest.mark.parametrize("value, expected", [(0.0, False), (0.3, False), (1.0, True), (0.95, True)])
def test_segmentation_falls_back_to_the_thresholded_map(scene, value, expected):
    rgb, _ = scene
    seg = app.segment_blur(rgb, np.full(rgb.shape[:2], value, np.float32))
    assert seg.method == "threshold" and "0.5" in seg.note
    assert seg.blurred.dtype == bool and np.all(seg.blurred == expected)


def test_segmentation_falls_back_when_one_side_has_too_few_pixels(scene):
    rgb, _ = scene
    blur = np.zeros(rgb.shape[:2], np.float32)
    blur[0, :3] = 1.0  # three blurred pixels: too few for GrabCut's 5-component colour model
    seg = app.segment_blur(rgb, blur)
    assert seg.method == "threshold" and seg.blurred.sum() == 3


# --- 2. Blur degree (Fig. 11) ------------------------------------------------------------------------------------
def test_blur_degree_is_the_mean_and_ranks_ascending():
    maps = [np.full((20, 20), v, np.float32) for v in (0.7, 0.2, 0.5)]
    degrees = [app.blur_degree(m) for m in maps]
    assert degrees == pytest.approx([0.7, 0.2, 0.5])
    assert app.rank_by_degree(["a", "b", "c"], degrees) == [("b", pytest.approx(0.2), 1), ("c", pytest.approx(0.5), 2),
                                                            ("a", pytest.approx(0.7), 3)]


def test_blur_degree_grows_with_the_blur_strength():
    """S from DBM (at the photo's own size, 128 x 128: four cheap calls) rises with the background's blur.

    DBM's values are probabilities, so S is comparable across photos; methods that normalise their
    map per photo (most classical ones) do not give a monotone S. Once the background is clearly
    blurred (sigma > 2 px at this size) its probability saturates and S stops rising.
    """
    pytest.importorskip("torch")
    det = build("dbm", device="cpu", size=0)
    degrees = [app.blur_degree(det(composite(128, sigma)[0])) for sigma in (0.0, 0.5, 1.0, 2.0)]
    print("\nblur degree S of the composite, background sigma 0, 0.5, 1, 2: " + ", ".join(f"{s:.3f}" for s in degrees))
    assert all(a < b for a, b in zip(degrees, degrees[1:])), degrees


def test_degree_strip_is_a_png():
    photos = [np.full((30, 40, 3), v, np.uint8) for v in (10, 200)]
    png = app.degree_strip(photos, ["a", "b"], [0.8, 0.1], maps=[np.zeros((30, 40))] * 2, title="t")
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[1] > 200


# --- 3. Magnification (Fig. 12) ----------------------------------------------------------------------------------
def test_magnification_keeps_the_sharp_region_and_blurs_the_rest(scene):
    rgb, truth = scene
    photo8 = np.round(rgb * 255).astype(np.uint8)
    out = app.magnify_blur(photo8, truth.astype(np.float32), sigma=4.0)
    assert out.dtype == np.uint8 and out.shape == photo8.shape
    assert np.array_equal(out[~truth], photo8[~truth])  # bit for bit
    diff = np.abs(out[truth].astype(int) - photo8[truth].astype(int))
    assert diff.mean() > 1.0
    # the paper's rule: strictly above 0.1 is blurred more, 0.1 itself is not
    blur = np.where(truth, 0.11, 0.1).astype(np.float32)
    assert np.array_equal(app.magnify_blur(photo8, blur)[~truth], photo8[~truth])
    # a float photo gives the same result as its 8-bit form
    assert np.array_equal(app.magnify_blur(rgb, truth.astype(np.float32), sigma=4.0), out)


def test_magnification_strength_and_bad_settings(scene):
    rgb, truth = scene
    photo8 = np.round(rgb * 255).astype(np.uint8)
    weak, strong = (np.abs(app.magnify_blur(photo8, truth.astype(np.float32), sigma=s).astype(int) - photo8).mean()
                    for s in (1.0, 6.0))
    assert strong > weak > 0
    with pytest.raises(InputError, match="sigma"):
        app.magnify_blur(photo8, truth.astype(np.float32), sigma=0)
    with pytest.raises(InputError, match="map is"):
        app.magnify_blur(photo8, truth[:10].astype(np.float32))


# --- shared helpers ----------------------------------------------------------------------------------------------
def test_threshold_map_and_overlay():
    blur = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (16, 1))
    assert app.threshold_map(blur, 0.5).sum() == (blur >= 0.5).sum()
    two = np.where(blur < 0.5, 0.2, 0.8).astype(np.float32)
    assert np.array_equal(app.threshold_map(two, "otsu"), two > 0.5)
    assert app.threshold_map(np.full((16, 16), 0.7, np.float32), "otsu").all()
    photo8 = np.full((16, 64, 3), 100, np.uint8)
    tinted = app.overlay(photo8, blur)
    assert np.array_equal(tinted[:, 0], photo8[:, 0])  # sharp pixels keep their colour
    assert tinted[0, -1].tolist() == [round(0.4 * 100 + 0.6 * 255), 40, 40]


def test_read_map_forms(tmp_path):
    truth = np.zeros((20, 30), np.float32)
    truth[:, 15:] = 1
    cv2.imwrite(str(tmp_path / "m.png"), (truth * 255).astype(np.uint8))
    np.save(tmp_path / "m.npy", truth * 0.5)
    assert np.array_equal(app.read_map(tmp_path / "m.png", (20, 30)), truth)
    assert np.allclose(app.read_map(tmp_path / "m.npy"), truth * 0.5)
    with pytest.raises(InputError, match="photo is 40 x 20"):
        app.read_map(tmp_path / "m.png", (20, 40))
    np.save(tmp_path / "bad.npy", truth * 3)
    with pytest.raises(InputError, match=r"bad\.npy.*\[0, 1\]"):
        app.read_map(tmp_path / "bad.npy")


# --- command line ------------------------------------------------------------------------------------------------
@pytest.fixture()
def files(tmp_path, scene):
    rgb, truth = scene
    (tmp_path / "in").mkdir()
    photo_path = tmp_path / "in" / "scene.png"
    cv2.imwrite(str(photo_path), np.round(rgb[:, :, ::-1] * 255).astype(np.uint8))
    (tmp_path / "maps").mkdir()
    map_path = tmp_path / "maps" / "scene.png"  # named after its photo, as --map requires
    cv2.imwrite(str(map_path), truth.astype(np.uint8) * 255)
    return photo_path, map_path, truth


def _one_line_error(capsys, *needles):
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("note:")]
    assert len(err) == 1 and err[0].startswith("error:"), err
    for needle in needles:
        assert needle in err[0], (needle, err[0])


def test_cli_segment_and_magnify_with_a_map_file(tmp_path, files, capsys):
    photo_path, map_path, truth = files
    out = tmp_path / "out"
    assert app.main(["segment", str(photo_path), "--map", str(map_path), "--out", str(out)]) == 0
    mask = cv2.imread(str(out / "scene_segment.png"), cv2.IMREAD_UNCHANGED)
    assert _iou(mask == 255, truth) >= 0.9 and (out / "scene_segment.jpg").is_file()
    assert app.main(["magnify", str(photo_path), "--map", str(map_path), "--out", str(out), "--sigma", "3"]) == 0
    magnified = cv2.imread(str(out / "scene_magnified.png"))
    original = cv2.imread(str(photo_path))
    assert np.array_equal(magnified[~truth], original[~truth]) and not np.array_equal(magnified, original)
    # nothing is overwritten without --overwrite
    before = (out / "scene_magnified.png").read_bytes()
    assert app.main(["magnify", str(photo_path), "--map", str(map_path), "--out", str(out), "--sigma", "6"]) == 0
    assert (out / "scene_magnified.png").read_bytes() == before and (out / "scene_1_magnified.png").is_file()
    assert "--overwrite" in capsys.readouterr().err


def test_cli_degree_with_a_method(tmp_path, files):
    photo_path, _, _ = files
    sharp = tmp_path / "in" / "sharp.png"
    cv2.imwrite(str(sharp), np.round(composite(192, 0.0)[0][:, :, ::-1] * 255).astype(np.uint8))
    out = tmp_path / "deg"
    rc = app.main(["degree", str(tmp_path / "in"), "--method", "gradient_energy", "--set", "gradient_energy.window=9",
                   "--out", str(out), "--quiet"])
    assert rc == 0
    rows = list(csv.DictReader((out / "degree.csv").open()))
    assert [r["rank"] for r in rows] == ["1", "2"] and float(rows[0]["S"]) <= float(rows[1]["S"])
    assert {Path(r["photo"]).name for r in rows} == {"scene.png", "sharp.png"}
    assert cv2.imread(str(out / "degree.png")) is not None


def test_cli_bad_input_is_one_line(tmp_path, files, capsys):
    photo_path, map_path, _ = files
    out = str(tmp_path / "o")
    assert app.main(["segment", str(photo_path), str(photo_path.with_name("x.png")), "--map", str(map_path),
                     "--out", out]) == 2
    _one_line_error(capsys, "no such file")
    assert app.main(["segment", str(photo_path), str(photo_path), "--map", str(map_path), "--map", str(map_path),
                     "--method", "hifst", "--out", out]) == 2
    _one_line_error(capsys, "--map", "--method")
    assert app.main(["magnify", str(photo_path), "--map", str(map_path), "--out", out, "--sigma", "-1"]) == 2
    _one_line_error(capsys, "--sigma")
    assert app.main(["segment", str(photo_path), "--method", "gradient_energy", "--set", "gradient_energy.sigm=2",
                     "--out", out]) == 2
    _one_line_error(capsys, "Did you mean 'sigma'")
    assert app.main(["segment", str(photo_path), "--out", out, "--method", "liu08"]) == 2
    _one_line_error(capsys, "liu08", "train")
    assert app.main([]) == 2
    _one_line_error(capsys, "segment, degree, magnify")
    assert not Path(out).exists()


def test_map_files_must_be_named_after_their_photos(tmp_path, files, capsys):
    photo_path, map_path, _ = files
    other = tmp_path / "maps" / "other.png"
    other.write_bytes(map_path.read_bytes())
    assert app.main(["segment", str(photo_path), "--map", str(other), "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "--map", "other.png", "scene.png")
    assert not (tmp_path / "o").exists()


def test_read_map_is_the_runners_reader(tmp_path):
    """One reader for --map and the runner's --maps: same header check, same scaling of 16-bit maps."""
    from evaluation.datasets import read_map_file

    levels = np.array([[0, 65535], [32768, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "m16.png"), np.kron(levels, np.ones((8, 8), np.uint16)))
    assert np.allclose(app.read_map(tmp_path / "m16.png"), read_map_file(tmp_path / "m16.png"))
    np.save(tmp_path / "vec.npy", np.zeros(5, np.float32))
    with pytest.raises(InputError, match=r"vec\.npy.*2-D"):
        app.read_map(tmp_path / "vec.npy")


def test_otsu_levels_round_halves_up_as_the_runner():
    from evaluation.metrics import quantize

    half = np.full((4, 4), 0.5 / 255, np.float32)  # 0.5 of a level: the runner stores 1, np.round 0
    half[:, 2:] = 200 / 255
    assert quantize(half)[0, 0] == 1
    assert np.array_equal(app.threshold_map(half, "otsu"), quantize(half) > 1)


def test_figures_read_a_01_mask_and_report_os_errors_in_one_line(tmp_path, files, capsys, monkeypatch):
    photo_path, _, truth = files
    gt01 = tmp_path / "gt01.png"
    cv2.imwrite(str(gt01), truth.astype(np.uint8))  # a 0/1 mask, as baselines.datasets.load_mask reads it
    seen = {}
    real_iou = app._iou

    def spy(a, b):
        seen["gt"] = b
        return real_iou(a, b)

    monkeypatch.setattr(app, "_iou", spy)
    args = ["figures", "--photo", str(photo_path), "--gt", str(gt01), "--degree-photos", str(photo_path),
            "--methods", "gradient_energy", "--out", str(tmp_path / "fig")]
    assert app.main(args) == 0
    assert np.array_equal(seen["gt"], truth)  # not "all sharp"
    assert cv2.imread(str(tmp_path / "fig" / "degree.png")) is not None
    capsys.readouterr()
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), truth[:50, :60].astype(np.uint8) * 255)
    assert app.main([*args[:4], str(small), *args[5:]]) == 2
    _one_line_error(capsys, "--gt", "small.png", "60 x 50")

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("evaluation.predict.write_checked", full_disk)
    assert app.main([*args[:-1], str(tmp_path / "fig2")]) == 1
    _one_line_error(capsys, "segmentation.png", "No space left on device", "--out")
    monkeypatch.setattr("evaluation.predict.collect_photos", lambda *a, **k: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", str(tmp_path / "locked"))))
    assert app.main(["degree", str(photo_path), "--map", str(files[1]), "--out", str(tmp_path / "d")]) == 2
    _one_line_error(capsys, "locked", "Permission denied")
