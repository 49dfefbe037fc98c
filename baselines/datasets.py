"""Benchmarks on disk: the known datasets, their layouts and mask polarity, photos, masks, splits.

Shared by the runner (``evaluation``) and DBM training (``dbm.train``), which may not import
``evaluation``; that is why it lives beside the detector interface.

Datasets
--------
:data:`DATASETS` is the one table of the benchmarks the suite reads: for each, the folder layouts
its distributions use, what a white mask pixel means (:data:`POLARITIES`), its named splits, its
native size and where to get it. Every mask is read as True = blurred (the suite's positive class
everywhere): masks of a ``'sharp'`` dataset (white = in focus: DUT-DBD, CTCUG, EBD, the 320 x 320
CUHK TE-1 copies) are inverted on reading. Photos and masks are paired by file stem; photos and
masks may be of any type in :data:`IMAGE_EXTENSIONS`, in any letter case.

Which dataset a folder holds is decided, first match wins, by

1. the ``dataset=`` argument (the runner's ``--dataset NAME``);
2. a manifest file :data:`MANIFEST_NAME` in the folder (:func:`read_manifest`), e.g.
   ``{"dataset": "dut"}``, or ``{"layout": {"image": "photos", "gt": "masks"}, "polarity": "sharp"}``
   for a dataset the table does not know;
3. the folder's layout: the first dataset of the table with a layout that matches, preferring one
   whose own folder name (``DUT-DBD``, ``CTCUG``, ...) is the folder's name or a sub-folder of it,
   then one whose photo folders are there. A folder with ``image/`` and ``gt/`` is CUHK
   (255 = blurred), as the suite has always read it.

A dataset named by 1 or 2 may also be laid out as :data:`DECLARED_LAYOUT` (``image/`` + ``gt/``).

``polarity=`` (the runner's ``--polarity blur|sharp``) overrides the dataset's polarity. Because a
wrongly declared or undeclared inverted dataset gives plausible but wrong numbers (every method
scores the all-blurred ODS), :meth:`Dataset.check_polarity` measures, on a few photos, whether the
region the masks call blurred really has less fine detail than the rest, and stops otherwise.

Splits
------
``all``
    every image that has a mask.
``odd`` / ``even`` (also ``D_o`` / ``D_e``)
    the paper's D_o and D_e: by the number at the end of the file stem (``motion0007`` is odd,
    ``out_of_focus0704`` even). D_o is the training set of Table III, D_e its test set.
``train`` / ``test``
    the folders of a dataset distributed in two parts (DUT-DBD: 600 / 500 photos); learned
    methods tested on ``test`` train on ``train``.
a list file
    one image per line, by stem or file name, optionally quoted (``'motion0001.jpg'``); in lines
    of the form ``new--original`` the part after ``--`` is the name (the published xu100 list);
    blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from .interface import InputError, decode_image, read_image, read_raw

__all__ = [
    "DATASETS",
    "DECLARED_LAYOUT",
    "DatasetError",
    "Dataset",
    "DatasetSpec",
    "MANIFEST_NAME",
    "POLARITIES",
    "POLARITY_MIN_FRACTION",
    "POLARITY_PHOTOS",
    "POLARITY_VOTE_RATIO",
    "PolarityCheck",
    "Sample",
    "sharpness_ratio",
    "read_manifest",
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
#: ``train``/``test`` are the folders of datasets distributed in two parts (:data:`DATASETS`).
NAMED_SPLITS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "all": (("all",), None),
    "odd": (("odd", "d_o", "do"), "D_o"),
    "even": (("even", "d_e", "de"), "D_e"),
    "train": (("train",), None),
    "test": (("test",), None),
}
#: Accepted spelling (lower-cased) -> canonical split name, derived from :data:`NAMED_SPLITS`.
SPLIT_NAMES = {alias: name for name, (aliases, _) in NAMED_SPLITS.items() for alias in aliases}
#: The splits chosen by the number at the end of the file stem -> the remainder modulo 2.
_BY_STEM_NUMBER = {"odd": 1, "even": 0}
#: What learned methods train on when a split is tested: each paper half the other, ``test`` on ``train``.
_COMPLEMENT = {"odd": "even", "even": "odd", "test": "train"}

#: What a white (255) mask pixel means, by polarity. The suite's masks are True = blurred everywhere;
#: masks of polarity ``'sharp'`` are inverted when read.
POLARITIES = {"blur": "white = blurred", "sharp": "white = in focus"}
#: The file in a dataset folder that declares what the folder holds (:func:`read_manifest`).
MANIFEST_NAME = "blurbench.json"


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark as distributed: where its photos and masks are and what its masks mean.

    Attributes
    ----------
    name : str
        Its name for ``--dataset`` and :data:`MANIFEST_NAME`.
    title : str
        What it is, for messages and reports.
    polarity : {'blur', 'sharp'}
        What a white mask pixel means (:data:`POLARITIES`).
    layouts : tuple of mapping
        The layouts its distributions use, tried in order. Each maps a split (``all`` for a
        dataset in one part, else ``train``/``test``) to ``(photo folder, mask folder)``, relative
        to the dataset folder. A path component is matched case-insensitively as a glob, with
        alternatives separated by ``|`` (``"test/image|images"``, ``"train_data/*gt"``). A layout
        matches when the mask folder of at least one split exists; the photo folder may be absent
        (precomputed maps need masks only).
        A dataset named explicitly (``--dataset``, a manifest) may also be laid out as
        :data:`DECLARED_LAYOUT` (its photos re-laid as CUHK's ``image/`` + ``gt/``).
    folders : tuple of str
        The names its distribution's own top folder has (any letter case): ``--data`` may name
        that folder or the folder holding it.
    default_split : str
        The split the runner evaluates when none is given.
    size : str
        Its photos' native size.
    source : str
        Where to get it.
    """

    name: str
    title: str
    polarity: str
    layouts: tuple[Mapping[str, tuple[str, str]], ...]
    folders: tuple[str, ...] = ()
    default_split: str = "all"
    size: str = ""
    source: str = ""


#: The layout any dataset named by ``--dataset`` or a manifest may have besides its own: one split.
DECLARED_LAYOUT = {"all": ("image|images|source", "gt")}

#: The benchmarks the suite knows, in the order a folder's layout is matched against them: the
#: one table of dataset names, layouts and mask polarity (the README's table shows it).
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec(
        "cuhk", "CUHK blur detection benchmark (Shi, Xu & Jia, CVPR 2014; 1,000 photos)", "blur",
        ({"all": ("image", "gt")},), folders=("CUHK",), default_split="even",
        size="as photographed",
        source="python -m evaluation.download cuhk (http://www.cse.cuhk.edu.hk/leojia/projects/dblurdetect/)"),
    DatasetSpec(
        "dut", "DUT-DBD (Zhao et al., CVPR 2018; 600 training + 500 test photos)", "sharp",
        ({"train": ("dut600-source", "dut600-gt"), "test": ("dut500-source", "dut500-gt")},
         {"train": ("train/image|images", "train/gt"), "test": ("test/image|images", "test/gt")},
         {"train": ("train_data/*source", "train_data/*gt"), "test": ("test_data/*source", "test_data/*gt")}),
        folders=("DUT-DBD", "DUT"), default_split="test", size="320 x 320",
        source="Zhao et al. (BTBNet, CVPR 2018; Dalian University of Technology): the download links in "
               "the README of github.com/wdzhao123 repositories (e.g. MLDBD)"),
    DatasetSpec(
        "cuhk_te1", "CUHK TE-1: 320 x 320 copies of CUHK photos (BTBNet/CENet; 604 training + 100 test)", "sharp",
        ({"train": ("xtrain/source|image|images", "xtrain/gt"), "test": ("xtest/source|image|images", "xtest/gt")},
         {"train": ("train/source", "train/gt"), "test": ("test/source", "test/gt")}),
        default_split="test", size="320 x 320",
        source="the BTBNet/CENet authors' releases; the 100 test photos' CUHK names: "
               "btbnet_cuhk_te1_xu100_to_original_from_DDFFNet_split.txt"),
    DatasetSpec(
        "ctcug", "CTCUG (150 test photos)", "sharp", ({"all": ("image|source", "gt")},),
        folders=("CTCUG",), size="as distributed",
        source="Tang et al. (DeFusionNet, China University of Geosciences): their release"),
    DatasetSpec(
        "ebd", "EBD (1,605 photos)", "sharp", ({"all": ("image|source", "gt")},),
        folders=("EBD",), size="as distributed",
        source="Jin et al. (D-DFFNet, ICME 2023): the link in the README of github.com/yuxinjin-whu/D-DFFNet"),
)}


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
    """One benchmark image: its stem, mask file and photo file (None when missing).

    ``invert`` is True for masks stored white = in focus (:data:`POLARITIES` ``'sharp'``):
    :meth:`mask` inverts them, so that every mask the suite sees is True = blurred.
    """

    stem: str
    mask_path: Path
    image_path: Path | None
    invert: bool = False

    def mask(self) -> np.ndarray:
        """The mask, True = blurred (inverted on reading when ``invert``)."""
        mask = load_mask(self.mask_path)
        return ~mask if self.invert else mask

    def image(self, mask_shape: Sequence[int] | None = None, data: bytes | None = None) -> np.ndarray:
        """The photo as float32 RGB; checked against ``mask_shape`` when given.

        ``data``, when given, is the photo file's bytes, read already (by a process on another
        machine, which sent them): they are decoded instead of the file, with the same checks.
        """
        if self.image_path is None:
            raise DatasetError(f"{self.stem}: photo missing (no photo of that name beside {self.mask_path})")
        rgb = read_image(self.image_path) if data is None else decode_image(data, name=str(self.image_path))
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


# --- Which dataset a folder holds -------------------------------------------------------------------------

#: The keys a manifest (:data:`MANIFEST_NAME`) may have.
_MANIFEST_KEYS = ("dataset", "layout", "polarity")
#: The splits a layout may have folders for (the others are chosen by file name).
_FOLDER_SPLITS = tuple(name for name in NAMED_SPLITS if name not in _BY_STEM_NUMBER)


def _spec_named(name: str, where: str) -> DatasetSpec:
    spec = DATASETS.get(str(name).strip().lower())
    if spec is None:
        raise DatasetError(f"{where}: unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return spec


def _check_polarity_name(value: object, where: str) -> str:
    if value not in POLARITIES:
        raise DatasetError(f"{where}: polarity {value!r} is neither of {', '.join(POLARITIES)} "
                           f"({'; '.join(f'{k}: {v}' for k, v in POLARITIES.items())})")
    return str(value)


def read_manifest(root: str | Path) -> DatasetSpec | None:
    """The dataset that a folder's manifest (:data:`MANIFEST_NAME`) declares, or None without one.

    The manifest is a JSON object with any of the keys ``dataset`` (a name of :data:`DATASETS`),
    ``polarity`` (``"blur"`` or ``"sharp"``, see :data:`POLARITIES`) and ``layout``: either
    ``{"image": PHOTO_FOLDER, "gt": MASK_FOLDER}`` or, for a dataset in parts,
    ``{"train": {"image": ..., "gt": ...}, "test": {...}}`` (folders relative to the manifest,
    written as in :attr:`DatasetSpec.layouts`). Without ``dataset`` it must give ``polarity``; a
    missing ``layout`` is the named dataset's, or ``image/`` + ``gt/``.

    Parameters
    ----------
    root : path
        The dataset folder.

    Returns
    -------
    DatasetSpec or None
        The declared dataset (named ``custom`` when the manifest names none).

    Raises
    ------
    DatasetError
        One line naming the manifest: not JSON, an unknown key, dataset or polarity, a bad layout.
    """
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable JSON object ({exc}); write e.g. {{\"dataset\": \"dut\"}}") from None
    if not isinstance(data, dict) or not data:
        raise DatasetError(f"{path}: expected a JSON object with {', '.join(_MANIFEST_KEYS)}; write e.g. "
                           '{"dataset": "dut"}')
    unknown = sorted(set(data) - set(_MANIFEST_KEYS))
    if unknown:
        raise DatasetError(f"{path}: unknown key(s) {', '.join(unknown)}; a manifest has {', '.join(_MANIFEST_KEYS)}")
    if "dataset" in data:
        spec = _spec_named(data["dataset"], str(path))
    elif "polarity" in data:
        spec = DatasetSpec("custom", f"declared by {MANIFEST_NAME}", "blur", DATASETS["cuhk"].layouts)
    else:
        raise DatasetError(f"{path}: says neither which dataset it is nor its polarity; add \"dataset\" "
                           f"({', '.join(DATASETS)}) or \"polarity\" ({', '.join(POLARITIES)})")
    changes: dict[str, object] = {}
    if "polarity" in data:
        changes["polarity"] = _check_polarity_name(data["polarity"], str(path))
    if "layout" in data:
        changes["layouts"] = (_manifest_layout(data["layout"], path),)
    if changes:
        spec = replace(spec, **changes)
    return spec


def _manifest_layout(layout: object, path: Path) -> dict[str, tuple[str, str]]:
    """A manifest's ``layout`` as a layout of :attr:`DatasetSpec.layouts`."""
    example = '{"image": "photos", "gt": "masks"}'
    if not isinstance(layout, dict) or not layout:
        raise DatasetError(f"{path}: \"layout\" must be an object such as {example}")
    parts = {"all": layout} if set(layout) <= {"image", "gt"} else layout
    out = {}
    for split, folders in parts.items():
        if split not in _FOLDER_SPLITS:
            raise DatasetError(f"{path}: layout key {split!r} is neither image/gt nor a split with its own "
                               f"folders ({', '.join(_FOLDER_SPLITS)})")
        if not isinstance(folders, dict) or set(folders) != {"image", "gt"}:
            raise DatasetError(f"{path}: layout of split {split!r} must be an object {example}")
        for folder in folders.values():
            inside = isinstance(folder, str) and folder.strip() and not Path(folder).is_absolute()
            if not inside or ".." in Path(folder).parts:
                raise DatasetError(f"{path}: layout folder {folder!r} must be a path inside the dataset folder")
        out[split] = (folders["image"], folders["gt"])
    return out


def _glob_dirs(base: Path, pattern: str) -> list[Path]:
    """The folders under ``base`` that match a layout pattern (see :attr:`DatasetSpec.layouts`)."""
    found = [base]
    for part in Path(pattern).parts:
        alternatives = [a.strip().lower() for a in part.split("|")]
        found = [child for folder in found if folder.is_dir() for child in sorted(folder.iterdir())
                 if child.is_dir() and any(fnmatch.fnmatchcase(child.name.lower(), a) for a in alternatives)]
    return found


class _Part(NamedTuple):
    """The photo and mask folders of one split of a dataset on disk, and their files by stem."""

    image_dir: Path | None
    mask_dir: Path
    masks: dict[str, Path]
    images: dict[str, Path]


def _match_layout(base: Path, layout: Mapping[str, tuple[str, str]]) -> dict[str, tuple[Path | None, Path]]:
    """Split -> (photo folder or None, mask folder) of ``layout`` found under ``base`` (empty: no match)."""
    found: dict[str, tuple[Path | None, Path]] = {}
    for split, (image_pattern, mask_pattern) in layout.items():
        masks = _glob_dirs(base, mask_pattern)
        if not masks:
            continue
        images = _glob_dirs(base, image_pattern)
        for what, hits in (("mask", masks), ("photo", images)):
            if len(hits) > 1:
                raise DatasetError(f"{base}: {len(hits)} {what} folders for split {split} "
                                   f"({', '.join(h.name for h in hits)}); keep one, or say which in {MANIFEST_NAME}")
        found[split] = (images[0] if images else None, masks[0])
    return found


def _describe_layout(layout: Mapping[str, tuple[str, str]]) -> str:
    return " + ".join(f"{image}/ + {gt}/" if split == "all" else f"{split}: {image}/ + {gt}/"
                      for split, (image, gt) in layout.items())


def _find_layout(root: Path, spec: DatasetSpec | None) -> tuple[DatasetSpec, Path, dict[str, tuple[Path | None, Path]]]:
    """The dataset (``spec``, or the first of :data:`DATASETS` that fits) and its folders under ``root``."""
    specs = [spec] if spec is not None else list(DATASETS.values())
    layouts = spec.layouts if spec is not None else ()
    if spec is not None and spec.name in DATASETS and layouts == DATASETS[spec.name].layouts:
        layouts = (*layouts, DECLARED_LAYOUT)  # named, without a layout of its own: may be re-laid as image/ + gt/
    hits = []
    for candidate in specs:
        own = {f.lower() for f in candidate.folders}
        bases = [root] + [child for child in sorted(root.iterdir()) if child.is_dir() and child.name.lower() in own]
        for base in bases:
            for layout in layouts or candidate.layouts:
                parts = _match_layout(base, layout)
                if parts:
                    named = base != root or root.resolve().name.lower() in own
                    hits.append((named, candidate, base, parts, layout))
                    break
            else:
                continue
            break
    if not hits:
        if spec is not None:
            expected = "; or ".join(_describe_layout(layout) for layout in layouts)
            raise DatasetError(f"{root}: not laid out as dataset {spec.name} ({expected}); "
                               f"describe its folders in {root / MANIFEST_NAME} (see the README), or get "
                               f"{spec.name} from {spec.source}")
        known = "; ".join(f"{s.name}: {_describe_layout(s.layouts[0])}" for s in DATASETS.values())
        raise DatasetError(f"{root}: no gt/ folder of masks nor another known layout ({known}); "
                           f"pass --dataset NAME or describe the folders in {root / MANIFEST_NAME} (see the README)")
    if spec is None:
        # A layout of common folder names only (train/, test/, image/, gt/, source/) says nothing about what
        # a white mask pixel means: a white = in focus dataset is never inferred from one alone.
        unsure = [h for h in hits if not h[0] and h[1].polarity != "blur" and _generic(h[4])]
        hits = [h for h in hits if h not in unsure]
        def photos(found):
            return any(img for h in found for img, _ in h[3].values())

        if photos(unsure) and not photos(hits):
            names = "|".join(dict.fromkeys(h[1].name for h in unsure))
            raise DatasetError(f"{root}: laid out as {_describe_layout(unsure[0][4])}, which datasets of both mask "
                               f"polarities use; say which it is: --dataset {names} (white = in focus), or write "
                               f"{root / MANIFEST_NAME} with its polarity (see the README)")
    named = [h for h in hits if h[0]]
    if len({h[2] for h in named}) > 1:
        raise DatasetError(f"{root}: holds several datasets ({', '.join(h[2].name for h in named)}); "
                           "pass the folder of one as --data")
    # a dataset named by its folder first, then one whose photo folders were found, then table order
    _, chosen, base, parts, _ = min(hits, key=lambda h: (not h[0], not any(img for img, _ in h[3].values())))
    return chosen, base, parts


#: Folder names that many datasets use, so a layout made of them alone does not identify one.
_GENERIC_FOLDERS = frozenset({"train", "test", "image", "images", "gt", "source", "masks"})


def _generic(layout: Mapping[str, tuple[str, str]]) -> bool:
    """Whether every folder of ``layout`` has a name of :data:`_GENERIC_FOLDERS`."""
    return all(alt.strip().lower() in _GENERIC_FOLDERS
               for folders in layout.values() for pattern in folders for part in Path(pattern).parts
               for alt in part.split("|"))


# --- The polarity guard ------------------------------------------------------------------------------------

#: Photos the polarity guard measures (spread over the dataset; fewer when it has fewer).
POLARITY_PHOTOS = 8
#: A photo votes "inverted" when the region its mask calls blurred has this many times the fine
#: detail (mean absolute Laplacian of the grey photo) of the region it calls sharp.
POLARITY_VOTE_RATIO = 1.25
#: Photos whose mask gives either class less than this fraction of the pixels are skipped.
POLARITY_MIN_FRACTION = 0.01


def sharpness_ratio(rgb: np.ndarray, blurred: np.ndarray) -> float | None:
    """How much fine detail the region marked blurred has, relative to the rest of the photo.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``H x W x 3`` float photo in [0, 1].
    blurred : numpy.ndarray
        ``H x W`` bool mask, True = blurred.

    Returns
    -------
    float or None
        Mean absolute Laplacian of the grey photo inside the mask divided by the same outside it:
        well below 1 for a correct mask (CUHK's median: the README's "Polarity guard"), above 1
        for an inverted one. None when either region has less than :data:`POLARITY_MIN_FRACTION`
        of the pixels.
    """
    import cv2

    n = blurred.size
    k = int(np.count_nonzero(blurred))
    if min(k, n - k) < max(1, POLARITY_MIN_FRACTION * n):
        return None
    grey = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    detail = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    eps = 1e-6
    return float((detail[blurred].mean() + eps) / (detail[~blurred].mean() + eps))


def _spread(n: int) -> list[int]:
    """0 .. n-1 in an order that spreads any prefix over the range (van der Corput)."""
    order, seen, i = [], set(), 0
    while len(order) < n:
        x, f, r = i, 0.5, 0.0
        while x:
            r += f * (x & 1)
            x >>= 1
            f /= 2
        j = int(r * n)
        if j not in seen:
            seen.add(j)
            order.append(j)
        i += 1
    return order


@dataclass(frozen=True)
class PolarityCheck:
    """What :meth:`Dataset.check_polarity` measured.

    Attributes
    ----------
    stems : tuple of str
        The photos measured.
    ratios : tuple of float
        Their :func:`sharpness_ratio` (region marked blurred over the rest; < 1 is right).
    seconds : float
        Time taken, reading included.
    """

    stems: tuple[str, ...]
    ratios: tuple[float, ...]
    seconds: float

    @property
    def votes(self) -> int:
        """Photos whose region marked blurred is clearly the sharper (:data:`POLARITY_VOTE_RATIO`)."""
        return sum(r > POLARITY_VOTE_RATIO for r in self.ratios)

    @property
    def inverted(self) -> bool:
        """True when most photos measured look inverted."""
        return bool(self.ratios) and self.votes > len(self.ratios) / 2

    @property
    def median(self) -> float:
        return float(np.median(self.ratios)) if self.ratios else float("nan")

    def summary(self) -> str:
        """One phrase: what was measured."""
        if not self.ratios:
            return "polarity not checked (no photo with both blurred and sharp pixels)"
        return (f"polarity checked on {len(self.ratios)} photos: the region marked blurred has {self.median:.2f}x "
                f"the fine detail of the rest (median; > {POLARITY_VOTE_RATIO} on {self.votes})")


# --- Datasets on disk --------------------------------------------------------------------------------------


class Dataset:
    """A benchmark folder: photos and masks paired by file stem, masks read as True = blurred.

    Parameters
    ----------
    root : path
        The dataset folder (or the folder holding it, see :attr:`DatasetSpec.folders`).
    label : str, optional
        Name used in reports (default: the dataset folder's name).
    dataset : str, optional
        A name of :data:`DATASETS`: read the folder as that dataset (default: what its manifest
        :data:`MANIFEST_NAME` declares, else what its layout says; see the module notes).
    polarity : {'blur', 'sharp', 'auto'}, optional
        What a white mask pixel means (:data:`POLARITIES`); None or ``'auto'``: the dataset's.

    Attributes
    ----------
    spec : DatasetSpec
        The dataset it was read as.
    polarity : str
        The polarity its masks were read with.
    declared_by : str
        How the dataset was chosen: ``--dataset``, the manifest's path, or ``its layout``.
    """

    def __init__(self, root: str | Path, label: str | None = None, *, dataset: str | None = None,
                 polarity: str | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(
                f"{root}: dataset folder not found; download CUHK with "
                "`python -m evaluation.download cuhk --out DIR` or omit --data for the synthetic demo"
            )
        if dataset is not None:
            spec, self.declared_by = _spec_named(dataset, "--dataset"), "--dataset"
        else:
            spec = read_manifest(root)
            self.declared_by = str(root / MANIFEST_NAME) if spec is not None else "its layout"
        self.spec, self.root, found = _find_layout(root, spec)
        if polarity in (None, "auto"):
            self.polarity = self.spec.polarity
        else:
            self.polarity = _check_polarity_name(polarity, "--polarity")
        self.label = label or self.root.resolve().name
        self.parts: dict[str, _Part] = {}
        for split, (image_dir, mask_dir) in found.items():
            masks = index_files(mask_dir, IMAGE_EXTENSIONS)
            if not masks:
                raise DatasetError(f"{mask_dir}: no mask files (.png/.bmp/...) found")
            images = index_files(image_dir, IMAGE_EXTENSIONS) if image_dir is not None else {}
            unpaired = sorted(set(images) - set(masks))
            if unpaired:
                raise DatasetError(
                    f"{image_dir}: {len(unpaired)} of {len(images)} photos have no mask of the same name in "
                    f"{mask_dir} ({_preview(unpaired)}); photos and masks are paired by file name, so rename "
                    "or remove them"
                )
            self.parts[split] = _Part(image_dir, mask_dir, masks, images)
        seen: dict[str, str] = {}
        self._shared: dict[str, tuple[str, str]] = {}
        for split, part in self.parts.items():
            for stem in part.masks:
                if stem in seen:
                    self._shared[stem] = (seen[stem], split)
                seen.setdefault(stem, split)

    def __repr__(self) -> str:
        masks = sum(len(p.masks) for p in self.parts.values())
        photos = sum(len(p.images) for p in self.parts.values())
        return f"Dataset({str(self.root)!r}, {self.spec.name}, {masks} masks, {photos} photos)"

    @property
    def default_split(self) -> str:
        """The split to evaluate when none is given: the dataset's own, when this folder has it."""
        split = self.spec.default_split
        return split if split in self.parts or split in _BY_STEM_NUMBER else "all"

    @property
    def masks(self) -> dict[str, Path]:
        """Mask file by stem, all splits."""
        return self._union().masks

    @property
    def images(self) -> dict[str, Path]:
        """Photo file by stem, all splits."""
        return self._union().images

    def has_split(self, split: str | Path) -> bool:
        """Whether ``split`` can be read here (False for a ``train``/``test`` this folder lacks)."""
        name = canonical_split(split)
        return name in self.parts or name not in _FOLDER_SPLITS or name == "all"

    def _union(self) -> _Part:
        if len(self.parts) == 1:
            return next(iter(self.parts.values()))
        if self._shared:
            a, b = next(iter(self._shared.values()))
            raise DatasetError(
                f"{self.root}: {len(self._shared)} image names occur in both its {a} and {b} folders "
                f"({_preview(sorted(self._shared))}); use --split {a} or --split {b}"
            )
        first = next(iter(self.parts.values()))
        masks = {s: p for part in self.parts.values() for s, p in part.masks.items()}
        images = {s: p for part in self.parts.values() for s, p in part.images.items()}
        return _Part(first.image_dir, first.mask_dir, masks, images)

    def _scope(self, split: str | Path) -> _Part:
        """The folders and files ``split`` is drawn from."""
        name = canonical_split(split)
        if name in self.parts:
            return self.parts[name]
        if name in _BY_STEM_NUMBER and set(self.parts) - {"all"}:
            # the paper's halves are CUHK's, by the number in the file name; a dataset distributed in
            # parts has its own training and test photos, which odd/even would mix
            raise DatasetError(
                f"{self.root}: dataset {self.spec.name} comes in parts ({', '.join(self.parts)}); --split {name} "
                f"(the paper's CUHK half) would mix them: use --split {' or '.join(self.parts)}"
            )
        if not self.has_split(name):
            raise DatasetError(
                f"{self.root}: dataset {self.spec.name} has no {name} split here (found: {', '.join(self.parts)}); "
                "use one of those, all, odd, even or a list file"
            )
        return self._union()

    def _photo_place(self, part: _Part) -> Path:
        return part.image_dir if part.image_dir is not None else self.root / "image"

    def stems(self, split: str | Path) -> list[str]:
        """The image stems of a split (``all``, ``odd``, ``even``, ``train``, ``test`` or a list file path)."""
        split_text = canonical_split(split)
        masks = self._scope(split_text).masks
        if split_text in self.parts or split_text == "all":
            return sorted(masks)
        if split_text in _BY_STEM_NUMBER:
            want = _BY_STEM_NUMBER[split_text]
            return sorted(s for s in masks if stem_index(s) % 2 == want)
        path = Path(split_text)
        if not path.is_file():
            raise DatasetError(
                f"{split_text}: unknown split; use {', '.join(NAMED_SPLITS)} or the path of a list file"
            )
        stems = read_list_file(path)
        unknown = [s for s in stems if s not in masks]
        if unknown:
            folders = ", ".join(str(p.mask_dir) for p in self.parts.values())
            raise DatasetError(
                f"{path}: {len(unknown)} listed image(s) have no mask in {folders}: {_preview(unknown)}"
            )
        return stems

    def samples(self, split: str | Path, *, need_images: bool = True, allow_missing: bool = False) -> list[Sample]:
        """The samples of a split, their masks read as True = blurred.

        Raises
        ------
        DatasetError
            When photos are needed and some are missing, unless ``allow_missing`` (then only
            the images with photos are returned).
        """
        stems = self.stems(split)
        part = self._scope(split)
        invert = self.polarity == "sharp"
        samples = [Sample(s, part.masks[s], part.images.get(s), invert) for s in stems]
        if need_images:
            missing = [s.stem for s in samples if s.image_path is None]
            if missing and not allow_missing:
                raise DatasetError(
                    f"{self._photo_place(part)}: {len(missing)} of {len(samples)} photos of split "
                    f"{split_text_of(split)} are missing ({_preview(missing)}); add them or pass "
                    "--allow-missing to evaluate the rest"
                )
            samples = [s for s in samples if s.image_path is not None]
            if not samples:
                raise DatasetError(
                    f"{self._photo_place(part)}: none of the photos of split {split_text_of(split)} is present"
                )
        return samples

    def check_polarity(self, photos: int = POLARITY_PHOTOS, *, fix: str | None = None) -> PolarityCheck:
        """Check on a few photos that the masks, as read, mark the blurred region; stop if they look inverted.

        Measures :func:`sharpness_ratio` on up to ``photos`` photos spread over the whole
        dataset (every split; photos whose mask is (almost) one class are skipped). Most of them
        above :data:`POLARITY_VOTE_RATIO` means the masks, as read, call the sharp region blurred.

        Parameters
        ----------
        photos : int
            How many photos to measure.
        fix : str, optional
            What the error tells the user to do (default: the runner's options).

        Returns
        -------
        PolarityCheck
            What was measured (no photos when the dataset has none, or none with both classes).

        Raises
        ------
        DatasetError
            One line when the masks look inverted; a photo that cannot be read, or whose size
            differs from its mask's, stops it too.
        """
        start = time.perf_counter()
        invert = self.polarity == "sharp"
        pool = [Sample(s, part.masks[s], part.images[s], invert)
                for part in self.parts.values() for s in sorted(part.images)]
        stems, ratios = [], []
        for i in _spread(len(pool))[: 4 * photos]:
            sample = pool[i]
            mask = sample.mask()
            ratio = sharpness_ratio(sample.image(mask.shape), mask)
            if ratio is not None:
                stems.append(sample.stem)
                ratios.append(ratio)
                if len(ratios) == photos:
                    break
        check = PolarityCheck(tuple(stems), tuple(ratios), time.perf_counter() - start)
        if check.inverted:
            looks, other = ("sharp", "blur") if self.polarity == "blur" else ("blur", "sharp")
            names = "|".join(s.name for s in DATASETS.values() if s.polarity == looks)
            flagged = [s for s, r in zip(stems, ratios) if r > POLARITY_VOTE_RATIO]
            fix = fix or (f"pass --dataset {names} ({POLARITIES[looks]}) or --polarity {looks} to override, "
                          "or --no-polarity-check")
            raise DatasetError(
                f"{self.root}: the masks look inverted ({POLARITIES[looks]}) for dataset {self.spec.name} (chosen "
                f"by {self.declared_by}; read as {POLARITIES[self.polarity]}): on {check.votes} of {len(ratios)} "
                f"photos the region they mark blurred has more fine detail than the rest (median {check.median:.2f}x "
                f"mean |Laplacian|; e.g. {', '.join(flagged[:3])}); {fix}"
            )
        return check


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
