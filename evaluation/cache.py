"""The map cache: where computed maps live and what keys them, in one place.

A map is determined by the method, its version and settings, its weight file (all in
:meth:`baselines.interface.Detector.cache_key`) and the photo. The cache keys the photo by the
SHA-256 of its file's bytes, so a photo that changed is recomputed and a photo of another dataset
with the same file stem never collides with it::

    CACHE/<method>/<detector cache key><training suffix>/<stem>-<photo digest>.png
    CACHE/<method>/<detector cache key><training suffix>/times.jsonl

Each map is an 8-bit PNG (``round(255 * score)``, 255 = blurred), written atomically the moment
it is computed. Its compute time is appended to ``times.jsonl`` *before* the map is written, so
every cached map has its time (a map whose write was interrupted is simply recomputed). The
metrics quantise maps to exactly these 256 levels, so a cached map scores exactly as a fresh one.
Checking whether a map is cached looks at the file name only; nothing is decoded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from baselines.datasets import DIGEST_CHARS, file_digest
from dbm.fileio import atomic_write_bytes

__all__ = ["DIGEST_CHARS", "MapCache", "file_digest", "samples_digest", "read_levels", "write_levels"]

def samples_digest(samples: Iterable) -> str:
    """Digest of a training set: every sample's stem, photo bytes, mask bytes and mask polarity, in order."""
    h = hashlib.sha256()
    for s in samples:
        inverted = ":inverted" if getattr(s, "invert", False) else ""  # masks white = in focus, read inverted
        h.update(f"{s.stem}:{file_digest(s.image_path)}:{file_digest(s.mask_path)}{inverted}\n".encode())
    return h.hexdigest()[:DIGEST_CHARS]


def write_levels(path: Path, levels: np.ndarray) -> None:
    """Write uint8 levels as a PNG atomically (a crash never leaves half a file)."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(levels))
    if not ok:  # pragma: no cover - OpenCV failure
        raise OSError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, buf.tobytes(), overwrite=True)  # unique temp name: threads and hosts never collide


def read_levels(path: Path) -> np.ndarray | None:
    """Read a cached 8-bit map, or None when it is missing or unreadable (then it is recomputed)."""
    import cv2

    if not path.is_file():
        return None
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint8 or img.ndim != 2:
        return None
    return img


@dataclass(frozen=True)
class MapCache:
    """The cached maps of one method with one set of settings (and training state).

    Parameters
    ----------
    folder : Path
        ``CACHE/<method>/<key>``; see the module notes.
    """

    folder: Path

    @classmethod
    def for_method(cls, root: Path, method: str, key: str) -> "MapCache":
        """The cache of ``method`` whose settings (and training) hash to ``key`` under ``root``."""
        return cls(Path(root) / method / key)

    @property
    def times_path(self) -> Path:
        return self.folder / "times.jsonl"

    def path(self, sample) -> Path:
        """Where the map of ``sample`` (a :class:`baselines.datasets.Sample` with a photo) lives."""
        return self.folder / f"{sample.stem}-{file_digest(sample.image_path)}.png"

    def has(self, sample) -> bool:
        """Whether the map of ``sample``'s current photo is cached (no decoding)."""
        return self.path(sample).is_file()

    def load(self, sample, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """The cached levels, or None when missing, unreadable or not of ``shape`` (recompute then)."""
        levels = read_levels(self.path(sample))
        if levels is not None and shape is not None and levels.shape != tuple(shape[:2]):
            return None
        return levels

    def store(self, sample, levels: np.ndarray, seconds: float) -> None:
        """Record the compute time, then write the map (see the module notes for the order)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"stem": sample.stem, "photo": file_digest(sample.image_path),
                           "seconds": round(float(seconds), 6)}) + "\n"
        data = line.encode()
        fd = os.open(self.times_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if os.write(fd, data) != len(data):  # one short O_APPEND write: lines of concurrent writers never mix
                raise OSError(f"{self.times_path}: short write (disk full?); free some space and rerun")
        finally:
            os.close(fd)
        write_levels(self.path(sample), levels)

    def seconds(self) -> dict[tuple[str, str], float]:
        """Compute time of every recorded map, by ``(stem, photo digest)`` (the latest record wins)."""
        times: dict[tuple[str, str], float] = {}
        if self.times_path.is_file():
            for line in self.times_path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                    times[(rec["stem"], rec.get("photo", ""))] = float(rec["seconds"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by an interruption
        return times

    def seconds_of(self, sample, times: dict[tuple[str, str], float] | None = None) -> float | None:
        """Compute time of ``sample``'s cached map, if recorded."""
        times = self.seconds() if times is None else times
        return times.get((sample.stem, file_digest(sample.image_path)))
