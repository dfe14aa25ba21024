"""Image: upload photos (or pick a sample), see every face boxed with its emotion, download the results."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import Image

import emotion
from emotion import LABELS
from pages import _access, _batch, _common, _voice

_common.through_app()  # a first visit to this page on a fresh server goes through app.py

# --- what the page shows, as plain functions (tested directly too) -------------------


EMOJI_ON = "emoji"


@st.cache_data(max_entries=32, show_spinner=False)
def analyze_photo(data: bytes, name: str, settings: tuple, _recognizer, keypoints: bool = False) -> tuple[list, bytes]:
    """Faces found in a photo's bytes and the annotated photo as PNG, cached per photo and settings;
    with ``keypoints``, each face's 68 landmarks too (found, drawn and in the results).

    Raises ``emotion.ImageError`` (one line for the user) for a file that is not a usable image.
    """
    rgb = emotion.load_image(data, name=name)
    with _common.ANALYSIS_LOCK:
        results = _recognizer.analyze_rgb(rgb)
        if keypoints:
            from emotion.keypoints import shared_model, with_keypoints

            results = with_keypoints(shared_model(), rgb, results)
    buffer = io.BytesIO()
    # The emoji overlay is the last item of ``settings`` when on (a cache key like the rest).
    emoji = settings[-1:] == (EMOJI_ON,)
    Image.fromarray(_recognizer.annotate(rgb, results, emoji=emoji)).save(buffer, "PNG")
    return results, buffer.getvalue()


def results_frame(results) -> pd.DataFrame:
    """One row per face: face number (left to right), label, score, box, the seven probabilities."""
    rows = [{"face": i, "label": r.label, "score": round(r.score, 4),
             "x": r.box[0], "y": r.box[1], "w": r.box[2], "h": r.box[3],
             **{label: round(r.probs[label], 4) for label in labels_of(results)}}
            for i, r in enumerate(results, start=1)]
    frame = pd.DataFrame(rows, columns=["face", "label", "score", "x", "y", "w", "h", *labels_of(results)])
    if any(r.keypoints is not None for r in results):  # 68 [x, y] pairs a face, as in the JSON
        frame["keypoints"] = [json.dumps(r.to_dict().get("keypoints")) for r in results]
    return frame


def labels_of(results) -> list[str]:
    """The model's labels, as the results give them: the seven emotions, or a personal model's own."""
    return list(results[0].probs) if results else list(LABELS)


def results_json(name: str, results) -> str:
    return json.dumps(emotion.photo_report(name, results), indent=2)


def shown_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The results table as the page shows it: probabilities in whole percent (0-100), so
    that all fourteen columns fit the width of a laptop screen; the downloads keep 0-1."""
    shown = frame.drop(columns=["keypoints"], errors="ignore")  # 136 numbers: in the downloads only
    for column in ("score", *[c for c in shown.columns if c not in ("face", "label", "score", "x", "y", "w", "h")]):
        shown[column] = (shown[column] * 100).round().astype(int)
    return shown


PERCENT = st.column_config.NumberColumn(format="%d%%", width=None)


def show_photo(index: int, name: str, data: bytes, recognizer, settings: tuple, keypoints: bool = False):
    """Analyse one photo and show it; the results, or None if it could not be used."""
    st.subheader(name)
    try:
        results, png = analyze_photo(data, name, settings, recognizer, keypoints)
    except emotion.ImageError as error:
        st.error(str(error), icon=":material/broken_image:")
        return None
    except Exception as error:  # noqa: BLE001 - one line, never a traceback
        st.error(f"{name} could not be analysed: {_common.one_line(error)}", icon=":material/error:")
        return None

    if not results:
        st.image(png, caption=name)
        st.info(f"No face found in {name}. Faces that are small, turned away or partly hidden can be "
                "missed: try a closer photo, a smaller minimum face size, or the YuNet detector.",
                icon=":material/info:")
        return results

    picture, details = st.columns([3, 2])
    picture.image(png, caption=f"{name}: {len(results)} face{'s' if len(results) != 1 else ''}")
    frame = results_frame(results)
    with details:
        st.markdown("  \n".join(f"**Face {i}:** {r.label} {r.score:.0%}" for i, r in enumerate(results, 1)))
        stem = Path(name).stem or "photo"
        # One button a line, as wide as the column: their labels are never cut.
        st.download_button("Annotated PNG", png, f"{stem}-facemood.png", "image/png", key=f"png-{index}",
                           on_click="ignore", icon=":material/download:", width="stretch")
        st.download_button("Results CSV", frame.to_csv(index=False), f"{stem}-facemood.csv", "text/csv",
                           key=f"csv-{index}", on_click="ignore", icon=":material/download:", width="stretch")
        st.download_button("Results JSON", results_json(name, results), f"{stem}-facemood.json",
                           "application/json", key=f"json-{index}", on_click="ignore",
                           icon=":material/download:", width="stretch")
    # The whole width for the table: beside the photo it had room for half its columns.
    st.dataframe(shown_frame(frame), hide_index=True, width="stretch",
                 column_config={"score": PERCENT, **{label: PERCENT for label in labels_of(results)}})
    st.caption("Faces are numbered row by row, left to right; the box is x, y, width, height in pixels; "
               "score and the emotions are probabilities in percent.")

    per_row = 4
    for start in range(0, len(results), per_row):
        columns = st.columns(per_row)
        for offset, result in enumerate(results[start:start + per_row]):
            columns[offset].altair_chart(_common.probability_chart(
                result.probs, f"Face {start + offset + 1}: {result.label} {result.score:.0%}", height=260),
                width="stretch")
    return results


# --- the page ---------------------------------------------------------------------------

st.title("Emotions in photos")
st.caption("Photos are analysed on this computer; nothing is uploaded anywhere.")

with st.sidebar:
    st.header("Face detection")
    detector_choice = st.radio("Face detector", ["Built-in (BlazeFace)", "YuNet (your .onnx file)"],
                               key="detector", help="The built-in detector needs no file. YuNet is yours to "
                               "supply: a face_detection_yunet .onnx file from OpenCV's model zoo.")
    use_yunet = detector_choice.startswith("YuNet")
    yunet_path = ""
    if use_yunet:
        yunet_path = st.text_input("Path of the YuNet .onnx file", key="yunet_path",
                                   placeholder="/path/to/face_detection_yunet_2023mar.onnx")
        yunet_path = _access.allowed_path(yunet_path.strip().strip("\"'"), "YuNet file") if yunet_path.strip() else ""
    min_face = st.slider("Smallest face (% of the photo's shorter side)", 1, 20, 3, key="min_face",
                         help="Smaller finds smaller faces, more slowly. Faces under 32 pixels are "
                         "never looked for: too small to read an emotion from.")
    st.toggle("Emoji overlay", key="image_emoji",
              help="Cover each face with its emotion's emoji (drawn by the app), in the picture and its PNG.")
    show_keypoints = st.toggle("Show facial keypoints", key="image_keypoints",
                               help="68 landmarks on every face (jaw, brows, nose, eyes, mouth), drawn and "
                                    "added to the CSV and JSON downloads.")

if use_yunet and not yunet_path:
    st.sidebar.info("Enter the path of a YuNet .onnx file; the built-in detector is used meanwhile.")
recognizer, settings = _common.load_recognizer("yunet" if yunet_path else "builtin", yunet_path, min_face / 100)
if recognizer is not None:
    st.caption(_common.model_caption(recognizer.classifier, "photos"))
if settings is not None and st.session_state.get("image_emoji"):
    settings = settings + (EMOJI_ON,)
if show_keypoints:
    try:
        from emotion.keypoints import shared_model

        shared_model()
    except Exception as error:  # noqa: BLE001 - one line, and the photos still show
        st.sidebar.warning(f"Facial keypoints are unavailable: {_common.one_line(error)}")
        show_keypoints = False

uploads = st.file_uploader("Photos", type=list(_common.PHOTO_TYPES), accept_multiple_files=True,
                           key="photos", help="JPEG, PNG, WebP or BMP; several at once if you like.")
samples = _common.sample_photos()
if samples:
    sample = st.selectbox("Try a sample photo", [p.name for p in samples], index=None, key="sample",
                          placeholder="Choose a sample photo")
else:
    sample = None
    st.caption(f"No sample photos yet (add some to `{_common.SAMPLES_DIR.name}/` to list them here).")

photos: list[tuple[str, bytes]] = [(upload.name, upload.getvalue()) for upload in uploads or []]
if sample:
    try:
        photos.append((sample, (_common.SAMPLES_DIR / sample).read_bytes()))
    except OSError as error:
        st.error(f"{sample} cannot be read: {_common.one_line(error)}")

analysed: list[tuple[str, list]] = []  # (file name, [FaceResult, ...]) for every photo that could be used
# Many photos: one table and one download for all, through the library's batch code.
many = recognizer is not None and len(photos) > _batch.MANY_PHOTOS
if many:
    _batch.show_batch(photos, recognizer, settings)
# One place for the prompt (no photos yet) and then the progress (photos being analysed): the
# prompt is gone the moment photos are given, and the progress once all are shown.
status = st.empty()
if recognizer is not None and not many:
    if not photos:
        status.info("Upload photos or choose a sample to see the emotions on every face.", icon=":material/photo:")
    # Photos this session has not had analysed with these settings yet get a progress bar (a
    # photo already seen comes from the cache at once: no bar flickers on every rerun).
    seen = st.session_state.setdefault("image_analysed", set())
    if len(seen) > 1000:  # bounded: a long session forgets, and at worst shows a bar again
        seen.clear()
    keys = [(hashlib.sha256(data).hexdigest(), name, settings) for name, data in photos]
    new = [key for key in keys if key not in seen]
    for index, ((name, data), key) in enumerate(zip(photos, keys)):
        if key in new:
            done = new.index(key)
            status.progress(done / len(new), text=f"Finding the faces and reading their emotions: {name} "
                                                  f"(photo {done + 1} of {len(new)})…")
        with st.container(border=True):
            results = show_photo(index, name, data, recognizer, settings, show_keypoints)
        seen.add(key)
        if results is not None:
            analysed.append((name, results))
    if photos:
        status.empty()

# --- spoken announcements -------------------------------------------------------------
# Speak once per new set of photos (not on every rerun): the faces of the newest photo.
voice = _voice.voice_settings()
spoken_for = tuple((name, tuple(r.label for r in results)) for name, results in analysed)
if voice.enabled and analysed and spoken_for != st.session_state.get("voice_spoken_for"):
    st.session_state.voice_spoken_for = spoken_for
    _voice.say([r.label for r in analysed[-1][1]], voice)
_voice.player(voice)
