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
    return parse_args(["--data", str(data), "--out", str(out), "--config", "II", "--scratch", "--size", "48",
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
