"""``blur-map``: any method, folders and patterns (``--recursive``), ``--list-methods``, the output kinds
(PNG, ``--npy``, ``--mask``, ``--overlay``) and ``--set``. Cheap methods on small photos only."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from evaluation import predict
from evaluation.metrics import quantize
from evaluation.registry import METHODS, build


def _photo(path: Path, h: int = 40, w: int = 50, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur((rng.random((h, w, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
    img[:, : w // 2] = cv2.GaussianBlur(img[:, : w // 2], (0, 0), 4.0)
    assert cv2.imwrite(str(path), img)
    return path


def _run(*args) -> int:
    return predict.main([*map(str, args), "--method", "gradient_energy", "--quiet"])


def _one_line_error(capsys, *needles):
    lines = [x for x in capsys.readouterr().err.strip().splitlines() if not x.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_list_methods_is_derived_from_the_registry(capsys):
    assert predict.main(["--list-methods"]) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line for line in text.splitlines() if line and not line.startswith(" ")}
    assert set(METHODS) <= set(rows)
    for name, spec in METHODS.items():
        assert (spec.paper_row or "-") in rows[name]
        assert spec.summary in text
        assert re.search(rf"\b{'yes' if spec.needs_torch else 'no'}\b", rows[name][len(name):])
    assert "training" in rows["liu08"] and "training" in rows["shi14"]
    assert "--weights FILE" in rows["dbm_config_i"] and "shipped" in rows["dbm"]
    assert "settings (--set hifst.NAME=VALUE): scales=7,15,31,63, stride=1, precision=float32" in text


def test_help_says_what_the_values_mean(capsys):
    with pytest.raises(SystemExit):
        predict.main(["--help"])
    text = capsys.readouterr().out
    assert "1 = blurred" in text and "255 = blurred" in text and "--recursive" in text


def test_recursive_folders_and_patterns(tmp_path):
    _photo(tmp_path / "shots" / "a.jpg")
    _photo(tmp_path / "shots" / "day2" / "b.png", seed=1)
    _photo(tmp_path / "shots" / "day2" / "deeper" / "c.jpg", seed=2)
    _photo(tmp_path / "shots" / ".hidden" / "d.jpg", seed=3)
    (tmp_path / "shots" / "notes.txt").write_text("not a photo")
    names = lambda ps: sorted(p.name for p in ps)  # noqa: E731
    assert names(predict.collect_photos([tmp_path / "shots"])) == ["a.jpg"]
    assert names(predict.collect_photos([tmp_path / "shots"], recursive=True)) == ["a.jpg", "b.png", "c.jpg"]
    assert names(predict.collect_photos([str(tmp_path / "shots" / "*")])) == ["a.jpg", "b.png"]  # matched folder
    deep = predict.collect_photos([str(tmp_path / "shots" / "**" / "*.jpg")], recursive=True)
    assert names(deep) == ["a.jpg", "c.jpg"]
    # a recursive run into a folder inside its input does not take its own maps for photos next time
    out = tmp_path / "shots" / "maps"
    for _ in range(2):
        assert _run(tmp_path / "shots", "--recursive", "--out", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_1.png", "b.png", "b_1.png", "c.png", "c_1.png"]


def test_a_pattern_without_photos_is_one_line(tmp_path, capsys):
    assert _run(str(tmp_path / "*.jpg"), "--out", tmp_path / "o") == 2
    _one_line_error(capsys, "*.jpg", "matches no photos")


def test_output_kinds(tmp_path):
    photo = _photo(tmp_path / "in" / "p.png")
    out = tmp_path / "out"
    assert _run(photo, "--out", out, "--npy", "--mask", "0.5", "--overlay", "--png") == 0
    assert sorted(p.name for p in out.iterdir()) == ["p.npy", "p.png", "p_mask.png", "p_overlay.jpg"]
    blur = np.load(out / "p.npy")
    assert blur.dtype == np.float32 and blur.shape == (40, 50)
    assert np.array_equal(blur, build("gradient_energy")(cv2.imread(str(photo))[:, :, ::-1]))
    png = cv2.imread(str(out / "p.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(png, quantize(blur))  # the runner's levels: the PNG equals its cached map
    mask = cv2.imread(str(out / "p_mask.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(mask)) <= {0, 255} and np.array_equal(mask == 255, blur >= 0.5)
    assert cv2.imread(str(out / "p_overlay.jpg")).shape == (40, 50, 3)
    # the PNG map is written beside the other kinds unless --no-png; --overlay-format png; Otsu
    out2 = tmp_path / "out2"
    assert _run(photo, "--out", out2, "--mask", "otsu", "--overlay", "--overlay-format", "png", "--no-png") == 0
    assert sorted(p.name for p in out2.iterdir()) == ["p_mask.png", "p_overlay.png"]
    out3 = tmp_path / "out3"
    assert _run(photo, "--out", out3, "--mask", "otsu") == 0
    assert sorted(p.name for p in out3.iterdir()) == ["p.png", "p_mask.png"]
    assert _run(photo, "--out", tmp_path / "out4", "--no-png") == 2  # nothing to write: refused before any work
    assert not (tmp_path / "out4").exists()
    assert _run(photo, "--out", tmp_path / "out5", "--png", "--no-png", "--npy") == 2  # contradictory: refused
    assert not (tmp_path / "out5").exists()
    otsu = cv2.imread(str(out2 / "p_mask.png"), cv2.IMREAD_UNCHANGED) == 255
    assert otsu[:, :10].mean() > 0.9 and otsu[:, -10:].mean() < 0.1  # the blurred left half


def test_all_files_of_a_photo_share_one_free_name(tmp_path, capsys):
    photo = _photo(tmp_path / "in" / "p.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "p_mask.png").write_bytes(b"someone's mask")
    assert _run(photo, "--out", out, "--mask", "0.5") == 0
    assert (out / "p_mask.png").read_bytes() == b"someone's mask"
    assert sorted(p.name for p in out.iterdir()) == ["p_1.png", "p_1_mask.png", "p_mask.png"]
    assert "--overwrite" in capsys.readouterr().err
    assert _run(photo, "--out", out, "--mask", "0.5", "--overwrite") == 0
    assert (out / "p_mask.png").read_bytes() != b"someone's mask"
    targets, _ = predict.plan_output_names([Path("x/a.jpg"), Path("y/a.png"), Path("z/a_1.jpg")], tmp_path / "n",
                                           (".png", "_mask.png"))
    assert [t["_mask.png"].name for t in targets] == ["a_mask.png", "a_2_mask.png", "a_1_mask.png"]


def test_settings_reach_the_method(tmp_path, capsys):
    photo = _photo(tmp_path / "in" / "p.png")
    assert _run(photo, "--out", tmp_path / "a", "--npy") == 0
    assert _run(photo, "--out", tmp_path / "b", "--npy", "--set", "gradient_energy.window=3") == 0
    default, small = np.load(tmp_path / "a" / "p.npy"), np.load(tmp_path / "b" / "p.npy")
    assert np.array_equal(small, build("gradient_energy", window=3)(cv2.imread(str(photo))[:, :, ::-1]))
    assert not np.array_equal(default, small)
    assert _run(photo, "--out", tmp_path / "c", "--set", "gradient_energy.widow=3") == 2
    _one_line_error(capsys, "Did you mean 'window'", "sigma, window")
    assert _run(photo, "--out", tmp_path / "c", "--set", "gradient_energy.window=3.5") == 2
    _one_line_error(capsys, "window", "whole number")
    assert _run(photo, "--out", tmp_path / "c", "--set", "gradient_energy.window=0") == 2
    _one_line_error(capsys, "window must be an integer >= 1")
    assert _run(photo, "--out", tmp_path / "c", "--set", "hifst.stride=2") == 2
    _one_line_error(capsys, "hifst", "--method")
    assert not (tmp_path / "c").exists()


def test_learned_methods_without_weights_say_how_to_train(tmp_path, capsys):
    photo = _photo(tmp_path / "in" / "p.png")
    assert predict.main([str(photo), "--out", str(tmp_path / "o"), "--method", "shi14"]) == 2
    _one_line_error(capsys, "shi14", "python -m evaluation.run")


def test_one_list_of_photo_types_and_precisions(tmp_path, capsys):
    from baselines.datasets import IMAGE_EXTENSIONS
    from dbm.detector import PRECISIONS

    assert predict.PHOTO_SUFFIXES is IMAGE_EXTENSIONS and ".webp" in IMAGE_EXTENSIONS
    webp = tmp_path / "in" / "w.webp"
    webp.parent.mkdir()
    assert cv2.imwrite(str(webp), cv2.imread(str(_photo(tmp_path / "p.png"))))
    assert predict.collect_photos([tmp_path / "in"]) == [webp]
    with pytest.raises(SystemExit):
        predict.main(["--help"])
    assert "{" + ",".join(PRECISIONS) + "}" in capsys.readouterr().out


def test_png_levels_round_halves_up(tmp_path, monkeypatch):
    """Exact half levels (0.5/255) are stored as the runner stores them (1), not half-to-even (0)."""
    photo = _photo(tmp_path / "in" / "p.png")

    class Half:
        trainable = False

        def __call__(self, rgb):
            return np.full(rgb.shape[:2], 0.5 / 255)

    monkeypatch.setattr(predict, "make_detector", lambda *a, **k: Half())
    assert _run(photo, "--out", tmp_path / "o") == 0
    assert (cv2.imread(str(tmp_path / "o" / "p.png"), cv2.IMREAD_UNCHANGED) == 1).all()


def test_out_of_memory_skips_the_photo_in_one_line(tmp_path, monkeypatch, capsys):
    photos = [_photo(tmp_path / "in" / "a.png"), _photo(tmp_path / "in" / "b.png", seed=1)]

    class Hungry:
        trainable = False

        def __call__(self, rgb):
            if Hungry.calls == 0:
                Hungry.calls += 1
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")
            return np.zeros(rgb.shape[:2], np.float32)

    Hungry.calls = 0
    monkeypatch.setattr(predict, "make_detector", lambda *a, **k: Hungry())
    assert _run(*photos, "--out", tmp_path / "o") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("skipped: ") and "a.png" in err[0] and "out of memory" in err[0]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["b.png"]
    assert predict.out_of_memory(RuntimeError("shape mismatch")) is None
