"""Figures of a trained model: learning curves, confusion matrix, misclassified faces.

Plain matplotlib on the Agg canvas (no pyplot, no display, no global state), so
the figures can be drawn from any thread: the app's pages, a training thread,
the CLI. Every function returns a :class:`matplotlib.figure.Figure`;
:func:`figure_png` turns one into PNG bytes and :func:`save_figure` writes it
atomically.

Two looks (``style``): ``"paper"`` (the default: white, black text; the files
written beside a model) and ``"page"`` (transparent, with mid-grey text, and a
confusion matrix from dark to light blue, each number in black or white as its cell
needs) for a web page that may be light or dark: a white box would glare on a dark
page, and black text would vanish on it.

    python -m emotion.plots models/mine.keras   # (re)write mine-curves.png, mine-confusion.png
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator, PercentFormatter

from .classifier import card_labels
from .common import write_atomically
from .labels import LABELS

# The split a card's confusion matrix is shown for, in order of preference: the
# untouched test set first, then the set the best epoch was picked on.
REPORT_SPLITS = ("PrivateTest", "validation", "PublicTest", "Training")
TRAIN_COLOR, VAL_COLOR = "#1f77b4", "#ff7f0e"
STYLES = ("paper", "page")
# Readable on white and on Streamlit's dark background (#0e1117) alike: contrast about 3.5 and 5.
PAGE_TEXT = "#808495"
# Opaque cells from dark navy to light blue: neither end glares on a dark page or fades into a
# white one, and each number is written in black or white, whichever its cell's colour needs.
PAGE_CELLS_COLORS = ("#1c2a45", "#2a6fb8", "#a8d1ff")
PAGE_CELLS = LinearSegmentedColormap.from_list("page_blues", PAGE_CELLS_COLORS)
PAGE_DARK_TEXT = "#0e1117"  # not "black": _restyle greys black text


def _check_style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {STYLES}")
    return style


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _restyle(figure: Figure, style: str) -> Figure:
    """Give a finished figure the ``page`` look: no background anywhere, and the text, ticks
    and frames that matplotlib draws black in mid-grey (text given its own colour, such as
    the white numbers on dark cells, keeps it)."""
    if _check_style(style) == "paper":
        return figure
    figure.patch.set_facecolor("none")
    for ax in figure.axes:
        ax.set_facecolor("none")
        ax.tick_params(colors=PAGE_TEXT, which="both")
        for spine in ax.spines.values():
            spine.set_edgecolor(PAGE_TEXT)
        legend = ax.get_legend()
        if legend is not None:
            legend.get_frame().set_facecolor("none")
            legend.get_frame().set_edgecolor(PAGE_TEXT)
    black = to_rgba("black")
    for text in figure.findobj(Text):
        if to_rgba(text.get_color()) == black:
            text.set_color(PAGE_TEXT)
    return figure


def report_split(card: dict) -> str | None:
    """The split of ``card["metrics"]`` to report: PrivateTest when there is one."""
    metrics = card.get("metrics") or {}
    for split in REPORT_SPLITS:
        if metrics.get(split, {}).get("confusion_matrix"):
            return split
    return next((s for s, m in metrics.items() if m.get("confusion_matrix")), None)


def curves_figure(history: Sequence[dict], title: str = "",
                  batch_points: Sequence[tuple[float, float, float]] = (), style: str = "paper") -> Figure:
    """Accuracy and loss per epoch, training against validation.

    ``history`` holds one dict per epoch as in a model card (``epoch``, ``accuracy``,
    ``loss``, ``val_accuracy``, ``val_loss``); the best epoch (highest validation
    accuracy) is marked. ``batch_points`` (fractional epoch, loss, accuracy) adds
    the running training figures within epochs, for a run still in progress.
    """
    _check_style(style)
    figure = _figure(9, 3.4)
    axes = figure.subplots(1, 2)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    best = None
    if any("val_accuracy" in row for row in history):
        best = max(history, key=lambda row: row.get("val_accuracy", -1)).get("epoch")
    for ax, metric, name in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        if batch_points:
            column = 2 if metric == "accuracy" else 1
            ax.plot([p[0] for p in batch_points], [p[column] for p in batch_points],
                    color=TRAIN_COLOR, alpha=0.35, linewidth=1, label="training (within epoch)")
        for key, color, label in ((metric, TRAIN_COLOR, "training"),
                                  (f"val_{metric}", VAL_COLOR, "validation")):
            points = [(e, row[key]) for e, row in zip(epochs, history) if key in row]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, color=color, label=label)
        if best is not None:
            ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best})")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if history or batch_points:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no epochs yet", ha="center", va="center", transform=ax.transAxes)
    if epochs and len(epochs) <= 12:
        for ax in axes:
            ax.set_xticks(epochs)
    _percent_axis(axes[0])
    if title:
        figure.suptitle(title)
    return _restyle(figure, style)


def _percent_axis(ax) -> None:
    # PercentFormatter takes the decimals the range needs: close runs get no repeated ticks.
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))


def runs_figure(runs: dict[str, Sequence[dict]], title: str = "", style: str = "paper") -> Figure:
    """Accuracy and loss per epoch of several runs (name: card history), one colour each:
    validation solid, training dashed; for a model soup, the runs it averages."""
    _check_style(style)
    figure = _figure(9, 3.4)
    axes = figure.subplots(1, 2)
    colors = [f"C{i % 10}" for i in range(len(runs))]
    for ax, metric, name in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        for color, (run, history) in zip(colors, runs.items()):
            for key, line, label in ((f"val_{metric}", "-", run), (metric, "--", None)):
                points = [(row.get("epoch", i + 1), row[key]) for i, row in enumerate(history) if key in row]
                if points:
                    ax.plot(*zip(*points), line, marker="o" if line == "-" else None, markersize=3,
                            linewidth=1.5 if line == "-" else 1, color=color, label=label)
        ax.set_title(f"{name} (solid: validation; dashed: training)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    _percent_axis(axes[0])
    if title:
        figure.suptitle(title)
    return _restyle(figure, style)


def confusion_figure(matrix, title: str = "", style: str = "paper", labels=LABELS) -> Figure:
    """The 7x7 confusion matrix (rows: true, columns: predicted) twice: counts and
    row-normalised (each row sums to 100 %: the recall of that emotion on the diagonal)."""
    cells = PAGE_CELLS if _check_style(style) == "page" else "Blues"
    counts = np.asarray(matrix, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rows = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    figure = _figure(11, 4.6)
    axes = figure.subplots(1, 2)
    for ax, values, name, text in ((axes[0], counts, "Counts", lambda v: f"{v:d}"),
                                   (axes[1], rows, "Row-normalised", lambda v: f"{v:.0%}")):
        image = ax.imshow(values, cmap=cells, vmin=0)
        top = values.max() if values.size and values.max() > 0 else 1
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                if style == "page":
                    red, green, blue, _ = image.cmap(image.norm(values[i, j]))
                    light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
                    color = PAGE_DARK_TEXT if light else "white"
                else:
                    color = "white" if values[i, j] > 0.6 * top else "black"
                ax.text(j, i, text(values[i, j]), ha="center", va="center", fontsize=7, color=color)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(name)
        figure.colorbar(image, ax=ax, shrink=0.8,
                        format=(lambda value, _: f"{value:.0%}") if values is rows else None)
    if title:
        figure.suptitle(title)
    return _restyle(figure, style)


def misclassified_figure(images: np.ndarray, true: Sequence[int], predicted: Sequence[int],
                         scores: Sequence[float], columns: int = 8, title: str = "",
                         style: str = "paper") -> Figure:
    """A grid of 48x48 faces, each titled ``true → predicted (probability)``."""
    _check_style(style)
    count = len(images)
    columns = max(1, min(columns, count or 1))
    grid_rows = max(1, -(-count // columns))
    figure = _figure(1.3 * columns, 1.45 * grid_rows + (0.3 if title else 0))
    axes = np.atleast_1d(figure.subplots(grid_rows, columns, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, t, p, s in zip(axes, images, true, predicted, scores):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{LABELS[t]} → {LABELS[p]}\n{s:.0%}", fontsize=7)
    if count == 0:
        axes[0].text(0.5, 0.5, "no misclassified faces", ha="center", va="center")
    if title:
        figure.suptitle(title, fontsize=9)
    return _restyle(figure, style)


def reliability_figure(calibration: dict, title: str = "") -> Figure:
    """A reliability diagram from :func:`emotion.metrics.calibration`: each confidence bin's
    accuracy against its confidence (on the diagonal: well calibrated), bars sized by faces."""
    figure = _figure(5, 4.4)
    ax = figure.subplots()
    bins = calibration.get("bins") or []
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    if bins:
        width = bins[0]["high"] - bins[0]["low"]
        ax.bar([b["low"] for b in bins], [b["accuracy"] for b in bins], width=width, align="edge",
               color=TRAIN_COLOR, alpha=0.75, edgecolor="white", label="accuracy in bin")
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o",
                color=VAL_COLOR, markersize=4, label="bin: mean confidence, accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the top emotion")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{title}\nexpected calibration error {calibration.get('ece', 0):.3f}" if title
                 else f"expected calibration error {calibration.get('ece', 0):.3f}", fontsize=10)
    return figure


def video_faces_figure(rows, max_faces: int = 6, style: str = "paper") -> Figure:
    """Each face's seven probabilities over a video's time: one panel per face id (the
    ``max_faces`` seen in most frames, by id), coloured as the boxes on the video.

    ``rows``: a DataFrame of ``emotion.video.COLUMNS`` (frames without a face have no
    ``face_id`` and are left out).
    """
    from .annotate import EMOTION_COLORS

    _check_style(style)
    faces = rows.dropna(subset=["face_id"])
    counts = faces["face_id"].value_counts()
    ids = sorted(counts.index[:max_faces].astype(int))
    # Narrow, with large type: on a phone the picture is shrunk to the screen's width.
    figure = _figure(6.4, 0.9 + 1.8 * max(len(ids), 1))
    if not ids:
        ax = figure.subplots()
        ax.text(0.5, 0.5, "no face was found in the video", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return _restyle(figure, style)
    axes = np.atleast_1d(figure.subplots(len(ids), 1, sharex=True))
    end = float(rows["time_s"].max()) if len(rows) else 0.0
    frames = rows[["frame", "time_s"]].drop_duplicates().sort_values("frame")
    for ax, face_id in zip(axes, ids):
        # Every analysed frame, the face's values where it was seen: the lines break where it was not.
        face = frames.merge(faces[faces["face_id"].astype(int) == face_id], on=["frame", "time_s"], how="left")
        for label in LABELS:
            ax.plot(face["time_s"], face[label], color=np.array(EMOTION_COLORS[label]) / 255,
                    linewidth=1.3, label=label)
        ax.set_ylim(0, 1)
        ax.set_xlim(0, max(end, 1e-3))
        ax.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
        ax.set_ylabel(f"face #{face_id}", fontsize=11)
        ax.tick_params(labelsize=10)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("seconds", fontsize=11)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=4,
                  fontsize=10, frameon=False)
    return _restyle(figure, style)


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write ``figure`` as a PNG at ``path`` atomically (a temporary file, then a rename)."""
    png = figure_png(figure, dpi)
    return write_atomically(path, lambda temp: temp.write_bytes(png))


def figure_paths(model_path: str | Path) -> dict[str, Path]:
    """Where the figures of a model live: ``<stem>-curves.png`` and ``<stem>-confusion.png``."""
    model_path = Path(model_path)
    return {kind: model_path.with_name(f"{model_path.stem}-{kind}.png") for kind in ("curves", "confusion")}


def averaged_runs(training: dict, prefix: str = "") -> dict[str, list[dict]]:
    """The per-epoch histories of the runs a soup or ensemble (:mod:`emotion.soup`) averages,
    by ingredient name, from its card's ``training``. A soup has no epochs of its own, and
    an ingredient that is itself a soup gives its own runs ("soup.keras / a.keras")."""
    runs = {}
    for item in ((training or {}).get("soup") or {}).get("ingredients", []):
        if item.get("kept"):
            name, record = prefix + item.get("model", "?"), item.get("training") or {}
            if record.get("history"):
                runs[name] = record["history"]
            else:
                runs.update(averaged_runs(record, f"{name} / "))
    return runs


def card_figures(card: dict, style: str = "paper") -> dict[str, Figure]:
    """The curves and confusion figures a model card supports (either may be missing)."""
    figures = {}
    name = card.get("name", "model")
    training = card.get("training") or {}
    history = training.get("history") or []
    runs = averaged_runs(training)
    if history:
        figures["curves"] = curves_figure(history, f"{name}: accuracy and loss per epoch", style=style)
    elif runs:
        figures["curves"] = runs_figure(runs, f"{name}: the runs it averages, per epoch", style=style)
    split = report_split(card)
    if split:
        metrics = card["metrics"][split]
        figures["confusion"] = confusion_figure(
            metrics["confusion_matrix"],
            f"{name}: confusion matrix on {split} ({metrics.get('n', '?')} faces, "
            f"accuracy {metrics.get('accuracy', 0):.1%})", style=style,
            labels=card_labels(card))
    return figures


def save_training_figures(model_path: str | Path, card: dict | None = None) -> list[Path]:
    """Write the curves and confusion-matrix PNGs beside a model (from its card); the paths written.

    The end of every training run calls this: ``python -m emotion train`` and the app's
    Training page alike.
    """
    model_path = Path(model_path)
    if card is None:
        card = json.loads(model_path.with_suffix(".json").read_text())
    paths = figure_paths(model_path)
    return [save_figure(figure, paths[kind]) for kind, figure in card_figures(card).items()]


def main(argv: list[str] | None = None) -> int:
    models = sys.argv[1:] if argv is None else argv
    if not models:
        print("usage: python -m emotion.plots MODEL.keras...", file=sys.stderr)
        return 2
    for model in models:
        try:
            for path in save_training_figures(model):
                print(path)
        except (OSError, ValueError) as error:
            print(f"error: {model}: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
