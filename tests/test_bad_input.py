"""Bad input and ordinary accidents give the right numbers or a one-line error, never a silent wrong result.

Every case of the issue "Trustworthy results" that concerns the runner and the readers, on a small
corpus the tests generate in a temporary folder: a stale cache (a changed photo, a same-stem photo
of another dataset), concurrent runs into one output folder, damaged JPEGs, decompression bombs,
bad options, missing external maps, split aliases, interrupted workers.
"""

from __future__ import annotations

import csv
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from baselines.interface import InputError, read_image
from evaluation import registry, run
from evaluation.cache import MapCache

REPO = Path(__file__).resolve().parents[1]
FAST = "gradient_energy"


def _photo(seed: int, h: int = 48, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A textured photo whose right part is blurred, and its mask (True = blurred)."""
    rng = np.random.default_rng(seed)
    img = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    cut = w // 3 + seed % (w // 3)
    img[:, cut:] = cv2.GaussianBlur(img, (0, 0), 3)[:, cut:]
    mask = np.zeros((h, w), bool)
    mask[:, cut:] = True
    return img, mask


def _dataset(root: Path, stems=("img0001", "img0002", "img0003", "img0004"), ext=".png") -> Path:
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "gt").mkdir(exist_ok=True)
    for i, stem in enumerate(stems):
        img, mask = _photo(i + 1)
        cv2.imwrite(str(root / "image" / f"{stem}{ext}"), img[:, :, ::-1])
        cv2.imwrite(str(root / "gt" / f"{stem}.png"), mask.astype(np.uint8) * 255)
    return root


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    assert "\n" not in err, err
    assert err.startswith("error: "), err
    for n in needles:
        assert n in err, err
    return err


# 1. Stale cache --------------------------------------------------------------------------------
def test_changed_photo_is_recomputed(tmp_path):
    data = _dataset(tmp_path / "d", stems=("img0001",))
    out = tmp_path / "out"
    args = ["--data", str(data), "--split", "all", "--methods", FAST, "--quiet"]
    assert run.main(args + ["--out", str(out)]) == 0
    for sub in ("image", "gt"):  # flip photo and mask left-right
        path = data / sub / "img0001.png"
        cv2.imwrite(str(path), cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, ::-1])
    assert run.main(args + ["--out", str(out)]) == 0
    assert run.main(args + ["--out", str(tmp_path / "fresh")]) == 0
    fresh = _rows(tmp_path / "fresh" / "metrics.csv")[0]
    (again,) = _rows(out / "metrics.csv")
    assert again["ods"] == fresh["ods"] and again["ois"] == fresh["ois"] and again["ap"] == fresh["ap"]


def test_same_stem_in_another_dataset_never_collides(tmp_path):
    a = _dataset(tmp_path / "a", stems=("img0001",))
    b = tmp_path / "b"
    (b / "image").mkdir(parents=True)
    (b / "gt").mkdir()
    img, mask = _photo(7, h=40, w=72)  # same stem, other size and content
    cv2.imwrite(str(b / "image" / "img0001.png"), img[:, :, ::-1])
    cv2.imwrite(str(b / "gt" / "img0001.png"), mask.astype(np.uint8) * 255)
    cache = tmp_path / "shared_cache"
    common = ["--split", "all", "--methods", FAST, "--quiet", "--cache", str(cache)]
    assert run.main(["--data", str(a), "--out", str(tmp_path / "oa")] + common) == 0
    assert run.main(["--data", str(b), "--out", str(tmp_path / "ob")] + common) == 0
    assert run.main(["--data", str(b), "--out", str(tmp_path / "ob_fresh"), "--split", "all", "--methods", FAST,
                     "--quiet"]) == 0
    assert _rows(tmp_path / "ob" / "metrics.csv")[0]["ods"] == _rows(tmp_path / "ob_fresh" / "metrics.csv")[0]["ods"]
    assert len(list(cache.glob(f"{FAST}/*/img0001-*.png"))) == 2


def test_cache_check_does_not_decode(tmp_path, monkeypatch):
    data = _dataset(tmp_path / "d")
    out = tmp_path / "out"
    args = ["--data", str(data), "--split", "all", "--methods", FAST, "--quiet", "--out", str(out)]
    assert run.main(args) == 0
    import evaluation.cache as cache_mod

    calls = []
    real = cache_mod.read_levels
    monkeypatch.setattr(cache_mod, "read_levels", lambda p: calls.append(p) or real(p))
    sample = __import__("evaluation.datasets", fromlist=["Dataset"]).Dataset(data).samples("all")[0]
    folder = next((out / "cache" / FAST).iterdir())
    assert MapCache(folder).has(sample) and not calls


def test_map_damaged_in_the_cache_is_recomputed(tmp_path):
    data = _dataset(tmp_path / "d")
    out = tmp_path / "out"
    args = ["--data", str(data), "--split", "all", "--methods", FAST, "--quiet", "--out", str(out)]
    assert run.main(args) == 0
    before = _rows(out / "metrics.csv")[0]["ods"]
    for png in (out / "cache" / FAST).glob("*/*.png"):
        png.write_bytes(b"garbage")
    assert run.main(args) == 0
    assert _rows(out / "metrics.csv")[0]["ods"] == before


# 2. Concurrent runs and consistent outputs -----------------------------------------------------
def test_two_concurrent_runners_lose_no_row(tmp_path):
    data = _dataset(tmp_path / "d")
    listfile = tmp_path / "two.txt"
    listfile.write_text("img0001\nimg0003\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for trial in range(10):
        out = tmp_path / f"out{trial}"
        base = [sys.executable, "-m", "evaluation.run", "--data", str(data), "--methods", FAST, "--quiet",
                "--out", str(out), "--cache", str(tmp_path / "cache")]
        procs = [subprocess.Popen(base + ["--split", split], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for split in ("all", str(listfile))]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err.decode()
        metrics = _rows(out / "metrics.csv")
        assert sorted(r["split"] for r in metrics) == ["all", "two.txt"], trial
        assert {r["dataset"] for r in metrics} == {"d"} and {r["method"] for r in metrics} == {FAST}, trial
        assert len(_rows(out / "per_image.csv")) == 4 + 2, trial
        assert len(_rows(out / "pr_curves.csv")) == 2 * 256, trial
        report = (out / "report.md").read_text()
        assert "split all, 4 images" in report and "split two.txt, 2 images" in report, trial
        assert not list(out.glob(".*.tmp")), trial


def test_report_shows_exactly_the_rows_of_metrics_csv(tmp_path):
    data = _dataset(tmp_path / "d")
    out = tmp_path / "out"
    base = ["--data", str(data), "--split", "all", "--quiet", "--out", str(out)]
    assert run.main(base + ["--methods", f"{FAST},spectral_slope"]) == 0
    assert run.main(base + ["--methods", FAST]) == 0
    methods = {r["method"] for r in _rows(out / "metrics.csv")}
    report = (out / "report.md").read_text()
    assert methods == {FAST, "spectral_slope"}
    for m in methods:
        assert f"| {m} |" in report or f"| {m} (" in report


def test_damaged_results_file_is_one_line_and_kept(tmp_path, capsys):
    data = _dataset(tmp_path / "d")
    out = tmp_path / "out"
    out.mkdir()
    damaged = b"dataset,split,method\n\xff\xfe\x00 not text\n"
    (out / "metrics.csv").write_bytes(damaged)
    assert run.main(["--data", str(data), "--split", "all", "--quiet", "--out", str(out), "--methods", FAST]) == 2
    _one_line_error(capsys, str(out / "metrics.csv"), "not a readable results file")
    assert (out / "metrics.csv").read_bytes() == damaged  # nothing replaced


# 4-5. Damaged files and decompression bombs ----------------------------------------------------
def test_damaged_jpeg_is_an_error_naming_the_file(tmp_path, capsys):
    data = _dataset(tmp_path / "d", stems=("img0001",), ext=".jpg")
    photo = data / "image" / "img0001.jpg"
    img, _ = _photo(1, h=240, w=320)
    cv2.imwrite(str(photo), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(data / "gt" / "img0001.png"), np.zeros((240, 320), np.uint8))
    raw = bytearray(photo.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 4096] = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    photo.write_bytes(bytes(raw))
    assert run.main(["--data", str(data), "--split", "all", "--methods", FAST, "--quiet",
                     "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "img0001.jpg", "damaged JPEG data")


def _png_bomb(path: Path, side: int = 20000) -> Path:
    """A valid grey PNG of ``side x side`` zeros, about a megabyte on disk (written in streaming)."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def png_bomb(tmp_path_factory) -> Path:
    return _png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_png_bomb_is_refused_fast_and_small(png_bomb):
    assert png_bomb.stat().st_size < 2_000_000
    # Peak memory from /proc (VmHWM, this program's own): ru_maxrss keeps the forking parent's peak across exec.
    code = ("import re, sys, time; from baselines.interface import read_image, InputError\n"
            "t = time.perf_counter()\n"
            "try:\n    read_image(sys.argv[1])\nexcept InputError as e:\n    msg = str(e)\n"
            "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
            "print(time.perf_counter() - t, hwm / 1024, msg)")
    res = subprocess.run([sys.executable, "-c", code, str(png_bomb)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    seconds, mib, msg = res.stdout.split(" ", 2)
    assert float(seconds) < 1.0 and float(mib) < 300, res.stdout
    assert "bomb.png" in msg and "400 MP" in msg and "limit" in msg


def test_mask_bomb_and_map_bomb_are_refused(tmp_path, png_bomb, capsys):
    data = _dataset(tmp_path / "d", stems=("img0001",))
    os.replace(_png_bomb(tmp_path / "m.png"), data / "gt" / "img0001.png")
    assert run.main(["--data", str(data), "--split", "all", "--methods", FAST, "--quiet",
                     "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "img0001.png", "limit")

    data2 = _dataset(tmp_path / "d2", stems=("img0001",))
    maps = tmp_path / "maps"
    maps.mkdir()
    np.lib.format.open_memmap(maps / "img0001.npy", mode="w+", dtype=np.uint8, shape=(12000, 12000))
    assert run.main(["--data", str(data2), "--split", "all", "--methods", "ext", "--maps", f"ext={maps}",
                     "--quiet", "--out", str(tmp_path / "o2")]) == 2
    _one_line_error(capsys, "img0001.npy", "limit")


def test_photo_of_ordinary_size_still_reads(tmp_path):
    img, _ = _photo(3)
    cv2.imwrite(str(tmp_path / "ok.jpg"), img)
    assert read_image(tmp_path / "ok.jpg").shape == img.shape


# 7. Options: one line, non-zero exit ------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--limit", "-12"], "--limit"),
        (["--limit", "-1"], "--limit"),
        (["--limit", "0"], "--limit"),
        (["--workers", "0"], "--workers"),
        (["--device", "gpu"], "gpu"),
    ],
)
def test_bad_options_are_one_line(argv, needle, tmp_path, capsys):
    try:
        code = run.main(argv + ["--methods", FAST, "--out", str(tmp_path / "o"), "--quiet"])
    except SystemExit as exc:  # argparse's own check
        code = exc.code
    assert code == 2
    _one_line_error(capsys, needle)
    assert not (tmp_path / "o").exists()


def test_cuda_asked_without_cuda_is_one_line(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert run.main(["--device", "cuda", "--methods", FAST, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    _one_line_error(capsys, "cuda")


def test_maps_folder_matching_no_image_is_one_line(tmp_path, capsys):
    data = _dataset(tmp_path / "d")
    maps = tmp_path / "maps"
    maps.mkdir()
    cv2.imwrite(str(maps / "other0001.png"), np.zeros((48, 64), np.uint8))
    assert run.main(["--data", str(data), "--split", "all", "--methods", "ext", "--maps", f"ext={maps}",
                     "--allow-missing", "--quiet", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, str(maps), "matches")


# 8. External maps with --allow-missing -----------------------------------------------------------
def test_allow_missing_external_map_reaches_the_report(tmp_path):
    data = _dataset(tmp_path / "d")
    maps = tmp_path / "maps"
    maps.mkdir()
    for stem in ("img0001", "img0002", "img0003"):  # img0004 has no map
        mask = cv2.imread(str(data / "gt" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(maps / f"{stem}.png"), mask)
    out = tmp_path / "o"
    assert run.main(["--data", str(data), "--split", "all", "--methods", f"ext,{FAST}", "--maps", f"ext={maps}",
                     "--allow-missing", "--quiet", "--out", str(out)]) == 0
    rows = {r["method"]: r for r in _rows(out / "metrics.csv")}
    assert rows["ext"]["n_images"] == "3" and float(rows["ext"]["ods"]) == pytest.approx(1.0)
    assert rows[FAST]["n_images"] == "4"
    assert (out / "map_grid.png").stat().st_size > 0


# 9. Split aliases ----------------------------------------------------------------------------------
class _Learner(registry.load_class(FAST)):  # a trainable detector that records what it learned from
    trainable = True
    seen: list[str] = []

    def fit(self, samples):
        type(self).seen = [f"{len(samples)}"]
        return self

    def get_state(self):
        return {"x": np.zeros(1)}

    def set_state(self, state):
        pass


def test_split_alias_trains_on_the_paper_complement(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.METHODS, "learner", registry.MethodSpec(f"{__name__}:_Learner", "test"))
    data = _dataset(tmp_path / "d")
    outs = {}
    for split in ("even", "D_e", "d_e"):
        out = tmp_path / f"o_{split}"
        assert run.main(["--data", str(data), "--split", split, "--methods", "learner", "--quiet",
                         "--out", str(out)]) == 0
        (row,) = _rows(out / "metrics.csv")
        assert row["split"] == "even" and row["trained_on"] == "d odd (2 images)", row
        outs[split] = row
    assert outs["even"]["ods"] == outs["D_e"]["ods"] == outs["d_e"]["ods"]


def test_paper_columns_for_every_spelling_of_D_e(cuhk_dir, tmp_path):
    published = cuhk_dir / "published_maps" / "hifst"
    tables = []
    for split in ("even", "D_e"):
        out = tmp_path / split
        assert run.main(["--data", str(cuhk_dir), "--split", split, "--methods", "hifst_published", "--limit", "3",
                         "--maps", f"hifst_published={published}:sharp", "--quiet", "--out", str(out)]) == 0
        report = (out / "report.md").read_text()
        assert "paper ODS" in report and "Table III" in report
        tables.append(report)
    assert tables[0] == tables[1]


# 11. Interrupted workers: a map is never kept without its time ---------------------------------
def test_time_is_recorded_before_the_map(tmp_path, monkeypatch):
    from evaluation import cache as cache_mod
    from evaluation.datasets import Dataset

    data = _dataset(tmp_path / "d", stems=("img0001",))
    sample = Dataset(data).samples("all")[0]
    cache = MapCache(tmp_path / "c")

    def interrupted(path, levels):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod, "write_levels", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.store(sample, np.zeros((48, 64), np.uint8), 1.5)
    assert not cache.has(sample)  # no map without its time: it will be recomputed
    monkeypatch.undo()
    cache.store(sample, np.zeros((48, 64), np.uint8), 2.5)
    assert cache.has(sample) and cache.seconds_of(sample) == 2.5


def test_every_map_from_workers_has_its_time(tmp_path):
    data = _dataset(tmp_path / "d")
    out = tmp_path / "o"
    assert run.main(["--data", str(data), "--split", "all", "--methods", FAST, "--workers", "2", "--quiet",
                     "--out", str(out)]) == 0
    rows = _rows(out / "per_image.csv")
    assert len(rows) == 4 and all(float(r["seconds"]) > 0 for r in rows)


def test_training_on_the_tested_split_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(registry.METHODS, "learner", registry.MethodSpec(f"{__name__}:_Learner", "test"))
    data = _dataset(tmp_path / "d")
    assert run.main(["--data", str(data), "--split", "all", "--train-split", "odd", "--methods", "learner",
                     "--quiet", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "learner would train on 2 image(s) of the tested split")


class _SawPhotos(registry.load_class(FAST)):  # a detector whose weights saw the photo img0002
    digests: frozenset = frozenset()

    def training_digests(self):
        return type(self).digests


def test_network_trained_on_tested_photos_is_refused(tmp_path, monkeypatch, capsys):
    from baselines.datasets import file_digest

    monkeypatch.setitem(registry.METHODS, "saw", registry.MethodSpec(f"{__name__}:_SawPhotos", "test"))
    data = _dataset(tmp_path / "d")
    _SawPhotos.digests = frozenset({file_digest(data / "image" / "img0002.png")})
    assert run.main(["--data", str(data), "--split", "all", "--methods", f"{FAST},saw", "--quiet",
                     "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]) == 2
    _one_line_error(capsys, "saw: its weights were trained on 1 of the 4 tested photos")
    assert not (tmp_path / "c" / FAST).exists()  # refused before any method's map was computed
    assert run.main(["--data", str(data), "--split", "odd", "--methods", "saw", "--quiet",
                     "--out", str(tmp_path / "o")]) == 0  # img0001, img0003: never seen


def test_a_run_with_other_settings_adds_a_row(tmp_path):
    data = _dataset(tmp_path / "d")
    out = tmp_path / "o"
    base = ["--data", str(data), "--split", "all", "--methods", FAST, "--quiet", "--out", str(out)]
    assert run.main(base) == 0
    assert run.main(base + ["--set", f"{FAST}.window=5"]) == 0
    rows = {r["method"]: r for r in _rows(out / "metrics.csv")}
    assert set(rows) == {FAST, f"{FAST}[window=5]"}
    assert rows[FAST]["ods"] != rows[f"{FAST}[window=5]"]["ods"] or rows[FAST]["ap"] != rows[f"{FAST}[window=5]"]["ap"]
    assert f"{FAST}[window=5]" in (out / "report.md").read_text()
