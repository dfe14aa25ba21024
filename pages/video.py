"""Video: upload a video file; every frame is analysed as on the Webcam page; play or download the
annotated video and its per-frame CSV, and see each face's emotions over time."""

from __future__ import annotations

import io
from pathlib import Path

import streamlit as st

from emotion import plots
from emotion.access import MAX_UPLOAD_MB
from emotion.live import LiveSettings
from emotion.video import VideoError, analyse_video, describe, face_summary, format_seconds, read_rows
from pages import _common

_common.through_app()  # a first visit to this page on a fresh server goes through app.py

VIDEO_TYPES = ("mp4", "m4v", "mov", "webm", "mkv", "avi")
RESULT_KEY = "video_result"
PERCENT = st.column_config.NumberColumn(format="%.0f%%")


def analyse(upload, settings: LiveSettings, every: int, classifier, bar) -> dict:
    """The upload analysed in memory (the upload is never written to disk): the annotated
    MP4's bytes, the CSV's text and the summary."""
    video, table = io.BytesIO(), io.StringIO()

    def progress(step):
        bar.progress(step.fraction or 0.0, text=f"Analysing {upload.name}: {describe(step)}")

    summary = analyse_video(upload, video, table, classifier=classifier, settings=settings, every=every,
                            progress=progress)
    return {"name": upload.name, "video": video.getvalue(), "csv": table.getvalue(), "summary": summary}


def show(result: dict) -> None:
    summary, name = result["summary"], result["name"]
    stem = Path(name).stem or "video"
    length = summary.frames / summary.fps if summary.fps else None
    seconds = "" if length is None else f"{length:.1f} s, " if length < 60 else f"{format_seconds(length)}, "
    st.markdown(f"**{name}**: {summary.frames} frames ({seconds}{summary.width}×{summary.height}), "
                f"{summary.faces} face{'s' if summary.faces != 1 else ''} followed; analysed at "
                f"{summary.frames_per_second:.0f} frames per second.")
    st.video(result["video"], format="video/mp4")
    left, right = st.columns(2)
    left.download_button("Annotated video (MP4)", result["video"], f"{stem}-facemood.mp4", "video/mp4",
                         on_click="ignore", icon=":material/download:", width="stretch")
    right.download_button("Results CSV", result["csv"], f"{stem}-facemood.csv", "text/csv",
                          on_click="ignore", icon=":material/download:", width="stretch")
    rows = read_rows(result["csv"])
    faces = face_summary(rows)
    if faces.empty:
        st.info("No face was found in the video. Faces that are small, turned away or partly hidden can be "
                "missed: try a smaller minimum face size.", icon=":material/info:")
        return
    st.subheader("Each face's emotions over time")
    st.image(plots.figure_png(plots.video_faces_figure(rows, style="page")),
             caption="The seven probabilities of each face (by its number on the video), smoothed as on the "
                     "video; a gap is where the face was not followed.")
    faces["share"] = faces["share"] * 100
    st.dataframe(faces, hide_index=True, width="stretch",
                 column_config={"from_s": st.column_config.NumberColumn("from (s)", format="%.1f"),
                                "to_s": st.column_config.NumberColumn("to (s)", format="%.1f"),
                                "share": PERCENT})
    st.caption("The CSV has a row per analysed frame and face: frame, time in seconds, face number, box "
               "(x, y, width, height in pixels), label, score and the seven probabilities (0 to 1).")


# --- the page ---------------------------------------------------------------------------

st.title("Emotions in a video")
st.caption("Video files are analysed on this computer, frame by frame, with the Webcam page's face "
           "tracking and smoothing; nothing is uploaded anywhere.")

with st.sidebar:
    st.header("Video analysis")
    min_face = st.slider("Smallest face (% of the frame's shorter side)", 2, 30, 8, key="video_min_face",
                         help="Smaller finds smaller faces, more slowly.")
    smoothing = st.slider("Smoothing", 0.0, 0.95, 0.6, 0.05, key="video_smoothing",
                          help="Higher: steadier labels, slower to follow a change.")
    every = st.number_input("Analyse every Nth frame", 1, 30, 1, key="video_every",
                            help="Above 1 is faster: the frames in between show the faces found last.")
    emoji = st.toggle("Emoji overlay", key="video_emoji", help="Cover each face with its emotion's emoji.")

upload = st.file_uploader("Video file", type=list(VIDEO_TYPES), key="video_upload",
                          help=f"MP4, MOV, WebM, MKV or AVI, up to {MAX_UPLOAD_MB} MB.")
settings = LiveSettings(min_face=min_face / 100, smoothing=smoothing, show_ids=True, emoji=emoji)
status = st.empty()
if upload is None:
    status.info("Upload a video to see the emotions on every face, frame by frame.", icon=":material/movie:")
else:
    key = (upload.file_id, settings, int(every), _common.model_key())
    result = st.session_state.get(RESULT_KEY)
    if result is None or result["key"] != key:
        st.session_state.pop(RESULT_KEY, None)  # an older video's results go as a new one comes
        classifier = _common.load_classifier()
        if classifier is not None and status.button("Analyse the video", type="primary", icon=":material/play_arrow:"):
            bar = status.progress(0.0, text=f"Analysing {upload.name}…")
            try:
                result = {"key": key, **analyse(upload, settings, int(every), classifier, bar)}
            except VideoError as error:
                status.error(str(error), icon=":material/broken_image:")
            except Exception as error:  # noqa: BLE001 - one line, never a traceback
                status.error(f"{upload.name} could not be analysed: {_common.one_line(error)}",
                             icon=":material/error:")
            else:
                st.session_state[RESULT_KEY] = result
                status.empty()
    result = st.session_state.get(RESULT_KEY)
    if result is not None and result["key"] == key:
        show(result)
