"""The Webcam page end to end: a real Streamlit server, Debian's Chromium, WebRTC on localhost.

Chromium's fake camera plays a real clip (``../shared/data/video/fer_woman2.mp4``,
converted to ``.y4m`` here); the page sends it over WebRTC to the server, which
boxes and labels the face on every frame and sends the video back. The test reads
the page's live numbers, grabs a frame of the returned video and checks that the
box is drawn where the face is. The grabbed frame, a screenshot of the page and the
figures measured (frames per second end to end) are kept in ``test-artifacts/``.

It is slow on a small machine (TensorFlow, Chromium, VP8 both ways): the waits are
long. Playwright's Python package drives Debian's Chromium (``/usr/bin/chromium``,
installed by ``.ci/run``); no browser is downloaded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import time
from pathlib import Path

import cv2
import miniaudio
import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from emotion import BlazeFaceDetector
from emotion.speech import ADJECTIVES

from _server import ARTIFACTS, AppServer, serving  # tests/_server.py: pytest puts tests/ on sys.path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "data" / "video" / "fer_woman2.mp4"
CHROMIUM = Path("/usr/bin/chromium")
SIZE = (640, 480)        # the fake camera's frames; the clip (596x336) is letterboxed into them
CAMERA_FPS = 30
CLIP_FRAMES = 150        # five seconds, looped by Chromium
STARTUP_S = 300          # server start (TensorFlow import) on a busy two-core machine
WAIT_S = 150             # for frames to come back after Start
STALL_S = 30             # frames that stop coming for this long: the run has stalled
CLICK_TAKES_S = 20       # a click on Start or a page link shows its effect within this, or was lost:
                         # every click is made once, never retried (a lost click fails the test)
WATCH_VOICE_S = 60       # for the first spoken sentence after the video starts
COMPONENT = 'iframe[title="streamlit_webrtc.component.webrtc_streamer"]'
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--mute-audio",
]
FAKE_CAMERA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
METRICS_JS = """() => Object.fromEntries([...document.querySelectorAll('[data-testid="stMetric"]')]
    .filter(m => !m.closest('[data-stale="true"]'))  // left over from an earlier script run
    .map(m => [m.querySelector('[data-testid="stMetricLabel"]').innerText.trim(),
               m.querySelector('[data-testid="stMetricValue"]').innerText.trim()]))"""
GRAB_JS = """() => { const v = document.querySelector('video');
    if (!v || !v.videoWidth) return null;
    const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
    c.getContext('2d').drawImage(v, 0, 0); return c.toDataURL('image/png'); }"""
# Every audio element's playback in the page, as it happens (media events do not bubble: captured).
AUDIO_EVENTS_JS = """window.__audio = [];
for (const type of ["play", "playing", "ended", "pause", "error", "emptied"]) document.addEventListener(type, (e) => {
    if (e.target.tagName !== "AUDIO") return;
    window.__audio.push({type, at: performance.now(), label: e.target.getAttribute("aria-label"),
                         src: e.target.currentSrc, time: e.target.currentTime, duration: e.target.duration});
}, true);"""
AUDIO_STATE_JS = """[...document.querySelectorAll('audio')].map(a => ({label: a.getAttribute('aria-label'),
    autoplay: a.autoplay, paused: a.paused, readyState: a.readyState, error: a.error && a.error.code,
    time: a.currentTime, src: a.currentSrc}))"""
BROWSER_FPS_JS = """async (seconds) => { const v = document.querySelector('video');
    const q0 = v.getVideoPlaybackQuality(), t0 = performance.now();
    await new Promise(r => setTimeout(r, seconds * 1000));
    const q1 = v.getVideoPlaybackQuality();
    return {fps: (q1.totalVideoFrames - q0.totalVideoFrames) * 1000 / (performance.now() - t0),
            dropped: q1.droppedVideoFrames - q0.droppedVideoFrames, width: v.videoWidth, height: v.videoHeight}; }"""


# --- helpers ----------------------------------------------------------------------------


def letterboxed_frames(clip: Path, count: int = CLIP_FRAMES, size: tuple[int, int] = SIZE) -> np.ndarray:
    """The clip's first ``count`` frames, centred on black at ``size``, RGB (N, H, W, 3)."""
    capture = cv2.VideoCapture(str(clip))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        height, width = bgr.shape[:2]
        scale = min(size[0] / width, size[1] / height, 1.0)
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(width * scale) // 2 * 2, round(height * scale) // 2 * 2))
            height, width = bgr.shape[:2]
        canvas = np.zeros((size[1], size[0], 3), np.uint8)
        top, left = (size[1] - height) // 2, (size[0] - width) // 2
        canvas[top:top + height, left:left + width] = bgr
        frames.append(cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        pytest.fail(f"no frames could be read from {clip}", pytrace=False)
    return np.stack(frames)


def write_y4m(frames: np.ndarray, path: Path, fps: int = CAMERA_FPS) -> Path:
    """RGB frames as a YUV4MPEG2 file (I420), the format of Chromium's fake camera file."""
    height, width = frames.shape[1:3]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def threads_down_to(server: Server, limit: int, timeout: float = 150.0) -> int:
    """The server's thread count once it is at most ``limit`` (or when ``timeout`` runs out).

    A closed tab is noticed late: WebRTC's consent checks fail after about 30 s."""
    deadline = time.monotonic() + timeout
    while (count := server.threads()) > limit and time.monotonic() < deadline:
        time.sleep(1)
    return count


class Server(AppServer):
    """The app's server started as README.md starts it (tests/_server.py), with the shipped model."""

    def __init__(self, model: Path, log: Path):
        super().__init__(log, env={"FACEMOOD_MODEL": str(model)})


def launch(playwright, camera_flags: list[str]):
    """Headless Debian Chromium with these camera flags (Playwright drives it; nothing is downloaded)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install chromium; "
                    ".ci/run does this)", pytrace=False)
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_FLAGS + camera_flags)


class WebcamPage:
    """The Webcam page in a browser tab, and what it shows."""

    def __init__(self, browser, server: Server, init_script: str | None = None):
        self.server = server
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        if init_script:
            self.page.add_init_script(init_script)
        self.page.set_default_timeout(WAIT_S * 1000)
        self.open()

    def open(self) -> None:
        self.page.goto(f"{self.server.url}/webcam", timeout=STARTUP_S * 1000)
        self.page.get_by_role("heading", name="Live emotions from your webcam").wait_for()
        self.component.get_by_role("button", name="Start").wait_for()

    @property
    def component(self):
        return self.page.frame_locator(COMPONENT)

    def video_frame(self):
        """The component's frame (for scripts that read its video element)."""
        for frame in self.page.frames:
            if "streamlit_webrtc" in frame.url:
                return frame
        raise AssertionError("the WebRTC component is not on the page")

    def metrics(self) -> dict[str, str]:
        return self.page.evaluate(METRICS_JS)

    def number(self, label: str) -> int:
        value = self.metrics().get(label, "")
        return int(value.replace(",", "")) if value.replace(",", "").isdigit() else -1

    def start(self, frames: int = 30) -> dict[str, str]:
        """Press Start, once: no retries. Wait until this run (the count restarts) has processed
        ``frames`` frames; a click that changes nothing, or a run that stalls, fails the test."""
        before = self.number("Frames processed")
        start = self.component.get_by_role("button", name="Start")
        start.click()
        try:
            self.component.get_by_role("button", name="Stop").wait_for(timeout=CLICK_TAKES_S * 1000)
        except PlaywrightTimeout:
            self.page.screenshot(path=str(ARTIFACTS / "webcam-e2e-start-lost.png"))
            raise AssertionError(f"Start was clicked once and the video did not start in {CLICK_TAKES_S} s "
                                 f"(a lost click): {self.metrics()}\n{self.server.tail()}") from None
        deadline = time.monotonic() + WAIT_S
        progress_at, last, restarted = time.monotonic(), -1, before <= 0
        while time.monotonic() < deadline:
            processed = self.number("Frames processed")
            restarted = restarted or 0 <= processed < before
            if restarted and processed >= frames:
                # And the page says the video is live: the server has heard from the browser
                # that it plays. The component's last report of the start-up is then in, and a
                # click made now (Stop, a page link) is not overtaken by it.
                self.page.get_by_text("The video is live").wait_for(timeout=CLICK_TAKES_S * 1000)
                return self.metrics()
            if processed != last:
                last, progress_at = processed, time.monotonic()
            if restarted and processed > 0 and time.monotonic() - progress_at > STALL_S:
                break
            time.sleep(0.3)
        self.page.screenshot(path=str(ARTIFACTS / "webcam-e2e-stalled.png"))
        raise AssertionError(f"no {frames} processed frames after one Start: {self.metrics()}\n{self.server.tail()}")

    def go_home(self) -> None:
        """Leave for the Home page by its link in the sidebar, as a user does: one click, no retries."""
        heading = self.page.get_by_role("heading", name="Live emotions from your webcam")
        self.page.get_by_role("link", name="Home").click()
        try:
            heading.wait_for(state="detached", timeout=CLICK_TAKES_S * 1000)
        except PlaywrightTimeout:
            raise AssertionError(f"the Home link was clicked once and the page stayed (a lost click)\n"
                                 f"{self.server.tail()}") from None

    def stop(self) -> None:
        self.component.get_by_role("button", name="Stop").click()
        self.component.get_by_role("button", name="Start").wait_for()

    def grab(self) -> np.ndarray:
        """The returned video's current frame at its own size, RGB."""
        data = self.video_frame().evaluate(GRAB_JS)
        assert data, "the returned video has no picture"
        png = base64.b64decode(data.split(",", 1)[1])
        return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@contextlib.contextmanager
def webcam_tab(browser, server: Server, failed_shot: str, init_script: str | None = None):
    """A Webcam page in a new tab, closed afterwards; a failure leaves a screenshot named ``failed_shot``."""
    webcam = WebcamPage(browser, server, init_script)
    try:
        yield webcam
    except BaseException:
        webcam.page.screenshot(path=str(ARTIFACTS / failed_shot))
        raise
    finally:
        webcam.page.close()


def annotation_check(grabbed: np.ndarray, references: np.ndarray) -> dict:
    """Where the grabbed (annotated, mirrored) frame differs from the clip frame it shows.

    The closest clip frame (mirrored as the page shows it by default) is found; the
    pixels that differ a lot from it are the box and label drawn by the server. Returns
    the face box found in that clip frame, how many pixels differ at the face (box and
    label band above it) and overall, and the extent of those that differ.
    """
    if grabbed.shape[:2] != references.shape[1:3]:
        grabbed = cv2.resize(grabbed, (references.shape[2], references.shape[1]), interpolation=cv2.INTER_AREA)
    mirrored = references[:, :, ::-1]
    small = lambda images: images[..., ::8, ::8, :].astype(np.int16)  # noqa: E731
    distances = np.abs(small(mirrored) - small(grabbed)[None]).mean(axis=(1, 2, 3))
    best = int(np.argmin(distances))
    reference = mirrored[best]
    boxes = BlazeFaceDetector().detect(reference)  # the detector the page uses, on the whole frame
    assert len(boxes), "no face in the clip frame the video shows"
    x, y, w, h = (int(v) for v in boxes[0])
    difference = np.abs(grabbed.astype(np.int16) - reference.astype(np.int16)).max(axis=2)
    changed = cv2.morphologyEx((difference > 70).astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    # The face, grown a little (live boxes are smoothed and sized a little differently), with
    # the label band above it and room for a label wider than the box.
    region = np.zeros_like(changed)
    region[max(y - round(0.6 * h), 0):y + round(1.25 * h), max(x - round(0.25 * w), 0):x + round(1.6 * w)] = 1
    ys, xs = np.nonzero(changed * region)
    extent = [int(np.percentile(xs, 1)), int(np.percentile(ys, 1)), int(np.percentile(xs, 99)),
              int(np.percentile(ys, 99))] if len(xs) else None
    return {"clip_frame": best, "match_distance": round(float(distances[best]), 2), "face_box": [x, y, w, h],
            "changed": int(changed.sum()), "changed_at_face": int((changed * region).sum()),
            "changed_extent": extent}


def surrounds(extent, box, margin: float = 0.1) -> bool:
    """Whether the drawn marks (x0, y0, x1, y1) enclose the face box (shrunk by ``margin``)."""
    x, y, w, h = box
    return (extent is not None and extent[0] <= x + margin * w and extent[1] <= y + margin * h
            and extent[2] >= x + (1 - margin) * w and extent[3] >= y + (1 - margin) * h)


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip_frames() -> np.ndarray:
    if not CLIP.is_file():
        pytest.fail(f"test clip missing: {CLIP} (the shared data belongs at ../shared/data)", pytrace=False)
    return letterboxed_frames(CLIP)


@pytest.fixture(scope="module")
def camera_file(clip_frames, tmp_path_factory) -> Path:
    return write_y4m(clip_frames, tmp_path_factory.mktemp("camera") / "fer_woman2.y4m")


@pytest.fixture(scope="module")
def server(test_model, tmp_path_factory):
    with serving(Server(test_model, tmp_path_factory.mktemp("server") / "streamlit.log"), "webcam-e2e-server.log") as app:
        yield app


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright, camera_file):
    """Chromium whose camera plays the clip."""
    browser = launch(playwright, FAKE_CAMERA + [f"--use-file-for-fake-video-capture={camera_file}"])
    try:
        yield browser
    finally:
        browser.close()


# --- tests ------------------------------------------------------------------------------


def test_y4m_file_holds_the_clip_as_i420(clip_frames, camera_file):
    header, _, rest = camera_file.read_bytes().partition(b"\n")
    assert header == f"YUV4MPEG2 W{SIZE[0]} H{SIZE[1]} F{CAMERA_FPS}:1 Ip A1:1 C420jpeg".encode()
    frame_bytes = len(b"FRAME\n") + SIZE[0] * SIZE[1] * 3 // 2
    assert len(rest) == len(clip_frames) * frame_bytes == CLIP_FRAMES * frame_bytes
    first = np.frombuffer(rest[6:frame_bytes], np.uint8).reshape(SIZE[1] * 3 // 2, SIZE[0])
    back = cv2.cvtColor(first, cv2.COLOR_YUV2RGB_I420)
    assert np.abs(back.astype(int) - clip_frames[0].astype(int)).mean() < 4


def test_live_video_comes_back_with_the_face_boxed_and_labelled(server, browser, clip_frames):
    with webcam_tab(browser, server, "webcam-e2e-failed.png") as webcam:
        start_hint = webcam.page.get_by_text("Press Start and allow the camera.")
        assert start_hint.count() == 1
        # A camera is there and allowed: the page raises no camera problem.
        assert not webcam.page.get_by_role("button", name="Use snapshot mode instead").count()
        webcam.start(frames=30)
        assert start_hint.count() == 0  # not under a running video
        # Over the next stretch of video (the first frames, while the codecs settle, aside):
        # frames per second end to end (annotated frames the server made, frames the browser
        # showed), and the share of frames in which the face was found.
        before = {label: webcam.number(label) for label in ("Frames processed", "Frames with a face")}
        began = time.monotonic()
        browser_side = webcam.video_frame().evaluate(BROWSER_FPS_JS, 10)
        after = {label: webcam.number(label) for label in before}
        processed = after["Frames processed"] - before["Frames processed"]
        made = processed / (time.monotonic() - began)
        with_face = after["Frames with a face"] - before["Frames with a face"]

        grabbed = webcam.grab()
        cv2.imwrite(str(ARTIFACTS / "webcam-e2e-frame.png"), cv2.cvtColor(grabbed, cv2.COLOR_RGB2BGR))
        webcam.page.locator(COMPONENT).screenshot(path=str(ARTIFACTS / "webcam-e2e-video.png"))
        webcam.page.screenshot(path=str(ARTIFACTS / "webcam-e2e-page.png"))
        check = annotation_check(grabbed, clip_frames)
        analysis = re.search(r"([\d.]+) ms of analysis per frame", webcam.page.inner_text("body"))
        figures = {"annotated_fps": round(made, 1), "browser_fps": round(browser_side["fps"], 1),
                   "frames_in_window": processed, "frames_with_a_face_in_window": with_face,
                   "analysis_ms_per_frame": float(analysis.group(1)) if analysis else None,
                   "browser_dropped": browser_side["dropped"], "page": webcam.metrics(),
                   "video_size": [browser_side["width"], browser_side["height"]], "annotation": check,
                   "camera_fps": CAMERA_FPS, "cpu_cores": os.cpu_count()}
        (ARTIFACTS / "webcam-e2e.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures, indent=2))

        assert processed >= 10 and with_face >= 0.8 * processed, figures
        assert webcam.page.get_by_text(re.compile(r"Face #\d+: ")).count() >= 1, figures
        # The last minute's chart names all seven emotions in its legend, inside the chart.
        from test_pages_e2e import CHARTS_JS  # the pages' browser test reads charts the same way

        history = [c for c in webcam.page.evaluate(CHARTS_JS) if c["legend"]]
        assert len(history) == 1 and sorted(label["text"] for label in history[0]["legend"]) == sorted(
            ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]), history
        box = history[0]["svg"]
        assert all(label["bottom"] <= box["bottom"] + 1 and label["right"] <= box["right"] + 1
                   for label in history[0]["legend"]), history
        assert [browser_side["width"], browser_side["height"]] == list(SIZE)
        assert check["match_distance"] < 20, check  # the returned video is the clip
        # The box is drawn where the face is: what differs from the clip frame surrounds the
        # face, and nearly all of it is at the face (box and label), not elsewhere.
        assert check["changed_at_face"] >= 0.85 * check["changed"] and check["changed"] > 500, check
        assert surrounds(check["changed_extent"], check["face_box"]), check
        assert made > 1 and browser_side["fps"] > 1, figures
        webcam.stop()


def test_voice_says_the_live_emotion_while_the_video_runs(server, browser):
    """Voice on, video on: a sentence for the face's emotion plays in the page, to its end,
    while the video keeps coming back; it is a real, audible clip; sentences do not repeat."""
    with webcam_tab(browser, server, "webcam-e2e-voice-failed.png", init_script=AUDIO_EVENTS_JS) as webcam:
        webcam.page.get_by_text("Say the emotions out loud").click()  # a click: the browser lets the page play sound
        webcam.page.get_by_text("Only the sentence's text").wait_for()  # the rerun with voice on is done
        webcam.component.get_by_role("button", name="Start").wait_for()
        pressed_at = webcam.page.evaluate("performance.now()")  # the page's clock, as the audio events'
        webcam.start(frames=30)
        began, shown_labels, played = time.monotonic(), set(), None
        while time.monotonic() - began < WATCH_VOICE_S:
            shown_labels.update(re.findall(r"Face #\d+: (\w+)", webcam.page.inner_text("body")))
            events = webcam.page.evaluate("window.__audio")
            if played is None and any(e["type"] == "playing" for e in events):
                played = time.monotonic() - began
                # While the clip plays, the video keeps coming back.
                during = webcam.video_frame().evaluate(BROWSER_FPS_JS, 1.0)
            if played is not None and time.monotonic() - began > played + 8:
                break  # a few seconds more, to see whether anything repeats
            time.sleep(0.3)
        events = webcam.page.evaluate("window.__audio")
        webcam.page.screenshot(path=str(ARTIFACTS / "webcam-e2e-voice.png"))
        assert not webcam.page.locator('[data-testid="stException"]').count()
        starts = [e for e in events if e["type"] == "playing"]
        # Said on failure: each audio element's state (autoplay refused, never loaded, or replaced).
        players = webcam.page.evaluate(AUDIO_STATE_JS)
        assert starts, f"no clip played in {WATCH_VOICE_S} s of video: {events}\naudio elements: {players}\n{server.tail()}"

        first = starts[0]
        sentence = first["label"].split(": ", 1)[1]
        spoken = {f"You look {word}": label for label, word in ADJECTIVES.items()}
        assert sentence in spoken, first
        assert spoken[sentence] in shown_labels, (sentence, shown_labels)  # the emotion the page showed
        ended = [e for e in events if e["type"] == "ended" and e["label"] == first["label"]]
        assert ended and ended[0]["time"] > 0.5, events  # played to its end, not cut off at once
        assert during["fps"] > 5, during  # the video did not stall while the voice spoke
        webcam.page.get_by_text(f'"{sentence}"').first.wait_for()  # the caption says what was said

        clip = webcam.page.request.get(first["src"]).body()
        decoded = miniaudio.decode(clip, output_format=miniaudio.SampleFormat.FLOAT32)
        samples = np.asarray(decoded.samples)
        assert decoded.duration > 0.5 and np.sqrt(np.mean(samples ** 2)) > 0.01, "a real, audible clip"

        sentences = [e["label"].split(": ", 1)[1] for e in starts]
        assert all(a != b for a, b in zip(sentences, sentences[1:])), sentences  # never the same twice running
        gaps = [b["at"] - a["at"] for a, b in zip(starts, starts[1:])]
        assert all(gap >= 2500 for gap in gaps), gaps  # the cool-down holds (3 s, less timer slack)
        figures = {"first_clip_after_start_s": round((first["at"] - pressed_at) / 1000, 1), "sentences": sentences,
                   "clip_seconds": round(decoded.duration, 2), "video_fps_while_speaking": round(during["fps"], 1),
                   "labels_shown": sorted(shown_labels)}
        (ARTIFACTS / "webcam-e2e-voice.json").write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
        webcam.stop()


def test_start_stop_leaving_and_closing_leak_nothing_and_the_next_start_works(server, browser):
    """Every click (Start, Stop, the Home link) is made once and must take: no retries."""
    webcam = WebcamPage(browser, server)
    webcam.start(frames=20)
    webcam.stop()
    baseline = server.settled_threads()

    for _ in range(3):  # many start/stop cycles
        webcam.start(frames=15)
        webcam.stop()
    after_cycles = threads_down_to(server, baseline + 2, timeout=60)
    assert after_cycles <= baseline + 2, f"threads: {baseline} after one run, {after_cycles} after three more"

    # Leaving the page while the video runs stops the stream and its worker.
    webcam.start(frames=15)
    webcam.go_home()
    after_leaving = threads_down_to(server, baseline + 2, timeout=60)
    assert after_leaving <= baseline + 2, f"threads: {baseline} before, {after_leaving} after leaving the page"

    # The browser tab closing mid-stream: the server carries on and the next Start works.
    webcam.open()
    webcam.start(frames=15)
    webcam.page.close()
    webcam = WebcamPage(browser, server)
    try:
        shown = webcam.start(frames=15)
        assert webcam.number("Frames with a face") > 0, shown
        webcam.stop()
    finally:
        webcam.page.close()
    assert server.process.poll() is None
    final = threads_down_to(server, baseline + 2)
    assert final <= baseline + 2, f"threads: {baseline} at first, {final} after a tab closed mid-stream"


@pytest.mark.parametrize("camera_flags, says, plainly", [
    # allowed, but this machine has no camera
    (["--use-fake-ui-for-media-stream"], "NotFoundError", "No camera was found on this computer."),
    (["--use-fake-device-for-media-stream", "--deny-permission-prompts"], "NotAllowedError",
     "Camera permission was denied for this page."),
], ids=["no-camera", "permission-denied"])
def test_no_camera_or_a_denied_one_is_said_plainly_and_nothing_breaks(server, playwright, camera_flags, says,
                                                                      plainly):
    browser = launch(playwright, camera_flags)
    try:
        webcam = WebcamPage(browser, server)
        try:
            webcam.component.get_by_role("button", name="Start").click()
            webcam.component.get_by_text(says).wait_for()  # the browser's reason, in the video box
            # The page's own words, outside the video box, with snapshot mode offered right there.
            message = webcam.page.locator('[data-testid="stAlert"]').filter(has_text=plainly)
            message.wait_for()
            assert "Start" in message.inner_text()  # and what to do
            webcam.page.get_by_text("Camera not working?").click()
            webcam.page.get_by_text(says).first.wait_for()  # and what it means, with what to do
            assert webcam.page.get_by_text("Snapshot mode").count() >= 2
            assert not webcam.page.locator('[data-testid="stException"]').count()
            webcam.component.get_by_role("button", name="Start").wait_for()  # ready for another try
            webcam.page.screenshot(path=str(ARTIFACTS / f"webcam-e2e-{says}.png"))
            webcam.page.get_by_role("button", name="Use snapshot mode instead").click()
            webcam.page.locator('[data-testid="stCameraInput"]').wait_for()
            assert webcam.page.get_by_role("switch", name="Snapshot mode").is_checked()
            assert not webcam.page.locator('[data-testid="stException"]').count()
        finally:
            webcam.page.close()
    finally:
        browser.close()
    assert server.process.poll() is None
