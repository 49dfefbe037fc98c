"""The built-in synthetic demo benchmark: real photos, synthetic blur, exact masks.

Used by the runner when no ``--data`` is given, so the suite runs end to end on a fresh machine
without downloading anything. It is generated deterministically from photographs that ship inside
scikit-image (all public domain or CC0): ``astronaut``, ``chelsea``, ``coffee``, ``rocket`` and
``motorcycle_left`` with its Middlebury disparity map. Each photo gives two images, ten in all:

* defocus: a disk PSF outside a sharp subject region (for the motorcycle, depth-dependent
  defocus from its disparity map, focused on the bike);
* motion: a line PSF at a random angle inside a region.

Which of the two falls in D_o (odd index, the training split of learned methods) and which in
D_e (even index, evaluated by default) alternates between photos, so each split has both kinds.

Blur is applied with the PSFs of :mod:`dbm.synth` (in linear light), but with fixed recipes,
region shapes of this module's own and no noise or JPEG, so the demo is not drawn from DBM's
training distribution. Masks are exact: 255 where the pixel was rendered blurred (for depth
defocus, where the blur radius is at least 1.5 px). The photos themselves contain some
natural out-of-focus areas (chelsea's and coffee's backgrounds), which the masks call sharp: this is
a smoke-test benchmark, labelled "synthetic demo" in every output, not a substitute for CUHK.

Write it somewhere with ``python -m evaluation.demo --out DIR`` (``--to`` is the older spelling,
still accepted); errors are one line (``error: ...``), exit status 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

__all__ = ["DEMO_VERSION", "build_parser", "ensure_demo", "main", "make_demo"]

DEMO_VERSION = "2"

# (stem, photo, kind, seed): kind selects how the image is blurred.
_RECIPES = [
    ("demo0001", "astronaut", "defocus_background", 11),
    ("demo0002", "astronaut", "motion_region", 12),
    ("demo0003", "chelsea", "defocus_background", 13),
    ("demo0004", "chelsea", "motion_region", 14),
    ("demo0005", "coffee", "motion_region", 15),
    ("demo0006", "coffee", "defocus_background", 16),
    ("demo0007", "rocket", "defocus_background", 17),
    ("demo0008", "rocket", "motion_region", 18),
    ("demo0009", "motorcycle", "depth_defocus", 19),
    ("demo0010", "motorcycle", "motion_region", 20),
]


def _photo(name: str) -> tuple[np.ndarray, np.ndarray | None]:
    from skimage import data

    if name == "motorcycle":
        left, _right, disp = data.stereo_motorcycle()
        return left, disp
    return getattr(data, name)(), None


def _blob(shape: tuple[int, int], rng: np.random.Generator, frac: float, centre: tuple[float, float]) -> np.ndarray:
    """A smooth connected region covering about ``frac`` of the image around ``centre`` (relative)."""
    import cv2
    from scipy import ndimage

    h, w = shape
    coarse = rng.standard_normal((max(4, h // 32), max(4, w // 32)))
    noise = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot((yy / h - centre[0]) / 0.5, (xx / w - centre[1]) / 0.5)
    field = ndimage.gaussian_filter(0.6 * noise - 2.0 * dist, sigma=min(h, w) / 40)
    region = field > np.quantile(field, 1.0 - frac)
    labels, n = ndimage.label(region)
    if n > 1:
        sizes = ndimage.sum(region, labels, range(1, n + 1))
        region = labels == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(region)


def _render(stem: str, photo: str, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from dbm import synth

    rng = np.random.default_rng(seed)
    rgb8, disp = _photo(photo)
    img = rgb8.astype(np.float32) / 255.0
    h, w = img.shape[:2]
    if kind == "defocus_background":
        subject = _blob((h, w), rng, rng.uniform(0.3, 0.45), (rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.65)))
        blurred_mask = ~subject
        blurred = synth.apply_psf(img, synth.disk_psf(rng.uniform(3.5, 7.0)))
    elif kind == "motion_region":
        blurred_mask = _blob((h, w), rng, rng.uniform(0.35, 0.55), (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)))
        blurred = synth.apply_psf(img, synth.motion_psf(float(rng.integers(11, 25)), rng.uniform(0, 180)))
    elif kind == "depth_defocus":
        from scipy import ndimage

        assert disp is not None
        valid = np.isfinite(disp)
        idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
        d = disp[tuple(idx)]
        d_focus = float(np.quantile(d, 0.97))  # focused on the motorcycle, the nearest object
        blurred, radius = synth.defocus_from_disparity(img, d, d_focus, 7.0 / max(d_focus - float(d.min()), 1e-6))
        blurred_mask = radius >= 1.5  # the corpus's convention: a blur radius of 1.5 px or more
    else:  # pragma: no cover - recipe table is fixed
        raise ValueError(kind)
    out = np.where(blurred_mask[..., None], blurred, img)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8), blurred_mask


def make_demo(root: str | Path) -> Path:
    """Generate the demo benchmark into ``root`` (``image/``, ``gt/``, ``manifest.json``)."""
    import cv2

    root = Path(root)
    (root / "image").mkdir(parents=True, exist_ok=True)
    (root / "gt").mkdir(parents=True, exist_ok=True)
    manifest = {"version": DEMO_VERSION, "label": "synthetic demo", "images": []}
    for stem, photo, kind, seed in _RECIPES:
        rgb, mask = _render(stem, photo, kind, seed)
        cv2.imwrite(str(root / "image" / f"{stem}.png"), rgb[:, :, ::-1])
        cv2.imwrite(str(root / "gt" / f"{stem}.png"), mask.astype(np.uint8) * 255)
        manifest["images"].append({
            "stem": stem, "photo": f"skimage.data.{photo if photo != 'motorcycle' else 'stereo_motorcycle'}",
            "blur": kind, "seed": seed, "blurred_fraction": round(float(mask.mean()), 4),
        })
    tmp = root / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, root / "manifest.json")  # written last: its presence means "complete"
    return root


def ensure_demo(root: str | Path) -> Path:
    """Return ``root`` holding the current demo benchmark, generating it when absent or stale."""
    root = Path(root)
    try:
        ok = json.loads((root / "manifest.json").read_text()).get("version") == DEMO_VERSION
    except (OSError, ValueError):
        ok = False
    return root if ok else make_demo(root)


def build_parser():
    """The command line of ``python -m evaluation.demo`` (one-line errors, :mod:`evaluation.cli`)."""
    from .cli import OneLineParser, add_common_options

    p = OneLineParser(prog="python -m evaluation.demo", description=__doc__.split("\n\n")[0])
    add_common_options(p, out={"required": True, "help": "folder to write image/ and gt/ into (created)"},
                       aliases={"--to": "--out"})
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m evaluation.demo``: write the demo benchmark; return the exit status.

    Returns
    -------
    int
        0 written; 2 nothing written (a bad option, an unwritable ``--out``): one line on stderr.
    """
    from .cli import run_cli

    def show(args, root: Path) -> int:
        print(f"wrote the synthetic demo benchmark to {root}")
        return 0

    return run_cli(build_parser(), argv, lambda args: make_demo(args.out), then=show)


if __name__ == "__main__":
    sys.exit(main())
