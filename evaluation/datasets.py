"""External maps for the runner (``--maps NAME=DIR[:sharp]``); datasets come from :mod:`baselines.datasets`.

The dataset reader (:class:`Dataset`: the table of known datasets :data:`DATASETS`, their layouts
and mask polarity, the polarity guard, splits, masks) lives in :mod:`baselines.datasets` so that
DBM training can use it too; it is re-exported here for the runner.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from baselines.datasets import (
    DATASETS,
    IMAGE_EXTENSIONS,
    MANIFEST_NAME,
    POLARITIES,
    Dataset,
    DatasetError,
    Sample,
    index_files,
    load_mask,
    read_list_file,
    split_text_of,
    stem_index,
)
from baselines.interface import InputError, check_pixels, read_raw

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "MANIFEST_NAME",
    "POLARITIES",
    "MAP_EXTENSIONS",
    "MAP_RESIZE",
    "Dataset",
    "DatasetError",
    "ExternalMaps",
    "Sample",
    "load_mask",
    "parse_maps_option",
    "read_map_file",
    "read_list_file",
    "split_text_of",
    "stem_index",
]

#: File types of precomputed maps: the image types (:data:`IMAGE_EXTENSIONS`) and NumPy arrays.
MAP_EXTENSIONS = (".npy", *IMAGE_EXTENSIONS)
#: ``--maps-resize`` choices -> OpenCV's interpolation flag name (``cv2.resize``, looked up when a map
#: is resized). ``area`` averages the covered pixels when shrinking; when enlarging, OpenCV documents
#: it as similar to ``nearest`` (exactly so for integer factors; bilinear-like between them).
MAP_RESIZE = {"nearest": "INTER_NEAREST", "bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC", "area": "INTER_AREA"}


def read_map_file(path: str | Path) -> np.ndarray:
    """Read a precomputed blur map file, checked; the one reader of ``--maps`` and ``--map`` files.

    Image files (8- or 16-bit, grey or colour: the first channel) and ``.npy`` arrays (float in
    [0, 1], bool, or integers of 8/16 bits; the size is checked from the header before the data
    is read). The polarity is not changed (the callers flip ``high = sharp`` maps).

    Parameters
    ----------
    path : path
        The map file.

    Returns
    -------
    numpy.ndarray
        ``H x W``: uint8 levels as stored (8-bit maps stay exact), or float64 in [0, 1] (16-bit
        maps divided by 65535; float maps as stored, within 1e-6 of [0, 1]).

    Raises
    ------
    DatasetError
        One line naming the file: missing, unreadable, over the pixel limit, not 2-D, of an
        unsupported type, or with values that are not finite or outside [0, 1].
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise DatasetError(f"{path}: map file not found")
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)  # the header only, so far
            if arr.ndim >= 2:
                check_pixels(arr.shape[1], arr.shape[0], name=str(path))
            arr = np.array(arr)
        except (OSError, ValueError) as exc:
            if isinstance(exc, InputError):
                raise
            raise DatasetError(f"{path}: not a readable .npy array ({exc}); save the map with numpy.save") from None
    else:
        arr = read_raw(path)
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise DatasetError(f"{path}: expected a 2-D map (H x W), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) / 65535.0
    if not (np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool):
        raise DatasetError(f"{path}: unsupported map dtype {arr.dtype}; use an 8-bit PNG or a float .npy in [0, 1]")
    score = arr.astype(np.float64)
    if not np.all(np.isfinite(score)):
        raise DatasetError(f"{path}: map contains NaN or infinite values; save finite values in [0, 1]")
    if score.size and (score.min() < -1e-6 or score.max() > 1 + 1e-6):
        raise DatasetError(f"{path}: float map values span [{score.min():.3g}, {score.max():.3g}]; scale them to [0, 1]")
    return score


def parse_maps_option(text: str) -> tuple[str, Path, bool]:
    """Parse ``NAME=DIR[:sharp]`` into (name, folder, high_means_sharp)."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name or not rest:
        raise DatasetError(f"--maps {text!r}: expected NAME=DIR or NAME=DIR:sharp")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise DatasetError(f"--maps {text!r}: method names may use letters, digits, '_', '-', '.' only")
    sharp = False
    for suffix in (":sharp", ":blur"):
        if rest.endswith(suffix):
            sharp = suffix == ":sharp"
            rest = rest[: -len(suffix)]
    return name, Path(rest), sharp


class ExternalMaps:
    """Precomputed maps in a folder, matched to images by file stem.

    Any of :data:`MAP_EXTENSIONS`, read by :func:`read_map_file`. ``high_is_sharp`` flips the
    polarity (score = 1 - value). A map must have its mask's size unless ``resize`` names an
    interpolation of :data:`MAP_RESIZE` (``--maps-resize``): a map of another size is then resized
    to the mask's size with OpenCV's ``cv2.resize`` (8-bit maps stay 8-bit, OpenCV rounding;
    float maps are resized in float64 and clipped to [0, 1], as bicubic can overshoot), and
    :attr:`resized` counts the resized maps by original size (width, height).
    """

    def __init__(self, name: str, folder: str | Path, high_is_sharp: bool = False, resize: str | None = None) -> None:
        self.name = name
        self.folder = Path(folder)
        self.high_is_sharp = high_is_sharp
        if resize is not None and resize not in MAP_RESIZE:
            raise DatasetError(f"--maps-resize {resize!r}: choose one of {', '.join(MAP_RESIZE)}")
        self.resize = resize
        self.resized: dict[tuple[int, int], int] = {}
        if not self.folder.is_dir():
            raise DatasetError(f"{self.folder}: map folder for --maps {name} not found")
        self.files = index_files(self.folder, MAP_EXTENSIONS)
        if not self.files:
            raise DatasetError(f"{self.folder}: no map files (.png or .npy) for --maps {name}")

    def missing(self, stems: Iterable[str]) -> list[str]:
        return [s for s in stems if s not in self.files]

    def load(self, sample: Sample, mask_shape: Sequence[int]) -> np.ndarray:
        """The blur score of one image as uint8 levels (exact for 8-bit maps) or float in [0, 1]."""
        path = self.files.get(sample.stem)
        if path is None:
            raise DatasetError(f"{self.folder}: no map for {sample.stem}")
        arr = read_map_file(path)
        if tuple(arr.shape[:2]) != tuple(mask_shape[:2]):
            if self.resize is None:
                raise DatasetError(
                    f"{path}: map is {arr.shape[1]}x{arr.shape[0]} px but its mask {sample.mask_path.name} is "
                    f"{mask_shape[1]}x{mask_shape[0]}; pass --maps-resize bilinear "
                    f"(or {', '.join(n for n in MAP_RESIZE if n != 'bilinear')}) "
                    "to resize the maps to their masks' size")
            arr = self._resized(arr, mask_shape)
        if arr.dtype == np.uint8:
            return (255 - arr) if self.high_is_sharp else arr
        return (1.0 - arr) if self.high_is_sharp else arr

    def _resized(self, arr: np.ndarray, mask_shape: Sequence[int]) -> np.ndarray:
        """``arr`` resized to ``mask_shape`` with :attr:`resize` (counted in :attr:`resized`)."""
        import cv2

        size = (int(arr.shape[1]), int(arr.shape[0]))
        self.resized[size] = self.resized.get(size, 0) + 1
        flag = getattr(cv2, MAP_RESIZE[self.resize])
        dsize = (int(mask_shape[1]), int(mask_shape[0]))
        if arr.dtype == np.uint8:
            return cv2.resize(arr, dsize, interpolation=flag)
        return np.clip(cv2.resize(arr.astype(np.float64), dsize, interpolation=flag), 0.0, 1.0)

    def resize_note(self) -> str | None:
        """What was resized and how, for the report's notes (None when no map was resized)."""
        if not self.resized:
            return None
        sizes = ", ".join(f"{n} from {w}x{h}" for (w, h), n in sorted(self.resized.items()))
        return (f"--maps {self.name}: {sum(self.resized.values())} maps resized to their masks' size ({sizes} px) "
                f"with OpenCV cv2.resize {MAP_RESIZE[self.resize]} (--maps-resize {self.resize}); the metrics are "
                "computed at the masks' resolution")
