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


def _mask_folder(folder, shapes):
    folder.mkdir()
    for stem, (h, w) in shapes.items():
        m = np.zeros((h, w), np.uint8)
        m[:, : w // 3] = 255  # blurred left third
        cv2.imwrite(str(folder / f"{stem}.png"), m)
    return folder


def test_borrowed_mask_matches_orientation_size_and_blur_kind(tmp_path, natural_rgb):
    folder = _mask_folder(tmp_path / "gt", {"motion0001": (60, 90), "out_of_focus0002": (90, 60)})
    pool = sorted(folder.glob("*.png"))
    landscape = natural_rgb  # 128 x 160
    for seed in range(6):
        mask, blur, info = corpus.borrowed_mask(pool, landscape, np.random.default_rng(seed), p_snap=0.0)
        assert info == {"mask_from": "motion0001"} and blur == "motion"
        assert mask.shape == landscape.shape[:2] and mask.dtype == bool
        # a third of the width blurred, on the left or (flipped) on the right
        assert abs(mask.mean() - 1 / 3) < 0.02 and (mask[:, 0].all() or mask[:, -1].all())
    portrait = np.ascontiguousarray(natural_rgb.transpose(1, 0, 2))
    mask, blur, info = corpus.borrowed_mask(pool, portrait, np.random.default_rng(0), p_snap=0.0)
    assert info["mask_from"] == "out_of_focus0002" and blur == "defocus" and mask.shape == portrait.shape[:2]


def test_build_never_uses_excluded_masks_and_splits_the_others(tmp_path):
    from skimage import data

    photos = tmp_path / "photos"
    (photos / "photos").mkdir(parents=True)
    with open(photos / "photos.jsonl", "w") as f:
        for i, img in enumerate([data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]):
            pid = f"p{i}"
            small = cv2.resize(img, (160, 120), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(photos / "photos" / f"{pid}.png"), small[..., ::-1])
            f.write(json.dumps({"id": pid, "kept": True, "path": f"{pid}.png"}) + "\n")
    stems = {f"out_of_focus{i:04d}": (60, 90) for i in range(12)}
    masks = _mask_folder(tmp_path / "gt", stems)
    excluded = ["OUT_OF_FOCUS0003", "out_of_focus0007"]  # case differs, as .JPG photos do
    counts = corpus.build_corpus(photos, tmp_path / "c", per_photo=6, heldout_fraction=0.5, heldout_per_photo=6, seed=0,
                                 cuhk_masks=masks, cuhk_fraction=1.0, exclude_stems=excluded, log=lambda *a: None)
    used = {}
    for split in ("train", "heldout"):
        rows = [json.loads(line) for line in (tmp_path / "c" / split / "pairs.jsonl").read_text().splitlines()]
        assert len(rows) == counts[split]
        used[split] = {r["mask_from"] for r in rows if "mask_from" in r}
    assert used["train"] and used["heldout"]
    assert not used["train"] & used["heldout"]  # held-out pairs borrow shapes never seen in training
    assert not (used["train"] | used["heldout"]) & {"out_of_focus0003", "out_of_focus0007"}
    meta = json.loads((tmp_path / "c" / "corpus.json").read_text())
    assert meta["excluded_stems"] == ["out_of_focus0003", "out_of_focus0007"]
    assert sum(meta["cuhk_masks_used"].values()) == 10


def test_build_cli_excludes_the_stems_of_a_photo_folder(tmp_path, monkeypatch):
    seen = {}

    def fake_build(photos, out, **kw):
        seen.update(kw)
        return {}

    monkeypatch.setattr(corpus, "build_corpus", fake_build)
    evaluation_photos = tmp_path / "image"
    evaluation_photos.mkdir()
    (evaluation_photos / "motion0138.jpg").write_bytes(b"")
    (evaluation_photos / "out_of_focus0080.JPG").write_bytes(b"")
    rc = corpus.main(["build", "--photos", str(tmp_path), "--out", str(tmp_path / "c"), "--cuhk-masks", str(tmp_path),
                      "--exclude-photos", str(evaluation_photos), "--cuhk-fraction", "0.25"])
    assert rc == 0
    assert sorted(seen["exclude_stems"]) == ["motion0138", "out_of_focus0080"] and seen["cuhk_fraction"] == 0.25
