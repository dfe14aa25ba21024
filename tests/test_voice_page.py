"""Spoken announcements on the Image page, through AppTest with the real speech stack."""

from __future__ import annotations

import time

import miniaudio
import numpy as np

from test_app import analysed, app_model, image_page, media, upload  # noqa: F401 - fixtures


def wait_for_audio(at, seconds: float = 60):
    """Rerun the page until the announcer's worker has delivered its clip."""
    deadline = time.monotonic() + seconds
    while not at.get("audio") and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    return at.get("audio")


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
    clip = media[players[0].proto.url.rsplit("/", 1)[-1].split(".")[0]]
    decoded = miniaudio.decode(clip, output_format=miniaudio.SampleFormat.FLOAT32)
    samples = np.asarray(decoded.samples)
    assert decoded.duration > 0.5 and np.sqrt(np.mean(samples ** 2)) > 0.01, "a real, audible clip"
    assert face_label in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def test_voice_off_plays_nothing():
    at = analysed(image_page(), [upload("fer_justin.jpg")])
    time.sleep(1)
    at.run()
    assert not at.get("audio") and not at.exception
