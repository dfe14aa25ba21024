"""Capture: a dataset of your own faces from the webcam, and a training set made from it.

The camera runs over WebRTC as on the Webcam page (streamlit-webrtc, through ``pages._webrtc``);
every frame goes to an ``emotion.capture.CaptureFeed`` on the video thread, which hands it to
the current ``Capturer`` once **Start** made one: nothing is saved before. The live numbers
and the preview strip are redrawn twice a second by streamlit-webrtc's documented ``while``
loop at the end of the script (any click ends that script run and starts the next).

Capturing, deleting and making datasets write files on the server, so they follow the
server's training setting (``pages._access``). A dataset is a name (a folder under the
project's ``datasets/``) or a path inside an allowed folder, checked as the Training page
checks its data paths.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from emotion import LABELS
from emotion.access import DATASETS_DIR, PathRefused, check_name
from emotion.capture import (MAX_COUNT, CaptureError, CaptureFeed, Capturer, check_label, delete_label,
                             label_counts)
from emotion.dataset import FORMATS, DatasetCreationError, create_dataset, labels_file
from pages import _access, _common
from pages._webrtc import ice_servers, webrtc

_common.through_app()  # a first visit to this page on a fresh server goes through app.py

OWN_LABEL = "Your own label…"
REFRESH_S = 0.5
TRANSLATIONS = {
    "start": "Camera on",
    "stop": "Camera off",
    "select_device": "Choose a camera",
    "media_api_not_available": "This browser cannot share a camera with this page (it needs localhost or https).",
    "device_ask_permission": "Allow this page to use your camera.",
    "device_not_available": "No camera was found. Connect one and try again.",
    "device_access_denied": "The camera is blocked for this page. Allow it in the browser's address bar.",
}


def dataset_folder(text: str) -> Path:
    """The dataset a visitor named: a plain name is a folder under ``datasets/``; a path must lie
    in ``datasets/`` or an allowed data folder. PathRefused or ValueError in one line."""
    text = (text or "").strip()
    if "/" not in text and "\\" not in text and not text.startswith("~"):
        return DATASETS_DIR / check_name(text, "dataset")
    policy = _access.policy()
    writable = dataclasses.replace(policy, data_dirs=policy.data_dirs + (DATASETS_DIR,))
    return writable.data_path(text)


def shown(path: Path) -> str:
    """A path as the page shows it: relative to the app's folder when inside it."""
    try:
        return str(path.resolve().relative_to(_common.ROOT.resolve()))
    except ValueError:
        return str(path)


def feed() -> CaptureFeed:
    if "capture_feed" not in st.session_state:
        st.session_state["capture_feed"] = CaptureFeed()
    return st.session_state["capture_feed"]


def _start(dataset: Path, label: str, count: int, gap: float) -> None:
    try:
        capturer = Capturer(dataset, label, count, gap_s=gap, started=True)
    except (CaptureError, OSError) as error:
        st.session_state["capture_problem"] = _common.one_line(error)
        return
    st.session_state.pop("capture_problem", None)
    feed().capturer = capturer
    st.session_state["capture_last"] = capturer


def _pause_or_resume() -> None:
    capturer = feed().capturer
    if capturer is not None:
        capturer.resume() if capturer.status().paused else capturer.pause()


def _stop() -> None:
    feed().capturer = None


def live_status(capturer: Capturer | None, camera_on: bool) -> None:
    """The capture's count, progress and the strip of its last crops."""
    if capturer is None:
        st.caption("Nothing is saved until you press **Start**." + ("" if camera_on else
                   " Turn the camera on first (**Camera on** under the video) to see yourself."))
        return
    status = capturer.status()
    running = feed().capturer is capturer
    columns = st.columns(3)
    columns[0].metric("Saved", f"{status.saved} / {status.count}")
    columns[1].metric("Frames seen", f"{status.frames:,}")
    columns[2].metric("State", "done" if status.done else "paused" if status.paused else
                      "capturing" if running else "stopped")
    st.progress(status.saved / status.count)
    if status.done:
        st.success(f"Saved {status.saved} crops of **{status.label}** in `{shown(status.folder)}`.",
                   icon=":material/check_circle:")
    elif running and not camera_on:
        st.info("Turn the camera on (**Camera on** under the video): saving starts with the first face.",
                icon=":material/videocam:")
    if status.problem:
        st.warning(status.problem, icon=":material/warning:")
    if status.recent:
        st.caption("Last crops, newest last (as the model sees faces: grey, 48x48)")
        st.image(status.recent[::-1][:8][::-1], width=72)


def counts_section(dataset: Path, busy_label: str | None) -> None:
    counts = label_counts(dataset)
    st.subheader("In this dataset")
    if not any(counts.values()):
        st.caption(f"No images yet in `{shown(dataset)}`.")
        return
    frame = pd.DataFrame({"label": list(counts), "images": list(counts.values())})
    st.dataframe(frame, hide_index=True, width="content")
    labels = [label for label, n in counts.items() if n]
    columns = st.columns([2, 1])
    label = columns[0].selectbox("Delete the images of one label", labels, key="capture_delete_label")
    asked = st.session_state.get("capture_delete_asked")
    if asked != (str(dataset), label):
        columns[1].button("Delete…", key="capture_delete", icon=":material/delete:",
                          on_click=lambda: st.session_state.update(capture_delete_asked=(str(dataset), label)))
        return
    if label == busy_label:
        st.warning("Stop the capture of this label before deleting it.", icon=":material/warning:")
        st.session_state.pop("capture_delete_asked", None)
        return
    with st.container(border=True):
        st.warning(f"Delete all {counts[label]} images of **{label}** in `{shown(dataset)}`? This cannot be undone.",
                   icon=":material/delete_forever:")
        yes, no = st.columns(2)
        if yes.button(f"Yes, delete {counts[label]} images", key="capture_delete_yes", type="primary"):
            st.session_state.pop("capture_delete_asked", None)
            try:
                deleted = delete_label(dataset, label)
            except (CaptureError, OSError) as error:
                st.session_state["capture_deleted"] = f"Not deleted: {_common.one_line(error)}"
            else:
                st.session_state["capture_deleted"] = f"Deleted {deleted} images of {label}."
            st.rerun()
        if no.button("Cancel", key="capture_delete_no"):
            st.session_state.pop("capture_delete_asked", None)
            st.rerun()


def create_section(dataset: Path) -> None:
    st.subheader("Create a training set")
    st.caption("Grey faces with a train/test split kept per label, from this dataset's images (or photos sorted "
               "into label folders: each photo is cut to its largest face; photos without one are skipped).")
    columns = st.columns(2)
    name = columns[0].text_input("Name of the new set (a folder under datasets/)", value=f"{dataset.name}-set",
                                 key="capture_set_name")
    fmt = columns[1].radio("Format", FORMATS, key="capture_set_format", horizontal=True,
                           format_func={"folders": "PNG folders (train/, test/)", "csv": "FER2013 CSV"}.get)
    columns = st.columns(3)
    size = columns[0].number_input("Face size (pixels)", 16, 256, 48, key="capture_set_size")
    test = columns[1].slider("Test share", 0.0, 0.5, 0.2, 0.05, key="capture_set_test")
    seed = columns[2].number_input("Seed", 0, 2**31 - 1, 0, key="capture_set_seed")
    if not st.button("Create", key="capture_create", icon=":material/dataset:"):
        return
    try:
        out = DATASETS_DIR / check_name(name, "dataset", ".csv")
    except ValueError as error:
        st.error(_common.one_line(error), icon=":material/error:")
        return
    bar = st.progress(0.0, text="Reading the pictures…")
    progress = lambda done, total, file: bar.progress(done / max(total, 1), text=f"{done}/{total} {file}")  # noqa: E731
    try:
        summary = create_dataset(dataset, out, size=size, test=test, seed=seed, fmt=fmt, progress=progress)
    except (DatasetCreationError, OSError) as error:
        bar.empty()
        st.error(_common.one_line(error), icon=":material/error:")
        return
    bar.empty()
    train, test_n = summary.total
    st.success(f"Wrote `{shown(summary.out)}`: {train} faces to train on, {test_n} to test on. Train on it on "
               f"the **Training** page (data path `{summary.out}`).", icon=":material/check_circle:")
    st.dataframe(pd.DataFrame([{"label": label, "train": a, "test": b} for label, (a, b) in summary.counts.items()]),
                 hide_index=True, width="content")
    if summary.label_index:
        st.caption("The CSV's emotion column: " + ", ".join(f"{v} {k}" for k, v in summary.label_index.items())
                   + f" (also in `{labels_file(summary.out).name}`).")
    for warning in summary.warnings:
        st.warning(warning, icon=":material/warning:")
    if summary.no_face:
        st.info(f"Skipped, no face found ({len(summary.no_face)}): " + ", ".join(summary.no_face),
                icon=":material/face:")
    if summary.unreadable:
        st.info(f"Skipped, not a usable image ({len(summary.unreadable)}): " + "; ".join(summary.unreadable),
                icon=":material/broken_image:")


# --- the page ---------------------------------------------------------------------------

st.title("Capture your own faces")
st.caption("Pick a label, look at the camera and press Start: the largest face in the video is saved as a "
           "crop under that label, a few times a second, for a dataset of your own. Nothing leaves this computer.")

if not _access.training_gate():
    st.caption("Capturing writes files on the server, so it follows the server's training setting.")
    st.stop()

current = feed().capturer
busy = current is not None and not current.done

settings, camera = st.columns([2, 3])
with settings:
    choice = st.selectbox("Label", list(LABELS) + [OWN_LABEL], index=list(LABELS).index("happy"),
                          key="capture_label_choice", disabled=busy)
    label_text = choice if choice != OWN_LABEL else st.text_input(
        "Your label", key="capture_own_label", placeholder="e.g. smile", disabled=busy,
        help="Letters, digits, '-', '_' or '.', starting with a letter or digit (at most 64).")
    count = st.number_input("Images to save", 1, MAX_COUNT, 100, key="capture_count", disabled=busy)
    gap = st.slider("Seconds between two saves", 0.1, 5.0, 0.5, 0.1, key="capture_gap", disabled=busy,
                    help="So that the crops differ: move your head a little, change the light.")
    dataset_text = st.text_input("Dataset", "mine", key="capture_dataset", disabled=busy,
                                 help="A name (a folder under datasets/ in the app's folder), or the path of a "
                                      "folder inside datasets/ or an allowed data folder.")
    problem, dataset, label = None, None, None
    try:
        dataset = dataset_folder(dataset_text)
    except (PathRefused, ValueError) as error:
        problem = _common.one_line(error)
    if dataset is not None and (choice != OWN_LABEL or label_text.strip()):
        try:
            label = check_label(label_text)
        except CaptureError as error:
            problem = str(error)
    if problem:
        st.error(problem, icon=":material/error:")
    elif dataset is not None and label is not None:
        st.caption(f"Images go to `{shown(dataset / label)}/`.")

with camera:
    servers, ice_problem = ice_servers()  # none by default: nothing outside is contacted
    if ice_problem:
        st.warning(ice_problem, icon=":material/warning:")
    try:
        with feed().streamer_lock:
            context = webrtc().webrtc_streamer(
                key="capture", mode=webrtc().WebRtcMode.SENDRECV, rtc_configuration={"iceServers": servers},
                media_stream_constraints={"video": {"width": {"ideal": 640}, "height": {"ideal": 480}},
                                          "audio": False},
                video_frame_callback=feed().video_frame_callback, async_processing=True,
                translations=TRANSLATIONS,
                # Shown as a mirror, as video calls do; the crops are saved as the camera sees.
                video_html_attrs={"autoPlay": True, "muted": True, "playsInline": True, "controls": False,
                                  "style": {"width": "100%", "transform": "scaleX(-1)"}})
    except Exception as error:  # noqa: BLE001 - say so in one line
        context = None
        st.error(f"The camera cannot start here ({_common.one_line(error)}).", icon=":material/videocam_off:")
    camera_on = bool(context is not None and context.state.playing)
    buttons = st.columns(3)
    can_start = label is not None and dataset is not None and not problem and not busy
    buttons[0].button("Start", key="capture_start", type="primary", icon=":material/play_arrow:",
                      disabled=not can_start, on_click=_start, args=(dataset, label, count, gap),
                      width="stretch")
    paused = busy and current.status().paused
    buttons[1].button("Resume" if paused else "Pause", key="capture_pause", disabled=not busy,
                      icon=":material/play_circle:" if paused else ":material/pause:", on_click=_pause_or_resume,
                      width="stretch")
    buttons[2].button("Stop", key="capture_stop", disabled=not busy, icon=":material/stop:", on_click=_stop,
                      width="stretch")
    if st.session_state.get("capture_problem"):
        st.error(st.session_state["capture_problem"], icon=":material/error:")

slot = st.empty()
shown_capturer = current or st.session_state.get("capture_last")
with slot.container():
    live_status(shown_capturer, camera_on)

if dataset is not None:
    if st.session_state.get("capture_deleted"):
        st.info(st.session_state.pop("capture_deleted"), icon=":material/delete:")
    counts_section(dataset, current.label if busy and current.dataset == dataset else None)
    create_section(dataset)

# Last, so that everything above is drawn: the live numbers, while the camera plays and a capture
# runs. Any click starts a new script run, which ends this one at its next Streamlit call.
if camera_on and busy:
    while True:
        time.sleep(REFRESH_S)
        with slot.container():
            live_status(current, True)
        if current.done or feed().capturer is not current:
            st.rerun()  # the counts below are stale now
