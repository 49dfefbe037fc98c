"""Training DBM: a few steps lower the loss; checkpoints resume exactly; frozen-stage caching."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dbm.model import load_weights  # noqa: E402
from dbm.train import parse_args, train  # noqa: E402


@pytest.fixture
def two_pairs(tmp_path, natural_rgb):
    """Two synthetic training pairs: one half of the astronaut crop defocused, the other half sharp."""
    root = tmp_path / "data"
    (root / "image").mkdir(parents=True)
    (root / "gt").mkdir()
    blurred = cv2.GaussianBlur(natural_rgb, (0, 0), 3.0)
    for i, flip in enumerate((False, True)):
        mask = np.zeros(natural_rgb.shape[:2], bool)
        mask[:, : natural_rgb.shape[1] // 2] = True
        if flip:
            mask = ~mask
        img = np.where(mask[..., None], blurred, natural_rgb)
        cv2.imwrite(str(root / "image" / f"pair{i + 1}.png"), np.round(img[..., ::-1] * 255).astype(np.uint8))
        cv2.imwrite(str(root / "gt" / f"pair{i + 1}.png"), mask.astype(np.uint8) * 255)
    return root


def _losses(run):
    with open(run / "loss.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def _args(data, out, *extra):
    return parse_args(["--data", str(data), "--out", str(out), "--split", "all", "--config", "II", "--scratch", "--size", "48",
                       "--batch-size", "2", "--optimizer", "adam", "--lr", "1e-3", "--no-progress", *extra])


def test_a_few_steps_lower_the_loss(two_pairs, tmp_path):
    final = train(_args(two_pairs, tmp_path / "run", "--iterations", "30"), log=lambda *a: None)
    losses = _losses(tmp_path / "run")
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.05
    model, meta = load_weights(final)
    assert meta["input_size"] == 48 and meta["iterations"] == 30 and model.depth == 2


@pytest.mark.slow
def test_resume_continues_exactly(two_pairs, tmp_path):
    quiet = lambda *a: None  # noqa: E731
    train(_args(two_pairs, tmp_path / "full", "--iterations", "6", "--hflip"), log=quiet)
    # same run stopped after 3 iterations (its schedule still spans 6), then resumed
    args = _args(two_pairs, tmp_path / "split", "--iterations", "6", "--hflip", "--save-every", "3")
    args.iterations = 6
    import dbm.train as t

    class Stop(Exception):
        pass

    original = t._set_lr

    def stop_after_three(opt, it, total, power):
        if it == 3:
            raise Stop
        return original(opt, it, total, power)

    t._set_lr = stop_after_three
    try:
        with pytest.raises(Stop):
            train(args, log=quiet)
    finally:
        t._set_lr = original
    train(_args(two_pairs, tmp_path / "split", "--iterations", "6", "--hflip", "--resume"), log=quiet)
    a, _ = load_weights(tmp_path / "full" / "final.pt")
    b, _ = load_weights(tmp_path / "split" / "final.pt")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(pa, pb, msg=name)
    assert _losses(tmp_path / "full") == _losses(tmp_path / "split")


@pytest.mark.slow
def test_cached_frozen_stages_train_the_rest_only(two_pairs, tmp_path):
    quiet = lambda *a: None  # noqa: E731
    args = _args(two_pairs, tmp_path / "run", "--iterations", "4", "--freeze-stages", "1",
                 "--cache-features", str(tmp_path / "feat.npy"), "--seed", "7")
    final = train(args, log=quiet)
    trained, _ = load_weights(final)
    from dbm.model import build_model

    start = build_model("II", pretrained=False, seed=7)
    torch.testing.assert_close(trained.trunk.stages[0][0].weight, start.trunk.stages[0][0].weight, atol=1e-3, rtol=1e-3)
    assert not torch.allclose(trained.trunk.stages[1][0].weight, start.trunk.stages[1][0].weight, atol=1e-4)
    assert np.isfinite(_losses(tmp_path / "run")).all()
    with pytest.raises(SystemExit, match="freeze-stages"):
        train(_args(two_pairs, tmp_path / "bad", "--iterations", "1", "--cache-features", str(tmp_path / "f2.npy")), log=quiet)


@pytest.mark.slow
def test_cached_stages_train_a_fusion_head_as_the_uncached_run(two_pairs, tmp_path):
    """dsn with every stage frozen: the cache holds the five side inputs, and training on it takes
    the same steps as training through the whole (frozen) network."""
    from dbm.train import cache_files

    quiet = lambda *a: None  # noqa: E731
    base = ["--config", "V", "--variant", "dsn", "--freeze-stages", "5", "--iterations", "3", "--seed", "5",
            "--no-hed-lr-mults"]
    feat = tmp_path / "feat.npy"
    cached = train(_args(two_pairs, tmp_path / "cached", *base, "--cache-features", str(feat)), log=quiet)
    direct = train(_args(two_pairs, tmp_path / "direct", *base), log=quiet)
    assert all(f.is_file() for f in cache_files(feat, range(1, 6)).values()) and not feat.exists()
    np.testing.assert_allclose(_losses(tmp_path / "cached"), _losses(tmp_path / "direct"), rtol=2e-3)
    a, _ = load_weights(cached)
    b, _ = load_weights(direct)
    start = __import__("dbm.model", fromlist=["build_model"]).build_model("V", "dsn", pretrained=False, seed=5)
    torch.testing.assert_close(a.trunk.stages[4][0].weight, start.trunk.stages[4][0].weight, atol=1e-3, rtol=1e-3)
    assert not torch.allclose(a.fuse.weight, start.fuse.weight)
    torch.testing.assert_close(a.fuse.weight, b.fuse.weight, atol=1e-3, rtol=1e-2)
    # the same cache file with other frozen weights (another random trunk) is computed again, never reused
    said = []
    other = ["--config", "V", "--variant", "dsn", "--freeze-stages", "5", "--iterations", "1", "--seed", "6"]
    train(_args(two_pairs, tmp_path / "other", *other, "--cache-features", str(feat)), log=said.append)
    assert any(m.startswith("caching the outputs of stage(s) 1, 2, 3, 4, 5 of 2 images from 0") for m in said)


# --- defaults: the paper's recipe (D_o, fp32) ----------------------------------------------------------------------
def test_defaults_train_on_d_o_in_float32(capsys):
    args = parse_args(["--data", "d", "--out", "o"])
    assert args.split == "odd" and args.amp == "off" and args.loss_norm == "pixel" and args.device == "auto"
    assert not args.no_hed_lr_mults
    with pytest.raises(SystemExit) as exc:
        parse_args(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "odd (D_o" in text and "the default" in text and "off (the default)" in text and "fp32" in text


def test_default_run_records_its_recipe(two_pairs, tmp_path):
    final = train(_args(two_pairs, tmp_path / "run", "--iterations", "1"), log=lambda *a: None)
    _, meta = load_weights(final)
    assert meta["loss_norm"] == "pixel" and meta["amp"] == "off" and meta["split"] == "all"
    assert meta["device"] == "cpu" or meta["device"].startswith("cuda")


# --- one source of truth: configurations, variants, weight-file format ----------------------------------------------
def test_choices_and_checkpoint_format_come_from_the_model(two_pairs, tmp_path):
    from pathlib import Path

    import dbm.train as t
    from dbm.model import CONFIGURATIONS, VARIANTS, WEIGHT_KEYS, read_weight_file

    choices = {a.dest: a.choices for a in t.build_parser()._actions}
    assert choices["config"] == list(CONFIGURATIONS) and choices["variant"] == list(VARIANTS)
    source = Path(t.__file__).read_text()
    assert "dbm-weights-1" not in source and '"I": 1' not in source and '"fcn8s", "fusion"' not in source
    train(_args(two_pairs, tmp_path / "run", "--iterations", "2"), log=lambda *a: None)
    blob = read_weight_file(tmp_path / "run" / "last.pt")
    assert set(WEIGHT_KEYS) <= set(blob) and blob["meta"]["loss_norm"] == "pixel"
    model, _ = load_weights(tmp_path / "run" / "last.pt")
    assert model.depth == 2


# --- loss normalisation --------------------------------------------------------------------------------------------
def test_batch_loss_norm_is_the_pixel_mean_times_h_w():
    from dbm.train import pixel_loss

    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 1, 5, 7, generator=g)
    y = (torch.rand(3, 1, 5, 7, generator=g) > 0.5).float()
    torch.testing.assert_close(pixel_loss(z, y, "batch"), pixel_loss(z, y, "pixel") * 35)
    with pytest.raises(ValueError, match="pixel, batch"):
        pixel_loss(z, y, "sum")


def test_loss_norm_batch_is_used_and_recorded(two_pairs, tmp_path):
    final = train(_args(two_pairs, tmp_path / "run", "--iterations", "2", "--loss-norm", "batch", "--lr", "1e-6"),
                  log=lambda *a: None)
    _, meta = load_weights(final)
    assert meta["loss_norm"] == "batch"
    assert _losses(tmp_path / "run")[0] > 100  # a sum over 48 x 48 pixels, not a mean (~0.7)


# --- HED learning-rate multipliers (fusion, dsn) ------------------------------------------------------------------
def _lr_of(groups):
    return {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


@pytest.mark.parametrize("variant", ["fusion", "dsn"])
def test_hed_learning_rate_multipliers(variant):
    from dbm.model import build_model
    from dbm.train import _param_groups

    net = build_model("V", variant, pretrained=False, seed=0)
    args = parse_args(["--data", "d", "--out", "o", "--variant", variant])
    base, wd = args.lr, args.weight_decay
    lr = _lr_of(_param_groups(net, args))
    expect = {
        net.trunk.stages[0][0]: 1, net.trunk.stages[3][4]: 1,  # conv1_1, conv4_3
        net.trunk.stages[4][0]: 100, net.trunk.stages[4][4]: 100,  # conv5_1, conv5_3
        net.score[0]: 0.01, net.score[4]: 0.01, net.fuse: 0.001,
    }
    for layer, mult in expect.items():
        assert lr[id(layer.weight)] == (pytest.approx(base * mult), wd)
        assert lr[id(layer.bias)] == (pytest.approx(base * mult * 2), 0.0)  # HED: 200 / 0.02 / 0.002
    off = _lr_of(_param_groups(net, parse_args(["--data", "d", "--out", "o", "--variant", variant, "--no-hed-lr-mults"])))
    assert {v for v in off.values()} == {(base, wd), (2 * base, 0.0)}


def test_plain_and_fcn8s_keep_two_groups_and_the_schedule_keeps_the_ratios():
    from dbm.model import build_model
    from dbm.train import _param_groups, _set_lr

    for variant in ("plain", "fcn8s"):
        net = build_model("V", variant, pretrained=False, seed=0)
        groups = _param_groups(net, parse_args(["--data", "d", "--out", "o", "--variant", variant]))
        assert len(groups) == 2
    net = build_model("V", "fusion", pretrained=False, seed=0)
    opt = torch.optim.SGD(_param_groups(net, parse_args(["--data", "d", "--out", "o", "--variant", "fusion"])), lr=1.0)
    _set_lr(opt, 5, 10, 0.9)
    ratios = {round(g["lr"] / g["base_lr"], 9) for g in opt.param_groups}
    assert ratios == {round(0.5**0.9, 9)}


# --- run folders: never overwritten by accident; --resume keeps the recipe -----------------------------------------
def test_resume_refuses_a_changed_recipe_and_overwrite_starts_again(two_pairs, tmp_path, capsys):
    from dbm.train import main

    quiet = lambda *a: None  # noqa: E731
    run = tmp_path / "run"
    train(_args(two_pairs, run, "--iterations", "2"), log=quiet)
    base = ["--data", str(two_pairs), "--out", str(run), "--config", "II", "--scratch", "--size", "48", "--batch-size",
            "2", "--optimizer", "adam", "--lr", "1e-3", "--no-progress", "--iterations", "3", "--device", "cpu"]
    before = (run / "final.pt").read_bytes()
    assert main(base) == 2  # default --split odd, no --resume: the folder holds a run
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "already holds a run" in err and "--resume" in err
    assert main([*base, "--resume"]) == 2  # the run was trained on --split all
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--split all" in err
    assert (run / "final.pt").read_bytes() == before
    with open(run / "loss.csv", "a") as f:  # a row logged after the last checkpoint, before a crash
        f.write("9,0.5,1e-3,1.0\n")
    assert main([*base, "--split", "all", "--resume"]) == 0
    assert [int(r) for r in _iterations(run)] == [1, 2, 3]
    assert main([*base, "--split", "all", "--overwrite", "--iterations", "1"]) == 0
    assert [int(r) for r in _iterations(run)] == [1]


def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_it_again(two_pairs, tmp_path, capsys):
    """torchrun --max-restarts K ... --resume after a crash before iteration --save-every: only logs, no last.pt."""
    from dbm.train import main

    run = tmp_path / "run"
    run.mkdir()
    (run / "loss.csv").write_text("iteration,loss,lr,seconds\n1,0.69,1e-3,0.5\n2,0.68,1e-3,1.0\n")
    argv = ["--data", str(two_pairs), "--out", str(run), "--split", "all", "--config", "II", "--scratch", "--size",
            "48", "--batch-size", "2", "--optimizer", "adam", "--lr", "1e-3", "--no-progress", "--iterations", "3",
            "--device", "cpu"]
    assert main(argv) == 2  # without --resume the logs are still a run's
    assert "already holds a run (loss.csv)" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert "holds no checkpoint yet" in capsys.readouterr().out
    assert [int(r) for r in _iterations(run)] == [1, 2, 3] and (run / "final.pt").is_file()
    (run / "last.pt").unlink()  # a finished run's weights are never replaced by --resume
    assert main([*argv, "--resume"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def _iterations(run):
    with open(run / "loss.csv") as f:
        return [r["iteration"] for r in csv.DictReader(f)]


def test_resume_refuses_other_data_and_a_damaged_checkpoint(two_pairs, tmp_path, capsys, monkeypatch):
    import shutil

    from dbm.train import main

    run = tmp_path / "run"
    train(_args(two_pairs, run, "--iterations", "1"), log=lambda *a: None)
    other = tmp_path / "other"
    shutil.copytree(two_pairs, other)
    base = ["--out", str(run), "--split", "all", "--config", "II", "--scratch", "--size", "48", "--batch-size", "2",
            "--optimizer", "adam", "--lr", "1e-3", "--no-progress", "--iterations", "2", "--device", "cpu", "--resume"]
    assert main(["--data", str(other), *base]) == 2  # same images, other folder: not the same run
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--data" in err and str(other.resolve()) in err and str(two_pairs.resolve()) in err
    assert main(["--data", str(two_pairs), *base, "--cache-features", str(tmp_path / "f.npy")]) == 2
    assert "--cache-features" in capsys.readouterr().err
    monkeypatch.chdir(two_pairs.parent)  # the same folder by another spelling is the same run
    assert main(["--data", f"./{two_pairs.name}/", *base]) == 0
    capsys.readouterr()
    last = run / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # cut off
    assert main(["--data", str(two_pairs), *base, "--iterations", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error:") and "last.pt" in err and "--overwrite" in err
    assert "Traceback" not in err
