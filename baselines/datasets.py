"""Benchmarks in the CUHK layout: photos, masks and the paper's splits.

Shared by the runner (``evaluation``) and DBM training (``dbm.train``), which may not import
``evaluation``; that is why it lives beside the detector interface.

A dataset is a folder with ``gt/`` (one mask per image, 255 = blurred) and ``image/`` (photos with
the same file stem, of a type in :data:`IMAGE_EXTENSIONS` in any letter case). The CUHK blur benchmark
(Shi, Xu & Jia 2014) has this layout; any other dataset laid out the same way works the same way.

Splits
------
``all``
    every image that has a mask.
``odd`` / ``even`` (also ``D_o`` / ``D_e``)
    the paper's D_o and D_e: by the number at the end of the file stem (``motion0007`` is odd,
    ``out_of_focus0704`` even). D_o is the training set of Table III, D_e its test set.
a list file
    one image per line, by stem or file name, optionally quoted (``'motion0001.jpg'``); in lines
    of the form ``new--original`` the part after ``--`` is the name (the published xu100 list);
    blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .interface import InputError, read_image, read_raw

__all__ = [
    "DatasetError",
    "Dataset",
    "Sample",
    "IMAGE_EXTENSIONS",
    "DIGEST_CHARS",
    "file_digest",
    "index_files",
    "load_mask",
    "read_list_file",
    "NAMED_SPLITS",
    "canonical_split",
    "paper_symbol_of",
    "split_text_of",
    "stem_index",
    "training_split_of",
]

#: The image file types the suite reads (lower case; files match in any letter case): OpenCV decodes
#: them all. The one list of photo types, used by datasets, ``blur-map`` and the downloader.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: The named splits: canonical name -> (accepted spellings, lower-cased; the paper's symbol).
#: ``odd``/``even`` are the paper's halves D_o/D_e (by the number at the end of the file stem).
NAMED_SPLITS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "all": (("all",), None),
    "odd": (("odd", "d_o", "do"), "D_o"),
    "even": (("even", "d_e", "de"), "D_e"),
}
#: Accepted spelling (lower-cased) -> canonical split name, derived from :data:`NAMED_SPLITS`.
SPLIT_NAMES = {alias: name for name, (aliases, _) in NAMED_SPLITS.items() for alias in aliases}
#: Each paper half's complement: what learned methods train on when that half is tested.
_COMPLEMENT = {"odd": "even", "even": "odd"}


class DatasetError(InputError):
    """A dataset, split or map folder problem; the message says what to do."""


def index_files(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    """Map stem -> file for files in ``folder`` with one of ``extensions`` (any letter case)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in extensions and not path.name.startswith("."):
            if path.stem in found:
                raise DatasetError(
                    f"{folder}: two files for image {path.stem!r} ({found[path.stem].name}, {path.name}); keep one"
                )
            found[path.stem] = path
    return found


#: Hex characters of the SHA-256 kept in file digests (64 bits: no collision in any real dataset).
DIGEST_CHARS = 16
_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """SHA-256 (first :data:`DIGEST_CHARS` hex characters) of a file's bytes.

    Identifies a photo by its content: it keys the runner's map cache and records which photos a
    network was trained on. Memoised per process by path, size and modification time, so a file
    changed on disk is hashed again.
    """
    import hashlib

    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digest = _DIGESTS[key] = h.hexdigest()[:DIGEST_CHARS]
    return digest


def stem_index(stem: str) -> int:
    """The number at the end of a file stem (``out_of_focus0704`` -> 704)."""
    match = re.search(r"(\d+)$", stem)
    if not match:
        raise DatasetError(
            f"{stem}: no number at the end of the file name, so it is neither odd nor even; "
            "use --split all or a list file"
        )
    return int(match.group(1))


def read_list_file(path: str | Path) -> list[str]:
    """Read the image stems named in a split list file (see the module notes for the format)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read split list ({exc.strerror or exc})") from exc
    stems = []
    for line in lines:
        item = line.strip().strip("'\"").strip()
        if not item or item.startswith("#"):
            continue
        if "--" in item:
            item = item.rsplit("--", 1)[1]
        name = Path(item).name
        stem = Path(name).stem if Path(name).suffix.lower() in IMAGE_EXTENSIONS else name
        if stem not in stems:
            stems.append(stem)
    if not stems:
        raise DatasetError(f"{path}: the split list names no images")
    return stems


def load_mask(path: str | Path) -> np.ndarray:
    """Read a ground-truth mask as a boolean array, True = blurred.

    8- or 16-bit grey, RGB or RGBA (the first channel is used). A pixel is blurred when it is at
    least half the full scale (128 of 255); masks stored as 0/1 (maximum 1) are read with 1 = blurred.
    """
    raw = read_raw(path)
    if raw.ndim == 3:
        raw = raw[:, :, 0]
    if raw.dtype == bool:
        return raw.copy()
    if raw.dtype == np.uint8:
        return raw >= (1 if raw.max() == 1 else 128)
    if raw.dtype == np.uint16:
        return raw >= (1 if raw.max() == 1 else 32768)
    raise DatasetError(f"{path}: mask of unsupported dtype {raw.dtype}; save it as 8-bit grey PNG")


@dataclass(frozen=True)
class Sample:
    """One benchmark image: its stem, mask file and photo file (None when missing)."""

    stem: str
    mask_path: Path
    image_path: Path | None

    def mask(self) -> np.ndarray:
        return load_mask(self.mask_path)

    def image(self, mask_shape: Sequence[int] | None = None) -> np.ndarray:
        """The photo as float32 RGB; checked against ``mask_shape`` when given."""
        if self.image_path is None:
            raise DatasetError(f"{self.stem}: photo missing (no file in image/)")
        rgb = read_image(self.image_path)
        if mask_shape is not None:
            self.check_size(rgb.shape, mask_shape, self.image_path, "photo")
        return rgb

    def check_size(self, shape: Sequence[int], mask_shape: Sequence[int], path: Path, what: str) -> None:
        """Raise a :class:`DatasetError` naming ``path`` unless ``shape`` matches the mask's."""
        if tuple(shape[:2]) != tuple(mask_shape[:2]):
            raise DatasetError(
                f"{path}: {what} is {shape[1]}x{shape[0]} px but its mask {self.mask_path.name} is "
                f"{mask_shape[1]}x{mask_shape[0]}; they must match pixel for pixel"
            )


class Dataset:
    """A benchmark folder in the CUHK layout (``gt/`` masks, ``image/`` photos).

    Parameters
    ----------
    root : path
        The folder holding ``gt/`` and ``image/``.
    label : str, optional
        Name used in reports (default: the folder name).
    """

    def __init__(self, root: str | Path, label: str | None = None) -> None:
        self.root = Path(root)
        self.label = label or self.root.resolve().name
        gt = self.root / "gt"
        if not self.root.is_dir():
            raise DatasetError(
                f"{self.root}: dataset folder not found; download CUHK with "
                "`python -m evaluation.download cuhk --to DIR` or omit --data for the synthetic demo"
            )
        if not gt.is_dir():
            raise DatasetError(f"{self.root}: no gt/ folder of masks; expected the CUHK layout (gt/, image/)")
        self.masks = index_files(gt, IMAGE_EXTENSIONS)
        if not self.masks:
            raise DatasetError(f"{gt}: no mask files (.png/.bmp/...) found")
        image_dir = self.root / "image"
        self.images = index_files(image_dir, IMAGE_EXTENSIONS) if image_dir.is_dir() else {}

    def __repr__(self) -> str:
        return f"Dataset({str(self.root)!r}, {len(self.masks)} masks, {len(self.images)} photos)"

    def stems(self, split: str | Path) -> list[str]:
        """The image stems of a split (``all``, ``odd``, ``even`` or a list file path)."""
        split_text = canonical_split(split)
        if split_text == "all":
            return sorted(self.masks)
        if split_text in ("odd", "even"):
            want = 1 if split_text == "odd" else 0
            return sorted(s for s in self.masks if stem_index(s) % 2 == want)
        path = Path(split_text)
        if not path.is_file():
            raise DatasetError(
                f"{split_text}: unknown split; use all, odd, even or the path of a list file"
            )
        stems = read_list_file(path)
        unknown = [s for s in stems if s not in self.masks]
        if unknown:
            raise DatasetError(
                f"{path}: {len(unknown)} listed image(s) have no mask in {self.root / 'gt'}: "
                f"{_preview(unknown)}"
            )
        return stems

    def samples(self, split: str | Path, *, need_images: bool = True, allow_missing: bool = False) -> list[Sample]:
        """The samples of a split.

        Raises
        ------
        DatasetError
            When photos are needed and some are missing, unless ``allow_missing`` (then only
            the images with photos are returned).
        """
        stems = self.stems(split)
        samples = [Sample(s, self.masks[s], self.images.get(s)) for s in stems]
        if need_images:
            missing = [s.stem for s in samples if s.image_path is None]
            if missing and not allow_missing:
                raise DatasetError(
                    f"{self.root / 'image'}: {len(missing)} of {len(samples)} photos of split "
                    f"{split_text_of(split)} are missing ({_preview(missing)}); add them or pass "
                    "--allow-missing to evaluate the rest"
                )
            samples = [s for s in samples if s.image_path is not None]
            if not samples:
                raise DatasetError(
                    f"{self.root / 'image'}: none of the photos of split {split_text_of(split)} is present"
                )
        return samples


def canonical_split(split: str | Path) -> str:
    """The canonical name of a named split (``D_e`` -> ``even``), or a list file's path as given."""
    return SPLIT_NAMES.get(str(split).strip().lower(), str(split))


def training_split_of(split: str | Path) -> str | None:
    """The paper's training half for a tested half (``even``/``D_e`` -> ``odd``), else None."""
    return _COMPLEMENT.get(canonical_split(split))


def paper_symbol_of(split: str | Path) -> str | None:
    """The paper's symbol of a named half (``even`` -> ``D_e``), else None."""
    name = canonical_split(split)
    return NAMED_SPLITS[name][1] if name in NAMED_SPLITS else None


def split_text_of(split: str | Path) -> str:
    """How a split is written in reports: the canonical name, or a list file's name."""
    name = canonical_split(split)
    return name if name in NAMED_SPLITS else Path(name).name


def _preview(items: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items) - n} more)" if len(items) > n else "")
