"""DBM training on several processes (torchrun, DistributedDataParallel, gloo on the CPU).

Two processes sharing the global batch (2 + 2 images of 4, or 1 + 2 of 3) train as one process with
the whole batch: the same losses and weights, up to the order of floating-point sums; an interrupted
run resumes.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import REPO  # noqa: E402
from dbm.model import build_model, load_weights  # noqa: E402
from dbm.train import Processes, batch_share, main  # noqa: E402

#: Difference allowed between the two runs' update of each tensor (its change over the 4 steps), relative to
#: that update, beyond the float32 resolution of the weights themselves (EPS32 times their norm). The
#: gradients are summed in another order (one batch of 4 against two of 2 averaged by all-reduce), which
#: moves the updates by up to about 1e-5 of themselves here (most for the biases, whose gradients are means of
#: nearly cancelling per-pixel terms); a wrong split of the batch moves them by 10-100%.
RTOL = 1e-4
EPS32 = float(np.finfo(np.float32).eps)
#: The losses of the global batch agree to 1e-5 of themselves, and the log keeps 5 decimals.
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-5


@pytest.fixture
def six_pairs(tmp_path, natural_rgb):
    """Six small training pairs: the astronaut crop with a different region defocused in each."""
    root = tmp_path / "data"
    (root / "image").mkdir(parents=True)
    (root / "gt").mkdir()
    blurred = cv2.GaussianBlur(natural_rgb, (0, 0), 3.0)
    h, w = natural_rgb.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    for i in range(6):
        angle = np.pi * i / 6
        mask = (np.cos(angle) * (xx - w / 2) + np.sin(angle) * (yy - h / 2)) > 0
        img = np.where(mask[..., None], blurred, natural_rgb)
        cv2.imwrite(str(root / "image" / f"p{i}.png"), np.round(img[..., ::-1] * 255).astype(np.uint8))
        cv2.imwrite(str(root / "gt" / f"p{i}.png"), mask.astype(np.uint8) * 255)
    return root


def _recipe(data, out, *extra, batch: int = 4) -> list[str]:
    """Four steps of a global batch of 4 (crossing epochs of the 6 images), flips on, SGD with momentum 0.9."""
    return ["--data", str(data), "--out", str(out), "--split", "all", "--config", "II", "--scratch", "--size", "32",
            "--batch-size", str(batch), "--iterations", "4", "--lr", "0.0001", "--hflip", "--seed", "3", "--quiet", *extra]


def _run(argv: list[str], cwd, processes: int = 1) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    if processes == 1:
        cmd = [sys.executable, "-m", "dbm.train", *argv, "--threads", "1"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "dbm.train", *argv]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def _losses(run) -> list[tuple[int, float]]:
    with open(run / "loss.csv", newline="") as fh:
        return [(int(r["iteration"]), float(r["loss"])) for r in csv.DictReader(fh)]


def _state(run) -> dict:
    return torch.load(run / "last.pt", map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.parametrize("batch", [4, 3])
def test_two_processes_train_as_one_with_the_same_global_batch(batch, six_pairs, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run(_recipe(six_pairs, one, batch=batch), tmp_path)
    # two processes, 2 + 2 or 1 + 2 images; stopped by the time budget after the first step, then resumed
    text = _run(_recipe(six_pairs, two, "--max-minutes", "1e-9", batch=batch), tmp_path, processes=2)
    assert "reached at iteration 1" in text
    assert [i for i, _ in _losses(two)] == [1]
    _run(_recipe(six_pairs, two, "--resume", batch=batch), tmp_path, processes=2)

    ref, got = _losses(one), _losses(two)
    assert [i for i, _ in got] == [1, 2, 3, 4] == [i for i, _ in ref]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in ref], rtol=LOSS_RTOL, atol=LOSS_ATOL)

    start = build_model("II", pretrained=False, seed=3).state_dict()
    a, b = _state(one), _state(two)
    assert list(a) == list(b)
    for name in a:
        resolution = EPS32 * float(a[name].double().norm())  # float32 weights cannot agree more closely
        moved = float((a[name] - start[name]).double().norm())
        assert moved > 100 * resolution, name  # the steps changed every tensor, far beyond that
        assert float((b[name] - a[name]).double().norm()) <= RTOL * moved + resolution, name
    _, meta = load_weights(two / "final.pt")
    assert meta["processes"] == 2 and meta["iterations"] == 4


def test_the_processes_share_each_global_batch():
    assert [batch_share(6, 3, r) for r in range(3)] == [(slice(0, 2), 1.0), (slice(2, 4), 1.0), (slice(4, 6), 1.0)]
    assert [batch_share(3, 2, r) for r in range(2)] == [(slice(0, 1), 2 / 3), (slice(1, 3), 4 / 3)]
    losses = np.random.default_rng(0).random(8)  # per-image losses of a global batch
    for b in range(1, 9):
        for n in range(1, b + 1):
            shares = [batch_share(b, n, r) for r in range(n)]
            assert [i for s, _ in shares for i in range(s.start, s.stop)] == list(range(b))  # each image once
            assert all(s.stop > s.start for s, _ in shares)
            # each process's loss is the mean over its images; DDP averages the N weighted gradients
            # (and loss.csv the N weighted losses): that is the mean over the whole batch
            averaged = sum(w * losses[s].mean() for s, w in shares) / n
            assert averaged == pytest.approx(losses[:b].mean(), rel=1e-12)
    with pytest.raises(SystemExit, match=r"--batch-size 2 \(the global batch\) is smaller than the 3 processes, "
                                         r".*start at most 2 processes"):
        batch_share(2, 3, 0)


def test_torchrun_variables_are_read():
    assert Processes.from_env({}) == Processes(1, 0, 0)
    assert Processes.from_env({"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0"}) == Processes(4, 2, 0)
    with pytest.raises(SystemExit, match="inconsistent"):
        Processes.from_env({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"})


def _precision_flags():
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        return conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


def test_float32_on_a_gpu_is_float32_not_tf32():
    """full_fp32: TF32 off for CUDA devices within (flags only: no GPU needed), nothing changed for the CPU."""
    from dbm.device import full_fp32

    before = _precision_flags()
    ieee = ("ieee", "ieee") if isinstance(before[0], str) else (False, False)
    with full_fp32(torch.device("cuda", 1)):
        assert _precision_flags() == ieee
    assert _precision_flags() == before
    for device, enabled in ((torch.device("cpu"), True), (torch.device("cuda", 0), False)):
        with full_fp32(device, enabled=enabled):
            assert _precision_flags() == before


@pytest.mark.parametrize("capability, dtype", [((7, 0), "float16"), ((7, 5), "float16"), ((8, 0), "bfloat16"),
                                               ((9, 0), "bfloat16")])
def test_amp_auto_takes_bf16_where_the_gpu_computes_it(capability, dtype, monkeypatch):
    """V100/T4 (7.x) emulate bf16, which torch.cuda.is_bf16_supported() counts as support: fp16 there."""
    from dbm.train import _amp_dtype

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert _amp_dtype("auto", torch.device("cuda", 0)) == getattr(torch, dtype)
    assert _amp_dtype("auto", torch.device("cpu")) is None


def test_each_process_takes_its_own_gpu_or_the_one_it_sees(monkeypatch):
    """Under torchrun: GPU LOCAL_RANK; a launcher that shows each process one GPU: that one, whatever LOCAL_RANK."""
    import dbm.device
    from dbm.train import _training_device

    chosen = []
    monkeypatch.setattr(dbm.device, "resolve_device", lambda text, option="--device": "cuda:0")
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert _training_device("cuda", Processes(4, 3, 3)) == torch.device("cuda", 3)
    with pytest.raises(SystemExit, match="start at most 4 processes per machine"):
        _training_device("cuda", Processes(8, 5, 5))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert _training_device("cuda", Processes(4, 3, 3)) == torch.device("cuda", 0)
    assert chosen == [torch.device("cuda", 3), torch.device("cuda", 0)]


@pytest.mark.parametrize("extra, message", [
    (["--batch-size", "1"], "smaller than the 2 processes"),
    (["--batch-size", "2", "--freeze-stages", "1", "--cache-features", "feats.npy"], "--cache-features trains in one process"),
])
def test_refusals_under_torchrun_are_one_line_before_any_work(extra, message, six_pairs, tmp_path, monkeypatch, capsys):
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    out = tmp_path / "run"
    assert main(["--data", str(six_pairs), "--out", str(out), "--split", "all", "--scratch", "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()
