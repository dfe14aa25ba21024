"""The Capture page end to end: a real Streamlit server, Debian's Chromium, WebRTC on localhost.

Chromium's fake camera plays a real clip (``../shared/data/video/fer_woman2.mp4`` as ``.y4m``,
made as the Webcam page's browser test makes it); the page sends the video to the server. With
the camera on and no Start, nothing is written; after Start the crops appear in the dataset
folder, as many as asked. Screenshots of the page (1280 and 390 px, light and dark, and one
while it captures) go to ``test-artifacts/``.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import pytest

from _server import CHROMIUM_FLAGS, AppServer, chromium_path
from conftest import ROOT, SHARED_DATA, require
from test_webcam_e2e import COMPONENT, FAKE_CAMERA, letterboxed_frames, write_y4m

ARTIFACTS = ROOT / "test-artifacts"
STARTUP_S = 300       # the server's first page on a busy two-core machine
CAMERA_S = 60         # for the camera's video to play after "Camera on"
CAPTURE_S = 120       # for the crops after Start
COUNT = 5
IDLE_JS = """() => document.querySelector('[data-testid="stApp"]')
    ?.getAttribute('data-test-script-state') === 'notRunning'"""
PLAYING_JS = """() => { const v = document.querySelector('video');
    return !!v && v.videoWidth > 0 && v.currentTime > 1; }"""


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory) -> Path:
    frames = letterboxed_frames(require(SHARED_DATA / "video" / "fer_woman2.mp4"), count=90)
    return write_y4m(frames, tmp_path_factory.mktemp("camera") / "fer_woman2.y4m")


@pytest.fixture(scope="module")
def allowed(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("capture-e2e")


@pytest.fixture(scope="module")
def server(allowed, tmp_path_factory):
    app = AppServer(tmp_path_factory.mktemp("capture-server") / "streamlit.log",
                    env={"FACEMOOD_DATA_DIRS": str(allowed)})
    try:
        yield app.wait_healthy()
    finally:
        app.stop()


@pytest.fixture(scope="module")
def browser(camera_file):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True,
            args=CHROMIUM_FLAGS + FAKE_CAMERA + [f"--use-file-for-fake-video-capture={camera_file}"])
        try:
            yield chromium
        finally:
            chromium.close()


def open_capture(browser, server, dataset: Path, width: int = 1280, theme: str = "light"):
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=theme)
    page = context.new_page()
    page.set_default_timeout(STARTUP_S * 1000)
    page.goto(f"{server.url}/capture", timeout=STARTUP_S * 1000)
    page.get_by_role("heading", name="Capture your own faces").wait_for()
    field = page.get_by_label("Dataset", exact=True)
    field.fill(str(dataset))
    field.press("Enter")
    page.locator("code", has_text=f"{dataset}/happy/").wait_for()  # the typed dataset is taken
    page.wait_for_function(IDLE_JS)
    return context, page


def screenshot(page, name: str) -> Path:
    """The whole page (Streamlit scrolls inside its main block: the window grows to fit it)."""
    width = page.viewport_size["width"]
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": width, "height": min(max(height + 40, 800), 9000)})
    page.wait_for_timeout(1000)
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": width, "height": 900})
    return path


def images(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.png")) if folder.is_dir() else []


def test_crops_are_saved_after_start_and_none_before(browser, server, allowed):
    dataset = allowed / "mine"
    context, page = open_capture(browser, server, dataset)
    try:
        count = page.get_by_label("Images to save")
        count.fill(str(COUNT))
        count.press("Enter")
        page.wait_for_function(IDLE_JS)
        component = page.frame_locator(COMPONENT)
        component.get_by_role("button", name="Camera on", exact=True).click()
        component.get_by_role("button", name="Camera off", exact=True).wait_for(timeout=CAMERA_S * 1000)
        video = next(frame for frame in page.frames if "streamlit_webrtc" in frame.url)
        video.wait_for_function(PLAYING_JS, timeout=CAMERA_S * 1000)
        time.sleep(3)  # the video runs, frames reach the server
        assert images(dataset / "happy") == [] and not dataset.exists(), "nothing is saved before Start"

        page.get_by_role("button", name="Start").click()
        deadline = time.monotonic() + CAPTURE_S
        while len(images(dataset / "happy")) < COUNT and time.monotonic() < deadline:
            time.sleep(0.5)
        page.get_by_text(f"Saved {COUNT} crops of").wait_for(timeout=30_000)
        saved = images(dataset / "happy")
        assert len(saved) == COUNT, f"{len(saved)} crops\n{server.tail()}"
        assert all(cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape == (48, 48) for f in saved)
        assert all(f.name.startswith("happy-") for f in saved)
        time.sleep(2)
        assert len(images(dataset / "happy")) == COUNT, "the count stops the capture"
        page.wait_for_function(IDLE_JS)
        screenshot(page, "capture-live-1280-light")
        component.get_by_role("button", name="Camera off", exact=True).click()
        component.get_by_role("button", name="Camera on", exact=True).wait_for()
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "capture-e2e-failed.png"))
        raise
    finally:
        context.close()


@pytest.mark.parametrize("width", (1280, 390))
@pytest.mark.parametrize("theme", ("light", "dark"))
def test_screenshots(browser, server, allowed, width, theme):
    """The page with a dataset that has crops, at both widths and themes; nothing scrolls sideways."""
    context, page = open_capture(browser, server, allowed / "mine", width, theme)
    try:
        assert not page.locator('[data-testid="stException"]').count()
        main = page.evaluate("""() => { const m = document.querySelector('[data-testid="stMain"]');
                                        return [m.scrollWidth, m.clientWidth]; }""")
        assert main[0] <= main[1], f"the page scrolls sideways at {width} px: {main}"
        screenshot(page, f"capture-{width}-{theme}")
    finally:
        context.close()
