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


def app_page(page: str, secrets: dict | None = None, timeout: float = 300):
    """An AppTest of ``app.py`` switched to ``page`` (e.g. "pages/webcam.py"), with ``secrets``
    set as a deployment's secrets.toml would; fails on any exception the page raised."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def media(monkeypatch) -> dict[str, bytes]:
    """Every file the app hands to Streamlit's media store (images, downloads), by file id.

    AppTest keeps its media store only while a script runs, so record what goes in."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stored: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def load_and_get_id(self, path_or_data, *args, **kwargs):
        file_id = original(self, path_or_data, *args, **kwargs)
        if isinstance(path_or_data, bytes):
            stored[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", load_and_get_id)
    return stored


def as_in_a_terminal() -> None:
    """Popen's preexec_fn for a command a test stops with Ctrl-C: a shell that runs the tests in
    the background (as CI may) starts them with SIGINT ignored, and a child would inherit that,
    where a terminal's foreground command always gets Ctrl-C."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


@pytest.fixture(scope="session")
def fer2013_slice(fer2013, tmp_path_factory) -> Path:
    """A small FER2013 CSV for quick training runs: the first 256 Training, 64 PublicTest
    and 64 PrivateTest faces of the real dataset."""
    path = tmp_path_factory.mktemp("fer2013-slice") / "fer2013-slice.csv"
    rows = []
    for split, count in (("Training", 256), ("PublicTest", 64), ("PrivateTest", 64)):
        part = fer2013.split(split).head(count)
        rows += [f"{label},{' '.join(map(str, image.ravel()))},{split}"
                 for image, label in zip(part.images, part.labels)]
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    return path


SHIPPED_MODEL = ROOT / "models" / "facemood-vgg.keras"


@pytest.fixture(scope="session")
def test_model() -> Path:
    """The shipped model, which the tests use as the app does."""
    return require(SHIPPED_MODEL)


@pytest.fixture
def app_model(test_model, monkeypatch) -> Path:
    """The app runs with the shipped model: no $FACEMOOD_MODEL from the caller's shell."""
    monkeypatch.delenv("FACEMOOD_MODEL", raising=False)
    return test_model
