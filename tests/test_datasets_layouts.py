"""The other benchmarks' layouts and mask polarity (DUT-DBD, CUHK TE-1, CTCUG, EBD), manifests, the polarity guard."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

import _blur_synth as synth
from baselines.datasets import (
    DATASETS,
    MANIFEST_NAME,
    NAMED_SPLITS,
    POLARITIES,
    POLARITY_VOTE_RATIO,
    Dataset,
    DatasetError,
    _generic,
    sharpness_ratio,
)
from conftest import REPO
from evaluation import run

SIZE = 64  # photos are SIZE x SIZE: small, like DUT's 320 x 320 only smaller


def _save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), arr)
    return path


def _pair(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Photo ``i`` (uint8 RGB, a scikit-image photo with a Gaussian-blurred region) and its mask, True = blurred."""
    rgb, blurred = synth.make_pair(synth.PHOTOS[i % len(synth.PHOTOS)], SIZE, np.random.default_rng(i), "gaussian")
    rgb = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    blurred = cv2.resize(blurred.astype(np.uint8), (SIZE, SIZE), interpolation=cv2.INTER_NEAREST) > 0
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), blurred


def _write_pairs(image_dir: Path, mask_dir: Path, stems, polarity: str, *, photo_ext=".jpg", mask_ext=".png",
                 first: int = 0) -> dict[str, np.ndarray]:
    """Write photos and masks (255 = blurred for 'blur', 255 = in focus for 'sharp'); return stem -> blurred."""
    truth = {}
    for k, stem in enumerate(stems):
        rgb, blurred = _pair(first + k)
        white = blurred if polarity == "blur" else ~blurred
        _save(image_dir / f"{stem}{photo_ext}", rgb)
        _save(mask_dir / f"{stem}{mask_ext}", white.astype(np.uint8) * 255)
        truth[stem] = blurred
    return truth


def _concrete(pattern: str) -> str:
    """A folder path that a layout pattern matches: the first alternative, ``*`` filled in."""
    return "/".join(part.split("|")[0].replace("*", "1204") for part in pattern.split("/"))


def _build(root: Path, layout, polarity: str, per_split: int = 2) -> dict[str, dict[str, np.ndarray]]:
    """Write a dataset in ``layout`` under ``root``; return split -> stem -> True = blurred."""
    truth = {}
    for i, (split, (image_pattern, mask_pattern)) in enumerate(layout.items()):
        stems = [f"{split}{k:04d}" for k in range(1, per_split + 1)]
        truth[split] = _write_pairs(root / _concrete(image_pattern), root / _concrete(mask_pattern), stems, polarity,
                                    photo_ext=".bmp" if i else ".jpg", mask_ext=".bmp" if i else ".png",
                                    first=10 * i)
    return truth


def _check_read(ds: Dataset, truth: dict[str, dict[str, np.ndarray]]) -> None:
    """Every photo paired with its own mask, masks True = blurred, the folders' splits by their names."""
    for split, masks in truth.items():
        samples = ds.samples(split)
        assert [s.stem for s in samples] == sorted(masks)
        for s in samples:
            assert s.image_path.stem == s.mask_path.stem == s.stem
            np.testing.assert_array_equal(s.mask(), masks[s.stem])
    assert len(ds.samples("all")) == sum(len(m) for m in truth.values())


LAYOUTS = [(name, i) for name, spec in DATASETS.items() for i in range(len(spec.layouts))]


@pytest.mark.parametrize("name, index", LAYOUTS, ids=[f"{n}-{i}" for n, i in LAYOUTS])
def test_every_layout_of_the_table_is_read_blur_positive(tmp_path, name, index):
    spec = DATASETS[name]
    folder = tmp_path / (spec.folders[0] if spec.folders else name)
    truth = _build(folder, spec.layouts[index], spec.polarity)
    if spec.polarity != "blur" and not spec.folders and _generic(spec.layouts[index]):
        # common folder names alone never make a folder white = in focus: it must say which dataset it is
        with pytest.raises(DatasetError, match="both mask polarities.*--dataset"):
            Dataset(folder)
        (folder / MANIFEST_NAME).write_text(json.dumps({"dataset": name}))
        ds = Dataset(folder)
        assert ds.spec.name == name and ds.polarity == spec.polarity
        _check_read(ds, truth)
        return
    ds = Dataset(folder)  # found by its layout (and folder name), masks inverted when white = in focus
    assert ds.spec is spec and ds.polarity == spec.polarity and ds.declared_by == "its layout"
    _check_read(ds, truth)
    assert ds.default_split == (spec.default_split if spec.default_split in truth or spec.default_split in
                                ("odd", "even") else "all")
    check = ds.check_polarity()
    assert check.ratios and check.votes == 0
    if spec.folders:  # the same folder given as --data's parent
        for parent in (Dataset(tmp_path, dataset=name), Dataset(tmp_path)):
            assert parent.spec is spec and parent.root == folder
            _check_read(parent, truth)


def test_the_table_is_consistent():
    folder_splits = {"all", "train", "test"}
    assert folder_splits <= set(NAMED_SPLITS)
    for name, spec in DATASETS.items():
        assert name == spec.name == name.lower() and spec.polarity in POLARITIES and spec.title and spec.source
        assert spec.default_split in NAMED_SPLITS
        for layout in spec.layouts:
            assert layout and set(layout) <= folder_splits
    assert DATASETS["cuhk"].polarity == "blur" and next(iter(DATASETS)) == "cuhk"  # image/ + gt/ stays CUHK
    assert {DATASETS[n].polarity for n in ("dut", "cuhk_te1", "ctcug", "ebd")} == {"sharp"}


def test_image_and_gt_stays_cuhk_and_other_names_pick_their_dataset(tmp_path):
    layout = {"all": ("image", "gt")}
    _build(tmp_path / "mine", layout, "blur")
    assert Dataset(tmp_path / "mine").spec.name == "cuhk"
    _build(tmp_path / "ebd", layout, "sharp")  # the distribution's own folder name, any letter case
    assert Dataset(tmp_path / "ebd").spec.name == "ebd"
    _build(tmp_path / "noname", {"all": ("source", "gt")}, "sharp")  # source/ is no CUHK photo folder, but
    with pytest.raises(DatasetError, match="ctcug"):  # common names say nothing of the polarity: refused
        Dataset(tmp_path / "noname")
    assert Dataset(tmp_path / "noname", dataset="ctcug").spec.name == "ctcug"
    _build(tmp_path / "parts", {"train": ("train/image", "train/gt"), "test": ("test/image", "test/gt")}, "blur")
    with pytest.raises(DatasetError, match="dut"):  # a white = blurred dataset in parts is never read as DUT
        Dataset(tmp_path / "parts")


def test_train_and_test_folders_may_repeat_names(tmp_path):
    """CUHK TE-1 and DUT number both parts from 1: each part reads alone; all and odd say which to use."""
    root = tmp_path / "te1"
    train = _write_pairs(root / "xtrain" / "source", root / "xtrain" / "gt", ["1", "2", "3"], "sharp", first=0)
    test = _write_pairs(root / "xtest" / "source", root / "xtest" / "gt", ["1", "2"], "sharp", mask_ext=".bmp", first=5)
    ds = Dataset(root)
    assert ds.spec.name == "cuhk_te1" and ds.default_split == "test"
    for split, masks in (("train", train), ("test", test)):
        for s in ds.samples(split):
            np.testing.assert_array_equal(s.mask(), masks[s.stem])
    with pytest.raises(DatasetError, match=r"2 image names occur in both its train and test folders .*"
                                           r"use --split train or --split test"):
        ds.samples("all")
    with pytest.raises(DatasetError, match=r"comes in parts .*would mix them: use --split train or test"):
        ds.samples("odd")  # the paper's CUHK halves never mix a dataset's own training and test photos


def test_missing_split_and_unpaired_files_are_one_line_errors(tmp_path):
    root = tmp_path / "DUT-DBD"
    _write_pairs(root / "dut500-source", root / "dut500-gt", ["a1", "a2"], "sharp")
    ds = Dataset(root)
    assert ds.spec.name == "dut" and list(ds.parts) == ["test"] and not ds.has_split("train")
    with pytest.raises(DatasetError, match=r"dataset dut has no train split here \(found: test\)"):
        ds.stems("train")
    _save(root / "dut500-source" / "a3.jpg", _pair(3)[0])
    with pytest.raises(DatasetError, match=r"dut500-source: 1 of 3 photos have no mask of the same name .*\(a3\)"):
        Dataset(root)
    (root / "dut500-source" / "a3.jpg").unlink()
    (root / "dut500-gt" / "a2.png").rename(root / "dut500-gt" / "a2_gt.png")  # masks named otherwise
    with pytest.raises(DatasetError, match="paired by file name"):
        Dataset(root)


def test_manifest_declares_the_dataset_or_a_layout_and_polarity(tmp_path):
    root = tmp_path / "folder"
    truth = _write_pairs(root / "image", root / "gt", ["p1", "p2"], "sharp")
    (root / MANIFEST_NAME).write_text(json.dumps({"dataset": "dut"}))
    ds = Dataset(root)
    assert ds.spec.name == "dut" and ds.polarity == "sharp" and ds.declared_by.endswith(MANIFEST_NAME)
    _check_read(ds, {"all": truth})

    custom = tmp_path / "custom"
    truth = _write_pairs(custom / "Photos", custom / "masks" / "bin", ["q1", "q2"], "sharp")
    (custom / MANIFEST_NAME).write_text(json.dumps({"layout": {"image": "photos", "gt": "masks/bin"},
                                                    "polarity": "sharp"}))
    ds = Dataset(custom)
    assert ds.spec.name == "custom" and ds.polarity == "sharp"
    _check_read(ds, {"all": truth})
    assert Dataset(custom, polarity="blur").samples("all")[0].mask().sum() == (~truth["q1"]).sum()
    assert Dataset(root, dataset="cuhk").polarity == "blur"  # --dataset beats the manifest
    (root / MANIFEST_NAME).write_text(json.dumps({"dataset": "dut", "layout": {"image": "image", "gt": "labels"}}))
    with pytest.raises(DatasetError, match=r"not laid out as dataset dut \(image/ \+ labels/\)"):
        Dataset(root)  # a layout of its own: no fall-back to image/ + gt/
    _write_pairs(custom / "image", custom / "gt", ["r1"], "sharp")
    (custom / MANIFEST_NAME).write_text(json.dumps({"layout": {"image": "photos", "gt": "labels"}, "polarity": "sharp"}))
    with pytest.raises(DatasetError, match=r"not laid out as dataset custom \(photos/ \+ labels/\)"):
        Dataset(custom)  # a layout of its own: no fall-back to another


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable JSON object"),
    ('["dut"]', "expected a JSON object"),
    ('{"dataset": "dutt"}', "unknown dataset 'dutt'; known: cuhk, dut"),
    ('{"polarity": "white"}', "polarity 'white' is neither of blur, sharp"),
    ('{"layout": {"image": "image", "gt": "gt"}}', "says neither which dataset it is nor its polarity"),
    ('{"dataset": "dut", "polarty": "sharp"}', "unknown key\\(s\\) polarty"),
    ('{"polarity": "sharp", "layout": {"image": "../x", "gt": "gt"}}', "must be a path inside the dataset folder"),
    ('{"polarity": "sharp", "layout": {"val": {"image": "a", "gt": "b"}}}', "layout key 'val'"),
])
def test_bad_manifests_are_one_line_errors(tmp_path, content, message):
    _write_pairs(tmp_path / "image", tmp_path / "gt", ["p1"], "blur")
    (tmp_path / MANIFEST_NAME).write_text(content)
    with pytest.raises(DatasetError, match=message) as err:
        Dataset(tmp_path)
    assert str(err.value).startswith(str(tmp_path / MANIFEST_NAME)) and "\n" not in str(err.value)


def test_training_states_are_keyed_by_mask_polarity(tmp_path):
    from evaluation.cache import samples_digest

    _write_pairs(tmp_path / "image", tmp_path / "gt", ["p1", "p2"], "sharp")
    as_read = samples_digest(Dataset(tmp_path).samples("all"))
    assert samples_digest(Dataset(tmp_path, polarity="sharp").samples("all")) != as_read
    assert samples_digest(Dataset(tmp_path, polarity="blur").samples("all")) == as_read


def test_no_known_layout_is_a_one_line_error(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError, match=rf"no gt/ folder of masks nor another known layout .*{MANIFEST_NAME}"):
        Dataset(tmp_path)
    with pytest.raises(DatasetError, match=r"not laid out as dataset dut \(train: dut600-source/"):
        Dataset(tmp_path, dataset="dut")


def test_sharpness_ratio_sees_the_blurred_region():
    rgb, blurred = _pair(0)
    rgb = rgb.astype(np.float32) / 255
    ratio = sharpness_ratio(rgb, blurred)
    assert ratio < 1 / POLARITY_VOTE_RATIO
    assert sharpness_ratio(rgb, ~blurred) == pytest.approx(1 / ratio, rel=1e-3)
    assert sharpness_ratio(rgb, np.zeros_like(blurred)) is None  # one class only: skipped
    tiny = np.zeros_like(blurred)
    tiny[0, :3] = True  # < 1 % of the pixels
    assert sharpness_ratio(rgb, tiny) is None


def test_guard_stops_inverted_masks_and_skips_one_class_masks(tmp_path):
    _write_pairs(tmp_path / "image", tmp_path / "gt", [f"img{k:02d}" for k in range(10)], "sharp")
    _save(tmp_path / "image" / "img99.jpg", _pair(99)[0])
    _save(tmp_path / "gt" / "img99.png", np.zeros((SIZE, SIZE), np.uint8))  # all one class: skipped
    ds = Dataset(tmp_path)  # undeclared: read as CUHK, white = blurred, which is wrong here
    with pytest.raises(DatasetError) as err:
        ds.check_polarity()
    message = str(err.value)
    assert message.startswith(f"{tmp_path}: the masks look inverted (white = in focus) for dataset cuhk")
    assert re.search(r"on [5-8] of 8 photos", message) and "--dataset dut|cuhk_te1|ctcug|ebd" in message
    assert "--polarity sharp" in message and "--no-polarity-check" in message and "\n" not in message
    check = Dataset(tmp_path, polarity="sharp").check_polarity()
    assert len(check.stems) == 8 and "img99" not in check.stems and check.votes == 0 and check.median < 0.5
    with pytest.raises(DatasetError, match=r"look inverted \(white = in focus\) for dataset dut \(chosen by "
                                           r"--dataset; read as white = blurred\)"):
        Dataset(tmp_path, dataset="dut", polarity="blur").check_polarity()
    blur = tmp_path / "blur"
    _write_pairs(blur / "image", blur / "gt", [f"img{k:02d}" for k in range(3)], "blur")
    with pytest.raises(DatasetError, match=r"look inverted \(white = blurred\) for dataset dut .* on 3 of 3 photos"
                                           r".*pass --dataset cuhk \(white = blurred\) or --polarity blur"):
        Dataset(blur, dataset="dut").check_polarity()  # declared, but wrongly


def test_guard_passes_on_cuhk(cuhk_dir):
    check = Dataset(cuhk_dir).check_polarity()
    assert len(check.ratios) == 8 and check.votes == 0 and check.median < 0.3  # measured: 0.14
    with pytest.raises(DatasetError, match="the masks look inverted"):
        Dataset(cuhk_dir, polarity="sharp").check_polarity()


def test_guard_margin_on_a_hundred_full_cuhk_photos(cuhk_full_dir):
    """Every 10th of the 1,000 CUHK photos: the marked region is the blurred one, far from a vote."""
    ds = Dataset(cuhk_full_dir)
    ratios = []
    for sample in ds.samples("all")[::10]:
        mask = sample.mask()
        ratios.append(sharpness_ratio(sample.image(mask.shape), mask))
    ratios = np.array(ratios)
    assert len(ratios) == 100 and np.median(ratios) < 0.4  # measured on all 1000: median 0.29
    assert np.mean(ratios > POLARITY_VOTE_RATIO) < 0.1  # measured: 2 % of all 1000 photos
    assert np.mean(1 / ratios > POLARITY_VOTE_RATIO) > 0.85  # the same photos inverted: 94 % vote
    assert not ds.check_polarity().votes


# --- The runner -------------------------------------------------------------------------------------------


def _metrics(out: Path) -> dict[str, tuple[str, str, str]]:
    with open(out / "metrics.csv", newline="") as fh:
        return {r["method"]: (r["ods"], r["ois"], r["ap"]) for r in csv.DictReader(fh)}


def _run(data: Path, out: Path, *extra: str) -> int:
    return run.main(["--data", str(data), "--split", "all", "--methods", "gradient_energy", "--out", str(out),
                     "--cache", str(out.parent / "cache"), "--quiet", *extra])


@pytest.fixture(scope="module")
def dut_style(tmp_path_factory) -> tuple[Path, Path]:
    """Ten DUT-style photos in image/ + gt/ (masks white = in focus), and the same with hand-inverted masks."""
    root = tmp_path_factory.mktemp("runner")
    stems = [f"{k:04d}" for k in range(1, 11)]
    _write_pairs(root / "dut" / "image", root / "dut" / "gt", stems, "sharp")
    _write_pairs(root / "cuhk_like" / "image", root / "cuhk_like" / "gt", stems, "blur")
    return root / "dut", root / "cuhk_like"


def test_runner_reads_declared_dut_like_its_inverted_cuhk_copy(dut_style, tmp_path, capsys):
    dut, cuhk_like = dut_style
    assert _run(cuhk_like, tmp_path / "cuhk") == 0
    expected = _metrics(tmp_path / "cuhk")
    assert _run(dut, tmp_path / "flag", "--dataset", "dut") == 0
    assert _metrics(tmp_path / "flag") == expected
    assert _run(dut, tmp_path / "polarity", "--polarity", "sharp") == 0
    assert _metrics(tmp_path / "polarity") == expected
    declared = tmp_path / "declared"
    declared.mkdir()
    for sub in ("image", "gt"):
        (declared / sub).symlink_to(dut / sub)
    (declared / MANIFEST_NAME).write_text('{"dataset": "dut"}')
    assert _run(declared, tmp_path / "manifest") == 0
    assert _metrics(tmp_path / "manifest") == expected
    report = (tmp_path / "manifest" / "report.md").read_text()
    assert "read as dut" in report and "inverted to 1 = blurred" in report
    # what the guard prevents: the same folder, read unchecked as white = blurred, scores otherwise
    assert _run(dut, tmp_path / "unchecked", "--no-polarity-check") == 0
    assert _metrics(tmp_path / "unchecked")["gradient_energy"][0] != expected["gradient_energy"][0]


def test_runner_stops_on_undeclared_inverted_masks(dut_style, tmp_path, capsys):
    dut, _ = dut_style
    capsys.readouterr()
    assert _run(dut, tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {dut}: the masks look inverted (white = in focus) for dataset cuhk")
    assert "--dataset dut" in err and "--no-polarity-check" in err and "\n" not in err
    assert not (tmp_path / "o" / "metrics.csv").exists()


def test_runner_checks_the_training_data_too(dut_style, tmp_path, capsys):
    dut, cuhk_like = dut_style
    capsys.readouterr()
    assert _run(cuhk_like, tmp_path / "o", "--train-data", str(dut)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {dut}: the masks look inverted") and f"{dut / MANIFEST_NAME}" in err


def test_runner_options_need_data(tmp_path, capsys):
    assert run.main(["--dataset", "dut", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "add --data DIR" in capsys.readouterr().err


def test_readme_lists_every_dataset_with_its_polarity():
    readme = (REPO / "README.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z0-9_]+)` \|.*$", readme, flags=re.M)}
    assert set(DATASETS) <= set(rows)
    for name, spec in DATASETS.items():
        assert POLARITIES[spec.polarity] in rows[name] and f"| {spec.size} |" in rows[name], name
