"""Guarantees every registered detector shares: shape, range, dtype, determinism, bad input.

Parametrised over the registry, so a newly registered method is covered without editing this file.
"""

from __future__ import annotations

import numpy as np
import pytest

from baselines.interface import InputError, MIN_SIDE
from evaluation.registry import METHODS, get_detector

# every method that runs without a weight file: the paper rows, the extras and dbm_int8
NAMES = sorted(n for n, s in METHODS.items() if s.in_all or n == "dbm_int8")

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
