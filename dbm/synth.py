"""Synthetic partial blur: point spread functions, scene-shaped region masks, compositing.

Pure functions on NumPy arrays (NumPy, SciPy, OpenCV and scikit-image only; no torch), used to
build DBM's synthetic training corpus (:mod:`dbm.corpus`) and the suite's synthetic benchmark.
Images are ``H x W x 3`` float32 RGB in ``[0, 1]``; masks are ``H x W`` bool with
**True = blurred**, the polarity of the CUHK ground truth.

The model of a partially blurred photo (defocus or object/camera motion) is the usual layered one:
a sharp layer (the in-focus subject, often with the ground plane at the same distance) is composited
over a blurred layer, and the blurred layer is blurred *without* the subject's pixels (normalised
convolution), so a sharp subject leaves no halo in the background. Depth-dependent defocus blurs
each depth layer with a disk whose radius grows with the distance from the focal plane
(thin-lens model: the circle of confusion is proportional to ``|1/z_f - 1/z|``, i.e. to the
disparity difference). Sensor noise and JPEG compression are added after compositing, as in a
camera, so blurred regions keep the noise of the sharp ones and noise cannot be used to tell them
apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np
from scipy import ndimage

__all__ = [
    "BlurSpec",
    "add_sensor_noise",
    "apply_psf",
    "composite_layers",
    "defocus_from_disparity",
    "disk_psf",
    "jpeg_roundtrip",
    "motion_psf",
    "normalized_blur",
    "random_scene_mask",
    "shake_psf",
    "snap_mask_to_segments",
    "synthesize_partial_blur",
]


# --------------------------------------------------------------------------------------------
# Point spread functions
# --------------------------------------------------------------------------------------------
def disk_psf(radius: float, supersample: int = 8) -> np.ndarray:
    """Uniform disk PSF (defocus, thin-lens model) with anti-aliased rim.

    Parameters
    ----------
    radius : float
        Radius of the circle of confusion in pixels; ``radius <= 0.5`` gives the identity.
    supersample : int
        Sub-pixel samples per pixel side used to integrate the disk's coverage of each pixel.

    Returns
    -------
    numpy.ndarray
        Square float32 kernel of odd side ``2 * ceil(radius) + 1``, summing to 1.

    Notes
    -----
    ``k(x, y) = |{(u, v) in pixel (x, y) : u^2 + v^2 <= r^2}| / (pi r^2)``, the pillbox of
    MATLAB's ``fspecial('disk')`` up to the sampling of the rim.
    """
    if radius <= 0.5:
        return np.ones((1, 1), np.float32)
    half = int(np.ceil(radius))
    n = 2 * half + 1
    s = supersample
    offs = (np.arange(n * s) + 0.5) / s - half - 0.5
    xx, yy = np.meshgrid(offs, offs)
    inside = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    k = inside.reshape(n, s, n, s).mean(axis=(1, 3))
    return (k / k.sum()).astype(np.float32)


def motion_psf(length: float, angle_deg: float, supersample: int = 8) -> np.ndarray:
    """Linear uniform-velocity motion PSF (a line segment of ``length`` pixels).

    Parameters
    ----------
    length : float
        Extent of the motion in pixels (``<= 1`` gives the identity).
    angle_deg : float
        Direction, degrees counter-clockwise from the x axis.

    Returns
    -------
    numpy.ndarray
        Odd-sized float32 kernel summing to 1 (the segment drawn with sub-pixel anti-aliasing).
    """
    if length <= 1.0:
        return np.ones((1, 1), np.float32)
    half = int(np.ceil(length / 2)) + 1
    n = 2 * half + 1
    t = np.linspace(-length / 2, length / 2, int(np.ceil(length * supersample)) + 1)
    a = np.deg2rad(angle_deg)
    return _splat(np.stack([t * np.cos(a), -t * np.sin(a)], axis=1), n)


def shake_psf(length: float, rng: np.random.Generator, n_steps: int = 64, curvature: float = 0.6) -> np.ndarray:
    """Camera-shake PSF: a random smooth trajectory of extent about ``length`` pixels.

    A random walk of the velocity (persistence ``1 - curvature / n_steps``-like damping), scaled so
    that the trajectory's largest extent is ``length``; time spent at a point gives its weight.
    """
    if length <= 1.0:
        return np.ones((1, 1), np.float32)
    v = np.zeros(2)
    direction = rng.uniform(0, 2 * np.pi)
    v[:] = np.cos(direction), np.sin(direction)
    pts = [np.zeros(2)]
    for _ in range(n_steps):
        v = v + rng.normal(0, curvature, 2) * 0.3
        v /= max(np.linalg.norm(v), 1e-6)
        pts.append(pts[-1] + v)
    p = np.array(pts)
    p -= p.mean(axis=0)
    extent = max(np.ptp(p[:, 0]), np.ptp(p[:, 1]), 1e-6)
    p *= length / extent
    # densify the polyline
    fine = [np.linspace(p[i], p[i + 1], 8, endpoint=False) for i in range(len(p) - 1)]
    p = np.concatenate(fine + [p[-1:]])
    half = int(np.ceil(np.abs(p).max())) + 1
    return _splat(p, 2 * half + 1)


def _splat(points: np.ndarray, n: int) -> np.ndarray:
    """Bilinearly splat (x, y) points (centred coordinates) into an ``n x n`` kernel, normalised."""
    k = np.zeros((n, n), np.float64)
    c = n // 2
    x = points[:, 0] + c
    y = points[:, 1] + c
    x0 = np.floor(x).astype(int)
    y0 = np.floor(y).astype(int)
    fx = x - x0
    fy = y - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi = np.clip(x0 + dx, 0, n - 1)
        yi = np.clip(y0 + dy, 0, n - 1)
        np.add.at(k, (yi, xi), w)
    return (k / k.sum()).astype(np.float32)


def apply_psf(rgb: np.ndarray, psf: np.ndarray, gamma: float = 2.2) -> np.ndarray:
    """Convolve an image with a PSF in (approximately) linear light.

    The image is linearised with ``x ** gamma``, filtered (reflected borders) and re-encoded,
    which keeps bright bokeh discs bright as in real defocus. ``gamma=1`` filters as is.
    """
    if psf.shape == (1, 1):
        return rgb.astype(np.float32, copy=True)
    lin = np.power(np.clip(rgb, 0, 1), gamma, dtype=np.float32) if gamma != 1 else rgb.astype(np.float32)
    out = cv2.filter2D(lin, -1, psf, borderType=cv2.BORDER_REFLECT)
    out = np.clip(out, 0, 1)
    return np.power(out, 1.0 / gamma, dtype=np.float32) if gamma != 1 else out


def normalized_blur(rgb: np.ndarray, psf: np.ndarray, support: np.ndarray, gamma: float = 2.2) -> np.ndarray:
    """Blur only the pixels where ``support`` is True (normalised convolution).

    ``out = (k * (x s)) / (k * s)``: the layer behind an occluder is blurred without mixing in the
    occluder's colours. Where the support is empty within the kernel the plain blur is used.
    """
    s = support.astype(np.float32)
    lin = np.power(np.clip(rgb, 0, 1), gamma, dtype=np.float32)
    num = cv2.filter2D(lin * s[..., None], -1, psf, borderType=cv2.BORDER_REFLECT)
    den = cv2.filter2D(s, -1, psf, borderType=cv2.BORDER_REFLECT)[..., None]
    plain = cv2.filter2D(lin, -1, psf, borderType=cv2.BORDER_REFLECT)
    out = np.where(den > 1e-3, num / np.maximum(den, 1e-3), plain)
    return np.power(np.clip(out, 0, 1), 1.0 / gamma, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Region masks
# --------------------------------------------------------------------------------------------
def _smooth_noise(shape: tuple[int, int], scale: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with correlation length ``scale`` pixels."""
    h, w = shape
    f = max(1, int(scale / 4))
    small = rng.standard_normal((h // f + 2, w // f + 2)).astype(np.float32)
    small = ndimage.gaussian_filter(small, scale / f)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return (big - big.mean()) / (big.std() + 1e-6)


def _blob(shape: tuple[int, int], rng: np.random.Generator, centre, size) -> np.ndarray:
    """An organic compact shape: an ellipse with a noisy boundary plus a few attached lobes."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = centre
    ry, rx = size
    theta = rng.uniform(-0.5, 0.5)
    ct, st = np.cos(theta), np.sin(theta)
    u = ((xx - cx) * ct + (yy - cy) * st) / rx
    v = (-(xx - cx) * st + (yy - cy) * ct) / ry
    field = u**2 + v**2
    field = field + 0.25 * _smooth_noise(shape, max(4.0, 0.3 * min(rx, ry)), rng)
    inside = field < 1.0
    for _ in range(rng.integers(0, 4)):  # limbs, heads, petals
        a = rng.uniform(0, 2 * np.pi)
        d = rng.uniform(0.6, 1.1)
        ly, lx = cy + d * ry * np.sin(a), cx + d * rx * np.cos(a)
        lr = rng.uniform(0.15, 0.45) * min(rx, ry)
        inside |= ((xx - lx) / (lr * rng.uniform(0.6, 1.6))) ** 2 + ((yy - ly) / lr) ** 2 < 1.0
    return inside


def random_scene_mask(
    shape: tuple[int, int],
    rng: np.random.Generator,
    kind: str | None = None,
) -> np.ndarray:
    """A blur mask shaped like those of real partially blurred photos (True = blurred).

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)``.
    rng : numpy.random.Generator
    kind : str, optional
        One of

        ``"subject"``
            one or two compact sharp subjects (organic blobs with limbs) on a blurred background,
            the commonest layout of the CUHK benchmark;
        ``"subject_ground"``
            a sharp subject standing on a sharp ground band with a wavy upper edge (the focal
            plane crossing the floor);
        ``"band"``
            a sharp band (a row of people, a fence) across the frame, blurred above and below;
        ``"foreground_blur"``
            a blurred foreground object (an out-of-focus leaf or hand) over a sharp background;
        ``"split"``
            a smooth random boundary (depth edge) dividing sharp and blurred halves;
        ``"all_blurred"`` / ``"all_sharp"``
            the whole frame (uniform camera shake, or an all-sharp photo).

        ``None`` draws one with frequencies resembling the CUHK masks (about 64% blurred pixels).

    Returns
    -------
    numpy.ndarray
        bool ``H x W`` mask.
    """
    kinds = ["subject", "subject_ground", "band", "foreground_blur", "split", "all_blurred", "all_sharp"]
    probs = [0.36, 0.22, 0.08, 0.08, 0.14, 0.06, 0.06]
    if kind is None:
        kind = str(rng.choice(kinds, p=probs))
    h, w = shape
    m = min(h, w)
    if kind == "all_blurred":
        return np.ones(shape, bool)
    if kind == "all_sharp":
        return np.zeros(shape, bool)
    if kind in ("subject", "subject_ground", "foreground_blur"):
        sharp = np.zeros(shape, bool)
        n = 1 if kind != "subject" else int(rng.choice([1, 1, 1, 2, 3]))
        for _ in range(n):
            scale = rng.uniform(0.12, 0.38) if kind != "foreground_blur" else rng.uniform(0.15, 0.35)
            ry = scale * m * rng.uniform(0.7, 1.8)
            rx = scale * m * rng.uniform(0.5, 1.4)
            cy = rng.uniform(0.3, 0.75) * h
            cx = rng.uniform(0.2, 0.8) * w
            if kind == "foreground_blur":  # near a border or corner
                cy = rng.choice([rng.uniform(0.0, 0.25), rng.uniform(0.75, 1.0), rng.uniform(0, 1)]) * h
                cx = rng.choice([rng.uniform(0.0, 0.2), rng.uniform(0.8, 1.0)]) * w
            sharp |= _blob(shape, rng, (cy, cx), (ry, rx))
        if kind == "subject_ground":
            level = rng.uniform(0.6, 0.92) * h
            edge = level + 0.04 * h * _smooth_noise((1, w), w / 6, rng)[0]
            yy = np.arange(h)[:, None]
            sharp |= yy > edge[None, :]
        if kind == "foreground_blur":
            return sharp  # the blob is the blurred part
        return ~sharp
    if kind == "band":
        centre = rng.uniform(0.35, 0.75) * h
        half = rng.uniform(0.08, 0.22) * h
        yy = np.arange(h)[:, None].astype(np.float32)
        top = centre - half + 0.06 * h * _smooth_noise((1, w), w / 10, rng)[0]
        bottom = centre + half + 0.03 * h * _smooth_noise((1, w), w / 8, rng)[0]
        return ~((yy > top[None, :]) & (yy < bottom[None, :]))
    if kind == "split":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        a = rng.uniform(0, 2 * np.pi)
        lin = (xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)
        field = lin / m + 0.25 * _smooth_noise(shape, m / 3, rng) - rng.uniform(-0.25, 0.25)
        return field > 0
    raise ValueError(f"unknown mask kind {kind!r}")


def snap_mask_to_segments(mask: np.ndarray, rgb: np.ndarray, n_segments: int = 400, compactness: float = 12.0) -> np.ndarray:
    """Move a mask's boundary onto image edges: each SLIC superpixel takes its majority label.

    Real blur boundaries are depth edges, which coincide with object contours; snapping the
    synthetic region masks to superpixels gives them that property.
    """
    from skimage.segmentation import slic

    seg = slic(rgb, n_segments=n_segments, compactness=compactness, start_label=0, channel_axis=-1)
    votes = ndimage.mean(mask.astype(np.float32), labels=seg, index=np.arange(seg.max() + 1))
    return votes[seg] > 0.5


# --------------------------------------------------------------------------------------------
# Compositing, depth, camera effects
# --------------------------------------------------------------------------------------------
def composite_layers(sharp: np.ndarray, blurred: np.ndarray, mask: np.ndarray, feather: float = 0.7) -> np.ndarray:
    """``mask * blurred + (1 - mask) * sharp`` with a slightly feathered (Gaussian) alpha."""
    alpha = mask.astype(np.float32)
    if feather > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather)
    return (alpha[..., None] * blurred + (1 - alpha[..., None]) * sharp).astype(np.float32)


def defocus_from_disparity(
    rgb: np.ndarray,
    disparity: np.ndarray,
    focus: float,
    radius_per_unit: float,
    n_layers: int = 8,
    max_radius: float = 16.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Depth-dependent defocus: circle of confusion ``r = radius_per_unit * |d - focus|``.

    Parameters
    ----------
    rgb : numpy.ndarray
        Sharp image.
    disparity : numpy.ndarray
        ``H x W`` disparity (or inverse depth), any scale; larger = nearer.
    focus : float
        Disparity of the focal plane.
    radius_per_unit : float
        Blur radius in pixels per unit of disparity difference (aperture).
    n_layers : int
        Number of depth layers the radii are quantised to.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The defocused image and the per-pixel blur radius.

    Notes
    -----
    Layers are composited back to front; each layer is blurred with normalised convolution over
    its own support, so near sharp objects do not bleed into far blurred ones.
    """
    radius = np.minimum(radius_per_unit * np.abs(disparity - focus), max_radius).astype(np.float32)
    edges = np.quantile(disparity, np.linspace(0, 1, n_layers + 1))
    label = np.clip(np.searchsorted(edges[1:-1], disparity, side="right"), 0, n_layers - 1)
    out = rgb.astype(np.float32).copy()
    for layer in range(n_layers):  # far (small disparity) to near
        sel = label == layer
        if not sel.any():
            continue
        r = float(np.median(radius[sel]))
        psf = disk_psf(r)
        blurred = normalized_blur(rgb, psf, sel) if psf.shape != (1, 1) else rgb
        alpha = cv2.filter2D(sel.astype(np.float32), -1, psf, borderType=cv2.BORDER_REFLECT) if psf.shape != (1, 1) else sel.astype(np.float32)
        alpha = np.clip(np.maximum(alpha, sel * (r < 1)), 0, 1)[..., None]
        out = alpha * blurred + (1 - alpha) * out
    return out.astype(np.float32), radius


def add_sensor_noise(rgb: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Signal-dependent Gaussian noise (shot + read): std ``sigma * sqrt(0.2 + x)``."""
    if sigma <= 0:
        return rgb
    noise = rng.standard_normal(rgb.shape).astype(np.float32) * sigma * np.sqrt(0.2 + rgb)
    return np.clip(rgb + noise, 0, 1).astype(np.float32)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode (compression artefacts of real photos)."""
    u8 = np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        return rgb
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255.0


@dataclass
class BlurSpec:
    """Ranges of the random synthesis (pixels refer to the working image size).

    Attributes
    ----------
    p_motion : float
        Probability that the blurred layer is motion- rather than defocus-blurred (CUHK: 296/1000).
    defocus_radius : (float, float)
        Range of the disk radius of the blurred layer.
    motion_length : (float, float)
        Range of the motion extent.
    p_depth : float
        Probability that defocus grows with the (pseudo-)distance from the sharp region instead of
        being uniform.
    p_snap : float
        Probability that the mask is snapped to superpixels.
    noise_sigma : (float, float)
        Range of the sensor-noise level.
    jpeg_quality : (int, int)
        Range of the JPEG quality.
    """

    p_motion: float = 0.3
    defocus_radius: tuple[float, float] = (2.0, 10.0)
    motion_length: tuple[float, float] = (6.0, 30.0)
    p_depth: float = 0.4
    p_snap: float = 0.6
    noise_sigma: tuple[float, float] = (0.0, 0.025)
    jpeg_quality: tuple[int, int] = (70, 96)
    mask_kinds: Sequence[str] | None = field(default=None)


def synthesize_partial_blur(
    rgb: np.ndarray,
    rng: np.random.Generator,
    spec: BlurSpec | None = None,
    mask: np.ndarray | None = None,
    disparity: np.ndarray | None = None,
    blur: str | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Blur regions of a sharp photo; return the photo, its blur mask and what was done.

    Parameters
    ----------
    rgb : numpy.ndarray
        Sharp ``H x W x 3`` float32 photo in ``[0, 1]``.
    rng : numpy.random.Generator
    spec : BlurSpec, optional
        Random ranges (defaults :class:`BlurSpec`).
    mask : numpy.ndarray, optional
        Blur mask to use (True = blurred); drawn with :func:`random_scene_mask` otherwise.
    disparity : numpy.ndarray, optional
        A real disparity map: defocus then follows it (:func:`defocus_from_disparity`) with the
        focal plane at the median disparity of the mask's sharp part.
    blur : {None, "motion", "defocus"}
        Force the kind of blur of the blurred layer (e.g. that of the photo a borrowed mask was
        drawn on); ``None`` draws motion with probability ``spec.p_motion``. A real disparity
        map (defocus) takes precedence.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, dict)
        Blurred photo (float32), mask (bool, True = blurred: where the blur radius is at least
        1.5 px), and a dict describing the draw.
    """
    if blur not in (None, "motion", "defocus"):
        raise ValueError(f"blur must be None, 'motion' or 'defocus', got {blur!r}")
    spec = spec or BlurSpec()
    h, w = rgb.shape[:2]
    info: dict = {}
    if mask is None:
        kind = str(rng.choice(list(spec.mask_kinds))) if spec.mask_kinds else None
        mask = random_scene_mask((h, w), rng, kind)
        if 0 < mask.mean() < 1 and rng.random() < spec.p_snap:
            mask = snap_mask_to_segments(mask, rgb, n_segments=int(rng.integers(150, 700)))
            info["snapped"] = True
    mask = mask.astype(bool)
    info["blurred_fraction"] = float(mask.mean())
    if disparity is not None and 0 < mask.mean() < 1:
        focus = float(np.median(disparity[~mask]))
        spread = float(np.percentile(np.abs(disparity - focus), 90)) + 1e-6
        r_max = rng.uniform(*spec.defocus_radius)
        out, radius = defocus_from_disparity(rgb, disparity, focus, r_max / spread, max_radius=2 * r_max)
        mask = radius >= 1.5
        info.update(blur="depth_defocus", radius=r_max)
    elif mask.any():
        sharp_layer = ~mask
        draw = rng.random()  # drawn even when forced, so forcing changes nothing else in the draw
        if blur == "motion" or (blur is None and draw < spec.p_motion):
            length = rng.uniform(*spec.motion_length)
            psf = motion_psf(length, rng.uniform(0, 180)) if rng.random() < 0.7 else shake_psf(length, rng)
            info.update(blur="motion", length=float(length))
            blurred = normalized_blur(rgb, psf, mask) if sharp_layer.any() else apply_psf(rgb, psf)
        else:
            r = rng.uniform(*spec.defocus_radius)
            info.update(blur="defocus", radius=float(r))
            if sharp_layer.any() and rng.random() < spec.p_depth:
                # blur grows with the distance from the sharp region: a pseudo-depth ramp
                dist = ndimage.distance_transform_edt(mask).astype(np.float32)
                dist /= max(dist.max(), 1.0)
                r_map = np.clip(r * (0.35 + 0.65 * np.sqrt(dist)) * rng.uniform(0.8, 1.6), 2.0, 24.0)
                levels = np.quantile(r_map[mask], [0.1, 0.3, 0.5, 0.7, 0.9])
                nearest = np.abs(r_map[..., None] - levels).argmin(-1)
                blurred = rgb.copy()
                for i, level in enumerate(levels):
                    sel = mask & (nearest == i)
                    if sel.any():
                        blurred[sel] = normalized_blur(rgb, disk_psf(float(level)), mask)[sel]
                info["depth_ramp"] = True
            else:
                psf = disk_psf(r)
                blurred = normalized_blur(rgb, psf, mask) if sharp_layer.any() else apply_psf(rgb, psf)
        out = composite_layers(rgb, blurred, mask)
    else:
        out = rgb.astype(np.float32, copy=True)
        info["blur"] = "none"
    sigma = rng.uniform(*spec.noise_sigma)
    out = add_sensor_noise(out, rng, sigma)
    q = int(rng.integers(spec.jpeg_quality[0], spec.jpeg_quality[1] + 1))
    out = jpeg_roundtrip(out, q)
    info.update(noise=float(sigma), jpeg=q)
    return out, mask, info
