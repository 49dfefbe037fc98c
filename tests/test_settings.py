"""``--set METHOD.NAME=VALUE``: typed from each detector's signature, checked, and part of the cache key."""

from __future__ import annotations

import inspect
from pathlib import Path

import cv2
import numpy as np
import pytest

from baselines.interface import InputError
from evaluation import run as runner
from evaluation.metrics import quantize
from evaluation.registry import METHODS, build, load_class
from evaluation.settings import OWN_OPTIONS, check_selected, method_settings, parse_set_options, parse_value


def test_types_come_from_the_signature():
    got = parse_set_options(["zhuo11.canny=octave", "hifst.stride=2", "hifst.scales=7, 15,31",
                             "chakrabarti10.noise_sigma=none", "tang16.refine=off", "gradient_energy.sigma=2",
                             "dbm.size=320", "chakrabarti10.directions=horizontal,vertical"])
    assert got == {"zhuo11": {"canny": "octave"}, "hifst": {"stride": 2, "scales": (7, 15, 31)},
                   "chakrabarti10": {"noise_sigma": None, "directions": ("horizontal", "vertical")},
                   "tang16": {"refine": False}, "gradient_energy": {"sigma": 2.0}, "dbm": {"size": 320}}
    assert isinstance(got["gradient_energy"]["sigma"], float) and isinstance(got["hifst"]["stride"], int)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_default_round_trips(name):
    """For every registered method, each setting's default written as --set text parses back to the default."""
    params = inspect.signature(load_class(name).__init__).parameters
    settings = method_settings(name)
    assert set(settings) == {p for p in params if p not in ("self", *OWN_OPTIONS)}
    for setting in settings.values():
        assert setting.kind != "any", (name, setting)
        default = setting.default
        value = parse_value(setting, setting.show_default())
        assert value == (tuple(default) if isinstance(default, list) else default), (name, setting.name)


@pytest.mark.parametrize("item, needles", [
    ("hifst.strid=2", ["hifst has no setting 'strid'", "Did you mean 'stride'", "scales, stride, precision"]),
    ("hfst.stride=2", ["unknown method 'hfst'", "Did you mean 'hifst'"]),
    ("hifst.stride=two", ["stride expects a whole number (int)", "'two'", "default is 1"]),
    ("hifst.stride=1.5", ["whole number"]),
    ("gradient_energy.sigma=inf", ["sigma expects a finite number (float)"]),
    ("tang16.refine=maybe", ["refine expects true or false (bool)"]),
    ("hifst.scales=7,x", ["scales expects comma-separated items, each a whole number"]),
    ("dbm.weights=w.pt", ["use --weights"]),
    ("dbm.device=cuda", ["use --device"]),
    ("hifst=2", ["expected METHOD.NAME=VALUE"]),
    ("hifst.stride", ["expected METHOD.NAME=VALUE"]),
])
def test_bad_settings_are_one_line(item, needles):
    with pytest.raises(InputError) as info:
        parse_set_options([item])
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"--set {item}")
    for needle in needles:
        assert needle in message, (needle, message)


def test_a_setting_given_twice_and_settings_of_unselected_methods():
    with pytest.raises(InputError, match="given twice"):
        parse_set_options(["hifst.stride=2", "hifst.stride=3"])
    with pytest.raises(InputError, match="hifst is not run.*add hifst to --methods"):
        check_selected(parse_set_options(["hifst.stride=2"]), ["dbm", "zhuo11"])


def test_range_checks_are_the_methods_own():
    with pytest.raises(InputError, match="hifst: stride must be an integer >= 1, got 0"):
        build("hifst", **parse_set_options(["hifst.stride=0"])["hifst"])


def test_settings_key_the_cache():
    default = build("gradient_energy").cache_key()
    same = build("gradient_energy", **parse_set_options(["gradient_energy.sigma=1"])["gradient_energy"])
    other = build("gradient_energy", **parse_set_options(["gradient_energy.window=7"])["gradient_energy"])
    assert same.cache_key() == default != other.cache_key()


def _tiny_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in (1, 2):
        img = cv2.GaussianBlur((rng.random((48, 64, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
        img[:, :32] = cv2.GaussianBlur(img[:, :32], (0, 0), 4.0)
        mask = np.zeros((48, 64), np.uint8)
        mask[:, :32] = 255
        (root / "image").mkdir(parents=True, exist_ok=True)
        (root / "gt").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "image" / f"t{i}.png"), img)
        cv2.imwrite(str(root / "gt" / f"t{i}.png"), mask)
    return root


def test_runner_runs_with_different_settings_never_share_cached_maps(tmp_path, capsys):
    data = _tiny_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    common = ["--data", str(data), "--split", "all", "--methods", "gradient_energy", "--cache", str(cache), "--quiet"]
    window5 = ["--set", "gradient_energy.window=5"]
    for out, extra in (("a", []), ("b", window5), ("c", window5)):
        assert runner.main([*common, "--out", str(tmp_path / out), "--save-maps", *extra]) == 0
    keys = sorted(p.name for p in (cache / "gradient_energy").iterdir() if p.is_dir())
    assert len(keys) == 2, keys  # default and window=5; the second window=5 run reused its maps
    # rows and saved maps are labelled with their settings (evaluation.settings.result_label)
    folders = {"a": "gradient_energy", "b": "gradient_energy[window=5]", "c": "gradient_energy[window=5]"}
    maps = {o: cv2.imread(str(tmp_path / o / "maps" / folders[o] / "t1.png"), cv2.IMREAD_UNCHANGED) for o in "abc"}
    assert all(m is not None for m in maps.values())
    assert not np.array_equal(maps["a"], maps["b"]) and np.array_equal(maps["b"], maps["c"])
    expected = build("gradient_energy", window=5)(cv2.imread(str(data / "image" / "t1.png"))[:, :, ::-1])
    assert np.array_equal(maps["b"], quantize(expected))
    capsys.readouterr()
    # settings of a method not selected, and a bad value, stop the run in one line before any work
    assert runner.main([*common, "--out", str(tmp_path / "d"), "--set", "hifst.stride=2"]) == 2
    assert "hifst is not run" in capsys.readouterr().err
    assert runner.main([*common, "--out", str(tmp_path / "d"), "--set", "gradient_energy.window=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "window must be an integer >= 1" in err
    assert not (tmp_path / "d").exists()
