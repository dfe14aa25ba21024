"""Spoken announcements on the Image page, through AppTest with the real speech stack."""

from __future__ import annotations

import threading
import time

import miniaudio
import numpy as np
import pytest
from streamlit.testing.v1.local_script_runner import LocalScriptRunner

from emotion import speech
from test_app import analysed, app_model, image_page, upload  # noqa: F401 - app_model: a fixture


def wait_for_audio(at, seconds: float = 60):
    """Rerun the page until the announcer's worker has delivered its clip."""
    deadline = time.monotonic() + seconds
    while not at.get("audio") and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    return at.get("audio")


def decoded(media, player) -> np.ndarray:
    clip = media[player.proto.url.rsplit("/", 1)[-1].split(".")[0]]
    return np.asarray(miniaudio.decode(clip, output_format=miniaudio.SampleFormat.FLOAT32, nchannels=1).samples)


@pytest.fixture
def timers(monkeypatch) -> list[list[float]]:
    """Per script run, the intervals of the rerun timers it asked the browser to start.

    A fragment with ``run_every`` sends the browser an ``auto_rerun`` message on each run
    that draws it; the browser then asks for a rerun at that interval until the next
    full run leaves the fragment out. Recorded from the runner's real outgoing messages."""
    runs: list[list[float]] = []
    original = LocalScriptRunner.run

    def run(self, *args, **kwargs):
        tree = original(self, *args, **kwargs)
        runs.append([msg.auto_rerun.interval for msg in self.forward_msgs() if msg.HasField("auto_rerun")])
        return tree

    monkeypatch.setattr(LocalScriptRunner, "run", run)
    return runs


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network for Google's voice (a closed proxy port) and no espeak-ng or lame on PATH."""
    monkeypatch.setattr(speech, "_gtts_down_until", 0.0)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))


def test_voice_on_plays_the_sentence_after_an_analysis(media):
    at = image_page()
    at.toggle(key="voice_on").set_value(True).run()
    at = analysed(at, [upload("fer_justin.jpg")])
    face_label = at.dataframe[0].value["label"].iloc[0]
    players = wait_for_audio(at)
    assert len(players) == 1, "one clip for one analysis"
    assert not at.exception
    caption = next(c.value for c in at.caption if "voice:" in c.value)
    assert "You look" in caption
    assert any(source in caption for source in ("cached clip", "Google TTS", "offline"))
    samples = decoded(media, players[0])
    assert samples.size / 22050 > 0.5 and np.sqrt(np.mean(samples ** 2)) > 0.01, "a real, audible clip"
    assert face_label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_voice_off_plays_nothing():
    at = analysed(image_page(), [upload("fer_justin.jpg")])
    time.sleep(1)
    at.run()
    assert not at.get("audio") and not at.exception


def test_two_faces_speak_offline_with_one_plain_status(offline, media):
    """After README command 1 alone (no espeak-ng) and no network, a two-face photo is still said."""
    at = image_page()
    at.toggle(key="voice_on").set_value(True).run()
    at = analysed(at, [upload("deepface_couple.jpg")])
    labels = list(at.dataframe[0].value["label"])
    assert len(labels) == 2
    players = wait_for_audio(at)
    assert len(players) == 1 and not at.exception
    sentence = speech.sentence_for(labels)
    assert sentence.startswith("Two ") and players[0].proto.alt.endswith(sentence)
    voice_lines = [c.value for c in at.caption if "voice:" in c.value]
    assert voice_lines == [f':material/volume_up: "{sentence}" — voice: built-in (offline)']
    assert not at.warning, [w.value for w in at.warning]  # nothing to warn of: the voice works
    samples = decoded(media, players[0])
    assert samples.size / 22050 > 1.0 and 20 * np.log10(np.sqrt(np.mean(samples ** 2))) > -40


def test_a_voice_that_cannot_speak_says_so_once_in_one_line(offline, monkeypatch, tmp_path):
    # An install that lost its word clips, offline: Google, espeak-ng and the built-in voice all fail.
    monkeypatch.setattr(speech, "WORDS_DIR", tmp_path / "no-words")
    at = image_page()
    at.toggle(key="voice_on").set_value(True).run()
    at = analysed(at, [upload("deepface_couple.jpg")])
    deadline = time.monotonic() + 30
    while not at.warning and time.monotonic() < deadline:
        time.sleep(0.3)
        at.run()
    assert [w.value for w in at.warning] == [
        "Voice unavailable: no connection to Google's voice; espeak-ng is not installed; "
        "the built-in voice has no word \"two\"."]
    at.run()
    assert len(at.warning) == 1 and not at.get("audio") and not at.exception


def test_the_voice_polls_only_while_a_clip_is_being_made(timers):
    """An idle Image tab must not rerun on a timer: each run costs the server CPU."""
    release = threading.Event()

    def held(text, lang):  # the real voice chain, held until the test lets it finish
        release.wait(30)
        return speech.synthesize(text, lang)

    at = image_page()
    at.run()
    assert timers[-1] == [], "voice off, nothing uploaded: no timer"
    at.session_state["voice_announcer"] = speech.Announcer(synthesize=held)
    at.toggle(key="voice_on").set_value(True).run()
    at.run()
    assert timers[-1] == [], "voice on, nothing to say: no timer"
    at = analysed(at, [upload("fer_justin.jpg")])
    assert timers[-1] == [0.5], "a sentence is being made: the player looks for it"
    assert any("Preparing the voice" in c.value for c in at.caption) and not at.get("audio")
    at.run()
    assert timers[-1] == [0.5], "still being made"
    release.set()
    players = wait_for_audio(at)
    assert len(players) == 1 and not at.exception
    assert timers[-1] == [], "the clip is out: polling stops"
    for _ in range(2):  # later runs (another widget, a resize) show the same clip, still no timer
        at.run()
        assert timers[-1] == [] and len(at.get("audio")) == 1
        assert at.get("audio")[0].proto.alt == players[0].proto.alt
