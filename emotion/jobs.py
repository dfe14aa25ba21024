"""Training in the background, and its progress as a thread-safe snapshot.

* :class:`TrainingProgress` turns the events of :func:`emotion.train.train` into a
  :class:`ProgressSnapshot` (epoch, batch, elapsed, time left, the curves so far),
  safe to read from any thread.
* :class:`TerminalBar` draws that progress as a one-line bar in a terminal
  (``python -m emotion train``).
* :class:`TrainingJob` runs ``train()`` (a job of kind ``train``) or
  :func:`emotion.finetune.finetune` (kind ``finetune``) in a child process watched by a
  background thread; :func:`start_job` and :func:`start_finetune` keep one job per
  server process (one per Streamlit server), a training or a fine-tune, and refuse a
  second while one runs; :func:`current_job` is the last one started, running or finished.

A job's model is written atomically (temporary file, then rename) by ``train()`` or
``finetune()``; stopping a job ends it after the current batch and still saves the best
finished epoch so far (nothing, in one line, when no epoch had finished).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from .access import check_name
from .common import one_line, run_dir_for
from .data import Dataset, DatasetError

log = logging.getLogger(__name__)
RUNNING = ("starting", "running", "stopping", "evaluating")
FINISHED = ("done", "stopped", "failed")
MAX_BATCH_POINTS = 400  # running training loss/accuracy points kept for the live curves


def runs_dir() -> Path:
    """Where app-started runs keep checkpoints and uploaded data: $FACEMOOD_RUNS_DIR, or
    ``runs/`` beside the models folder (``<project>/runs`` by default)."""
    import os

    from .classifier import models_dir

    return Path(os.environ.get("FACEMOOD_RUNS_DIR") or models_dir().resolve().parent / "runs")


class JobBusy(RuntimeError):
    """A training is already running in this process."""


@dataclass(frozen=True)
class ProgressSnapshot:
    status: str = "starting"      # one of RUNNING or FINISHED
    epoch: int = 0                # the epoch in progress (1-based), or the last one run
    epochs: int = 0
    batch: int = 0                # batches done in that epoch
    batches: int = 0              # batches per epoch
    elapsed: float = 0.0          # seconds since the job started
    eta: float | None = None      # seconds of training left (None: not known yet)
    history: tuple = ()           # one dict per finished epoch, as in the model card
    batch_points: tuple = ()      # (fractional epoch, loss, accuracy) within epochs
    best_epoch: int = 0
    message: str = ""             # a line for people: what happened, or why it failed
    model_path: str = ""          # where the model is (to be) saved
    card: dict | None = None      # the saved model's card, once done
    figures: tuple = ()           # the PNGs written beside the model

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    @property
    def fraction(self) -> float:
        """Share of the training's batches done, 0..1 (1 while evaluating and after)."""
        if self.status in ("evaluating", *FINISHED):
            return 1.0
        total = self.epochs * self.batches
        if not total:
            return 0.0
        return min(1.0, ((max(self.epoch, 1) - 1) * self.batches + self.batch) / total)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def describe(snapshot: ProgressSnapshot) -> str:
    """One line: ``epoch 2/10 · batch 120/449 · 1:02 elapsed · about 8:40 left``."""
    if snapshot.status == "starting":
        return f"starting · {format_seconds(snapshot.elapsed)} elapsed"
    if snapshot.status == "evaluating":
        return f"evaluating the best epoch ({snapshot.best_epoch}) · {format_seconds(snapshot.elapsed)} elapsed"
    parts = [f"epoch {snapshot.epoch}/{snapshot.epochs}", f"batch {snapshot.batch}/{snapshot.batches}",
             f"{format_seconds(snapshot.elapsed)} elapsed"]
    if snapshot.status in RUNNING:
        parts.append(f"about {format_seconds(snapshot.eta)} left" if snapshot.eta is not None
                     else "time left: measuring")
    if snapshot.status == "stopping":
        parts.append("stopping after this batch")
    return " · ".join(parts)


class TrainingProgress:
    """Collects ``train()`` progress events; :meth:`snapshot` may be called from any thread.

    Pass the object itself as ``train(..., progress=tracker)``.
    """

    def __init__(self, model_path: str | Path = ""):
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._first: tuple[float, int] | None = None  # (time, global batch) of the first batch seen
        self._epoch_end: tuple[float, int] | None = None  # (time, global batch) of the last epoch's end
        self._every = 1
        self._state = ProgressSnapshot(model_path=str(model_path))

    def __call__(self, event: dict) -> None:
        now = time.perf_counter()
        kind = event.get("kind")
        with self._lock:
            state = self._state
            if kind == "batch":
                epoch, batch, batches = event["epoch"], event["batch"], event["batches"]
                done = (epoch - 1) * batches + batch
                total = event["epochs"] * batches
                if self._first is None:  # time from here: the first batch also pays for tracing
                    self._first = (now, done)
                    self._every = max(1, -(-total // MAX_BATCH_POINTS))
                eta = None
                first_time, first_done = self._first
                # Once an epoch has ended, time whole epochs: they include validation, which
                # a batch-only rate leaves out and which made the estimate jump every epoch.
                since_time, since_done = self._epoch_end or (now, done)
                if since_done > first_done:
                    eta = (since_time - first_time) / (since_done - first_done) * max(total - done, 0)
                elif done > first_done and now > first_time:
                    eta = (now - first_time) / (done - first_done) * max(total - done, 0)
                points = state.batch_points
                if done % self._every == 0 and "loss" in event:
                    points = points + ((epoch - 1 + batch / batches, float(event["loss"]),
                                        float(event.get("accuracy", 0.0))),)
                state = replace(state, status="stopping" if state.status == "stopping" else "running",
                                epoch=epoch, epochs=event["epochs"], batch=batch, batches=batches,
                                eta=eta, batch_points=points)
            elif kind == "epoch":
                row = {k: v for k, v in event.items() if k not in ("kind", "epochs", "best_epoch")}
                if self._first is not None and state.batches:
                    self._epoch_end = (now, event["epoch"] * state.batches)
                state = replace(state, epochs=event["epochs"], epoch=event["epoch"],
                                history=state.history + (row,), best_epoch=event.get("best_epoch", 0))
            elif kind == "evaluate":
                state = replace(state, status="evaluating", best_epoch=event.get("best_epoch", state.best_epoch),
                                eta=None)
            elif kind == "done":
                state = replace(state, card=event.get("card"), model_path=event.get("model_path", state.model_path))
            self._state = replace(state, elapsed=now - self._started)

    def update(self, **changes) -> None:
        """Set fields of the snapshot (the job's status and message)."""
        with self._lock:
            self._state = replace(self._state, elapsed=time.perf_counter() - self._started, **changes)

    def snapshot(self) -> ProgressSnapshot:
        with self._lock:
            if self._state.running:
                self._state = replace(self._state, elapsed=time.perf_counter() - self._started)
            return self._state


class TerminalBar:
    """Training progress for a terminal: a bar redrawn in place (with ``\\r``) while an epoch
    runs and one line per finished epoch. Without a terminal (``interactive=False``, e.g.
    output to a log file) only the epoch lines are written."""

    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None,
                 width: int = 28, every: float = 0.25):
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.width = width
        self.every = every
        self.tracker = TrainingProgress()
        self._drawn = 0.0
        self._line = 0

    def _draw(self, text: str) -> None:
        self.stream.write("\r" + text.ljust(self._line))
        self._line = len(text)
        self.stream.flush()

    def _clear(self) -> None:
        if self._line:
            self.stream.write("\r" + " " * self._line + "\r")
            self._line = 0

    def bar(self, snapshot: ProgressSnapshot) -> str:
        filled = round(self.width * snapshot.fraction)
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {snapshot.fraction:4.0%} {describe(snapshot)}"

    def __call__(self, event: dict) -> None:
        self.tracker(event)
        kind = event.get("kind")
        if kind == "batch" and self.interactive:
            now = time.perf_counter()
            if now - self._drawn >= self.every or event["batch"] == event["batches"]:
                self._drawn = now
                self._draw(self.bar(self.tracker.snapshot()))
        elif kind == "epoch":
            if self.interactive:
                self._clear()
            self.stream.write(
                f"epoch {event['epoch']}/{event['epochs']}: loss {event['loss']:.4f} "
                f"acc {event['accuracy']:.4f} val_acc {event.get('val_accuracy', 0):.4f} "
                f"({event['seconds']:.0f} s, {event['images_per_second']:.0f} faces/s)\n")
            self.stream.flush()
        elif kind == "evaluate":
            if self.interactive:
                self._clear()
            self.stream.write(f"evaluating the best epoch ({event.get('best_epoch')}) on "
                              f"{event.get('faces', 0):,} faces\n")
            self.stream.flush()


def check_model_name(name: str) -> str:
    """A model name usable as a file name (``.keras`` dropped), or ValueError saying why."""
    return check_name(name, "model", ".keras")


def check_dataset(data: Dataset, config) -> tuple[int, int]:
    """Raise DatasetError if ``config`` cannot train on ``data``; (train, validation) face counts."""
    from .train import split_for_training

    if len(data) == 0:
        raise DatasetError("the dataset has no faces")
    train_set, val_set = split_for_training(data, config)
    if len(val_set) == 0:
        raise DatasetError("the dataset has no validation faces")
    return len(train_set), len(val_set)


def _outcome(result) -> dict:
    """The snapshot fields that end a run which saved its model."""
    training = result.card.get("training", {})
    stopped = bool(training.get("stopped_by_user"))
    if stopped:
        # epochs_run counts finished epochs; the stop came in the next one, which is dropped.
        message = (f"stopped during epoch {training.get('epochs_run', 0) + 1}; the best finished epoch "
                   f"({training.get('best_epoch')}) was saved as {result.model_path.name}")
    else:
        message = (f"finished {training.get('epochs_run')} epoch(s)"
                   + (" (early stopping)" if training.get("early_stopped") else "")
                   + f"; the best epoch ({training.get('best_epoch')}) was saved as {result.model_path.name}")
    return {"status": "stopped" if stopped else "done", "message": message, "card": result.card,
            "model_path": str(result.model_path), "eta": None}


# What people call each kind of job, in messages.
KINDS = {"train": "training", "finetune": "fine-tune"}


def _finish_in_child(events, stop, name: str, run) -> None:
    """The end of every child: ``run()`` (a train() or finetune() result), the figures written
    beside its model, and the outcome reported through ``events`` as one line."""
    from .plots import save_training_figures

    try:
        result = run()
        fields = _outcome(result)
        fields["figures"] = tuple(str(p) for p in save_training_figures(result.model_path, result.card))
    except Exception as error:  # noqa: BLE001 - reported to the parent as one line
        log.warning("job %s ended with an error", name, exc_info=True)
        text = one_line(error)
        if stop.is_set():
            message = "stopped before the first epoch ended; nothing was saved"
            if "nothing was saved" not in text:  # not fit_keeping_best's own words for it: say what
                message += f" ({text})"
            fields = {"status": "stopped", "eta": None, "message": message}
        else:
            fields = {"status": "failed", "eta": None, "message": text}
    events.put({"kind": "finished", "fields": fields})


def _train_in_child(events, stop, out_path: Path, name: str, settings: dict) -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from .train import discard_run, train

    def run():
        result = train(settings["data"], settings["config"], out_path, run_dir=settings["run_dir"],
                       progress=events.put, stop=stop, name=name, resume=True)
        if not settings["keep_run"]:
            discard_run(settings["run_dir"])
        return result

    _finish_in_child(events, stop, name, run)


def _finetune_in_child(events, stop, out_path: Path, name: str, settings: dict) -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from .finetune import finetune

    _finish_in_child(events, stop, name, lambda: finetune(
        settings["data_dir"], out_path, epochs=settings["epochs"], freeze=settings["freeze"],
        learning_rate=settings["learning_rate"], base=settings["base"], progress=events.put, stop=stop))


_CHILDREN = {"train": _train_in_child, "finetune": _finetune_in_child}


class TrainingJob:
    """One ``train()`` or ``finetune()`` run in a child process, watched by a thread of this
    one; see :func:`start_job` and :func:`start_finetune`.

    A separate process, not a thread: Streamlit calls ``keras.backend.clear_session()``
    after every script run, which would wipe Keras' global state under a training
    thread of the server. Progress comes back as the same events ``train()`` emits and
    collects in :attr:`progress`; :meth:`snapshot` may be called from any thread.

    ``kind`` is ``train`` (``settings``: data, config, run_dir, keep_run) or ``finetune``
    (``settings``: data_dir, epochs, freeze, learning_rate, base).
    """

    def __init__(self, kind: str, out_path: str | Path, settings: dict, name: str | None = None,
                 owner: str = ""):
        import multiprocessing

        if kind not in _CHILDREN:
            raise ValueError(f"unknown job kind {kind!r}: one of {', '.join(_CHILDREN)}")
        self.kind = kind
        self.settings = dict(settings)
        self.data: Dataset | None = self.settings.get("data")   # a training's dataset and config
        self.config = self.settings.get("config")
        self.out_path = Path(out_path)
        self.name = name or self.out_path.stem
        self.owner = owner
        self.started_at = time.time()
        self.progress = TrainingProgress(self.out_path)
        # spawn, not fork: this process already runs TensorFlow's (or JAX's) threads.
        context = multiprocessing.get_context("spawn")
        self._events = context.Queue()
        self._stop = context.Event()
        self._process = context.Process(
            target=_CHILDREN[kind], name=f"facemood-{kind}-{self.name}", daemon=True,
            args=(self._events, self._stop, self.out_path, self.name, self.settings))
        self._watcher = threading.Thread(target=self._watch, name=f"facemood-watch-{self.name}", daemon=True)

    @property
    def what(self) -> str:
        """``training`` or ``fine-tune``, for messages."""
        return KINDS[self.kind]

    def start(self) -> "TrainingJob":
        self._process.start()
        self._watcher.start()
        return self

    def stop(self) -> None:
        """Ask the run to end after the current batch; the best epoch so far is still saved."""
        if not self._stop.is_set():
            self._stop.set()
            if self.snapshot().status in ("starting", "running"):
                self.progress.update(status="stopping")

    def snapshot(self) -> ProgressSnapshot:
        return self.progress.snapshot()

    @property
    def running(self) -> bool:
        """True until the run has ended (its model saved, or not); the child process may take
        a few more seconds to exit, which :meth:`join` waits for."""
        return self.snapshot().running

    def join(self, timeout: float | None = None) -> ProgressSnapshot:
        self._watcher.join(timeout)
        return self.snapshot()

    def _handle(self, event: dict) -> None:
        if event.get("kind") == "finished":
            fields = dict(event["fields"])
            if self._stop.is_set() and fields.get("status") == "failed":
                fields["status"] = "stopped"
            self.progress.update(**fields)
        else:
            self.progress(event)

    def _watch(self) -> None:
        import queue

        try:
            while self._process.is_alive():
                try:
                    self._handle(self._events.get(timeout=0.2))
                except queue.Empty:
                    pass
            while True:  # what the child sent just before it ended
                try:
                    self._handle(self._events.get(timeout=0.2))
                except queue.Empty:
                    break
            self._process.join()
        finally:
            if self.progress.snapshot().running:
                self.progress.update(status="failed", eta=None, message=(
                    f"the {self.what} process ended unexpectedly (exit code {self._process.exitcode})"))


_SLOT = threading.Lock()
_current: TrainingJob | None = None


def current_job() -> TrainingJob | None:
    """The last job started in this process (running or finished), or None."""
    return _current


def _start(make) -> TrainingJob:
    """Start the job ``make()`` builds, unless one of this process runs (JobBusy)."""
    global _current
    with _SLOT:
        if _current is not None and _current.running:
            snap = _current.snapshot()
            raise JobBusy(f"a {_current.what} is already running on this server ({_current.name}: "
                          f"{describe(snap)}); wait for it to end or stop it")
        _current = make()
        return _current.start()


def start_job(data: Dataset, config, out_path: str | Path, *, run_dir: str | Path | None = None,
              name: str | None = None, keep_run: bool = False, owner: str = "") -> TrainingJob:
    """Start training ``config`` on ``data`` in the background; the model goes to ``out_path``.

    Raises :class:`JobBusy` while another job of this process runs, and
    :class:`emotion.DatasetError` when the data cannot be trained on, before any training.
    The child process is started with ``spawn``: a script that calls this needs the
    usual ``if __name__ == "__main__":`` guard.
    """
    check_dataset(data, config)
    out_path = Path(out_path)
    run_dir = run_dir_for(out_path, run_dir)
    return _start(lambda: TrainingJob("train", out_path, {"data": data, "config": config, "run_dir": run_dir,
                                                          "keep_run": keep_run}, name=name, owner=owner))


def start_finetune(data_dir: str | Path, out_path: str | Path, *, epochs: int, freeze: int = 0,
                   learning_rate: float | None = None, base: str | Path | None = None,
                   name: str | None = None, owner: str = "") -> TrainingJob:
    """Fine-tune ``base`` (default: the active model) on the personal dataset ``data_dir`` in
    the background, as :func:`emotion.finetune.finetune` does; the model goes to ``out_path``.

    Raises :class:`JobBusy` while another job (training or fine-tune) of this process runs,
    DatasetError for a folder that is not a personal dataset and ValueError for a model file
    that may not be written, in one line, before anything starts; the rest (the base model,
    ``freeze``) is told by the job's end, as a failure.
    """
    from .classifier import default_model_path
    from .finetune import check_out, personal_labels

    personal_labels(data_dir)
    check_out(out_path, Path(base) if base else default_model_path())
    return _start(lambda: TrainingJob("finetune", out_path, {
        "data_dir": str(data_dir), "epochs": int(epochs), "freeze": int(freeze), "learning_rate": learning_rate,
        "base": None if base is None else str(base)}, name=name, owner=owner))
