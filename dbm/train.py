"""Train a DBM network: ``python -m dbm.train --data DATASET --out RUN_DIR``.

Defaults are the paper's recipe (Ma et al. 2018, Sec. IV-A): Configuration V initialised from
pretrained VGG16 weights, images resized to 384 x 384, per-pixel sigmoid cross entropy (Eq. 1),
SGD with momentum 0.9, weight decay 5e-4, base learning rate 2^-10 with polynomial decay
(power 0.9), bias learning rate doubled, batch size 3, 10,000 iterations, no data augmentation.
Every knob is a flag. To reproduce Table III train on ``--split odd`` (D_o); Table V:
``--split even`` (D_e).

The run folder receives ``last.pt`` (a resumable checkpoint, written every ``--save-every``
iterations and when the time budget ends; ``--resume`` continues from it), ``loss.csv``,
``val.csv`` when ``--val`` is given, and ``final.pt`` (fp16 weights for :mod:`dbm.predict`).

Departures from the Caffe training
----------------------------------
* The loss is the *mean* over pixels and images (Caffe's ``SigmoidCrossEntropyLoss`` with
  ``VALID`` normalisation), so the learning rate does not depend on the image size.
* Biases have no weight decay (``decay_mult: 0`` of the FCN/HED prototxts).
* Initialisation from HED's VGG16 (see :mod:`dbm.hed_weights`), not from FCN.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "parse_args", "train"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dbm.train", description="Train a DBM network (defaults: the paper's recipe).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", type=Path, nargs="+", required=True, help="dataset folder(s) in the CUHK layout (image/, gt/)")
    g.add_argument("--split", default="all", help="all, odd (D_o), even (D_e), or a list file")
    g.add_argument("--size", type=int, default=384, help="images are resized to SIZE x SIZE (0: keep sizes, batch 1)")
    g.add_argument("--hflip", action="store_true", help="random horizontal flips (the paper trains without augmentation)")
    g.add_argument("--val", type=Path, default=None, help="validation dataset (CUHK layout, all images)")
    g.add_argument("--val-every", type=int, default=1000)
    m = p.add_argument_group("model")
    m.add_argument("--config", default="V", choices=["I", "II", "III", "IV", "V"])
    m.add_argument("--variant", default="plain", choices=["plain", "fcn8s", "fusion", "dsn"])
    m.add_argument("--scratch", action="store_true", help="random initialisation instead of pretrained VGG16")
    m.add_argument("--init", type=Path, default=None, help="start from these DBM weights (a .pt from this module)")
    m.add_argument("--freeze-stages", type=int, default=0, help="keep the first K VGG16 stages fixed")
    m.add_argument("--cache-features", type=Path, default=None,
                   help="with --freeze-stages K (plain variant, no flips): compute the frozen stages once per image "
                        "into this file (float16 memmap, resumable) and train the rest on it")
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    o.add_argument("--lr", type=float, default=2.0**-10)
    o.add_argument("--momentum", type=float, default=0.9)
    o.add_argument("--weight-decay", type=float, default=5e-4)
    o.add_argument("--bias-lr-mult", type=float, default=2.0)
    o.add_argument("--lr-power", type=float, default=0.9, help="polynomial decay power (0: constant)")
    o.add_argument("--batch-size", type=int, default=3)
    o.add_argument("--iterations", type=int, default=10_000)
    o.add_argument("--side-weight", type=float, default=1.0, help="weight of each side-output loss (variant dsn)")
    r = p.add_argument_group("run")
    r.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, final weights)")
    r.add_argument("--resume", action="store_true", help="continue from OUT/last.pt when it exists")
    r.add_argument("--save-every", type=int, default=500)
    r.add_argument("--max-minutes", type=float, default=0.0, help="stop (with a checkpoint) after this wall time; 0: no limit")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    r.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"],
                   help="mixed precision; auto = bf16/fp16 on CUDA, off on CPU (bf16 is emulated, slower, on CPUs without AVX512-BF16)")
    r.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--note", default="", help="free text stored in the weights' metadata (what the data is)")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------
def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


def _batch(imgs, masks, idx, device, hflip_rng=None):
    import torch

    x = np.stack([imgs[i] for i in idx]).astype(np.float32) / 255.0
    y = np.stack([masks[i] for i in idx]).astype(np.float32)
    if hflip_rng is not None:
        flip = hflip_rng.random(len(idx)) < 0.5
        x[flip] = x[flip, :, ::-1]
        y[flip] = y[flip, :, ::-1]
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)
    yt = torch.from_numpy(np.ascontiguousarray(y[:, None])).to(device)
    return xt, yt


def _param_groups(model, args):
    weights, biases = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (biases if name.endswith("bias") else weights).append(p)
    return [
        {"params": weights, "lr": args.lr, "weight_decay": args.weight_decay, "base_lr": args.lr},
        {"params": biases, "lr": args.lr * args.bias_lr_mult, "weight_decay": 0.0, "base_lr": args.lr * args.bias_lr_mult},
    ]


def _set_lr(opt, it, total, power):
    factor = (1.0 - it / total) ** power if power > 0 else 1.0
    for g in opt.param_groups:
        g["lr"] = g["base_lr"] * factor
    return opt.param_groups[0]["lr"]


def _cache_features(model, imgs, k, path: Path, device, log) -> np.memmap:
    """Frozen-stage features of every image in a float16 memmap; resumable via ``path.json``."""
    import torch

    with torch.inference_mode():
        probe = model.features_until(torch.zeros(1, 3, *imgs[0].shape[:2], device=device), k)
    shape = (len(imgs), *probe.shape[1:])
    meta_path = path.with_suffix(path.suffix + ".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    fingerprint = {"shape": list(shape), "k": k, "first": int(imgs[0].astype(np.int64).sum()), "last": int(imgs[-1].astype(np.int64).sum())}
    if meta.get("fingerprint") != fingerprint or not path.is_file():
        meta = {"fingerprint": fingerprint, "done": 0}
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
    else:
        mm = np.load(path, mmap_mode="r+")
    start = meta["done"]
    if start < len(imgs):
        log(f"caching stage-{k} features of {len(imgs)} images from {start} into {path}")
    t0 = time.time()
    for i in range(start, len(imgs)):
        x = torch.from_numpy(imgs[i].astype(np.float32).transpose(2, 0, 1)[None] / 255.0).to(device)
        with torch.inference_mode():
            mm[i] = model.features_until(x, k)[0].to(torch.float16).cpu().numpy()
        if (i + 1) % 25 == 0 or i + 1 == len(imgs):
            mm.flush()
            meta["done"] = i + 1
            meta_path.write_text(json.dumps(meta))
            rate = (time.time() - t0) / (i + 1 - start)
            log(f"  features {i + 1}/{len(imgs)} ({rate:.2f} s/image)")
    return mm


def train(args: argparse.Namespace, log=print) -> Path:
    """Run training as configured by :func:`parse_args`; return the path of ``final.pt``."""
    import torch
    import torch.nn.functional as F

    from .model import build_model, load_weights, save_weights

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    amp_dtype = None
    if args.amp == "auto" and device.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    elif args.amp in ("bf16", "fp16"):
        amp_dtype = torch.bfloat16 if args.amp == "bf16" else torch.float16
    _seed_everything(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    if args.init is not None:
        model, _ = load_weights(args.init)
        if model.variant != args.variant or model.depth != {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5}[args.config]:
            raise SystemExit(f"--init {args.init} is depth {model.depth} {model.variant}, not --config {args.config} --variant {args.variant}")
    else:
        model = build_model(args.config, args.variant, pretrained=not args.scratch, seed=args.seed)
    k = args.freeze_stages
    if not 0 <= k <= model.depth:
        raise SystemExit(f"--freeze-stages must be 0..{model.depth}")
    for stage in model.trunk.stages[:k]:
        for p in stage.parameters():
            p.requires_grad_(False)
    model.to(device)

    imgs, masks, names = _load_arrays(args.data, args.split, args.size)
    log(f"{len(imgs)} training images from {', '.join(map(str, args.data))} (split {args.split}); "
        f"{model.describe()}; device {device}; amp {amp_dtype}")
    if args.size == 0 and args.batch_size != 1:
        raise SystemExit("--size 0 keeps the image sizes and needs --batch-size 1")

    feats = None
    if args.cache_features is not None:
        if k < 1 or args.variant != "plain" or args.hflip:
            raise SystemExit("--cache-features needs --freeze-stages >= 1, --variant plain and no --hflip")
        model.eval()
        feats = _cache_features(model, imgs, k, args.cache_features, device, log)

    params = _param_groups(model, args)
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum)
    else:
        opt = torch.optim.Adam(params, lr=args.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=(amp_dtype == torch.float16 and device.type == "cuda"))

    start_it = 0
    ckpt_path = out / "last.pt"
    order_rng = np.random.default_rng(args.seed)
    flip_rng = np.random.default_rng(args.seed + 1) if args.hflip else None
    if args.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        start_it = int(ck["iteration"])
        order_rng.bit_generator.state = ck["order_rng"]
        if flip_rng is not None and ck.get("flip_rng"):
            flip_rng.bit_generator.state = ck["flip_rng"]
        torch.set_rng_state(ck["torch_rng"])
        log(f"resumed from {ckpt_path} at iteration {start_it}")

    def save_checkpoint(it: int) -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"format": "dbm-weights-1", "depth": model.depth, "variant": model.variant,
                    "state_dict": model.state_dict(), "optimizer": opt.state_dict(), "iteration": it,
                    "order_rng": order_rng.bit_generator.state,
                    "flip_rng": flip_rng.bit_generator.state if flip_rng is not None else None,
                    "torch_rng": torch.get_rng_state(), "args": {k_: str(v) for k_, v in vars(args).items()},
                    "meta": {"input_size": args.size}}, tmp)
        os.replace(tmp, ckpt_path)

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

    loss_file = open(out / "loss.csv", "a", newline="")
    loss_csv = csv.writer(loss_file)
    if start_it == 0:
        loss_csv.writerow(["iteration", "loss", "lr", "seconds"])
    val = _load_arrays([args.val], "all", args.size) if args.val else None

    try:
        from tqdm import tqdm

        bar = tqdm(total=args.iterations, initial=start_it, disable=args.no_progress, dynamic_ncols=True, file=sys.stderr)
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
        idx = next_indices(args.batch_size)
        x, y = _batch(imgs, masks, idx, device, flip_rng)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            if feats is not None:
                f = torch.from_numpy(np.stack([feats[i] for i in idx]).astype(np.float32)).to(device)
                logits = model.forward_from(f, k, y.shape[-2:])
                sides = []
            elif args.variant == "dsn":
                logits, sides = model(x, return_sides=True)
            else:
                logits, sides = model(x), []
            loss = F.binary_cross_entropy_with_logits(logits.float(), y)
            for s in sides:
                loss = loss + args.side_weight * F.binary_cross_entropy_with_logits(s.float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        it += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise SystemExit(f"loss became {value} at iteration {it}; lower --lr")
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
            save_checkpoint(it)
        if args.max_minutes and time.time() - t_start > args.max_minutes * 60:
            log(f"time budget of {args.max_minutes} min reached at iteration {it}; checkpoint saved, rerun with --resume")
            save_checkpoint(it)
            break
    if bar is not None:
        bar.close()
    loss_file.close()
    save_checkpoint(it)
    final = out / "final.pt"
    meta = {"input_size": args.size, "iterations": it, "trained_on": args.note or ", ".join(map(str, args.data)),
            "split": str(args.split), "images": len(imgs),
            "recipe": {k_: str(v) for k_, v in vars(args).items() if k_ not in ("out", "data", "val", "note")}}
    save_weights(model, final, meta)
    log(f"weights written to {final} (iteration {it}/{args.iterations})")
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
    args = parse_args(argv)
    try:
        train(args)
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted; rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
