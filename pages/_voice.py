"""Spoken announcements on the pages: the voice settings and the clip player.

Each browser session gets its own ``emotion.speech.Announcer`` (one worker
thread), so a slow or dead network never holds up the page: the page asks for a
sentence, and a fragment polls for the finished clip and plays it once.
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


@st.fragment(run_every=0.5)
def player(settings: VoiceSettings) -> None:
    """Play the newest clip in the browser (once); show which voice is in use."""
    if not settings.enabled:
        return
    voice = announcer(settings)
    latest, status = voice.latest(), voice.status
    if status.last_error and status.source is None:
        st.warning(f"Voice unavailable: {status.last_error}", icon=":material/volume_off:")
    if latest is None:
        if status.pending:
            st.caption("Preparing the voice…")
        return
    st.caption(f"🔊 \"{latest.clip.text}\" — voice: {speech.VOICE_NAMES.get(latest.clip.source)}")
    if settings.where == "browser":
        try:
            audio = latest.clip.path.read_bytes()
        except OSError as error:
            st.warning(f"The voice clip could not be read: {error.strerror}")
            return
        # Same clip, same element on every rerun: the browser keeps it and plays it once.
        st.audio(audio, format=latest.clip.mime, autoplay=True)
