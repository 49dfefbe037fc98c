"""Guarantees every registered detector shares: shape, range, dtype, determinism, bad input.

Parametrised over the registry, so a newly registered method is covered without editing this file.
"""

from __future__ import annotations

import numpy as np
import pytest

from baselines.interface import InputError, MIN_SIDE
from evaluation.registry import METHODS, load_class, get_detector

# every method that runs without a weight file: the paper rows, the extras and dbm_int8
NAMES = sorted(n for n, s in METHODS.items() if s.in_all or getattr(load_class(n), "shipped", ()))  # usable as is

_cache: dict[str, object] = {}


def _detector(name: str, natural_rgb: np.ndarray):
    """One instance per method; trainable ones are fitted on two synthetic pairs first."""
    if name not in _cache:
        det = get_detector(name)
        if det.trainable:
            det.fit(_training_pairs(natural_rgb))
        _cache[name] = det
    return _cache[name]


def _training_pairs(rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    from scipy import ndimage

    blurred = np.stack([ndimage.gaussian_filter(rgb[..., c], 3.0) for c in range(3)], axis=-1)
    pairs = []
    for flip in (False, True):
        mask = np.zeros(rgb.shape[:2], bool)
        mask[:, : rgb.shape[1] // 2] = True
        if flip:
            mask = ~mask
        pairs.append((np.where(mask[..., None], blurred, rgb).astype(np.float32), mask))
    return pairs


@pytest.fixture(params=NAMES)
def name(request) -> str:
    return request.param


def test_map_shape_dtype_range(name, natural_rgb):
    det = _detector(name, natural_rgb)
    img = natural_rgb[:97, :131]
    out = det(img)
    assert out.shape == (97, 131)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.max() - out.min() > 1e-3, "a detector should not return a constant map on a photo"


def test_deterministic(name, natural_rgb):
    det = _detector(name, natural_rgb)
    img = natural_rgb[:64, :80]
    np.testing.assert_array_equal(det(img), det(img))


def test_input_forms_agree(name, natural_rgb):
    """uint8, uint16 and float versions of one photo give (nearly) the same map; alpha is ignored."""
    det = _detector(name, natural_rgb)
    u8 = np.round(natural_rgb[:64, :80] * 255).astype(np.uint8)
    ref = det(u8)
    np.testing.assert_allclose(det(u8.astype(np.float32) / 255), ref, atol=1e-4)
    np.testing.assert_allclose(det(u8.astype(np.uint16) * 257), ref, atol=1e-4)
    rgba = np.dstack([u8, np.full(u8.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(det(rgba), ref)


def test_grey_input(name, natural_rgb):
    det = _detector(name, natural_rgb)
    grey = (natural_rgb[:64, :80].mean(axis=2) * 255).astype(np.uint8)
    out = det(grey)
    assert out.shape == grey.shape
    np.testing.assert_array_equal(out, det(np.dstack([grey] * 3)))


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((MIN_SIDE - 1, 40, 3), np.uint8), "at least"),
        (np.zeros((40, 40, 5), np.uint8), "shape"),
        (np.zeros((40, 40, 3), np.int32), "dtype"),
        (np.full((40, 40, 3), 2.0, np.float32), "scale"),
        (np.full((40, 40, 3), np.nan, np.float32), "NaN"),
    ],
    ids=["tiny", "5-channel", "int32", "float-0-255", "nan"],
)
def test_bad_input_is_one_clear_line(name, natural_rgb, bad, message):
    det = _detector(name, natural_rgb)
    with pytest.raises(InputError, match=message) as info:
        det(bad)
    assert "\n" not in str(info.value)


# Settings validation ------------------------------------------------------------------------------
#: Every registered method, including the DBM configurations without shipped weights: their settings
#: are validated before any weight file is looked for, so the bad-settings test is cheap for all.
ALL_METHODS = sorted(METHODS)

#: Numeric settings for which 0 is a legitimate value (every other one must reject 0).
ZERO_OK = {
    "chakrabarti10": {"noise_sigma", "smoothness", "colour_weight"},  # noise-free, no MRF, no colour term
    "chen16": {"beta"},  # uniform superpixel affinities
    "liu08": {"seed"},
    "shi14": {"bp_tol", "seed"},  # bp_tol 0: run every belief-propagation sweep
    "tang16": {"iterations"},  # superpixel means without neighbour updates
    "yi16_lbp": {"t_lbp", "t_blur", "alpha"},
    **{n: {"size"} for n in METHODS if n.startswith("dbm")},  # size 0: keep the photo's size
}


def _numeric_settings(name: str) -> list[tuple[str, type]]:
    """``(setting, int or float)`` for every numeric keyword of the detector class's signature."""
    import inspect

    from evaluation.registry import load_class

    out = []
    for p in inspect.signature(load_class(name).__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        d, ann = p.default, str(p.annotation)
        if isinstance(d, bool):
            continue
        if isinstance(d, int):
            out.append((p.name, int))
        elif isinstance(d, float):
            out.append((p.name, float))
        elif d is None and ("int" in ann or "float" in ann):
            out.append((p.name, int if "int" in ann else float))
    return out


def test_every_method_has_numeric_settings_to_check():
    """Guards the signature scan below: it must find the settings (e.g. HiFST's stride)."""
    assert ("stride", int) in _numeric_settings("hifst")
    assert ("noise_sigma", float) in _numeric_settings("chakrabarti10")
    assert ("size", int) in _numeric_settings("dbm_config_i")


@pytest.mark.parametrize("method", ALL_METHODS)
def test_out_of_range_settings_are_refused_at_construction(method):
    """Negative, zero (where > 0 is needed), NaN, infinite, non-integer and bool values of every
    numeric setting raise a one-line InputError naming the method and the setting, when the
    detector is built (before any image is seen)."""
    import re

    settings = _numeric_settings(method)
    for setting, kind in settings:
        bad = [-5 if kind is int else -5.0, float("nan"), float("inf"), float("-inf"), True, np.float64("nan")]
        if kind is int:
            bad += [2.5, "3"]
        if setting not in ZERO_OK.get(method, set()):
            bad.append(0 if kind is int else 0.0)
        for value in bad:
            with pytest.raises(InputError) as info:
                get_detector(method, **{setting: value})
            text = str(info.value)
            assert "\n" not in text
            assert text.startswith(f"{method}: "), text
            assert re.search(rf"\b{setting}\b", text), f"{method}({setting}={value!r}): {text}"
            assert "must be" in text and "got" in text, text


def _default(name: str, setting: str):
    import inspect

    from evaluation.registry import load_class

    return inspect.signature(load_class(name).__init__).parameters[setting].default


@pytest.mark.parametrize("method", ALL_METHODS)
def test_default_settings_construct(method, natural_rgb):
    if METHODS[method].needs_torch and method not in NAMES:
        pytest.skip(f"{method} needs weights=PATH (no shipped weights)")
    det = _detector(method, natural_rgb) if METHODS[method].needs_torch else get_detector(method)
    for setting, _ in _numeric_settings(method):
        if setting in det.settings:  # validation never rewrites a setting (cache keys stay the same)
            assert det.settings[setting] == _default(method, setting)


def test_setting_checks_helpers():
    from baselines._checks import check_bool, check_choice, check_float, check_int, check_int_sequence

    assert check_int("m", "n", np.int64(3), minimum=1) == 3
    assert check_int("m", "n", None, allow_none=True) is None
    assert check_float("m", "x", np.float32(0.5), minimum=0, maximum=1) == 0.5
    assert check_float("m", "x", 2, minimum=0, min_open=True) == 2.0
    assert check_int_sequence("m", "s", np.array([3, 5]), minimum=3, odd=True) == (3, 5)
    assert check_choice("m", "c", "a", ("a", "b")) == "a"
    cases = [
        (lambda: check_int("m", "n", True, minimum=1), "m: n must be an integer >= 1, got True"),
        (lambda: check_int("m", "n", 4, minimum=3, odd=True), "m: n must be an odd integer >= 3, got 4"),
        (lambda: check_int("m", "n", 9, minimum=1, maximum=8), "m: n must be an integer in [1, 8], got 9"),
        (lambda: check_int(None, "n", 0, minimum=1, allow_none=True), "n must be None or an integer >= 1, got 0"),
        (lambda: check_float("m", "x", float("nan"), minimum=0), "m: x must be a finite number >= 0, got nan"),
        (lambda: check_float("m", "x", 0, minimum=0, min_open=True), "m: x must be a finite number > 0, got 0"),
        (lambda: check_float("m", "x", 1.5, minimum=0, maximum=1, min_open=True),
         "m: x must be a finite number in (0, 1], got 1.5"),
        (lambda: check_float("m", "x", np.bool_(True)), "m: x must be a finite number, got np.True_"),
        (lambda: check_choice("m", "c", 1, ("1", "2")), "m: c must be one of '1', '2', got 1"),
        (lambda: check_bool("m", "f", 1), "m: f must be True or False, got 1"),
        (lambda: check_int_sequence("m", "s", 7, minimum=3),
         "m: s must be a non-empty sequence of integers >= 3, got 7"),
        (lambda: check_int_sequence("m", "s", (3, 1.0), minimum=1),
         "m: s must be a non-empty sequence of integers >= 1, got (3, 1.0)"),
    ]
    for call, message in cases:
        with pytest.raises(InputError) as info:
            call()
        assert str(info.value) == message


def test_get_detector_is_the_same_front_door_as_build():
    """``get_detector`` is kept for compatibility: it is ``build`` under its older name, and says so."""
    from evaluation.registry import build

    a, b = get_detector("gradient_energy", window=9), build("gradient_energy", window=9)
    assert type(a) is type(b) and a.cache_key() == b.cache_key()
    assert "same front door as :func:`build`" in get_detector.__doc__ and "compatibility" in get_detector.__doc__
    with pytest.raises(InputError):
        get_detector("gradient_energy", weights="no/such/file.pt")
