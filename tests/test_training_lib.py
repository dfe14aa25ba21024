"""The library under the Training page: figures, progress, the active model, photo crops, mistakes."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from emotion import LABELS, plots
from emotion.classifier import DEFAULT_MODEL, ModelError, default_model_path, set_active_model
from emotion.data import DatasetError, face_crop, load_dataset
from emotion.jobs import ProgressSnapshot, TerminalBar, TrainingProgress, check_model_name, describe

MODEL = DEFAULT_MODEL


@pytest.fixture
def card() -> dict:
    if not MODEL.is_file():
        pytest.fail(f"the shipped model {DEFAULT_MODEL} is missing", pytrace=False)
    return json.loads(MODEL.with_suffix(".json").read_text())


def png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


# --- plots ------------------------------------------------------------------------------


def test_card_figures_are_written_beside_the_model(card, tmp_path):
    model = tmp_path / "mine.keras"
    written = plots.save_training_figures(model, card)
    assert written == [tmp_path / "mine-curves.png", tmp_path / "mine-confusion.png"]
    assert png_size(written[0].read_bytes()) == (900, 340)
    assert png_size(written[1].read_bytes()) == (1100, 460)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine-confusion.png", "mine-curves.png"]


def test_figures_from_plain_data():
    history = [{"epoch": 1, "accuracy": 0.3, "loss": 1.8, "val_accuracy": 0.35, "val_loss": 1.7},
               {"epoch": 2, "accuracy": 0.4, "loss": 1.6, "val_accuracy": 0.33, "val_loss": 1.75}]
    curves = plots.curves_figure(history, batch_points=[(0.5, 1.9, 0.25), (1.5, 1.7, 0.35)])
    assert isinstance(curves, Figure)
    accuracy, loss = curves.axes[:2]
    assert [line.get_label() for line in accuracy.lines] == [
        "training (within epoch)", "training", "validation", "best epoch (1)"]
    assert list(loss.lines[2].get_ydata()) == [1.7, 1.75]

    matrix = np.arange(49).reshape(7, 7)
    confusion = plots.confusion_figure(matrix)
    counts, rows = confusion.axes[:2]
    assert counts.images[0].get_array().tolist() == matrix.tolist()
    np.testing.assert_allclose(rows.images[0].get_array().sum(axis=1), 1.0)
    assert [t.get_text() for t in counts.get_xticklabels()] == list(LABELS)

    faces = np.zeros((10, 48, 48), np.uint8)
    grid = plots.misclassified_figure(faces, [0] * 10, [3] * 10, [0.9] * 10, columns=4)
    titled = [ax.get_title() for ax in grid.axes if ax.get_title()]
    assert len(grid.axes) == 12 and titled == ["angry → happy\n90%"] * 10
    assert png_size(plots.figure_png(plots.misclassified_figure(faces[:0], [], [], []))) > (0, 0)


def test_report_split_prefers_the_test_set():
    matrix = [[1] * 7] * 7
    assert plots.report_split({"metrics": {"Training": {"confusion_matrix": matrix},
                                           "PrivateTest": {"confusion_matrix": matrix}}}) == "PrivateTest"
    assert plots.report_split({"metrics": {"Training": {"confusion_matrix": matrix},
                                           "validation": {"confusion_matrix": matrix}}}) == "validation"
    assert plots.report_split({}) is None


# --- progress ---------------------------------------------------------------------------


def batch(epoch, number, batches=4, epochs=2, loss=1.5):
    return {"kind": "batch", "epoch": epoch, "epochs": epochs, "batch": number, "batches": batches,
            "loss": loss, "accuracy": 0.3}


def epoch_end(epoch, epochs=2):
    return {"kind": "epoch", "epoch": epoch, "epochs": epochs, "loss": 1.4, "accuracy": 0.35,
            "val_loss": 1.5, "val_accuracy": 0.3, "seconds": 2.0, "images_per_second": 128.0,
            "learning_rate": 1e-3, "best_epoch": epoch}


def test_progress_snapshot_from_train_events(monkeypatch):
    clock = iter(range(100))
    monkeypatch.setattr("emotion.jobs.time.perf_counter", lambda: float(next(clock)))
    tracker = TrainingProgress("models/x.keras")
    assert tracker.snapshot().status == "starting" and tracker.snapshot().fraction == 0
    for number in (1, 2, 3):
        tracker(batch(1, number))
    snapshot = tracker.snapshot()
    assert (snapshot.status, snapshot.epoch, snapshot.batch, snapshot.batches) == ("running", 1, 3, 4)
    assert snapshot.fraction == pytest.approx(3 / 8)
    assert snapshot.eta == pytest.approx(5.0)  # one second a batch (fake clock), 5 batches left
    assert [p[0] for p in snapshot.batch_points] == [0.25, 0.5, 0.75]
    tracker(epoch_end(1))
    snapshot = tracker.snapshot()
    assert len(snapshot.history) == 1 and snapshot.history[0]["val_accuracy"] == 0.3
    assert snapshot.best_epoch == 1
    assert describe(snapshot).startswith("epoch 1/2 · batch 3/4 · ")
    tracker({"kind": "evaluate", "best_epoch": 1})
    assert tracker.snapshot().status == "evaluating" and tracker.snapshot().fraction == 1.0
    tracker.update(status="done", message="finished")
    assert not tracker.snapshot().running


def test_time_left_counts_validation_and_stays_steady(monkeypatch):
    # Each epoch: 4 batches of 1 s, then 4 s of validation (the fake clock).
    now = [0.0]
    monkeypatch.setattr("emotion.jobs.time.perf_counter", lambda: now[0])
    tracker = TrainingProgress()
    estimates = []
    for epoch in (1, 2, 3):
        for number in (1, 2, 3, 4):
            now[0] += 1
            tracker(batch(epoch, number, epochs=4))
            estimates.append(tracker.snapshot().eta)
        now[0] += 4
        tracker(epoch_end(epoch, epochs=4))
    # After the first epoch, a batch costs 2 s with its share of validation; every later
    # estimate is that rate times the batches left, so it only ever goes down.
    later = estimates[4:]
    assert later == sorted(later, reverse=True)
    assert later[-1] == pytest.approx(4 * 2.0, rel=0.1)  # epoch 4's 4 batches left


def test_progress_keeps_a_bounded_curve():
    tracker = TrainingProgress()
    for epoch in (1, 2):
        for number in range(1, 501):
            tracker(batch(epoch, number, batches=500))
    assert 300 <= len(tracker.snapshot().batch_points) <= 400


def test_terminal_bar_redraws_in_place_on_a_terminal():
    out = io.StringIO()
    bar = TerminalBar(out, interactive=True, every=0.0)
    for number in (1, 2, 3, 4):
        bar(batch(1, number))
    bar(epoch_end(1))
    text = out.getvalue()
    assert text.count("\r[") == 4 and "50% epoch 1/2 · batch 4/4" in text
    assert "\nepoch 1/2: loss 1.4000 acc 0.3500 val_acc 0.3000 (2 s, 128 faces/s)\n" in "\n" + text.split("\r")[-1]

    plain = io.StringIO()
    bar = TerminalBar(plain, interactive=False)
    for number in (1, 2, 3, 4):
        bar(batch(1, number))
    bar(epoch_end(1))
    assert plain.getvalue() == "epoch 1/2: loss 1.4000 acc 0.3500 val_acc 0.3000 (2 s, 128 faces/s)\n"


def test_describe_each_status():
    assert describe(ProgressSnapshot(elapsed=3)).startswith("starting · 0:03")
    assert "about 1:01:05 left" in describe(ProgressSnapshot(status="running", epoch=1, epochs=2, batch=1,
                                                               batches=2, eta=3665))
    assert describe(ProgressSnapshot(status="evaluating", best_epoch=3)).startswith("evaluating the best epoch (3)")


@pytest.mark.parametrize("name, ok", [("mine", "mine"), ("vgg-2.keras", "vgg-2"), (" a_b.c ", "a_b.c"),
                                      ("../up", None), ("", None), ("-x", None), ("a b", None)])
def test_model_names(name, ok):
    if ok:
        assert check_model_name(name) == ok
    else:
        with pytest.raises(ValueError, match="cannot be a model name"):
            check_model_name(name)


# --- the active model -------------------------------------------------------------------


def test_the_active_model_is_chosen_in_the_models_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("FACEMOOD_MODEL", raising=False)
    monkeypatch.setenv("FACEMOOD_MODELS_DIR", str(tmp_path))
    assert default_model_path() == DEFAULT_MODEL  # nothing chosen: the shipped model
    mine = tmp_path / "mine.keras"
    mine.write_bytes(b"model")
    assert set_active_model(mine) == mine.resolve()
    assert json.loads((tmp_path / "active.json").read_text()) == {"model": "mine.keras"}
    assert default_model_path() == tmp_path / "mine.keras"
    monkeypatch.setenv("FACEMOOD_MODEL", "/elsewhere/other.keras")
    assert default_model_path() == Path("/elsewhere/other.keras")  # the environment still wins
    monkeypatch.delenv("FACEMOOD_MODEL")
    mine.unlink()
    assert default_model_path() == DEFAULT_MODEL  # a chosen model that is gone: the shipped one
    with pytest.raises(ModelError, match="not found"):
        set_active_model(mine)
    (tmp_path / "active.json").write_text("{ broken")
    assert default_model_path() == DEFAULT_MODEL
    set_active_model(None)
    assert not (tmp_path / "active.json").exists()


def test_photos_use_the_shipped_photo_model_unless_a_model_is_chosen(ensemble_model, tmp_path, monkeypatch):
    import emotion.classifier as classifier

    monkeypatch.delenv("FACEMOOD_MODEL", raising=False)
    monkeypatch.setenv("FACEMOOD_MODELS_DIR", str(tmp_path))
    monkeypatch.setattr(classifier, "PHOTO_MODEL", tmp_path / "absent.keras")
    assert default_model_path(photos=True) == DEFAULT_MODEL  # none shipped: one model for all
    monkeypatch.setattr(classifier, "PHOTO_MODEL", ensemble_model)
    assert default_model_path(photos=True) == ensemble_model and default_model_path() == DEFAULT_MODEL
    # What loads by default: the photo model, and for live video ("fast") the one network.
    assert classifier.EmotionClassifier.load(runtime="keras").path == ensemble_model
    assert classifier.EmotionClassifier.load(runtime="fast").path == DEFAULT_MODEL
    mine = tmp_path / "mine.keras"
    mine.write_bytes(b"model")
    set_active_model(mine)  # a model chosen in the app is used for everything
    assert default_model_path(photos=True) == default_model_path() == mine


# --- photos in image folders ----------------------------------------------------------


def test_photos_are_cut_down_to_their_largest_face(faces_dir, tmp_path):
    from emotion import EmotionRecognizer
    from emotion.detect import make_detector
    from emotion.pipeline import crop_faces, detect_faces, smallest_face_px

    photo = faces_dir / "fer_justin.jpg"
    grey = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    # The face the Image page finds, cut by the pipeline's own crop stage.
    [box] = detect_faces(make_detector(), rgb, smallest_face_px(grey.shape))
    [face] = EmotionRecognizer().analyze(rgb)
    assert tuple(np.round(box).astype(int)) == tuple(face.box)
    expected = crop_faces(grey, box[None])[0]
    crop = face_crop(grey, make_detector())
    assert crop.shape == (48, 48) and np.array_equal(crop, expected)

    (tmp_path / "train" / "happy").mkdir(parents=True)
    shutil.copy(photo, tmp_path / "train" / "happy" / "justin.jpg")
    blank = np.full((120, 90), 128, np.uint8)  # no face: the whole picture, resized
    cv2.imwrite(str(tmp_path / "train" / "happy" / "blank.png"), blank)
    data = load_dataset(tmp_path)
    assert np.array_equal(data.images[1], crop)
    assert np.array_equal(data.images[0], cv2.resize(blank, (48, 48), interpolation=cv2.INTER_AREA))


def test_an_empty_image_folder_is_refused(tmp_path):
    (tmp_path / "happy").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        load_dataset(tmp_path)


# --- mistakes ---------------------------------------------------------------------------


def test_misclassified_faces_are_the_most_confident_mistakes(card, fer2013_slice):
    from emotion import evaluation

    first = evaluation.misclassified(MODEL, fer2013_slice, count=10)
    assert first.split == "PrivateTest" and first.checked == 64
    assert len(first.true) == min(10, first.wrong) and (first.true != first.predicted).all()
    assert list(first.scores) == sorted(first.scores, reverse=True)
    assert first.images.shape == (len(first.true), 48, 48)
    assert evaluation.misclassified(MODEL, fer2013_slice, count=10) is first  # remembered

    assert evaluation.dataset_path_for({"data": {"source": "nothing.csv"}}) is None
    with pytest.raises(DatasetError, match="not on this computer"):
        evaluation.misclassified(MODEL.with_name("nowhere.keras"))
