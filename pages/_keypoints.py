"""The Training page's facial-keypoints tab: inspect a keypoint model (NME against the mean-shape
baseline, loss curves, error per landmark group, held-out examples) and train one in the
background. The work is in ``emotion.keypoints``; this only shows it."""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from emotion import keypoints
from emotion.access import check_name
from emotion.classifier import models_dir, read_card
from emotion.evaluation import file_key
from emotion.jobs import runs_dir
from pages import _access, _common

REFRESH_S = 1.0


@st.cache_data(max_entries=8, show_spinner="Predicting the held-out examples…")
def examples_png(key: tuple) -> bytes:
    """Held-out crops with true (green) and predicted (red) points, as PNG; cached per model file."""
    import io

    from PIL import Image

    crops, true, predicted = keypoints.held_out_examples(key[0], count=8)
    buffer = io.BytesIO()
    Image.fromarray(keypoints.example_grid(crops, true, predicted)).save(buffer, "PNG")
    return buffer.getvalue()


def loss_chart(history: list[dict], epochs: int | None = None) -> alt.Chart:
    rows = [{"epoch": row["epoch"], "loss": row[name], "series": series}
            for row in history for name, series in (("loss", "training"), ("val_loss", "validation"))
            if name in row]
    frame = pd.DataFrame(rows, columns=["epoch", "loss", "series"])
    x = alt.X("epoch:Q", title="epoch", scale=alt.Scale(domain=[0, epochs]) if epochs else alt.Undefined)
    return alt.Chart(frame).mark_line(point=True).encode(
        # Log scale: an early spike of the validation loss would flatten every later epoch.
        x=x, y=alt.Y("loss:Q", title="mean abs. error (fraction of the crop)", scale=alt.Scale(type="log")),
        color=alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["epoch:Q", "loss:Q", "series:N"],
    ).properties(title="Loss", height=220, autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))


def group_chart(test: dict) -> alt.Chart:
    rows = [{"group": group, "NME": values["nme"], "predictor": predictor}
            for predictor, key in (("model", "model"), ("mean shape", "mean_shape"))
            for group, values in test[key]["groups"].items()]
    frame = pd.DataFrame(rows)
    return alt.Chart(frame).mark_bar().encode(
        x=alt.X("group:N", title=None, sort=list(keypoints.GROUPS), axis=alt.Axis(labelAngle=0)),
        xOffset="predictor:N",
        y=alt.Y("NME:Q", axis=alt.Axis(format="%"), title="NME (held-out people)"),
        color=alt.Color("predictor:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["group:N", "predictor:N", alt.Tooltip("NME:Q", format=".1%")],
    ).properties(title="Error per landmark group", height=220,
                 autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))


def inspect(path: Path, later: list) -> None:
    """One keypoint model; its examples (Keras and the data: seconds) go on ``later`` as (place, draw)."""
    card = read_card(path)
    test = card.get("metrics", {}).get("test")
    if not test:
        st.warning(f"{path.name} has no test figures in its card.", icon=":material/warning:")
        return
    people = card.get("held_out_people", [])
    columns = st.columns(4)
    columns[0].metric("NME, unseen people", f"{card['nme']:.1%}",
                      help="Mean landmark error / distance of the outer eye corners, on people never "
                           "seen in training")
    columns[1].metric("Mean shape NME", f"{card['nme_baseline']:.1%}",
                      help="The baseline: the training faces' average landmarks, for every face")
    columns[2].metric("Error at 96 px", f"{card['pixel_error']:.2f} px",
                      help=f"Mean shape: {card['pixel_error_baseline']:.2f} px")
    columns[3].metric("Held-out people", f"{len(people)}",
                      help=f"{test['model']['faces']} crops of people never seen in training")
    training = card.get("training", {})
    st.caption(f"{card.get('parameters', 0):,} parameters · {training.get('epochs', '?')} epochs "
               f"(best {training.get('best_epoch', '?')}) · {training.get('seconds', 0) / 60:.0f} min of training · "
               f"{card.get('data', {}).get('train_crops', '?')} training crops, split by person")
    left, right = st.columns(2)
    left.altair_chart(loss_chart(training.get("history", [])), width="stretch")
    right.altair_chart(group_chart(test), width="stretch")
    st.markdown("**Held-out examples** (true points green, predicted red)")
    place = st.empty()
    place.caption("The examples follow once the rest of the page is drawn.")

    def draw_examples() -> None:
        try:
            st.image(examples_png(file_key(path)), width="stretch")
        except Exception as error:  # noqa: BLE001 - the data may be missing here: one line
            st.info(f"Examples unavailable: {_common.one_line(error)}", icon=":material/info:")

    later.append((place, draw_examples))
    with st.expander("Model card"):
        shown = {k: v for k, v in card.items() if k not in ("mean_shape",)}
        st.code(json.dumps(shown, indent=1)[:20000], language="json")


def progress() -> None:
    """The running keypoint training, redrawn every second (a fragment with a timer, only while
    a run is in progress)."""
    job = keypoints.current_job()
    if job is None:
        return
    if not job.running:
        st.rerun()
    history = job.history()
    st.progress(min(len(history) / job.epochs, 1.0),
                text=f"Training {job.out_path.name}: epoch {len(history) + 1} of {job.epochs} · "
                     f"{job.elapsed() / 60:.1f} min")
    st.button("Stop", key="kp_stop", icon=":material/stop:", on_click=job.stop,
              help="End after the current batch and keep the best epoch so far")
    if history:
        st.altair_chart(loss_chart(history, job.epochs), width="stretch")


def train() -> None:
    job = keypoints.current_job()
    if job is not None and job.running:
        st.fragment(progress, run_every=REFRESH_S)()
        return
    if job is not None:
        status, line = job.outcome()
        (st.success if status == "done" else st.error)(f"Keypoint training: {line}")
    with st.form("kp_train", border=False):
        left, right = st.columns(2)
        name = left.text_input("Model name", "facemood-keypoints-mine", key="kp_name",
                               help="Saved as models/<name>.keras with its card")
        epochs = right.number_input("Epochs", 1, 200, 20, key="kp_epochs",
                                    help="About a minute or two per epoch on two CPU cores")
        started = st.form_submit_button("Start", icon=":material/play_arrow:")
    if started:
        try:
            name = check_name(name, suffix=".keras")
            if f"{name}.keras" == keypoints.DEFAULT_MODEL_NAME:
                raise ValueError("that is the shipped keypoint model's name: choose another")
            run_dir = runs_dir() / f"keypoints-{name}"
            keypoints.start_job(models_dir() / f"{name}.keras", int(epochs), run_dir,
                                st.session_state.get("owner"))
        except Exception as error:  # noqa: BLE001 - one line, never a traceback
            st.error(_common.one_line(error), icon=":material/error:")
            return
        st.rerun()


def section() -> list:
    """The whole tab; returns the slow parts as (place, draw) for the page to draw last."""
    later: list = []
    st.markdown("A second model finds 68 facial landmarks (jaw, brows, nose, eyes, mouth) on each face. "
                "It is measured on people never seen in training, against a baseline that always "
                "answers the average face.")
    found = keypoints.keypoint_models()
    if found:
        chosen = st.selectbox("Keypoint model", found, format_func=lambda p: p.name, key="kp_model")
        inspect(chosen, later)
    else:
        st.info("No keypoint model in the models folder yet: train one below.", icon=":material/info:")
    st.subheader("Train a keypoint model")
    # The password box (when training needs one) is on the "Train a model" tab: one per page.
    if _access.may_train():
        train()
    elif _access.policy().training == "password":
        st.info("Unlock training in the **Train a model** tab to train here.", icon=":material/lock:")
    else:
        st.info("Training is turned off on this server.", icon=":material/block:")
    return later
