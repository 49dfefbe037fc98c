"""Add an int8 calibration to a DBM weight file: ``python -m dbm.quantize --weights W --data DATASET --out W8``.

Post-training static quantization (:func:`dbm.model.quantize_int8`) needs the range of every
activation of the trunk. This command runs a few training images (never evaluation photos) through
the float32 network, stores the resulting per-tensor activation scales and zero points in the
weight file's ``meta["int8"]`` and writes the file to ``--out`` (the float16 weights are copied
unchanged). ``DBM(precision="int8")`` and ``python -m dbm.predict --precision int8`` then quantize
the network on load, with no data needed. The weights themselves are quantized per output channel
when loaded, so only the activation ranges come from data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

__all__ = ["calibrate", "main"]


def calibrate(weights: str | Path, data: str | Path, *, images: int = 32, size: int | None = None, split: str = "all",
              seed: int = 0, out: str | Path | None = None, log=print) -> dict:
    """Calibrate the int8 activation ranges of ``weights`` on ``images`` photos of ``data``.

    Parameters
    ----------
    weights : path
        A plain DBM weight file (:func:`dbm.model.save_weights`).
    data : path
        A dataset in the CUHK layout (``image/``, ``gt/``); ``images`` of its photos, drawn with
        ``seed``, are resized to ``size x size`` (default: the file's ``inference_size`` or
        ``input_size``).
    out : path, optional
        Where to write the weight file with ``meta["int8"]`` (default: overwrite ``weights``).

    Returns
    -------
    dict
        The ``meta["int8"]`` record: backend, qparams and a description of the calibration.
    """
    import cv2
    import torch

    from baselines.datasets import Dataset

    from .model import INT8_BACKEND, WEIGHTS_FORMAT, load_weights, quantize_int8

    net, meta = load_weights(weights)
    side = int(size or meta.get("inference_size") or meta.get("input_size") or 384)
    samples = Dataset(data).samples(split)
    if not samples:
        raise ValueError(f"{data}: no photos in split {split!r}")
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(samples), size=min(images, len(samples)), replace=False).tolist())
    batches = []
    for i in pick:
        rgb = samples[i].image()
        interp = cv2.INTER_AREA if side * side < rgb.shape[0] * rgb.shape[1] else cv2.INTER_LINEAR
        x = cv2.resize(rgb, (side, side), interpolation=interp)
        batches.append(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None])
    _, qparams = quantize_int8(net, batches)
    record = {"backend": INT8_BACKEND, "qparams": qparams,
              "calibration": f"{len(pick)} photos of {Path(data).name} (split {split}, seed {seed}) at {side} x {side}"}
    blob = torch.load(weights, map_location="cpu", weights_only=True)
    if blob.get("format") != WEIGHTS_FORMAT:  # load_weights accepted it, so this cannot happen
        raise ValueError(f"{weights}: not a DBM weight file")
    blob = {k: blob[k] for k in ("format", "depth", "variant", "state_dict", "meta")}  # drop optimiser state of checkpoints
    blob["meta"] = dict(blob.get("meta", {}), int8=record)
    target = Path(out or weights)
    torch.save(blob, target)
    log(f"int8 calibration ({record['calibration']}) written to {target}")
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dbm.quantize", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, required=True, help="DBM weight file (plain variant)")
    p.add_argument("--data", type=Path, required=True, help="training dataset in the CUHK layout (never evaluation photos)")
    p.add_argument("--split", default="all")
    p.add_argument("--images", type=int, default=32, help="number of calibration photos")
    p.add_argument("--size", type=int, default=None, help="network input side (default: from the weights)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="output weight file (default: overwrite --weights)")
    args = p.parse_args(argv)
    try:
        calibrate(args.weights, args.data, images=args.images, size=args.size, split=args.split, seed=args.seed, out=args.out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
