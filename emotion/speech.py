"""Spoken announcements: turn detected emotions into a sentence and an audio clip.

Voices, best first: a clip already in the cache (``audio_files/``), Google TTS
(gTTS, needs the network), espeak-ng (offline, Debian package). The Announcer
runs synthesis on one background thread so a slow or dead network never stalls
the caller (a video loop); it drops stale requests instead of queueing them.
Nothing here knows about Streamlit: pages read ``latest()`` and ``status``.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import math
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from .labels import LABELS

AUDIO_DIR = Path(__file__).resolve().parent.parent / "audio_files"

# Words a listener expects, not the dataset's nouns; "neutral" sounds robotic when spoken.
ADJECTIVES = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "scared",
    "happy": "happy",
    "sad": "sad",
    "surprise": "surprised",
    "neutral": "calm",
}
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

# Labels for the UI's "voice: ..." line; None means nothing could speak.
VOICE_NAMES = {"cache": "cached clip", "gtts": "Google TTS", "offline": "offline (espeak-ng)", None: "unavailable"}
_MIME = {".mp3": "audio/mpeg", ".wav": "audio/wav"}

GTTS_TIMEOUT = 5.0
# After Google fails, skip it for this long: on a network that drops packets each
# try would cost a full timeout, and live video asks for a new sentence every few seconds.
GTTS_RETRY_AFTER = 60.0
_gtts_down_until = 0.0


class SpeechUnavailable(RuntimeError):
    """No voice could make the clip; the message is one line for the UI."""


@dataclass(frozen=True)
class Clip:
    path: Path
    source: str  # "cache" | "gtts" | "offline"
    mime: str  # "audio/mpeg" | "audio/wav"
    text: str = ""
    lang: str = "en"
    note: str | None = None  # why a better voice was skipped, e.g. the gTTS error


class Delivered(NamedTuple):
    seq: int  # grows by one per finished clip, so a page can play each clip once
    clip: Clip
    requested_at: float = 0.0  # the announcer's clock when the sentence was asked for


# --- sentences -------------------------------------------------------------------


def count_words(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def sentence_for(labels: Sequence[str] | str, lang: str = "en") -> str | None:
    """The sentence for the faces' labels; None when there is no face (say nothing).

    Only English wording exists; other languages speak the English sentence.
    """
    if isinstance(labels, str):
        labels = [labels]
    words = [ADJECTIVES.get(label, label) for label in labels]
    if not words:
        return None
    if len(words) == 1:
        return f"You look {words[0]}"
    listed = ", ".join(words[:-1]) + " and " + words[-1]
    return f"{count_words(len(words)).capitalize()} faces: {listed}"


# --- cache -----------------------------------------------------------------------


def clip_stem(text: str, lang: str = "en") -> str:
    """File name without extension: readable slug plus a hash of exactly (lang, text)."""
    lang = lang.strip().lower()
    digest = hashlib.sha256(f"{lang}\n{text}".encode("utf-8")).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-") or "clip"
    return f"{lang}-{slug}-{digest}"


def cached_clip(text: str, lang: str = "en", cache_dir: Path | str | None = None) -> Clip | None:
    folder = Path(cache_dir) if cache_dir is not None else AUDIO_DIR
    stem = clip_stem(text, lang)
    for suffix in (".mp3", ".wav"):  # MP3 first: it is what ships and what every browser plays
        path = folder / (stem + suffix)
        if path.is_file() and path.stat().st_size > 0:
            return Clip(path, "cache", _MIME[suffix], text, lang)
    return None


# --- engines: (text, lang, work_dir, timeout) -> audio file inside work_dir ------------


def gtts_engine(text: str, lang: str, work_dir: Path, timeout: float) -> Path:
    global _gtts_down_until
    if time.monotonic() < _gtts_down_until:
        raise SpeechUnavailable(f"gTTS skipped: it failed in the last {GTTS_RETRY_AFTER:.0f} s")
    from gtts import gTTS  # imported late: the offline path must work without it installed

    out = work_dir / "gtts.mp3"
    try:
        gTTS(text, lang=lang, timeout=timeout).save(str(out))
    except Exception:  # gTTSError, requests errors, ValueError for an unknown language
        _gtts_down_until = time.monotonic() + GTTS_RETRY_AFTER
        raise
    return out


def espeak_engine(text: str, lang: str, work_dir: Path, timeout: float) -> Path:
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak is None:
        raise SpeechUnavailable("no offline voice: install espeak-ng")
    wav = work_dir / "espeak.wav"
    lang = lang.strip().lower()
    # espeak resolves "pt-br", "fr", "zh" itself and exits 1 for voices it lacks.
    voices = list(dict.fromkeys([lang, lang.split("-")[0], "en"]))
    for voice in voices:
        # Text goes through stdin so a sentence starting with "-" is never read as an option.
        done = subprocess.run([espeak, "-v", voice, "-w", str(wav), "--stdin"], input=text.encode("utf-8"),
                              capture_output=True, timeout=max(timeout, 30.0))
        if done.returncode == 0 and wav.is_file() and wav.stat().st_size > 44:
            return _to_mp3(wav)
    raise SpeechUnavailable(f"espeak-ng failed: {done.stderr.decode(errors='replace').strip()[:120]}")


def _to_mp3(wav: Path) -> Path:
    """MP3 when an encoder is installed (small, plays in every browser); else keep the WAV."""
    mp3 = wav.with_suffix(".mp3")
    if shutil.which("lame"):
        command = ["lame", "--quiet", "-m", "m", "-b", "32", str(wav), str(mp3)]
    elif shutil.which("ffmpeg"):
        command = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-ac", "1", "-b:a", "32k", str(mp3)]
    else:
        return wav
    try:
        done = subprocess.run(command, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return wav
    return mp3 if done.returncode == 0 and mp3.is_file() and mp3.stat().st_size > 0 else wav


Engine = Callable[[str, str, Path, float], Path]
DEFAULT_ENGINES: tuple[tuple[str, Engine], ...] = (("gtts", gtts_engine), ("offline", espeak_engine))


def synthesize(text: str, lang: str = "en", *, cache_dir: Path | str | None = None,
               timeout: float = GTTS_TIMEOUT, engines: Sequence[tuple[str, Engine]] | None = None) -> Clip:
    """A clip that says ``text``: from the cache, else the first engine that works (then cached).

    Raises SpeechUnavailable (one-line message) when no engine works.
    """
    hit = cached_clip(text, lang, cache_dir)
    if hit is not None:
        return hit
    folder = Path(cache_dir) if cache_dir is not None else AUDIO_DIR
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    # The work folder sits in the cache so the final move is an atomic rename:
    # a crash mid-write never leaves a half clip that later reads as a cache hit.
    with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-") as work:
        for source, engine in engines if engines is not None else DEFAULT_ENGINES:
            try:
                made = Path(engine(text, lang, Path(work), timeout))
            except Exception as error:  # any engine failure means: try the next voice
                failures.append(f"{source}: {_one_line(error)}")
                continue
            path = folder / (clip_stem(text, lang) + made.suffix)
            made.replace(path)
            return Clip(path, source, _MIME.get(made.suffix, "application/octet-stream"), text, lang,
                        "; ".join(failures) or None)
    raise SpeechUnavailable("voice unavailable: " + ("; ".join(failures) or "no engine"))


_synthesize = synthesize  # the Announcer's argument of the same name hides it


def _one_line(error: BaseException) -> str:
    message = " ".join(str(error).split()) or type(error).__name__
    return message[:160]


# --- announcer -------------------------------------------------------------------


@dataclass(frozen=True)
class AnnouncerStatus:
    source: str | None = None  # of the last clip: "cache" | "gtts" | "offline"; None: none yet or failed
    voice: str = "none yet"  # words for the UI, from VOICE_NAMES
    last_error: str | None = None  # synthesis, sink or playback failure, one line
    spoken: int = 0
    dropped: int = 0  # stale requests thrown away because newer ones came
    pending: int = 0


class Announcer:
    """Speaks sentences on one daemon thread; the caller never waits.

    ``announce`` queues a sentence; ``observe`` is for live video and speaks only
    once a dominant emotion has held for ``stable_seconds``, at most one sentence
    per ``cooldown_seconds``, and never the same one twice in a row.
    """

    def __init__(self, *, lang: str = "en", synthesize: Callable[[str, str], Clip] | None = None,
                 cache_dir: Path | str | None = None, gtts_timeout: float = GTTS_TIMEOUT, maxsize: int = 2,
                 stable_seconds: float = 1.0, cooldown_seconds: float = 3.0,
                 clock: Callable[[], float] = time.monotonic, play_on_server: bool = False,
                 idle_seconds: float = 60.0):
        self.lang = lang
        self._synthesize = synthesize or functools.partial(_synthesize, cache_dir=cache_dir, timeout=gtts_timeout)
        self.maxsize = max(1, maxsize)
        self.stable_seconds = stable_seconds
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self.play_on_server = play_on_server
        self.idle_seconds = idle_seconds

        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[str, str, float]] = collections.deque()  # text, lang, asked at
        self._closed = False
        self._status = AnnouncerStatus()
        self._latest: Delivered | None = None
        self._seq = 0
        self._sinks: list[Callable[[int, Clip], None]] = []

        # Debounce state for observe().
        self._candidate: tuple[str, ...] | None = None
        self._candidate_since = 0.0
        self._last_said: tuple[str, ...] | None = None
        self._last_said_at = -math.inf

        # Started by the first request and ended after idle_seconds without one: a page
        # cannot tell when its browser session is gone, so an idle announcer holds no thread.
        self._worker: threading.Thread | None = None

    # -- input

    def announce(self, labels_or_text: Sequence[str] | str, lang: str | None = None) -> bool:
        """Queue a sentence and return at once; False when there is nothing to say.

        A list of labels becomes a sentence ("Two faces: happy and sad"); a single
        known label ("happy") too; any other string is spoken as it is.
        """
        if isinstance(labels_or_text, str) and labels_or_text not in LABELS:
            text = labels_or_text.strip() or None
        else:
            text = sentence_for(labels_or_text)
        if text is None:
            return False
        with self._cond:
            if self._closed:
                return False
            if len(self._queue) >= self.maxsize:
                self._queue.popleft()  # the oldest request describes a moment that has passed
                self._status = replace(self._status, dropped=self._status.dropped + 1)
            self._queue.append((text, lang or self.lang, self.clock()))
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="facemood-announcer", daemon=True)
                self._worker.start()
            self._cond.notify()
        return True

    def observe(self, dominant: Sequence[str] | str | None, now: float | None = None) -> str | None:
        """Feed one video frame's dominant label (or labels, or None for no face).

        Returns the sentence queued by this call, if any.
        """
        now = self.clock() if now is None else now
        if isinstance(dominant, str):
            dominant = [dominant]
        key = tuple(dominant) if dominant else None
        if key != self._candidate:
            self._candidate, self._candidate_since = key, now
            return None
        if now - self._candidate_since < self.stable_seconds:
            return None
        if key is None:
            # Faces really gone (not one missed frame): the next face is news again.
            self._last_said = None
            return None
        if key == self._last_said or now - self._last_said_at < self.cooldown_seconds:
            return None
        self._last_said, self._last_said_at = key, now
        self.announce(list(key))
        return sentence_for(list(key))

    # -- output

    def add_sink(self, sink: Callable[[int, Clip], None]) -> None:
        """Call ``sink(seq, clip)`` on the worker thread for every finished clip."""
        with self._cond:
            self._sinks.append(sink)

    def latest(self) -> Delivered | None:
        with self._cond:
            return self._latest

    @property
    def status(self) -> AnnouncerStatus:
        with self._cond:
            return replace(self._status, pending=len(self._queue))

    def pending(self) -> list[str]:
        with self._cond:
            return [text for text, _, _ in self._queue]

    # -- life cycle

    def close(self, timeout: float = 5.0) -> bool:
        """Stop the worker; True when it ended within ``timeout`` (a hung synthesis may not)."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
            worker = self._worker
        if worker is None:
            return True
        worker.join(timeout)
        return not worker.is_alive()

    @property
    def working(self) -> bool:
        """Whether the worker thread is running now (it ends when idle)."""
        with self._cond:
            return self._worker is not None

    def __enter__(self) -> Announcer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._closed:
                    self._cond.wait_for(lambda: self._queue or self._closed, timeout=self.idle_seconds)
                if self._closed:
                    return
                if not self._queue:  # idle: the next request starts a new worker
                    self._worker = None
                    return
                text, lang, asked_at = self._queue.popleft()
            self._speak(text, lang, asked_at)

    def _speak(self, text: str, lang: str, asked_at: float) -> None:
        try:
            clip = self._synthesize(text, lang)
        except Exception as error:  # the caller sees a status, never an exception
            self._set(source=None, voice=VOICE_NAMES[None], last_error=_one_line(error))
            return
        with self._cond:
            if self._closed:
                return
            self._seq += 1
            self._latest = Delivered(self._seq, clip, asked_at)
            self._status = replace(self._status, source=clip.source, voice=VOICE_NAMES.get(clip.source, clip.source),
                                   last_error=None, spoken=self._status.spoken + 1)
            sinks = list(self._sinks)
            seq = self._seq
        for sink in sinks:
            try:
                sink(seq, clip)
            except Exception as error:
                self._set(last_error=f"sink: {_one_line(error)}")
        if self.play_on_server:
            try:
                from playsound3 import playsound

                playsound(clip.path, block=True)  # blocking keeps clips from talking over each other
            except Exception as error:
                self._set(last_error=f"playback: {_one_line(error)}")

    def _set(self, **changes) -> None:
        with self._cond:
            self._status = replace(self._status, **changes)
