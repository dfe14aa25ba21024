"""Training that outlives a process: Keras' BackupAndRestore resumes a run, Stop drops the
partial epoch, and a config file plus --resume continue a run from the command line."""

from __future__ import annotations

import json
import threading

import pytest

from emotion.data import load_dataset
from emotion.model import Augmentation
from emotion.train import TrainConfig, read_history, train

QUICK = dict(architecture="small", width=8, batch_size=64, augmentation=Augmentation.none())


def test_a_stopped_process_resumes_from_its_last_finished_epoch(fer2013_slice, tmp_path):
    data = load_dataset(fer2013_slice)
    run_dir = tmp_path / "run"

    class Crash(Exception):
        pass

    def crash_in_epoch_3(event):
        if event["kind"] == "batch" and event["epoch"] == 3:
            raise Crash  # as if the process died in the middle of epoch 3

    config = TrainConfig(epochs=4, **QUICK)
    with pytest.raises(Crash):
        train(data, config, tmp_path / "m.keras", run_dir=run_dir, progress=crash_in_epoch_3)
    assert [row["epoch"] for row in read_history(run_dir / "history.csv")] == [1, 2]

    with pytest.raises(ValueError, match="resume"):  # never silently overwritten
        train(data, config, tmp_path / "m.keras", run_dir=run_dir)
    with pytest.raises(ValueError, match="another configuration"):
        train(data, TrainConfig(epochs=4, learning_rate=0.5, **QUICK), tmp_path / "m.keras",
              run_dir=run_dir, resume=True)

    epochs_run = []
    result = train(data, config, tmp_path / "m.keras", run_dir=run_dir, resume=True,
                   progress=lambda e: e["kind"] == "epoch" and epochs_run.append(e["epoch"]))
    assert epochs_run == [3, 4]  # epochs 1-2 were not trained again
    history = result.card["training"]["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    # The schedule continued where it was: epoch 3's rate is the cosine's, not a restart's.
    assert history[2]["learning_rate"] == pytest.approx(config.learning_rate_at(2), rel=1e-5)
    best = max(history, key=lambda row: row["val_accuracy"])
    assert result.card["training"]["best_epoch"] == best["epoch"]
    assert result.card["training"]["seconds_all_runs"] > 0 and result.card["training"]["machine"]["cpus"]


def test_stop_ends_within_the_batch_and_never_keeps_a_partial_epoch(fer2013_slice, tmp_path):
    data = load_dataset(fer2013_slice)
    stop = threading.Event()
    events = []

    def stop_in_epoch_2(event):
        events.append(event)
        if event["kind"] == "batch" and event["epoch"] == 2 and event["batch"] == 1:
            stop.set()

    result = train(data, TrainConfig(epochs=5, **QUICK), tmp_path / "m.keras",
                   run_dir=tmp_path / "run", progress=stop_in_epoch_2, stop=stop)
    training = result.card["training"]
    assert result.stopped_early and training["stopped_by_user"]
    assert training["epochs_run"] == 1 and training["best_epoch"] == 1
    assert [row["epoch"] for row in training["history"]] == [1]
    batches_after_stop = [e for e in events if e["kind"] == "batch" and e["epoch"] == 2]
    assert len(batches_after_stop) == 1  # not one more batch, and no validation of epoch 2
    assert not any(e["kind"] == "epoch" and e["epoch"] == 2 for e in events)


def test_class_weights_lift_rare_classes(fer2013_slice, tmp_path):
    import numpy as np

    from emotion.train import _class_weights

    labels = np.array([0] * 100 + [1] * 4 + [3] * 400)
    weights = _class_weights(labels, "sqrt")
    assert weights[1] > weights[0] > weights[3]
    counts = np.bincount(labels, minlength=7)
    assert sum(weights[i] * counts[i] for i in range(7)) == pytest.approx(len(labels))
    assert _class_weights(labels, "none") is None


def test_cli_config_file_and_resume(tmp_path, fer2013_slice):
    from test_cli import run

    config = tmp_path / "recipe.json"
    config.write_text(json.dumps({"architecture": "small", "width": 8, "epochs": 2,
                                  "augmentation": {"flip": True, "rotation": 0, "shift": 0,
                                                   "zoom": 0, "brightness": 0, "erasing": 0.5}}))
    out, run_dir = tmp_path / "models" / "r.keras", tmp_path / "run"
    (run_dir).mkdir()
    (run_dir / "history.csv").write_text("epoch,accuracy\n")  # an earlier run's leftovers
    refused = run("train", "--data", fer2013_slice, "--config", config, "--out", out, "--run-dir", run_dir)
    assert refused.returncode == 1 and "--resume" in refused.stderr and len(refused.stderr.splitlines()) == 1
    (run_dir / "history.csv").unlink()

    done = run("train", "--data", fer2013_slice, "--config", config, "--epochs", 1, "--out", out,
               "--run-dir", run_dir)
    assert done.returncode == 0, done.stderr
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["config"]["epochs"] == 1  # the option overrides the file
    assert card["training"]["config"]["augmentation"]["erasing"] == 0.5
    assert not run_dir.exists()  # a finished run leaves only the model and its card

    config.write_text(json.dumps({"epochs": 2, "wings": 3}))
    bad = run("train", "--data", fer2013_slice, "--config", config, "--out", out)
    assert bad.returncode == 1 and "wings" in bad.stderr


def test_stop_in_the_first_epoch_saves_nothing_and_says_so(fer2013_slice, tmp_path):
    data = load_dataset(fer2013_slice)
    stop = threading.Event()
    stop.set()  # asked before the first batch ends
    out = tmp_path / "m.keras"
    with pytest.raises(RuntimeError, match="before its first epoch ended; nothing was saved"):
        train(data, TrainConfig(epochs=3, **QUICK), out, run_dir=tmp_path / "run", stop=stop)
    assert not out.exists() and not out.with_suffix(".json").exists()
