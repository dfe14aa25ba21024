"""Training a FER2013 model, top to bottom: data, model, fit, evaluate, save with a card.

Trains on the Training split, picks the epoch with the best PublicTest accuracy
(or a 10 % hold-out of Training when the data has no PublicTest) and reports on
every split. A run checkpoints after every epoch and resumes from there, so a
long run survives a stopped process.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .classifier import EmotionClassifier, card_path
from .data import SPLITS, Dataset, DatasetError
from .labels import FACE_SIZE, LABELS
from .metrics import classification_report
from .model import Augmentation, build_model


@dataclass
class TrainConfig:
    architecture: str = "vgg"
    width: int = 32               # channels of the first stage
    epochs: int = 40
    batch_size: int = 64
    optimizer: str = "adam"       # "adam" (AdamW) or "sgd" (with Nesterov momentum)
    learning_rate: float = 1e-3
    schedule: str = "cosine"      # "cosine" (with warm-up) or "constant"
    warmup_epochs: int = 1
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    dropout: float = 0.4
    augmentation: Augmentation = field(default_factory=Augmentation)
    early_stopping: int = 0       # stop after this many epochs without a better val accuracy; 0: off
    limit: int | None = None      # train on the first N training faces only
    seed: int = 1

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = dict(values)
        values["augmentation"] = Augmentation(**values.get("augmentation", {}))
        return cls(**values)

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate of a 0-based epoch under the configured schedule."""
        if self.schedule == "constant":
            return self.learning_rate
        if epoch < self.warmup_epochs:
            return self.learning_rate * (epoch + 1) / (self.warmup_epochs + 1)
        span = max(self.epochs - self.warmup_epochs, 1)
        progress = (epoch - self.warmup_epochs) / span
        return self.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    model_path: Path
    card: dict
    stopped_early: bool


# progress(event) gets dicts: {"kind": "batch"|"epoch"|"evaluate"|"done", ...}
Progress = Callable[[dict], None]


def split_for_training(data: Dataset, config: TrainConfig) -> tuple[Dataset, Dataset]:
    """(train, validation) sets: Training and PublicTest, or a hold-out of Training."""
    train = data.split("Training")
    if config.limit:
        train = train.head(config.limit)
    val = data.split("PublicTest")
    if len(val) == 0:
        order = np.random.default_rng(config.seed).permutation(len(train))
        cut = max(1, len(train) // 10)
        val = Dataset(train.images[order[:cut]], train.labels[order[:cut]],
                      np.full(cut, "PublicTest"), data.source)
        train = Dataset(train.images[order[cut:]], train.labels[order[cut:]],
                        train.usage[order[cut:]], data.source)
    if len(train) < 2:
        raise DatasetError("the dataset has too few training faces (need at least 2)")
    return train, val


def _as_input(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32)[..., None]


def _one_hot(labels: np.ndarray) -> np.ndarray:
    return np.eye(len(LABELS), dtype=np.float32)[labels]


def _compile(model, config: TrainConfig) -> None:
    import keras

    if config.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(config.learning_rate, momentum=0.9, nesterov=True,
                                         weight_decay=config.weight_decay or None)
    elif config.optimizer == "adam":
        optimizer = keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose adam or sgd")
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=["accuracy"])


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=f"-{path.name}")
    os.close(handle)
    try:
        write(Path(temp))
        os.chmod(temp, 0o644)  # mkstemp makes files private; models are shared artefacts
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def save_model(model, path: Path, card: dict) -> None:
    """Save an inference copy of ``model`` (no optimizer state) and its card, atomically."""
    import keras

    # A model rebuilt from its config carries no optimizer: a third of the file size.
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    _write_atomically(path, lambda temp: clone.save(temp))
    card = dict(card, file_size_bytes=path.stat().st_size)
    _write_atomically(card_path(path), lambda temp: temp.write_text(json.dumps(card, indent=1)))


def _make_callback(run_dir: Path, state: dict, config: TrainConfig, steps: int,
                   progress: Progress | None, stop: threading.Event | None):
    import keras

    class Checkpoints(keras.callbacks.Callback):
        """Saves last/best checkpoints and the history each epoch; reports progress; stops."""

        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate = config.learning_rate_at(epoch)
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if progress:
                progress({"kind": "batch", "epoch": state["epoch"] + 1, "epochs": config.epochs,
                          "batch": batch + 1, "batches": steps,
                          "elapsed": time.perf_counter() - self.started, **(logs or {})})
            if stop is not None and stop.is_set():
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.started
            row = {k: float(v) for k, v in (logs or {}).items()}
            row.update(epoch=epoch + 1, seconds=round(seconds, 1),
                       learning_rate=config.learning_rate_at(epoch),
                       images_per_second=round(state["train_size"] / seconds, 1))
            state["history"].append(row)
            state["epoch"] = epoch + 1
            if row.get("val_accuracy", -1) > state["best_val_accuracy"]:
                state["best_val_accuracy"] = row["val_accuracy"]
                state["best_epoch"] = epoch + 1
                _write_atomically(run_dir / "best.weights.h5",
                                  lambda temp: self.model.save_weights(temp))
            elif config.early_stopping and epoch + 1 - state["best_epoch"] >= config.early_stopping:
                self.model.stop_training = True
                state["early_stopped"] = True
            _write_atomically(run_dir / "last.keras", lambda temp: self.model.save(temp))
            _write_atomically(run_dir / "state.json",
                              lambda temp: temp.write_text(json.dumps(state, indent=1)))
            if progress:
                progress({"kind": "epoch", **row, "epochs": config.epochs,
                          "best_epoch": state["best_epoch"]})

    return Checkpoints()


def train(data: Dataset, config: TrainConfig, out_path: str | Path,
          run_dir: str | Path | None = None, progress: Progress | None = None,
          stop: threading.Event | None = None, name: str | None = None) -> TrainResult:
    """Train a model on ``data`` and save it with its card at ``out_path`` (.keras).

    ``run_dir`` holds the checkpoints (default: ``runs/<stem>`` beside the
    project); a run with the same configuration resumes from its last epoch.
    Setting ``stop`` ends the run after the current batch; the best epoch so far
    is still saved.
    """
    import keras

    out_path = Path(out_path)
    if out_path.suffix != ".keras":
        raise ValueError(f"the model file must end in .keras: {out_path}")
    run_dir = Path(run_dir) if run_dir else out_path.resolve().parent.parent / "runs" / out_path.stem
    run_dir.mkdir(parents=True, exist_ok=True)

    train_set, val_set = split_for_training(data, config)
    keras.utils.set_random_seed(config.seed)
    state_file = run_dir / "state.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else None
    if state and state.get("config") == asdict(config) and (run_dir / "last.keras").is_file():
        model = keras.saving.load_model(run_dir / "last.keras")
    else:
        state = {"config": asdict(config), "epoch": 0, "history": [], "best_epoch": 0,
                 "best_val_accuracy": -1.0, "early_stopped": False}
        model = build_model(config.architecture, config.augmentation, config.dropout, config.width)
        _compile(model, config)
    state["train_size"] = len(train_set)

    steps = math.ceil(len(train_set) / config.batch_size)
    callback = _make_callback(run_dir, state, config, steps, progress, stop)
    started = time.perf_counter()
    if state["epoch"] < config.epochs and not state.get("early_stopped"):
        model.fit(_as_input(train_set.images), _one_hot(train_set.labels),
                  validation_data=(_as_input(val_set.images), _one_hot(val_set.labels)),
                  batch_size=config.batch_size, epochs=config.epochs,
                  initial_epoch=state["epoch"], shuffle=True, verbose=0, callbacks=[callback])
    stopped = bool(stop is not None and stop.is_set())
    if state["best_epoch"] == 0:
        raise RuntimeError("training stopped before its first epoch ended; nothing was saved")
    model.load_weights(run_dir / "best.weights.h5")

    classifier = EmotionClassifier(model, {"preprocessing": {"flip_average": True}})
    evaluation = {}
    held_out = len(data.split("PublicTest")) == 0
    parts = {split: data.split(split) for split in SPLITS}
    if held_out:
        parts["validation"] = val_set
    if progress:
        progress({"kind": "evaluate", "best_epoch": state["best_epoch"], "stopped_by_user": stopped,
                  "faces": int(sum(len(part) for part in parts.values()))})
    for split, part in parts.items():
        if len(part):
            evaluation[split] = classification_report(
                part.labels, classifier.predict_proba_batched(part.images))
    card = {
        "name": name or out_path.stem,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labels": list(LABELS),
        "input": {"shape": [FACE_SIZE, FACE_SIZE], "dtype": "uint8",
                  "description": "grey face crop, 0..255, as FER2013; the model rescales"},
        "preprocessing": {"flip_average": True, "face_crop": "detector box, resized to 48x48"},
        "architecture": config.architecture,
        "parameters": int(model.count_params()),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "data": {"source": Path(data.source).name, "path": str(Path(data.source).resolve()) if data.source else "",
                 "checksum_md5": data.checksum(),
                 "train_faces": len(train_set), "validation_faces": len(val_set),
                 "validation": "10% of Training" if held_out else "PublicTest",
                 "class_counts_train": train_set.class_counts()},
        "metrics": evaluation,
        "training": {"config": asdict(config), "epochs_run": state["epoch"],
                     "best_epoch": state["best_epoch"], "stopped_by_user": stopped,
                     "early_stopped": bool(state.get("early_stopped")),
                     "seconds_this_run": round(time.perf_counter() - started, 1),
                     "history": state["history"]},
    }
    save_model(model, out_path, card)
    card = json.loads(card_path(out_path).read_text())
    if progress:
        progress({"kind": "done", "model_path": str(out_path), "card": card})
    return TrainResult(out_path, card, stopped)


def discard_run(run_dir: str | Path) -> None:
    """Delete a run's checkpoints (after its model has been saved)."""
    shutil.rmtree(run_dir, ignore_errors=True)
