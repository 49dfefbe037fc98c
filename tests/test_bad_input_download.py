"""`evaluation.download` on damaged, hostile or planted input: one-line errors, nothing left behind.

The archives are small zips built here and served from 127.0.0.1 by the server fixture of
``test_download``. Tests through ``main`` check what a user sees: exit code 2, one ``error:``
line naming the archive, no traceback.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path

import pytest

from dbm import fileio
from evaluation import download as dl
from test_download import _dataset, _png, _serve, _zip, server  # noqa: F401 - server is a fixture

GT = "BlurDatasetGT.zip"
DAMAGES = ["not_a_zip", "truncated", "bad_crc"]


def _damage(kind: str, good: bytes) -> bytes:
    """``good`` (a GT zip of :func:`_dataset`, stored members) damaged as ``kind`` says."""
    if kind == "not_a_zip":
        return b"<html>503 Service Unavailable</html>"
    if kind == "truncated":
        return good[: len(good) // 2]
    assert kind == "bad_crc"
    data = bytearray(good)
    data[good.index(_png(2)) + 40] ^= 0xFF  # inside gt/motion0002.png, the second member
    return bytes(data)


def _cli(root: Path, url: str, capsys) -> tuple[int, str, list[str]]:
    """Run ``main`` on ``root``; return the exit code, stderr and its ``error:`` lines."""
    code = dl.main(["cuhk", "--out", str(root), "--base-url", url])
    err = capsys.readouterr().err
    return code, err, [line for line in err.splitlines() if line.startswith("error:")]


def _tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.tmp") if not p.is_symlink()]


def _bomb_zip(size: int = 20 << 20) -> bytes:
    """A GT-like zip whose one mask is ``size`` zero bytes, deflated (about 1000 times)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("gt/motion0001.png", bytes(size))
    return buf.getvalue()


def _set_central_field(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """Rewrite one field of the (first) central directory entry."""
    out = bytearray(data)
    struct.pack_into(fmt, out, out.index(b"PK\x01\x02") + offset, value)
    return bytes(out)


@pytest.mark.parametrize("kind", DAMAGES)
def test_damaged_archive_is_removed_and_fetched_again(server, tmp_path, kind):
    image_zip, gt_zip, manifest = _dataset()
    url = _serve(server, image_zip, gt_zip)
    server.files[GT] = [_damage(kind, gt_zip), gt_zip]
    lines: list[str] = []
    root = dl.download_cuhk(tmp_path / "cuhk", base_url=url, manifest=manifest, n_photos=3, progress=False,
                            log=lines.append)
    assert [name for name, _ in server.requests].count(GT) == 2
    retry = [line for line in lines if "fetching it again" in line]
    assert len(retry) == 1 and "\n" not in retry[0] and GT in retry[0]
    assert (root / "gt" / "motion0002.png").read_bytes() == _png(2)
    assert not _tmp_files(tmp_path)


def test_damaged_archive_left_by_an_earlier_run_is_replaced(server, tmp_path):
    """The first complaint of the issue: a bad archive on disk used to fail every rerun."""
    image_zip, gt_zip, manifest = _dataset()
    url = _serve(server, image_zip, gt_zip)
    cache = tmp_path / "cuhk" / ".download"
    cache.mkdir(parents=True)
    (cache / GT).write_bytes(_damage("truncated", gt_zip))
    lines: list[str] = []
    dl.download_cuhk(tmp_path / "cuhk", base_url=url, manifest=manifest, n_photos=3, progress=False,
                     log=lines.append)
    assert any(str(cache / GT) in line and "not a valid zip archive" in line for line in lines)
    assert (GT, None) in server.requests


@pytest.mark.parametrize("kind", DAMAGES)
def test_archive_damaged_twice_is_a_one_line_error(server, tmp_path, capsys, kind):
    image_zip, gt_zip, _ = _dataset()
    url = _serve(server, image_zip, _damage(kind, gt_zip))
    root = tmp_path / "cuhk"
    code, err, errors = _cli(root, url, capsys)
    assert code == 2 and "Traceback" not in err
    assert len(errors) == 1 and str(root / ".download" / GT) in errors[0]
    assert "fetched afresh" in errors[0] and "by hand" in errors[0]
    if kind == "bad_crc":
        assert "'gt/motion0002.png'" in errors[0] and "Bad CRC-32" in errors[0]
    assert [name for name, _ in server.requests].count(GT) == 2
    assert not (root / ".download" / GT).exists() and not (root / ".download" / (GT + ".part")).exists()
    assert not _tmp_files(tmp_path)
    assert not any((root / "gt").glob("*")), "a damaged archive must not be half extracted"


def test_bad_crc_member_leaves_nothing_behind(tmp_path):
    _, gt_zip, _ = _dataset()
    archive = tmp_path / GT
    archive.write_bytes(_damage("bad_crc", gt_zip))
    with pytest.raises(dl.CorruptArchiveError, match=r"BlurDatasetGT\.zip: member 'gt/motion0002\.png' is damaged"):
        dl.safe_extract(archive, tmp_path / "gt")
    assert list((tmp_path / "gt").iterdir()) == []  # motion0001 was read intact, but nothing is kept


def test_wrongly_resumed_part_is_removed_and_fetched_again(server, tmp_path):
    image_zip, gt_zip, manifest = _dataset()
    url = _serve(server, image_zip, gt_zip)
    cache = tmp_path / "cuhk" / ".download"
    cache.mkdir(parents=True)
    (cache / (GT + ".part")).write_bytes(b"x" * 100)  # not the start of this archive
    lines: list[str] = []
    dl.download_cuhk(tmp_path / "cuhk", base_url=url, manifest=manifest, n_photos=3, progress=False,
                     log=lines.append)
    assert [r for r in server.requests if r[0] == GT] == [(GT, "bytes=100-"), (GT, None)]
    assert any("fetching it again" in line for line in lines)
    assert (tmp_path / "cuhk" / "gt" / "motion0001.png").read_bytes() == _png(1)


def test_part_longer_than_the_file_is_removed_and_fetched_again(server, tmp_path):
    image_zip, gt_zip, manifest = _dataset()
    url = _serve(server, image_zip, gt_zip)
    cache = tmp_path / "cuhk" / ".download"
    cache.mkdir(parents=True)
    (cache / (GT + ".part")).write_bytes(gt_zip + b"appended twice")
    lines: list[str] = []
    dl.download_cuhk(tmp_path / "cuhk", base_url=url, manifest=manifest, n_photos=3, progress=False,
                     log=lines.append)
    assert [r for r in server.requests if r[0] == GT] == [(GT, f"bytes={len(gt_zip) + 14}-"), (GT, None)]
    assert any(f"{GT}.part: {len(gt_zip) + 14} bytes" in line and "resumed download went wrong" in line
               for line in lines)


def test_encrypted_member_is_a_one_line_error(server, tmp_path, capsys):
    image_zip, _, _ = _dataset()
    gt_zip = _set_central_field(_zip({"gt/motion0001.png": _png(1)}), 8, "<H", 0x1)  # flag bit 0: encrypted
    url = _serve(server, image_zip, gt_zip)
    root = tmp_path / "cuhk"
    code, err, errors = _cli(root, url, capsys)
    assert code == 2 and "Traceback" not in err
    assert len(errors) == 1 and GT in errors[0] and "member 'gt/motion0001.png' is encrypted" in errors[0]
    assert [name for name, _ in server.requests].count(GT) == 1  # not damage: fetching again cannot help
    assert not _tmp_files(tmp_path) and not (root / "gt").exists()


def test_zip_bomb_is_refused_before_extracting(server, tmp_path, capsys):
    image_zip, _, _ = _dataset()
    url = _serve(server, image_zip, _bomb_zip())
    root = tmp_path / "cuhk"
    code, err, errors = _cli(root, url, capsys)
    assert code == 2 and "Traceback" not in err
    assert len(errors) == 1 and GT in errors[0] and "'gt/motion0001.png' expands" in errors[0]
    assert "zip bomb" in errors[0]
    assert not _tmp_files(tmp_path) and not (root / "gt").exists()


def test_understated_compressed_size_does_not_hide_a_bomb(tmp_path):
    """The directory may claim a large compressed size; the room the member has in the file counts."""
    archive = tmp_path / GT
    archive.write_bytes(_set_central_field(_bomb_zip(), 20, "<I", 50 << 20))  # "50 MB compressed"
    assert zipfile.ZipFile(archive).infolist()[0].compress_size == 50 << 20
    with pytest.raises(dl.DownloadError, match=r"'gt/motion0001.png' expands \d+ times"):
        dl.safe_extract(archive, tmp_path / "gt")


def test_total_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "MAX_EXTRACTED_BYTES", 50_000)
    archive = tmp_path / GT
    archive.write_bytes(_zip({f"gt/m{i}.png": os.urandom(20_000) for i in range(3)}))
    with pytest.raises(dl.DownloadError, match=r"BlurDatasetGT\.zip: expands to more than 50,000 bytes"):
        dl.safe_extract(archive, tmp_path / "gt")
    assert not (tmp_path / "gt").exists()


def test_size_limit_is_enforced_while_streaming(tmp_path, monkeypatch):
    """A directory that understates the sizes passes the first check; the bytes read still count."""
    archive = tmp_path / GT
    archive.write_bytes(_zip({f"gt/m{i}.png": os.urandom(300_000) for i in range(3)}))
    plan = dl._plan

    def plan_then_lower_the_limit(*args):
        out = plan(*args)
        monkeypatch.setattr(dl, "MAX_EXTRACTED_BYTES", 500_000)
        return out

    monkeypatch.setattr(dl, "_plan", plan_then_lower_the_limit)
    with pytest.raises(dl.DownloadError, match=r"expands to more than 500,000 bytes \(at member 'gt/m1.png'\)"):
        dl.safe_extract(archive, tmp_path / "gt")
    assert list((tmp_path / "gt").iterdir()) == []  # m0 was written and m1 begun: both removed


def test_planted_symlink_at_the_old_temp_name_is_not_followed(server, tmp_path):
    image_zip, gt_zip, manifest = _dataset()
    url = _serve(server, image_zip, gt_zip)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    gt = tmp_path / "cuhk" / "gt"
    gt.mkdir(parents=True)
    planted = gt / ".motion0001.png.tmp"
    planted.symlink_to(victim)
    dl.download_cuhk(tmp_path / "cuhk", base_url=url, manifest=manifest, n_photos=3, progress=False,
                     log=lambda m: None)
    assert victim.read_bytes() == b"precious"
    assert planted.is_symlink() and os.readlink(planted) == str(victim)
    assert not (gt / "motion0001.png").is_symlink() and (gt / "motion0001.png").read_bytes() == _png(1)
    assert not _tmp_files(tmp_path)


def test_planted_symlink_at_the_temp_name_is_a_one_line_error(server, tmp_path, capsys, monkeypatch):
    """Even at the very name the temporary file gets, a planted link is never written through."""
    image_zip, gt_zip, _ = _dataset()
    url = _serve(server, image_zip, gt_zip)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    gt = tmp_path / "cuhk" / "gt"
    gt.mkdir(parents=True)
    (gt / ".motion0002.png.guessed.tmp").symlink_to(victim)
    monkeypatch.setattr(fileio, "temp_path", lambda target: target.with_name(f".{target.name}.guessed.tmp"))
    code, err, errors = _cli(tmp_path / "cuhk", url, capsys)
    assert code == 2 and "Traceback" not in err
    assert len(errors) == 1 and "cannot extract BlurDatasetGT.zip" in errors[0] and "File exists" in errors[0]
    assert victim.read_bytes() == b"precious"
    assert (gt / ".motion0002.png.guessed.tmp").is_symlink()
    assert sorted(p.name for p in gt.iterdir()) == [".motion0002.png.guessed.tmp"]  # motion0001's file removed
