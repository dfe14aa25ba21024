"""TFLite twins (python -m emotion export): checked against Keras on real FER2013 faces,
used by EmotionClassifier only while current, Keras otherwise."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT


def run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def exported(test_model, fer2013, tmp_path_factory):
    """A copy of the shipped model (card without twins) with both twins, exported through the
    library and checked on 64 real PublicTest faces."""
    from emotion.export import export

    folder = tmp_path_factory.mktemp("export")
    model = folder / "vgg.keras"
    shutil.copy(test_model, model)
    card = json.loads(test_model.with_suffix(".json").read_text())
    card.pop("tflite", None), card.pop("tflite-int8", None)
    model.with_suffix(".json").write_text(json.dumps(card))
    check = fer2013.split("PublicTest").head(64)
    entries = {kind: export(model, kind, check.images, check.labels) for kind in ("tflite", "tflite-int8")}
    return model, entries


@pytest.fixture(scope="module")
def private_faces(fer2013):
    return fer2013.split("PrivateTest").head(64).images


def test_float_twin_gives_the_keras_probabilities(exported, private_faces):
    from emotion.classifier import EmotionClassifier

    model, entries = exported
    assert (model.parent / "vgg.tflite").is_file() and entries["tflite"]["check"]["faces"] == 64
    assert entries["tflite"]["check"]["max_abs_diff"] < 1e-3
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["tflite"]["keras_sha256"] == entries["tflite"]["keras_sha256"]
    twin, keras = EmotionClassifier.load(model), EmotionClassifier.load(model, runtime="keras")
    assert (twin.runtime, keras.runtime) == ("tflite", "keras")
    for mirror in (True, False):  # the classifier mirrors around the twin as around Keras
        ours = twin.predict_proba(private_faces, flip_average=mirror)
        theirs = keras.predict_proba(private_faces, flip_average=mirror)
        assert ours.dtype == np.float32 and ours.shape == (64, 7)
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
    # one face, then a batch, then one again: the interpreter is resized each time
    for faces in (private_faces[:1], private_faces[:16], private_faces[3]):
        np.testing.assert_allclose(twin.predict_proba(faces), keras.predict_proba(faces), atol=1e-4)


def test_int8_twin_only_when_asked_and_close(exported, private_faces):
    from emotion.classifier import EmotionClassifier

    model, entries = exported
    fast = EmotionClassifier.load(model, runtime="fast")
    assert fast.runtime == "tflite-int8"
    keras = EmotionClassifier.load(model, runtime="keras")
    ours, theirs = fast.predict_proba(private_faces), keras.predict_proba(private_faces)
    assert np.abs(ours - theirs).max() < 0.15
    assert (ours.argmax(1) == theirs.argmax(1)).mean() >= 0.9
    np.testing.assert_allclose(ours.sum(1), 1, atol=1e-4)
    assert entries["tflite-int8"]["bytes"] < entries["tflite"]["bytes"] / 3


def copy_with_twins(exported, folder):
    model, _ = exported
    for path in model.parent.glob("vgg.*"):
        shutil.copy(path, folder / path.name)
    return folder / model.name


def test_stale_twin_is_ignored(exported, tmp_path, private_faces):
    from emotion.classifier import EmotionClassifier

    model = copy_with_twins(exported, tmp_path)
    keras = EmotionClassifier.load(model, runtime="keras")
    keras.model.save(model)  # the .keras file changes after the export: both twins are stale
    for runtime in ("auto", "fast"):
        classifier = EmotionClassifier.load(model, runtime=runtime)
        assert classifier.runtime == "keras" and "stale" in classifier.runtime_note
        np.testing.assert_allclose(classifier.predict_proba(private_faces[:8]),
                                   keras.predict_proba(private_faces[:8]), atol=1e-6)


def test_missing_or_corrupt_twin_falls_back_to_keras(exported, tmp_path, private_faces):
    from emotion.classifier import EmotionClassifier
    from emotion.export import twin_path

    model = copy_with_twins(exported, tmp_path)
    twin = twin_path(model)
    twin.unlink()
    missing = EmotionClassifier.load(model)
    assert missing.runtime == "keras" and "missing" in missing.runtime_note
    # a "fast" load without its int8 twin takes the float one
    twin_path(model, "tflite-int8").unlink()
    shutil.copy(exported[0].parent / twin.name, twin)
    assert EmotionClassifier.load(model, runtime="fast").runtime == "tflite"

    twin.write_bytes(twin.read_bytes()[:5000])  # cut short
    cut = EmotionClassifier.load(model)
    assert cut.runtime == "keras" and "changed after the export" in cut.runtime_note
    # even when the card is made to vouch for the damaged file, TFLite's refusal falls back
    import hashlib

    card = json.loads(model.with_suffix(".json").read_text())
    card["tflite"]["sha256"] = hashlib.sha256(twin.read_bytes()).hexdigest()
    model.with_suffix(".json").write_text(json.dumps(card))
    vouched = EmotionClassifier.load(model)
    assert vouched.runtime == "keras" and "cannot run" in vouched.runtime_note
    keras = EmotionClassifier.load(model, runtime="keras")
    np.testing.assert_allclose(vouched.predict_proba(private_faces[:8]), keras.predict_proba(private_faces[:8]))


def test_export_cli_bad_input_is_one_line(tmp_path):
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    for args, message in ((["export", tmp_path / "nothing.keras"], "model file not found"),
                          (["export", text], "is not a Keras model file"),
                          (["export", text, "--format", "onnx"], "ONNX export is not supported")):
        done = run(*args)
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "notes.tflite").exists()


def test_photo_pages_run_the_exact_twin_and_the_card_says_what_each_page_uses():
    from conftest import app_page

    image = app_page("pages/image.py")
    assert any("Model for photos: facemood-vgg, run by its TFLite twin (the same probabilities"
               in c.value for c in image.caption)
    home = app_page("pages/home.py")
    assert any("Runs on photos: its float TFLite twin" in c.value and "live video: its int8 TFLite twin" in c.value
               for c in home.caption)
