"""The synthetic-corpus builder: photo filtering, Qt resource carving, manifest, CUHK layout."""

from __future__ import annotations

import json
import struct

import cv2
import numpy as np
import pytest

from dbm import corpus


def _rcc(blobs: list[bytes]) -> bytes:
    """A minimal Qt resource bundle: header, then length-prefixed data entries."""
    data = b"".join(struct.pack(">I", len(b)) + b for b in blobs)
    start = 20
    tree = names = start + len(data)
    return b"qres" + struct.pack(">IIII", 3, tree, start, names) + data + b"\x00" * 16


def test_carve_rcc_returns_the_jpeg_and_webp_entries(natural_rgb):
    u8 = np.round(natural_rgb[..., ::-1] * 255).astype(np.uint8)
    jpg = cv2.imencode(".jpg", u8)[1].tobytes()
    webp = cv2.imencode(".webp", u8)[1].tobytes()
    blob = _rcc([b"<svg/>", jpg, b"\x00\x00\x01\x00zlib", webp])
    found = list(corpus.carve_rcc_jpegs(blob))
    assert found == [jpg, webp]
    assert list(corpus.carve_rcc_jpegs(b"not a bundle")) == []


def test_sharp_photo_filter():
    from skimage import data

    photo = data.astronaut().astype(np.float32) / 255  # 512 px, as sharp as stored
    ok, why = corpus.is_sharp_photo(photo)
    assert ok, why
    blurred = cv2.GaussianBlur(photo, (0, 0), 4)
    ok, why = corpus.is_sharp_photo(blurred)
    assert not ok and "blurred" in why
    drawing = np.zeros((480, 640, 3), np.float32)
    drawing[100:300, 200:400] = (1, 0, 0)
    ok, why = corpus.is_sharp_photo(drawing)
    assert not ok and "graphic" in why


@pytest.mark.slow
def test_fetch_and_build_write_a_manifest_and_the_cuhk_layout(tmp_path):
    src = corpus.Source("skimage", "scikit-image", ("astronaut.png", "coffee.png", "camera.png"), "test licence")
    records = corpus.fetch_photos(tmp_path / "cache", tmp_path / "photos", [src], log=lambda *a: None)
    kept = [r for r in records if r.get("kept")]
    # camera.png is a grey photo: too few distinct colours, rejected as a graphic
    assert {r["path"] for r in kept} == {"astronaut.png", "coffee.png"}
    for r in records:
        assert r["licence"] == "test licence" and len(r["sha256"]) == 64
    lines = (tmp_path / "photos" / "photos.jsonl").read_text().splitlines()
    assert len(lines) == len(records)
    counts = corpus.build_corpus(tmp_path / "photos", tmp_path / "corpus", per_photo=2, heldout_fraction=0.5,
                                 heldout_per_photo=1, seed=1, log=lambda *a: None)
    assert counts["train"] + counts["heldout"] == 2 * counts["train_photos"] + counts["heldout_photos"]
    from dbm.data import iter_pairs

    for split in ("train", "heldout"):
        if counts[split]:
            pairs = list(iter_pairs(tmp_path / "corpus" / split))  # the runner's reader: CUHK layout
            assert len(pairs) == counts[split]
            _, rgb, mask = pairs[0]
            assert rgb.shape[:2] == mask.shape
    meta = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    assert meta["seed"] == 1
