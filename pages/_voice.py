"""Spoken announcements on the pages: the voice settings and the clip players.

Each browser session gets its own ``emotion.speech.Announcer`` (one worker
thread while it has something to say), so a slow or dead network never holds up the page: the page asks for a
sentence, and the page's player picks up the finished clip and plays it once:
:func:`player` (the Image page and snapshot mode), which polls only while a clip is
being made, or :class:`LivePlayer`, polled by a page that holds its script run in a
loop (the Webcam page).
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from emotion import speech

WHERE = {"browser": "In this browser", "server": "On this computer's speaker (kiosk)"}


@dataclass(frozen=True)
class VoiceSettings:
    enabled: bool
    lang: str
    where: str  # "browser" or "server"


def _languages() -> dict[str, str]:
    try:
        from gtts.lang import tts_langs  # a table inside the package: no network

        return dict(sorted(tts_langs().items(), key=lambda item: item[1]))
    except Exception:  # noqa: BLE001 - gTTS missing or changed: English still works offline
        return {"en": "English"}


def voice_settings() -> VoiceSettings:
    """The sidebar's voice controls (shared by every page through their keys)."""
    with st.sidebar:
        st.header("Voice")
        enabled = st.toggle("Say the emotions out loud", key="voice_on", value=False)
        languages = _languages()
        codes = list(languages)
        lang = st.selectbox("Language", codes, index=codes.index("en") if "en" in codes else 0,
                            format_func=lambda code: f"{languages[code]} ({code})", key="voice_lang",
                            disabled=not enabled, help="Sentences are in English; the language picks "
                            "the accent of Google's voice. Offline, espeak-ng's voice for it is used.")
        where = st.radio("Play the sound", list(WHERE), format_func=WHERE.get, key="voice_where",
                         disabled=not enabled)
        if enabled:
            st.caption("Only the sentence's text (e.g. \"You look happy\") is sent to Google's "
                       "speech service, never an image; offline, a cached or locally made voice is used.")
    return VoiceSettings(enabled, lang, where)


def _clip_bytes(clip: speech.Clip) -> bytes | None:
    try:
        return clip.path.read_bytes()
    except OSError as error:
        st.warning(f"The voice clip could not be read: {error.strerror}")
        return None


def _problem(status: speech.AnnouncerStatus) -> str | None:
    """Why nothing can speak now, or None: a failure after a working clip is not shown."""
    return status.last_error if status.source is None else None


def _show_problem(status: speech.AnnouncerStatus) -> None:
    if problem := _problem(status):
        st.warning(f"Voice unavailable: {problem}.", icon=":material/volume_off:")


def said(clip: speech.Clip) -> str:
    """The caption under a played clip: what was said and by which voice."""
    return f":material/volume_up: \"{clip.text}\" — voice: {speech.VOICE_NAMES.get(clip.source)}"


def announcer(settings: VoiceSettings) -> speech.Announcer:
    """This session's announcer, set for ``settings``."""
    if "voice_announcer" not in st.session_state:
        st.session_state.voice_announcer = speech.Announcer()
    current = st.session_state.voice_announcer
    current.lang = settings.lang
    current.play_on_server = settings.where == "server"
    return current


def say(labels: list[str], settings: VoiceSettings) -> None:
    """Queue the sentence for ``labels`` (returns at once)."""
    if settings.enabled and labels:
        announcer(settings).announce(labels, lang=settings.lang)


def player(settings: VoiceSettings) -> None:
    """Play the newest clip in the browser (once); show which voice is in use.

    Nothing reruns on a timer unless a clip is being made: then a small fragment looks
    twice a second and reruns the page once the announcer is done. Every Streamlit run
    costs the server CPU, so an idle tab must cause none.
    """
    if not settings.enabled:
        return
    voice = announcer(settings)
    if voice.busy:
        _wait_for_clip(settings)
        return
    latest, status = voice.latest(), voice.status
    _show_problem(status)
    if latest is None:
        return
    st.caption(said(latest.clip))
    if settings.where == "browser" and (audio := _clip_bytes(latest.clip)) is not None:
        # The number makes each announcement its own element, played once even when it
        # says the same as the one before; the same one on a later rerun is not played again.
        st.audio(audio, format=latest.clip.mime, autoplay=True,
                 alt=f"Announcement {latest.seq}: {latest.clip.text}")


@st.fragment(run_every=0.5)
def _wait_for_clip(settings: VoiceSettings) -> None:
    if announcer(settings).busy:
        st.caption("Preparing the voice…")
    else:
        st.rerun(scope="app")  # the clip is ready (or failed): the page shows it, and polls no more


class LivePlayer:
    """Plays each new clip once while the page's script run loops (live video).

    Call :meth:`update` from the loop. A new clip gets a new audio element, in the
    one of two places that is empty, so that the browser mounts it afresh and plays
    it, even when it says the same as an earlier one; the other place is cleared,
    which stops a clip still talking. A clip that is ready more than ``max_delay``
    seconds after it was asked for describes a moment the video has left: skipped.
    """

    def __init__(self, settings: VoiceSettings, run, max_delay: float = 3.0):
        self.settings = settings
        # What was played is kept by the live run's owner (``emotion.live.LiveSession.played``,
        # one per browser session): it survives reruns (a setting changed), so nothing plays twice.
        self.run = run
        self.max_delay = max_delay
        self.voice = announcer(settings) if settings.enabled else None
        self._status = st.empty()
        self._places = (st.empty(), st.empty())
        self._drawn: tuple | None = None  # (caption, problem) on the page now
        self.update()

    def update(self) -> None:
        """Play a clip that is new and not late; show the voice's state. Cheap when nothing changed."""
        if self.voice is None:
            return
        latest, status = self.voice.latest(), self.voice.status
        caption, seen, heard, text = self.run.played
        if latest is not None and latest.seq > seen:
            late = self.voice.clock() - latest.requested_at > self.max_delay
            # The announcer asks for one sentence twice running only when it means it (the faces
            # left and came back). Clips skipped here in between (late, or never seen) would make
            # the listener hear a sentence again that the announcer did not ask for again.
            repeat = latest.clip.text == text and latest.seq != heard + 1
            if not late and not repeat:
                caption, heard, text = said(latest.clip), latest.seq, latest.clip.text
                if self.settings.where == "browser":
                    self._play(latest)
            self.run.played = (caption, latest.seq, heard, text)
        drawn = (caption, _problem(status))
        if drawn != self._drawn:
            self._drawn = drawn
            with self._status.container():
                _show_problem(status)
                if caption:
                    st.caption(caption)

    def _play(self, delivered: speech.Delivered) -> None:
        audio = _clip_bytes(delivered.clip)
        if audio is None:
            return
        place, other = self._places[delivered.seq % 2], self._places[1 - delivered.seq % 2]
        other.empty()
        # The number in the accessible name makes each announcement its own element:
        # Streamlit autoplays an element only once.
        place.audio(audio, format=delivered.clip.mime, autoplay=True,
                    alt=f"Announcement {delivered.seq}: {delivered.clip.text}")
