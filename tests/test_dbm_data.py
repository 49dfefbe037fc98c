"""DBM training pairs: the shared CUHK-layout reader, resized to the paper's square input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from baselines.datasets import DatasetError
from dbm.data import iter_pairs, resize_pair


def _dataset(root, names, size=(20, 30)):
    (root / "image").mkdir(parents=True)
    (root / "gt").mkdir()
    for i, name in enumerate(names):
        stem = name.rsplit(".", 1)[0]
        cv2.imwrite(str(root / "image" / name), np.full((*size, 3), 10 * i, np.uint8))
        mask = np.zeros((20, 30), np.uint8)
        mask[:, :15] = 255
        cv2.imwrite(str(root / "gt" / f"{stem}.png"), mask)
    return root


def test_pairs_of_a_split(tmp_path):
    root = _dataset(tmp_path / "d", ["motion0001.jpg", "motion0002.png", "out_of_focus0003.bmp"])
    pairs = list(iter_pairs(root, "D_o"))
    assert [n for n, _, _ in pairs] == ["motion0001.jpg", "out_of_focus0003.bmp"]
    name, rgb, mask = pairs[1]
    assert rgb.dtype == np.float32 and rgb.shape == (20, 30, 3) and np.allclose(rgb, 20 / 255)
    assert mask.dtype == bool and mask[:, :15].all() and not mask[:, 15:].any()


def test_missing_photo_and_size_mismatch_are_errors(tmp_path):
    root = _dataset(tmp_path / "d", ["motion0001.jpg"])
    cv2.imwrite(str(root / "gt" / "motion0003.png"), np.zeros((20, 30), np.uint8))
    with pytest.raises(DatasetError, match=r"1 of 2 photos .* missing \(motion0003\)"):
        list(iter_pairs(root, "odd"))
    bad = _dataset(tmp_path / "e", ["motion0001.jpg"], size=(21, 30))
    with pytest.raises(DatasetError, match="photo is 30x21 px but its mask"):
        list(iter_pairs(bad, "all"))


def test_resize_pair_to_square():
    rgb = np.random.default_rng(0).random((30, 50, 3)).astype(np.float32)
    mask = np.zeros((30, 50), bool)
    mask[:, 25:] = True
    img, m = resize_pair(rgb, mask, 16)
    assert img.shape == (16, 16, 3) and m.shape == (16, 16)
    assert m[:, 9:].all() and not m[:, :7].any()
