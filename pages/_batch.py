"""The Image page for many photos at once: ``emotion.batch`` (the library's batch code) in this
process, with the page's recognizer, then one table and one download for all of them."""

from __future__ import annotations

import hashlib
import io

import pandas as pd
import streamlit as st

import emotion.batch
from emotion import LABELS
from emotion.video import format_seconds
from pages import _common

MANY_PHOTOS = 5  # more photos than this are shown as one table, not one by one


def _key(photos, settings) -> tuple:
    return tuple((hashlib.sha256(data).hexdigest(), name) for name, data in photos), settings


def batch_result(photos: list[tuple[str, bytes]], recognizer, settings, status) -> emotion.batch.BatchResult:
    """The batch's tables, computed once per set of photos and settings in this session (a rerun,
    say a widget touched, shows them again at once)."""
    key = _key(photos, settings)
    kept = st.session_state.get("image_batch")
    if kept and kept[0] == key:
        return kept[1]

    def progress(p: emotion.batch.BatchProgress) -> None:
        status.progress(p.done / p.total, text=f"Finding the faces and reading their emotions: photo {p.done} "
                                                f"of {p.total} ({p.files_per_s:.1f} photos/s, "
                                                f"{format_seconds(p.left_s)} left)")

    status.progress(0.0, text=f"Finding the faces and reading their emotions in {len(photos)} photos…")
    result = emotion.batch.analyze(photos, workers=0, recognizer=recognizer, lock=_common.ANALYSIS_LOCK,
                                   progress=progress)
    status.empty()
    st.session_state["image_batch"] = (key, result)  # one set kept: memory stays bounded
    return result


def faces_table(result) -> pd.DataFrame:
    """One row per face of every photo (the columns a photo has: no frame, time or track)."""
    columns = ["file", "label", "score", "x", "y", "w", "h", *LABELS, "model", "model_sha256"]
    return result.faces[columns].reset_index(drop=True)


def parquet_bytes(table: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return buffer.getvalue()


PERCENT = st.column_config.NumberColumn(format="%d%%", width=None)


def show_batch(photos: list[tuple[str, bytes]], recognizer, settings) -> None:
    status = st.empty()
    result = batch_result(photos, recognizer, settings, status)
    faces, files = faces_table(result), result.files
    usable = int(files["error"].isna().sum())
    st.subheader(f"{len(files)} photos: {len(faces)} face{'s' if len(faces) != 1 else ''} in {usable} "
                 f"usable photo{'s' if usable != 1 else ''}")
    for _, row in result.errors.iterrows():
        st.error(row["error"], icon=":material/broken_image:")

    shown = files[["file", "faces", "dominant"]].rename(columns={"dominant": "main emotion"})
    shown["main emotion"] = shown["main emotion"].fillna("no face")
    st.dataframe(shown[files["error"].isna()], hide_index=True, width="stretch")
    if faces.empty:
        st.info("No face found in these photos.", icon=":material/info:")
        return
    left, right = st.columns(2)
    left.download_button("All results CSV", faces.to_csv(index=False), "facemood-results.csv", "text/csv",
                         key="batch-csv", on_click="ignore", icon=":material/download:", width="stretch")
    right.download_button("All results Parquet", parquet_bytes(faces), "facemood-results.parquet",
                          "application/vnd.apache.parquet", key="batch-parquet", on_click="ignore",
                          icon=":material/download:", width="stretch")
    # The boxes are in the downloads: without them all the emotions fit a laptop's width.
    percent = faces[["file", "label", "score", *LABELS]].copy()
    for column in ("score", *LABELS):
        percent[column] = (percent[column] * 100).round().astype(int)
    st.dataframe(percent, hide_index=True, width="stretch",
                 column_config={"score": PERCENT, **{label: PERCENT for label in LABELS}})
    st.caption(f"More than {MANY_PHOTOS} photos are shown as one table; faces are listed photo by photo, row "
               "by row, left to right; score and the emotions are probabilities in percent. The downloads "
               "add each face's box (x, y, width, height in pixels) and the model. Upload fewer photos to "
               "see each one annotated.")
