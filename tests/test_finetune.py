"""Fine-tuning on a personal dataset: ``python -m emotion finetune`` on small datasets made of real
FER2013 faces written as PNGs (DST/train/<label>/, DST/test/<label>/, as ``python -m emotion
dataset`` writes), with the seven emotions' labels and with labels of their own; the shipped
model stays byte-identical; bad datasets and names get one line. The app's way: a fine-tune
job of emotion.jobs (in the background, one job per server, with a Stop), and the Training
page's section that starts, shows, stops it and shows how it ended."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SHIPPED_MODEL
from emotion import EmotionClassifier, EmotionRecognizer, LABELS
from emotion import jobs
from emotion.annotate import draw_results
from emotion.data import DatasetError
from emotion.finetune import load_personal, personal_labels

TRAIN_PER_LABEL, TEST_PER_LABEL = 16, 6


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_dataset(root: Path, fer2013, labels: dict[str, tuple[int, ...]]) -> Path:
    """root/train/<label>/*.png and root/test/<label>/*.png from FER2013's Training and
    PrivateTest faces of the given emotion indices."""
    for split, usage, count in (("train", "Training", TRAIN_PER_LABEL), ("test", "PrivateTest", TEST_PER_LABEL)):
        part = fer2013.split(usage)
        for label, emotions in labels.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            picked = np.flatnonzero(np.isin(part.labels, emotions))[:count]
            for i, index in enumerate(picked):
                Image.fromarray(part.images[index]).save(folder / f"{i:04d}.png")
    return root


def run(*args, models_dir: Path | None = None):
    """The CLI; with ``models_dir`` as its models folder (no model chosen in the app there, so the
    active model is the shipped one, whatever this checkout's models/active.json says)."""
    env = {k: v for k, v in os.environ.items() if k != "FACEMOOD_MODEL"}
    if models_dir:
        env["FACEMOOD_MODELS_DIR"] = str(models_dir)
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def shipped_md5(test_model) -> str:
    return md5(test_model)


@pytest.fixture(scope="module")
def emotion_dataset(fer2013, tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("personal") / "me", fer2013,
                         {"happy": (3,), "sad": (4,), "neutral": (6,)})


@pytest.fixture(scope="module")
def custom_dataset(fer2013, tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("personal") / "mouths", fer2013,
                         {"smile": (3,), "frown": (0, 4)})


def test_seven_emotion_labels_keep_the_models_outputs(emotion_dataset, tmp_path, shipped_md5, app_model):
    out = tmp_path / "models" / "me.keras"
    result = run("finetune", "--data", emotion_dataset, "--out", out, "--epochs", 1, "--freeze", 8,
                 models_dir=tmp_path / "models")
    assert result.returncode == 0, result.stderr
    assert "before" in result.stdout and "after" in result.stdout
    card = json.loads(out.with_suffix(".json").read_text())
    assert out.is_file() and card["labels"] == list(LABELS) and card["name"] == "me"
    tuned = card["finetune"]
    assert tuned["new_output_layer"] is False and tuned["frozen_layers"] == 8
    assert tuned["base_model"] == "facemood-vgg.keras"
    assert card["training"]["epochs_run"] == 1 and card["data"]["test_faces"] == 3 * TEST_PER_LABEL
    # "Before" is the shipped model's accuracy on the personal test faces: the same figure
    # computed here from the PNGs.
    data, labels, _ = load_personal(emotion_dataset)
    test = data.split("PrivateTest")
    shipped = EmotionClassifier.load(app_model)
    before = float((shipped.predict_proba(test.images).argmax(axis=1) == test.labels).mean())
    assert tuned["accuracy_before"] == pytest.approx(before)
    assert f"before {before:.1%}" in result.stdout
    assert card["metrics"]["PrivateTest"]["n"] == len(test)
    # The saved model is the fine-tuned one (its "after" figure), and it differs from the shipped.
    mine = EmotionClassifier.load(out)
    after = float((mine.predict_proba(test.images).argmax(axis=1) == test.labels).mean())
    assert tuned["accuracy_after"] == pytest.approx(after) and f"after {after:.1%}" in result.stdout
    assert not np.allclose(mine.model.get_weights()[-1], shipped.model.get_weights()[-1])
    assert md5(SHIPPED_MODEL) == shipped_md5


def test_labels_of_its_own_get_a_new_output_layer(custom_dataset, tmp_path, shipped_md5, faces_dir, app_model):
    assert personal_labels(custom_dataset) == (("frown", "smile"), True)
    out = tmp_path / "mouths.keras"
    result = run("finetune", "--data", custom_dataset, "--out", out, "--epochs", 1, "--model", app_model)
    assert result.returncode == 0, result.stderr
    assert "before: not defined" in result.stdout
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["labels"] == ["frown", "smile"]
    assert card["finetune"]["new_output_layer"] is True and card["finetune"]["accuracy_before"] is None
    assert card["training"]["config"]["learning_rate"] == pytest.approx(1e-3)
    assert set(card["metrics"]["PrivateTest"]["recall"]) == {"frown", "smile"}
    # Through the library, the new model reads its own labels on real photos.
    recognizer = EmotionRecognizer(EmotionClassifier.load(out))
    assert recognizer.classifier.labels == ("frown", "smile")
    faces = recognizer.analyze(faces_dir / "deepface_couple.jpg")
    assert len(faces) == 2
    for face in faces:
        assert face.label in ("frown", "smile") and set(face.probs) == {"frown", "smile"}
        assert sum(face.probs.values()) == pytest.approx(1.0, abs=1e-4)
    picture = recognizer.annotate(faces_dir / "deepface_couple.jpg", faces, emoji=True)
    assert picture.shape[2] == 3 and draw_results(picture, faces) is not None
    assert md5(SHIPPED_MODEL) == shipped_md5


def test_the_shipped_model_is_never_written_over(emotion_dataset, shipped_md5, tmp_path):
    shipped = sorted(ROOT.glob("models/facemood-*.keras"))  # the shipped model, and any other shipped
    assert SHIPPED_MODEL in shipped
    for out in (*shipped, "models/facemood-vgg.keras", "models/../models/facemood-vgg.keras"):
        result = run("finetune", "--data", emotion_dataset, "--out", out, "--epochs", 1)
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert "is a shipped model" in result.stderr
    bad_name = run("finetune", "--data", emotion_dataset, "--out", tmp_path / "-x.keras")
    assert bad_name.returncode == 1 and "cannot be a model name" in bad_name.stderr
    wrong_suffix = run("finetune", "--data", emotion_dataset, "--out", tmp_path / "mine.h5")
    assert wrong_suffix.returncode == 1 and ".keras" in wrong_suffix.stderr
    too_frozen = run("finetune", "--data", emotion_dataset, "--out", tmp_path / "x.keras", "--freeze", 99)
    assert too_frozen.returncode == 1 and too_frozen.stderr.count("\n") == 1
    assert "would freeze every layer" in too_frozen.stderr and not (tmp_path / "x.keras").exists()
    assert md5(SHIPPED_MODEL) == shipped_md5


def test_bad_datasets_get_one_line(tmp_path, emotion_dataset):
    flat = tmp_path / "flat" / "happy"
    flat.mkdir(parents=True)
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(flat / "a.png")
    empty = tmp_path / "empty"
    for split in ("train", "test"):
        (empty / split / "happy").mkdir(parents=True)
    one = tmp_path / "one"
    for split in ("train", "test"):
        (one / split / "happy").mkdir(parents=True)
        Image.fromarray(np.zeros((48, 48), np.uint8)).save(one / split / "happy" / "a.png")
    cases = {tmp_path / "missing": "dataset not found", tmp_path / "flat": "has no train/ or test/ folder",
             empty: "holds no images", one: "needs at least two", flat / "a.png": "is not a folder"}
    for path, message in cases.items():
        with pytest.raises(DatasetError, match=message):
            personal_labels(path)
    for path in (tmp_path / "missing", tmp_path / "flat", empty):  # and the same through the CLI
        result = run("finetune", "--data", path, "--out", tmp_path / "x.keras")
        assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
        assert cases[path] in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.keras").exists()


# --- in the background, as the app runs it ------------------------------------------------


@pytest.fixture
def no_job_left_running():
    yield
    job = jobs.current_job()
    if job is not None and job.running:
        job.stop()
        job.join(600)


def test_a_finetune_job_runs_to_its_result_and_is_alone_on_the_server(custom_dataset, tmp_path, app_model,
                                                                      no_job_left_running):
    out = tmp_path / "mouths.keras"
    job = jobs.start_finetune(custom_dataset, out, epochs=2, base=app_model, owner="me")
    assert job.kind == "finetune" and job.name == "mouths" and jobs.current_job() is job and job.running
    # One job per server, whatever its kind: a second fine-tune waits for this one.
    with pytest.raises(jobs.JobBusy, match="a fine-tune is already running on this server"):
        jobs.start_finetune(custom_dataset, tmp_path / "second.keras", epochs=1, base=app_model)
    snapshot = job.join(600)
    assert snapshot.status == "done", snapshot.message
    card = json.loads(out.with_suffix(".json").read_text())
    assert snapshot.card == card and snapshot.model_path == str(out)
    assert card["training"]["epochs_run"] == 2 and not card["training"]["stopped_by_user"]
    assert [row["epoch"] for row in snapshot.history] == [1, 2] and snapshot.epochs == 2
    assert snapshot.message == (f"finished 2 epoch(s); the best epoch ({card['training']['best_epoch']}) "
                                f"was saved as mouths.keras")
    assert card["labels"] == ["frown", "smile"] and card["finetune"]["accuracy_after"] is not None
    assert sorted(Path(f).name for f in snapshot.figures) == ["mouths-confusion.png", "mouths-curves.png"]
    assert not (tmp_path / "second.keras").exists()


def test_a_finetune_stopped_before_its_first_epoch_saves_nothing(emotion_dataset, page_env, app_model,
                                                                 no_job_left_running):
    """Stopped at once: nothing is written, and the Training page says so in one line."""
    job = jobs.start_finetune(emotion_dataset, page_env / "me.keras", epochs=3, base=app_model, name="me")
    job.stop()
    assert job.snapshot().status == "stopping"
    snapshot = job.join(600)
    assert snapshot.status == "stopped"
    assert snapshot.message == "stopped before the first epoch ended; nothing was saved"
    assert list(page_env.iterdir()) == []
    at = training_page()
    assert [w.value for w in at.warning] == ["Fine-tuning me: stopped before the first epoch ended; "
                                             "nothing was saved."]
    assert "Test accuracy after" not in [m.label for m in at.metric]  # (the Inspect tab has metrics of its own)
    assert not at.get("progress") and not at.button(key="ft_start").disabled


def test_a_finetune_job_refuses_bad_input_in_one_line_before_it_starts(tmp_path, emotion_dataset, app_model):
    before = jobs.current_job()
    with pytest.raises(DatasetError, match="dataset not found"):
        jobs.start_finetune(tmp_path / "missing", tmp_path / "x.keras", epochs=1)
    with pytest.raises(ValueError, match="is a shipped model"):
        jobs.start_finetune(emotion_dataset, SHIPPED_MODEL, epochs=1)
    assert jobs.current_job() is before


# --- the Training page's section ---------------------------------------------------------


@pytest.fixture
def page_env(tmp_path, monkeypatch, app_model, custom_dataset) -> Path:
    """A models folder of the test's own (empty), and the personal datasets' folder allowed."""
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("FACEMOOD_MODELS_DIR", str(models))
    monkeypatch.setenv("FACEMOOD_DATA_DIRS", str(custom_dataset.parent))
    for name in ("FACEMOOD_TRAINING", "FACEMOOD_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return models


def training_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600).run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, at.exception
    return at


def start_finetune(at, dataset: Path, name: str, epochs: int):
    at.selectbox(key="ft_dataset").set_value(str(dataset.resolve()))
    at.number_input(key="ft_epochs").set_value(epochs)
    at.text_input(key="ft_name").set_value(name)
    at.button(key="ft_start").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_the_training_page_fine_tunes_a_dataset_from_the_allowed_folders(custom_dataset, page_env, shipped_md5,
                                                                         no_job_left_running):
    """Pick the dataset found in an allowed folder, one epoch, Start: the page shows it running,
    then the test accuracy after ("before" not defined for labels of its own), the new model is
    in the model list, and the card lists its labels."""
    from test_training_page import run_until

    models = page_env
    at = training_page()
    assert at.selectbox(key="ft_dataset").options == [str(custom_dataset.resolve()), "Another folder…"]
    # A folder outside the allowed ones is refused in one line, before anything runs.
    at.selectbox(key="ft_dataset").set_value("Another folder…").run()
    at.text_input(key="ft_path").set_value(str(ROOT / "models")).run()
    at.button(key="ft_start").click().run()
    assert [e.value for e in at.error] and "Only data inside the allowed folders" in at.error[0].value

    start_finetune(at, custom_dataset, "mouths", epochs=1)
    job = jobs.current_job()
    assert job.kind == "finetune" and job.name == "mouths"
    assert at.button(key="ft_start").disabled and at.button(key="start").disabled  # one job per server
    seen = run_until(at, lambda: not job.running)
    assert any(text.startswith("epoch 1/1 · batch") for text, _ in seen), seen
    shown = {m.label: m.value for m in at.metric}
    assert shown["Test accuracy before"] == "not defined"
    card = json.loads((models / "mouths.json").read_text())
    assert shown["Test accuracy after"] == f"{card['metrics']['PrivateTest']['accuracy']:.1%}"
    assert [s.value for s in at.success] == [f"Fine-tuning mouths: {job.snapshot().message}. It is listed under "
                                             "**Inspect models**, where it can be put to use."]
    assert card["labels"] == ["frown", "smile"] and (models / "mouths-confusion.png").is_file()
    assert "mouths.keras" in at.selectbox(key="inspect_model").options  # the model list shows file names
    assert not at.button(key="ft_start").disabled
    assert md5(SHIPPED_MODEL) == shipped_md5


def test_a_finetune_survives_leaving_the_page_and_stops_keeping_its_best_epoch(custom_dataset, page_env,
                                                                              no_job_left_running):
    """A long fine-tune: its progress and Stop are there again after visiting another page, and
    for another visitor; Stop after an epoch saves the best finished one and says so."""
    from test_training_page import run_until

    models = page_env
    at = start_finetune(training_page(), custom_dataset, "long", epochs=50)
    job = jobs.current_job()
    assert [h.value for h in at.subheader].count("Fine-tuning long") == 1
    assert not at.button(key="ft_stop").disabled

    at.switch_page("pages/home.py").run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, at.exception
    assert "Fine-tuning long" in [h.value for h in at.subheader] and at.get("progress")
    other = training_page()
    assert any("fine-tune was started by another session" in i.value for i in other.info)
    assert other.button(key="ft_start").disabled and not other.button(key="ft_stop").disabled

    # Stop as soon as an epoch has ended (a partial epoch is never kept); the page's last run
    # still has the button, and its click stops the job before the page is drawn again.
    deadline = time.monotonic() + 600
    while not job.snapshot().history and job.running:
        assert time.monotonic() < deadline, job.snapshot()
        time.sleep(0.1)
    assert job.running, job.snapshot().message
    at.button(key="ft_stop").click().run()
    assert not at.exception, at.exception
    run_until(at, lambda: not job.running)
    snapshot = job.snapshot()
    assert snapshot.status == "stopped", snapshot.message
    training = json.loads((models / "long.json").read_text())["training"]
    assert training["stopped_by_user"] and 1 <= training["epochs_run"] < 50
    assert [row["epoch"] for row in training["history"]] == list(range(1, training["epochs_run"] + 1))
    assert [w.value for w in at.warning] == [
        f"Fine-tuning long: stopped during epoch {training['epochs_run'] + 1}; the best finished epoch "
        f"({training['best_epoch']}) was saved as long.keras. It is listed under **Inspect models**, where "
        "it can be put to use."]
    assert {m.label for m in at.metric} >= {"Test accuracy before", "Test accuracy after", "Labels"}
    assert not at.get("progress") and "long.keras" in at.selectbox(key="inspect_model").options
