"""MATLAB compatibility helpers (``baselines.matlab``): each against MATLAB's documented behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from baselines import interface, matlab


def test_interface_reexports_the_same_functions():
    assert interface.rgb_to_grey is matlab.rgb_to_grey
    assert interface.mat2gray is matlab.mat2gray
    assert {"rgb_to_grey", "mat2gray"} <= set(interface.__all__)


def test_rgb2gray_weights_are_matlabs():
    # rgb2gray.m: the first row of inv of the YIQ -> RGB matrix
    yiq = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
    np.testing.assert_allclose(matlab.RGB2GRAY_WEIGHTS, np.linalg.inv(yiq)[0], rtol=0, atol=1e-15)
    rgb = np.array([[[1.0, 0, 0], [0, 1.0, 0]], [[0, 0, 1.0], [1.0, 1.0, 1.0]]], np.float32)
    grey = matlab.rgb_to_grey(rgb)
    assert grey.dtype == np.float32
    np.testing.assert_allclose(grey.ravel(), [0.298936, 0.587043, 0.114021, 1.0], atol=1e-6)
    assert matlab.rgb_to_grey(np.full((2, 2, 3), 255, np.uint8)).dtype == np.float64


def test_mat2gray():
    np.testing.assert_array_equal(matlab.mat2gray(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    assert np.all(matlab.mat2gray(np.full(3, 7.0)) == 0.0)  # the suite's default for a flat map
    assert np.all(matlab.mat2gray(np.full(3, 0.25), flat=0.5) == 0.5)
    # MATLAB: a constant array comes back as itself, clipped to [0, 1]
    np.testing.assert_array_equal(matlab.mat2gray(np.full(3, 0.25), flat=None), [0.25] * 3)
    np.testing.assert_array_equal(matlab.mat2gray(np.full(3, 7.0), flat=None), [1.0] * 3)
    np.testing.assert_array_equal(matlab.mat2gray(np.full(3, -2.0), flat=None), [0.0] * 3)
    assert matlab.mat2gray(np.array([1, 3], np.uint8)).dtype == np.float64
    assert matlab.mat2gray(np.array([1, 3], np.float32)).dtype == np.float32


def test_im2double():
    np.testing.assert_array_equal(matlab.im2double(np.array([0, 51, 255], np.uint8)), [0.0, 0.2, 1.0])
    np.testing.assert_array_equal(matlab.im2double(np.array([0, 65535], np.uint16)), [0.0, 1.0])
    np.testing.assert_array_equal(matlab.im2double(np.array([-32768, 32767], np.int16)), [0.0, 1.0])
    np.testing.assert_array_equal(matlab.im2double(np.array([False, True])), [0.0, 1.0])
    x = np.array([-0.5, 2.0], np.float32)  # double images are returned as they are
    assert matlab.im2double(x).dtype == np.float64
    np.testing.assert_array_equal(matlab.im2double(x), x)
    with pytest.raises(TypeError):
        matlab.im2double(np.array([1], np.int32))


def test_rounding():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999999999999994, 2.4, -2.6])
    np.testing.assert_array_equal(matlab.matlab_round(x), [-3, -2, -1, 1, 2, 3, 0, 2, -3])
    assert np.round(2.5) == 2  # numpy rounds halves to even; MATLAB does not
    # floor(x + 0.5): MATLAB's round on non-negative values, fast; differs below a half by an ulp
    # and for negative halves
    np.testing.assert_array_equal(matlab.round_half_up([0.5, 1.5, 2.5, 254.5, 2.4]), [1, 2, 3, 255, 2])
    assert matlab.round_half_up(0.49999999999999994) == 1.0
    assert matlab.round_half_up(-0.5) == 0.0


def test_fspecial_gaussian_1d():
    # fspecial('gaussian', [1 3], 0.5) = [0.1065 0.7870 0.1065]
    np.testing.assert_allclose(matlab.fspecial_gaussian_1d(3, 0.5), [0.10650698, 0.78698604, 0.10650698], atol=1e-8)
    # even sizes sample half-integer offsets, symmetric about the middle
    g = matlab.fspecial_gaussian_1d(8, 1.0)
    np.testing.assert_allclose(g, g[::-1], rtol=0, atol=0)
    assert g.sum() == pytest.approx(1.0)
    assert g[3] == g[4] and g[3] > g[2]
    # values below eps * max are set to 0
    tiny = matlab.fspecial_gaussian_1d(9, 0.4)
    assert tiny[0] == 0.0 and tiny[-1] == 0.0 and tiny[1] > 0.0
    # the 2-D kernel is the outer product of the 1-D ones
    outer = np.outer(matlab.fspecial_gaussian_1d(5, 1.2), matlab.fspecial_gaussian_1d(5, 1.2))
    x = np.arange(5) - 2.0
    direct = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 1.2**2))
    np.testing.assert_allclose(outer, direct / direct.sum(), rtol=1e-14)


def test_dctmtx():
    d = matlab.dctmtx(7)
    np.testing.assert_allclose(d @ d.T, np.eye(7), atol=1e-14)
    np.testing.assert_allclose(d[0], np.full(7, 1 / np.sqrt(7)), atol=1e-15)
    k, n = 3, np.arange(7)
    np.testing.assert_allclose(d[k], np.sqrt(2 / 7) * np.cos(np.pi * (2 * n + 1) * k / 14), atol=1e-14)
    assert not d.flags.writeable and matlab.dctmtx(7) is d


def test_padarray():
    a = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(matlab.padarray(a, 1, "replicate"), np.pad(a, 1, mode="edge"))
    np.testing.assert_array_equal(matlab.padarray(a, 2, "symmetric")[2], [1, 0, 0, 1, 2, 2, 1])
    np.testing.assert_array_equal(matlab.padarray(a, (0, 1), "circular"), np.pad(a, ((0, 0), (1, 1)), mode="wrap"))
    np.testing.assert_array_equal(matlab.padarray(a, 1), np.pad(a, 1))  # MATLAB's default: zeros
    np.testing.assert_array_equal(matlab.padarray(a, (1, 2), "symmetric", "post"),
                                  np.pad(a, ((0, 1), (0, 2)), mode="symmetric"))
    assert matlab.padarray(a, 1, 0, "pre").shape == (3, 4)
    rgb = np.zeros((2, 3, 3))
    assert matlab.padarray(rgb, 2, "replicate").shape == (6, 7, 3)  # channels are not padded
    with pytest.raises(ValueError, match="padding"):
        matlab.padarray(a, 1, "reflect")


@pytest.mark.parametrize("method", ["replicate", "symmetric", "circular", 0])
def test_border_names_agree_across_libraries(method):
    """The scipy and OpenCV names of each MATLAB padding filter exactly like padding with padarray."""
    import cv2

    rng = np.random.default_rng(0)
    img = rng.random((9, 11))
    k = np.array([0.2, 0.5, 0.3])
    ref = ndimage.correlate1d(matlab.padarray(img, (0, 1), method), k, axis=1, mode="constant")[:, 1:-1]
    np.testing.assert_allclose(ndimage.correlate1d(img, k, axis=1, mode=matlab.scipy_mode(method)), ref, atol=1e-15)
    if method != "circular":  # OpenCV's filters do not wrap
        out = cv2.filter2D(img, cv2.CV_64F, k[None, :], borderType=matlab.cv2_border(method))
        np.testing.assert_allclose(out, ref, atol=1e-12)


def test_prctile():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    # MATLAB: prctile(1:4, [10 25 50 100]) = [1 1.5 2.5 4]
    np.testing.assert_allclose(matlab.prctile(x, [10, 25, 50, 100]), [1.0, 1.5, 2.5, 4.0])
