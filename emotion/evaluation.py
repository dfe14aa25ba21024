"""Looking into trained models: which there are, their cards, and the faces they get wrong.

Used by the app's Training page and usable on its own::

    from emotion.evaluation import list_models, load_card, misclassified
    for path in list_models():
        print(path.name, load_card(path).get("metrics", {}).get("PrivateTest", {}).get("accuracy"))
    mistakes = misclassified("models/mine.keras")   # its most confident mistakes on the test split
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classifier import models_dir, read_card
from .data import Dataset, DatasetError, default_dataset_path, load_dataset

_LOCK = threading.Lock()
_DATASETS: OrderedDict = OrderedDict()   # file key -> Dataset (the last two read)
_MISTAKES: OrderedDict = OrderedDict()   # (model key, data key, limit, count) -> Mistakes


def file_key(path: str | Path) -> tuple[str, int, int]:
    """(resolved path, mtime, size) of a file or folder: changes when it is replaced."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return str(path), 0, -1
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def list_models(folder: str | Path | None = None) -> list[Path]:
    """The ``.keras`` files in ``folder`` (default :func:`emotion.classifier.models_dir`), by name."""
    folder = Path(folder) if folder else models_dir()
    try:
        return sorted((p for p in folder.glob("*.keras") if p.is_file() and not p.name.startswith(".")),
                      key=lambda p: p.name.lower())
    except OSError:
        return []


def load_card(model_path: str | Path) -> dict:
    """The model card beside ``model_path`` ({} when there is none or it is unreadable)."""
    return read_card(model_path)


def load_dataset_cached(path: str | Path) -> Dataset:
    """:func:`emotion.data.load_dataset`, remembering the last two datasets read
    (FER2013 takes seconds to parse). Errors are raised, never remembered."""
    key = file_key(path)
    with _LOCK:
        if key in _DATASETS:
            _DATASETS.move_to_end(key)
            return _DATASETS[key]
    data = load_dataset(path)
    with _LOCK:
        _DATASETS[key] = data
        while len(_DATASETS) > 2:
            _DATASETS.popitem(last=False)
    return data


def dataset_path_for(card: dict) -> Path | None:
    """Where the data a model was trained on is, as far as its card tells: the path it
    recorded, or the default FER2013 file when the names match; None when not at hand."""
    data = card.get("data") or {}
    recorded = data.get("path")
    if recorded and Path(recorded).exists():
        return Path(recorded)
    default = default_dataset_path()
    if data.get("source") and data["source"] == default.name and default.exists():
        return default
    return None


def evaluation_set(data: Dataset, card: dict | None = None) -> tuple[str, Dataset]:
    """The faces a model is judged on: PrivateTest, else the validation faces it was
    picked on (PublicTest, or the 10 % hold-out of Training its card's settings give)."""
    from .train import TrainConfig, split_for_training

    if len(data.split("PrivateTest")):
        return "PrivateTest", data.split("PrivateTest")
    if len(data.split("PublicTest")):
        return "PublicTest", data.split("PublicTest")
    settings = ((card or {}).get("training") or {}).get("config") or {}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    try:
        config = TrainConfig.from_dict({k: v for k, v in settings.items() if k in known})
        return "validation", split_for_training(data, config)[1]
    except (TypeError, ValueError):
        return "Training", data.split("Training")


@dataclass
class Mistakes:
    """A model's most confident mistakes on part of a split."""
    images: np.ndarray      # uint8 (K, 48, 48)
    true: np.ndarray        # int64 (K,)
    predicted: np.ndarray   # int64 (K,)
    scores: np.ndarray      # float (K,): the probability given to the wrong answer
    split: str
    checked: int            # faces predicted
    wrong: int              # of which misclassified
    data_path: str


def misclassified(model_path: str | Path, data_path: str | Path | None = None, *, limit: int = 600,
                  count: int = 24, classifier=None) -> Mistakes:
    """The ``count`` most confident mistakes of a model on (the first ``limit`` faces of)
    its evaluation split (:func:`evaluation_set`). Remembered per model file and data.

    ``data_path`` defaults to the data named by the model's card (:func:`dataset_path_for`);
    raises :class:`emotion.DatasetError` when there is none. ``classifier`` may pass the
    already loaded :class:`emotion.EmotionClassifier` of ``model_path``.
    """
    from .classifier import EmotionClassifier

    card = load_card(model_path)
    data_path = Path(data_path) if data_path else dataset_path_for(card)
    if data_path is None:
        source = (card.get("data") or {}).get("source") or "unknown"
        raise DatasetError(f"the data this model was trained on ({source}) is not on this computer")
    key = (file_key(model_path), file_key(data_path), limit, count)
    with _LOCK:
        if key in _MISTAKES:
            return _MISTAKES[key]
    data = load_dataset_cached(data_path)
    split, faces = evaluation_set(data, card)
    faces = faces.head(limit)
    classifier = classifier or EmotionClassifier.load(model_path)
    probs = classifier.predict_proba_batched(faces.images, batch_size=256)
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != faces.labels)
    order = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:count]
    mistakes = Mistakes(faces.images[order], faces.labels[order], predicted[order],
                        probs[order, predicted[order]], split, len(faces), len(wrong), str(data_path))
    with _LOCK:
        _MISTAKES[key] = mistakes
        while len(_MISTAKES) > 16:
            _MISTAKES.popitem(last=False)
    return mistakes
