"""Download the CUHK blur detection benchmark from its authors' project page.

``python -m evaluation.download cuhk --to DIR`` fetches the two official archives (photos and
ground-truth masks) of Shi, Xu & Jia, "Discriminative blur detection features" (CVPR 2014), from
http://www.cse.cuhk.edu.hk/leojia/projects/dblurdetect/ and lays them out as ``DIR/image`` and
``DIR/gt``, the layout the runner reads.

* Resumable: archives download to ``DIR/.download/NAME.part``; a rerun continues with an HTTP
  ``Range`` request (or starts over if the server ignores it).
* Safe extraction: members with absolute paths, ``..`` components or links are refused; only image
  files are extracted, flattened into ``image/`` or ``gt/``; an existing file with different content
  is never overwritten (the run stops and names it).
* Verified: every mask is checked against the SHA-256 manifest shipped in the package
  (``evaluation/data/cuhk_gt.sha256``, 1000 masks); the photo count is checked too.

The suite never redistributes these files: the dataset is for research use as its authors
distribute it.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import stat
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

__all__ = ["ARCHIVES", "DownloadError", "download_cuhk", "fetch", "load_manifest", "safe_extract", "main"]

BASE_URL = "http://www.cse.cuhk.edu.hk/leojia/projects/dblurdetect/data/"
PROJECT_PAGE = "http://www.cse.cuhk.edu.hk/leojia/projects/dblurdetect/dataset.html"
MANIFEST = Path(__file__).with_name("data") / "cuhk_gt.sha256"
N_PHOTOS = 1000
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Archive:
    filename: str
    subdir: str  # "image" or "gt"


ARCHIVES = (Archive("BlurDatasetImage.zip", "image"), Archive("BlurDatasetGT.zip", "gt"))


class DownloadError(RuntimeError):
    """A download, extraction or verification problem; one line saying what to do."""


def load_manifest(path: Path = MANIFEST) -> dict[str, str]:
    """Read a ``sha256sum``-style manifest: file name -> hex digest."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip().lstrip("*")] = digest.lower()
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: Path, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` when a previous run was cut off."""
    if dest.is_file():
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "deep-blur-mapping/0.1"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the part file is complete
            os.replace(part, dest)
            return dest
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}; check the address or try again later") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"{url}: cannot connect ({reason}); check your network and rerun to resume") from exc
    with response:
        resumed = have and response.status == 206
        mode = "ab" if resumed else "wb"
        length = response.headers.get("Content-Length")
        total = (int(length) + (have if resumed else 0)) if length else None
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                       desc=dest.name, file=sys.stderr, leave=False)
        try:
            with open(part, mode) as fh:
                while True:
                    block = response.read(1 << 16)
                    if not block:
                        break
                    fh.write(block)
                    if bar:
                        bar.update(len(block))
        except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
            raise DownloadError(f"{url}: download interrupted ({exc}); rerun the same command to resume") from exc
        finally:
            if bar:
                bar.close()
    if total is not None and part.stat().st_size != total:
        raise DownloadError(
            f"{url}: got {part.stat().st_size} of {total} bytes; rerun the same command to resume"
        )
    os.replace(part, dest)
    return dest


def _member_name(info: zipfile.ZipInfo, archive: Path) -> str | None:
    """The file name to extract a member as, None to skip it; raises on unsafe members."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and (":" in parts[0])) or ".." in parts:
        raise DownloadError(f"{archive}: unsafe path {info.filename!r} in archive; refusing to extract it")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DownloadError(f"{archive}: link {info.filename!r} in archive; refusing to extract it")
    if info.is_dir() or not parts:
        return None
    base = parts[-1]
    if base.startswith(".") or "__MACOSX" in parts or PurePosixPath(base).suffix.lower() not in _IMAGE_SUFFIXES:
        return None
    return base


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Extract the image files of a zip archive flat into ``dest``.

    Refuses absolute paths, ``..`` and links; skips non-image members; never overwrites an
    existing file whose content differs (raises instead). Returns the extracted paths.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{archive}: not a valid zip archive ({exc}); delete it and rerun") from exc
    with zf:
        plan: list[tuple[zipfile.ZipInfo, Path]] = []
        seen: set[str] = set()
        for info in zf.infolist():
            base = _member_name(info, archive)
            if base is None:
                continue
            if base in seen:
                raise DownloadError(f"{archive}: two members named {base!r}; cannot flatten them into {dest}")
            seen.add(base)
            plan.append((info, dest / base))
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for info, target in plan:
            if target.exists():
                if target.is_file() and target.stat().st_size == info.file_size and _same_content(zf, info, target):
                    written.append(target)
                    continue
                raise DownloadError(
                    f"{target}: exists with other content; move it away (the download never overwrites your files)"
                )
            tmp = target.with_name(f".{target.name}.tmp")
            with zf.open(info) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, target)
            written.append(target)
    return written


def _same_content(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> bool:
    h = hashlib.sha256()
    with zf.open(info) as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest() == _sha256(target)


def verify_masks(gt_dir: Path, manifest: dict[str, str]) -> None:
    """Check every mask named in ``manifest`` exists in ``gt_dir`` with the right SHA-256."""
    missing = [n for n in manifest if not (gt_dir / n).is_file()]
    if missing:
        raise DownloadError(f"{gt_dir}: {len(missing)} masks missing ({', '.join(missing[:5])}...); "
                            "the archive is incomplete: delete it from .download/ and rerun")
    bad = [n for n, digest in manifest.items() if _sha256(gt_dir / n) != digest]
    if bad:
        raise DownloadError(f"{gt_dir}: {len(bad)} masks fail their checksum ({', '.join(bad[:5])}); "
                            "delete them and the archive in .download/, then rerun")


def download_cuhk(
    to: Path,
    *,
    base_url: str = BASE_URL,
    manifest: dict[str, str] | None = None,
    n_photos: int = N_PHOTOS,
    keep_archives: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
) -> Path:
    """Download, extract and verify the CUHK benchmark into ``to`` (``image/``, ``gt/``)."""
    manifest = load_manifest() if manifest is None else manifest
    to = Path(to)
    cache = to / ".download"
    for arc in ARCHIVES:
        path = fetch(base_url.rstrip("/") + "/" + arc.filename, cache / arc.filename, progress=progress)
        files = safe_extract(path, to / arc.subdir)
        log(f"{arc.filename}: {len(files)} files in {to / arc.subdir}")
    verify_masks(to / "gt", manifest)
    photos = [p for p in (to / "image").iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES]
    if len(photos) < n_photos:
        raise DownloadError(f"{to / 'image'}: {len(photos)} photos, expected {n_photos}; "
                            "delete .download/ and rerun")
    if not keep_archives:
        shutil.rmtree(cache, ignore_errors=True)
    log(f"CUHK benchmark ready in {to}: {len(photos)} photos, {len(manifest)} verified masks")
    return to


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evaluation.download", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", choices=["cuhk"], help="which benchmark")
    p.add_argument("--to", type=Path, required=True, help="destination folder (gets image/ and gt/)")
    p.add_argument("--base-url", default=BASE_URL, help=f"where the archives are (default: {BASE_URL})")
    p.add_argument("--keep-archives", action="store_true", help="keep the zip files in DIR/.download")
    args = p.parse_args(argv)
    try:
        download_cuhk(args.to, base_url=args.base_url, keep_archives=args.keep_archives)
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(f"(the dataset's page: {PROJECT_PAGE})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume the download", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
