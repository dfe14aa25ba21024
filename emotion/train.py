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
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .classifier import EmotionClassifier, card_path
from .common import run_dir_for, write_atomically
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
    class_weight: str = "none"    # "none", or "sqrt": weigh rare classes (disgust) up by 1/sqrt(frequency)
    early_stopping: int = 0       # stop after this many epochs without a better val accuracy; 0: off
    limit: int | None = None      # train on the first N training faces only
    seed: int = 1
    # Distillation: a trained .keras model, or a list of them (an ensemble, their probabilities
    # averaged), whose probabilities (predict_proba, run once on the training faces) are mixed
    # into the targets. Keras weighs a soft target's class (class_weight) by its largest share:
    # the true label's while distill_weight <= 0.5.
    teacher: str | list[str] = ""
    distill_weight: float = 0.5        # the teacher's share of each target; the true label has the rest
    distill_temperature: float = 1.0   # above 1 softens the teacher's probabilities
    # Crowd votes: FER+ (fer2013new.csv), whose ten annotators' shares of each training face
    # are mixed into its target, crowd_weight of it; a face nobody gave an emotion keeps its label.
    crowd_votes: str = ""
    crowd_weight: float = 0.3
    # Warm start: a trained .keras model of the same architecture and width whose weights the
    # run starts from (a second, gentler schedule after a finished one), instead of random ones.
    init_from: str = ""

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """A configuration from a card's or a config file's mapping; unknown keys are an error."""
        values = dict(values)
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}")
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
    run_dir: Path


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


def _crowd_shares(data: Dataset, config: TrainConfig) -> np.ndarray:
    """The crowd's shares (N, 7) for the faces :func:`split_for_training` trains on."""
    from .data import load_crowd_votes

    if not 0 <= config.crowd_weight < 0.5:
        raise ValueError("crowd_weight must be within 0..0.5, so the true label keeps the largest share")
    if not len(data.split("PublicTest")):
        raise DatasetError("crowd votes need FER2013's own splits; this dataset has no PublicTest")
    return load_crowd_votes(config.crowd_votes, data)[data.usage == "Training"][:config.limit]


def _targets(train_set: Dataset, config: TrainConfig, run_dir: Path,
             crowd: np.ndarray | None = None) -> np.ndarray:
    """The training targets: one-hot true labels, mixed with the ``crowd``'s shares where it
    voted, then with a teacher's probabilities. The teacher runs once per run; its
    probabilities are kept in the run folder for a resumed run (and recomputed if the
    teacher file changed)."""
    targets = _one_hot(train_set.labels)
    if crowd is not None:
        voted = crowd.sum(axis=1) > 0
        targets[voted] = (1 - config.crowd_weight) * targets[voted] + config.crowd_weight * crowd[voted]
    if not config.teacher:
        return targets
    from .export import sha256

    if not 0 <= config.distill_weight <= 1 or config.distill_temperature <= 0:
        raise ValueError("distill_weight must be within 0..1 and distill_temperature above 0")
    teacher_paths = [Path(config.teacher)] if isinstance(config.teacher, str) else [Path(t) for t in config.teacher]
    for path in teacher_paths:
        if not path.is_file():
            raise ValueError(f"teacher model not found: {path}")
    digest, cache = " ".join(sha256(path) for path in teacher_paths), run_dir / "teacher.npz"
    saved = np.load(cache) if cache.is_file() else None
    if saved is not None and str(saved["sha256"]) == digest and saved["probs"].shape == targets.shape:
        probs = saved["probs"]
    else:
        probs = np.mean([_teacher_probs(path, train_set.images) for path in teacher_paths], axis=0)
        write_atomically(cache, lambda temp: np.savez(open(temp, "wb"), probs=probs, sha256=digest))
    soft = probs.astype(np.float64) ** (1.0 / config.distill_temperature)
    soft /= soft.sum(axis=1, keepdims=True)
    return ((1 - config.distill_weight) * targets + config.distill_weight * soft).astype(np.float32)


def _teacher_probs(path: Path, images: np.ndarray) -> np.ndarray:
    teacher = EmotionClassifier.load(path)
    if teacher.labels != LABELS:
        raise ValueError(f"the teacher {path.name} does not give the seven emotions")
    return teacher.predict_proba_batched(images)


def _load_start_weights(model, path: Path) -> dict:
    """Copy a trained model's weights into ``model``, layer by layer (its augmentation may
    differ); returns what the card keeps of it: its file, checksum and own training record,
    so that a model's whole history stays on its card when the start file is replaced."""
    import keras

    from .classifier import read_card
    from .export import sha256

    if not path.is_file():
        raise ValueError(f"start model not found: {path}")
    start = keras.models.load_model(path, compile=False)
    mine = [layer for layer in model.layers if layer.weights]
    theirs = [layer for layer in start.layers if layer.weights]
    shapes = [[tuple(w.shape) for w in layer.weights] for layer in mine]
    if shapes != [[tuple(w.shape) for w in layer.weights] for layer in theirs]:
        raise ValueError(f"{path.name} is not a {len(mine)}-layer model of this architecture and width; "
                         f"start from a model trained with the same ones")
    for target, source in zip(mine, theirs):
        target.set_weights(source.get_weights())
    return {"model": path.name, "sha256": sha256(path),
            "training": _without_histories(read_card(path).get("training", {}))}


def _without_histories(record):
    """``record`` less every ``history``, at any depth: a start that is itself a soup carries
    its ingredients' records, and each warm start from it would copy their epochs again."""
    if isinstance(record, dict):
        return {key: _without_histories(value) for key, value in record.items() if key != "history"}
    if isinstance(record, list):
        return [_without_histories(value) for value in record]
    return record


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


def save_model(model, path: Path, card: dict) -> None:
    """Save an inference copy of ``model`` (no optimizer state) and its card, atomically."""
    import keras

    # A model rebuilt from its config carries no optimizer: a third of the file size.
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    write_atomically(path, lambda temp: clone.save(temp))
    card = dict(card, file_size_bytes=path.stat().st_size)
    write_atomically(card_path(path), lambda temp: temp.write_text(json.dumps(card, indent=1)))


class TrainingStopped(Exception):
    """Raised inside ``fit`` when the user asks to stop: no partial epoch is validated,
    checkpointed or chosen as the best."""


def _progress_callback(config: TrainConfig, train_size: int, steps: int,
                       progress: Progress | None, stop: threading.Event | None, history_path=None):
    """A Keras callback that times each epoch, reports batches and epochs to ``progress`` and
    stops on request. With ``history_path`` (the run's CSVLogger file) an epoch event also says
    which epoch is best so far on validation accuracy. Shared by every training in the project
    (emotion models, fine-tuning, the keypoint model); only ``config.epochs`` is read."""
    import keras

    class Report(keras.callbacks.Callback):
        """Reports batches and epochs to ``progress``, times each epoch, and stops on request."""

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if stop is not None and stop.is_set():
                raise TrainingStopped
            if progress:
                progress({"kind": "batch", "epoch": self.epoch + 1, "epochs": config.epochs,
                          "batch": batch + 1, "batches": steps,
                          "elapsed": time.perf_counter() - self.started, **(logs or {})})

        def on_epoch_end(self, epoch, logs=None):
            # Runs before CSVLogger (callback order), so the history file gets these too.
            seconds = time.perf_counter() - self.started
            logs["seconds"] = round(seconds, 1)
            logs["images_per_second"] = round(train_size / seconds, 1)
            if progress:
                row = _history_row(epoch, logs)
                if history_path is not None:
                    history = read_history(history_path)
                    row["best_epoch"] = max(history + [row], key=lambda r: r.get("val_accuracy", -1))["epoch"]
                progress({"kind": "epoch", **row, "epochs": config.epochs})

    return Report()


def _history_row(epoch: int, logs: dict) -> dict:
    row = {key: float(value) for key, value in logs.items()}
    row["epoch"] = epoch + 1
    return row


def read_history(path: Path) -> list[dict]:
    """The per-epoch rows of a run's ``history.csv`` (1-based ``epoch``); a row written
    twice (an epoch redone after a crash) counts once, the later one."""
    import csv

    if not path.is_file():
        return []
    rows = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            values = {key: float(value) for key, value in row.items() if value not in ("", None)}
            values["epoch"] = int(values["epoch"]) + 1
            rows[values["epoch"]] = values
    return [rows[epoch] for epoch in sorted(rows)]


def _class_weights(labels: np.ndarray, mode: str) -> dict[int, float] | None:
    """Loss weights per class: ``sqrt`` weighs a class by 1/sqrt(its frequency), so
    disgust (1.5 % of FER2013) counts more without drowning the rest."""
    if mode == "none":
        return None
    if mode != "sqrt":
        raise ValueError(f"unknown class weighting {mode!r}; choose none or sqrt")
    counts = np.bincount(labels, minlength=len(LABELS)).astype(float)
    weights = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    weights *= counts.sum() / (weights * counts).sum()  # the average face keeps weight 1
    return {index: float(weight) for index, weight in enumerate(weights)}


def _callbacks(run_dir: Path, config: TrainConfig, report, best_so_far: float) -> list:
    """Keras' own callbacks do the work; ``report`` only reports and stops."""
    import keras

    callbacks = [
        # Restores weights, optimizer and epoch after a stopped process; we delete it
        # ourselves once the model is saved, so a failure after fit can still resume.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        keras.callbacks.LearningRateScheduler(config.learning_rate_at),
        keras.callbacks.ModelCheckpoint(str(run_dir / "best.weights.h5"), monitor="val_accuracy",
                                        mode="max", save_best_only=True, save_weights_only=True,
                                        initial_value_threshold=best_so_far),
        report,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]
    if config.early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max",
                                                       patience=config.early_stopping))
    return callbacks


def _start_or_resume(run_dir: Path, config: TrainConfig, resume: bool) -> None:
    """Check that ``run_dir`` may hold this run, and record its configuration."""
    config_file = run_dir / "config.json"
    has_checkpoint = (run_dir / "backup").is_dir() or (run_dir / "history.csv").is_file()
    if has_checkpoint and not resume:
        raise ValueError(f"{run_dir} holds the checkpoint of an earlier run: resume it "
                         f"(--resume) or delete that folder")
    stored = json.loads(config_file.read_text()) if config_file.is_file() else None
    if stored is not None:  # options added since the checkpoint was made count at their defaults
        stored = {**{k: v for k, v in asdict(TrainConfig()).items() if k not in stored}, **stored}
    if has_checkpoint and stored is not None and stored != asdict(config):
        raise ValueError(f"{run_dir} holds a checkpoint made with another configuration; "
                         f"use the same configuration to resume, or delete that folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(config_file, lambda temp: temp.write_text(json.dumps(asdict(config), indent=1)))


def train(data: Dataset, config: TrainConfig, out_path: str | Path,
          run_dir: str | Path | None = None, progress: Progress | None = None,
          stop: threading.Event | None = None, name: str | None = None,
          resume: bool = False) -> TrainResult:
    """Train a model on ``data`` and save it with its card at ``out_path`` (.keras).

    ``run_dir`` holds the checkpoints (default: ``runs/<stem>`` beside the
    project). With ``resume``, a run stopped earlier (same configuration)
    continues from its last finished epoch; without it, an existing checkpoint
    is an error rather than silently overwritten. Setting ``stop`` ends the run
    after the current batch: that partial epoch is dropped and the best finished
    epoch is saved.
    """
    import keras

    out_path = Path(out_path)
    if out_path.suffix != ".keras":
        raise ValueError(f"the model file must end in .keras: {out_path}")
    run_dir = run_dir_for(out_path, run_dir)
    train_set, val_set = split_for_training(data, config)
    crowd = _crowd_shares(data, config) if config.crowd_votes else None
    _start_or_resume(run_dir, config, resume)

    keras.utils.set_random_seed(config.seed)
    model = build_model(config.architecture, config.augmentation, config.dropout, config.width)
    started_from = _load_start_weights(model, Path(config.init_from)) if config.init_from else None
    _compile(model, config)
    earlier = read_history(run_dir / "history.csv")
    best_so_far = max((row.get("val_accuracy", -1.0) for row in earlier), default=None)

    steps = math.ceil(len(train_set) / config.batch_size)
    report = _progress_callback(config, len(train_set), steps, progress, stop, run_dir / "history.csv")
    started = time.perf_counter()
    history, best, stopped = fit_keeping_best(
        model, run_dir, "training", x=_as_input(train_set.images), y=_targets(train_set, config, run_dir, crowd),
        validation_data=(_as_input(val_set.images), _one_hot(val_set.labels)),
        batch_size=config.batch_size, epochs=config.epochs,
        class_weight=_class_weights(train_set.labels, config.class_weight),
        callbacks=_callbacks(run_dir, config, report, best_so_far))

    classifier = EmotionClassifier(model, {"preprocessing": {"flip_average": True}})
    evaluation = {}
    held_out = len(data.split("PublicTest")) == 0
    parts = {split: data.split(split) for split in SPLITS}
    if held_out:
        parts["validation"] = val_set
    if progress:
        progress({"kind": "evaluate", "best_epoch": best["epoch"], "stopped_by_user": stopped,
                  "faces": int(sum(len(part) for part in parts.values()))})
    for split, part in parts.items():
        if len(part):
            evaluation[split] = classification_report(
                part.labels, classifier.predict_proba_batched(part.images))
    early_stopped = not stopped and history[-1]["epoch"] < config.epochs
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
        "data": {"source": Path(data.source).name, "path": _data_path(data.source),
                 "checksum_md5": data.checksum(),
                 "train_faces": len(train_set), "validation_faces": len(val_set),
                 "validation": "10% of Training" if held_out else "PublicTest",
                 "class_counts_train": train_set.class_counts()},
        "metrics": evaluation,
        "training": training_record(config, history, best, stopped, early_stopped, started),
    }
    if started_from:
        card["training"]["started_from"] = started_from
    save_model(model, out_path, card)
    card = json.loads(card_path(out_path).read_text())
    if progress:
        progress({"kind": "done", "model_path": str(out_path), "card": card})
    return TrainResult(out_path, card, stopped, run_dir)


def fit_keeping_best(model, run_dir: Path, what: str, **fit_args) -> tuple[list[dict], dict, bool]:
    """``model.fit(**fit_args)`` with callbacks from :func:`_callbacks` writing ``run_dir``, then
    the best epoch's weights loaded back: (history, the best epoch's row, stopped by the user).
    ``what`` ("training", "fine-tuning") names the run when not one epoch ended."""
    stopped = False
    try:
        model.fit(shuffle=True, verbose=0, **fit_args)
    except TrainingStopped:
        stopped = True
    history = read_history(run_dir / "history.csv")
    if not history or not (run_dir / "best.weights.h5").is_file():
        raise RuntimeError(f"{what} stopped before its first epoch ended; nothing was saved")
    model.load_weights(run_dir / "best.weights.h5")
    return history, max(history, key=lambda row: row.get("val_accuracy", -1)), stopped


def training_record(config, history: list[dict], best: dict, stopped: bool, early_stopped: bool,
                    started: float) -> dict:
    """The card's "training" entry: the config, the epochs, where the time went and the history
    (``started``: this run's ``time.perf_counter()`` at its start)."""
    return {"config": asdict(config), "epochs_run": history[-1]["epoch"],
            "best_epoch": best["epoch"], "stopped_by_user": stopped, "early_stopped": early_stopped,
            "machine": _machine(),
            "seconds_this_run": round(time.perf_counter() - started, 1),
            "seconds_all_runs": round(sum(row.get("seconds", 0.0) for row in history), 1),
            "history": history}


def _data_path(source: str) -> str:
    """Where the data is, for the Inspect tab's mistakes grid: a file or folder that
    exists; "" for an upload parsed in memory, whose name is not a path."""
    path = Path(source) if source else None
    return str(path.resolve()) if path and path.exists() else ""


def _machine() -> dict:
    """Where the model trained, for its card."""
    import platform

    import keras

    devices = [str(device) for device in keras.config.list_devices()] \
        if hasattr(keras.config, "list_devices") else []
    return {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "backend": keras.backend.backend(), "devices": devices}


def discard_run(run_dir: str | Path) -> None:
    """Delete a run's checkpoints (after its model has been saved)."""
    shutil.rmtree(run_dir, ignore_errors=True)
