"""Download the CUHK blur detection benchmark from its authors' project page.

``python -m evaluation.download cuhk --out DIR`` fetches the two official archives (photos and
ground-truth masks) of Shi, Xu & Jia, "Discriminative blur detection features" (CVPR 2014), from
http://www.cse.cuhk.edu.hk/leojia/projects/dblurdetect/ and lays them out as ``DIR/image`` and
``DIR/gt``, the layout the runner reads.

* Resumable: archives download to ``DIR/.download/NAME.part``; a rerun continues with an HTTP
  ``Range`` request (or starts over if the server ignores it). A partial file longer than the
  server's file (a resume gone wrong) is removed and fetched again.
* Checked: an archive is read in full (zip structure, the CRC-32 of every member extracted)
  before anything of it is kept. One that fails (not a zip, cut off, damaged, wrongly resumed) is
  removed and fetched once more (``FETCH_ATTEMPTS``); if it fails again the run stops naming it.
* Safe extraction: members with absolute paths, ``..`` components, links or encryption are
  refused; only image files are extracted, flattened into ``image/`` or ``gt/``, each through a
  temporary file created exclusively (``O_CREAT | O_EXCL``, :func:`dbm.fileio.write_temp`: never through a planted
  link) and renamed into place only when every member has been read intact; no temporary file
  outlives an error. An archive expanding to more than ``MAX_EXTRACTED_BYTES``, or a member over
  ``RATIO_MIN_BYTES`` compressed more than ``MAX_COMPRESSION_RATIO`` times (a zip bomb), is
  refused: from its directory before extracting, and again from the bytes actually decompressed.
  An existing file with different content is never overwritten (the run stops and names it).
* Verified: every mask is checked against the SHA-256 manifest shipped in the package
  (``evaluation/data/cuhk_gt.sha256``, 1000 masks); the photo count is checked too.

Every problem is a :class:`DownloadError`, which ``main`` prints as one ``error:`` line ending
with the dataset's page (exit 2); so is an ``OSError`` of the file system (an unwritable ``--out``;
``--to`` is its older spelling, still accepted).
The suite never redistributes these files: the dataset is for research use as its authors
distribute it.
"""

from __future__ import annotations

import bisect
import hashlib
import http.client
import os
import shutil
import stat
import sys
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Mapping

from baselines.datasets import IMAGE_EXTENSIONS
from dbm.fileio import rename_no_replace, write_temp

__all__ = [
    "ARCHIVES",
    "CorruptArchiveError",
    "DownloadError",
    "build_parser",
    "download_cuhk",
    "fetch",
    "load_manifest",
    "safe_extract",
    "main",
]

BASE_URL = "http://www.cse.cuhk.edu.hk/leojia/projects/dblurdetect/data/"
PROJECT_PAGE = "http://www.cse.cuhk.edu.hk/leojia/projects/dblurdetect/dataset.html"
MANIFEST = Path(__file__).with_name("data") / "cuhk_gt.sha256"
N_PHOTOS = 1000
#: Image members to extract and photos to count: the suite's one list of image types.
_IMAGE_SUFFIXES = IMAGE_EXTENSIONS

#: Most bytes one archive may expand to (the CUHK photos archive, ~0.3 GB, expands to about as much).
MAX_EXTRACTED_BYTES = 4 << 30
#: Most a member larger than ``RATIO_MIN_BYTES`` may be compressed (JPEG and PNG files: about 1x).
MAX_COMPRESSION_RATIO = 100
#: Members up to this size are exempt from the ratio limit (the total limit still holds).
RATIO_MIN_BYTES = 1 << 20
#: How many times an archive failing its integrity check is fetched in all.
FETCH_ATTEMPTS = 2

_BLOCK = 1 << 20
# Open flags: never through a link at the name; bytes as they are (Windows).
_NO_LINK = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
# What reading a damaged member (or zip directory) raises: bad CRC or header, corrupt or cut-off data.
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)
_NOT_CUHK = "the CUHK archives are not like this: delete it and check --base-url"


@dataclass(frozen=True)
class Archive:
    filename: str
    subdir: str  # "image" or "gt"


ARCHIVES = (Archive("BlurDatasetImage.zip", "image"), Archive("BlurDatasetGT.zip", "gt"))


class DownloadError(RuntimeError):
    """A download, extraction or verification problem; one line saying what to do."""


class CorruptArchiveError(DownloadError):
    """An archive or partial download that fails its integrity check; it must be fetched again."""


def load_manifest(path: Path = MANIFEST) -> dict[str, str]:
    """Read a ``sha256sum``-style manifest: file name -> hex digest."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip().lstrip("*")] = digest.lower()
    return out


def _digest(blocks: Iterable[bytes]) -> str:
    """The hex SHA-256 of a stream of blocks."""
    h = hashlib.sha256()
    for block in blocks:
        h.update(block)
    return h.hexdigest()


def _file_blocks(path: Path) -> Iterator[bytes]:
    """The content of a file, block by block."""
    with open(path, "rb") as fh:
        yield from iter(lambda: fh.read(_BLOCK), b"")


def _sha256(path: Path) -> str:
    """The hex SHA-256 of a file."""
    return _digest(_file_blocks(path))


def _part_path(dest: Path) -> Path:
    """Where the download of ``dest`` collects until it is complete."""
    return dest.with_name(dest.name + ".part")


def _discard(dest: Path) -> None:
    """Remove ``dest`` and its partial download, if there.

    Raises
    ------
    DownloadError
        One of them exists and cannot be removed.
    """
    for path in (dest, _part_path(dest)):
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise DownloadError(f"{path}: damaged and cannot be removed ({exc.strerror}); delete it and rerun") from exc


def _full_size(headers: Mapping[str, str] | None) -> int | None:
    """The size of the whole file from ``Content-Range: bytes A-B/N`` (or ``bytes */N``), if given."""
    value = headers.get("Content-Range") if headers is not None else None
    total = value.rpartition("/")[2].strip() if value else ""
    return int(total) if total.isdigit() else None


def _check_part_size(url: str, dest: Path, size: int, total: int | None) -> None:
    """Check a finished partial download of ``size`` bytes against the server's ``total``.

    Raises
    ------
    CorruptArchiveError
        It is longer than the server's file (a resume went wrong); it has been removed.
    DownloadError
        It is shorter: the transfer was cut off (a rerun resumes it).
    """
    if total is None or size == total:
        return
    if size > total:
        _discard(dest)
        raise CorruptArchiveError(
            f"{_part_path(dest)}: {size} bytes, but {url} has {total}; a resumed download went wrong"
        )
    raise DownloadError(f"{url}: got {size} of {total} bytes; rerun the same command to resume")


def _open_nofollow(path: str, flags: int) -> int:
    """Opener for :func:`open` that never follows a link at ``path``."""
    return os.open(path, flags | _NO_LINK, 0o666)


def fetch(url: str, dest: Path, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` when a previous run was cut off.

    Parameters
    ----------
    url : str
        The file to download.
    dest : Path
        Where it goes; returned at once if it exists (:func:`safe_extract` checks its content).
    progress : bool
        Show a progress bar on stderr.
    timeout : float
        Seconds to wait for the server.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    CorruptArchiveError
        The partial download is longer than the server's file; it has been removed.
    DownloadError
        The server cannot be reached or refuses, or the transfer was cut off (a rerun resumes it).
    """
    if dest.is_file():
        return dest
    part = _part_path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "deep-blur-mapping/0.1"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the part file is complete (or too long)
            _check_part_size(url, dest, have, _full_size(exc.headers))
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
        total = _full_size(response.headers) if resumed else None
        if total is None and length:
            total = int(length) + (have if resumed else 0)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                       desc=dest.name, file=sys.stderr, leave=False)
        try:
            with open(part, mode, opener=_open_nofollow) as fh:
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
    _check_part_size(url, dest, part.stat().st_size, total)
    os.replace(part, dest)
    return dest


def _member_name(info: zipfile.ZipInfo, archive: Path) -> str | None:
    """The file name to extract a member as, None to skip it; raises on unsafe or encrypted members."""
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
    if info.flag_bits & 0x1:
        raise DownloadError(f"{archive}: member {info.filename!r} is encrypted; {_NOT_CUHK}")
    return base


def _stored_sizes(infos: list[zipfile.ZipInfo], archive_size: int) -> dict[zipfile.ZipInfo, int]:
    """The compressed size of each member, not trusting the zip directory's word for it.

    Parameters
    ----------
    infos : list of zipfile.ZipInfo
        The archive's members.
    archive_size : int
        The archive's size in bytes.

    Returns
    -------
    dict
        Member -> its declared compressed size, at most the room it has in the archive: the
        distance from its header to the next member's header (or to the end of the file).
    """
    starts = sorted({info.header_offset for info in infos} | {archive_size})
    out = {}
    for info in infos:
        i = bisect.bisect_right(starts, info.header_offset)
        room = (starts[i] if i < len(starts) else archive_size) - info.header_offset
        out[info] = max(0, min(info.compress_size, room))
    return out


class _Expansion:
    """The bytes one archive has expanded to so far, held to the zip-bomb limits.

    Fed the sizes the zip directory declares before extracting, and the bytes actually
    decompressed while extracting, so a directory that understates them is caught too.

    Parameters
    ----------
    archive : Path
        The archive, for messages.
    stored : dict
        Member -> compressed size, from :func:`_stored_sizes`.
    """

    def __init__(self, archive: Path, stored: dict[zipfile.ZipInfo, int]) -> None:
        self.archive = archive
        self.stored = stored
        self.total = 0

    def add(self, info: zipfile.ZipInfo, member_bytes: int, new_bytes: int) -> None:
        """Count ``new_bytes`` more of member ``info``, which has reached ``member_bytes``.

        Parameters
        ----------
        info : zipfile.ZipInfo
            The member.
        member_bytes : int
            The member's expanded size so far (or as declared).
        new_bytes : int
            Bytes to add to the archive's total.

        Raises
        ------
        DownloadError
            The archive expands beyond ``MAX_EXTRACTED_BYTES``, or the member (over
            ``RATIO_MIN_BYTES``) beyond ``MAX_COMPRESSION_RATIO`` times its compressed size.
        """
        self.total += new_bytes
        if self.total > MAX_EXTRACTED_BYTES:
            raise DownloadError(f"{self.archive}: expands to more than {MAX_EXTRACTED_BYTES:,} bytes "
                                f"(at member {info.filename!r}), a zip bomb; {_NOT_CUHK}")
        stored = self.stored[info]
        if member_bytes > RATIO_MIN_BYTES and member_bytes > MAX_COMPRESSION_RATIO * stored:
            ratio = member_bytes / max(stored, 1)
            raise DownloadError(f"{self.archive}: member {info.filename!r} expands {ratio:.0f} times "
                                f"(limit {MAX_COMPRESSION_RATIO}), a zip bomb; {_NOT_CUHK}")


def _member_blocks(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: Path,
                   expansion: _Expansion) -> Iterator[bytes]:
    """Decompress one member block by block, checking its CRC-32 and the size limits as it goes.

    Parameters
    ----------
    zf : zipfile.ZipFile
        The open archive.
    info : zipfile.ZipInfo
        The member.
    archive : Path
        The archive's path, for messages.
    expansion : _Expansion
        The archive's running count of decompressed bytes.

    Yields
    ------
    bytes
        The member's content; the last block is yielded only once its CRC-32 checked out.

    Raises
    ------
    CorruptArchiveError
        The member is damaged (bad CRC-32 or header, corrupt or cut-off data).
    DownloadError
        The member breaks a size limit or uses a compression method Python cannot read.
    """
    size = 0
    try:
        with zf.open(info) as src:
            while block := src.read(_BLOCK):
                size += len(block)
                expansion.add(info, size, len(block))
                yield block
    except NotImplementedError as exc:
        raise DownloadError(f"{archive}: member {info.filename!r} cannot be read ({exc}); unpack it by hand") from exc
    except _DAMAGED as exc:
        raise CorruptArchiveError(f"{archive}: member {info.filename!r} is damaged ({exc})") from exc


def _write_exclusive(blocks: Iterable[bytes], target: Path) -> Path:
    """Write ``blocks`` to a new temporary file beside ``target`` and return its path
    (:func:`dbm.fileio.write_temp`: created exclusively, never through a link planted at its name,
    removed again if anything goes wrong while writing)."""

    def write(fh) -> None:
        for block in blocks:
            fh.write(block)

    return write_temp(target, write)


def _plan(zf: zipfile.ZipFile, archive: Path, dest: Path,
          declared: _Expansion) -> list[tuple[zipfile.ZipInfo, Path]]:
    """The members to extract and their targets, checked from the zip directory alone.

    Parameters
    ----------
    zf : zipfile.ZipFile
        The open archive.
    archive : Path
        Its path, for messages.
    dest : Path
        The folder to extract into.
    declared : _Expansion
        A fresh count, fed the declared sizes.

    Returns
    -------
    list of (zipfile.ZipInfo, Path)
        Each member to extract with the file it becomes.

    Raises
    ------
    DownloadError
        A member is unsafe, encrypted or named twice, or the declared sizes break a limit.
    """
    plan: list[tuple[zipfile.ZipInfo, Path]] = []
    seen: set[str] = set()
    for info in zf.infolist():
        base = _member_name(info, archive)
        if base is None:
            continue
        if base in seen:
            raise DownloadError(f"{archive}: two members named {base!r}; cannot flatten them into {dest}")
        seen.add(base)
        declared.add(info, info.file_size, info.file_size)
        plan.append((info, dest / base))
    return plan


def safe_extract(archive: Path, dest: Path) -> list[Path]:
    """Extract the image files of a zip archive flat into ``dest``, all or nothing.

    Refuses absolute paths, ``..``, links, encrypted members and zip bombs (see the module
    docstring); skips non-image members; never overwrites an existing file whose content differs.
    Every member is written to an exclusively created temporary file, and the files are renamed
    into place only once all members have been read intact; on any error no temporary file is left.

    Parameters
    ----------
    archive : Path
        The zip file.
    dest : Path
        The folder to extract into (created if needed).

    Returns
    -------
    list of Path
        The extracted files (including identical ones already there).

    Raises
    ------
    CorruptArchiveError
        The archive is not a zip, is cut off or has a damaged member (delete it and fetch it again).
    DownloadError
        Any other reason to refuse it, or ``dest`` cannot be written.
    """
    try:
        fh = open(archive, "rb")
    except OSError as exc:
        raise DownloadError(f"{archive}: cannot read it ({exc.strerror})") from exc
    with fh:
        try:
            zf = zipfile.ZipFile(fh)
        except _DAMAGED as exc:
            raise CorruptArchiveError(f"{archive}: not a valid zip archive ({exc}), damaged or cut off") from exc
        with zf:
            stored = _stored_sizes(zf.infolist(), os.fstat(fh.fileno()).st_size)
            plan = _plan(zf, archive, dest, _Expansion(archive, stored))
            expansion = _Expansion(archive, stored)
            staged: list[tuple[Path, Path]] = []
            try:
                dest.mkdir(parents=True, exist_ok=True)
                for info, target in plan:
                    blocks = _member_blocks(zf, info, archive, expansion)
                    if not target.exists():
                        staged.append((_write_exclusive(blocks, target), target))
                    elif not (target.is_file() and target.stat().st_size == info.file_size
                              and _digest(blocks) == _sha256(target)):
                        raise DownloadError(f"{target}: exists with other content; move it away "
                                            "(the download never overwrites your files)")
                while staged:  # a file renamed into place is no longer ours to clean up
                    tmp, target = staged[-1]
                    try:
                        rename_no_replace(tmp, target)  # never over a file created since the check above
                    except FileExistsError:
                        if not (target.is_file() and not target.is_symlink() and _sha256(tmp) == _sha256(target)):
                            raise DownloadError(f"{target}: appeared during the extraction with other content; "
                                                "move it away (the download never overwrites your files)") from None
                        tmp.unlink()  # the same file is already there
                    staged.pop()
            except OSError as exc:  # reading the archive raises DownloadError, so this is the disk
                raise DownloadError(f"{dest}: cannot extract {archive.name} there ({exc}); "
                                    "check the free space and permissions, then rerun") from exc
            finally:
                for tmp, _ in staged:
                    tmp.unlink(missing_ok=True)
    return [target for _, target in plan]


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


def _fetch_and_extract(url: str, archive: Path, dest: Path, *, progress: bool,
                       log: Callable[[str], None]) -> list[Path]:
    """Fetch ``url`` to ``archive`` and extract it into ``dest``, fetching it afresh if it is damaged.

    An archive (or partial download) that fails its integrity check is removed, with a line to
    ``log``, and fetched again, ``FETCH_ATTEMPTS`` times in all.

    Parameters
    ----------
    url : str
        The archive's address.
    archive : Path
        Where it is downloaded to.
    dest : Path
        The folder to extract into.
    progress : bool
        Show a progress bar while downloading.
    log : callable
        Takes one line of news.

    Returns
    -------
    list of Path
        The extracted files.

    Raises
    ------
    DownloadError
        The archive is still damaged after the last attempt (removed), or any other problem.
    """
    attempt = 1
    while True:
        try:
            return safe_extract(fetch(url, archive, progress=progress), dest)
        except CorruptArchiveError as exc:
            _discard(archive)
            if attempt >= FETCH_ATTEMPTS:
                raise DownloadError(
                    f"{exc}; removed it, and it was damaged again when fetched afresh: try again later, "
                    f"or download {archive.name} by hand from the dataset's page and unpack it into {dest}"
                ) from exc
            log(f"{exc}; removed it, fetching it again")
            attempt += 1


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
    """Download, extract and verify the CUHK benchmark into ``to`` (``image/``, ``gt/``).

    Parameters
    ----------
    to : Path
        The destination folder.
    base_url : str
        Where the archives are.
    manifest : dict of str to str, optional
        Mask name -> SHA-256; default: the shipped manifest.
    n_photos : int
        How many photos there must be.
    keep_archives : bool
        Keep the zip files in ``to/.download``.
    progress : bool
        Show progress bars.
    log : callable
        Takes one line of news (default: print to stderr).

    Returns
    -------
    Path
        ``to``.

    Raises
    ------
    DownloadError
        Any problem, in one line saying what to do.
    """
    manifest = load_manifest() if manifest is None else manifest
    to = Path(to)
    cache = to / ".download"
    for arc in ARCHIVES:
        files = _fetch_and_extract(base_url.rstrip("/") + "/" + arc.filename, cache / arc.filename,
                                   to / arc.subdir, progress=progress, log=log)
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


def build_parser():
    """The command line of ``python -m evaluation.download`` (one-line errors, :mod:`evaluation.cli`)."""
    from .cli import OneLineParser, add_common_options

    p = OneLineParser(prog="python -m evaluation.download", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", choices=["cuhk"], help="which benchmark")
    add_common_options(p, out={"required": True, "help": "destination folder (gets image/ and gt/)"}, quiet=True,
                       aliases={"--to": "--out"})
    p.add_argument("--base-url", default=BASE_URL, help=f"where the archives are (default: {BASE_URL})")
    p.add_argument("--keep-archives", action="store_true", help="keep the zip files in OUT/.download")
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m evaluation.download``: fetch, extract and verify; return the exit status.

    Returns
    -------
    int
        0 done; 2 a bad option or a problem (network, archive, disk, checksum), printed as one
        ``error:`` line that ends with the dataset's page; 130 interrupted (rerun to resume).
    """
    from .cli import CLIError, os_error_message, report

    try:
        args = build_parser().parse_args(argv)
    except CLIError as exc:
        report(exc)
        return 2
    page = f"(the dataset's page: {PROJECT_PAGE})"
    try:
        download_cuhk(args.out, base_url=args.base_url, keep_archives=args.keep_archives, progress=not args.quiet)
    except DownloadError as exc:
        report(f"{exc} {page}")
        return 2
    except OSError as exc:  # an unwritable --out, a failed mkdir, an unreadable folder while verifying
        report(os_error_message(exc, f"check that --out {args.out} is a folder you can write to, with free space, "
                                     f"then rerun {page}"))
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume the download", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
