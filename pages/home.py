"""Home: what facemood does, and the model card of the model in use."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from emotion import LABELS
from pages import _common

_common.through_app()  # a first visit to this page on a fresh server goes through app.py

st.title("facemood")
st.markdown(
    "facemood finds the faces in your photos and reads one of seven emotions on each: "
    + ", ".join(LABELS) + ". "
    "Everything runs on this computer: photos are analysed offline and nothing is uploaded anywhere. "
    "Open **Image** in the sidebar to try it."
)


def percent(value) -> str:
    return f"{value:.1%}" if isinstance(value, (int, float)) else "–"


def show_card(classifier) -> None:
    card = classifier.card
    st.header(f"Model: {classifier.name}")
    st.caption(f"File: `{classifier.path}`" + (f" · created {card['created']}" if card.get("created") else ""))
    if not card:
        st.info("This model has no model card (a .json file of the same name beside it), "
                "so its training and accuracy are unknown.")
        return

    data = card.get("data", {})
    size = card.get("file_size_bytes") or (classifier.path.stat().st_size if classifier.path else None)
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
        cols[2 * i].metric(f"{split} accuracy", percent(metrics[split].get("accuracy")),
                           help=f"{n:,} faces" if n else None)
        cols[2 * i + 1].metric(f"{split} macro-F1", percent(metrics[split].get("macro_f1")),
                               help="F1 averaged over the seven emotions (rare ones count as much as common ones)")

    st.subheader("Recall per emotion")
    st.caption("The share of faces showing each emotion that the model reads correctly.")
    recall = pd.DataFrame({split: [metrics[split].get("recall", {}).get(label) for label in LABELS]
                           for split in splits}, index=list(LABELS))
    recall.index.name = "emotion"
    st.dataframe(recall, column_config={s: st.column_config.NumberColumn(format="percent") for s in splits})

    split = splits[-1]
    matrix = metrics[split].get("confusion_matrix")
    if matrix:
        st.subheader(f"Confusion matrix ({split})")
        st.caption("Rows: the true emotion; columns: what the model read.")
        st.dataframe(pd.DataFrame(matrix, index=pd.Index(LABELS, name="true"), columns=list(LABELS)))

    training = card.get("training", {})
    if training.get("epochs_run"):
        st.caption(f"Trained for {training['epochs_run']} epochs; the best was epoch {training.get('best_epoch', '?')}.")


classifier = _common.load_classifier()
if classifier is not None:
    show_card(classifier)
