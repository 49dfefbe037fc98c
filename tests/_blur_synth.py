"""Small synthetic partial-blur benchmark for training and testing the learned detectors.

Photos bundled with scikit-image (no download) get a random region blurred with a known kernel
(Gaussian or disk, i.e. a pillbox defocus PSF); the region is the ground-truth mask (True =
blurred). Used by the tests of the trainable methods so that they never train on the CUHK photos.
"""

from __future__ import annotations

import cv2
import numpy as np

#: scikit-image sample photos that are bundled (no network) and natural enough.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "cat", "camera", "grass", "gravel", "brick", "coins")


def photo(name: str, size: int) -> np.ndarray:
    """A scikit-image sample photo as float32 RGB, resized so that its longer side is ``size``."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3].astype(np.float32) / 255.0
    scale = size / max(img.shape[:2])
    shape = (max(16, round(img.shape[1] * scale)), max(16, round(img.shape[0] * scale)))
    return np.ascontiguousarray(cv2.resize(img, shape, interpolation=cv2.INTER_AREA))


def blur(rgb: np.ndarray, kind: str, amount: float) -> np.ndarray:
    """Blur an RGB image with a Gaussian (``amount`` = sigma) or a disk (``amount`` = radius)."""
    from dbm.synth import apply_psf, disk_psf

    if kind == "gaussian":
        return cv2.GaussianBlur(rgb, (0, 0), amount, borderType=cv2.BORDER_REFLECT)
    if kind == "disk":
        return apply_psf(rgb, disk_psf(amount), gamma=1.0)
    raise ValueError(kind)


def random_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random blurred region covering 30-70 % of the image: a smooth blob or an ellipse's outside."""
    h, w = shape
    if rng.random() < 0.5:
        noise = rng.standard_normal((h, w))
        smooth = cv2.GaussianBlur(noise, (0, 0), max(h, w) / 8)
        return smooth > np.quantile(smooth, rng.uniform(0.3, 0.7))
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    ry, rx = rng.uniform(0.2, 0.4) * h, rng.uniform(0.2, 0.4) * w
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 > 1.0  # background blurred


def make_pair(name: str, size: int, rng: np.random.Generator, kind: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One ``(rgb, mask)`` pair: photo ``name`` with a random region blurred."""
    rgb = photo(name, size)
    mask = random_mask(rgb.shape[:2], rng)
    kind = kind or ("gaussian" if rng.random() < 0.5 else "disk")
    amount = rng.uniform(2.0, 4.0) if kind == "gaussian" else rng.uniform(3.0, 7.0)
    out = np.where(mask[:, :, None], blur(rgb, kind, amount), rgb)
    return np.clip(out, 0, 1).astype(np.float32), mask


def dataset(names=PHOTOS, size: int = 256, per_photo: int = 1, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """A list of ``(rgb, mask)`` pairs, ``per_photo`` random variants of each named photo."""
    rng = np.random.default_rng(seed)
    return [make_pair(n, size, rng) for n in names for _ in range(per_photo)]
