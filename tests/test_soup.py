"""Model soups (emotion.soup): the mean of several models' weights, chosen on PublicTest, from
the shipped model and two variants of it, scored on a slice of real FER2013."""

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT


def _weights(path):
    import keras

    return keras.models.load_model(path, compile=False).get_weights()


@pytest.fixture(scope="module")
def soup_ingredients(test_model, tmp_path_factory) -> dict[str, Path]:
    """The shipped model; a neighbour of it,
    every weight scaled by 1 ± 1 % (a restart's ending point stands near its start), both
    with the shipped card; and a broken one (no card), its first convolution's
    kernel negated, whose mean with either of the others cancels that kernel out."""
    import keras

    folder = tmp_path_factory.mktemp("soup")
    shipped = folder / "shipped.keras"
    shutil.copy(test_model, shipped)
    shutil.copy(test_model.with_suffix(".json"), shipped.with_suffix(".json"))
    model = keras.models.load_model(test_model, compile=False)
    weights = model.get_weights()
    rng = np.random.default_rng(0)
    model.set_weights([w * (1 + 0.01 * rng.standard_normal(w.shape)).astype(w.dtype) for w in weights])
    model.save(folder / "neighbour.keras")
    shutil.copy(test_model.with_suffix(".json"), folder / "neighbour.json")  # a restart has its own card
    first_kernel = next(i for i, w in enumerate(weights) if w.ndim == 4)
    model.set_weights([-w if i == first_kernel else w for i, w in enumerate(weights)])
    model.save(folder / "broken.keras")
    return {name: folder / f"{name}.keras" for name in ("shipped", "neighbour", "broken")}


def test_the_greedy_soup_leaves_out_what_lowers_public_test(fer2013_slice, soup_ingredients, tmp_path):
    from emotion.classifier import EmotionClassifier
    from emotion.data import load_dataset
    from emotion.export import sha256
    from emotion.soup import make_soup

    data = load_dataset(fer2013_slice)
    lines = []
    paths = [soup_ingredients["broken"], soup_ingredients["shipped"], soup_ingredients["neighbour"]]
    result = make_soup(paths, data, tmp_path / "soup.keras", report=lines.append)

    soup = result.card["training"]["soup"]
    assert soup["method"] == "greedy" and soup["chosen_on"] == "PublicTest"
    listed = soup["ingredients"]
    assert [i["model"] for i in listed][-1] == "broken.keras"  # best first, by PublicTest
    scores = [i["publictest_accuracy"] for i in listed]
    assert scores == sorted(scores, reverse=True) and scores[-1] < scores[0] - 0.2
    assert not listed[-1]["kept"] and "broken.keras" not in {p.name for p in result.kept}
    assert [i["model"] for i in listed if i["kept"]] == [p.name for p in result.kept]
    assert all(i["sha256"] == sha256(soup_ingredients[i["model"][:-6]]) for i in listed)
    shipped = next(i for i in listed if i["model"] == "shipped.keras")["training"]  # its own card's record
    assert shipped == json.loads(soup_ingredients["shipped"].with_suffix(".json").read_text())["training"]
    assert any("left out" in line for line in lines) and len(lines) == 2 * len(paths) - 1

    # The soup is the mean of the kept models' weights, scored on every split, and the
    # greedy rule never lets it fall below its best ingredient on PublicTest.
    kept = [_weights(p) for p in result.kept]
    for mine, *theirs in zip(_weights(result.model_path), *kept, strict=True):
        np.testing.assert_allclose(mine, np.mean(theirs, axis=0), rtol=1e-6, atol=1e-7)
    metrics = result.card["metrics"]
    assert set(metrics) == {"Training", "PublicTest", "PrivateTest"}
    assert metrics["PublicTest"]["accuracy"] >= scores[0] - 1e-9
    assert result.card["architecture"] == "vgg" and result.card["labels"][0] == "angry"
    assert not {"tflite", "tflite-int8", "runtimes"} & set(result.card)  # the shipped card's twins are not the soup's
    probs = EmotionClassifier.load(result.model_path).predict_proba(data.split("PrivateTest").images)
    assert probs.shape == (64, 7)


def test_the_uniform_soup_from_the_command_line(fer2013_slice, soup_runs, tmp_path):
    out = tmp_path / "soup.keras"
    done = subprocess.run([sys.executable, "-m", "emotion", "soup", *soup_runs,
                           "--data", fer2013_slice, "--out", out, "--uniform"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    saved = next(line for line in done.stdout.splitlines() if line.startswith("saved"))
    assert "a.keras" in saved and "b.keras" in saved and "PrivateTest" in saved
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["soup"]["method"] == "uniform"
    assert all(i["kept"] for i in card["training"]["soup"]["ingredients"])
    for mine, a, b in zip(_weights(out), *map(_weights, soup_runs), strict=True):
        np.testing.assert_allclose(mine, (a + b) / 2, rtol=1e-6, atol=1e-7)
    # No epochs of its own: its curves are those of the runs it averages.
    assert (tmp_path / "soup-curves.png").is_file() and (tmp_path / "soup-confusion.png").is_file()
    from emotion.plots import card_figures

    legend = card_figures(card)["curves"].axes[0].get_legend().get_texts()
    assert sorted(text.get_text() for text in legend) == ["a.keras", "b.keras"]


def test_an_ensemble_of_a_soup_and_a_run_shows_every_run_it_rests_on():
    from emotion.plots import averaged_runs, card_figures

    def run(accuracy):
        return {"epochs_run": 2, "history": [{"epoch": 1, "val_accuracy": accuracy - 0.1},
                                             {"epoch": 2, "val_accuracy": accuracy}]}

    def mean(*ingredients, average="weights"):
        return {"soup": {"average": average, "ingredients": [
            {"model": name, "kept": kept, "training": training} for name, kept, training in ingredients]}}

    soup = mean(("a.keras", True, run(0.6)), ("b.keras", True, run(0.62)), ("c.keras", False, run(0.5)))
    training = mean(("soup.keras", True, soup), ("long.keras", True, run(0.64)), average="predictions")
    runs = averaged_runs(training)
    assert list(runs) == ["soup.keras / a.keras", "soup.keras / b.keras", "long.keras"]
    assert runs["long.keras"][-1]["val_accuracy"] == 0.64
    legend = card_figures({"name": "photos", "training": training})["curves"].axes[0].get_legend().get_texts()
    assert [text.get_text() for text in legend] == list(runs)


def _damaged(folder):
    """A zip archive named .keras that holds no model."""
    with zipfile.ZipFile(folder / "damaged.keras", "w") as archive:
        archive.writestr("notes.txt", "not a model")
    return folder / "damaged.keras"


def _other_architecture(folder):
    from emotion.model import Augmentation, build_model

    build_model("small", Augmentation.none(), 0.4, 8).save(folder / "small.keras")
    return folder / "small.keras"


def _other_data(folder, soup_ingredients):
    shutil.copy(soup_ingredients["neighbour"], folder / "other-data.keras")
    card = json.loads(soup_ingredients["shipped"].with_suffix(".json").read_text())
    card["data"]["checksum_md5"] = "0" * 32
    (folder / "other-data.json").write_text(json.dumps(card))
    return folder / "other-data.keras"


@pytest.mark.parametrize("case, message", [
    ("one model", "a soup needs at least two models"),
    ("missing", "model file not found"),
    ("not keras", "not a Keras model file"),
    ("damaged", "damaged.keras could not be loaded"),
    ("other architecture", "has another architecture or width than shipped.keras"),
    ("other data", "trained on different data"),
    ("out is an ingredient", "is one of the ingredients"),
])
def test_unfit_ingredients_are_one_line(fer2013_slice, soup_ingredients, tmp_path, case, message):
    from emotion.classifier import ModelError
    from emotion.data import load_dataset
    from emotion.soup import make_soup

    shipped, out = soup_ingredients["shipped"], tmp_path / "soup.keras"
    second = {"missing": lambda: tmp_path / "gone.keras",
              "not keras": lambda: (tmp_path / "text.keras").write_text("hello") and tmp_path / "text.keras",
              "damaged": lambda: _damaged(tmp_path),
              "other architecture": lambda: _other_architecture(tmp_path),
              "other data": lambda: _other_data(tmp_path, soup_ingredients)}.get(case, lambda: soup_ingredients["neighbour"])()
    paths = [shipped] if case == "one model" else [shipped, second]
    if case == "out is an ingredient":
        out = second
    with pytest.raises((ValueError, ModelError), match=message) as error:
        make_soup(paths, load_dataset(fer2013_slice), out)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "soup.keras").exists()


def test_a_missing_ingredient_on_the_command_line_is_one_line(fer2013_slice, soup_ingredients, tmp_path):
    done = subprocess.run([sys.executable, "-m", "emotion", "soup", soup_ingredients["shipped"], tmp_path / "gone.keras",
                           "--data", fer2013_slice, "--out", tmp_path / "soup.keras"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert "model file not found" in done.stderr and not (tmp_path / "soup.keras").exists()


def test_an_ensemble_from_the_command_line_averages_predictions_and_exports(fer2013_slice, soup_runs, small_model,
                                                                            tmp_path):
    from emotion.classifier import EmotionClassifier
    from emotion.data import load_dataset
    from emotion.export import export

    out, members = tmp_path / "ensemble.keras", [*soup_runs, small_model]
    done = subprocess.run([sys.executable, "-m", "emotion", "ensemble", *members,
                           "--data", fer2013_slice, "--out", out, "--uniform"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "predictions" in next(line for line in done.stdout.splitlines() if line.startswith("saved"))
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["soup"]["average"] == "predictions"
    assert card["architecture"] == "3 × small"
    assert card["parameters"] == 3 * json.loads(small_model.with_suffix(".json").read_text())["parameters"]

    # One model file whose probabilities are the mean of its members' (each with its mirror average).
    faces = load_dataset(fer2013_slice).split("PrivateTest").images
    ensemble = EmotionClassifier.load(out, runtime="keras")
    theirs = np.mean([EmotionClassifier.load(m, runtime="keras").predict_proba(faces) for m in members], axis=0)
    np.testing.assert_allclose(ensemble.predict_proba(faces), theirs, atol=1e-5)
    assert card["metrics"]["PrivateTest"]["accuracy"] == pytest.approx(
        float((theirs.argmax(1) == load_dataset(fer2013_slice).split("PrivateTest").labels).mean()))
    # It exports like any model, and then runs as its float twin.
    export(out, "tflite", check_faces=faces)
    assert EmotionClassifier.load(out).runtime == "tflite"


def test_an_ensemble_may_mix_architectures_but_not_labels(fer2013_slice, soup_ingredients, tmp_path):
    from emotion.data import load_dataset
    from emotion.labels import LABELS
    from emotion.soup import make_soup

    small = _other_architecture(tmp_path)
    (tmp_path / "small.json").write_text(json.dumps({"architecture": "small"}))
    data = load_dataset(fer2013_slice)
    result = make_soup([soup_ingredients["shipped"], small], data, tmp_path / "mixed.keras", greedy=False,
                       average="predictions")
    assert result.card["architecture"] == "small + vgg"
    (tmp_path / "small.json").write_text(json.dumps({"architecture": "small", "labels": list(LABELS)[::-1]}))
    with pytest.raises(ValueError, match="reads other labels than shipped.keras"):
        make_soup([soup_ingredients["shipped"], small], data, tmp_path / "other.keras", average="predictions")
