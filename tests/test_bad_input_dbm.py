"""Trustworthy results of the DBM commands: every problem is one line and a non-zero exit, nothing is
lost or overwritten (``blur-map``, ``dbm.quantize``, ``dbm.train``, the ``--device`` option)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from baselines.interface import InputError  # noqa: E402
from dbm import device as devmod  # noqa: E402
from dbm import fileio, quantize  # noqa: E402
from evaluation import predict  # noqa: E402
from evaluation.registry import load_class  # noqa: E402
from dbm import train as trainmod  # noqa: E402
from dbm.model import build_model, save_weights  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    """Configuration II with a random trunk and score (input 48 px)."""
    net = build_model("II", pretrained=False, seed=0)
    with torch.no_grad():
        net.score.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("w") / "config_ii.pt"
    save_weights(net, path, {"input_size": 48})
    return path


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith("note:")]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    line = lines[0]
    assert line.startswith("error:"), line
    assert "Traceback" not in err
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def _photo(path: Path, h: int, w: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), (rng.random((h, w, 3)) * 255).astype(np.uint8))
    return path


def _run(photos, out, weights, *extra):
    return predict.main([*map(str, photos), "--out", str(out), "--method", "dbm_config_ii", "--weights", str(weights),
                         "--quiet", "--device", "cpu", *extra])


# --- 1. every write is checked -------------------------------------------------------------------------------------
def test_unwritable_out_is_an_error_naming_the_file(tmp_path, capsys, small_weights, monkeypatch):
    photo = _photo(tmp_path / "in" / "a.png", 40, 50)
    out = tmp_path / "maps"
    out.mkdir()

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(fileio, "open", refuse, raising=False)  # what a read-only folder does to the write
    rc = _run([photo], out, small_weights)
    assert rc == 1
    line = _one_line_error(capsys, str(out / "a.png"), "Permission denied", "--out")
    assert "0 of 1 maps written" in line
    assert list(out.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_out_folder(tmp_path, capsys, small_weights):
    photo = _photo(tmp_path / "in" / "a.png", 40, 50)
    out = tmp_path / "maps"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert _run([photo], out, small_weights) == 1
    finally:
        out.chmod(0o755)
    _one_line_error(capsys, str(out / "a.png"))
    assert list(out.iterdir()) == []


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, capsys, small_weights, monkeypatch):
    photo = _photo(tmp_path / "in" / "a.png", 40, 50)
    out = tmp_path / "maps"
    out.mkdir()
    (out / "a.png").write_bytes(b"an older map")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    rc = _run([photo], out, small_weights, "--overwrite")
    assert rc == 1
    _one_line_error(capsys, "No space left on device", str(out / "a.png"))
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]  # no temporary file left behind
    assert (out / "a.png").read_bytes() == b"an older map"


def test_png_encoding_failure_is_reported(tmp_path, capsys, small_weights, monkeypatch):
    photo = _photo(tmp_path / "in" / "a.png", 40, 50)
    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: (False, None))
    rc = _run([photo], tmp_path / "maps", small_weights)
    assert rc == 1
    _one_line_error(capsys, "a.png", "encoding failed")
    assert list((tmp_path / "maps").iterdir()) == []


def test_out_that_cannot_be_created(tmp_path, capsys, small_weights):
    photo = _photo(tmp_path / "in" / "a.png", 40, 50)
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    assert _run([photo], blocker / "maps", small_weights) == 2
    _one_line_error(capsys, "--out", str(blocker / "maps"), "cannot create")
    assert _run([photo], blocker, small_weights) == 2
    _one_line_error(capsys, "--out", "not a folder")
    assert blocker.read_text() == "a file, not a folder"


# --- 2. collision-free names ---------------------------------------------------------------------------------------
def test_same_stems_never_overwrite_each_other_or_a_real_a_1(tmp_path, small_weights):
    """a.jpg, a.png, a_1.png and other/a.png: four photos, four maps, each of its own photo's size."""
    sizes = {"in/a.jpg": (40, 50), "in/a.png": (41, 52), "in/a_1.png": (43, 54), "other/a.png": (45, 56)}
    for i, (rel, (h, w)) in enumerate(sizes.items()):
        _photo(tmp_path / rel, h, w, seed=i)
    out = tmp_path / "maps"
    rc = _run([tmp_path / "in", tmp_path / "other"], out, small_weights)
    assert rc == 0
    written = {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED).shape for p in out.iterdir()}
    assert len(written) == 4
    assert written["a.png"] == sizes["in/a.jpg"]
    assert written["a_1.png"] == sizes["in/a_1.png"]  # the photo named a_1 keeps its name
    assert sorted(written.values()) == sorted(sizes.values())


def test_existing_files_in_out_are_kept_unless_overwrite(tmp_path, capsys, small_weights):
    photo = _photo(tmp_path / "in" / "a.png", 40, 50)
    out = tmp_path / "maps"
    out.mkdir()
    (out / "a.png").write_bytes(b"someone's map")
    (out / "a_1.png").write_bytes(b"another one")
    assert _run([photo], out, small_weights) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "--overwrite" in err and str(out / "a_2.png") in err
    assert (out / "a.png").read_bytes() == b"someone's map" and (out / "a_1.png").read_bytes() == b"another one"
    assert cv2.imread(str(out / "a_2.png"), cv2.IMREAD_UNCHANGED).shape == (40, 50)
    # --overwrite replaces the existing map of the same name
    assert _run([photo], out, small_weights, "--overwrite") == 0
    assert cv2.imread(str(out / "a.png"), cv2.IMREAD_UNCHANGED).shape == (40, 50)
    assert (out / "a_1.png").read_bytes() == b"another one"


def test_input_photos_in_out_are_never_overwritten(tmp_path, small_weights):
    folder = tmp_path / "photos"
    _photo(folder / "a.png", 40, 50)
    before = (folder / "a.png").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert _run([folder / "a.png"], folder, small_weights, *extra) == 0
        assert (folder / "a.png").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_1.png"]


def test_plan_outputs_ignores_letter_case(tmp_path):
    photos = [tmp_path / "x" / "A.jpg", tmp_path / "y" / "a.png"]
    targets, notes = predict.plan_outputs(photos, tmp_path / "missing")
    assert [t.name for t in targets] == ["A.png", "a_1.png"] and notes == []


# --- 3. --size -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["16", "31", "-5", "5000"])
def test_size_outside_the_allowed_range(tmp_path, capsys, small_weights, size):
    photo = _photo(tmp_path / "in" / "a.png", 40, 50)
    assert _run([photo], tmp_path / "maps", small_weights, "--size", size) == 2
    _one_line_error(capsys, f"--size {size}", "32 to 4096", "0")
    assert not (tmp_path / "maps").exists()


def test_bad_option_is_one_line(tmp_path, capsys, small_weights):
    photo = _photo(tmp_path / "in" / "a.png", 40, 50)
    assert _run([photo], tmp_path / "maps", small_weights, "--size", "big") == 2
    _one_line_error(capsys, "--size")
    assert predict.main([str(photo)]) == 2
    _one_line_error(capsys, "--out")


# --- 4. --device ---------------------------------------------------------------------------------------------------
def test_parse_device_forms():
    assert devmod.parse_device("auto") == "auto"
    assert devmod.parse_device(" CPU ") == "cpu"
    assert devmod.parse_device("cuda") == "cuda:0"
    assert devmod.parse_device("cuda:2") == "cuda:2"
    for bad in ("gpu", "cuda:", "cuda:x", "mps", "", "cuda:-1"):
        with pytest.raises(InputError, match="auto, cpu, cuda or cuda:N") as exc:
            devmod.parse_device(bad)
        assert "\n" not in str(exc.value)


def test_resolve_device_on_this_machine():
    assert devmod.resolve_device("cpu") == "cpu"
    assert devmod.resolve_device("auto") in ("cpu", "cuda:0")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="--device cpu") as exc:
            devmod.resolve_device("cuda")
        assert "\n" not in str(exc.value)


def test_resolve_device_with_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "12.4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert devmod.resolve_device("auto") == "cuda:0"
    assert devmod.resolve_device("cuda") == "cuda:0"
    with pytest.raises(InputError, match=r"no such GPU.*cuda:0.*--device cpu"):
        devmod.resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devmod.resolve_device("auto") == "cpu"
    with pytest.raises(InputError, match="sees no CUDA GPU.*--device cpu"):
        devmod.resolve_device("cuda")


def test_cpu_only_torch_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    assert devmod.resolve_device("auto") == "cpu"
    with pytest.raises(InputError, match="CPU-only build.*--device cpu"):
        devmod.resolve_device("cuda:0")


def test_every_command_refuses_a_misspelt_device(tmp_path, capsys, small_weights):
    photo = _photo(tmp_path / "in" / "a.png", 40, 50)
    assert predict.main([str(photo), "--out", str(tmp_path / "m"), "--method", "dbm_config_ii", "--weights",
                         str(small_weights), "--device", "gpu"]) == 2
    _one_line_error(capsys, "--device", "gpu", "cuda:N")
    assert quantize.main(["--weights", str(small_weights), "--data", str(tmp_path), "--out", str(tmp_path / "q.pt"),
                          "--device", "gpu"]) == 2
    _one_line_error(capsys, "--device", "gpu")
    assert trainmod.main(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--device", "gpu"]) == 2
    _one_line_error(capsys, "--device", "gpu")
    assert not (tmp_path / "run").exists()

    with pytest.raises(InputError, match="device 'gpu'"):
        load_class("dbm_config_ii")(weights=str(small_weights), device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line(tmp_path, capsys, small_weights):
    photo = _photo(tmp_path / "in" / "a.png", 40, 50)
    assert predict.main([str(photo), "--out", str(tmp_path / "m"), "--method", "dbm_config_ii", "--weights",
                         str(small_weights), "--device", "cuda"]) == 2
    _one_line_error(capsys, "--device cuda", "--device cpu")
    assert trainmod.main(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--device", "cuda:1"]) == 2
    _one_line_error(capsys, "--device cuda:1", "--device cpu")


def _imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, anywhere in it (absolute names; relative ones resolved)."""
    import ast

    package = ".".join(path.relative_to(REPO).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            found.add(".".join([*base, node.module] if node.module else base))
    return found


def test_dbm_and_baselines_never_import_evaluation():
    """``evaluation`` uses ``baselines`` and ``dbm``, never the reverse: every import of every module, even inside
    functions, and the modules themselves imported in a fresh process."""
    offenders = {f"{path.relative_to(REPO)}: {name}" for pkg in ("dbm", "baselines")
                 for path in sorted((REPO / pkg).rglob("*.py"))
                 for name in _imported_modules(path) if name == "evaluation" or name.startswith("evaluation.")}
    assert not offenders, offenders
    code = ("import pkgutil, sys, dbm, baselines\n"
            "for pkg in (dbm, baselines):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        __import__(m.name)\n"
            "assert 'evaluation' not in sys.modules, 'dbm or baselines imported evaluation'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_baselines_and_the_device_option_need_no_torch():
    """Every module of ``baselines`` imports without torch (``sys.modules['torch'] = None`` makes importing it fail)."""
    code = ("import pkgutil, sys; sys.modules['torch'] = None\n"
            "import baselines, dbm.device\n"
            "names = [m.name for m in pkgutil.walk_packages(baselines.__path__, 'baselines.')]\n"
            "assert len(names) > 15 and 'baselines.hifst' in names, names\n"
            "for name in names:\n"
            "    __import__(name)\n"
            "assert dbm.device.parse_device('CUDA:1') == 'cuda:1'; assert dbm.device.resolve_device('cpu') == 'cpu'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# --- 5. dbm.quantize never overwrites an input ------------------------------------------------------------------
@pytest.fixture
def calib_data(tmp_path):
    root = tmp_path / "train"
    for i in range(2):
        _photo(root / "image" / f"p{i}.png", 60, 70, seed=i)
        (root / "gt").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "gt" / f"p{i}.png"), np.zeros((60, 70), np.uint8))
    return root


def test_quantize_writes_beside_the_input_by_default(tmp_path, calib_data, small_weights):
    weights = tmp_path / "w.pt"
    weights.write_bytes(small_weights.read_bytes())
    before = weights.read_bytes()
    assert quantize.main(["--weights", str(weights), "--data", str(calib_data), "--images", "1", "--device", "cpu"]) == 0
    assert weights.read_bytes() == before
    from dbm.model import load_weights

    _, meta = load_weights(tmp_path / "w.int8.pt")
    assert "int8" in meta


def test_quantize_refuses_to_overwrite_its_input(tmp_path, capsys, calib_data, small_weights):
    weights = tmp_path / "w.pt"
    weights.write_bytes(small_weights.read_bytes())
    before = weights.read_bytes()
    for extra in ([], ["--overwrite"]):
        rc = quantize.main(["--weights", str(weights), "--data", str(calib_data), "--out", str(weights), *extra])
        assert rc == 2
        _one_line_error(capsys, "--out", "input weight file", "never overwritten")
        assert weights.read_bytes() == before
    # the same file by another path
    rc = quantize.main(["--weights", str(weights), "--data", str(calib_data), "--out", str(tmp_path / "." / "w.pt")])
    assert rc == 2
    _one_line_error(capsys, "input weight file")


def test_quantize_refuses_an_existing_out_without_overwrite(tmp_path, capsys, calib_data, small_weights):
    target = tmp_path / "q.pt"
    target.write_bytes(b"keep me")
    args = ["--weights", str(small_weights), "--data", str(calib_data), "--out", str(target), "--images", "1",
            "--device", "cpu"]
    assert quantize.main(args) == 2
    _one_line_error(capsys, str(target), "--overwrite")
    assert target.read_bytes() == b"keep me"
    assert quantize.main([*args, "--overwrite"]) == 0
    assert target.read_bytes() != b"keep me"


# --- dbm.train: one-line errors, a run folder is never overwritten by accident ------------------------------------
def test_train_reports_bad_data_in_one_line(tmp_path, capsys):
    assert trainmod.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"), "--device", "cpu"]) == 2
    _one_line_error(capsys, "nowhere")
    assert trainmod.main(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--config", "VI"]) == 2
    _one_line_error(capsys, "--config")
    assert trainmod.main(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--size", "8"]) == 2
    _one_line_error(capsys, "--size 8")


def test_train_refuses_to_start_over_an_existing_run(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "final.pt").write_bytes(b"trained for days")
    assert trainmod.main(["--data", str(tmp_path), "--out", str(run), "--device", "cpu"]) == 2
    _one_line_error(capsys, "--out", "already holds a run", "--overwrite")
    assert (run / "final.pt").read_bytes() == b"trained for days"
