"""Spoken announcements: turn detected emotions into a sentence and an audio clip.

Voices, best first: a clip already in the cache (``audio_files/``), Google TTS
(gTTS, needs the network), espeak-ng (offline, Debian package), and last the
built-in voice: the sentence put together from short word clips shipped in
``audio_files/words/``, so that every sentence the app says works offline after
a plain ``pip install``. The Announcer runs synthesis on one background thread
so a slow or dead network never stalls the caller (a video loop); it drops
stale requests instead of queueing them. Nothing here knows about Streamlit:
pages read ``latest()`` and ``status``.
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
import wave
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import numpy as np

from .labels import LABELS

AUDIO_DIR = Path(__file__).resolve().parent.parent / "audio_files"
WORDS_DIR = AUDIO_DIR / "words"  # the built-in voice's word clips (shipped)

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
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                "twenty")
MANY = "many"  # any count past the last number word: the built-in voice needs a clip for every word

# Labels for the UI's "voice: ..." line; None means nothing could speak.
VOICE_NAMES = {"cache": "cached clip", "gtts": "Google TTS", "offline": "offline (espeak-ng)",
               "composed": "built-in (offline)", None: "unavailable"}
_MIME = {".mp3": "audio/mpeg", ".wav": "audio/wav"}

GTTS_TIMEOUT = 5.0
# After Google fails, skip it for this long: on a network that drops packets each
# try would cost a full timeout, and live video asks for a new sentence every few seconds.
GTTS_RETRY_AFTER = 60.0
_gtts_down_until = 0.0


class SpeechUnavailable(RuntimeError):
    """No voice could make the clip; the message is one plain line for the UI."""


@dataclass(frozen=True)
class Clip:
    path: Path
    source: str  # "cache" | "gtts" | "offline" | "composed"
    mime: str  # "audio/mpeg" | "audio/wav"
    text: str = ""
    lang: str = "en"
    note: str | None = None  # why better voices were skipped, e.g. "gtts: no connection to Google's voice"


class Delivered(NamedTuple):
    seq: int  # grows by one per finished clip, so a page can play each clip once
    clip: Clip
    requested_at: float = 0.0  # the announcer's clock when the sentence was asked for


# --- sentences: one small grammar, for the text and for the built-in voice ---------------
#
# A sentence is a sequence of tokens: words, and "," or ":" for pauses. The text is the
# tokens rendered (render); the built-in voice reads the text back into the same tokens
# (tokenize) and plays one word clip per word and a silence per pause. So a sentence the
# grammar can make is one the built-in voice can say, as long as every word in
# VOCABULARY has its clip (``python -m emotion.make_clips``).

PAUSES = {",": 0.16, ":": 0.30}  # seconds of silence the built-in voice leaves


def count_word(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else MANY


def sentence_tokens(labels: Sequence[str] | str) -> tuple[str, ...]:
    """The sentence for the faces' labels (left to right) as tokens; () when there is no face.

    One face: "You look happy". All alike: "Two happy faces". Each emotion once:
    "Three faces: angry, sad and calm" (left to right). Otherwise counts, the most
    first: "Three faces: two happy, one sad". Counts past twenty are "many".
    """
    if isinstance(labels, str):
        labels = [labels]
    words = [ADJECTIVES.get(label, label) for label in labels]
    if not words:
        return ()
    if len(words) == 1:
        return ("you", "look", words[0])
    groups = collections.Counter(words)  # keeps first appearance order, i.e. left to right
    total = count_word(len(words))
    if len(groups) == 1:
        return (total, words[0], "faces")
    if max(groups.values()) == 1:
        distinct = list(groups)
        joined = [token for word in distinct[:-1] for token in (word, ",")][:-1] + ["and", distinct[-1]]
    else:
        ranked = sorted(groups.items(), key=lambda item: -item[1])  # stable: ties stay left to right
        joined = [token for word, n in ranked for token in (count_word(n), word, ",")][:-1]
    return (total, "faces", ":", *joined)


def render(parts: Sequence[str]) -> str:
    """Tokens as written text: pauses stick to the word before, the first letter is upper case."""
    text = ""
    for token in parts:
        text += token if token in PAUSES else (" " if text else "") + token
    return text[:1].upper() + text[1:]


def tokenize(text: str) -> tuple[str, ...]:
    """Text read back into tokens: words (lower case) and pauses; the inverse of :func:`render`."""
    return tuple(re.findall(r"[a-z0-9']+|[" + re.escape("".join(PAUSES)) + "]", text.lower()))


def sentence_for(labels: Sequence[str] | str, lang: str = "en") -> str | None:
    """The sentence for the faces' labels; None when there is no face (say nothing).

    Only English wording exists; other languages speak the English sentence.
    """
    return render(sentence_tokens(labels)) or None


# Every word the grammar can use: one clip each in WORDS_DIR. Phrases are said in one
# breath and sound better than their words one by one; the built-in voice uses them
# when their clip is there.
VOCABULARY = tuple(dict.fromkeys(["you", "look", "faces", "and", MANY, *NUMBER_WORDS[1:], *ADJECTIVES.values()]))
PHRASES = ("you look", *(f"{word} faces" for word in ADJECTIVES.values()))


def word_clip_path(phrase: str, words_dir: Path | str | None = None) -> Path:
    return Path(words_dir if words_dir is not None else WORDS_DIR) / (re.sub(r"[^a-z0-9]+", "-", phrase) + ".mp3")


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
# Each raises SpeechUnavailable with a plain reason ("espeak-ng is not installed") when it
# cannot speak; synthesize joins the reasons into the one line the page shows.


def gtts_engine(text: str, lang: str, work_dir: Path, timeout: float) -> Path:
    global _gtts_down_until
    if time.monotonic() < _gtts_down_until:  # failed a moment ago: do not wait for it again
        raise SpeechUnavailable("no connection to Google's voice")
    from gtts import gTTS  # imported late: the offline path must work without it installed

    out = work_dir / "gtts.mp3"
    try:
        gTTS(text, lang=lang, timeout=timeout).save(str(out))
    except ValueError as error:  # gTTS's own check of the language; the network is not to blame
        raise SpeechUnavailable(f"Google's voice has no language \"{lang}\"") from error
    except Exception as error:  # gTTSError, requests' errors: no route, timeout, refused
        _gtts_down_until = time.monotonic() + GTTS_RETRY_AFTER
        raise SpeechUnavailable("no connection to Google's voice") from error
    return out


def espeak_engine(text: str, lang: str, work_dir: Path, timeout: float) -> Path:
    espeak = shutil.which("espeak-ng") or shutil.which("espeak")
    if espeak is None:
        raise SpeechUnavailable("espeak-ng is not installed")
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
    """MP3 when an encoder is there (small, plays in every browser); else keep the WAV."""
    mp3 = wav.with_suffix(".mp3")
    if shutil.which("lame"):
        command = ["lame", "--quiet", "-m", "m", "-b", "32", str(wav), str(mp3)]
    elif shutil.which("ffmpeg"):
        command = ["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-ac", "1", "-b:a", "32k", str(mp3)]
    else:  # PyAV (installed with the webcam page) has LAME inside
        try:
            samples, rate = decode(wav)
            return write_audio(mp3, samples, rate)
        except Exception:  # noqa: BLE001 - a WAV still plays
            return wav
    try:
        done = subprocess.run(command, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return wav
    return mp3 if done.returncode == 0 and mp3.is_file() and mp3.stat().st_size > 0 else wav


# --- audio in and out: PyAV (a requirement already, for the webcam page) -------------------

VOICE_RATE = 22050  # espeak-ng's own rate: the clips need no resampling


def decode(path: Path | str, rate: int = VOICE_RATE) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], rate) of an audio file; ValueError when it is not audio."""
    import av  # a fifth of a second to import: only when a clip is really decoded

    try:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks = []
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError("no audio in it")
            for frame in container.decode(audio=0):
                chunks.extend(out.to_ndarray()[0] for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray()[0] for out in resampler.resample(None))
    except (av.FFmpegError, OSError) as error:
        raise ValueError(_one_line(error)) from error
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if not samples.size:
        raise ValueError("no sound in it")
    return samples, rate


def write_audio(path: Path, samples: np.ndarray, rate: int = VOICE_RATE) -> Path:
    """Write mono samples as MP3 (PyAV's LAME, 32 kbit/s) or, failing that, WAV; returns the file."""
    samples = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    try:
        import av

        mp3 = path.with_suffix(".mp3")
        with av.open(str(mp3), "w", format="mp3") as container:
            stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
            stream.bit_rate = 32000
            frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
            frame.rate = rate
            for packet in (*stream.encode(frame), *stream.encode(None)):
                container.mux(packet)
        return mp3
    except Exception:  # noqa: BLE001 - PyAV built without LAME: WAV plays in every browser too
        out = path.with_suffix(".wav")
        with wave.open(str(out), "wb") as file:
            file.setnchannels(1)
            file.setsampwidth(2)
            file.setframerate(rate)
            file.writeframes((samples * 32767).astype("<i2").tobytes())
        return out


def playable(path: Path | str) -> bool:
    try:
        decode(path)
    except ValueError:
        return False
    return True


# --- the built-in voice: the sentence from word clips ------------------------------------

WORD_GAP = 0.07  # seconds between words: espeak-ng's own gap inside a sentence
_EDGE = 0.02  # silence kept at a clip's trimmed ends, so a word's first consonant is not cut
_SILENT = 0.02  # samples quieter than this (about -34 dBFS) count as silence at the ends


def _trimmed(samples: np.ndarray, rate: int) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > _SILENT)
    if not loud.size:
        return samples[:0]
    edge = int(_EDGE * rate)
    return samples[max(0, loud[0] - edge): loud[-1] + 1 + edge]


def compose_parts(text: str, words_dir: Path | str | None = None) -> list[str]:
    """The clips (phrases or words) and pauses the built-in voice says ``text`` with, longest phrase first."""
    found = []
    parts = tokenize(text)
    i = 0
    while i < len(parts):
        if parts[i] in PAUSES:
            found.append(parts[i])
            i += 1
            continue
        for size in (3, 2, 1):
            phrase = " ".join(parts[i:i + size])
            if size <= len(parts) - i and all(p not in PAUSES for p in parts[i:i + size]) \
                    and word_clip_path(phrase, words_dir).is_file():
                found.append(phrase)
                i += size
                break
        else:
            raise SpeechUnavailable(f"the built-in voice has no word \"{parts[i]}\"")
    if not any(part not in PAUSES for part in found):
        raise SpeechUnavailable("the built-in voice has nothing to say")
    return found


def compose(text: str, out: Path, words_dir: Path | str | None = None) -> Path:
    """``text`` said by the built-in voice into ``out`` (MP3, or WAV without an encoder); returns the file."""
    rate = VOICE_RATE
    pieces = [np.zeros(int(0.05 * rate), np.float32)]
    for part in compose_parts(text, words_dir):
        if part in PAUSES:
            pieces.append(np.zeros(int(PAUSES[part] * rate), np.float32))
            continue
        path = word_clip_path(part, words_dir)
        try:
            samples, _ = decode(path, rate)
        except ValueError as error:
            raise SpeechUnavailable(f"the built-in voice's clip {path.name} is unreadable") from error
        pieces += [_trimmed(samples, rate), np.zeros(int(WORD_GAP * rate), np.float32)]
    pieces.append(np.zeros(int(0.15 * rate), np.float32))
    return write_audio(out, np.concatenate(pieces), rate)


def composed_engine(text: str, lang: str, work_dir: Path, timeout: float) -> Path:
    # English words whatever the language: the sentences are English (see sentence_for).
    return compose(text, work_dir / "composed.mp3")


Engine = Callable[[str, str, Path, float], Path]
# Google's voice is the best and espeak-ng better than word clips, so both come first:
# offline, gTTS fails at once where there is no route (a failed name lookup) and at most
# GTTS_TIMEOUT where packets are dropped, and then is not tried for GTTS_RETRY_AFTER.
# Put first, the built-in voice would say every sentence and the better ones never would.
DEFAULT_ENGINES: tuple[tuple[str, Engine], ...] = (
    ("gtts", gtts_engine), ("offline", espeak_engine), ("composed", composed_engine))
# A composed clip is kept out of the sentence cache: a cache hit is final, and Google's
# voice or espeak-ng should say the sentence once they can. It is quick to make again.
COMPOSED_DIR = "composed"


def synthesize(text: str, lang: str = "en", *, cache_dir: Path | str | None = None,
               timeout: float = GTTS_TIMEOUT, engines: Sequence[tuple[str, Engine]] | None = None) -> Clip:
    """A clip that says ``text``: from the cache, else the first engine that works (then cached).

    Raises SpeechUnavailable (one plain line: each voice's reason) when no engine works.
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
                failures.append((source, _one_line(error)))
                continue
            target = folder / COMPOSED_DIR if source == "composed" else folder
            target.mkdir(exist_ok=True)
            path = target / (clip_stem(text, lang) + made.suffix)
            made.replace(path)
            note = "; ".join(f"{name}: {reason}" for name, reason in failures) or None
            return Clip(path, source, _MIME.get(made.suffix, "application/octet-stream"), text, lang, note)
    raise SpeechUnavailable("; ".join(dict.fromkeys(reason for _, reason in failures)) or "no voice to try")


_synthesize = synthesize  # the Announcer's argument of the same name hides it


def _one_line(error: BaseException) -> str:
    message = " ".join(str(error).split()) or type(error).__name__
    return message[:160]


# --- announcer -------------------------------------------------------------------


@dataclass(frozen=True)
class AnnouncerStatus:
    source: str | None = None  # of the last clip: "cache" | "gtts" | "offline" | "composed"; None: none yet or failed
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
        self._speaking = False  # the worker is making, handing out or playing a clip

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

    @property
    def busy(self) -> bool:
        """Whether a sentence is waiting or being made (or played on the server): news is coming."""
        with self._cond:
            return bool(self._queue) or self._speaking

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
                self._speaking = True
            try:
                self._speak(text, lang, asked_at)
            finally:
                with self._cond:
                    self._speaking = False

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
        if self.play_on_server and (problem := play_here(clip.path)):
            self._set(last_error=problem)

    def _set(self, **changes) -> None:
        with self._cond:
            self._status = replace(self._status, **changes)


def play_here(path: Path) -> str | None:
    """Play a clip on this computer's speaker to its end; None, or why it failed ("playback: ...").

    Players differ in what they do with a broken file (ffplay exits 0 having played nothing,
    mpg123 exits 1) and playsound3 ignores their exit status, so the clip is decoded first:
    what reaches the player is sound, whichever player is installed.
    """
    if not playable(path):
        return "playback: the clip is not playable audio"
    try:
        from playsound3 import playsound

        sound = playsound(path, block=False)
        sound.wait()  # waiting keeps clips from talking over each other
        code = getattr(sound.subprocess, "returncode", 0)
    except Exception as error:  # no player installed, or it could not start
        return f"playback: {_one_line(error)}"
    return f"playback: the player failed (exit status {code})" if code else None
