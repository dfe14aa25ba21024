"""The Webcam page through streamlit.testing's AppTest, with the real model.

AppTest cannot hold a WebRTC connection, so most tests put a recording stand-in for
``webrtc_streamer`` in its place: it shows what the page asks of streamlit-webrtc
(ICE servers, the frame callback) and lets a test play Start and Stop. The live
video itself is tested in a real browser in test_webcam_e2e.py.
"""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import FACES_DIR, SHARED_DATA, app_page, require
from emotion.speech import ADJECTIVES, Announcer

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
TIMEOUT = 180

if str(ROOT) not in sys.path:  # `from pages import ...`, as the pages themselves do
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def model(app_model) -> Path:
    return app_model


def webcam_page(secrets: dict | None = None) -> AppTest:
    at = app_page("pages/webcam.py", secrets, TIMEOUT)
    assert at.title[0].value == "Live emotions from your webcam"
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def video_frame(index: int = 30) -> np.ndarray:
    capture = cv2.VideoCapture(str(require(SHARED_DATA / "video" / "fer_woman2.mp4")))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, bgr = capture.read()
    capture.release()
    assert ok
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# --- live mode --------------------------------------------------------------------------


def test_live_mode_asks_for_sendrecv_video_with_no_outside_ice_server(streamer, monkeypatch):
    monkeypatch.delenv("FACEMOOD_ICE_SERVERS", raising=False)
    at = webcam_page()
    call = streamer.last
    assert call["key"] == "webcam" and call["mode"].name == "SENDRECV"
    # Nothing outside is contacted by default: no STUN/TURN (streamlit-webrtc would pick Google's).
    assert call["rtc_configuration"] == {"iceServers": []}
    assert call["media_stream_constraints"]["audio"] is False
    assert call["async_processing"] is True
    session = at.session_state["webcam_session"]
    assert call["video_frame_callback"] == session.video_frame_callback
    assert call["on_video_ended"].func == session.end  # bound to the run it was given for
    assert not at.error and not at.warning
    assert metrics(at) == {"Frames processed": "0", "Frames with a face": "0", "Faces now": "0",
                           "Frames per second": "–"}


def test_ice_servers_come_from_the_environment(streamer, monkeypatch):
    servers = [{"urls": ["turn:turn.example.org:3478?transport=udp"], "username": "u", "credential": "p"},
               {"urls": "stun:stun.example.org:3478"}]
    monkeypatch.setenv("FACEMOOD_ICE_SERVERS", json.dumps(servers))
    webcam_page()
    assert streamer.last["rtc_configuration"] == {"iceServers": servers}


def test_ice_servers_come_from_secrets_first(streamer, monkeypatch):
    monkeypatch.setenv("FACEMOOD_ICE_SERVERS", json.dumps([{"urls": "stun:env.example.org"}]))
    secret = [{"urls": "turns:turn.example.org:5349", "username": "alice", "credential": "s3cret"}]
    webcam_page({"ice_servers": secret})
    assert streamer.last["rtc_configuration"] == {"iceServers": secret}


@pytest.mark.parametrize("value, says", [
    ("[{not json", "not valid JSON"),
    ('[{"username": "no urls"}]', "should be a list"),
    ('"stun:just-a-string"', "should be a list"),
])
def test_bad_ice_settings_warn_and_use_none(streamer, monkeypatch, value, says):
    monkeypatch.setenv("FACEMOOD_ICE_SERVERS", value)
    at = webcam_page()
    assert streamer.last["rtc_configuration"] == {"iceServers": []}
    assert len(at.warning) == 1 and "FACEMOOD_ICE_SERVERS" in at.warning[0].value and says in at.warning[0].value


def test_settings_reach_the_live_pipeline(streamer):
    at = webcam_page()
    session = at.session_state["webcam_session"]
    assert session.pipeline.settings.mirror and session.pipeline.settings.show_probs
    at.slider(key="webcam_min_face").set_value(25)
    at.slider(key="webcam_smoothing").set_value(0.3)
    at.checkbox(key="webcam_show_probs").uncheck()
    at.checkbox(key="webcam_mirror").uncheck().run()
    assert not at.exception
    settings = at.session_state["webcam_session"].pipeline.settings
    assert (settings.min_face, settings.smoothing, settings.show_probs, settings.mirror) == (0.25, 0.3, False, False)
    assert at.session_state["webcam_session"] is session  # the same session: the video keeps running


def test_the_panel_shows_what_the_video_thread_found(streamer):
    at = webcam_page()
    session = at.session_state["webcam_session"]
    streamer.signalling = True  # Start pressed
    at.run()
    assert session.run == 1 and not session.running  # the stand-in stream ended the run
    streamer.signalling, streamer.playing = False, True
    frames = [cv2.resize(video_frame(i), (640, 480)) for i in range(30, 40)]
    streamer.video = lambda: [session.process(frame) for frame in frames]  # what the video thread does
    at.run()
    assert session.run == 2  # playing after signalling: the same stream, but this one had ended
    assert not at.exception and not at.error
    shown = metrics(at)
    assert shown["Frames processed"] == "10" and int(shown["Frames with a face"]) >= 8
    assert shown["Faces now"] == "1" and shown["Frames per second"] != "–"
    assert any(m.value.startswith("**Face #1:") for m in at.markdown)
    assert at.get("vega_lite_chart"), "probability bars and the last-minute chart"

    streamer.playing = False  # Stop pressed: the last run stays on show
    at.run()
    assert any("Stopped. The last run" in c.value for c in at.caption)
    assert metrics(at)["Frames processed"] == "10" and metrics(at)["Frames per second"] == "–"


def test_a_start_that_never_gets_video_says_so_and_offers_snapshots(streamer):
    at = webcam_page()
    streamer.signalling = True
    at.run()
    streamer.signalling = False  # the browser gave up: no camera, or the connection failed
    at.run()
    assert len(at.error) == 1
    message = at.error[0].value
    assert "before any picture arrived" in message and "Snapshot mode" in message


def test_when_webrtc_cannot_start_the_page_says_so_and_snapshot_mode_still_works(monkeypatch):
    from pages._webrtc import webrtc

    def broken(*args, **kwargs):
        raise RuntimeError("WebRTC is not available in this browser session")

    monkeypatch.setattr(webrtc(), "webrtc_streamer", broken)
    at = webcam_page()
    assert len(at.error) == 1
    assert "Live video cannot start here (WebRTC is not available" in at.error[0].value
    assert "Snapshot mode" in at.error[0].value
    at.toggle(key="webcam_snapshot_mode").set_value(True).run()
    at.camera_input(key="snapshot").set_value(("shot.jpg", jpeg(video_frame()), "image/jpeg")).run()
    assert not at.exception and not at.error
    assert len(at.image) == 1


# --- snapshot mode ------------------------------------------------------------------------


def test_snapshot_mode_analyses_one_picture_like_a_live_frame(streamer):
    at = webcam_page()
    at.toggle(key="webcam_snapshot_mode").set_value(True).run()
    assert not at.exception and len(streamer.calls) == 1  # no live video in snapshot mode
    assert at.camera_input(key="snapshot").value is None
    at.camera_input(key="snapshot").set_value(("shot.jpg", jpeg(video_frame()), "image/jpeg")).run()
    assert not at.exception and not at.error
    assert len(at.image) == 1 and at.image[0].captions == ["1 face"]
    assert any(m.value.startswith("**Face #1:") for m in at.markdown)
    assert len(at.get("vega_lite_chart")) == 1


def test_snapshot_of_several_people(streamer):
    at = webcam_page()
    at.toggle(key="webcam_snapshot_mode").set_value(True).run()
    at.slider(key="webcam_min_face").set_value(5).run()
    group = np.asarray(Image.open(require(FACES_DIR / "deepface_couple.jpg")).convert("RGB"))
    at.camera_input(key="snapshot").set_value(("shot.jpg", jpeg(group), "image/jpeg")).run()
    assert not at.exception and not at.error
    assert at.image[0].captions == ["2 faces"]


def test_snapshot_and_the_image_page_give_the_same_faces_and_labels(streamer, tmp_path, monkeypatch):
    """One photo pipeline: a picture taken in snapshot mode reads as the same photo does on the
    Image page (same faces, in the same order, with the same labels and scores)."""
    from pages import _common

    picture = jpeg(np.asarray(Image.open(require(FACES_DIR / "aind_obamas4.jpg")).convert("RGB")))
    (tmp_path / "shot.jpg").write_bytes(picture)
    monkeypatch.setattr(_common, "SAMPLES_DIR", tmp_path)

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.switch_page("pages/image.py").run()
    at.selectbox(key="sample").set_value("shot.jpg").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    # The table's score is a percentage (0-100) or a fraction, as the page formats it; the snapshot
    # says "NN%".
    scale = 1 if table["score"].max() > 1 else 100
    on_image_page = [(label, f"{score * scale:.0f}%") for label, score in zip(table["label"], table["score"])]

    at = webcam_page()
    at.toggle(key="webcam_snapshot_mode").set_value(True).run()
    at.camera_input(key="snapshot").set_value(("shot.jpg", picture, "image/jpeg")).run()
    assert not at.exception and not at.error
    in_snapshot = [tuple(m.value.removeprefix("**Face #").split(": ", 1)[1].split("** ")) for m in at.markdown
                   if m.value.startswith("**Face #")]
    assert len(on_image_page) == 2 and at.image[0].captions == ["2 faces"]
    assert in_snapshot == on_image_page


def test_snapshot_without_a_face_and_a_broken_picture(streamer):
    at = webcam_page()
    at.toggle(key="webcam_snapshot_mode").set_value(True).run()
    at.camera_input(key="snapshot").set_value(("shot.jpg", jpeg(np.full((480, 640, 3), 8, np.uint8)),
                                                "image/jpeg")).run()
    assert not at.exception and not at.error
    assert any("No face in view" in i.value for i in at.info)
    at.camera_input(key="snapshot").set_value(("shot.jpg", b"\xff\xd8 not really a jpeg", "image/jpeg")).run()
    assert not at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value


# --- voice --------------------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand, for the announcer's debounce and lateness."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_for_clip(announcer, seq: int = 1, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while (announcer.latest() is None or announcer.latest().seq < seq) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert announcer.latest() is not None and announcer.latest().seq >= seq, announcer.status
    return announcer.latest()


def live_run(at, streamer, session, frames):
    """Start pressed, the video thread processing ``frames``: one script run of the live loop."""
    streamer.signalling = True
    at.run()
    streamer.signalling, streamer.playing = False, True
    for frame in frames:
        session.process(frame)


def test_voice_on_speaks_the_live_emotion_once_it_holds_and_plays_each_clip_once(streamer):
    at = webcam_page()
    clock = Clock()
    at.session_state["voice_announcer"] = announcer = Announcer(clock=clock)  # the page's own, on a hand clock
    at.toggle(key="voice_on").set_value(True).run()
    session = at.session_state["webcam_session"]
    assert session.listener == announcer.observe  # the video thread feeds the announcer

    frames = [cv2.resize(video_frame(i), (640, 480)) for i in range(30, 36)]
    live_run(at, streamer, session, frames[:3])
    assert announcer.latest() is None  # one moment is not yet "held"
    clock.now += 1.5
    for frame in frames[3:]:
        session.process(frame)
    delivered = wait_for_clip(announcer)
    label = session.stats.snapshot().faces[0].label
    assert delivered.clip.text == f"You look {ADJECTIVES[label]}"
    at.run()
    assert not at.exception and not at.error
    players = at.get("audio")
    assert len(players) == 1 and players[0].proto.autoplay
    assert players[0].proto.alt == f"Announcement 1: You look {ADJECTIVES[label]}"
    assert any(f'"You look {ADJECTIVES[label]}"' in c.value and "cached clip" in c.value for c in at.caption)

    at.run()  # another run (a setting, a redraw): the caption stays, the clip does not play again
    assert not at.get("audio") and any("You look" in c.value for c in at.caption)


def test_a_clip_that_comes_late_is_not_played(streamer):
    at = webcam_page()
    clock = Clock()
    at.session_state["voice_announcer"] = announcer = Announcer(clock=clock)
    at.toggle(key="voice_on").set_value(True).run()
    announcer.announce(["happy"])
    wait_for_clip(announcer)
    clock.now += 10  # the video has moved on since the sentence was asked for
    live_run(at, streamer, at.session_state["webcam_session"], [])
    at.run()
    assert not at.exception and not at.get("audio")


@pytest.mark.parametrize("late_between, heard_again", [(True, False), (False, True)])
def test_a_sentence_is_heard_again_only_when_the_announcer_asked_again(streamer, late_between, heard_again):
    """Happy, then (late or not at all) scared, then happy: a late clip skipped in between must not
    make the listener hear "happy" twice running; asked twice running (the face left and came
    back), it is said twice."""
    at = webcam_page()
    clock = Clock()
    at.session_state["voice_announcer"] = announcer = Announcer(clock=clock)
    at.toggle(key="voice_on").set_value(True).run()
    live_run(at, streamer, at.session_state["webcam_session"], [])
    asks = [["happy"], ["fear"], ["happy"]] if late_between else [["happy"], ["happy"]]
    heard = []
    for seq, labels in enumerate(asks, start=1):
        announcer.announce(labels)
        wait_for_clip(announcer, seq)
        if late_between and seq == 2:
            clock.now += 10  # the video moved on before this clip was ready
        at.run()
        assert not at.exception
        heard += [audio.proto.alt for audio in at.get("audio")]
    assert heard[0] == "Announcement 1: You look happy"
    assert heard[1:] == ([f"Announcement {len(asks)}: You look happy"] if heard_again else [])


def test_voice_off_leaves_the_video_alone(streamer):
    at = webcam_page()
    at.toggle(key="voice_on").set_value(True).run()
    assert at.session_state["webcam_session"].listener is not None
    at.toggle(key="voice_on").set_value(False).run()
    assert at.session_state["webcam_session"].listener is None and not at.get("audio")


def test_snapshot_mode_says_the_picture_with_voice_on(streamer):
    at = webcam_page()
    at.toggle(key="voice_on").set_value(True).run()
    at.toggle(key="webcam_snapshot_mode").set_value(True).run()
    at.camera_input(key="snapshot").set_value(("shot.jpg", jpeg(video_frame()), "image/jpeg")).run()
    deadline = time.monotonic() + 30
    while not at.get("audio") and time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()
    assert not at.exception and len(at.get("audio")) == 1
    assert any("You look" in c.value for c in at.caption)


def test_live_video_runs_the_fast_int8_twin_and_says_so(streamer):
    at = webcam_page()
    session = at.session_state["webcam_session"]
    assert session.classifier.runtime == "tflite-int8"  # the shipped model's twin, current on its card
    assert any("Model for live video: facemood-vgg, run by its int8 TFLite twin" in c.value for c in at.caption)
