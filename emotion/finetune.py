"""Fine-tuning a trained model on a personal dataset (a few epochs, a low learning rate).

The dataset is what ``python -m emotion dataset`` writes: ``DST/train/<label>/*.png`` and
``DST/test/<label>/*.png``, grey 48x48 faces. When every label is one of the seven FER2013
emotions the model keeps its seven outputs and learns the person's faces; any other label
(``smile``, ``frown``) gets a new output layer with the dataset's own labels, which the model
card lists and the app shows. The test split is never trained on: the card reports accuracy
on it before (seven-emotion datasets only: a new output layer has no "before") and after.

The pieces are those of :mod:`emotion.train` (compiling, Keras' callbacks with the best epoch
chosen on a hold-out of the train split, saving the model and its card atomically); the
model starts from a fresh copy of the active model's file, which is only read, never written.
The app runs it in the background, with a Stop, as a job of :mod:`emotion.jobs`
(:func:`emotion.jobs.start_finetune`); the command line calls it here.

>>> result = finetune("datasets/me", "models/me.keras", epochs=3, freeze=8)
>>> result.before, result.after      # accuracy on the personal test split (before: None for new labels)
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .access import check_name
from .classifier import DEFAULT_MODEL, EmotionClassifier, ModelError, card_path, default_model_path
from .data import FOLDER_SPLITS, IMAGE_SUFFIXES, Dataset, DatasetError, load_image_folders
from .labels import FACE_SIZE, LABELS
from .metrics import classification_report

DEFAULT_EPOCHS = 5
DEFAULT_LEARNING_RATE = 1e-4   # a tenth of the shipped model's: adjust the features, do not relearn them
# A new output layer starts from random weights: at 1e-4 a few epochs of a small dataset barely
# move it (measured: 46 % on a two-label test split after 2 epochs), so it learns at the base rate.
NEW_OUTPUT_LEARNING_RATE = 1e-3
MAX_BATCH_SIZE = 32            # personal datasets are small: more steps an epoch
LAYOUT = "DST/train/<label>/*.png and DST/test/<label>/*.png, as `python -m emotion dataset` writes"


@dataclass
class FinetuneResult:
    model_path: Path
    card: dict
    labels: tuple[str, ...]
    new_output: bool              # a new output layer for the dataset's own labels
    before: float | None          # accuracy on the personal test split before (None: not defined)
    after: float


def shipped_models() -> set[Path]:
    """The model files the project ships (resolved): never written over. They are the
    ``facemood-*`` files of the project's models folder (the rest there is this computer's own)."""
    return {DEFAULT_MODEL.resolve(), *(p.resolve() for p in DEFAULT_MODEL.parent.glob("facemood-*.keras"))}


def personal_labels(root: str | Path) -> tuple[tuple[str, ...], bool]:
    """The labels of a personal dataset and whether they are all FER2013 emotions.

    Seven-emotion labels come in LABELS order (the model's outputs); others sorted by name.
    Raises DatasetError (one line) for a missing folder, another layout, or no images.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; a personal dataset is {LAYOUT}")
    splits = {name: root / name for name in ("train", "test")}
    missing = [name for name, folder in splits.items() if not folder.is_dir()]
    if missing:
        raise DatasetError(f"{root} has no {' or '.join(f'{m}/' for m in missing)} folder; "
                           f"a personal dataset is {LAYOUT}")
    found: dict[str, set[str]] = {}
    for name, folder in splits.items():
        found[name] = {d.name.strip().lower() for d in folder.iterdir()
                       if d.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir())}
        if not found[name]:
            raise DatasetError(f"{root}/{name} holds no images in <label>/ folders; a personal dataset "
                               f"is {LAYOUT}")
    if len(found["train"]) < 2:
        raise DatasetError(f"{root}/train has one label ({', '.join(found['train'])}); fine-tuning "
                           f"needs at least two")
    unseen = sorted(found["test"] - found["train"])
    if unseen:
        raise DatasetError(f"{root}/test has label(s) with no training images: {', '.join(unseen)}")
    names = found["train"]
    if names <= set(LABELS):
        return LABELS, False
    return tuple(sorted(names)), True


def load_personal(root: str | Path) -> tuple[Dataset, tuple[str, ...], bool]:
    """(faces, labels, new_output) of a personal dataset; its test folder is the PrivateTest split."""
    labels, new_output = personal_labels(root)
    data = load_image_folders(root, labels)
    odd = sorted(set(data.usage) - {FOLDER_SPLITS["train"], FOLDER_SPLITS["test"]})
    if odd:  # a val/ folder beside train/ and test/ would count as PublicTest: say what is read
        raise DatasetError(f"{root} has folders other than train/ and test/ ({', '.join(odd)}); "
                           f"a personal dataset is {LAYOUT}")
    return data, labels, new_output


def check_out(out: str | Path, base: Path) -> Path:
    """The model file to write, or ValueError (one line) for a name that is not allowed, the
    shipped model, or the model being fine-tuned."""
    out = Path(out)
    if out.suffix != ".keras":
        raise ValueError(f"the model file must end in .keras: {out}")
    check_name(out.name, "model", ".keras")
    target = out.resolve()
    if target in shipped_models() or card_path(target) in {card_path(p) for p in shipped_models()}:
        raise ValueError(f"{out} is a shipped model, which is never written over: choose another name")
    if target == base.resolve():
        raise ValueError(f"{out} is the model being fine-tuned: choose another name")
    return out


def _with_output(model, labels: tuple[str, ...], new_output: bool):
    """The model to train: the base as it is, or with a new output layer for ``labels``."""
    import keras

    if not new_output:
        return model
    features = model.layers[-1].input  # what the old output layer read
    outputs = keras.layers.Dense(len(labels), activation="softmax", name="probs_personal")(features)
    return keras.Model(model.inputs, outputs, name=f"{model.name}_personal")


def _freeze(model, count: int) -> int:
    """Freeze the first ``count`` layers that learn (convolutions, batch normalisations, dense
    layers, in order); the output layer always trains. The number of trainable such layers left."""
    learning = [layer for layer in model.layers if layer.weights]
    if count < 0:
        raise ValueError("--freeze must be 0 or more")
    if count >= len(learning):
        raise ValueError(f"--freeze {count} would freeze every layer that learns: this model has "
                         f"{len(learning)}, of which at most {len(learning) - 1} can be frozen")
    for layer in learning[:count]:
        layer.trainable = False  # a frozen batch normalisation also keeps its statistics
    return len(learning) - count


def _config(base_card: dict, epochs: int, learning_rate: float):
    """The base model's recipe (so the card says how it was trained), fine-tuning's schedule."""
    from .train import TrainConfig

    settings = (base_card.get("training") or {}).get("config") or {}
    known = {f.name for f in fields(TrainConfig)}
    try:
        config = TrainConfig.from_dict({k: v for k, v in settings.items() if k in known})
    except (TypeError, ValueError):
        config = TrainConfig()
    return replace(config, epochs=epochs, learning_rate=learning_rate, schedule="constant", warmup_epochs=0,
                   batch_size=min(config.batch_size, MAX_BATCH_SIZE), early_stopping=0, limit=None,
                   class_weight="none")


def _report(model, card: dict, labels, test: Dataset) -> dict:
    classifier = EmotionClassifier(model, dict(card, labels=list(labels)))
    return classification_report(test.labels, classifier.predict_proba_batched(test.images), labels)


def finetune(data_dir: str | Path, out: str | Path, *, epochs: int = DEFAULT_EPOCHS, freeze: int = 0,
             learning_rate: float | None = None, base: str | Path | None = None,
             progress=None, stop: threading.Event | None = None) -> FinetuneResult:
    """Fine-tune ``base`` (default: the active model) on the personal dataset ``data_dir`` and
    save the new model with its card at ``out``. ``progress`` gets train()'s events. Once
    ``stop`` is set the run ends after the current batch and the best finished epoch is
    saved (its card says ``stopped_by_user``); RuntimeError when no epoch had finished.
    ``learning_rate`` defaults to DEFAULT_LEARNING_RATE, or NEW_OUTPUT_LEARNING_RATE for a
    dataset with labels of its own."""
    if epochs < 1:
        raise ValueError("--epochs must be at least 1")
    if learning_rate is not None and not 0 < learning_rate < 1:
        raise ValueError("--lr must be between 0 and 1 (e.g. 0.0001)")
    base = Path(base) if base else default_model_path()
    out = check_out(out, base)
    data, labels, new_output = load_personal(data_dir)
    if learning_rate is None:
        learning_rate = NEW_OUTPUT_LEARNING_RATE if new_output else DEFAULT_LEARNING_RATE
    # Keras only now: a bad dataset or name is told at once, without seconds of imports.
    import keras

    from .train import (_as_input, _callbacks, _compile, _data_path, _progress_callback, fit_keeping_best,
                        save_model, split_for_training, training_record)

    base_classifier = EmotionClassifier.load(base)  # checks the file; its model is not trained
    base_card = base_classifier.card
    if tuple(base_classifier.labels) != LABELS and not new_output:
        raise ModelError(f"{base.name} reads {', '.join(base_classifier.labels)}, not the seven emotions; "
                         f"fine-tune the shipped model instead")
    test = data.split("PrivateTest")
    config = _config(base_card, epochs, learning_rate)
    train_set, val_set = split_for_training(data, config)

    before = None if new_output else _report(base_classifier.model, base_card, labels, test)
    keras.utils.set_random_seed(config.seed)
    # A fresh copy from the file: the classifier the app holds is never changed.
    model = _with_output(keras.saving.load_model(base, compile=False), labels, new_output)
    trainable = _freeze(model, freeze)
    _compile(model, config)
    targets = np.eye(len(labels), dtype=np.float32)
    steps = math.ceil(len(train_set) / config.batch_size)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="facemood-finetune-") as run:
        run_dir = Path(run)
        report = _progress_callback(config, len(train_set), steps, progress, stop, run_dir / "history.csv")
        history, best, stopped = fit_keeping_best(
            model, run_dir, "fine-tuning", x=_as_input(train_set.images), y=targets[train_set.labels],
            validation_data=(_as_input(val_set.images), targets[val_set.labels]),
            batch_size=config.batch_size, epochs=config.epochs,
            callbacks=_callbacks(run_dir, config, report, None))
    if progress:
        progress({"kind": "evaluate", "best_epoch": best["epoch"], "stopped_by_user": stopped,
                  "faces": len(data)})
    after = _report(model, base_card, labels, test)
    metrics = {"Training": _report(model, base_card, labels, train_set),
               "validation": _report(model, base_card, labels, val_set), "PrivateTest": after}
    card = {
        "name": out.stem,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": list(labels),
        "input": base_card.get("input") or {"shape": [FACE_SIZE, FACE_SIZE], "dtype": "uint8"},
        "preprocessing": base_card.get("preprocessing") or {"flip_average": True},
        "architecture": base_card.get("architecture", "unknown"),
        "parameters": int(model.count_params()),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "data": {"source": Path(data.source).name, "path": _data_path(data.source),
                 "checksum_md5": data.checksum(), "train_faces": len(train_set),
                 "validation_faces": len(val_set), "test_faces": len(test),
                 "validation": "10% of the personal train split",
                 "class_counts_train": np.bincount(train_set.labels, minlength=len(labels)).tolist()},
        "metrics": metrics,
        "finetune": {
            "base_model": base.name, "base_model_name": base_classifier.name,
            "new_output_layer": new_output, "frozen_layers": freeze, "trainable_layers": trainable,
            "test_split": "the personal dataset's test/ folder (PrivateTest here), never trained on",
            "accuracy_before": None if before is None else before["accuracy"],
            "accuracy_after": after["accuracy"],
            "before": before if before is not None else
            "not defined: the new output layer reads labels the base model does not know",
        },
        "training": training_record(config, history, best, stopped, False, started),
    }
    save_model(model, out, card)
    card = json.loads(card_path(out).read_text())
    if progress:
        progress({"kind": "done", "model_path": str(out), "card": card})
    return FinetuneResult(out, card, labels, new_output,
                          None if before is None else before["accuracy"], after["accuracy"])


def describe(result: FinetuneResult) -> str:
    """One line on what the fine-tune did, for the terminal and the page."""
    before = ("before: not defined (new labels: " + ", ".join(result.labels) + ")"
              if result.before is None else f"before {result.before:.1%}")
    test = result.card["metrics"]["PrivateTest"]["n"]
    return (f"saved {result.model_path} · accuracy on the personal test split ({test} faces): "
            f"{before}, after {result.after:.1%}")


def find_personal_datasets(roots, depth: int = 3, limit: int = 50) -> list[Path]:
    """Folders under ``roots`` (at most ``depth`` levels down) laid out as a personal dataset
    (``train/`` and ``test/`` folders beside each other), for the app to offer; by path."""
    found: list[Path] = []

    def walk(folder: Path, level: int) -> None:
        if len(found) >= limit:
            return
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        names = {p.name for p in children}
        if {"train", "test"} <= names:
            found.append(folder)
            return
        if level < depth:
            for child in children:
                walk(child, level + 1)

    for root in roots:
        walk(Path(root), 0)
    return sorted(dict.fromkeys(found))
