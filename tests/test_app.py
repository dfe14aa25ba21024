"""The Streamlit app, driven through streamlit.testing's AppTest with real photos and a real model.

The pages run as a user sees them: app.py with st.navigation, then switch_page to
the Image page, photos given to its file uploader. TensorFlow is slow to start
here, hence the long timeouts; the model is cached across tests (st.cache_resource).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app.py"
FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "faces"
TIMEOUT = 180
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

if str(ROOT) not in sys.path:  # `from pages import _common`, as the pages themselves do
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def app_model(app_model) -> Path:
    """Every test here runs the app with the test model (conftest's app_model)."""
    return app_model


def photo(name: str) -> Path:
    path = FACES / name
    if not path.is_file():
        pytest.fail(f"test photo missing: {path} (the shared data belongs at ../shared/data)", pytrace=False)
    return path


def upload(name: str) -> tuple[str, bytes, str]:
    return name, photo(name).read_bytes(), "image/jpeg"


def home() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    return at


def image_page() -> AppTest:
    at = home()
    at.switch_page("pages/image.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Emotions in photos"
    return at


def analysed(at: AppTest, files: list[tuple[str, bytes, str]]) -> AppTest:
    at.file_uploader(key="photos").set_value(files).run()
    assert not at.exception, at.exception
    return at


def downloads(at: AppTest, media: dict[str, bytes], label: str) -> list[bytes]:
    """The content of every download button with this label."""
    return [media[button.proto.url.rsplit("/", 1)[-1].split(".")[0]]
            for button in at.get("download_button") if button.label == label]


def charts(at: AppTest) -> list:
    return at.get("vega_lite_chart")


def chart_data(chart) -> pd.DataFrame:
    """The rows a chart on the page draws (its one dataset)."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    datasets = list(chart.proto.datasets)
    assert len(datasets) == 1, [d.name for d in datasets]
    return convert_arrow_bytes_to_pandas_df(datasets[0].data.data)


# --- Home ---------------------------------------------------------------------------


def test_home_shows_the_model_card(app_model):
    at = home()
    card = json.loads(app_model.with_suffix(".json").read_text())
    assert not at.error and not at.warning
    assert any(card["name"] in h.value for h in at.header)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Architecture"] == card["architecture"]
    assert metrics["Training faces"] == f"{card['data']['train_faces']:,}"
    assert metrics["File size"] == f"{card['file_size_bytes'] / 1e6:.1f} MB"
    for split in ("PublicTest", "PrivateTest"):
        assert metrics[f"{split} accuracy"] == f"{card['metrics'][split]['accuracy']:.1%}"
        assert metrics[f"{split} macro-F1"] == f"{card['metrics'][split]['macro_f1']:.1%}"
    table, = at.dataframe
    recall = table.value
    assert list(recall.index) == list(LABELS)
    assert recall["PrivateTest"].tolist() == pytest.approx(
        [100 * card["metrics"]["PrivateTest"]["recall"][k] for k in LABELS])
    assert json.loads(table.proto.columns)["PrivateTest"]["type_config"]["format"] == "%.1f%%"  # one decimal, all
    shown = " ".join(c.value for c in at.caption)
    if "soup" in card["training"]:  # the mean of several models' weights, each with its own runs
        assert "The mean of the weights of" in shown
    else:  # a run, perhaps warm-started from a model that was itself trained or made by a soup
        start = card["training"].get("started_from", {}).get("training", {})
        if "soup" in start:
            kept = sum(i["kept"] for i in start["soup"]["ingredients"])
            assert f"Trained for {card['training']['epochs_run']} epochs from a soup of {kept} models;" in shown
        else:
            assert f"Trained for {start.get('epochs_run', card['training']['epochs_run'])} epochs" in shown
    # The confusion matrix is a heat map with the counts written in (it fits a phone's width).
    confusion, = charts(at)
    cells = chart_data(confusion).pivot(index="true", columns="read", values="faces").loc[list(LABELS), list(LABELS)]
    assert cells.values.tolist() == card["metrics"]["PrivateTest"]["confusion_matrix"]
    spec = json.loads(confusion.proto.spec)
    assert [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
            for layer in spec["layer"]] == ["rect", "text"]
    assert any(card["data"]["source"] in m.value for m in at.markdown)


def test_home_says_a_model_is_an_ensemble(ensemble_model, monkeypatch):
    monkeypatch.setenv("FACEMOOD_MODEL", str(ensemble_model))
    at = home()
    assert not at.error and not at.warning
    shown = " ".join(c.value for c in at.caption)
    assert "The mean of the predictions of 2 trained models (an ensemble, chosen on PublicTest)" in shown


def test_a_shipped_photo_model_reads_photos_and_home_names_the_live_one(ensemble_model, app_model, monkeypatch):
    import emotion.classifier

    monkeypatch.setattr(emotion.classifier, "PHOTO_MODEL", ensemble_model)
    at = home()
    assert not at.error and not at.warning
    assert any("both" in h.value for h in at.header)  # the photo model's card
    shown = " ".join(c.value for c in at.caption)
    card = json.loads(app_model.with_suffix(".json").read_text())
    assert (f"Live video (the Webcam page) uses `{app_model.name}`, one network at a fraction of the CPU a face "
            f"(PrivateTest {card['metrics']['PrivateTest']['accuracy']:.1%}).") in shown
    at.switch_page("pages/image.py").run()
    at = analysed(at, [upload("fer_justin.jpg")])
    assert not at.exception and not at.error
    assert any(c.value.startswith("Model for photos: both,") for c in at.caption)


def test_home_counts_one_epoch_as_one(small_model, monkeypatch):
    monkeypatch.setenv("FACEMOOD_MODEL", str(small_model))
    at = home()
    assert not at.error
    shown = " ".join(c.value for c in at.caption)
    assert "Trained for 1 epoch; the best was epoch 1." in shown


def test_home_says_what_a_soup_is_made_of(soup_model, monkeypatch):
    monkeypatch.setenv("FACEMOOD_MODEL", str(soup_model))
    at = home()
    assert not at.error and not at.warning
    shown = " ".join(c.value for c in at.caption)
    # Each ingredient, best first: one epoch after the one of the model it started from.
    first, second = (i["model"] for i in json.loads(soup_model.with_suffix(".json").read_text())
                     ["training"]["soup"]["ingredients"])
    assert {first, second} == {"a.keras", "b.keras"}
    assert ("The mean of the weights of 2 trained models (a model soup, chosen on PublicTest): "
            f"{first} (1 + 1 epochs), {second} (1 + 1 epochs).") in shown
    assert not any(c.value.startswith("Trained for") for c in at.caption)


def test_home_shows_the_card_without_waiting_for_the_model(app_model, monkeypatch):
    """The card comes from its JSON file and is drawn first; the model (TensorFlow takes
    seconds to start) is loaded after it. So the card is there whatever loading finds."""
    import streamlit as st

    from pages import _common

    calls = []

    def load_classifier():
        calls.append(1)
        st.error("the model could not be loaded (stand-in)")
        return None

    monkeypatch.setattr(_common, "load_classifier", load_classifier)
    at = home()
    assert calls == [1]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Architecture"] == json.loads(app_model.with_suffix(".json").read_text())["architecture"]
    assert [e.value for e in at.error] == ["the model could not be loaded (stand-in)"]
    order = [node.type for node in at.main]
    assert max(i for i, kind in enumerate(order) if kind == "metric") < order.index("error"), order


# --- Image --------------------------------------------------------------------------


def test_uploaded_photos_show_faces_tables_charts_and_downloads(media):
    at = analysed(image_page(), [upload("deepface_couple.jpg"), upload("fer_justin.jpg")])
    assert not at.error and not at.info and not at.warning
    assert [s.value for s in at.subheader] == ["deepface_couple.jpg", "fer_justin.jpg"]
    assert len(at.image) == 2  # the two annotated photos
    tables = [t.value for t in at.dataframe]
    assert [len(t) for t in tables] == [2, 1]
    assert list(tables[0].columns) == ["face", "label", "score", "x", "y", "w", "h", *LABELS]
    assert tables[0]["face"].tolist() == [1, 2]
    assert set(tables[0]["label"]) <= set(LABELS)
    assert len(charts(at)) == 3  # one per face

    pngs = downloads(at, media, "Annotated PNG")
    assert len(pngs) == 2
    with Image.open(io.BytesIO(pngs[0])) as annotated, Image.open(photo("deepface_couple.jpg")) as original:
        assert annotated.format == "PNG" and annotated.size == original.size

    couple = json.loads(downloads(at, media, "Results JSON")[0])
    assert couple["file"] == "deepface_couple.jpg"
    assert len(couple["faces"]) == 2
    for face in couple["faces"]:
        assert set(face) == {"box", "label", "score", "probs"}
        assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
        assert list(face["probs"]) == list(LABELS)
        assert face["label"] == max(face["probs"], key=face["probs"].get)
        assert abs(sum(face["probs"].values()) - 1) < 0.01
    assert [f["box"] for f in couple["faces"]] == tables[0][["x", "y", "w", "h"]].values.tolist()

    rows = list(csv.DictReader(io.StringIO(downloads(at, media, "Results CSV")[1].decode())))
    assert len(rows) == 1 and rows[0]["label"] == tables[1]["label"][0]
    # The page shows the probabilities in whole percent (narrow columns); the downloads keep 0-1.
    assert tables[1]["score"][0] == round(float(rows[0]["score"]) * 100)
    assert [tables[0][label].tolist() for label in LABELS] == [
        [round(face["probs"][label] * 100) for face in couple["faces"]] for label in LABELS]


def test_the_prompt_goes_once_photos_are_given_and_no_progress_is_left():
    at = image_page()
    prompt = "Upload photos or choose a sample to see the emotions on every face."
    assert [i.value for i in at.info] == [prompt]
    analysed(at, [upload("fer_justin.jpg")])
    assert prompt not in [i.value for i in at.info]
    assert not at.get("progress")  # the progress bar of the analysis is gone once the results show
    assert [len(t.value) for t in at.dataframe] == [1]
    at.file_uploader(key="photos").set_value([]).run()
    assert [i.value for i in at.info] == [prompt]


def test_bad_files_give_one_line_errors_and_the_good_photo_still_shows(tmp_path):
    at = analysed(image_page(), [("notes.jpg", b"this is a text file, not a photo\n", "image/jpeg"),
                                 ("empty.png", b"", "image/png"),
                                 upload("fer_justin.jpg")])
    errors = [e.value for e in at.error]
    assert len(errors) == 2
    assert "notes.jpg" in errors[0] and "not an image" in errors[0]
    assert "empty.png" in errors[1] and "empty" in errors[1]
    assert all("\n" not in e and "Traceback" not in e for e in errors)
    assert [len(t.value) for t in at.dataframe] == [1]


def test_photo_without_faces_is_an_info_not_an_error():
    at = analysed(image_page(), [upload("NEG_fer_no-faces.jpg")])
    assert not at.error
    assert any("No face found in NEG_fer_no-faces.jpg" in i.value for i in at.info)
    assert len(at.image) == 1 and not at.dataframe and not at.get("download_button")


def test_sample_photos_from_the_images_folder(tmp_path, monkeypatch):
    from pages import _common

    monkeypatch.setattr(_common, "SAMPLES_DIR", tmp_path)
    at = image_page()
    assert not [s for s in at.selectbox if s.key == "sample"]
    assert any("No sample photos yet" in c.value for c in at.caption)

    shutil.copy(photo("fer_justin.jpg"), tmp_path / "justin.jpg")
    (tmp_path / "readme.txt").write_text("not listed")
    at.run()
    assert at.selectbox(key="sample").options == ["justin.jpg"]
    at.selectbox(key="sample").set_value("justin.jpg").run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == ["justin.jpg"]
    assert [len(t.value) for t in at.dataframe] == [1]


def test_the_readme_screenshot_is_not_offered_as_a_sample_and_its_images_exist():
    from pages import _common

    readme = (ROOT / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert images and all((ROOT / image).is_file() for image in images), images
    offered = {path.resolve() for path in _common.sample_photos()}
    assert offered, "the Image page offers no sample photo"
    assert not offered & {(ROOT / image).resolve() for image in images}, offered


def test_models_a_user_trains_are_ignored_by_git_and_the_shipped_ones_are_not():
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: nothing for .gitignore to do")
    names = ["models/mine-20260101-1200.keras", "models/mine-20260101-1200.json",
             "models/mine-20260101-1200-curves.png", "models/active.json",
             "models/facemood-vgg.keras", "models/facemood-vgg.json", "models/facemood-vgg-curves.png",
             "models/facemood-vgg-confusion.png"]
    # --no-index: the answer of the rules alone, whether or not such a file exists or is tracked.
    found = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=ROOT, capture_output=True,
                           text=True).stdout.split()
    assert found == names[:4], found


def test_a_bad_yunet_file_warns_and_falls_back_to_the_built_in_detector(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEMOOD_DATA_DIRS", str(tmp_path))  # files are read only from allowed folders
    at = image_page()
    at.radio(key="detector").set_value("YuNet (your .onnx file)").run()
    assert any("Enter the path" in i.value for i in at.sidebar.info)
    (tmp_path / "junk.onnx").write_bytes(b"\x00not an onnx model" * 10)
    at.text_input(key="yunet_path").set_value(str(tmp_path / "junk.onnx")).run()
    analysed(at, [upload("fer_justin.jpg")])
    assert any("junk.onnx" in w.value and "built-in" in w.value for w in at.warning)
    assert not at.error and [len(t.value) for t in at.dataframe] == [1]


# --- a model that cannot be used ----------------------------------------------------


def junk_model(tmp_path: Path) -> Path:
    path = tmp_path / "junk.keras"
    path.write_bytes(b"\x89 these bytes are not a Keras model \x00" * 100)
    return path


def zip_but_not_a_model(tmp_path: Path) -> Path:
    path = tmp_path / "broken.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{ not json")
    return path


@pytest.mark.parametrize("make_model, says", [
    (lambda tmp: tmp / "missing.keras", "not found"),
    (junk_model, "not a Keras model file"),
    (zip_but_not_a_model, "could not be loaded"),
], ids=["missing", "junk", "damaged-zip"])
def test_an_unusable_model_is_a_clear_error_on_every_page(tmp_path, monkeypatch, make_model, says):
    monkeypatch.setenv("FACEMOOD_MODEL", str(make_model(tmp_path)))
    at = home()
    assert len(at.error) == 1
    message = at.error[0].value
    assert says in message and "python -m emotion train" in message and "\n" not in message
    assert not at.metric

    at.switch_page("pages/image.py").run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and says in at.error[0].value
    analysed(at, [upload("fer_justin.jpg")])
    assert len(at.error) == 1 and not at.dataframe
