"""Webcam: live video with every face boxed and labelled, over WebRTC; snapshot mode when that fails.

The video runs through ``emotion.live.LiveSession`` on streamlit-webrtc's video
thread. That session, one per browser session, also owns the live run's state
(running or not, which run, when it started, whether video ever came, what the voice
played), under one lock; streamlit-webrtc's own state changes drive it (its
``on_change`` and ``on_video_ended``), and this page only draws what it holds, once a
second while the video plays, in streamlit-webrtc's documented ``while`` loop: one
long script run that Stop, a setting or leaving the page ends.

Streamlit's fast reruns start a new script run the moment a click arrives, while the
run before is still going (it stops at its next Streamlit call). So the loop sleeps in
``LiveSession.wait``, which wakes at once when the run's state changes or a newer
script run claims the session, and the one call that changes the stream
(``webrtc_streamer``) is made by one script run at a time. (A fragment
with ``run_every`` would end a script run every second, and Streamlit ends each run
with ``keras.backend.clear_session()`` and full garbage collections, which hold the
interpreter long enough to halve the video's frame rate.)

With voice on, the video thread feeds each frame's labels to the session's
announcer, which speaks once a new emotion has held for a moment; the same loop
plays each finished clip in the browser (``_voice.LivePlayer``).

When the camera cannot start, streamlit-webrtc shows the browser's error inside its
own box and tells the server nothing. A small component of this page (``camera_check``)
asks the browser itself, without asking for the camera: whether it has one at all, and
whether the camera is blocked for this page; the page then says so in plain words.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time

import altair as alt
import pandas as pd
import streamlit as st

import emotion
from emotion import LABELS
from emotion.live import LiveSession, LiveSettings, frame_labels
from pages import _common, _voice
from pages._webrtc import ice_servers, webrtc

_common.through_app()  # a first visit to this page on a fresh server goes through app.py

NO_VIDEO_AFTER_S = 15  # after this long without a frame, say that the connection failed
REFRESH_S = 1.0        # how often the numbers beside the video are redrawn
VOICE_POLL_S = 0.2     # how often the loop looks for a finished voice clip to play
SNAPSHOT_HINT = ("Turn on **Snapshot mode** above to analyse single pictures from the camera instead: "
                 "it needs no live connection.")
# What the video box says when the camera cannot start (the browser's own words), and what to do.
CAMERA_HELP = """\
- **NotAllowedError** (permission denied): the browser blocked the camera for this page. Allow it
  (the camera icon in the address bar) and press Start again.
- **NotFoundError** (requested device not found): no camera is connected.
- **NotReadableError** (could not start video source): another program is using the camera.
- **Connection is taking longer than expected**: live video cannot get through this network; the
  app's administrator can set ICE (STUN/TURN) servers (see the README).

Whatever the cause, **Snapshot mode** above analyses single pictures from the camera instead.
"""
# Asks the browser, without opening the camera: how many cameras it has (enumerateDevices) and
# whether this page may use one (the Permissions API; "denied" once the user or a policy said no).
# It reports a change only, so it starts a script run only when there is something new to say.
CAMERA_CHECK_JS = """
export default function (component) {
    const { setStateValue, data } = component;
    const known = Object.assign({}, data || {});
    let status = null, closed = false;
    async function report() {
        if (closed) return;
        let cameras = null;
        try {
            const devices = await navigator.mediaDevices.enumerateDevices();
            cameras = devices.filter((device) => device.kind === "videoinput").length;
        } catch (error) { /* no media devices API here (not https): the video box says so */ }
        const permission = status ? status.state : null;
        if (closed || (cameras === known.cameras && permission === known.permission)) return;
        known.cameras = cameras;
        known.permission = permission;
        setStateValue("camera", { cameras, permission });
    }
    const media = navigator.mediaDevices;
    if (media) media.addEventListener("devicechange", report);
    if (navigator.permissions) {
        navigator.permissions.query({ name: "camera" })
            .then((found) => { status = found; found.addEventListener("change", report); report(); })
            .catch(() => report());  // a browser that cannot query the camera permission
    } else {
        report();
    }
    return () => {
        closed = true;
        if (media) media.removeEventListener("devicechange", report);
        if (status) status.removeEventListener("change", report);
    };
}
"""
NO_CAMERA = "No camera was found on this computer."
CAMERA_DENIED = "Camera permission was denied for this page."

TRANSLATIONS = {
    "start": "Start",
    "stop": "Stop",
    "select_device": "Choose a camera",
    "media_api_not_available": "This browser cannot share a camera with this page (it needs localhost or "
                               "https). Use snapshot mode instead.",
    "device_ask_permission": "Allow this page to use your camera.",
    "device_not_available": "No camera was found. Connect one, or use snapshot mode.",
    "device_access_denied": "The camera is blocked for this page. Allow it in the browser's address bar, "
                            "or use snapshot mode.",
}


# --- what the page shows, as plain functions -----------------------------------------


def camera_problem(check: dict | None) -> str | None:
    """What keeps the camera from starting, from what the browser told ``camera_check``, in
    plain words with what to do; None when nothing is known to be wrong."""
    if not isinstance(check, dict):
        return None
    if check.get("permission") == "denied":
        return (f"{CAMERA_DENIED} Allow the camera for this site (the camera icon at the left of the "
                "address bar, or the browser's site settings), then press **Start** again.")
    if check.get("cameras") == 0:
        return (f"{NO_CAMERA} Connect one (or close the program that holds it) and press **Start** "
                "again, or analyse photos on the **Image** page.")
    return None


def _stream_changed() -> None:
    """streamlit-webrtc's ``on_change``: the browser's stream started or stopped. It runs at the
    start of the script run that the change caused, before the page is drawn."""
    state = st.session_state["webcam"].state
    st.session_state["webcam_session"].set_running(state.playing or state.signalling, state.playing)


def _use_snapshots() -> None:
    st.session_state["webcam_snapshot_mode"] = True


def history_chart(history) -> alt.Chart:
    """The main face's emotions over the last minute, stacked (x: seconds ago)."""
    labels = list(history[-1][1]) if history else list(LABELS)  # a personal model's own labels too
    rows = [{"seconds": -round(ago, 2), "emotion": label, "probability": probs.get(label, 0.0)}
            for ago, probs in history for label in labels]
    frame = pd.DataFrame(rows, columns=["seconds", "emotion", "probability"])
    # The legend under the chart, four to a row: beside it, its seven entries were taller than
    # the chart and the last one was cut off. The height is the plot's own ("fit-x": Streamlit's
    # default "fit" squeezes the plot to make room for title, axis and legend within it).
    return alt.Chart(frame, height=120, title="Main face, last minute",
                     autosize=alt.AutoSizeParams(type="fit-x", contains="padding")).mark_area().encode(
        x=alt.X("seconds:Q", scale=alt.Scale(domain=[-60, 0]), title="seconds ago"),
        y=alt.Y("probability:Q", stack="normalize", axis=alt.Axis(format="%"), title=None),
        color=alt.Color("emotion:N", scale=_common.label_scale(labels), sort=labels,
                        legend=alt.Legend(orient="bottom", columns=4, title=None, labelLimit=0)),
        order=alt.Order("emotion_index:Q"),
        tooltip=["emotion", alt.Tooltip("probability:Q", format=".0%")],
    ).transform_calculate(emotion_index=f"indexof({json.dumps(labels)}, datum.emotion)")


def show_faces(faces, show_probs: bool) -> None:
    if not faces:
        st.info("No face in view. Face the camera in good light; a smaller minimum face size finds "
                "faces farther away.", icon=":material/face:")
        return
    for number, face in enumerate(faces, start=1):  # a snapshot's faces have no track id: numbered in order
        st.markdown(f"**Face #{face.track_id or number}: {face.label}**" + (f" {face.score:.0%}" if show_probs else ""))
        if show_probs:
            st.altair_chart(_common.probability_chart(face.probs, height=190, tooltip_format=".0%"), width="stretch")


def show_stats(session: LiveSession, show_probs: bool, active: bool) -> None:
    """The live numbers, the faces and the chart, from one snapshot of the session's stats."""
    snap = session.stats.snapshot()
    if active:
        # What this server knows: the browser's own word that the video plays, not only frames.
        st.caption(":material/radio_button_checked: The video is live" if session.playing else "Connecting to the camera…")
    columns = st.columns(2) + st.columns(2)
    columns[0].metric("Frames processed", f"{snap.frames:,}")
    columns[1].metric("Frames with a face", f"{snap.frames_with_faces:,}")
    columns[2].metric("Faces now", len(snap.faces))
    columns[3].metric("Frames per second", f"{snap.fps:.1f}" if active else "–")
    if snap.frames:
        st.caption(f"{snap.ms_per_frame:.1f} ms of analysis per frame; faces are looked for every "
                   f"{snap.detect_period} frame{'s' if snap.detect_period > 1 else ''} and followed in between; "
                   f"{snap.faces_seen} different face{'s' if snap.faces_seen != 1 else ''} so far.")
    if snap.skipped:
        st.caption(f"{snap.skipped:,} frame{'s' if snap.skipped != 1 else ''} could not be used "
                   f"(last: {snap.problem}) and were shown as they came.")
    if snap.dark and active:
        st.warning("The picture is too dark to find faces: turn on a light or face a window.",
                   icon=":material/dark_mode:")
    if active or snap.frames:
        show_faces(snap.faces, show_probs)
    if snap.history:
        st.altair_chart(history_chart(snap.history), width="stretch")
    if active:
        started = session.started_at
        waited = time.monotonic() - started if started else 0.0
        idle = snap.seconds_since_frame
        if waited > NO_VIDEO_AFTER_S and (idle is None or idle > NO_VIDEO_AFTER_S):
            if snap.frames:
                st.warning("The video has stopped arriving (the connection dropped, or this computer is too "
                           "busy). Press Stop, then Start.", icon=":material/videocam_off:")
            else:
                st.error("No video has arrived: the live connection could not be made (a network or firewall "
                         "that blocks WebRTC, or a camera used by another program). Press Stop and try again. "
                         + SNAPSHOT_HINT, icon=":material/videocam_off:")


def snapshot_mode(classifier, settings: LiveSettings, voice: _voice.VoiceSettings) -> None:
    """One picture from the camera, analysed as the Image page analyses a photo (and said, with voice on)."""
    st.caption("Take a picture: it is analysed as a photo on the Image page is, on this computer.")
    picture = st.camera_input("Take a picture", key="snapshot", label_visibility="collapsed")
    if picture is None:
        return
    try:
        rgb = emotion.load_image(picture.getvalue(), name="camera picture")
    except emotion.ImageError as error:
        st.error(str(error), icon=":material/broken_image:")
        return
    # The photo pipeline with the Image page's own settings, so that a picture gets the same faces
    # and labels on both pages; as the camera took it and its preview showed it: never mirrored.
    recognizer, _ = _common.load_recognizer()
    if recognizer is None:
        return
    try:
        with _common.ANALYSIS_LOCK:
            faces = recognizer.analyze_rgb(rgb)
        annotated = recognizer.annotate(rgb, faces, show_scores=settings.show_probs, emoji=settings.emoji)
    except Exception as error:  # noqa: BLE001 - one line, never a traceback
        st.error(f"The picture could not be analysed: {_common.one_line(error)}.", icon=":material/broken_image:")
        return
    image, details = st.columns([3, 2])
    image.image(annotated, caption=f"{len(faces)} face{'s' if len(faces) != 1 else ''}")
    with details:
        show_faces(faces, settings.show_probs)
        if st.session_state.get("webcam_spoken_for") != picture.file_id:  # once per picture, not per rerun
            st.session_state.webcam_spoken_for = picture.file_id
            _voice.say(frame_labels(faces), voice)
        _voice.player(voice)


# --- the page ---------------------------------------------------------------------------

st.title("Live emotions from your webcam")
st.caption("The video is analysed on this computer and sent back to this page only.")

with st.sidebar:
    st.header("Live video")
    min_face = st.slider("Smallest face (% of the picture's shorter side)", 5, 50, 15, key="webcam_min_face",
                         help="Smaller finds faces farther from the camera, at more work per frame.")
    smoothing = st.slider("Smoothing", 0.0, 0.95, 0.6, 0.05, key="webcam_smoothing",
                          help="How much each face's emotion is averaged over recent frames: higher is "
                               "steadier, lower follows changes faster.")
    show_probs = st.checkbox("Show probabilities", True, key="webcam_show_probs")
    mirror = st.checkbox("Mirror view", True, key="webcam_mirror",
                         help="Show the picture as a mirror does, as most video calls do.")
    emoji = st.toggle("Emoji overlay", key="webcam_emoji",
                      help="Cover each face with its emotion's emoji (drawn by the app); it follows the face.")
    show_keypoints = st.toggle("Show facial keypoints", key="webcam_keypoints",
                               help="68 landmarks on every face (jaw, brows, nose, eyes, mouth); "
                                    "a little more work per frame while on.")
settings = LiveSettings(min_face=min_face / 100, smoothing=smoothing, show_probs=show_probs, mirror=mirror,
                        keypoints=show_keypoints)
settings = dataclasses.replace(settings, emoji=emoji)  # reaches the video thread with the rest
voice = _voice.voice_settings()

classifier = _common.load_classifier(runtime="fast")  # snapshots use the photo model, as the Image page
if classifier is None:
    st.stop()
st.caption(_common.model_caption(classifier, "live video") + " Snapshots use the Image page's.")

session = st.session_state.get("webcam_session")
if session is None or session.classifier is not classifier:  # first visit, or another model
    with st.spinner("Preparing the live analysis…"):
        session = st.session_state["webcam_session"] = LiveSession(classifier, settings)
# This script run now shows the session: a run before it that still loops stops at once.
view = session.claim()
try:
    session.configure(**dataclasses.asdict(settings))
except Exception as error:  # noqa: BLE001 - the keypoint model: one line, and the video goes on without
    st.sidebar.warning(f"Facial keypoints are unavailable: {_common.one_line(error)}")
    session.configure(**dataclasses.asdict(dataclasses.replace(settings, keypoints=False)))
# The video thread tells the announcer what each frame shows; it speaks when that changes and holds.
session.listener = _voice.announcer(voice).observe if voice.enabled else None

if st.toggle("Snapshot mode (single pictures, no live video)", key="webcam_snapshot_mode"):
    session.listener = None
    snapshot_mode(classifier, settings, voice)
    st.stop()

servers, ice_problem = ice_servers()
if ice_problem:
    st.warning(ice_problem, icon=":material/warning:")
camera_check = st.components.v2.component("facemood_camera_check", js=CAMERA_CHECK_JS)
# The component is given what it last said, so that it reports changes only.
checked = camera_check(key="webcam_camera_check", data=st.session_state.get("webcam_camera") or {},
                       on_camera_change=lambda: None, height=0)
st.session_state["webcam_camera"] = checked.get("camera") if checked is not None else None
problem = camera_problem(st.session_state["webcam_camera"])
# Always this one place, filled or not: an element put in before the video box would move it,
# and the video box would be rebuilt, losing the browser's own error that it shows.
notice = st.empty()
if problem:
    with notice.container(border=True):
        st.error(problem, icon=":material/videocam_off:")
        st.button("Use snapshot mode instead", key="webcam_use_snapshots", on_click=_use_snapshots,
                  icon=":material/photo_camera:", help="Single pictures from the camera, analysed the same "
                  "way: they need no live connection (but they too need a camera the page may use).")
video, panel = st.columns([3, 2])
with video:
    try:
        streamlit_webrtc = webrtc()  # only the live mode needs it
        # With Streamlit's fast reruns, a click starts a new script run at once while the one
        # before is still finishing: one at a time may reconcile the stream, or the older one can
        # tear down the worker the newer one just made for Start, whose answer is then never sent.
        with session.streamer_lock:
            context = streamlit_webrtc.webrtc_streamer(
                key="webcam", mode=streamlit_webrtc.WebRtcMode.SENDRECV,
                # No STUN/TURN unless configured: the library's default would contact Google's STUN server.
                rtc_configuration={"iceServers": servers},
                media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}},
                                          "audio": False},
                video_frame_callback=session.video_frame_callback, on_change=_stream_changed,
                # Tied to this run: a stream that ends late cannot end the next one.
                on_video_ended=functools.partial(session.end, session.run),
                async_processing=True, translations=TRANSLATIONS,
                video_html_attrs={"autoPlay": True, "muted": True, "playsInline": True, "controls": False,
                                  "style": {"width": "100%"}})
    except Exception as error:  # noqa: BLE001 - say so, and offer the snapshot mode
        context = None
        st.error(f"Live video cannot start here ({_common.one_line(error)}). " + SNAPSHOT_HINT,
                 icon=":material/videocam_off:")
    active = context is not None and session.running
    if context is not None and not active:  # not under a running video
        st.caption("Press **Start** and allow the camera.")
        with st.expander("Camera not working?", icon=":material/help:"):
            st.markdown(CAMERA_HELP)
    speaker = _voice.LivePlayer(voice, session)

with panel:
    # One slot for the live and the stopped panel, so that each replaces the other in place.
    slot = st.empty()
    if active:
        # Redrawn while this run of the stream lasts. Whatever ends it (Stop, the browser going
        # away) goes through the session, whose wait wakes at once; any other script run (a
        # setting, another page) stops this one at its next Streamlit call, within VOICE_POLL_S.
        run, redraw_at = session.run, 0.0
        while True:
            if time.monotonic() >= redraw_at:
                with slot.container():
                    show_stats(session, show_probs, True)
                redraw_at = time.monotonic() + REFRESH_S
            speaker.update()
            if not session.wait(VOICE_POLL_S, run, view):
                break
    else:
        with slot.container():
            if session.stopped_without_video:
                st.error("The live video stopped before any picture arrived: the camera is unavailable or "
                         "the connection could not be made. " + SNAPSHOT_HINT, icon=":material/videocam_off:")
            elif session.stats.snapshot().frames:
                st.caption("Stopped. The last run:")
            show_stats(session, show_probs, False)
