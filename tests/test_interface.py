"""The detector interface's helpers: image conversion, mat2gray, thread budget."""

from __future__ import annotations

import numpy as np
import pytest

from baselines.interface import THREADS_ENV, as_rgb_float, mat2gray, rgb_to_grey, thread_budget


def test_mat2gray():
    np.testing.assert_allclose(mat2gray(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    assert mat2gray(np.array([7, 9], np.uint8)).dtype == np.float64
    assert np.all(mat2gray(np.full(4, 3.0)) == 0.0)  # MATLAB: a constant array maps to 0
    assert np.all(mat2gray(np.array([1.0, 1.0 + 1e-13]), flat=0.5, tol=1e-12) == 0.5)
    assert mat2gray(np.array([1, 2], np.float32)).dtype == np.float32


def test_thread_budget(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "3")
    assert thread_budget() == 3 and thread_budget(cap=2) == 2
    monkeypatch.setenv(THREADS_ENV, "junk")
    assert thread_budget() >= 1
    monkeypatch.delenv(THREADS_ENV)
    assert thread_budget(cap=1) == 1


def test_rgb_conversion_and_grey_weights():
    u8 = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    rgb = as_rgb_float(np.tile(u8, (8, 8, 1)))
    assert rgb.dtype == np.float32 and rgb.shape == (16, 16, 3)
    grey = rgb_to_grey(rgb[:2, :2].astype(np.float64))
    # MATLAB rgb2gray weights: 0.2989 R + 0.5870 G + 0.1140 B, white stays white.
    np.testing.assert_allclose(grey.ravel(), [0.298936, 0.587043, 0.114021, 1.0], atol=1e-6)


def test_bool_and_single_channel_inputs():
    mask = np.zeros((16, 20, 1), bool)
    mask[:, :10] = True
    out = as_rgb_float(mask)
    assert out.shape == (16, 20, 3) and out[0, 0, 2] == 1.0 and out[0, 15, 0] == 0.0
    with pytest.raises(Exception, match="cannot convert|shape"):
        as_rgb_float(np.zeros((16, 16, 3, 2)))
