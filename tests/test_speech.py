"""Spoken announcements: sentences, the voice chain, the announcer's thread and debounce.

Real parts throughout: gTTS really fails (no route to Google here, and a closed proxy
port where a test needs it to fail on any machine), espeak-ng and lame really run, the
built-in voice really decodes and joins its shipped word clips, and every clip is
decoded by an independent decoder (miniaudio). Only synthesis is swapped for a slow or
counting function where the test is about the announcer's timing.
"""

from __future__ import annotations

import itertools
import random
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emotion import speech
from emotion.labels import LABELS
from emotion.speech import (PHRASES, VOCABULARY, Announcer, Clip, SpeechUnavailable, cached_clip, clip_stem,
                            compose, compose_parts, render, sentence_for, sentence_tokens, synthesize, tokenize,
                            word_clip_path)

miniaudio = pytest.importorskip("miniaudio")

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def samples_of(path: Path, rate: int = 22050) -> np.ndarray:
    decoded = miniaudio.decode_file(str(path), output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1,
                                    sample_rate=rate)
    return np.frombuffer(decoded.samples, dtype=np.int16).astype(np.float64) / 32768.0


def loudness_dbfs(path: Path) -> tuple[float, float]:
    """(RMS loudness in dBFS, duration in seconds) of an MP3 or WAV file."""
    samples = samples_of(path)
    rms = float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0
    return 20 * np.log10(max(rms, 1e-10)), samples.size / 22050


@pytest.fixture
def google_untried(monkeypatch):
    # Each test meets gTTS's real failure itself, not an earlier test's back-off.
    monkeypatch.setattr(speech, "_gtts_down_until", 0.0)


@pytest.fixture
def offline(monkeypatch, tmp_path, google_untried):
    """As after README command 1 on a machine without network: gTTS fails, no espeak-ng or lame.

    A proxy on a closed local port makes gTTS fail for real on any machine, online or not."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "no-programs"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def fake_clip(text: str, lang: str) -> Clip:
    return Clip(Path("/nonexistent.mp3"), "cache", "audio/mpeg", text, lang)


def wait_for(predicate, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


# --- sentences ---------------------------------------------------------------------


def test_sentences():
    assert sentence_for(["happy"]) == "You look happy"
    assert sentence_for("fear") == "You look scared"
    assert sentence_for(["neutral"]) == "You look calm"
    assert sentence_for(["happy", "surprise"]) == "Two faces: happy and surprised"
    assert sentence_for(["angry", "sad", "disgust"]) == "Three faces: angry, sad and disgusted"
    assert sentence_for(["sad", "happy", "neutral", "fear"]) == "Four faces: sad, happy, calm and scared"
    assert sentence_for([]) is None
    assert sentence_for(["sad"], lang="fr") == "You look sad"  # English wording for every language


def test_alike_faces_are_counted_not_listed():
    assert sentence_for(["happy", "happy"]) == "Two happy faces"
    assert sentence_for(["neutral"] * 3) == "Three calm faces"
    assert sentence_for(["happy"] * 13) == "Thirteen happy faces"
    assert sentence_for(["sad"] * 21) == "Many sad faces"


def test_mixed_faces_give_counts_most_first_ties_left_to_right():
    assert sentence_for(["happy", "sad", "happy"]) == "Three faces: two happy, one sad"
    assert sentence_for(["sad", "happy", "happy"]) == "Three faces: two happy, one sad"
    assert sentence_for(["fear", "sad", "sad", "happy", "happy", "happy"]) == \
        "Six faces: three happy, two sad, one scared"
    assert sentence_for(["angry", "surprise", "surprise", "angry", "neutral"]) == \
        "Five faces: two angry, two surprised, one calm"
    assert sentence_for(["happy"] * 22 + ["sad"]) == "Many faces: many happy, one sad"


def every_face_list(most: int = 6):
    """Every list of up to three faces, and a fixed random sample of four to ``most``."""
    lists = [list(combo) for n in (1, 2, 3) for combo in itertools.product(LABELS, repeat=n)]
    chance = random.Random(7)
    lists += [[chance.choice(LABELS) for _ in range(n)] for n in range(4, most + 1) for _ in range(150)]
    return lists


def test_the_text_reads_back_into_the_grammars_words_and_every_word_is_in_the_vocabulary():
    vocabulary = set(VOCABULARY)
    for labels in every_face_list(most=25):
        parts = sentence_tokens(labels)
        text = render(parts)
        assert tokenize(text) == parts, text
        words = {part for part in parts if part not in speech.PAUSES}
        assert words <= vocabulary, f"{text}: {words - vocabulary} has no word clip"
        assert text == sentence_for(labels) and text[0].isupper() and "  " not in text


def test_a_sentence_never_names_one_emotion_twice():
    for labels in every_face_list():
        words = [part for part in sentence_tokens(labels) if part in speech.ADJECTIVES.values()]
        assert len(words) == len(set(words)) == len(set(labels)), sentence_for(labels)


def test_clip_names_are_readable_and_keyed_by_language_and_text():
    stem = clip_stem("You look happy", "en")
    assert stem.startswith("en-you-look-happy-") and len(stem.rsplit("-", 1)[1]) == 8
    assert clip_stem("You look happy", "fr") != stem
    assert clip_stem("You look happy!", "en") != stem


# --- shipped clips -------------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
def test_every_default_sentence_has_a_shipped_clip_that_is_loud(label):
    clip = cached_clip(sentence_for([label]), "en")
    assert clip is not None, f"run python -m emotion.make_clips: no clip for {label}"
    assert clip.mime == "audio/mpeg" and clip.path.parent == speech.AUDIO_DIR
    assert clip.path.stat().st_size < 20_000
    dbfs, seconds = loudness_dbfs(clip.path)
    assert dbfs > -40, f"{clip.path.name} is near silence: {dbfs:.1f} dBFS"
    assert 0.4 < seconds < 5


@pytest.mark.parametrize("phrase", VOCABULARY + PHRASES)
def test_every_word_of_the_built_in_voice_has_a_small_loud_shipped_clip(phrase):
    path = word_clip_path(phrase)
    assert path.is_file(), f"run python -m emotion.make_clips: no clip for {phrase!r}"
    assert path.parent == speech.AUDIO_DIR / "words" and path.stat().st_size < 8_000
    dbfs, seconds = loudness_dbfs(path)
    assert dbfs > -40, f"{path.name} is near silence: {dbfs:.1f} dBFS"
    assert 0.2 < seconds < 2.5


@pytest.mark.parametrize("path", sorted(speech.AUDIO_DIR.glob("*.*")), ids=lambda p: p.name)
def test_every_clip_in_audio_files_decodes_and_is_loud(path):
    # Covers clips the cache added at run time too, not only the seven shipped ones.
    assert path.suffix in (".mp3", ".wav")
    dbfs, seconds = loudness_dbfs(path)
    assert dbfs > -40 and seconds > 0.4, f"{path.name}: {dbfs:.1f} dBFS, {seconds:.2f} s"


def test_shipped_clip_speaks_with_no_network_and_no_espeak(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng, lame or ffmpeg to be found
    calls = []

    def counting(text, lang, work, timeout):
        calls.append(text)
        raise AssertionError("a cache hit must not synthesize")

    clip = synthesize("You look happy", "en", engines=[("gtts", counting)])
    assert clip.source == "cache" and calls == []


# --- the voice chain ------------------------------------------------------------------


@needs_espeak
def test_gtts_fails_for_real_and_espeak_speaks(tmp_path, google_untried):
    started = time.monotonic()
    clip = synthesize("You look fine today", "en", cache_dir=tmp_path, timeout=2.0)
    if clip.source == "gtts":
        pytest.skip("Google TTS is reachable here; the fallback was not exercised")
    assert clip.source == "offline"
    assert clip.note and clip.note.startswith("gtts: ")  # why Google was skipped, for the UI
    assert time.monotonic() - started < 15
    assert clip.path.parent == tmp_path and clip.path.name.startswith("en-you-look-fine-today-")
    assert clip.mime == ("audio/mpeg" if shutil.which("lame") or shutil.which("ffmpeg") else "audio/wav")
    dbfs, seconds = loudness_dbfs(clip.path)
    assert dbfs > -40 and seconds > 0.4
    assert [p.name for p in tmp_path.iterdir()] == [clip.path.name]  # no temp files left behind


@needs_espeak
def test_cache_hit_does_no_synthesis(tmp_path, google_untried):
    calls = {"gtts": 0, "offline": 0}

    def counted(source, engine):
        def run(*args):
            calls[source] += 1
            return engine(*args)
        return source, run

    engines = [counted("gtts", speech.gtts_engine), counted("offline", speech.espeak_engine)]
    first = synthesize("Two faces: sad and calm", "en", cache_dir=tmp_path, timeout=2.0, engines=engines)
    assert first.source in ("offline", "gtts") and sum(calls.values()) >= 1
    before = dict(calls)
    again = synthesize("Two faces: sad and calm", "en", cache_dir=tmp_path, timeout=2.0, engines=engines)
    assert again.source == "cache" and again.path == first.path
    assert calls == before


@needs_espeak
def test_other_language_uses_its_espeak_voice_and_unknown_falls_back_to_english(tmp_path):
    # gTTS rejects "xx" itself; espeak has no "xx" voice and must fall back to English.
    for lang in ("fr", "xx"):
        clip = synthesize("You look happy", lang, cache_dir=tmp_path, timeout=1.0)
        assert clip.source == "offline" and clip.path.name.startswith(f"{lang}-you-look-happy-")
        assert loudness_dbfs(clip.path)[0] > -40


def test_no_voice_at_all_is_one_plain_line(offline, tmp_path):
    with pytest.raises(SpeechUnavailable) as raised:
        synthesize("You look lost", "en", cache_dir=tmp_path, timeout=1.0)
    assert str(raised.value) == ("no connection to Google's voice; espeak-ng is not installed; "
                                 "the built-in voice has no word \"lost\"")
    assert not any(tmp_path.rglob("*.mp3"))


# --- the built-in voice -------------------------------------------------------------------


def trimmed_word(phrase: str) -> np.ndarray:
    samples = samples_of(word_clip_path(phrase))
    loud = np.flatnonzero(np.abs(samples) > 0.02)
    return samples[loud[0]:loud[-1] + 1]


def best_match(whole: np.ndarray, part: np.ndarray, start: int) -> tuple[float, int]:
    """(normalised cross-correlation, offset) of ``part``'s best fit in ``whole`` from ``start`` on."""
    tail = whole[start:]
    corr = np.correlate(tail, part, mode="valid")
    energy = np.sqrt(np.convolve(tail**2, np.ones(part.size), mode="valid") * np.sum(part**2))
    ncc = corr / np.maximum(energy, 1e-9)
    at = int(np.argmax(ncc))
    return float(ncc[at]), start + at


def test_phrase_clips_win_over_their_words_and_pauses_stay():
    assert compose_parts("Two happy faces") == ["two", "happy faces"]
    assert compose_parts("You look calm") == ["you look", "calm"]
    assert compose_parts("Three faces: two happy, one sad") == \
        ["three", "faces", ":", "two", "happy", ",", "one", "sad"]
    with pytest.raises(SpeechUnavailable, match='no word "hello"'):
        compose_parts("Two faces: hello")


def test_the_composed_sentence_says_every_word_in_order_with_its_pauses(tmp_path):
    text = "Three faces: two happy, one sad"
    path = compose(text, tmp_path / "sentence.mp3")
    assert path.suffix == ".mp3" and path.stat().st_size < 20_000  # PyAV's LAME: small like the shipped clips
    whole = samples_of(path)
    rate = 22050
    position, found = 0, []
    for part in compose_parts(text):
        if part in speech.PAUSES:
            found.append(part)
            continue
        word = trimmed_word(part)
        score, at = best_match(whole, word, position)
        assert score > 0.9, f"{part!r} not found after {position / rate:.2f} s (best fit {score:.2f})"
        if found and found[-1] in speech.PAUSES:  # the pause before this word is real silence
            gap = whole[position:at]
            assert gap.size >= speech.PAUSES[found[-1]] * rate * 0.9
        found.append(part)
        position = at + word.size
    dbfs, seconds = loudness_dbfs(path)
    assert dbfs > -40 and 2.0 < seconds < 6.0
    assert np.abs(whole[int(seconds * rate) - int(0.05 * rate):]).max() < 0.05  # no word cut at the end


def test_every_sentence_speaks_after_install_alone(offline, tmp_path):
    """README command 1 and no network: every sentence the app says still comes out as sound."""
    chance = random.Random(3)
    lists = [[label] for label in LABELS] + [chance.sample(LABELS * 6, n) for n in range(2, 7) for _ in range(4)]
    lists += [["happy", "happy"], ["sad", "happy", "sad"], ["neutral"] * 13]
    for labels in lists:
        text = sentence_for(labels)
        clip = synthesize(text, "en", cache_dir=tmp_path, timeout=1.0)
        assert clip.source == "composed" and clip.mime == "audio/mpeg" and clip.text == text
        assert clip.note == "gtts: no connection to Google's voice; offline: espeak-ng is not installed"
        dbfs, seconds = loudness_dbfs(clip.path)
        assert dbfs > -40 and 0.8 < seconds < 8, f"{text}: {dbfs:.1f} dBFS, {seconds:.2f} s"
    # Kept apart from the sentence cache: Google's voice gets its chance once it is reachable.
    assert not any(tmp_path.glob("*.mp3")) and len(list((tmp_path / "composed").glob("*.mp3"))) == len(
        {sentence_for(labels) for labels in lists})
    # With the shipped folder, the one-face sentences are the shipped clips.
    assert synthesize("You look happy", "en", timeout=1.0).source == "cache"


def test_offline_announcer_speaks_each_sentence_with_one_plain_status(offline, tmp_path):
    with Announcer(cache_dir=tmp_path, gtts_timeout=1.0) as announcer:
        for n, labels in enumerate((["happy", "happy"], ["angry", "sad", "angry"], ["fear"] * 2 + ["neutral"] * 4),
                                   start=1):
            announcer.announce(labels)
            wait_for(lambda: announcer.latest() is not None and announcer.latest().seq == n, seconds=20)
            status = announcer.status
            assert status.source == "composed" and status.voice == "built-in (offline)"
            assert status.last_error is None
        assert [announcer.latest().clip.text] == ["Six faces: four calm, two scared"]


# --- announcer -------------------------------------------------------------------------


def test_announce_returns_at_once_while_synthesis_hangs():
    release, started = threading.Event(), threading.Event()

    def hanging(text, lang):
        started.set()
        release.wait(30)
        return fake_clip(text, lang)

    announcer = Announcer(synthesize=hanging)
    try:
        times = []
        for labels in (["happy"], ["sad"], ["angry", "fear"], "Hello", ["neutral"]):
            t0 = time.perf_counter()
            assert announcer.announce(labels)
            times.append(time.perf_counter() - t0)
            started.wait(5)  # from the second call on, the worker is stuck in synthesis
        assert started.is_set()
        assert max(times) < 0.01, f"announce took {max(times) * 1000:.2f} ms"
        t0 = time.perf_counter()
        assert announcer.close(timeout=0.2) is False  # the hung call keeps the thread busy...
        assert time.perf_counter() - t0 < 1  # ...but close does not wait for it
    finally:
        release.set()
    assert announcer.announce(["happy"]) is False  # closed: nothing is queued


def test_queue_keeps_only_the_newest_requests():
    release, started = threading.Event(), threading.Event()
    said = []

    def blocked(text, lang):
        started.set()
        release.wait(10)
        said.append(text)
        return fake_clip(text, lang)

    with Announcer(synthesize=blocked, maxsize=2) as announcer:
        announcer.announce("first")
        assert started.wait(5)
        for n in range(2, 11):
            announcer.announce(f"request {n}")
        assert announcer.pending() == ["request 9", "request 10"]
        assert announcer.status.pending == 2 and announcer.status.dropped == 7
        release.set()
        wait_for(lambda: len(said) == 3)
        wait_for(lambda: announcer.latest() is not None and announcer.latest().seq == 3)
    assert said == ["first", "request 9", "request 10"]


def test_sinks_and_latest_get_each_clip_once_in_order():
    got = []
    with Announcer(synthesize=fake_clip) as announcer:
        announcer.add_sink(lambda seq, clip: got.append((seq, clip.text)))
        announcer.announce(["happy"])
        wait_for(lambda: len(got) == 1)
        announcer.announce(["sad", "neutral"])
        wait_for(lambda: len(got) == 2)
        assert announcer.latest()[:2] == (2, fake_clip("Two faces: sad and calm", "en"))
        assert announcer.status.spoken == 2 and announcer.status.voice == "cached clip"
    assert got == [(1, "You look happy"), (2, "Two faces: sad and calm")]
    assert announcer.announce([]) is False  # no face: nothing said


def test_observe_debounces_cools_down_and_never_repeats():
    fake_now = [0.0]
    announcer = Announcer(synthesize=fake_clip, stable_seconds=1.0, cooldown_seconds=3.0, clock=lambda: fake_now[0])

    def at(t, label):
        fake_now[0] = t
        return announcer.observe(label)

    try:
        assert at(0.0, "happy") is None  # new, not yet stable
        assert at(0.5, "happy") is None
        assert at(1.0, "happy") == "You look happy"
        assert at(1.5, "happy") is None  # said already
        assert at(2.0, "sad") is None
        assert at(3.0, "sad") is None  # stable, but within the cool-down after 1.0
        assert at(4.0, "sad") == "You look sad"
        for t, label in ((4.2, "happy"), (4.6, "sad"), (5.0, "happy"), (5.4, "sad"), (5.8, "happy"), (6.2, "sad")):
            assert at(t, label) is None  # flicker: nothing holds for a second
        assert at(9.0, "sad") is None  # same emotion, even long after the cool-down
        assert at(9.5, None) is None  # one missed detection does not count as a change
        assert at(9.6, "sad") is None
        assert at(12.0, "sad") is None
        assert at(13.0, None) is None
        assert at(14.0, None) is None  # faces gone for a second: the next face is news
        assert at(20.0, "sad") is None
        assert at(21.0, "sad") == "You look sad"
        assert at(22.0, ["happy", "surprise"]) is None
        assert at(25.0, ("happy", "surprise")) == "Two faces: happy and surprised"
        # observe's own clock is used when no time is given
        fake_now[0] = 30.0
        assert announcer.observe("angry") is None
        fake_now[0] = 31.0
        assert announcer.observe("angry") == "You look angry"
    finally:
        announcer.close()


def test_status_reports_voice_unavailable_instead_of_raising(offline, tmp_path):
    with Announcer(cache_dir=tmp_path, gtts_timeout=1.0) as announcer:
        assert announcer.announce("Hello there")  # no word clip for "hello"
        wait_for(lambda: announcer.status.last_error is not None)
        status = announcer.status
        assert status.source is None and status.voice == "unavailable"
        assert status.last_error.startswith("no connection to Google's voice; espeak-ng is not installed")
        assert announcer.latest() is None and not announcer.busy


def test_busy_from_the_request_until_the_clip_is_out():
    release = threading.Event()

    def held(text, lang):
        release.wait(10)
        return fake_clip(text, lang)

    with Announcer(synthesize=held) as announcer:
        assert not announcer.busy
        announcer.announce("happy")
        assert announcer.busy  # at once, before the worker has even started
        time.sleep(0.05)
        assert announcer.busy and announcer.status.pending == 0  # taken from the queue, still being made
        release.set()
        wait_for(lambda: not announcer.busy)
        assert announcer.latest() is not None


@needs_espeak
def test_announcer_end_to_end_with_real_voices(tmp_path, google_untried):
    with Announcer(cache_dir=tmp_path, gtts_timeout=2.0) as announcer:
        t0 = time.perf_counter()
        announcer.announce(["happy", "fear"])
        assert time.perf_counter() - t0 < 0.01
        wait_for(lambda: announcer.latest() is not None, seconds=20)
        seq, clip, _ = announcer.latest()
        assert seq == 1 and clip.text == "Two faces: happy and scared"
        assert announcer.status.source == clip.source and clip.source in ("offline", "gtts")
        assert loudness_dbfs(clip.path)[0] > -40
        announcer.announce(["happy", "fear"])
        wait_for(lambda: announcer.latest().seq == 2)
        assert announcer.latest().clip.source == "cache" and announcer.status.voice == "cached clip"


def test_server_playback_failure_is_a_status_not_a_crash(tmp_path):
    """Whatever player is installed: ffplay exits 0 on a broken file, mpg123 does not, none at all raises."""
    pytest.importorskip("playsound3")
    broken = tmp_path / "not-audio.mp3"
    broken.write_bytes(b"this is not an mp3")

    def synth(text, lang):
        return Clip(broken, "cache", "audio/mpeg", text, lang)

    with Announcer(synthesize=synth, play_on_server=True) as announcer:
        announcer.announce(["happy"])
        wait_for(lambda: announcer.latest() is not None)
        wait_for(lambda: announcer.status.last_error is not None)
        assert announcer.status.last_error == "playback: the clip is not playable audio"
        wait_for(lambda: not announcer.busy)


def test_a_delivered_clip_says_when_it_was_asked_for():
    """So that a page can leave unplayed a clip that comes after the moment has passed."""
    now = [50.0]
    with Announcer(synthesize=fake_clip, clock=lambda: now[0]) as announcer:
        announcer.announce("happy")
        now[0] = 57.0
        deadline = time.monotonic() + 10
        while announcer.latest() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert announcer.latest().requested_at == 50.0


def test_an_idle_announcer_holds_no_thread_and_wakes_on_the_next_request():
    """A page cannot tell when its browser session is gone: its announcer must not keep a thread."""
    def workers():
        return sum(thread.name == "facemood-announcer" and thread.is_alive() for thread in threading.enumerate())

    before = workers()
    with Announcer(synthesize=fake_clip, idle_seconds=0.2) as announcer:
        assert not announcer.working and workers() == before  # nothing asked yet: no thread
        announcer.announce("happy")
        wait_for(lambda: announcer.latest() is not None)
        wait_for(lambda: not announcer.working)
        wait_for(lambda: workers() == before)
        announcer.announce("sad")  # the next request starts a worker again
        wait_for(lambda: announcer.latest().seq == 2)
        assert announcer.latest().clip.text == "You look sad"
    wait_for(lambda: workers() == before)
