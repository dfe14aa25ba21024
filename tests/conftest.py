"""Shared fixtures: where the real data lives and the model the tests use."""

from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

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


# The faces of fer2013_slice: the first this many of each split, in this order.
SLICE = (("Training", 256), ("PublicTest", 64), ("PrivateTest", 64))


@pytest.fixture(scope="session")
def fer2013_slice(fer2013, tmp_path_factory) -> Path:
    """A small FER2013 CSV for quick training runs: the first 256 Training, 64 PublicTest
    and 64 PrivateTest faces of the real dataset."""
    path = tmp_path_factory.mktemp("fer2013-slice") / "fer2013-slice.csv"
    rows = []
    for split, count in SLICE:
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


SMALL_RUN = {"architecture": "small", "width": 8, "epochs": 1}


@pytest.fixture(scope="session")
def small_model(fer2013_slice, tmp_path_factory) -> Path:
    """A real one-epoch small model, start.keras with its card: what warm restarts start from."""
    from emotion.data import load_dataset
    from emotion.model import Augmentation
    from emotion.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("start")
    config = TrainConfig(**SMALL_RUN, augmentation=Augmentation.none())
    return train(load_dataset(fer2013_slice), config, folder / "start.keras", run_dir=folder / "run").model_path


@pytest.fixture(scope="session")
def soup_runs(small_model, fer2013_slice, tmp_path_factory) -> list[Path]:
    """Two real one-epoch runs, a.keras and b.keras, that start from one small model as
    restarts do, each with its card and history: the ingredients of a soup."""
    from emotion.data import load_dataset
    from emotion.model import Augmentation
    from emotion.train import TrainConfig, train

    folder, data = tmp_path_factory.mktemp("soup-runs"), load_dataset(fer2013_slice)
    return [train(data, TrainConfig(**SMALL_RUN, augmentation=Augmentation.none(), init_from=str(small_model),
                                    seed=seed), folder / f"{name}.keras", run_dir=folder / name).model_path
            for name, seed in (("a", 2), ("b", 3))]


@pytest.fixture(scope="session")
def soup_model(soup_runs, fer2013_slice, tmp_path_factory) -> Path:
    """A real soup for the pages: the mean of a.keras and b.keras."""
    from emotion.data import load_dataset
    from emotion.soup import make_soup

    out = tmp_path_factory.mktemp("soup-model") / "soup.keras"
    return make_soup(soup_runs, load_dataset(fer2013_slice), out, greedy=False).model_path


@pytest.fixture(scope="session")
def ensemble_model(soup_runs, fer2013_slice, tmp_path_factory) -> Path:
    """A real ensemble for the pages: the mean of a.keras's and b.keras's predictions."""
    from emotion.data import load_dataset
    from emotion.soup import make_soup

    out = tmp_path_factory.mktemp("ensemble-model") / "both.keras"
    return make_soup(soup_runs, load_dataset(fer2013_slice), out, greedy=False, average="predictions").model_path


# --- the Webcam page's browser stream, faked (tests/test_webcam_page.py, tests/test_keypoints.py)


class FakeStreamer:
    """Stands in for streamlit_webrtc.webrtc_streamer: records its arguments and plays the
    browser's stream as streamlit-webrtc reports it: ``on_change`` when its state changed,
    and, while it plays, a video thread that runs ``video`` (if set) and then ends the stream
    (``on_video_ended``, as when the browser goes away), so that the page's live loop, and
    with it the script run, ends."""

    def __init__(self):
        self.calls: list[dict] = []
        self.playing = self.signalling = False
        self.video = None
        self.seen = SimpleNamespace(playing=False, signalling=False)
        self.threads: list[threading.Thread] = []

    def __call__(self, key, **kwargs):
        from streamlit import session_state

        self.calls.append({"key": key, **kwargs})
        state = SimpleNamespace(playing=self.playing, signalling=self.signalling)
        session_state[key] = context = SimpleNamespace(state=state)
        if state != self.seen:
            self.seen = state
            kwargs["on_change"]()
        if state.playing or state.signalling:
            # streamlit-webrtc calls on_change before the script runs, and so the page binds
            # on_video_ended to the run it started; here on_change came late: bound anew.
            ended = functools.partial(kwargs["on_video_ended"].func, session_state["webcam_session"].run)

            def stream(video=self.video, ended=ended):
                if video:
                    video()
                time.sleep(1.5)  # the page redraws its numbers at least once meanwhile
                ended()
            self.threads.append(threading.Thread(target=stream, daemon=True))
            self.threads[-1].start()
        return context

    @property
    def last(self) -> dict:
        return self.calls[-1]


@pytest.fixture
def streamer(monkeypatch) -> FakeStreamer:
    import sys

    if str(ROOT) not in sys.path:  # `from pages import ...`, as the pages themselves do
        sys.path.insert(0, str(ROOT))
    from pages._webrtc import webrtc

    fake = FakeStreamer()
    monkeypatch.setattr(webrtc(), "webrtc_streamer", fake)
    return fake
