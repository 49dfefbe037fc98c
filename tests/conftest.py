"""Shared fixtures.

Real-data tests read ``../shared`` (CUHK masks, 12 photos, reference outputs of the original
implementations). Where it is absent they are skipped, except when ``DBM_REQUIRE_SHARED=1``
(set by ``.ci/run``): then a missing folder is a failure, so CI can never pass by skipping.
``DBM_SHARED`` overrides the location.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    env = os.environ.get("DBM_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def _require(path: Path, what: str) -> Path:
    if path.exists():
        return path
    message = f"{what} not found at {path} (set DBM_SHARED to the shared folder)"
    if os.environ.get("DBM_REQUIRE_SHARED") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``shared`` folder (fails under CI, skips elsewhere, when missing)."""
    return _require(_shared_dir(), "shared data folder")


@pytest.fixture(scope="session")
def cuhk_dir(shared_dir: Path) -> Path:
    """The partial CUHK benchmark: all masks, 12 photos, published HiFST maps."""
    return _require(shared_dir / "data" / "cuhk", "CUHK data")


@pytest.fixture(scope="session")
def cuhk_full_dir(shared_dir: Path) -> Path:
    """The whole CUHK benchmark: 1,000 photos and masks."""
    return _require(shared_dir / "data" / "cuhk_full", "full CUHK data")


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    """Outputs of the original implementations on the 12 photos."""
    return _require(shared_dir / "reference", "reference outputs")


@pytest.fixture(scope="session")
def cuhk_photo_stems(cuhk_dir: Path) -> list[str]:
    """Stems of the 12 CUHK photos available offline."""
    return sorted(p.stem for p in (cuhk_dir / "image").iterdir() if p.is_file())


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def natural_rgb() -> np.ndarray:
    """A small natural photo (scikit-image's astronaut, 128 x 160 crop), float32 RGB."""
    from skimage import data

    img = data.astronaut()[40:168, 180:340].astype(np.float32) / 255.0
    return np.ascontiguousarray(img)
