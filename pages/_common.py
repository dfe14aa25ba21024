"""What the pages share: the app's page list, the cached model and recognizer, and problems
shown as one line.

Streamlit does not list this file as a page (its name starts with "_"); pages
import it as ``from pages import _common`` (the app's folder is on ``sys.path``
while a page runs). Importing it does nothing else, so pages import it in any order,
from any session's thread, at the same time.
"""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

import emotion
import emotion.common
import emotion.evaluation
from emotion.annotate import EMOTION_COLORS, label_color

# The app's pages in menu order, as app.py's st.navigation shows them: (file, title, icon).
# The first is the default page (/). Add a page here.
PAGES = (
    ("pages/home.py", "Home", ":material/home:"),
    ("pages/image.py", "Image", ":material/image:"),
    ("pages/webcam.py", "Webcam", ":material/videocam:"),
    ("pages/video.py", "Video", ":material/movie:"),
    ("pages/training.py", "Training", ":material/model_training:"),
    ("pages/capture.py", "Capture", ":material/add_a_photo:"),
)
ROUTED_KEY = "_facemood_routed"  # set by app.py in every session it runs in
_HANDED_OVER_KEY = "_facemood_handed_over"


def app_pages() -> list:
    """``PAGES`` as ``st.Page`` objects, for ``st.navigation``."""
    return [st.Page(path, title=title, icon=icon, default=index == 0)
            for index, (path, title, icon) in enumerate(PAGES)]


def through_app() -> None:
    """Make sure this page runs inside app.py's navigation; every page calls it first.

    With a ``pages/`` folder beside app.py, a fresh Streamlit server starts in its legacy
    pages-folder mode: a first visit to a deep link (/image) runs that page file alone,
    without app.py, and lists every file of ``pages/`` as a page. Streamlit leaves that
    mode, for every session, as soon as any session calls ``st.navigation`` (documented
    on st.navigation). So a page run without app.py calls it with the app's pages and
    reruns: the rerun goes through app.py, on the same page. Once per session at most,
    so a page run some other way (``streamlit run pages/x.py``) just shows itself.
    """
    if st.session_state.get(ROUTED_KEY) or st.session_state.get(_HANDED_OVER_KEY):
        return
    st.session_state[_HANDED_OVER_KEY] = True
    st.navigation(app_pages(), position="hidden")
    st.rerun()

ROOT = Path(__file__).resolve().parent.parent
SAMPLES_DIR = ROOT / "images"  # sample photos offered on the Image page
PHOTO_TYPES = ("jpg", "jpeg", "png", "webp", "bmp")

TRAIN_HINT = ("train one with `python -m emotion train --data fer2013.csv.gz "
              "--out models/facemood-vgg.keras`, or set `FACEMOOD_MODEL` to a working .keras file")

# One analysis at a time: OpenCV detectors keep per-call state and are shared by
# every browser tab through st.cache_resource. (A local app; two cores at most.)
ANALYSIS_LOCK = threading.Lock()


one_line = emotion.common.one_line  # an exception as a single line a user can read (no traceback)


def model_key(path: str | Path | None = None) -> tuple[str, int, int]:
    """What identifies a model file (default: the one photos use) for the caches: its path,
    and its time and size, so a retrained or replaced file is loaded again."""
    return emotion.evaluation.file_key(path or emotion.default_model_path(photos=True))


@st.cache_resource(show_spinner="Loading the emotion model…", max_entries=4)
def _classifier(key: tuple[str, int, int], runtime: str = "auto") -> emotion.EmotionClassifier:
    classifier = emotion.EmotionClassifier.load(key[0], runtime=runtime)  # errors are raised, never cached
    _freeze_long_lived_objects()
    return classifier


def _freeze_long_lived_objects() -> None:
    """Leave TensorFlow, Keras and the model out of every later garbage collection.

    Streamlit ends every script run of every session (each fragment rerun too) with
    ``keras.backend.clear_session()``, which runs a full collection, and (unless
    ``runner.postScriptGC`` is off) another one. With TensorFlow loaded a full collection
    walks some 400,000 objects: about 0.2 CPU-s, holding the interpreter lock. Objects
    alive now live as long as the server; frozen, a collection walks only what came
    after (microseconds), and that is still collected, so memory stays bounded.
    """
    gc.collect()
    gc.freeze()


# Photos get the model's exact probabilities (Keras, or its float TFLite twin); live video its
# int8 twin when it has one: several times less CPU a face, nearly the same labels (the card says).
RUNTIME_WORDS = {"keras": "Keras", "tflite": "its TFLite twin (the same probabilities as Keras)",
                 "tflite-int8": "its int8 TFLite twin (fast, for live video)"}


def model_caption(classifier: emotion.EmotionClassifier, use: str) -> str:
    """Which model and runtime a page uses, in a line."""
    return f"Model for {use}: {classifier.name}, run by {RUNTIME_WORDS.get(classifier.runtime, classifier.runtime)}."


def load_classifier(runtime: str = "auto") -> emotion.EmotionClassifier | None:
    """The active model (cached), or None after showing why it cannot be used. ``runtime``:
    see :meth:`emotion.EmotionClassifier.load` ("fast" for live video)."""
    try:
        return _classifier(model_key(emotion.default_model_path(photos=runtime != "fast")), runtime)
    except emotion.ModelError as error:
        st.error(f"The emotion model cannot be used: {one_line(error)}. To fix this, {TRAIN_HINT}.",
                 icon=":material/error:")
    except Exception as error:  # noqa: BLE001 - never a traceback on the page
        st.error(f"The emotion model could not be loaded ({type(error).__name__}: {one_line(error)}). "
                 f"To fix this, {TRAIN_HINT}.", icon=":material/error:")
    return None


@st.cache_resource(show_spinner=False, max_entries=8)
def _recognizer(key: tuple[str, int, int], detector: str, detector_path: str,
                min_face: float) -> emotion.EmotionRecognizer:
    face_detector = emotion.make_detector("yunet", detector_path) if detector == "yunet" else None
    return emotion.EmotionRecognizer(_classifier(key), face_detector, min_face=min_face)


def load_recognizer(detector: str = "builtin", detector_path: str = "", min_face: float = 0.03):
    """``(recognizer, settings)`` for the active model and these detector settings, cached;
    ``settings`` is a hashable key for caching results. ``(None, None)`` after an error is shown.

    A YuNet file that cannot be used gives a warning and the built-in detector.
    """
    if load_classifier() is None:
        return None, None
    key = model_key()
    if detector == "yunet":
        try:
            return _recognizer(key, "yunet", detector_path, min_face), (key, "yunet", detector_path, min_face)
        except (OSError, ValueError, RuntimeError) as error:
            st.warning(f"YuNet detector not used: {one_line(error)}. Using the built-in detector instead.",
                       icon=":material/warning:")
    try:
        return _recognizer(key, "builtin", "", min_face), (key, "builtin", min_face)
    except Exception as error:  # noqa: BLE001
        st.error(f"The face detector could not be started: {one_line(error)}", icon=":material/error:")
        return None, None


def percent(value) -> str:
    """A card's share as "62.1%"; "–" where the card has none."""
    return f"{value:.1%}" if isinstance(value, (int, float)) else "–"


def percent_table(table: pd.DataFrame, shares) -> None:
    """``table`` with its ``shares`` columns (0..1) shown as percentages, all to one decimal:
    Streamlit's "percent" format shows as many decimals as a value has."""
    shown = table.copy()
    shown[list(shares)] = shown[list(shares)].astype(float) * 100
    st.dataframe(shown, column_config={name: st.column_config.NumberColumn(format="%.1f%%") for name in shares})


def sample_photos() -> list[Path]:
    """The photos in ``SAMPLES_DIR`` (possibly none), by name."""
    try:
        return sorted((p for p in SAMPLES_DIR.iterdir()
                       if p.is_file() and p.suffix.lower().lstrip(".") in PHOTO_TYPES),
                      key=lambda p: p.name.lower())
    except OSError:
        return []


# The charts' colours are the boxes' colours, so a bar reads like the label on the photo.
EMOTION_SCALE = alt.Scale(domain=list(emotion.LABELS),
                          range=["#%02x%02x%02x" % EMOTION_COLORS[label] for label in emotion.LABELS])


def label_scale(labels) -> alt.Scale:
    """EMOTION_SCALE, or for a personal model's labels their colours on the photos."""
    if list(labels) == list(emotion.LABELS):
        return EMOTION_SCALE
    return alt.Scale(domain=list(labels), range=["#%02x%02x%02x" % label_color(label) for label in labels])


def probability_chart(probs: dict[str, float], title: str | None = None, height: int = 200,
                      tooltip_format: str = ".1%") -> alt.Chart:
    """A horizontal bar per emotion, in LABELS order (a personal model's own labels in its
    order), coloured as on the photos."""
    labels = list(probs)
    frame = pd.DataFrame({"emotion": labels, "probability": [probs[label] for label in labels]})
    return alt.Chart(frame, height=height, **({"title": title} if title else {})).mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"), title=None),
        # Every emotion labelled (Vega hides every other label of a short band axis by default).
        y=alt.Y("emotion:N", sort=labels, title=None, axis=alt.Axis(labelOverlap=False, labelLimit=0)),
        color=alt.Color("emotion:N", scale=label_scale(labels), legend=None),
        tooltip=["emotion", alt.Tooltip("probability:Q", format=tooltip_format)],
    )
