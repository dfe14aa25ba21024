"""Warm start (TrainConfig.init_from): a run that begins from a trained model's weights, as a
second, gentler schedule after a finished one does; one epoch on a slice of real FER2013."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT


def _trainable(path):
    import keras

    return [w.numpy() for w in keras.models.load_model(path, compile=False).trainable_weights]


def test_a_run_starts_from_the_given_models_weights(fer2013_slice, small_model, tmp_path):
    from emotion.data import load_dataset
    from emotion.model import Augmentation
    from emotion.train import TrainConfig, train

    data = load_dataset(fer2013_slice)
    # With a learning rate of 0 nothing moves: the saved weights are the start model's.
    still = TrainConfig(architecture="small", width=8, epochs=1, augmentation=Augmentation.none(),
                        optimizer="sgd", learning_rate=0.0, weight_decay=0.0, seed=5,
                        init_from=str(small_model))
    result = train(data, still, tmp_path / "still.keras", run_dir=tmp_path / "still")
    assert result.card["training"]["config"]["init_from"] == str(small_model)
    # The start model's own training stays on the card, should its file be replaced later.
    started = result.card["training"]["started_from"]
    start_card = json.loads(small_model.with_suffix(".json").read_text())
    assert started["model"] == "start.keras" and len(started["sha256"]) == 64
    assert started["training"]["epochs_run"] == 1 and "history" not in started["training"]
    assert started["training"]["config"] == start_card["training"]["config"]
    for mine, start in zip(_trainable(result.model_path), _trainable(small_model), strict=True):
        np.testing.assert_array_equal(mine, start)

    # The same run without a start model begins elsewhere.
    fresh = TrainConfig(**{**still.__dict__, "init_from": ""})
    other = train(data, fresh, tmp_path / "fresh.keras", run_dir=tmp_path / "fresh").model_path
    assert any(not np.array_equal(a, b) for a, b in zip(_trainable(other), _trainable(small_model)))


def test_a_run_from_a_soup_keeps_its_ingredients_but_not_their_epochs(fer2013_slice, soup_runs, tmp_path):
    """Round two starts from a soup: the card says what the soup was made of, but each
    ingredient's per-epoch history stays on the soup's own card, not copied into every run."""
    from emotion.classifier import soup_ingredients
    from emotion.data import load_dataset
    from emotion.model import Augmentation
    from emotion.soup import make_soup
    from emotion.train import TrainConfig, train

    data = load_dataset(fer2013_slice)
    soup = make_soup(soup_runs, data, tmp_path / "soup.keras", greedy=False).model_path
    config = TrainConfig(architecture="small", width=8, epochs=1, augmentation=Augmentation.none(),
                         init_from=str(soup))
    card = train(data, config, tmp_path / "again.keras", run_dir=tmp_path / "again").card
    assert card["training"]["history"]
    started = json.dumps(card["training"]["started_from"])
    assert '"history"' not in started and "a.keras" in started and "b.keras" in started
    ingredient = {"model": "again.keras", "kept": True, "training": card["training"]}
    assert soup_ingredients({"soup": {"ingredients": [ingredient]}}) == [
        ("again.keras", "1 epoch after a soup of 2 models")]


@pytest.mark.parametrize("start, message", [
    ("missing", "start model not found"),
    ("other-architecture", "not a 19-layer model of this architecture and width"),
])
def test_a_wrong_start_model_is_one_line(fer2013_slice, small_model, tmp_path, start, message):
    path = tmp_path / "no-such.keras" if start == "missing" else small_model
    config = tmp_path / "restart.json"
    config.write_text(json.dumps({"architecture": "vgg", "width": 8, "epochs": 1}))
    done = subprocess.run([sys.executable, "-m", "emotion", "train", "--data", fer2013_slice, "--config", config,
                           "--out", tmp_path / "restart.keras", "--run-dir", tmp_path / "run", "--init-from", path],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr
    assert not (tmp_path / "restart.keras").exists()


def test_every_recipe_is_a_valid_configuration_and_names_its_start_models():
    """The recipes in emotion/recipes/ are what README's commands run: each must load, README
    must run it, and the models a recipe starts from or learns from are ones a README command
    writes (a recipe's run, or a soup of runs)."""
    from emotion.train import TrainConfig

    readme = (ROOT / "README.md").read_text()
    written = set(re.findall(r"--out (models/\S+\.keras)", readme))
    recipes = sorted((ROOT / "emotion" / "recipes").glob("*.json"))
    assert recipes
    for path in recipes:
        assert f"--config emotion/recipes/{path.name} --out models/facemood-{path.stem}.keras" in readme, \
            f"README runs no command for {path.name}"
        config = TrainConfig.from_dict(json.loads(path.read_text()))
        teachers = [config.teacher] if isinstance(config.teacher, str) else config.teacher
        for start in filter(None, [config.init_from, *teachers]):
            assert start in written, f"{path.name}: {start} is written by no README command"


def test_a_restart_may_add_blur_that_acts_in_training_only(small_model):
    """vgg-robust.json warm-starts the shipped model with blur augmentation it never had."""
    import keras

    from emotion.model import Augmentation, build_model
    from emotion.train import _load_start_weights

    blur = Augmentation(flip=False, rotation=0, shift=0, zoom=0, brightness=0, blur=1.0)
    (layer,) = blur.layers()
    dot = np.zeros((2, 48, 48, 1), np.float32)
    dot[:, 24, 24] = 255
    blurred = keras.ops.convert_to_numpy(layer(dot, training=True))
    assert blurred[:, 24, 24, 0].max() < 255 and blurred[:, 23:26, 23:26].min() >= 0
    assert (blurred[:, 22:27, 22:27].sum(axis=(1, 2, 3)) > 0.9 * 255).all()  # spread, not lost
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(dot, training=False)), dot)

    model = build_model("small", blur, 0.4, 8)
    assert _load_start_weights(model, small_model)["model"] == "start.keras"
    for mine, start in zip(model.trainable_weights, keras.models.load_model(small_model).trainable_weights,
                           strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(start))


@pytest.mark.parametrize("quality", [20, 30, 60, 95])
def test_jpeg_augmentation_is_what_a_jpeg_codec_does(fer2013, quality, tmp_path):
    """Augmentation.jpeg (the RandomJPEG layer, keras.ops only) against OpenCV's encoder and
    decoder on real faces: within half a grey level, where the codec moves them by 1-8."""
    import cv2
    import keras

    from emotion.model import Augmentation, RandomJPEG, build_model

    faces = fer2013.split("PublicTest").images[:128]
    codec = np.stack([cv2.imdecode(cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])[1],
                                   cv2.IMREAD_GRAYSCALE) for face in faces]).astype(np.float32)
    mine = keras.ops.convert_to_numpy(RandomJPEG(1.0).compress(
        faces[..., None].astype(np.float32), np.full(len(faces), quality, np.float32)))[..., 0]
    assert np.abs(mine - codec).mean() < 0.5 < np.abs(faces - codec).mean()

    model = build_model("small", Augmentation(flip=False, rotation=0, shift=0, zoom=0, brightness=0, jpeg=1.0),
                        0.4, 8)
    (layer,) = [layer for layer in model.layers if isinstance(layer, RandomJPEG)]
    x = faces[:4, ..., None].astype(np.float32)
    assert np.abs(keras.ops.convert_to_numpy(layer(x, training=True)) - x).mean() > 0.5
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)
    model.save(tmp_path / "jpeg.keras")  # a model trained with it loads as any other, in a new process
    np.save(tmp_path / "x.npy", x[..., 0])
    loaded = subprocess.run([sys.executable, "-c", "import sys, numpy as np\n"
                             "from emotion import EmotionClassifier\n"
                             "c = EmotionClassifier.load(sys.argv[1], runtime='keras')\n"
                             "np.save(sys.argv[2], c.model.predict(np.load(sys.argv[3])[..., None], verbose=0))",
                             tmp_path / "jpeg.keras", tmp_path / "probs.npy", tmp_path / "x.npy"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), model.predict(x, verbose=0), atol=1e-6)
