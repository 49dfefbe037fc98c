"""Train a DBM network: ``python -m dbm.train --data DATASET --out RUN_DIR``.

Defaults are the paper's recipe (Ma et al. 2018, Sec. IV-A): Configuration V initialised from
pretrained VGG16 weights, trained on D_o (``--split odd``, the training half of Table III),
images resized to 384 x 384, per-pixel sigmoid cross entropy (Eq. 1), SGD with momentum 0.9,
weight decay 5e-4, base learning rate 2^-10 with polynomial decay (power 0.9), bias learning rate
doubled, batch size 3, 10,000 iterations, no data augmentation, float32 arithmetic (the paper
trained with Caffe in fp32; mixed precision only with ``--amp``). Every knob is a flag. Table V
trains on ``--split even`` (D_e); ``--split all`` trains on every image of ``--data``.

The run folder receives ``last.pt`` (a resumable checkpoint, written every ``--save-every``
iterations and when the time budget ends; ``--resume`` continues from it), ``loss.csv``,
``val.csv`` when ``--val`` is given, and ``final.pt`` (fp16 weights for ``blur-map`` and the runner). A
folder that already holds a run is never overwritten: ``--resume`` continues it, ``--overwrite``
starts again. ``--resume`` refuses options that change the run (data folders and split, feature
cache, size, configuration, loss, ...) and a damaged ``last.pt``. Errors are one line
(``error: ...``) with exit status 2.

Several processes (torchrun)
----------------------------
``torchrun --nproc_per_node N -m dbm.train ...`` (from the repository's root; from any folder,
``torchrun --nproc_per_node N --no-python dbm-train ...``; on several machines, the same command
on each with ``--nnodes M --rdzv-backend c10d --rdzv-id JOB --rdzv-endpoint HOST:PORT``) trains
data-parallel with :class:`torch.nn.parallel.DistributedDataParallel`: NCCL between GPUs (each
process uses GPU ``LOCAL_RANK`` when ``--device`` is ``auto`` or CUDA), gloo on the CPU. The
rule: **the global batch and the learning-rate schedule are the paper's whatever the number of
processes.** ``--batch-size`` B is the global batch (the paper's 3); of
every step, rank r of the N processes computes images ``floor(r B / N) .. floor((r + 1) B / N) - 1``
(b_r of them: B/N each when N divides B, else 1 or 2 of the paper's 3 on 2 processes; N may not
exceed B), scales its loss by ``N b_r / B`` (1 when N divides B), and the gradients are averaged
over the processes, so the step's gradient is that of the loss of the whole batch; ``--lr``, its
decay and ``--iterations`` count global steps, unchanged. Every process draws the same global
batch from the one seeded permutation stream of a single-process run and keeps its own slice,
so each step sees exactly the images, flips and (up to the order of floating-point sums) the
gradient of a single-process run with that batch; this is what
:class:`torch.utils.data.DistributedSampler` does per epoch, kept in step with the
single-process order and its checkpointed stream. Rank 0 alone writes ``last.pt``, ``loss.csv``
(the loss of the global batch), ``val.csv`` and ``final.pt``; ``--resume`` continues a run with
any number of processes (torchrun ``--max-restarts K ... --resume`` restarts after a crash from the
last checkpoint, or from the start when the crash came before the first). ``--cache-features``
trains in one process only (its frozen-stage features are computed into one file and its step
bypasses the network's ``forward``, which DDP synchronises).
Threads: torchrun gives each process ``OMP_NUM_THREADS=1`` when N > 1; ``--threads`` overrides it.
Under a launcher that shows each process a single GPU (SLURM ``--gpus-per-task=1``, ...), each
process takes the GPU it sees. Processes wait up to :data:`PROCESS_GROUP_TIMEOUT` for each other
(rank 0 validating).

On GPUs
-------
``--amp off`` trains in float32, not TF32 (:func:`dbm.device.full_fp32`); ``--amp auto`` takes
bf16 on GPUs of compute capability 8.0 and later, fp16 with loss scaling (its state in
``last.pt``) before. A CPU run is bit-reproducible (the same weights from the same seed, resumed
or not); a CUDA run is not quite, because the backward pass of the bilinear upsampling has no
deterministic CUDA kernel (torch warns once): two GPU runs differ in the last bits of the weights.
None of this has run on a GPU yet (no GPU was at hand); the CPU tests cover the flags and the
device choice.

Departures from the Caffe training
----------------------------------
* Loss normalisation (``--loss-norm``): ``pixel`` (default) divides the summed per-pixel loss by
  the number of pixels and images (the mean; newer Caffe's ``SigmoidCrossEntropyLoss`` with
  ``VALID`` normalisation), so the learning rate does not depend on the image size. ``batch``
  divides by the batch size only, as the Caffe of FCN/HED (and so probably the paper) did; the
  gradients are then H x W (147,456 at 384 x 384) times larger and the paper's learning rate
  2^-10 diverges; ``--lr`` 2^-10 / (H x W) (about 7e-9 at 384 x 384) takes the same steps as
  ``pixel``. The choice is stored in the weights' ``meta["loss_norm"]``.
* HED's learning-rate multipliers (:data:`dbm.model.HED_LR_MULTS`: conv5 x100, side-output score
  layers x0.01, fusion layer x0.001; biases x2 of these) apply to the ``fusion`` and ``dsn``
  variants, as in HED's ``train_val.prototxt``; ``--no-hed-lr-mults`` turns them off. The plain
  and FCN-8s variants use 1 (biases 2) everywhere, like the FCN prototxts.
* Biases have no weight decay (``decay_mult: 0`` of the FCN/HED prototxts).
* Initialisation from HED's VGG16 (see :mod:`dbm.hed_weights`), not from FCN.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from .cli import CLIError, DefaultsHelpFormatter, OneLineParser, add_common_options, apply_threads, report
from .device import full_fp32

__all__ = ["LOSS_NORMS", "Processes", "build_parser", "main", "parse_args", "batch_share", "pixel_loss", "train"]

#: ``--loss-norm`` choices: divide the summed loss by pixels x images, or by images only (Caffe).
LOSS_NORMS = ("pixel", "batch")
#: Options that ``--resume`` must find unchanged, with the value to assume for checkpoints that predate
#: the option (None: not checked when absent). ``--iterations``, ``--max-minutes``, ``--save-every``,
#: ``--val*``, ``--device``, ``--threads`` may change between sessions.
_RESUME_FIXED = {"data": None, "cache_features": None, "config": None, "variant": None, "scratch": None, "init": None,
                 "size": None, "split": None, "batch_size": None, "hflip": None, "freeze_stages": None,
                 "optimizer": None, "lr": None, "momentum": None, "weight_decay": None, "bias_lr_mult": None,
                 "lr_power": None, "side_weight": None, "seed": None, "amp": None, "loss_norm": "pixel",
                 "no_hed_lr_mults": "False"}
#: Path options of :data:`_RESUME_FIXED`: recorded and compared as resolved absolute paths (JSON), so
#: that ``--data CUHK`` and ``--data ./CUHK/`` are the same run and another folder is not. Checkpoints
#: that recorded them as typed (before this check) are not checked for them.
_RESUME_PATHS = ("data", "cache_features")
#: What a checkpoint must hold for ``--resume`` (:func:`dbm.model.save_checkpoint` of :func:`train`).
_CHECKPOINT_KEYS = ("state_dict", "optimizer", "iteration", "order_rng", "torch_rng")


def build_parser() -> OneLineParser:
    """The argument parser of ``python -m dbm.train``; ``--config``/``--variant`` choices come from
    :data:`dbm.model.CONFIGURATIONS` and :data:`dbm.model.VARIANTS`."""
    from .model import CONFIGURATIONS, VARIANTS

    p = OneLineParser(prog="python -m dbm.train",
                      description="Train a DBM network. Defaults are the paper's recipe: Configuration V from "
                                  "pretrained VGG16, trained on D_o (--split odd), 384 x 384, SGD, lr 2^-10, batch 3, "
                                  "10,000 iterations, float32 (--amp off; the paper used Caffe in fp32).",
                      formatter_class=DefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", type=Path, nargs="+", required=True, help="dataset folder(s): CUHK's layout (image/, gt/) or another of "
                   "the README's table (masks read as blur = positive whatever their polarity)")
    g.add_argument("--split", default="odd",
                   help="images to train on: odd (D_o, the training half of the paper's Table III; the default), "
                        "even (D_e, Table V), all, or a list file")
    g.add_argument("--size", type=int, default=384, help="images are resized to SIZE x SIZE (0: keep sizes, batch 1)")
    g.add_argument("--hflip", action="store_true", help="random horizontal flips (the paper trains without augmentation)")
    g.add_argument("--val", type=Path, default=None, help="validation dataset (CUHK layout, all images)")
    g.add_argument("--val-every", type=int, default=1000, help="validate every this many iterations (with --val)")
    m = p.add_argument_group("model")
    m.add_argument("--config", default="V", choices=list(CONFIGURATIONS), help="Table I configuration (VGG16 stages kept)")
    m.add_argument("--variant", default="plain", choices=list(VARIANTS), help="Table IV architecture")
    m.add_argument("--scratch", action="store_true", help="random initialisation instead of pretrained VGG16")
    m.add_argument("--init", type=Path, default=None, help="start from these DBM weights (a .pt from this module)")
    m.add_argument("--freeze-stages", type=int, default=0, help="keep the first K VGG16 stages fixed")
    m.add_argument("--cache-features", type=Path, default=None,
                   help="with --freeze-stages K (no flips): compute the outputs of the frozen stages that training "
                        "reads once per image into this file (several stages: FILE's stem + .stageN.npy; "
                        "float16 memmaps, resumable) and train the rest on them")
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"],
                   help="sgd with momentum (the paper's), or adam")
    o.add_argument("--lr", type=float, default=2.0**-10, help="base learning rate (the paper: 2^-10, with --loss-norm pixel)")
    o.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (the paper: 0.9)")
    o.add_argument("--weight-decay", type=float, default=5e-4, help="L2 weight decay of the weights, not the biases "
                   "(the paper: 5e-4)")
    o.add_argument("--bias-lr-mult", type=float, default=2.0, help="learning-rate multiplier of the biases (Caffe's 2)")
    o.add_argument("--no-hed-lr-mults", action="store_true",
                   help="fusion/dsn variants: no HED learning-rate multipliers (by default conv5 x100, side-output "
                        "score layers x0.01, fusion layer x0.001, as in HED's train_val.prototxt)")
    o.add_argument("--lr-power", type=float, default=0.9, help="polynomial decay power (0: constant)")
    o.add_argument("--batch-size", type=int, default=3, help="images per step (the paper: 3)")
    o.add_argument("--iterations", type=int, default=10_000, help="training steps (the paper: 10,000)")
    o.add_argument("--loss-norm", default="pixel", choices=list(LOSS_NORMS),
                   help="pixel: mean over pixels and images; batch: sum over pixels divided by the batch size "
                        "(Caffe's SigmoidCrossEntropyLoss in FCN/HED): gradients H*W times larger, so the paper's "
                        "lr 2^-10 diverges; 2^-10/(H*W) (about 7e-9 at 384 x 384) takes the same steps as pixel")
    o.add_argument("--side-weight", type=float, default=1.0, help="weight of each side-output loss (variant dsn)")
    r = p.add_argument_group("run")
    r.add_argument("--resume", action="store_true", help="continue from OUT/last.pt when it exists")
    r.add_argument("--overwrite", action="store_true", help="start again in an OUT that already holds a run (replaces it)")
    r.add_argument("--save-every", type=int, default=500, help="write the checkpoint OUT/last.pt every this many iterations")
    r.add_argument("--max-minutes", type=float, default=0.0, help="stop (with a checkpoint) after this wall time; 0: no limit")
    r.add_argument("--amp", default="off", choices=["off", "bf16", "fp16", "auto"],
                   help="mixed precision; off (the default): float32 everywhere, as the paper (Caffe, fp32); bf16/fp16: "
                        "autocast to that type; auto: bf16 (or fp16) on CUDA, off on the CPU. bf16 is emulated, and "
                        "slower, on CPUs without AVX512-BF16")
    r.add_argument("--seed", type=int, default=0, help="seed of the initialisation, the image order and the flips")
    r.add_argument("--note", default="", help="free text stored in the weights' metadata (what the data is)")
    add_common_options(p, out={"required": True, "help": "run folder (checkpoints, logs, final weights)"}, quiet=True,
                       threads=True, device="", aliases={"--no-progress": "--quiet"}, group=r)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the command line of ``python -m dbm.train`` (see ``--help``).

    Raises
    ------
    dbm.cli.CLIError
        For unknown options, missing or malformed values (one-line message).
    """
    p = build_parser()
    args = p.parse_args(argv)
    for name, low in (("batch_size", 1), ("iterations", 1), ("save_every", 1), ("val_every", 1)):
        if getattr(args, name) < low:
            p.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least {low}")
    from .detector import MAX_SIZE, MIN_SIZE

    if args.size != 0 and not MIN_SIZE <= args.size <= MAX_SIZE:
        p.error(f"--size {args.size}: use 0 (keep the image sizes) or {MIN_SIZE} to {MAX_SIZE} pixels")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        p.error(f"--lr {args.lr}: must be a positive number")
    return args


def pixel_loss(logits, target, norm: str = "pixel"):
    """Sigmoid cross entropy (Eq. 1 of the paper) of logits against a binary blur mask.

    Parameters
    ----------
    logits, target : torch.Tensor
        ``B x 1 x H x W``; the loss is computed in float32.
    norm : {"pixel", "batch"}
        ``"pixel"``: mean over pixels and images; ``"batch"``: sum over pixels and images
        divided by ``B`` (Caffe's ``SigmoidCrossEntropyLoss`` as FCN/HED used it).

    Returns
    -------
    torch.Tensor
        The scalar loss.
    """
    import torch.nn.functional as F

    if norm == "pixel":
        return F.binary_cross_entropy_with_logits(logits.float(), target)
    if norm == "batch":
        return F.binary_cross_entropy_with_logits(logits.float(), target, reduction="sum") / logits.shape[0]
    raise ValueError(f"unknown loss normalisation {norm!r}; use one of {', '.join(LOSS_NORMS)}")


# ------------------------------------------------------------------------------------------------
def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


#: Key of the weight-file metadata listing the content digests of the training photos, so that
#: the runner can refuse to test a network on photos it was trained on.
TRAIN_DIGESTS_KEY = "train_photo_digests"


def training_digests(folders, split) -> list[str]:
    """Sorted :func:`baselines.datasets.file_digest` of every training photo of ``split`` in ``folders``."""
    from baselines.datasets import Dataset, file_digest

    return sorted({file_digest(s.image_path) for f in folders for s in Dataset(f).samples(split)})


def _load_arrays(folders, split, size) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    from .data import iter_pairs, resize_pair

    imgs, masks, names = [], [], []
    for folder in folders:
        for name, rgb, m in iter_pairs(folder, split):
            rgb, m = resize_pair(rgb, m, size or None)
            imgs.append(np.round(rgb * 255).astype(np.uint8))
            masks.append(m)
            names.append(f"{folder}/{name}")
    return imgs, masks, names


def _batch(imgs, masks, idx, device, flip=None):
    """Images ``idx`` as ``B x 3 x H x W`` and their masks as ``B x 1 x H x W`` on ``device``; ``flip``: which to mirror."""
    import torch

    x = np.stack([imgs[i] for i in idx]).astype(np.float32) / 255.0
    y = np.stack([masks[i] for i in idx]).astype(np.float32)
    if flip is not None:
        flip = np.asarray(flip, dtype=bool)
        x[flip] = x[flip, :, ::-1]
        y[flip] = y[flip, :, ::-1]
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)
    yt = torch.from_numpy(np.ascontiguousarray(y[:, None])).to(device)
    return xt, yt


def _param_groups(model, args):
    """Optimiser parameter groups: weights, biases (x ``--bias-lr-mult``, no weight decay), and one
    weight and one bias group per extra learning-rate multiplier (HED's, fusion/dsn variants).

    The first two groups are always the multiplier-1 weights and biases, so checkpoints of the
    plain variants keep their layout.
    """
    mults = model.lr_multipliers("none" if args.no_hed_lr_mults else "hed")
    buckets: dict[tuple[float, bool], list] = {(1.0, False): [], (1.0, True): []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        buckets.setdefault((mults.get(name, 1.0), name.endswith("bias")), []).append(p)
    groups = []
    for (mult, is_bias), params in buckets.items():
        if not params and mult != 1.0:
            continue
        lr = args.lr * mult * (args.bias_lr_mult if is_bias else 1.0)
        groups.append({"params": params, "lr": lr, "weight_decay": 0.0 if is_bias else args.weight_decay,
                       "base_lr": lr, "lr_mult": mult * (args.bias_lr_mult if is_bias else 1.0)})
    return groups


def _set_lr(opt, it, total, power):
    factor = (1.0 - it / total) ** power if power > 0 else 1.0
    for g in opt.param_groups:
        g["lr"] = g["base_lr"] * factor
    return opt.param_groups[0]["lr"]


def cache_files(path: Path, stages) -> dict[int, Path]:
    """The memmap file of each cached stage: ``path`` itself for one stage, else ``STEM.stageN.npy`` beside it."""
    stages = tuple(stages)
    if len(stages) == 1:
        return {stages[0]: path}
    return {s: path.with_name(f"{path.stem}.stage{s}{path.suffix}") for s in stages}


def _cache_features(model, imgs, k, path: Path, device, log) -> dict[int, np.memmap]:
    """The outputs of the frozen stages that training reads (:meth:`DBMNet.cached_stages`), of every
    image, in float16 memmaps (:func:`cache_files`); resumable via ``path.json``, which records what
    they were computed from (stages, frozen weights, photos): anything else starts them again."""
    import torch

    stages = model.cached_stages(k)
    files = cache_files(path, stages)
    with torch.inference_mode():
        probe = model.stage_features(torch.zeros(1, 3, *imgs[0].shape[:2], device=device), stages)
    shapes = {s: (len(imgs), *probe[s].shape[1:]) for s in stages}
    meta_path = path.with_suffix(path.suffix + ".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    trunk = hashlib.sha256()  # the frozen weights: a cache of other weights (--scratch, --init) is never reused
    for name, tensor in model.trunk.stages[:k].state_dict().items():
        trunk.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
    photos = hashlib.sha256()  # the training photos as resized, in training order
    for img in imgs:
        photos.update(np.ascontiguousarray(img).data)
    fingerprint = {"shapes": {str(s): list(v) for s, v in shapes.items()}, "k": k, "trunk": trunk.hexdigest(),
                   "photos": photos.hexdigest()}
    if meta.get("fingerprint") != fingerprint or not all(f.is_file() for f in files.values()):
        meta = {"fingerprint": fingerprint, "done": 0}
        mms = {s: np.lib.format.open_memmap(files[s], mode="w+", dtype=np.float16, shape=shapes[s]) for s in stages}
    else:
        mms = {s: np.load(files[s], mmap_mode="r+") for s in stages}
    start = meta["done"]
    if start < len(imgs):
        gb = sum(math.prod(v) for v in shapes.values()) * 2 / 2**30
        log(f"caching the outputs of stage(s) {', '.join(map(str, stages))} of {len(imgs)} images from {start} "
            f"into {', '.join(str(files[s]) for s in stages)} ({gb:.1f} GB)")
    t0 = time.time()
    for i in range(start, len(imgs)):
        x = torch.from_numpy(imgs[i].astype(np.float32).transpose(2, 0, 1)[None] / 255.0).to(device)
        with torch.inference_mode():
            out = model.stage_features(x, stages)
        for s in stages:
            mms[s][i] = out[s][0].to(torch.float16).cpu().numpy()
        if (i + 1) % 25 == 0 or i + 1 == len(imgs):
            for mm in mms.values():
                mm.flush()
            meta["done"] = i + 1
            meta_path.write_text(json.dumps(meta))
            rate = (time.time() - t0) / (i + 1 - start)
            log(f"  features {i + 1}/{len(imgs)} ({rate:.2f} s/image)")
    return mms


_RUN_FILES = ("last.pt", "final.pt", "loss.csv", "val.csv")
#: The files of a run stopped before its first checkpoint.
_LOG_FILES = {"loss.csv", "val.csv"}


def _check_run_folder(args: argparse.Namespace) -> bool:
    """Refuse to start a new run over an existing one (``--resume`` continues, ``--overwrite`` replaces).

    Returns
    -------
    bool
        True when an earlier run's files are to be removed before training starts: ``--overwrite``,
        or ``--resume`` of a run stopped before its first checkpoint (only its logs, nothing to
        resume: torchrun ``--max-restarts`` restarts such a run from the start).
    """
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise SystemExit(f"--out {out}: exists and is not a folder; choose a folder for the run")
    held = [name for name in _RUN_FILES if (out / name).exists()]
    if not held:
        return False
    if args.resume and (out / "last.pt").is_file():
        return False
    if args.resume and set(held) <= _LOG_FILES:
        return True
    if args.overwrite:
        return True
    what = "continue it with --resume, " if (out / "last.pt").is_file() else ""
    raise SystemExit(f"--out {out}: already holds a run ({', '.join(held)}); {what}start again with --overwrite "
                     f"(replaces it), or choose another --out")


def _resolved(value) -> str:
    """A path option (a path, a list of paths or None) as JSON of resolved absolute paths."""
    if value is None:
        return json.dumps(None)
    if isinstance(value, (list, tuple)):
        return json.dumps([str(Path(v).resolve()) for v in value])
    return json.dumps(str(Path(value).resolve()))


def _run_options(args: argparse.Namespace) -> dict[str, str]:
    """The options as a checkpoint records them: text, path options resolved (:data:`_RESUME_PATHS`)."""
    return {k: _resolved(v) if k in _RESUME_PATHS else str(v) for k, v in vars(args).items()}


def _shown(key: str, text: str) -> str:
    """A recorded option value as the user would type it (resolved paths without the JSON)."""
    if key not in _RESUME_PATHS:
        return text
    value = json.loads(text)
    return " ".join(value) if isinstance(value, list) else str(value)


def _check_resume(ck: dict, args: argparse.Namespace, path: Path) -> None:
    """``--resume`` must not change what the run trains on or how (:data:`_RESUME_FIXED`).

    The dataset folders and the feature cache are compared as resolved paths (:data:`_RESUME_PATHS`).

    Raises
    ------
    SystemExit
        One line naming the first option that differs from the checkpoint's.
    """
    stored = ck.get("args") or {}
    now = _run_options(args)
    for key, missing in _RESUME_FIXED.items():
        old = stored.get(key, missing)
        if old is None:
            continue
        if key in _RESUME_PATHS:
            try:
                json.loads(old)
            except (TypeError, ValueError):
                continue  # recorded as typed by an older version: cannot be resolved now
        new = now[key]
        if new != str(old):
            flag = "--" + key.replace("_", "-")
            if old in ("True", "False"):
                was = f"{'with' if old == 'True' else 'without'} {flag}"
            else:
                was = f"with {flag} {_shown(key, old)}, not {_shown(key, new)}"
            raise SystemExit(f"--resume: {path} was trained {was}; pass the same options to continue it, "
                             f"or start a new run (another --out, or --overwrite)")


def _load_checkpoint(path: Path, device) -> dict:
    """Read ``last.pt`` for ``--resume``; a damaged or foreign file is a one-line error.

    Raises
    ------
    SystemExit
        With a one-line message suggesting ``--overwrite`` when the file cannot be read or lacks
        the training state (:data:`_CHECKPOINT_KEYS`).
    """
    import torch

    advice = "start the run again with --overwrite instead of --resume (replaces it), or choose another --out"
    try:
        ck = torch.load(path, map_location=device, weights_only=False)  # RNG states and options: not weights only
    except Exception as exc:  # zip/pickle errors of a cut-off or damaged file, or an unreadable one
        reason = " ".join(f"{exc.__class__.__name__}: {exc}".split())[:200]
        raise SystemExit(f"--resume: {path} is not a readable checkpoint ({reason}); {advice}") from None
    missing = [k for k in _CHECKPOINT_KEYS if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise SystemExit(f"--resume: {path} is not a dbm.train checkpoint (no {', '.join(missing)}); {advice}")
    return ck


def _trim_log(path: Path, last_iteration: int) -> None:
    """Drop rows of a CSV log written after the checkpoint a run resumes from."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [r for i, r in enumerate(rows) if i == 0 or (r and r[0].isdigit() and int(r[0]) <= last_iteration)]
    if len(keep) != len(rows):
        from .fileio import atomic_write

        def write(fh):
            import io

            text = io.StringIO()
            csv.writer(text).writerows(keep)
            fh.write(text.getvalue().encode())

        atomic_write(path, write, overwrite=True)


def _amp_dtype(amp: str, device):
    import torch

    if amp == "auto":
        if device.type != "cuda":
            return None
        # bf16 where the GPU computes it (compute capability 8.0, Ampere, and later), not emulated
        return torch.bfloat16 if torch.cuda.get_device_capability(device) >= (8, 0) else torch.float16
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


#: How long the processes wait in a collective operation for the slowest (rank 0 validating).
PROCESS_GROUP_TIMEOUT = timedelta(hours=1)

#: The environment variables torchrun sets in each process it starts.
_TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes that torchrun started (one, without torchrun).

    Attributes
    ----------
    world : int
        Number of processes (``WORLD_SIZE``).
    rank : int
        This process's number, 0 .. world - 1 (``RANK``); rank 0 writes every file.
    local_rank : int
        Its number on this machine (``LOCAL_RANK``): the GPU it uses.
    """

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @classmethod
    def from_env(cls, environ=None) -> "Processes":
        """Read torchrun's variables (:data:`_TORCHRUN_VARIABLES`); a single process when they are absent."""
        environ = os.environ if environ is None else environ
        if "WORLD_SIZE" not in environ:
            return cls()
        try:
            world, rank, local = (int(environ.get(name, "0")) for name in _TORCHRUN_VARIABLES)
        except ValueError:
            raise SystemExit(f"{', '.join(_TORCHRUN_VARIABLES)}: not whole numbers; start the processes with torchrun") from None
        if not (world >= 1 and 0 <= rank < world and local >= 0):
            raise SystemExit(f"WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local}: inconsistent; start the processes "
                             "with torchrun")
        return cls(world, rank, local)

    @property
    def distributed(self) -> bool:
        """Whether there are several processes (and a process group)."""
        return self.world > 1

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (checkpoints, logs, weights): rank 0 only."""
        return self.rank == 0


def batch_share(batch_size: int, world: int, rank: int) -> tuple[slice, float]:
    """This process's images of each global batch, and the weight of its loss.

    Rank r of N processes takes images ``r B // N .. (r + 1) B // N - 1`` of the global batch of
    B = ``batch_size`` (b_r images) and weighs its loss, a mean over its own images, by
    ``N b_r / B``: DistributedDataParallel averages the N gradients, so the step's gradient is
    that of the mean loss over the B images, as in one process (module notes, "Several processes").

    Returns
    -------
    slice, float
        The images of the global batch, and the loss weight (exactly 1.0 when N divides B).

    Raises
    ------
    SystemExit
        One line when there are more processes than images in a step.
    """
    if world > batch_size:
        raise SystemExit(f"--batch-size {batch_size} (the global batch) is smaller than the {world} processes, and "
                         f"each computes at least one image of every step; start at most {batch_size} processes "
                         f"(torchrun --nproc_per_node), or choose a --batch-size of at least {world}")
    mine = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
    return mine, world * (mine.stop - mine.start) / batch_size


def _training_device(text: str, procs: Processes):
    """The torch device of this process: ``--device``, and under torchrun GPU ``LOCAL_RANK`` for a CUDA device."""
    import torch

    from .device import resolve_device

    device = torch.device(resolve_device(text))
    if procs.distributed and device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 1:  # a launcher that shows each process its own GPU (SLURM --gpus-per-task=1, ...)
            device = torch.device("cuda", 0)
        elif procs.local_rank >= count:
            raise SystemExit(f"--device {text}: torchrun started process {procs.local_rank} on a machine with {count} "
                             f"GPU(s); start at most {count} processes per machine (--nproc_per_node)")
        else:
            device = torch.device("cuda", procs.local_rank)
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
        torch.cuda.set_device(device)
    return device


def _start_process_group(procs: Processes, device) -> None:
    """Join torchrun's process group: NCCL between GPUs, gloo on the CPU."""
    import torch.distributed as dist

    if procs.distributed and not dist.is_initialized():
        # rank 0 alone validates and writes final.pt while the others wait in a collective: an hour, not
        # NCCL's default 10 minutes, before they give up
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=PROCESS_GROUP_TIMEOUT)


def _end_process_group(procs: Processes) -> None:
    import torch.distributed as dist

    if procs.distributed and dist.is_initialized():
        dist.destroy_process_group()


def _barrier(procs: Processes) -> None:
    if procs.distributed:
        import torch.distributed as dist

        dist.barrier()


def _sum_over_processes(values: list[float], procs: Processes, device) -> list[float]:
    """``values`` summed over the processes (itself in one process)."""
    if not procs.distributed:
        return values
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def train(args: argparse.Namespace, log=print) -> Path:
    """Run training as configured by :func:`parse_args`; return the path of ``final.pt``.

    Started by torchrun (``WORLD_SIZE`` > 1, see :class:`Processes`), it trains data-parallel: see
    the module notes ("Several processes").

    Raises
    ------
    SystemExit
        With a one-line message, for options that do not fit together or a run folder in use.
    baselines.interface.InputError
        For a bad ``--device`` or dataset (:class:`baselines.datasets.DatasetError`).
    """
    procs = Processes.from_env()
    share = batch_share(args.batch_size, procs.world, procs.rank)
    if procs.distributed and args.cache_features is not None:
        raise SystemExit("--cache-features trains in one process; run it without torchrun, or drop --cache-features "
                         "(with --freeze-stages) to train on several")
    if args.size == 0 and args.batch_size != procs.world:
        raise SystemExit("--size 0 keeps the image sizes and needs one image per process: --batch-size 1"
                         + (f" (with torchrun: --batch-size {procs.world}, the number of processes)" if procs.distributed else ""))
    try:
        device = _training_device(args.device, procs)
        amp_dtype = _amp_dtype(args.amp, device)
        with full_fp32(device, enabled=amp_dtype is None):  # --amp off: float32, not TF32
            return _train(args, log if procs.writes else (lambda *a, **k: None), procs, share, device, amp_dtype)
    finally:
        _end_process_group(procs)


def _train(args: argparse.Namespace, log, procs: Processes, share: tuple[slice, float], device, amp_dtype) -> Path:
    """:func:`train` in one of ``procs.world`` processes on ``device``: its ``share`` of each global batch."""
    import torch

    from .model import CONFIGURATIONS, build_model, load_weights, save_checkpoint as write_checkpoint, save_weights

    _start_process_group(procs, device)
    amp_name = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]
    lr_scheme = "none" if args.no_hed_lr_mults else "hed"
    replace_run = _check_run_folder(args)
    ckpt_path = args.out / "last.pt"
    ck = None
    if args.resume and ckpt_path.is_file():  # checked before the images are loaded: a refusal costs nothing
        ck = _load_checkpoint(ckpt_path, device)
        _check_resume(ck, args, ckpt_path)
    if procs.distributed:  # every process must resume from the same iteration (the same last.pt)
        seen = -1.0 if ck is None else float(ck["iteration"])
        total, squares = _sum_over_processes([seen, seen * seen], procs, device)
        if squares * procs.world != total * total:  # not all equal
            raise SystemExit(f"--out {args.out}: the {procs.world} processes do not see the same {ckpt_path.name} "
                             "(this one: " + ("none" if ck is None else f"iteration {int(seen)}") + "); give them "
                             "an --out on a file system they share, or copy last.pt to each machine's --out")
    _barrier(procs)  # every process has seen the folder as it was before rank 0 writes into it
    imgs, masks, names = _load_arrays(args.data, args.split, args.size)
    if not imgs:
        raise SystemExit(f"--data {' '.join(map(str, args.data))}: no training images in split {args.split}")
    apply_threads(args.threads)
    _seed_everything(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    out: Path = args.out
    try:
        if procs.writes:
            out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SystemExit(f"--out {out}: cannot create the folder ({exc.strerror or exc}); choose a writable place")

    if args.init is not None:
        model, _ = load_weights(args.init)
        if model.variant != args.variant or model.depth != CONFIGURATIONS[args.config]:
            raise SystemExit(f"--init {args.init} is depth {model.depth} {model.variant}, not --config {args.config} --variant {args.variant}")
    else:
        model = build_model(args.config, args.variant, pretrained=not args.scratch, seed=args.seed)
    k = args.freeze_stages
    if not 0 <= k <= model.depth:
        raise SystemExit(f"--freeze-stages must be 0..{model.depth}")
    if args.cache_features is not None and (k < 1 or args.hflip):
        raise SystemExit("--cache-features needs --freeze-stages >= 1 and no --hflip")
    for stage in model.trunk.stages[:k]:
        for p in stage.parameters():
            p.requires_grad_(False)
    model.to(device)
    net = model  # what the training step calls: the model, or its DistributedDataParallel wrapper
    if procs.distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    log(f"{len(imgs)} training images from {', '.join(map(str, args.data))} (split {args.split}); "
        f"{model.describe()}; device {device}; amp {amp_name}; loss norm {args.loss_norm}"
        + ("; HED learning-rate multipliers" if model.variant in ("fusion", "dsn") and lr_scheme == "hed" else "")
        + (f"; {procs.world} processes ({'nccl' if device.type == 'cuda' else 'gloo'}) sharing the "
           f"{args.batch_size} images of each step" if procs.distributed else ""))

    feats = None
    if args.cache_features is not None:
        model.eval()
        feats = _cache_features(model, imgs, k, args.cache_features, device, log)

    params = _param_groups(model, args)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum)
    else:
        opt = torch.optim.Adam(params, lr=args.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=(amp_dtype == torch.float16 and device.type == "cuda"))

    start_it = 0
    order_rng = np.random.default_rng(args.seed)
    flip_rng = np.random.default_rng(args.seed + 1) if args.hflip else None
    if ck is not None:
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        start_it = int(ck["iteration"])
        order_rng.bit_generator.state = ck["order_rng"]
        if flip_rng is not None and ck.get("flip_rng"):
            flip_rng.bit_generator.state = ck["flip_rng"]
        torch.set_rng_state(ck["torch_rng"].cpu())  # loaded onto the device with the rest
        if ck.get("scaler"):  # fp16's loss scale, as it was (checkpoints before it start from the default)
            scaler.load_state_dict(ck["scaler"])
        if procs.writes:
            _trim_log(out / "loss.csv", start_it)
            _trim_log(out / "val.csv", start_it)
        log(f"resumed from {ckpt_path} at iteration {start_it}")
        del ck

    run_meta = {"input_size": args.size, "split": str(args.split), "loss_norm": args.loss_norm, "amp": amp_name,
                "lr_multipliers": lr_scheme if model.variant in ("fusion", "dsn") else "none"}

    def save_checkpoint(it: int) -> None:
        if not procs.writes:  # the processes hold the same model and optimiser state: rank 0 writes it
            return
        write_checkpoint(model, ckpt_path, run_meta, optimizer=opt.state_dict(), iteration=it,
                         order_rng=order_rng.bit_generator.state,
                         flip_rng=flip_rng.bit_generator.state if flip_rng is not None else None,
                         torch_rng=torch.get_rng_state(), args=_run_options(args),
                         scaler=scaler.state_dict() if scaler.is_enabled() else None)

    # epoch-wise shuffling, reproducible across resumes (the permutation stream is in the checkpoint)
    perm: list[int] = []

    def next_indices(n: int) -> list[int]:
        nonlocal perm
        idx = []
        while len(idx) < n:
            if not perm:
                perm = list(order_rng.permutation(len(imgs)))
            idx.append(int(perm.pop()))
        return idx

    # fast-forward the permutation stream when resuming (one permutation per epoch consumed)
    if start_it:
        perm = []
        consumed = start_it * args.batch_size
        n_perm, rest = divmod(consumed, len(imgs))
        order_rng = np.random.default_rng(args.seed)
        for _ in range(n_perm):
            order_rng.permutation(len(imgs))
        if rest:
            perm = list(order_rng.permutation(len(imgs)))[: len(imgs) - rest]
        if flip_rng is not None:
            flip_rng = np.random.default_rng(args.seed + 1)
            for _ in range(start_it):
                flip_rng.random(args.batch_size)

    if replace_run and procs.writes:  # --overwrite: only now that options, device, data and model are good
        for name in _RUN_FILES:
            if (out / name).is_file():
                (out / name).unlink()
        log(f"--overwrite: removed the earlier run's files from {out}" if args.overwrite else
            f"--resume: {out} holds no checkpoint yet (the run stopped before its first); started again")
    loss_file = open(out / "loss.csv", "a", newline="") if procs.writes else open(os.devnull, "w")
    loss_csv = csv.writer(loss_file)
    if start_it == 0:
        loss_csv.writerow(["iteration", "loss", "lr", "seconds"])
    val = _load_arrays([args.val], "all", args.size) if args.val and procs.writes else None
    mine, weight = share  # this process's part of each global batch, and its loss's weight

    bar = None
    try:
        try:
            from tqdm import tqdm

            bar = tqdm(total=args.iterations, initial=start_it, disable=args.quiet or not procs.writes,
                       dynamic_ncols=True, file=sys.stderr)
        except ImportError:  # pragma: no cover
            bar = None
        t_start = time.time()
        model.train()
        for stage in model.trunk.stages[:k]:
            stage.eval()
        it = start_it
        running = None
        while it < args.iterations:
            lr = _set_lr(opt, it, args.iterations, args.lr_power)
            idx = next_indices(args.batch_size)  # the global batch, the same in every process
            flip = flip_rng.random(len(idx)) < 0.5 if flip_rng is not None else None
            idx = idx[mine]
            x, y = _batch(imgs, masks, idx, device, None if flip is None else flip[mine])
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                if feats is not None:
                    cached = {s: torch.from_numpy(np.stack([mm[i] for i in idx]).astype(np.float32)).to(device)
                              for s, mm in feats.items()}
                    res = model.forward_cached(cached, k, y.shape[-2:], return_sides=args.variant == "dsn")
                    logits, sides = res if args.variant == "dsn" else (res, [])
                elif args.variant == "dsn":
                    logits, sides = net(x, return_sides=True)
                else:
                    logits, sides = net(x), []
                loss = pixel_loss(logits, y, args.loss_norm)
                for side in sides:
                    loss = loss + args.side_weight * pixel_loss(side, y, args.loss_norm)
                if weight != 1.0:  # a share of another size than the others' (batch_share)
                    loss = loss * weight
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            it += 1
            over_time = bool(args.max_minutes) and time.time() - t_start > args.max_minutes * 60
            # the logged loss is the global batch's: the mean of the processes' weighted losses
            total, late = _sum_over_processes([float(loss.detach()), float(over_time)], procs, device)
            value, over_time = total / procs.world, late > 0  # every process stops at the same iteration
            if not math.isfinite(value):
                raise SystemExit(f"loss became {value} at iteration {it}; lower --lr"
                                 + (" (--loss-norm batch needs a learning rate about H*W times smaller)"
                                    if args.loss_norm == "batch" else ""))
            running = value if running is None else 0.98 * running + 0.02 * value
            loss_csv.writerow([it, f"{value:.5f}", f"{lr:.3e}", f"{time.time() - t_start:.1f}"])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr:.2e}")
            if it % 50 == 0:
                loss_file.flush()
            if val is not None and (it % args.val_every == 0 or it == args.iterations):
                vloss, vacc = _validate(model, val, device, amp_dtype)
                model.train()
                for stage in model.trunk.stages[:k]:
                    stage.eval()
                new = not (out / "val.csv").exists()
                with open(out / "val.csv", "a", newline="") as f:
                    w = csv.writer(f)
                    if new:
                        w.writerow(["iteration", "loss", "accuracy"])
                    w.writerow([it, f"{vloss:.5f}", f"{vacc:.4f}"])
                log(f"iteration {it}: validation loss {vloss:.4f}, accuracy {vacc:.4f}")
            if it % args.save_every == 0:
                loss_file.flush()  # the log never lags behind the checkpoint a run resumes from
                save_checkpoint(it)
            if over_time:
                log(f"time budget of {args.max_minutes} min reached at iteration {it}; checkpoint saved, rerun with --resume")
                loss_file.flush()
                save_checkpoint(it)
                break
    finally:
        if bar is not None:
            bar.close()
        loss_file.close()
    save_checkpoint(it)
    final = out / "final.pt"
    if procs.writes:
        meta = {**run_meta, "iterations": it, "trained_on": args.note or ", ".join(map(str, args.data)),
                "images": len(imgs), "device": str(device), "processes": procs.world,
                TRAIN_DIGESTS_KEY: training_digests(args.data, args.split),
                "recipe": {k_: str(v) for k_, v in vars(args).items() if k_ not in ("out", "data", "val", "note")}}
        save_weights(model, final, meta)
        log(f"weights written to {final} (iteration {it}/{args.iterations})")
    _barrier(procs)  # no process ends before the weights are written
    return final


def _validate(model, val, device, amp_dtype):
    import torch
    import torch.nn.functional as F

    imgs, masks, _ = val
    model.eval()
    losses, accs = [], []
    with torch.inference_mode():
        for i in range(len(imgs)):
            x, y = _batch(imgs, masks, [i], device)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                z = model(x).float()
            losses.append(float(F.binary_cross_entropy_with_logits(z, y)))
            accs.append(float(((z > 0).float() == y).float().mean()))
    return float(np.mean(losses)), float(np.mean(accs))


def main(argv: list[str] | None = None) -> int:
    """``python -m dbm.train``: train, report problems in one line; return the exit status.

    Returns
    -------
    int
        0 when training ended (or the time budget was reached, with a checkpoint), 2 for bad
        options, data, device or run folder (one line on stderr, see :mod:`dbm.cli`), 130 when
        interrupted.
    """
    from baselines.interface import InputError

    try:
        args = parse_args(argv)
        train(args)
    except CLIError as exc:
        report(exc)
        return 2
    except SystemExit as exc:
        if isinstance(exc.code, str):
            report(exc.code)
            return 2
        raise
    except (InputError, FileNotFoundError, ValueError) as exc:
        report(exc)
        return 2
    except OSError as exc:
        report(f"{exc.filename or ''}: {exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
