"""The paper's Fig. 2: low-level statistics cannot tell flat sharp regions from blurred ones.

``python -m evaluation.fig2 --data DIR [--split all] [--allow-missing] --out OUT`` draws, from the
photos and masks of a benchmark (the built-in synthetic demo without ``--data``):

(a) the distribution of local gradients (horizontal and vertical forward differences of the grey
    image) of pixels in **blurred** regions, **structured sharp** regions and **flat sharp**
    regions, as in the paper's Fig. 2(a) (which used patches of 100 CUHK images);
(b) the orientation-averaged power spectrum of 32 x 32 patches of the same three kinds, on log-log
    axes with the fitted power-spectral slope of each, the statistic of Fig. 2(b) (which showed the
    four framed patches of Fig. 1; here the average over many patches per kind).

Sharp pixels are split into flat and structured by their local gradient energy (mean squared
gradient in a 15 x 15 window) below or above the median over sharp pixels; region borders
(8 px) are left out so that every window lies in one region. Writes ``OUT/fig2.png`` and
``OUT/fig2.csv`` (the curves).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from baselines.interface import InputError, rgb_to_grey
from .datasets import Dataset

__all__ = ["patch_statistics", "main"]

KINDS = ("blurred", "structured sharp", "flat sharp")
PATCH = 32
BORDER = 8
WINDOW = 15
GRAD_EDGES = np.linspace(-0.5, 0.5, 201)


def _radial_power(patch: np.ndarray) -> np.ndarray:
    """Orientation-averaged power spectrum of a Hann-windowed patch, integer radii 1..PATCH/2."""
    win = np.outer(np.hanning(PATCH), np.hanning(PATCH))
    p = patch - patch.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(p * win))) ** 2
    yy, xx = np.indices(power.shape) - PATCH // 2
    radius = np.rint(np.hypot(yy, xx)).astype(int)
    sums = np.bincount(radius.ravel(), power.ravel(), minlength=PATCH)
    counts = np.bincount(radius.ravel(), minlength=PATCH)
    return sums[1 : PATCH // 2 + 1] / counts[1 : PATCH // 2 + 1]


def _classes(grey: np.ndarray, blurred: np.ndarray, energy_threshold: float | None):
    gx = np.diff(grey, axis=1, append=grey[:, -1:])
    gy = np.diff(grey, axis=0, append=grey[-1:, :])
    energy = ndimage.uniform_filter(gx * gx + gy * gy, WINDOW)
    inner_blur = ndimage.binary_erosion(blurred, iterations=BORDER, border_value=1)
    inner_sharp = ndimage.binary_erosion(~blurred, iterations=BORDER, border_value=1)
    return gx, gy, energy, inner_blur, inner_sharp


def patch_statistics(samples, *, patches_per_kind: int = 200, seed: int = 0, progress=None) -> dict:
    """Gradient histograms and mean radial power spectra of the three kinds of region.

    Returns a dict with ``grad_edges``, ``grad_hist`` (kind -> density), ``freq`` (cycles per
    pixel), ``power`` (kind -> mean spectrum), ``slope`` (kind -> fitted log-log slope) and
    ``n_pixels`` / ``n_patches`` per kind.
    """
    rng = np.random.default_rng(seed)
    wrap = progress or (lambda it, **kw: it)
    loaded = []
    sharp_energy = []
    for s in wrap(samples, desc="fig2", unit="img"):
        mask = s.mask()
        grey = rgb_to_grey(s.image(mask.shape).astype(np.float64))
        parts = _classes(grey, mask, None)
        loaded.append((grey, parts))
        sharp_energy.append(parts[2][parts[4]])
    pooled = np.concatenate(sharp_energy) if sharp_energy else np.zeros(0)
    if pooled.size == 0:
        raise InputError("no sharp region far enough from a border to measure; use more images")
    threshold = float(np.median(pooled))

    hist = {k: np.zeros(len(GRAD_EDGES) - 1) for k in KINDS}
    npix = dict.fromkeys(KINDS, 0)
    spectra: dict[str, list[np.ndarray]] = {k: [] for k in KINDS}
    half = PATCH // 2
    per_image = max(1, patches_per_kind // max(1, len(loaded)))
    for grey, (gx, gy, energy, inner_blur, inner_sharp) in loaded:
        regions = {
            "blurred": inner_blur,
            "structured sharp": inner_sharp & (energy >= threshold),
            "flat sharp": inner_sharp & (energy < threshold),
        }
        centre_ok = np.zeros_like(inner_blur)
        centre_ok[half:-half, half:-half] = True
        for kind, region in regions.items():
            values = np.concatenate([gx[region], gy[region]])
            hist[kind] += np.histogram(values, GRAD_EDGES)[0]
            npix[kind] += int(region.sum())
            # Patches whose whole 32 x 32 support lies in the region.
            full = ndimage.binary_erosion(region, structure=np.ones((PATCH + 1, PATCH + 1)), border_value=0)
            ys, xs = np.nonzero(full & centre_ok)
            if ys.size:
                pick = rng.choice(ys.size, size=min(per_image, ys.size), replace=False)
                for y, x in zip(ys[pick], xs[pick]):
                    spectra[kind].append(_radial_power(grey[y - half : y + half, x - half : x + half]))
    freq = np.arange(1, half + 1) / PATCH
    out = {"grad_edges": GRAD_EDGES, "grad_hist": {}, "freq": freq, "power": {}, "slope": {},
           "n_pixels": npix, "n_patches": {k: len(v) for k, v in spectra.items()}, "energy_threshold": threshold}
    width = np.diff(GRAD_EDGES)
    for kind in KINDS:
        total = hist[kind].sum()
        out["grad_hist"][kind] = hist[kind] / (total * width) if total else hist[kind]
        if spectra[kind]:
            mean = np.mean(spectra[kind], axis=0)
            out["power"][kind] = mean
            out["slope"][kind] = float(np.polyfit(np.log(freq), np.log(mean + 1e-20), 1)[0])
    return out


def plot(stats: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"blurred": "tab:red", "structured sharp": "tab:blue", "flat sharp": "tab:green"}
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    centres = 0.5 * (stats["grad_edges"][1:] + stats["grad_edges"][:-1])
    for kind in KINDS:
        dens = stats["grad_hist"][kind]
        ok = dens > 0
        a.plot(centres[ok], np.log10(dens[ok]), color=colours[kind], label=f"{kind} ({stats['n_pixels'][kind]:,} px)")
        if kind in stats["power"]:
            b.loglog(stats["freq"], stats["power"][kind], color=colours[kind],
                     label=f"{kind}: slope {stats['slope'][kind]:.2f} ({stats['n_patches'][kind]} patches)")
    a.set_xlabel("gradient (grey image in [0, 1])")
    a.set_ylabel("log10 probability density")
    a.set_title("(a) local gradient statistics", fontsize=10)
    a.legend(fontsize=8)
    from matplotlib.ticker import NullFormatter

    b.xaxis.set_minor_formatter(NullFormatter())
    b.set_xlabel("spatial frequency (cycles / pixel)")
    b.set_ylabel("mean power")
    b.set_title("(b) local power spectra, 32 x 32 patches", fontsize=10)
    b.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_csv(stats: dict, path: Path) -> None:
    centres = 0.5 * (stats["grad_edges"][1:] + stats["grad_edges"][:-1])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["panel", "kind", "x", "y"])
        for kind in KINDS:
            for x, y in zip(centres, stats["grad_hist"][kind]):
                w.writerow(["a_gradient_density", kind, f"{x:.5f}", f"{y:.6g}"])
            for x, y in zip(stats["freq"], stats["power"].get(kind, [])):
                w.writerow(["b_power_spectrum", kind, f"{x:.5f}", f"{y:.6g}"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evaluation.fig2", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="benchmark in the CUHK layout (default: the synthetic demo)")
    p.add_argument("--split", default="all", help="all, odd, even or a list file (default: all)")
    p.add_argument("--allow-missing", action="store_true", help="use the images whose photos are present")
    p.add_argument("--limit", type=int, default=100, help="at most this many images (the paper used 100)")
    p.add_argument("--out", type=Path, default=Path("blur_results"), help="output folder")
    args = p.parse_args(argv)
    try:
        if args.data is None:
            from .demo import ensure_demo

            ds, label = Dataset(ensure_demo(args.out / "cache" / "demo_data"), "synthetic demo"), "synthetic demo"
        else:
            ds = Dataset(args.data)
            label = ds.label
        samples = ds.samples(args.split, allow_missing=args.allow_missing)[: args.limit]
        from tqdm.auto import tqdm

        stats = patch_statistics(samples, progress=lambda it, **kw: tqdm(it, leave=False, file=sys.stderr, **kw))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    title = f"Fig. 2 statistics, {label}, {len(samples)} images"
    plot(stats, args.out / "fig2.png", title)
    write_csv(stats, args.out / "fig2.csv")
    for kind in KINDS:
        print(f"{kind:17s} {stats['n_pixels'][kind]:>10,} px  power-spectral slope "
              f"{stats['slope'].get(kind, float('nan')):6.2f} ({stats['n_patches'][kind]} patches)")
    print(f"wrote {args.out / 'fig2.png'} and {args.out / 'fig2.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
