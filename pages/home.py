"""Home: what facemood does, and the model card of the model in use.

The card is read from its JSON file and shown first; the model itself (TensorFlow takes
seconds to start) is loaded after it, under a spinner, to check that it can be used and
to have it ready for the Image and Webcam pages.
"""

from __future__ import annotations

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

import emotion
from emotion import LABELS
from emotion.classifier import epochs_run, read_card, soup_average, soup_ingredients, warm_start_source
from emotion.common import counted
from pages import _common

_common.through_app()  # a first visit to this page on a fresh server goes through app.py

st.title("facemood")
st.markdown(
    "facemood finds the faces in your photos and reads one of seven emotions on each: "
    + ", ".join(LABELS) + ". "
    "Everything runs on this computer: photos are analysed offline and nothing is uploaded anywhere. "
    "Open **Image** in the sidebar to try it."
)


# The colours of emotion.plots' "page" style (PAGE_CELLS_COLORS, PAGE_DARK_TEXT), written out:
# importing it would load matplotlib before this page shows anything.
CELL_COLORS = ["#1c2a45", "#2a6fb8", "#a8d1ff"]
DARK_TEXT = "#0e1117"


def confusion_chart(matrix, labels=LABELS) -> alt.Chart:
    """The confusion matrix as a heat map with the counts written in: it fits the width of
    any screen (a table of seven emotion columns scrolls sideways on a phone). ``labels``: a
    personal model's own, when not the seven emotions."""
    rows = []
    for true, counts in zip(labels, matrix):
        total = sum(counts) or 1
        rows += [{"true": true, "read": read, "faces": int(count), "share": count / total}
                 for read, count in zip(labels, counts)]
    frame = pd.DataFrame(rows)
    base = alt.Chart(frame).encode(
        x=alt.X("read:N", sort=list(labels), title="what the model read",
                axis=alt.Axis(orient="top", labelAngle=-45, labelLimit=0, labelOverlap=False)),
        y=alt.Y("true:N", sort=list(labels), title="true emotion",
                axis=alt.Axis(labelLimit=0, labelOverlap=False)))
    # Dark navy to light blue (as the Training page's figures): no cell glares on a dark page
    # or fades into a light one; the numbers are white on the dark cells, black on the light.
    cells = base.mark_rect().encode(
        color=alt.Color("share:Q", scale=alt.Scale(domain=[0, 0.5, 1], range=CELL_COLORS),
                        legend=None),
        tooltip=["true", "read", "faces", alt.Tooltip("share:Q", format=".0%", title="share of the row")])
    counts = base.mark_text(fontSize=11).encode(
        text="faces:Q", color=alt.condition("datum.share > 0.6", alt.value(DARK_TEXT),
                                            alt.value("white")))
    return (cells + counts).properties(height=280)


def show_card(path: Path, card: dict) -> None:
    st.header(f"Model: {card.get('name') or path.stem}")
    st.caption(f"File: `{path}`" + (f" · created {card['created']}" if card.get("created") else ""))
    if not card:
        st.info("This model has no model card (a .json file of the same name beside it), "
                "so its training and accuracy are unknown.")
        return

    data = card.get("data", {})
    size = card.get("file_size_bytes") or path.stat().st_size
    params = card.get("parameters")
    cols = st.columns(4)
    cols[0].metric("Architecture", str(card.get("architecture", "–")))
    cols[1].metric("Parameters", f"{params / 1e6:.2f} M" if params else "–")
    cols[2].metric("File size", f"{size / 1e6:.1f} MB" if size else "–")
    faces = data.get("train_faces")
    cols[3].metric("Training faces", f"{faces:,}" if faces else "–")
    if data.get("source"):
        st.markdown(f"Trained on **{data['source']}**"
                    + (f" ({faces:,} faces)" if faces else "")
                    + (f", validated on {data['validation']}" if data.get("validation") else "")
                    + ".")

    metrics = card.get("metrics", {})
    splits = [s for s in ("PublicTest", "PrivateTest") if s in metrics] \
        or [s for s in metrics if s != "Training"]
    if not splits:
        st.info("The model card has no test results.")
        return

    st.subheader("Accuracy on held-out faces")
    cols = st.columns(2 * len(splits))
    for i, split in enumerate(splits):
        n = metrics[split].get("n")
        cols[2 * i].metric(f"{split} accuracy", _common.percent(metrics[split].get("accuracy")),
                           help=f"{n:,} faces" if n else None)
        cols[2 * i + 1].metric(f"{split} macro-F1", _common.percent(metrics[split].get("macro_f1")),
                               help="F1 averaged over the seven emotions (rare ones count as much as common ones)")

    st.subheader("Recall per emotion")
    st.caption("The share of faces showing each emotion that the model reads correctly.")
    labels = list(metrics[splits[-1]].get("recall") or LABELS)  # a personal model's own labels too
    recall = pd.DataFrame({split: [metrics[split].get("recall", {}).get(label) for label in labels]
                           for split in splits}, index=labels)
    recall.index.name = "emotion"
    _common.percent_table(recall, splits)

    split = splits[-1]
    matrix = metrics[split].get("confusion_matrix")
    if matrix:
        st.subheader(f"Confusion matrix ({split})")
        st.caption("Rows: the true emotion; columns: what the model read. Each cell gives the number "
                   "of faces; the lighter the cell, the larger its share of the row.")
        st.altair_chart(confusion_chart(matrix, labels), width="stretch")

    training = card.get("training", {})
    runs, soup = epochs_run(training), soup_ingredients(training)
    if soup:
        what = soup_average(training)
        st.caption(f"The mean of the {what} of {len(soup)} trained models "
                   f"({'an ensemble' if what == 'predictions' else 'a model soup'}, chosen on "
                   f"{training['soup'].get('chosen_on', 'PublicTest')}): "
                   + ", ".join(f"{name} ({how})" for name, how in soup) + ".")
    elif runs:
        source = warm_start_source(training)
        trained = f"Trained for {counted(runs[0], 'epoch')}" + (f" from {source}" if source else "")
        if len(runs) == 1:
            st.caption(f"{trained}; the best was epoch {training.get('best_epoch', '?')}.")
        else:
            st.caption(f"{trained}, then " + ", then ".join(f"{n} more" for n in runs[1:])
                       + f" starting from the model before; the best of the last run was its epoch "
                         f"{training.get('best_epoch', '?')}.")
    runtimes = card.get("runtimes")  # which runtime each kind of page uses (its TFLite twins)
    if isinstance(runtimes, dict) and runtimes:
        st.caption("Runs on " + "; ".join(f"{use}: {how}" for use, how in runtimes.items()) + ".")


model, live = emotion.default_model_path(photos=True), emotion.default_model_path()
if model.is_file():
    show_card(model, read_card(model))
if live != model and live.is_file():  # a shipped photo model: live video keeps one network
    accuracy = (read_card(live).get("metrics", {}).get("PrivateTest") or {}).get("accuracy")
    st.caption(f"This model reads photos and video files. Live video (the Webcam page) uses `{live.name}`, "
               f"one network at a fraction of the CPU a face"
               + (f" (PrivateTest {accuracy:.1%})." if accuracy is not None else "."))
# Missing or not: loading says what is wrong, in one line (and readies the model for the other pages).
_common.load_classifier()
