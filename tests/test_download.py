"""`evaluation.download` against a local HTTP server on 127.0.0.1 serving archives built here."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from evaluation import download as dl


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``server.files`` (name -> bytes), honouring ``Range: bytes=N-``.

    A list of bytes serves its items to successive requests (the last one from then on).
    """

    def do_GET(self):  # noqa: N802 - http.server API
        name = self.path.rsplit("/", 1)[-1]
        body = self.server.files.get(name)  # type: ignore[attr-defined]
        if isinstance(body, list):
            body = body.pop(0) if len(body) > 1 else body[0]
        self.server.requests.append((name, self.headers.get("Range")))  # type: ignore[attr-defined]
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and self.server.ranges:  # type: ignore[attr-defined]
            start = int(rng.split("=")[1].rstrip("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    httpd.files, httpd.requests, httpd.ranges = {}, [], True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _png(seed: int) -> bytes:
    import cv2

    img = (np.random.default_rng(seed).random((20, 24)) > 0.5).astype(np.uint8) * 255
    return cv2.imencode(".png", img)[1].tobytes()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _dataset(n: int = 3):
    masks = {f"motion{i:04d}.png": _png(i) for i in range(1, n + 1)}
    photos = {f"motion{i:04d}.jpg": b"not really a jpeg %d" % i for i in range(1, n + 1)}
    manifest = {k: hashlib.sha256(v).hexdigest() for k, v in masks.items()}
    image_zip = _zip({f"image/{k}": v for k, v in photos.items()} | {"image/readme.txt": b"x"})
    gt_zip = _zip({f"gt/{k}": v for k, v in masks.items()} | {"__MACOSX/gt/._motion0001.png": b"junk"})
    return image_zip, gt_zip, manifest


def _serve(server, image_zip, gt_zip):
    server.files.update({"BlurDatasetImage.zip": image_zip, "BlurDatasetGT.zip": gt_zip})
    return f"http://127.0.0.1:{server.server_address[1]}/data/"


def test_download_extract_verify(server, tmp_path):
    image_zip, gt_zip, manifest = _dataset()
    url = _serve(server, image_zip, gt_zip)
    root = dl.download_cuhk(tmp_path / "cuhk", base_url=url, manifest=manifest, n_photos=3, progress=False,
                            log=lambda m: None)
    assert sorted(p.name for p in (root / "gt").iterdir()) == sorted(manifest)
    assert sorted(p.name for p in (root / "image").iterdir()) == [f"motion{i:04d}.jpg" for i in (1, 2, 3)]
    assert not (root / ".download").exists()
    # The runner reads what was downloaded.
    from evaluation.datasets import Dataset

    assert Dataset(root).stems("odd") == ["motion0001", "motion0003"]


def test_resume_uses_range_request(server, tmp_path):
    image_zip, gt_zip, manifest = _dataset()
    url = _serve(server, image_zip, gt_zip)
    cache = tmp_path / "cuhk" / ".download"
    cache.mkdir(parents=True)
    (cache / "BlurDatasetGT.zip.part").write_bytes(gt_zip[:100])  # an earlier run cut off here
    dl.download_cuhk(tmp_path / "cuhk", base_url=url, manifest=manifest, n_photos=3, progress=False,
                     log=lambda m: None)
    assert ("BlurDatasetGT.zip", "bytes=100-") in server.requests
    assert (tmp_path / "cuhk" / "gt" / "motion0002.png").read_bytes() == _png(2)


def test_complete_part_file_is_used_as_is(server, tmp_path):
    """A part file the server answers 416 for, of the server's size, is the whole archive."""
    _, gt_zip, _ = _dataset()
    url = _serve(server, b"", gt_zip)
    (tmp_path / "a.zip.part").write_bytes(gt_zip)
    assert dl.fetch(url + "BlurDatasetGT.zip", tmp_path / "a.zip", progress=False).read_bytes() == gt_zip
    assert server.requests == [("BlurDatasetGT.zip", f"bytes={len(gt_zip)}-")]


def test_server_without_range_support_restarts(server, tmp_path):
    server.ranges = False
    image_zip, gt_zip, _ = _dataset()
    url = _serve(server, image_zip, gt_zip)
    part = tmp_path / "a.zip.part"
    part.write_bytes(b"garbage that must not be kept")
    dl.fetch(url + "BlurDatasetGT.zip", tmp_path / "a.zip", progress=False)
    assert (tmp_path / "a.zip").read_bytes() == gt_zip


def test_checksum_mismatch_is_reported(server, tmp_path):
    image_zip, gt_zip, manifest = _dataset()
    manifest["motion0002.png"] = "0" * 64
    url = _serve(server, image_zip, gt_zip)
    with pytest.raises(dl.DownloadError, match=r"1 masks fail their checksum \(motion0002.png\)"):
        dl.download_cuhk(tmp_path / "c", base_url=url, manifest=manifest, n_photos=3, progress=False,
                         log=lambda m: None)


def test_missing_archive_is_a_clear_error(server, tmp_path):
    url = f"http://127.0.0.1:{server.server_address[1]}/nothing/"
    with pytest.raises(dl.DownloadError, match="HTTP 404"):
        dl.download_cuhk(tmp_path / "c", base_url=url, manifest={}, progress=False, log=lambda m: None)


@pytest.mark.parametrize("evil", ["../evil.png", "/abs/evil.png", "gt/../../evil.png", "C:/evil.png", "..\\evil.png"])
def test_path_traversal_refused(tmp_path, evil):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip({"gt/ok.png": _png(1), evil: _png(2)}))
    with pytest.raises(dl.DownloadError, match="unsafe path"):
        dl.safe_extract(archive, tmp_path / "out" / "gt")
    assert not (tmp_path / "evil.png").exists() and not (tmp_path / "out").exists()


def test_symlink_member_refused(tmp_path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("gt/link.png")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(dl.DownloadError, match="link"):
        dl.safe_extract(archive, tmp_path / "gt")


def test_never_overwrites_user_files(tmp_path):
    archive = tmp_path / "gt.zip"
    archive.write_bytes(_zip({"gt/motion0001.png": _png(1)}))
    dest = tmp_path / "gt"
    dest.mkdir()
    (dest / "motion0001.png").write_bytes(b"my own edited mask")
    with pytest.raises(dl.DownloadError, match="never overwrites"):
        dl.safe_extract(archive, dest)
    assert (dest / "motion0001.png").read_bytes() == b"my own edited mask"
    # An identical file already there (a rerun) is fine.
    (dest / "motion0001.png").write_bytes(_png(1))
    assert dl.safe_extract(archive, dest) == [dest / "motion0001.png"]


def test_shipped_manifest_matches_shared_masks(cuhk_dir):
    manifest = dl.load_manifest()
    assert len(manifest) == 1000
    dl.verify_masks(cuhk_dir / "gt", manifest)


def test_cli_reports_error_in_one_line(server, tmp_path, capsys):
    url = f"http://127.0.0.1:{server.server_address[1]}/missing/"
    assert dl.main(["cuhk", "--to", str(tmp_path / "x"), "--base-url", url]) == 2  # --to: the old spelling of --out
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "HTTP 404" in err[0] and dl.PROJECT_PAGE in err[0]


def test_cli_reports_os_errors_in_one_line(tmp_path, capsys):
    """An unwritable --out (here: under a file, so no folder can be made) is one line, not a traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert dl.main(["cuhk", "--out", str(blocker / "cuhk"), "--base-url", "http://127.0.0.1:9/"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--out" in err[0] and dl.PROJECT_PAGE in err[0]
    assert dl.main(["cuhk"]) == 2  # argparse's errors are one line too
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--out" in err[0]


def test_a_file_created_during_extraction_is_never_replaced(tmp_path, monkeypatch):
    archive = tmp_path / "gt.zip"
    archive.write_bytes(_zip({"gt/motion0001.png": _png(1)}))
    dest = tmp_path / "gt"
    real = dl._write_exclusive

    def racing(content):
        def write(blocks, target):
            tmp = real(blocks, target)
            target.write_bytes(content)  # someone else creates the file after the existence check
            return tmp
        return write

    monkeypatch.setattr(dl, "_write_exclusive", racing(b"their file"))
    with pytest.raises(dl.DownloadError, match="never overwrites"):
        dl.safe_extract(archive, dest)
    assert (dest / "motion0001.png").read_bytes() == b"their file"
    assert sorted(p.name for p in dest.iterdir()) == ["motion0001.png"]  # no temporary file left
    (dest / "motion0001.png").unlink()
    monkeypatch.setattr(dl, "_write_exclusive", racing(_png(1)))  # the same content: fine
    assert dl.safe_extract(archive, dest) == [dest / "motion0001.png"]
    assert sorted(p.name for p in dest.iterdir()) == ["motion0001.png"]
