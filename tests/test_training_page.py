"""The Training page, driven through AppTest: inspect models, train one from Start to its
saved model and inspection view, Stop a run, and refuse bad datasets before training.

Training runs in a child process (emotion.jobs); the tests rerun the page until it
ends, as a browser would. Models go to a temporary models folder (FACEMOOD_MODELS_DIR),
never to the repository's models/.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT

APP = ROOT / "app.py"
SHIPPED_MODEL = ROOT / "models" / "facemood-vgg.keras"
TIMEOUT = 300
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from emotion import jobs  # noqa: E402


@pytest.fixture(autouse=True)
def app_model(app_model) -> Path:
    """Every test here runs the app with the shipped model (conftest's app_model)."""
    return app_model


@pytest.fixture(autouse=True)
def models(tmp_path, tmp_path_factory, monkeypatch) -> Path:
    """An empty models folder (and runs folder) of the test's own; the tests' data folders
    are the ones the page may read training data from."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("FACEMOOD_MODELS_DIR", str(folder))
    monkeypatch.setenv("FACEMOOD_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FACEMOOD_DATA_DIRS", str(tmp_path_factory.getbasetemp()))
    for name in ("FACEMOOD_TRAINING", "FACEMOOD_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture(autouse=True)
def no_job_left_running():
    yield
    job = jobs.current_job()
    if job is not None and job.running:
        job.stop()
        job.join(TIMEOUT)


def copy_model(source: Path, folder: Path, name: str) -> Path:
    target = folder / f"{name}.keras"
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    return target


def training_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Training"
    return at


def captions(at: AppTest) -> list[str]:
    return [caption for image in at.image for caption in image.captions]


def start(at: AppTest, data: Path, name: str, epochs: int = 1) -> AppTest:
    at.text_input(key="data_path").set_value(str(data))
    at.number_input(key="epochs").set_value(epochs)
    at.text_input(key="model_name").set_value(name)
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    return at


def run_until(at: AppTest, done, timeout: float = 600) -> list[tuple[str, int]]:
    """Rerun the page every half second until ``done()``; what it showed meanwhile:
    (progress text, number of live charts) per rerun with a progress bar."""
    seen = []
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out; last progress: {seen[-1:]}"
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
        seen += [(bar.proto.text, len(at.get("vega_lite_chart"))) for bar in at.get("progress")]
    at.run()
    return seen


def finished() -> bool:
    return not jobs.current_job().running


def model_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# --- Inspect --------------------------------------------------------------------------


def test_inspect_shows_the_model_in_use_and_compares_two(app_model, models):
    import json

    at = training_page()
    card = json.loads(app_model.with_suffix(".json").read_text())
    assert not at.error
    assert at.selectbox(key="inspect_model").value == str(app_model)
    assert any(card["name"] == h.value for h in at.subheader)
    shown = captions(at)
    assert any(c.startswith("Accuracy and loss per epoch") for c in shown)
    assert any(c.startswith("Confusion matrix on PrivateTest: counts and row-normalised") for c in shown)
    assert any(c.startswith("Misclassified PrivateTest faces") for c in shown)
    table = at.dataframe[0].value
    assert list(table.index) == list(LABELS) and list(table.columns) == ["precision", "recall", "F1", "faces"]
    assert table["recall"].tolist() == pytest.approx([100 * card["metrics"]["PrivateTest"]["recall"][k] for k in LABELS])
    assert table["faces"].sum() == card["metrics"]["PrivateTest"]["n"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["PrivateTest accuracy"] == f"{card['metrics']['PrivateTest']['accuracy']:.1%}"
    start = card["training"].get("started_from", {}).get("training", {})
    if "soup" in start:  # the shipped model: a run warm-started from a soup
        kept = sum(i["kept"] for i in start["soup"]["ingredients"])
        epochs = next(m for m in at.metric if m.label == "Epochs (best)")
        assert epochs.proto.help == f"The first run began from a soup of {kept} models."

    other = copy_model(app_model, models, "other")
    at.run()
    at.selectbox(key="compare_model").set_value(str(other)).run()
    assert not at.exception and not at.error
    assert sum(c.startswith("Confusion matrix") for c in captions(at)) == 2
    assert len(at.dataframe) == 2


@pytest.mark.parametrize("fixture, kind, mean_of", [("soup_model", "soup", "weights"),
                                                    ("ensemble_model", "ensemble", "predictions")])
def test_a_soup_or_ensemble_shows_what_it_averages_instead_of_epochs(models, request, fixture, kind, mean_of):
    model = copy_model(request.getfixturevalue(fixture), models, kind)
    at = training_page()
    at.selectbox(key="inspect_model").set_value(str(model)).run()
    assert not at.exception and not at.error
    metric = next(m for m in at.metric if m.label == f"{kind.capitalize()} of")
    assert metric.value == "2 models"
    assert sorted(metric.proto.help.removeprefix(f"The mean of their {mean_of}: ").split("; ")) == [
        "a.keras, 1 + 1 epochs", "b.keras, 1 + 1 epochs"]
    assert not any(m.label == "Epochs (best)" for m in at.metric)
    assert any(c.startswith(f"Accuracy and loss per epoch of each model the {kind} averages") for c in captions(at))
    assert any(c.startswith("Confusion matrix on PrivateTest") for c in captions(at))


def test_with_a_shipped_photo_model_each_model_says_which_pages_use_it(app_model, models, ensemble_model,
                                                                     monkeypatch):
    import emotion.classifier

    monkeypatch.delenv("FACEMOOD_MODEL", raising=False)
    photos = copy_model(ensemble_model, models, "photos")
    monkeypatch.setattr(emotion.classifier, "PHOTO_MODEL", photos)
    at = training_page()
    for path, pages in ((photos, "the Image and Video pages"), (app_model, "the Webcam page's live video")):
        at.selectbox(key="inspect_model").set_value(str(path)).run()
        assert not at.exception and not at.error
        assert at.button(key="use-a").label == f"In use by {pages}" and at.button(key="use-a").disabled
        assert any(f"**in use** by {pages}" in c.value for c in at.caption)


def test_a_warm_started_models_epochs_read_run_by_run():
    from emotion.classifier import epochs_run

    assert epochs_run({"epochs_run": 88, "best_epoch": 87}) == [88]
    warm = {"epochs_run": 20, "started_from": {"model": "a.keras", "training": {
        "epochs_run": 30, "started_from": {"training": {"epochs_run": 88}}}}}
    assert epochs_run(warm) == [88, 30, 20]
    assert epochs_run({}) == []


def test_a_soup_of_runs_that_started_from_a_soup_says_so():
    """Round two of the shipped model: runs warm-started from a soup, then souped again."""
    from emotion.classifier import epochs_run, soup_ingredients, warm_start_source

    first = {"soup": {"ingredients": [{"model": m, "kept": k, "training": {"epochs_run": 20}}
                                      for m, k in (("a.keras", True), ("b.keras", True), ("c.keras", False))]}}
    run = {"epochs_run": 10, "started_from": {"model": "soup1.keras", "training": first}}
    assert epochs_run(run) == [10] and warm_start_source(run) == "a soup of 2 models"
    assert warm_start_source({"epochs_run": 10, "started_from": {"training": {"epochs_run": 88}}}) == ""
    second = {"soup": {"ingredients": [{"model": "r.keras", "kept": True, "training": run},
                                       {"model": "s.keras", "kept": False, "training": run}]}}
    assert soup_ingredients(second) == [("r.keras", "10 epochs after a soup of 2 models")]
    assert soup_ingredients(first) == [("a.keras", "20 epochs"), ("b.keras", "20 epochs")]
    assert soup_ingredients({"epochs_run": 3}) == []
    # An ensemble of soups (and of a model with no record) says what each member is.
    both = {"soup": {"ingredients": [{"model": "soup2.keras", "kept": True, "training": second},
                                     {"model": "bare.keras", "kept": True, "training": {}}],
                     "average": "predictions"}}
    assert soup_ingredients(both) == [("soup2.keras", "a soup of 1 model"), ("bare.keras", "training unknown")]
    assert soup_ingredients({"soup": {"ingredients": [{"model": "e.keras", "kept": True, "training": both}]}}) == [
        ("e.keras", "an ensemble of 2 models")]


def test_a_folder_without_models_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setenv("FACEMOOD_MODEL", str(tmp_path / "missing.keras"))
    at = training_page()
    assert any("No models in" in i.value and "Train" in i.value for i in at.info)
    assert not at.error


def test_the_architectures_offered_are_the_library_s_with_their_true_sizes():
    """The page names the architectures itself (the form needs no Keras); they must be the
    library's, and the parameter counts it gives must be right."""
    import ast
    import re

    from emotion.model import ARCHITECTURES, build_model

    tree = ast.parse((ROOT / "pages" / "training.py").read_text())
    names = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", "") == "ARCHITECTURE_NAMES")
    assert list(names) == list(ARCHITECTURES)
    for architecture, text in names.items():
        stated = float(re.search(r"([\d.]+) M parameters", text).group(1))
        assert stated == round(build_model(architecture, width=32).count_params() / 1e6, 2), text


def test_the_page_module_imports_nothing_that_loads_keras():
    """Keras takes seconds to import: the page loads it only for what needs it (the misclassified
    faces, drawn last; a training's start), never to show its first view."""
    import ast

    tree = ast.parse((ROOT / "pages" / "training.py").read_text())
    top = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    modules = {node.module for node in top if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in top if isinstance(node, ast.Import) for alias in node.names}
    assert "emotion" in modules and "pages" in modules, modules  # the walk sees the imports
    assert not modules & {"emotion.model", "emotion.train", "keras", "tensorflow"}, modules


# --- Train ----------------------------------------------------------------------------


def test_a_short_training_from_start_to_its_inspection_view(models, fer2013_slice, monkeypatch):
    at = start(training_page(), fer2013_slice, "quick")
    assert not at.error, [e.value for e in at.error]
    job = jobs.current_job()
    assert job is not None and job.name == "quick" and job.config.architecture == "small"
    assert at.button(key="start").disabled
    seen = run_until(at, finished)
    assert seen and all(charts == 2 for _, charts in seen), "a progress bar and the two live curves"
    assert any(text.startswith("epoch 1/1 · batch") for text, _ in seen), seen

    snapshot = job.snapshot()
    assert snapshot.status == "done", snapshot.message
    assert [s.value for s in at.success] == [f"Training quick: {snapshot.message}."]
    saved = models / "quick.keras"
    assert saved.is_file() and saved.with_suffix(".json").is_file()
    assert (models / "quick-curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (models / "quick-confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in models.iterdir() if p.name.startswith(".tmp-")]

    # The same inspection view as for any model, for the new one.
    assert "quick" in [h.value for h in at.subheader]
    shown = captions(at)
    assert sum(c.startswith("Accuracy and loss per epoch") for c in shown) == 2  # Inspect tab + new model
    assert sum(c.startswith("Confusion matrix on PrivateTest") for c in shown) == 2
    assert sum(c.startswith("Misclassified PrivateTest faces") for c in shown) == 2
    assert snapshot.card["data"]["train_faces"] == 256 and snapshot.card["training"]["epochs_run"] == 1

    # One click makes it the model of the Image and Webcam pages.
    monkeypatch.delenv("FACEMOOD_MODEL", raising=False)
    import emotion

    at.button(key="use-new").click().run()
    assert not at.exception, at.exception
    assert emotion.default_model_path().resolve() == saved.resolve()
    assert any("quick.keras is now the model" in s.value for s in at.success)
    assert at.button(key="use-new").disabled
    at.switch_page("pages/home.py").run()
    assert any("quick" in h.value for h in at.header)


def test_stop_keeps_the_best_epoch_and_leaves_the_other_models_alone(app_model, models, fer2013_slice):
    from emotion.classifier import set_active_model

    set_active_model(copy_model(app_model, models, "previous"))
    copy_model(app_model, models, "another")
    before = model_files(models)

    at = start(training_page(), fer2013_slice, "long", epochs=100)
    job = jobs.current_job()
    # Stop only once an epoch has finished: a partial epoch is never kept (see below).
    run_until(at, lambda: len(job.snapshot().history) >= 1 or not job.running)

    # One training per server: a second visitor sees it running and cannot start another.
    other = training_page()
    assert other.button(key="start").disabled
    assert any("started by another session" in i.value for i in other.info)
    with pytest.raises(jobs.JobBusy, match="already running"):
        jobs.start_job(job.data, job.config, models / "second.keras")

    at.button(key="stop").click().run()
    assert not at.exception, at.exception
    run_until(at, finished)
    snapshot = job.snapshot()
    assert snapshot.status == "stopped", snapshot.message
    training = snapshot.card["training"]
    assert training["stopped_by_user"] and 1 <= training["epochs_run"] < 100
    # Only finished epochs are in the history and can be the best one.
    assert [row["epoch"] for row in training["history"]] == list(range(1, training["epochs_run"] + 1))
    assert training["best_epoch"] <= training["epochs_run"]
    assert any(f"Training long: stopped during epoch {training['epochs_run'] + 1}" in w.value for w in at.warning)

    after = model_files(models)
    assert {name: after[name] for name in before} == before  # byte for byte, active.json too
    assert set(after) - set(before) == {"long.keras", "long.json", "long-curves.png", "long-confusion.png"}


# --- bad datasets ------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def face(label, usage="Training", pixels=None) -> str:
    return f"{label},{pixels or ' '.join(['7'] * 2304)},{usage}"


BAD_DATASETS = {
    "wrong-columns": (lambda tmp: write(tmp / "wrong.csv", "label,image\n1,2\n"),
                      "lacks the column(s) emotion, pixels"),
    "unknown-label": (lambda tmp: write(tmp / "label.csv", "emotion,pixels,Usage\n" + face(3) + "\n"
                                        + face("bored") + "\n"),
                      "unknown emotion label 'bored' on data row 2"),
    "empty-folder": (lambda tmp: (tmp / "photos").mkdir() or tmp / "photos", "holds no images"),
    "broken-pixels": (lambda tmp: write(tmp / "pixels.csv", "emotion,pixels,Usage\n" + face(3) + "\n"
                                        + face(4, pixels="12 34 oops") + "\n"),
                      "data row 2 has 3 pixel values, expected 2304"),
    "unknown-folder": (lambda tmp: (tmp / "sorted" / "bored").mkdir(parents=True) or tmp / "sorted",
                       "unknown emotion 'bored'"),
    "missing": (lambda tmp: tmp / "nowhere.csv", "dataset not found"),
}


@pytest.mark.parametrize("case", list(BAD_DATASETS))
def test_a_bad_dataset_is_refused_before_training(case, tmp_path, models):
    make, says = BAD_DATASETS[case]
    before = jobs.current_job()
    at = start(training_page(), make(tmp_path), "never")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("The dataset cannot be used:") and says in errors[0], errors
    assert "\n" not in errors[0]
    assert jobs.current_job() is before, "no training was started"
    assert not (models / "never.keras").exists() and not at.get("progress")


def test_an_uploaded_csv_is_checked_the_same_way(models, tmp_path):
    at = training_page()
    at.radio(key="data_source").set_value("upload").run()
    at.text_input(key="model_name").set_value("never")
    at.button(key="start").click().run()
    assert [e.value for e in at.error] == ["Choose a CSV file to upload first."]

    broken = "emotion,pixels,Usage\n" + face(3, pixels="1 2 3 x") + "\n"
    at.file_uploader(key="data_upload").set_value(("mine.csv", broken.encode(), "text/csv")).run()
    at.button(key="start").click().run()
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "mine.csv: data row 1 has 4 pixel values" in errors[0], errors
    assert not (models / "never.keras").exists() and not at.get("progress")
    assert not (tmp_path / "runs").exists(), "an upload is read in memory, never saved"


def test_a_taken_or_bad_model_name_is_refused(app_model, models, fer2013_slice):
    copy_model(app_model, models, "taken")
    at = start(training_page(), fer2013_slice, "taken")
    assert any("already exists" in e.value for e in at.error)
    at.text_input(key="model_name").set_value("../escape").run()
    at.button(key="start").click().run()
    assert any("cannot be a model name" in e.value for e in at.error)
    assert not jobs.current_job() or jobs.current_job().name not in ("taken", "../escape")
