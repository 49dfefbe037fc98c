"""Add an int8 calibration to a DBM weight file: ``python -m dbm.quantize --weights W --data DATASET --out W8``.

Post-training static quantization (:func:`dbm.model.quantize_int8`) needs the range of every
activation of the trunk. This command runs a few training images (never evaluation photos) through
the float32 network, stores the resulting per-tensor activation scales and zero points in the
weight file's ``meta["int8"]`` and writes a new file, ``--out`` (default: ``NAME.int8.pt`` beside
the input; the float16 weights are copied unchanged). The input file is never modified, and an
existing ``--out`` is replaced only with ``--overwrite``. ``DBM(precision="int8")`` and
``blur-map --precision int8`` then quantize the network on load, with no data needed.
The weights themselves are quantized per output channel when loaded, so only the activation ranges
come from data. ``--device`` (default ``auto``) chooses where the calibration passes run; the int8
network is built and runs on the CPU. Errors are one line (``error: ...``), exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

__all__ = ["build_parser", "calibrate", "default_output", "main"]


def default_output(weights: str | Path) -> Path:
    """Where the calibrated copy of ``weights`` goes without ``--out``: ``NAME.int8.pt`` beside it."""
    weights = Path(weights)
    return weights.with_name(f"{weights.stem}.int8{weights.suffix or '.pt'}")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and a.exists() and a.samefile(b))
    except OSError:
        return False


def calibrate(weights: str | Path, data: str | Path, *, images: int = 32, size: int | None = None, split: str = "all",
              seed: int = 0, out: str | Path | None = None, overwrite: bool = False, device: str = "auto",
              log=print) -> dict:
    """Calibrate the int8 activation ranges of ``weights`` on ``images`` photos of ``data``.

    Parameters
    ----------
    weights : path
        A plain DBM weight file (:func:`dbm.model.save_weights`); never modified.
    data : path
        A dataset in the CUHK layout (``image/``, ``gt/``); ``images`` of its photos, drawn with
        ``seed``, are resized to ``size x size`` (default: the file's ``inference_size`` or
        ``input_size``).
    out : path, optional
        Where to write the weight file with ``meta["int8"]`` (default: :func:`default_output`,
        ``NAME.int8.pt`` beside ``weights``). Must differ from ``weights``.
    overwrite : bool
        Replace an existing ``out`` (never ``weights`` itself).
    device : str
        Where the calibration passes run (``auto``, ``cpu``, ``cuda``, ``cuda:N``,
        :func:`dbm.device.resolve_device`); the int8 network itself is built for the CPU.

    Returns
    -------
    dict
        The ``meta["int8"]`` record: backend, qparams and a description of the calibration.

    Raises
    ------
    ValueError
        ``out`` is ``weights``, or exists without ``overwrite``; not a DBM weight file; no photos.
    baselines.interface.InputError
        Bad ``device`` or dataset (one-line messages).
    """
    import cv2
    import torch

    from baselines.datasets import Dataset

    from .device import resolve_device
    from .model import INT8_BACKEND, WEIGHT_KEYS, load_weights, quantize_int8, read_weight_file, write_weight_file

    weights = Path(weights)
    target = Path(out) if out is not None else default_output(weights)
    if _same_file(weights, target):
        raise ValueError(f"--out {target}: is the input weight file; the input is never overwritten, choose another --out "
                         f"(default: {default_output(weights).name} beside it)")
    if target.exists() and not overwrite:
        raise ValueError(f"--out {target}: already exists; pass --overwrite to replace it, or choose another --out")
    if not target.parent.is_dir():
        raise ValueError(f"--out {target}: folder {target.parent} does not exist; create it or choose another --out")
    torch_device = resolve_device(device)
    net, meta = load_weights(weights)
    if net.variant != "plain":
        raise ValueError(f"--weights {weights}: int8 supports the plain variant only, not {net.variant!r}")
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
    _, qparams = quantize_int8(net, batches, device=torch_device)
    record = {"backend": INT8_BACKEND, "qparams": qparams,
              "calibration": f"{len(pick)} photos of {Path(data).name} (split {split}, seed {seed}) at {side} x {side}"}
    blob = read_weight_file(weights)
    blob = {k: blob[k] for k in WEIGHT_KEYS if k in blob}  # drop optimiser state of checkpoints
    blob["meta"] = dict(blob.get("meta", {}), int8=record)
    try:
        write_weight_file(target, blob, overwrite=overwrite)
    except FileExistsError:
        raise ValueError(f"--out {target}: appeared while calibrating; pass --overwrite to replace it, "
                         "or choose another --out") from None
    log(f"int8 calibration ({record['calibration']}) written to {target}")
    return record


def build_parser():
    """The command line of ``python -m dbm.quantize`` (one-line errors, :mod:`dbm.cli`)."""
    from .cli import OneLineParser, add_common_options

    p = OneLineParser(prog="python -m dbm.quantize", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, required=True, help="DBM weight file (plain variant); never modified")
    p.add_argument("--data", type=Path, required=True, help="training dataset in the CUHK layout (never evaluation photos)")
    p.add_argument("--split", default="all", help="images of --data to draw from: all (default), odd, even or a list file")
    p.add_argument("--images", type=int, default=32, help="number of calibration photos")
    p.add_argument("--size", type=int, default=None, help="network input side (default: from the weights)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw of the calibration photos")
    add_common_options(p, out={"default": None, "help": "output weight file, different from --weights (default: "
                                                       "NAME.int8.pt beside --weights; the input is never overwritten)"},
                       threads=True, device="runs the calibration passes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (the input is never replaced)")
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m dbm.quantize``: write a calibrated copy of a weight file; return the exit status.

    Returns
    -------
    int
        0 on success; 2 with a one-line ``error:`` message on stderr otherwise (:mod:`dbm.cli`).
    """
    from baselines.interface import InputError

    from .cli import CLIError, apply_threads, report

    p = build_parser()
    try:
        args = p.parse_args(argv)
        if args.images < 1:
            p.error(f"--images {args.images}: must be at least 1")
        from .detector import MAX_SIZE, MIN_SIZE

        if args.size is not None and not MIN_SIZE <= args.size <= MAX_SIZE:
            p.error(f"--size {args.size}: use {MIN_SIZE} to {MAX_SIZE} pixels (default: from the weights)")
        apply_threads(args.threads)
        calibrate(args.weights, args.data, images=args.images, size=args.size, split=args.split, seed=args.seed,
                  out=args.out, overwrite=args.overwrite, device=args.device)
    except (CLIError, InputError, ValueError, FileNotFoundError) as exc:
        report(exc)
        return 2
    except OSError as exc:
        report(f"{exc.filename or '--out'}: {exc.strerror or exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
