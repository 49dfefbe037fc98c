"""Datasets in the CUHK layout, the paper's splits, list files, masks, external maps, image reading."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from baselines.interface import InputError, read_image
from evaluation.datasets import Dataset, DatasetError, ExternalMaps, load_mask, parse_maps_option, read_list_file


def _write(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]  # RGB(A) -> BGR(A) for OpenCV
    assert cv2.imwrite(str(path), arr)
    return path


@pytest.fixture
def tiny(tmp_path, rng) -> Path:
    """motion0001 (.JPG upper case, grey mask), motion0002 (.png, RGBA mask), out_of_focus0003 (.bmp, 0/1 mask)."""
    root = tmp_path / "bench"
    photo = lambda: (rng.random((20, 30, 3)) * 255).astype(np.uint8)  # noqa: E731
    mask = np.zeros((20, 30), np.uint8)
    mask[:, :10] = 255
    _write(root / "image" / "motion0001.JPG", photo())
    _write(root / "image" / "motion0002.png", photo())
    _write(root / "image" / "out_of_focus0003.bmp", photo())
    _write(root / "gt" / "motion0001.png", mask)
    _write(root / "gt" / "motion0002.png", np.dstack([mask, mask, mask, np.full_like(mask, 255)]))
    _write(root / "gt" / "out_of_focus0003.png", (mask > 0).astype(np.uint8))
    return root


def test_layout_letter_case_and_splits(tiny):
    ds = Dataset(tiny)
    assert ds.stems("all") == ["motion0001", "motion0002", "out_of_focus0003"]
    assert ds.stems("odd") == ["motion0001", "out_of_focus0003"]
    assert ds.stems("even") == ["motion0002"]
    assert ds.stems("D_o") == ds.stems("odd") and ds.stems("d_e") == ds.stems("even")
    assert ds.images["motion0001"].name == "motion0001.JPG"


@pytest.mark.parametrize("stem", ["motion0001", "motion0002", "out_of_focus0003"])
def test_mask_forms_read_alike(tiny, stem):
    mask = load_mask(tiny / "gt" / f"{stem}.png")
    assert mask.dtype == bool and mask.shape == (20, 30)
    assert mask[:, :10].all() and not mask[:, 10:].any()


def test_list_file_formats(tiny, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text("# a comment\n'motion0002.jpg'\n\n7.bmp--out_of_focus0003.jpg\nmotion0001\n")
    assert read_list_file(lst) == ["motion0002", "out_of_focus0003", "motion0001"]
    assert Dataset(tiny).stems(lst) == ["motion0002", "out_of_focus0003", "motion0001"]
    lst.write_text("motion0009.jpg\n")
    with pytest.raises(DatasetError, match="1 listed image"):
        Dataset(tiny).stems(lst)


def test_shared_split_lists_resolve(cuhk_dir):
    ds = Dataset(cuhk_dir)
    splits = cuhk_dir / "splits"
    assert len(ds.stems(splits / "kim2018_test_list.txt")) == 200
    assert len(ds.stems(splits / "kim2018_train_list.txt")) == 800
    assert len(ds.stems(splits / "btbnet_cuhk_te1_xu100_to_original_from_DDFFNet_split.txt")) == 100
    assert len(ds.stems("odd")) == len(ds.stems("even")) == 500


def test_missing_photos(tiny):
    (tiny / "image" / "motion0002.png").unlink()
    ds = Dataset(tiny)
    with pytest.raises(DatasetError, match=r"1 of 3 photos .* missing \(motion0002\).*--allow-missing"):
        ds.samples("all")
    assert [s.stem for s in ds.samples("all", allow_missing=True)] == ["motion0001", "out_of_focus0003"]
    assert len(ds.samples("all", need_images=False)) == 3


def test_size_mismatch_names_the_file(tiny, rng):
    _write(tiny / "image" / "motion0002.png", (rng.random((21, 30, 3)) * 255).astype(np.uint8))
    sample = Dataset(tiny).samples("even")[0]
    with pytest.raises(DatasetError, match=r"motion0002.png: photo is 30x21 px but its mask"):
        sample.image(sample.mask().shape)


def test_split_errors(tiny, tmp_path):
    ds = Dataset(tiny)
    with pytest.raises(DatasetError, match="unknown split"):
        ds.stems("evn")
    _write(tiny / "gt" / "nonumber.png", np.zeros((20, 30), np.uint8))
    with pytest.raises(DatasetError, match="no number"):
        Dataset(tiny).stems("odd")
    with pytest.raises(DatasetError, match="dataset folder not found"):
        Dataset(tmp_path / "nowhere")
    (tmp_path / "empty" / "gt").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no mask files"):
        Dataset(tmp_path / "empty")


def test_two_files_for_one_stem(tiny, rng):
    _write(tiny / "image" / "motion0001.png", (rng.random((20, 30, 3)) * 255).astype(np.uint8))
    with pytest.raises(DatasetError, match="two files for image 'motion0001'"):
        Dataset(tiny)


def test_external_maps_png_npy_and_polarity(tiny, tmp_path):
    maps = tmp_path / "maps"
    sharp = np.tile(np.linspace(0, 255, 30).astype(np.uint8), (20, 1))
    _write(maps / "motion0001.png", sharp)
    maps.mkdir(exist_ok=True)
    np.save(maps / "motion0002.npy", np.full((20, 30), 0.25, np.float32))
    sample1, sample2, _ = Dataset(tiny).samples("all", need_images=False)
    as_sharp = ExternalMaps("m", maps, high_is_sharp=True)
    np.testing.assert_array_equal(as_sharp.load(sample1, (20, 30)), 255 - sharp)
    np.testing.assert_allclose(as_sharp.load(sample2, (20, 30)), 0.75)
    np.testing.assert_allclose(ExternalMaps("m", maps).load(sample2, (20, 30)), 0.25)
    assert as_sharp.missing(["motion0001", "out_of_focus0003"]) == ["out_of_focus0003"]
    np.save(maps / "motion0002.npy", np.full((20, 30), 3.0))
    with pytest.raises(DatasetError, match=r"motion0002.npy: float map values span"):
        as_sharp.load(sample2, (20, 30))
    with pytest.raises(DatasetError, match="map is 30x20 px but its mask"):
        as_sharp.load(sample1, (21, 30))


def test_read_map_file_is_the_one_map_reader(tmp_path):
    from baselines.datasets import IMAGE_EXTENSIONS
    from evaluation.datasets import MAP_EXTENSIONS, read_map_file

    assert set(MAP_EXTENSIONS) == {".npy", *IMAGE_EXTENSIONS} and ".webp" in MAP_EXTENSIONS
    levels = np.tile(np.arange(30, dtype=np.uint8), (20, 1))
    assert read_map_file(_write(tmp_path / "m.png", levels)).dtype == np.uint8  # 8-bit levels kept exact
    np.testing.assert_allclose(read_map_file(_write(tmp_path / "m16.png", levels.astype(np.uint16) * 2000)),
                               levels.astype(np.float64) * 2000 / 65535)
    np.save(tmp_path / "nan.npy", np.full((20, 30), np.nan, np.float32))
    with pytest.raises(DatasetError, match=r"nan\.npy: map contains NaN"):
        read_map_file(tmp_path / "nan.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(DatasetError, match=r"junk\.npy: not a readable \.npy array"):
        read_map_file(tmp_path / "junk.npy")
    np.save(tmp_path / "int.npy", np.zeros((20, 30), np.int32))
    with pytest.raises(DatasetError, match="unsupported map dtype int32"):
        read_map_file(tmp_path / "int.npy")


def test_parse_maps_option():
    assert parse_maps_option("hifst=/a/b:sharp") == ("hifst", Path("/a/b"), True)
    assert parse_maps_option("x=rel/dir") == ("x", Path("rel/dir"), False)
    with pytest.raises(DatasetError, match="NAME=DIR"):
        parse_maps_option("justadir")


def test_read_image_forms(tmp_path, rng):
    rgb = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    ref = read_image(_write(tmp_path / "a.png", rgb))
    np.testing.assert_allclose(ref, rgb / 255.0, atol=1e-6)
    np.testing.assert_allclose(read_image(_write(tmp_path / "b.png", rgb.astype(np.uint16) * 257)), ref, atol=1e-6)
    np.testing.assert_array_equal(read_image(_write(tmp_path / "c.png", np.dstack([rgb, rgb[:, :, :1]]))), ref)
    grey = read_image(_write(tmp_path / "d.png", rgb[:, :, 0]))
    assert grey.shape == (20, 30, 3) and np.all(grey[..., 0] == grey[..., 2])


@pytest.mark.parametrize(
    "content, message",
    [(None, "file not found"), (b"", "not a readable image"), (b"\x89PNG garbage", "not a readable image")],
)
def test_read_image_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "photo.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_tiny_and_huge_images_rejected(tmp_path):
    with pytest.raises(InputError, match="at least 16x16"):
        read_image(_write(tmp_path / "t.png", np.zeros((8, 8, 3), np.uint8)))
    from baselines.interface import as_rgb_float

    huge = np.broadcast_to(np.zeros((1, 1), np.uint8), (12000, 9000))  # 108 MP, no memory used
    with pytest.raises(InputError, match="downscale"):
        as_rgb_float(huge)
