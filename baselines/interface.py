"""The one detector interface every blur mapper in the suite follows.

A detector takes an RGB photograph and returns a blur map of the same height and width:

* input: ``H x W x 3`` float32 RGB in ``[0, 1]`` (anything :func:`as_rgb_float` accepts is
  converted first: grey, grey + alpha, RGBA, 8- or 16-bit integers, bool);
* output: ``H x W`` float32 in ``[0, 1]``, **1 = blurred**.

Methods whose natural output is a sharpness or defocus amount convert it to this polarity
themselves. This module also holds the image reader shared by the runner and ``blur-map``,
so that bad files fail the same way everywhere: one :class:`InputError` line naming the file and
what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import IO, Any, ClassVar, Sequence

import numpy as np

__all__ = [
    "Detector",
    "InputError",
    "MAX_PIXELS",
    "MIN_SIDE",
    "as_rgb_float",
    "check_pixels",
    "decode_image",
    "finish_map",
    "image_size",
    "mat2gray",
    "read_image",
    "read_raw",
    "rgb_to_grey",
    "thread_budget",
]

#: Smallest accepted image side, in pixels. Every method (and DBM's four 2x poolings) needs a
#: neighbourhood; below this the maps are meaningless.
MIN_SIDE = 16
#: Largest accepted image, in pixels (100 megapixels). Larger photos should be downscaled first.
MAX_PIXELS = 100_000_000


#: Environment variable capping the threads one detector call may use (the runner sets it to 1 in
#: each worker process, so N processes never run N x cores threads).
THREADS_ENV = "BLURMAP_THREADS"


def thread_budget(cap: int | None = None) -> int:
    """Number of threads a method may use for one image.

    ``$BLURMAP_THREADS`` when set, else the cores this process may run on; never more than
    ``cap`` and never less than 1. Results must not depend on it (methods split work so that
    every thread count gives the same map).
    """
    import os

    env = os.environ.get(THREADS_ENV, "").strip()
    if env.isdigit() and int(env) > 0:
        n = int(env)
    else:
        try:
            n = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            n = os.cpu_count() or 1
    if cap is not None:
        n = min(n, cap)
    return max(1, n)


class InputError(ValueError):
    """Bad input: the message is one line, names the file or array and says what to do."""


def _describe(name: str | None) -> str:
    return f"{name}: " if name else ""


def as_rgb_float(image: Any, *, name: str | None = None) -> np.ndarray:
    """Convert an image array to ``H x W x 3`` float32 RGB in ``[0, 1]``.

    Parameters
    ----------
    image : array_like
        ``H x W`` grey, ``H x W x 1`` grey, ``H x W x 2`` grey + alpha, ``H x W x 3`` RGB or
        ``H x W x 4`` RGBA. dtype uint8 (0-255), uint16 (0-65535), bool, or float in ``[0, 1]``.
        Alpha is dropped (the colour channels are used as they are, not composited).
    name : str, optional
        File name or label used in error messages.

    Returns
    -------
    numpy.ndarray
        C-contiguous float32 array of shape ``(H, W, 3)``.

    Raises
    ------
    InputError
        For any other shape or dtype, non-finite or out-of-range floats, images smaller than
        :data:`MIN_SIDE` or larger than :data:`MAX_PIXELS`.
    """
    where = _describe(name)
    if not isinstance(image, np.ndarray):
        try:
            image = np.asarray(image)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise InputError(f"{where}cannot convert {type(image).__name__} to an image array") from exc
    if image.ndim == 3 and image.shape[2] in (1, 2):
        image = image[:, :, 0]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise InputError(
            f"{where}expected an H x W (grey) or H x W x 3/4 (RGB/RGBA) image, got shape {image.shape}"
        )
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InputError(f"{where}image is {w}x{h} px; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    if h * w > MAX_PIXELS:
        raise InputError(
            f"{where}image is {w}x{h} px ({h * w / 1e6:.0f} MP), over the {MAX_PIXELS // 1_000_000} MP "
            "limit; downscale it first"
        )
    if image.dtype == np.uint8:
        out = image.astype(np.float32) / np.float32(255.0)
    elif image.dtype == np.uint16:
        out = image.astype(np.float32) / np.float32(65535.0)
    elif image.dtype == bool:
        out = image.astype(np.float32)
    elif np.issubdtype(image.dtype, np.floating):
        out = image.astype(np.float32, copy=True)
        if not np.all(np.isfinite(out)):
            raise InputError(f"{where}image contains NaN or infinite values")
        lo, hi = float(out.min()), float(out.max())
        if lo < -1e-3 or hi > 1.0 + 1e-3:
            raise InputError(
                f"{where}float image values span [{lo:.3g}, {hi:.3g}]; scale them to [0, 1] "
                "(divide 8-bit data by 255)"
            )
        np.clip(out, 0.0, 1.0, out=out)
    else:
        raise InputError(
            f"{where}unsupported dtype {image.dtype}; use uint8, uint16, bool or float in [0, 1]"
        )
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


# MATLAB compatibility helpers live in baselines.matlab; re-exported here so old imports work.
from .matlab import mat2gray, rgb_to_grey  # noqa: E402


def finish_map(score: Any, shape: Sequence[int], *, name: str = "detector") -> np.ndarray:
    """Check a detector's raw output and return it as float32 in ``[0, 1]``.

    Raises ``RuntimeError`` (a bug in the method, not bad input) when the shape differs from
    ``shape`` or values are not finite. Values are clipped to ``[0, 1]``.
    """
    out = np.asarray(score, dtype=np.float32)
    if out.shape != tuple(shape[:2]):
        raise RuntimeError(f"{name} returned a map of shape {out.shape}, expected {tuple(shape[:2])}")
    if not np.all(np.isfinite(out)):
        raise RuntimeError(f"{name} returned NaN or infinite values")
    return np.clip(out, 0.0, 1.0)


class Detector:
    """Base class of all registered blur detectors.

    Subclasses set :attr:`name`, take their parameters as keyword arguments (stored in
    :attr:`settings`, which also keys the runner's cache) and implement :meth:`compute`, which
    receives validated ``H x W x 3`` float32 RGB in ``[0, 1]`` and returns a blur map
    (1 = blurred) of shape ``H x W``.

    Detectors that learn from data set :attr:`trainable` and implement :meth:`fit`,
    :meth:`get_state` and :meth:`set_state`; the runner trains them on the training split and
    caches the state.
    """

    #: Registry name of the method.
    name: ClassVar[str] = "detector"
    #: Whether :meth:`fit` must be called before use.
    trainable: ClassVar[bool] = False
    #: Bump when the algorithm changes in a way that changes maps (invalidates cached maps).
    version: ClassVar[str] = "1"

    def __init__(self, **settings: Any) -> None:
        self.settings: dict[str, Any] = dict(settings)
        #: Free-text note on what the detector was trained on, for reports.
        self.trained_on: str | None = None

    def compute(self, rgb: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, image: Any) -> np.ndarray:
        """Blur map of ``image`` (any form :func:`as_rgb_float` accepts)."""
        rgb = as_rgb_float(image)
        return finish_map(self.compute(rgb), rgb.shape, name=self.name)

    # Learning -----------------------------------------------------------------------------
    def not_trained(self) -> InputError:
        """The error of a learned detector used before it learned: what to do, in one line."""
        return InputError(
            f"{self.name} learns from data and is not trained yet: load a state the runner saved with "
            f"evaluation.registry.build({self.name!r}, weights='CACHE/{self.name}/KEY-trainDIGEST/model.npz'), "
            f"call .fit(pairs) with (rgb, blurred_mask) pairs, or let `python -m evaluation.run --data DATASET` "
            "train it on the training split"
        )

    def training_digests(self) -> frozenset[str]:
        """Content digests (:func:`baselines.datasets.file_digest`) of the photos this detector
        learned from, when it knows them (a network's weight file records them); the runner refuses
        to test a detector on any of them."""
        return frozenset()

    def fit(self, samples: Sequence[tuple[np.ndarray, np.ndarray]]) -> "Detector":
        """Learn from ``(rgb, blurred_mask)`` pairs. Only for :attr:`trainable` detectors."""
        raise NotImplementedError(f"{self.name} does not learn from data")

    def get_state(self) -> dict[str, np.ndarray]:
        """Learned parameters as a dict of arrays (saved with ``numpy.savez``)."""
        return {}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore parameters produced by :meth:`get_state`."""

    # Caching ------------------------------------------------------------------------------
    def cache_key(self) -> str:
        """Short hash of the name, version and settings: maps are cached under it."""
        blob = json.dumps(
            {"name": self.name, "version": self.version, "settings": self.settings},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.settings.items()))
        return f"{type(self).__name__}({args})"


def read_image(path: str | Path, *, name: str | None = None) -> np.ndarray:
    """Read a photo as ``H x W x 3`` float32 RGB in ``[0, 1]``.

    JPEG, PNG, BMP, TIFF, WebP (whatever OpenCV decodes), 8- or 16-bit, grey, RGB or with alpha.
    Pixels are read as stored: no EXIF rotation, like MATLAB's ``imread``, so photos stay aligned
    with their masks.

    Raises
    ------
    InputError
        When the file is missing, unreadable or of an unsupported kind.
    """
    path = Path(path)
    label = name or str(path)
    raw = read_raw(path, name=label)
    return as_rgb_float(raw, name=label)


def image_size(path: str | Path | IO[bytes], *, name: str | None = None) -> tuple[int, int] | None:
    """``(width, height)`` of an image file (a path or an open binary file) read from its header, without
    decoding the pixels.

    None when Pillow cannot parse the header (OpenCV may still decode such a file; the size is
    then checked after decoding). Used to refuse oversized images (decompression bombs) before
    they cost memory and time.
    """
    from PIL import Image

    import warnings

    label = name or str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the suite's own limit applies
            with Image.open(path) as im:
                return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as exc:  # over Pillow's own (larger) limit: certainly over ours
        import re

        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} MP" if found else f"over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} MP"
        raise InputError(f"{label}: image is {size}, over the {MAX_PIXELS // 1_000_000} MP limit; "
                         "downscale it first") from None
    except OSError:
        return None
    except Exception as exc:  # pragma: no cover - Pillow parser failure on a damaged header
        raise InputError(f"{label}: unreadable image header ({exc}); re-export or re-download the file") from exc


def check_pixels(width: int, height: int, *, name: str | None = None) -> None:
    """Raise :class:`InputError` when a ``width x height`` image exceeds :data:`MAX_PIXELS`."""
    if width * height > MAX_PIXELS:
        raise InputError(
            f"{_describe(name)}image is {width}x{height} px ({width * height / 1e6:.0f} MP), over the "
            f"{MAX_PIXELS // 1_000_000} MP limit; downscale it first"
        )


#: What libjpeg prints (on stderr, without the file name) when a JPEG's compressed data is damaged.
_JPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file", "Inconsistent progression sequence",
                "Invalid SOS parameters")


_STDERR_LOCK = threading.Lock()


def _decode_reporting_jpeg_damage(data: np.ndarray) -> tuple[np.ndarray | None, str]:
    """``cv2.imdecode`` with libjpeg's warnings captured from file descriptor 2 and returned.

    OpenCV decodes damaged JPEG data without failing and lets libjpeg print a warning on the
    process's stderr; the pixels after the damage are garbage. The warning is the only signal,
    so it is captured here and turned into an error by :func:`read_raw`.
    """
    import sys
    import tempfile

    import cv2

    if not (data.size > 2 and data[0] == 0xFF and data[1] == 0xD8):  # not a JPEG: nothing to capture
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED), ""
    sys.stderr.flush()
    with _STDERR_LOCK, tempfile.TemporaryFile() as captured:  # fd 2 is process-wide: one capture at a time
        saved = os.dup(2)
        try:
            os.dup2(captured.fileno(), 2)
            img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode("utf-8", "replace")
    if text and not any(k in text for k in _JPEG_DAMAGE):
        sys.stderr.write(text)  # not ours to judge: pass it on
        text = ""
    return img, text.strip()


def read_raw(path: str | Path, *, name: str | None = None) -> np.ndarray:
    """Decode an image file to its stored array (RGB channel order, dtype as stored).

    The size is read from the header and checked against :data:`MAX_PIXELS` before the pixels
    are decoded, and a JPEG whose compressed data is damaged is refused (libjpeg's warning is
    turned into an :class:`InputError` naming the file) instead of being returned as garbage.
    """
    path = Path(path)
    label = name or str(path)
    if not path.is_file():
        raise InputError(f"{label}: file not found")
    size = image_size(path, name=label)
    if size is not None:
        check_pixels(*size, name=label)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{label}: cannot read file ({exc.strerror or exc})") from exc
    return _decode_raw(data, label)


def decode_image(data: bytes, *, name: str) -> np.ndarray:
    """:func:`read_image` of a file's bytes already in memory (sent by a process on another machine).

    Parameters
    ----------
    data : bytes
        The whole image file.
    name : str
        The file's name (its path where it was read), for messages.

    Returns
    -------
    numpy.ndarray
        ``H x W x 3`` float32 RGB in ``[0, 1]``, exactly as :func:`read_image` of the file gives.

    Raises
    ------
    InputError
        The same one-line errors as :func:`read_image`: oversized, unreadable or damaged data.
    """
    import io

    size = image_size(io.BytesIO(data), name=name)
    if size is not None:
        check_pixels(*size, name=name)
    return as_rgb_float(_decode_raw(np.frombuffer(data, dtype=np.uint8), name), name=name)


def _decode_raw(data: np.ndarray, label: str) -> np.ndarray:
    """The decoding half of :func:`read_raw`: ``data`` holds the file's bytes, its header already checked."""
    img, damage = _decode_reporting_jpeg_damage(data) if data.size else (None, "")
    if img is None:
        raise InputError(f"{label}: not a readable image (corrupt or unsupported format)")
    if damage:
        first = damage.splitlines()[0]
        raise InputError(f"{label}: damaged JPEG data (libjpeg: {first}); re-download or re-export the file")
    check_pixels(img.shape[1], img.shape[0], name=label)
    if img.ndim == 3 and img.shape[2] == 3:
        img = img[:, :, ::-1]
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, [2, 1, 0, 3]]
    return np.ascontiguousarray(img)
