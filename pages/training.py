"""Training: inspect the models in models/ (curves, confusion matrix, mistakes, card), and
train a new one in the background while watching it learn.

The work is all in the ``emotion`` library: ``emotion.jobs`` runs ``train()`` or a
fine-tune in a background process (one job per server) with a thread-safe progress snapshot,
``emotion.plots`` draws the figures and ``emotion.evaluation`` finds the models and
their mistakes. This page only shows them and maps its controls to a TrainConfig.

The page draws what it can from the model cards first. Keras (several seconds to import)
is loaded only for what needs it: the misclassified faces, drawn last into their place
once everything else is on the page, and a training's start.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import altair as alt
import pandas as pd
import streamlit as st

import emotion
from emotion import LABELS, evaluation, jobs, plots
from emotion.access import PathRefused, display_name
from emotion.classifier import (card_path, epochs_run, models_dir, set_active_model, soup_average, soup_ingredients,
                                warm_start_source)
from emotion.data import DatasetError, default_dataset_path, load_fer2013_csv
from pages import _access, _common

if TYPE_CHECKING:  # emotion.model and emotion.train import Keras: only when a training starts
    from emotion.train import TrainConfig

_common.through_app()  # a first visit to this page on a fresh server goes through app.py

# emotion.model.ARCHITECTURES, named here so that the form needs no Keras (a test keeps
# the two lists, and the parameter counts at width 32, in step). Short: the box is a third wide.
ARCHITECTURE_NAMES = {
    "small": "small: 0.68 M parameters",
    "vgg": "vgg: 1.77 M parameters",
    "resnet": "resnet: 2.80 M parameters",
}
ARCHITECTURE_HELP = ("Parameters at width 32 (More settings). small: 3 conv stages, the fastest; vgg: 4 "
                     "stages of two 3x3 convs, as the shipped model; resnet: 8 residual blocks. All from "
                     "scratch (no ImageNet weights offline).")
OPTIMIZER_NAMES = {"adam": "Adam (AdamW)", "sgd": "SGD, Nesterov momentum 0.9"}
SCHEDULE_NAMES = {"cosine": "cosine (1-epoch warm-up)", "constant": "constant"}
AUGMENTATIONS = (  # checkbox key, label, Augmentation field, value when on
    ("aug_flip", "flip", "flip", True),
    ("aug_rotation", "rotation ±10°", "rotation", 10.0),
    ("aug_shift", "shift ±10 %", "shift", 0.1),
    ("aug_zoom", "zoom ±10 %", "zoom", 0.1),
    ("aug_brightness", "brightness ±20 %", "brightness", 0.2),
)
SOURCES = {"path": "A FER2013 CSV or an image folder on this computer", "upload": "Upload a FER2013 CSV"}


LIVE_REFRESH_S = 1.0  # how often a running training's progress is redrawn
# The live charts' lines: the running training figure within the current epoch, then per epoch.
# Short names: the legend must fit on one line under a chart half the page wide.
LIVE_SERIES = ("within epoch", "training", "validation")
FIGURE_STYLE = "page"  # transparent figures with grey text: they read on the light and the dark theme

# Slow parts of the page (the misclassified faces) as (place, draw): drawn into their place
# after the rest of the page, so the figures and tables, and the Train tab, show at once.
_drawn_last: list[tuple[object, Callable[[], None]]] = []


# --- inspecting a model ---------------------------------------------------------------


@st.cache_data(max_entries=32, show_spinner=False)
def card_figure_png(kind: str, card_key: tuple) -> bytes | None:
    """The ``curves`` or ``confusion`` figure of a card as PNG, cached per card file."""
    card = evaluation.load_card(Path(card_key[0]).with_suffix(".keras"))
    figure = plots.card_figures(card, style=FIGURE_STYLE).get(kind)
    return plots.figure_png(figure) if figure is not None else None


@st.cache_data(max_entries=16, show_spinner=False)
def mistakes_png(key: tuple, _mistakes: evaluation.Mistakes) -> bytes:
    """The grid of a model's misclassified faces as PNG, cached per model file and data."""
    m = _mistakes
    return plots.figure_png(plots.misclassified_figure(m.images, m.true, m.predicted, m.scores,
                                                       style=FIGURE_STYLE))


def class_table(metrics: dict) -> pd.DataFrame:
    labels = list(metrics.get("recall") or LABELS)  # a personal model's own labels too
    matrix = metrics.get("confusion_matrix") or [[0] * len(labels)] * len(labels)
    table = pd.DataFrame({
        "precision": [metrics.get("precision", {}).get(label) for label in labels],
        "recall": [metrics.get("recall", {}).get(label) for label in labels],
        "F1": [metrics.get("f1", {}).get(label) for label in labels],
        "faces": [int(sum(row)) for row in matrix],
    }, index=pd.Index(labels, name="emotion"))
    return table


def show_mistakes(path: Path) -> None:
    """A place for the misclassified faces, drawn last (:func:`draw_the_rest`)."""
    place = st.empty()
    place.caption("The misclassified faces follow once the rest of the page is drawn.")
    _drawn_last.append((place, lambda: draw_mistakes(path)))


def draw_the_rest() -> None:
    """Draw the slow parts into the places kept for them, in page order."""
    while _drawn_last:
        place, draw = _drawn_last.pop(0)
        with place.container():  # in place of the note kept there
            draw()


def draw_mistakes(path: Path) -> None:
    try:
        with st.spinner("Finding the faces this model gets wrong (the first time, this loads the model "
                        "and the test faces)…", show_time=True):
            classifier = _common._classifier(_common.model_key(path))
            mistakes = evaluation.misclassified(path, classifier=classifier)
    except DatasetError as error:
        st.info(f"No misclassified examples: {_common.one_line(error)}.", icon=":material/info:")
        return
    except Exception as error:  # noqa: BLE001 - one line, never a traceback
        st.warning(f"Misclassified examples could not be made: {_common.one_line(error)}",
                   icon=":material/warning:")
        return
    png = mistakes_png((_common.model_key(path), mistakes.data_path, mistakes.split), mistakes)
    st.image(png, caption=f"Misclassified {mistakes.split} faces: the {len(mistakes.true)} most confident "
                          f"mistakes ({mistakes.wrong} wrong of the first {mistakes.checked}); "
                          "true → predicted, with the probability given")


def in_use_by(path: Path) -> str:
    """Which pages use ``path``: with a shipped photo model, photos and live video differ."""
    key = _common.model_key(path)[0]
    photos, live = key == _common.model_key()[0], key == _common.model_key(emotion.default_model_path())[0]
    return {(True, True): "the Image and Webcam pages", (True, False): "the Image and Video pages",
            (False, True): "the Webcam page's live video"}.get((photos, live), "")


def use_button(path: Path, key: str) -> None:
    in_use = in_use_by(path)
    if in_use:
        st.button(f"In use by {in_use}", key=f"use-{key}", disabled=True, icon=":material/check:")
    elif not _access.may_train():
        st.button("Use this model in the Image and Webcam pages", key=f"use-{key}", disabled=True,
                  icon=":material/published_with_changes:",
                  help="Only those who may train on this server can change the model in use")
    elif st.button("Use this model in the Image and Webcam pages", key=f"use-{key}",
                   icon=":material/published_with_changes:"):
        try:
            set_active_model(path)
        except (OSError, emotion.ModelError) as error:
            st.error(f"{path.name} could not be made the active model: {_common.one_line(error)}")
            return
        st.session_state["activated"] = str(path)
        st.rerun()
    if st.session_state.get("activated") == str(path):
        st.success(f"{path.name} is now the model of the Image and Webcam pages.", icon=":material/check:")
        if os.environ.get("FACEMOOD_MODEL"):
            st.warning(f"FACEMOOD_MODEL is set ({os.environ['FACEMOOD_MODEL']}): it wins over this "
                       "choice until it is unset.", icon=":material/warning:")


def model_view(path: Path, key: str, narrow: bool = False) -> None:
    """Everything about one model: figures, per-class table, mistakes, card, a use button.

    ``narrow``: half the page wide (two models side by side): two metrics a row, so that
    the numbers are not cut."""
    card = evaluation.load_card(path)
    st.subheader(card.get("name") or path.stem)
    in_use = in_use_by(path)
    st.caption(f"`{path}`" + (f" · created {card['created']}" if card.get("created") else "")
               + (f" · **in use** by {in_use}" if in_use else ""))
    if not card:
        st.info("This model has no model card (a .json file of the same name beside it), so its "
                "training and accuracy are unknown.", icon=":material/info:")
        use_button(path, key)
        return
    split = plots.report_split(card)
    metrics = (card.get("metrics") or {}).get(split or "", {})
    training = card.get("training") or {}
    cols = st.columns(2) + st.columns(2) if narrow else st.columns(4)
    cols[0].metric(f"{split or 'Test'} accuracy", _common.percent(metrics.get("accuracy")),
                   help=f"{metrics['n']:,} faces" if metrics.get("n") else None)
    cols[1].metric(f"{split or 'Test'} macro-F1", _common.percent(metrics.get("macro_f1")))
    cols[2].metric("Architecture", str(card.get("architecture", "–")))
    runs, soup = epochs_run(training), soup_ingredients(training)
    kind = "Ensemble" if soup_average(training) == "predictions" else "Soup"
    if soup:
        cols[3].metric(f"{kind} of", f"{len(soup)} models",
                       help=f"The mean of their {soup_average(training)}: " + "; ".join(
                           f"{name}, {how}" for name, how in soup))
    else:
        source = warm_start_source(training)
        notes = (f"The first run began from {source}." if source else "",
                 "Epochs of each run, each warm-started from the one before." if len(runs) > 1 else "")
        cols[3].metric("Epochs (best)", f"{' + '.join(map(str, runs)) or '–'} ({training.get('best_epoch', '–')})",
                       help=" ".join(filter(None, notes)) or None)

    card_key = _common.model_key(card_path(path))
    curves = card_figure_png("curves", card_key)
    if curves:
        st.image(curves, caption=f"Accuracy and loss per epoch of each model the {kind.lower()} averages: training "
                                 "against validation" if soup else
                                 "Accuracy and loss per epoch: training against validation")
    else:
        st.info("The model card has no per-epoch history, so there are no curves.", icon=":material/info:")
    confusion = card_figure_png("confusion", card_key)
    if confusion:
        st.image(confusion, caption=f"Confusion matrix on {split}: counts and row-normalised "
                                    "(rows: true emotion; columns: what the model read)")
        _common.percent_table(class_table(metrics), ("precision", "recall", "F1"))
    show_mistakes(path)
    use_button(path, key)
    with st.expander("Model card"):
        shown = dict(card, training={k: v for k, v in training.items() if k != "history"})
        st.json(shown, expanded=False)


def model_label(path: str) -> str:
    """A model's name in the lists: its file name, and the folder when not in models/."""
    path = Path(path)
    return path.name if path.parent.resolve() == models_dir().resolve() else f"{path.name} ({path.parent})"


def inspect_section() -> None:
    folder = models_dir()
    options = [str(p) for p in evaluation.list_models(folder)]
    active = emotion.default_model_path()
    if active.is_file() and str(active.resolve()) not in {str(Path(p).resolve()) for p in options}:
        options.insert(0, str(active))
    if not options:
        st.info(f"No models in `{folder}` yet. Train one in the **Train** tab, or {_common.TRAIN_HINT}.",
                icon=":material/info:")
        return
    default = next((i for i, p in enumerate(options) if _common.model_key(p)[0] == _common.model_key()[0]), 0)
    left, right = st.columns(2)
    chosen = left.selectbox("Model", options, index=default, format_func=model_label, key="inspect_model")
    others = [""] + [p for p in options if p != chosen]
    compare = right.selectbox("Compare with", others, format_func=lambda p: model_label(p) if p else "–",
                              key="compare_model")
    if compare:
        columns = st.columns(2)
        for column, path, key in ((columns[0], chosen, "a"), (columns[1], compare, "b")):
            with column:
                model_view(Path(path), key, narrow=True)
    else:
        model_view(Path(chosen), "a")


# --- training a model -----------------------------------------------------------------


def live_chart(snapshot: jobs.ProgressSnapshot, metric: str) -> alt.Chart:
    running = pd.DataFrame([{"epoch": x, "value": loss if metric == "loss" else accuracy,
                             "series": LIVE_SERIES[0]}
                            for x, loss, accuracy in snapshot.batch_points],
                           columns=["epoch", "value", "series"])
    rows = [{"epoch": row["epoch"], "value": row[name], "series": series}
            for row in snapshot.history
            for name, series in ((metric, LIVE_SERIES[1]), (f"val_{metric}", LIVE_SERIES[2])) if name in row]
    epochs = pd.DataFrame(rows, columns=["epoch", "value", "series"])
    x = alt.X("epoch:Q", scale=alt.Scale(domain=[0, max(snapshot.epochs, 1)]), title="epoch")
    y = alt.Y("value:Q", title=metric, axis=alt.Axis(format="%") if metric == "accuracy" else alt.Axis())
    color = alt.Color("series:N", title=None, scale=alt.Scale(domain=list(LIVE_SERIES)),
                      legend=alt.Legend(orient="bottom", labelLimit=0))
    chart = alt.Chart(running).mark_line(opacity=0.4).encode(x=x, y=y, color=color) + \
        alt.Chart(epochs).mark_line(point=True).encode(x=x, y=y, color=color, tooltip=["epoch:Q", "value:Q", "series:N"])
    # The height is the plot's own ("fit-x"): Streamlit's default "fit" squeezes the plot to
    # make room for the title, axes and legend within the height.
    return chart.properties(title=metric.capitalize(), height=160,
                            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))


def job_settings(job: jobs.TrainingJob) -> str:
    """One line on what the job does, under its title."""
    if job.kind == "finetune":
        s = job.settings
        return (f"from {Path(s['base']).name if s['base'] else 'the model in use'} · {s['epochs']} epoch(s)"
                + (f" · the first {s['freeze']} layers frozen" if s["freeze"] else "")
                + f" · dataset `{s['data_dir']}` · saving to `{job.out_path}`")
    config = job.config
    return (f"{config.architecture} · {config.optimizer} · learning rate {config.learning_rate:g} "
            f"({config.schedule}) · batch {config.batch_size} · {len(job.data):,} faces in the dataset"
            + (f", at most {config.limit:,} for training" if config.limit else "")
            + f" · saving to `{job.out_path}`")


def live_progress() -> None:
    """The running job (a training or a fine-tune), redrawn every second without rerunning
    the rest of the page (a fragment with a timer, set only while a run is in progress: see
    train_section and finetune_section)."""
    job = jobs.current_job()
    if job is None:
        return
    if not job.running:
        st.rerun()  # it ended: show the whole page again, with its result
    snapshot = job.snapshot()
    finetuning = job.kind == "finetune"
    st.subheader(f"{'Fine-tuning' if finetuning else 'Training'} {job.name}")
    if job.owner != st.session_state.get("owner"):
        st.info(f"This {job.what} was started by another session; one training or fine-tune runs at a "
                "time on this server. You can watch it, or stop it.", icon=":material/info:")
    st.caption(job_settings(job))
    st.progress(snapshot.fraction, text=jobs.describe(snapshot))
    st.button("Stop", key="ft_stop" if finetuning else "stop", icon=":material/stop:", on_click=job.stop,
              disabled=snapshot.status in ("stopping", "evaluating"),
              help="End after the current batch and keep the best epoch so far")
    left, right = st.columns(2)
    left.altair_chart(live_chart(snapshot, "accuracy"), width="stretch")
    right.altair_chart(live_chart(snapshot, "loss"), width="stretch")


def job_result(job: jobs.TrainingJob) -> None:
    snapshot = job.snapshot()
    if snapshot.status == "done":
        st.success(f"Training {job.name}: {snapshot.message}.", icon=":material/check_circle:")
    elif snapshot.status == "stopped":
        st.warning(f"Training {job.name}: {snapshot.message}. The other models were not touched.",
                   icon=":material/stop_circle:")
    else:
        st.error(f"Training {job.name} failed: {snapshot.message}", icon=":material/error:")
    if snapshot.card and Path(snapshot.model_path).is_file():
        model_view(Path(snapshot.model_path), "new")


def busy_note(job: jobs.TrainingJob | None, then: str) -> bool:
    """Whether a job runs on this server, saying so (and when ``then`` can start) if it does."""
    if job is None or not job.running:
        return False
    st.caption(f"A {job.what} is running on this server; {then} can start when it ends.")
    return True


def settings_form(job: jobs.TrainingJob | None) -> None:
    st.subheader("New training")
    source = st.radio("Data", list(SOURCES), format_func=SOURCES.get, key="data_source", horizontal=True)
    if source == "path":
        default = default_dataset_path()
        st.text_input("Path of a FER2013 CSV (.csv or .csv.gz) or of an image folder",
                      value=str(default) if default.exists() else "", key="data_path",
                      help="An image folder holds <emotion>/ folders (angry, happy, …), or train/ and "
                           "test/ folders of them; photos larger than 48x48 are cut down to their "
                           "largest face. " + _access.policy().refusal())
    else:
        st.file_uploader("FER2013 CSV (emotion,pixels,Usage), plain or .gz", type=["csv", "gz"],
                         key="data_upload")
    st.number_input("Train on at most this many faces (0: all)", min_value=0, value=0, step=256, key="limit")

    cols = st.columns(3)
    cols[0].selectbox("Architecture", list(ARCHITECTURE_NAMES), index=list(ARCHITECTURE_NAMES).index("small"),
                      format_func=ARCHITECTURE_NAMES.get, key="architecture", help=ARCHITECTURE_HELP)
    cols[1].radio("Optimizer", list(OPTIMIZER_NAMES), format_func=OPTIMIZER_NAMES.get, key="optimizer",
                  horizontal=True)
    cols[2].selectbox("Learning-rate schedule", list(SCHEDULE_NAMES), format_func=SCHEDULE_NAMES.get,
                      key="schedule")
    cols = st.columns(4)
    cols[0].number_input("Learning rate", min_value=1e-5, max_value=1.0, value=1e-3, step=1e-4,
                         format="%.4f", key="learning_rate")
    cols[1].number_input("Epochs", min_value=1, max_value=500, value=10, key="epochs")
    cols[2].selectbox("Batch size", [16, 32, 64, 128, 256], index=2, key="batch_size")
    early = cols[3].checkbox("Early stopping", value=False, key="early_stopping",
                             help="Stop when validation accuracy has not improved for this many epochs")
    cols[3].number_input("Patience (epochs)", min_value=1, max_value=100, value=5, key="patience",
                         disabled=not early)
    st.caption("Augmentation (random, training only)")
    for column, (key, label, _, _) in zip(st.columns(len(AUGMENTATIONS)), AUGMENTATIONS):
        column.checkbox(label, value=True, key=key)
    with st.expander("More settings"):
        cols = st.columns(3)
        cols[0].selectbox("Width (channels of the first stage)", [16, 32, 64], index=1, key="width")
        cols[1].number_input("Weight decay", min_value=0.0, max_value=1.0, value=0.01, step=0.005,
                             format="%.4f", key="weight_decay")
        cols[2].number_input("Seed", min_value=0, value=1, key="seed")
    if "model_name" not in st.session_state:
        st.session_state["model_name"] = f"mine-{datetime.now():%Y%m%d-%H%M}"
    st.text_input("Model name (saved as models/<name>.keras with its card)", key="model_name")
    busy = busy_note(job, "a new training")
    if st.button("Start training", type="primary", key="start", icon=":material/play_arrow:", disabled=busy):
        start_training()


def config_from_state() -> TrainConfig:
    from emotion.model import Augmentation
    from emotion.train import TrainConfig

    s = st.session_state
    augmentation = Augmentation(**{field: (value if s[key] else type(value)(0))
                                   for key, _, field, value in AUGMENTATIONS})
    return TrainConfig(architecture=s["architecture"], width=int(s["width"]), epochs=int(s["epochs"]),
                       batch_size=int(s["batch_size"]), optimizer=s["optimizer"],
                       learning_rate=float(s["learning_rate"]), schedule=s["schedule"],
                       weight_decay=float(s["weight_decay"]), augmentation=augmentation,
                       early_stopping=int(s["patience"]) if s["early_stopping"] else 0,
                       limit=int(s["limit"]) or None, seed=int(s["seed"]))


def new_model_path(name: str):
    """Where a new model called ``name`` goes, or None after saying in one line why it cannot
    (a bad or taken name, or training closed to this session)."""
    try:
        name = jobs.check_model_name(name)
    except ValueError as error:
        st.error(str(error), icon=":material/error:")
        return None
    out = models_dir() / f"{name}.keras"
    if out.exists():
        st.error(f"A model named {name} already exists in `{models_dir()}`: choose another name.",
                 icon=":material/error:")
        return None
    if not _access.may_train():
        st.error("Training is not open to this session.", icon=":material/error:")
        return None
    return out


def start_training() -> None:
    """Check the name and the data, then start the job; any problem is one line, before training."""
    s = st.session_state
    out = new_model_path(s["model_name"])
    if out is None:
        return
    name = out.stem
    if s["data_source"] == "upload":
        upload = s.get("data_upload")
        if upload is None:
            st.error("Choose a CSV file to upload first.", icon=":material/error:")
            return
        # Parsed from memory: an upload is never written to the server's disk.
        read = lambda: load_fer2013_csv(upload.getvalue(), name=display_name(upload.name))  # noqa: E731
    else:
        if not s.get("data_path", "").strip():
            st.error("Enter the path of a FER2013 CSV or an image folder first.", icon=":material/error:")
            return
        try:
            data_path = _access.policy().data_path(s["data_path"])
        except PathRefused as error:
            st.error(str(error), icon=":material/error:")
            return
        read = lambda: evaluation.load_dataset_cached(data_path)  # noqa: E731
    try:
        with st.spinner("Reading and checking the dataset…"):
            data = read()
            config = config_from_state()
            jobs.start_job(data, config, out, run_dir=jobs.runs_dir() / name, name=name, owner=s["owner"])
    except DatasetError as error:
        st.error(f"The dataset cannot be used: {_common.one_line(error)}", icon=":material/error:")
        return
    except (jobs.JobBusy, ValueError, OSError) as error:
        st.error(_common.one_line(error), icon=":material/error:")
        return
    st.rerun()


def job_view(job: jobs.TrainingJob | None, kind: str, result: Callable[[jobs.TrainingJob], None]) -> None:
    """The server's job, if of this ``kind``: live while it runs, then ``result``. Whoever opens
    the page, or comes back to it, sees it: the job lives in the server, not in a session."""
    if job is None or job.kind != kind:
        return
    if job.running:
        # The timer exists only while a run is in progress: the fragment reruns the whole page
        # when the run ends, and that run, idle, starts no fragment and so no timer (Streamlit
        # stops the timer of a fragment that a full run no longer draws).
        st.fragment(live_progress, run_every=LIVE_REFRESH_S)()
    else:
        result(job)


def train_section(job: jobs.TrainingJob | None) -> None:
    job_view(job, "train", job_result)
    settings_form(job)


# --- fine-tuning on a personal dataset ------------------------------------------------

FT_OTHER = "Another folder…"


def finetune_result(job: jobs.TrainingJob) -> None:
    """How the server's last fine-tune ended: before and after on its dataset's test split."""
    snapshot = job.snapshot()
    card = snapshot.card if snapshot.card and Path(snapshot.model_path).is_file() else None
    listed = " It is listed under **Inspect models**, where it can be put to use." if card else ""
    if snapshot.status == "done":
        st.success(f"Fine-tuning {job.name}: {snapshot.message}.{listed}", icon=":material/check_circle:")
    elif snapshot.status == "stopped":
        st.warning(f"Fine-tuning {job.name}: {snapshot.message}.{listed}", icon=":material/stop_circle:")
    else:
        st.error(f"Fine-tuning {job.name} failed: {snapshot.message}", icon=":material/error:")
    if card is None:
        return
    tuned = card.get("finetune") or {}
    before, after = tuned.get("accuracy_before"), tuned.get("accuracy_after")
    labels = card.get("labels") or []
    cols = st.columns(3)
    cols[0].metric("Test accuracy before", "not defined" if before is None else _common.percent(before),
                   help="The model in use on the dataset's test faces. Not defined for labels of the "
                        "dataset's own: the model in use does not know them." if before is None
                   else "The model in use on the dataset's test faces.")
    cols[1].metric("Test accuracy after", _common.percent(after),
                   delta=None if before is None or after is None else f"{(after - before) * 100:+.1f} points",
                   help=f"{card.get('data', {}).get('test_faces', '?')} test faces, never trained on")
    cols[2].metric("Labels", len(labels), help=", ".join(labels))
    st.caption("Labels: " + ", ".join(labels)
               + (" (a new output layer)" if tuned.get("new_output_layer") else " (the seven emotions' outputs)"))


def finetune_section(job: jobs.TrainingJob | None) -> None:
    from emotion import finetune as tuning

    st.subheader("Fine-tune on a personal dataset")
    st.caption("Start from the model in use and teach it your faces: a few epochs at a low learning rate "
               "on a dataset made on the Capture page or by `python -m emotion dataset` (`train/<label>/` and "
               "`test/<label>/` folders of faces). Labels other than the seven emotions (say `smile`) get a new "
               "output layer. The model in use is not changed: the result is a new model.")
    job_view(job, "finetune", finetune_result)
    policy = _access.policy()
    found = [str(p) for p in tuning.find_personal_datasets(policy.data_dirs)]
    choice = st.selectbox("Personal dataset", found + [FT_OTHER], key="ft_dataset",
                          help="Datasets found in the allowed data folders: " + policy.refusal())
    if choice == FT_OTHER:
        st.text_input("Folder of the dataset", key="ft_path", placeholder="/path/to/datasets/me")
    cols = st.columns(3)
    # Labels of their own: the training form above has "Epochs" and "Model name" (one name, one field).
    cols[0].number_input("Fine-tuning epochs", min_value=1, max_value=50, value=tuning.DEFAULT_EPOCHS,
                         key="ft_epochs")
    cols[1].number_input("Freeze the first layers", min_value=0, max_value=18, value=0, key="ft_freeze",
                         help="Keep this many of the first learning layers (convolutions, batch "
                              "normalisations) as they are: fewer weights to learn from few faces.")
    if "ft_name" not in st.session_state:
        st.session_state["ft_name"] = f"tuned-{datetime.now():%Y%m%d-%H%M}"
    cols[2].text_input("Name of the new model", key="ft_name", help="Saved as models/<name>.keras with its card")
    busy = busy_note(job, "fine-tuning")
    if st.button("Start fine-tuning", key="ft_start", icon=":material/tune:", disabled=busy):
        start_finetune()


def start_finetune() -> None:
    """Check everything a visitor chose, then start the fine-tune in the background; any
    problem is one line, before TensorFlow starts."""
    s = st.session_state
    out = new_model_path(s["ft_name"])
    if out is None:
        return
    text = s.get("ft_path", "") if s["ft_dataset"] == FT_OTHER else s["ft_dataset"]
    if not text.strip():
        st.error("Enter the folder of a personal dataset first.", icon=":material/error:")
        return
    try:
        folder = _access.policy().data_path(text.strip())
        jobs.start_finetune(folder, out, epochs=int(s["ft_epochs"]), freeze=int(s["ft_freeze"]), name=out.stem,
                            owner=s["owner"])
    except PathRefused as error:
        st.error(str(error), icon=":material/error:")
        return
    except DatasetError as error:
        st.error(f"The dataset cannot be used: {_common.one_line(error)}", icon=":material/error:")
        return
    except (jobs.JobBusy, ValueError, OSError) as error:
        st.error(_common.one_line(error), icon=":material/error:")
        return
    st.rerun()


st.title("Training")
st.markdown("Look inside the trained models, or train a new one on FER2013 or on your own photos "
            "sorted by emotion. Training runs in the background on this computer; you can leave "
            "this page and come back.")
if "owner" not in st.session_state:
    st.session_state["owner"] = uuid.uuid4().hex
# Selecting a tab reruns the page, so that the keypoints tab (a second model, its data and
# figures) is drawn only while it is open: the other tabs cost nothing more for it.
inspect_tab, train_tab, keypoints_tab = st.tabs(["Inspect models", "Train a model", "Facial keypoints"],
                                                key="training_tab", on_change="rerun")
with inspect_tab:
    inspect_section()
with train_tab:
    if _access.training_gate():
        current = jobs.current_job()
        train_section(current)
        st.divider()
        finetune_section(current)
if keypoints_tab.open:
    with keypoints_tab:
        from pages import _keypoints

        _drawn_last.extend(_keypoints.section())
draw_the_rest()
