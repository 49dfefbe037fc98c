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
``OUT/fig2.csv`` (the curves), each atomically; existing ones are replaced only with ``--overwrite``.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from baselines.interface import InputError, rgb_to_grey
from .datasets import Dataset

__all__ = ["build_parser", "patch_statistics", "missing_kinds", "figure", "png_bytes", "plot", "csv_bytes", "write_csv",
           "main"]

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


#: Colour-blind-safe colours (Okabe-Ito) and distinct line styles, so the kinds differ in grey print too.
STYLE = {
    "blurred": {"color": "#D55E00", "linestyle": "-"},
    "structured sharp": {"color": "#0072B2", "linestyle": (0, (6, 2))},
    "flat sharp": {"color": "#009E73", "linestyle": (0, (6, 2, 1.5, 2))},
}


def missing_kinds(stats: dict) -> dict[str, list[str]]:
    """Per panel (``"a"``, ``"b"``), the kinds that have no sample, with the reason, as sentences."""
    out: dict[str, list[str]] = {"a": [], "b": []}
    for kind in KINDS:
        npx = stats["n_pixels"][kind]
        if npx == 0:
            out["a"].append(f"{kind}: no pixel of this kind (8 px or more inside its region)")
        if kind not in stats["power"]:
            why = ("no pixel of this kind" if npx == 0 else
                   f"no {PATCH} x {PATCH} patch fits inside its regions ({npx:,} px in all)")
            out["b"].append(f"{kind}: {why}")
    return out


def png_bytes(stats: dict, title: str) -> bytes:
    """The two panels as a PNG file's content (about 1200 x 520 px); see :func:`figure`."""
    from .plotting import png_bytes

    return png_bytes(figure(stats, title))


def plot(stats: dict, path: Path, title: str, *, overwrite: bool = False) -> None:
    """Draw the two panels into ``path`` (PNG), written atomically.

    Parameters
    ----------
    stats : dict
        From :func:`patch_statistics`.
    path : Path
        The PNG file.
    title : str
        The figure's heading.
    overwrite : bool
        Replace an existing ``path`` (otherwise :class:`FileExistsError`).
    """
    from dbm.fileio import atomic_write_bytes

    atomic_write_bytes(path, png_bytes(stats, title), overwrite=overwrite)


def figure(stats: dict, title: str):
    """The figure of :func:`plot`: a kind without a sample is named under the panel that lacks it."""
    from matplotlib.ticker import FixedLocator, LogLocator, MultipleLocator, NullFormatter, NullLocator

    from .plotting import RC, pyplot

    plt = pyplot()
    missing = missing_kinds(stats)
    with plt.rc_context(RC):
        fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5.2), dpi=100)
        centres = 0.5 * (stats["grad_edges"][1:] + stats["grad_edges"][:-1])
        reach = 0.05
        for kind in KINDS:
            dens = stats["grad_hist"][kind]
            ok = dens > 0
            if stats["n_pixels"][kind] and ok.any():
                a.semilogy(centres[ok], dens[ok], lw=1.8, **STYLE[kind],
                           label=f"{kind} ({stats['n_pixels'][kind]:,} px)")
                reach = max(reach, float(np.abs(centres[ok]).max()))
            if kind in stats["power"]:
                b.loglog(stats["freq"], stats["power"][kind], lw=1.8, marker="o", ms=3.5, **STYLE[kind],
                         label=f"{kind}: slope {stats['slope'][kind]:.2f} ({stats['n_patches'][kind]} patches)")
        peak = max((float(stats["grad_hist"][k].max()) for k in KINDS if stats["n_pixels"][k]), default=0.0)
        if peak > 0:
            a.set_ylim(top=peak * 30)  # headroom for the legend above the peak
        # (a): the gradient range that has data, symmetric, ticks every 0.1 (0.05 when narrow).
        lim = min(0.5, np.ceil(reach * 20) / 20 + 0.01)
        a.set_xlim(-lim, lim)
        a.xaxis.set_major_locator(MultipleLocator(0.1 if lim > 0.2 else 0.05))
        a.xaxis.set_minor_locator(MultipleLocator(0.05 if lim > 0.2 else 0.01))
        a.yaxis.set_major_locator(LogLocator(base=10))
        a.set_xlabel("horizontal and vertical gradient (grey levels in [0, 1])")
        a.set_ylabel("probability density (log scale)")
        a.set_title("(a) local gradient statistics")
        a.grid(which="major", alpha=0.35)
        # (b): frequencies 1/32 .. 1/2 cycle per pixel, labelled as fractions.
        freq = stats["freq"]
        ticks = [f for f in (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2) if freq[0] - 1e-9 <= f <= freq[-1] + 1e-9]
        b.set_xscale("log")
        b.set_yscale("log")
        b.set_xlim(freq[0] / 1.15, freq[-1] * 1.15)
        b.xaxis.set_major_locator(FixedLocator(ticks))
        b.set_xticklabels([f"1/{round(1 / f)}" for f in ticks])
        b.xaxis.set_minor_locator(NullLocator())
        b.xaxis.set_minor_formatter(NullFormatter())
        b.set_xlabel("spatial frequency (cycles per pixel)")
        b.set_ylabel("mean power (log scale)")
        b.set_title(f"(b) local power spectra, {PATCH} x {PATCH} patches")
        b.grid(which="major", alpha=0.35)
        for ax, key in ((a, "a"), (b, "b")):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper right" if key == "a" else "lower left")
            if missing[key]:  # below the panel, where it hides no data
                ax.text(0.5, -0.17, "No sample of " + ";\n".join(missing[key]), transform=ax.transAxes,
                        fontsize=10, ha="center", va="top",
                        bbox={"boxstyle": "round", "facecolor": "#fff3cd", "edgecolor": "#b58900"})
            if not ax.get_legend_handles_labels()[0]:
                ax.set_yticks([])
                if key == "b":
                    ax.set_ylim(1e-3, 1e2)
        fig.suptitle(title, fontsize=12)
        fig.tight_layout()
    return fig


def csv_bytes(stats: dict) -> bytes:
    """The curves of both panels as CSV (``panel, kind, x, y``), the content of ``fig2.csv``."""
    import io

    centres = 0.5 * (stats["grad_edges"][1:] + stats["grad_edges"][:-1])
    text = io.StringIO()
    w = csv.writer(text, lineterminator="\r\n")
    w.writerow(["panel", "kind", "x", "y"])
    for kind in KINDS:
        for x, y in zip(centres, stats["grad_hist"][kind]):
            w.writerow(["a_gradient_density", kind, f"{x:.5f}", f"{y:.6g}"])
        for x, y in zip(stats["freq"], stats["power"].get(kind, [])):
            w.writerow(["b_power_spectrum", kind, f"{x:.5f}", f"{y:.6g}"])
    return text.getvalue().encode()


def write_csv(stats: dict, path: Path, *, overwrite: bool = False) -> None:
    """Write :func:`csv_bytes` to ``path`` atomically (an existing file only with ``overwrite``)."""
    from dbm.fileio import atomic_write_bytes

    atomic_write_bytes(path, csv_bytes(stats), overwrite=overwrite)


def build_parser():
    """The command line of ``python -m evaluation.fig2`` (one-line errors, :mod:`evaluation.cli`)."""
    from .cli import RESULTS_OUT, OneLineParser, add_common_options, positive_int

    p = OneLineParser(prog="python -m evaluation.fig2", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, help="benchmark in the CUHK layout (default: the synthetic demo)")
    p.add_argument("--split", default="all", help="all, odd, even or a list file (default: all)")
    p.add_argument("--allow-missing", action="store_true", help="use the images whose photos are present")
    p.add_argument("--limit", type=positive_int, default=100, help="at most this many images (the paper used 100)")
    add_common_options(p, out=RESULTS_OUT, quiet=True)
    p.add_argument("--overwrite", action="store_true", help="replace fig2.png and fig2.csv if --out holds them")
    return p


def _write_figure(args) -> tuple[dict, dict[str, Path]]:
    """The work of :func:`main`: compute, write ``fig2.png`` and ``fig2.csv``; return the statistics and the files."""
    from .cli import refuse_existing, write_new_files
    from .predict import prepare_out

    targets = {"png": args.out / "fig2.png", "csv": args.out / "fig2.csv"}
    refuse_existing(targets.values(), overwrite=args.overwrite)
    if args.data is None:
        from .demo import ensure_demo

        ds, label = Dataset(ensure_demo(args.out / "cache" / "demo_data"), "synthetic demo"), "synthetic demo"
    else:
        ds = Dataset(args.data)
        label = ds.label
    samples = ds.samples(args.split, allow_missing=args.allow_missing)[: args.limit]
    from tqdm.auto import tqdm

    stats = patch_statistics(samples, progress=lambda it, **kw: tqdm(it, leave=False, file=sys.stderr,
                                                                      disable=args.quiet, **kw))
    prepare_out(args.out)
    title = f"Fig. 2 statistics, {label}, {len(samples)} image{'' if len(samples) == 1 else 's'}"
    write_new_files({targets["png"]: png_bytes(stats, title), targets["csv"]: csv_bytes(stats)},
                    overwrite=args.overwrite)
    return stats, targets


def main(argv: list[str] | None = None) -> int:
    """``python -m evaluation.fig2``: compute, draw and write the figure; return the exit status.

    Returns
    -------
    int
        0 written; 2 nothing written (a bad option, dataset or photo, an existing ``fig2.png`` or
        ``fig2.csv`` without ``--overwrite``, an unwritable ``--out``): one line on stderr.
    """
    from .cli import report, run_cli

    def show(args, result: tuple[dict, dict[str, Path]]) -> int:
        stats, targets = result
        for line in [*missing_kinds(stats)["a"], *missing_kinds(stats)["b"]]:
            report(f"no sample of {line}", prefix="note")
        for kind in KINDS:
            print(f"{kind:17s} {stats['n_pixels'][kind]:>10,} px  power-spectral slope "
                  f"{stats['slope'].get(kind, float('nan')):6.2f} ({stats['n_patches'][kind]} patches)")
        print(f"wrote {targets['png']} and {targets['csv']}")
        return 0

    return run_cli(build_parser(), argv, _write_figure, then=show)


if __name__ == "__main__":
    sys.exit(main())
