"""Shared fixtures: where the real data lives and the model the tests use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FER2013_CSV = SHARED_DATA / "fer2013" / "fer2013.csv.gz"
FACES_DIR = SHARED_DATA / "faces"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def require(path: Path) -> Path:
    """``path``, or a test failure that says which shared data is missing."""
    if not path.exists():
        pytest.fail(f"test data missing: {path} (the tests read ../shared/data beside the "
                    f"repository; see its README)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return require(SHARED_DATA)


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    return require(FACES_DIR)


@pytest.fixture(scope="session")
def fer2013():
    """The whole FER2013 dataset as an emotion.Dataset (read once per session)."""
    from emotion.data import load_dataset

    return load_dataset(require(FER2013_CSV))
