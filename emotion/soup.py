"""Model soups: one model whose weights are the mean of several trained models' weights.

Runs warm-started from the same trained model (``TrainConfig.init_from``) stay in one basin of
the loss, so the mean of their weights is a working model, often more accurate than each of
them and exactly as fast as one: an ensemble's gain at one network's cost (Wortsman et al.
2022, "Model soups"). The "greedy" soup takes the ingredients best first, by validation
accuracy (PublicTest, mirror average included), and keeps each one only if the soup's
validation accuracy does not drop; so it is chosen on PublicTest and PrivateTest stays a
test. The card lists every ingredient: its file, checksum, PublicTest accuracy, whether it
was kept, and its own training record (with its history, which the soup's curves show).

Models trained apart (from scratch, each its own basin) cannot be averaged weight by weight;
``average="predictions"`` makes them an ensemble instead: one Keras model that runs every kept
model and averages their probabilities, chosen by the same greedy rule on PublicTest. It
costs the sum of its members, and gains most when they are about as accurate as each other
and err on different faces (two models of other basins, 66.4 % and 67.8 % on PrivateTest,
read 68.85 % together).

>>> result = make_soup(["models/a.keras", "models/b.keras"], data, "models/soup.keras", greedy=True)
>>> result.kept, result.card["metrics"]["PrivateTest"]["accuracy"]
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .classifier import EmotionClassifier, card_path, read_card
from .data import SPLITS, Dataset, DatasetError
from .metrics import classification_report

VALIDATION = "PublicTest"
AVERAGES = ("weights", "predictions")


@dataclass
class SoupResult:
    model_path: Path
    card: dict
    kept: list[Path]              # the ingredients averaged, best first


def _accuracy(model, faces: Dataset) -> float:
    probs = EmotionClassifier(model, {"preprocessing": {"flip_average": True}}).predict_proba_batched(faces.images)
    return float((probs.argmax(axis=1) == faces.labels).mean())


def _average(weights: list[list[np.ndarray]]) -> list[np.ndarray]:
    return [np.mean(layer, axis=0).astype(layer[0].dtype) for layer in zip(*weights)]


def _ensemble(models: list):
    """One model whose output is the mean of ``models``' probabilities; (N, 48, 48, 1) -> (N, K).
    Each member is a renamed copy, so that one model may be a member of several ensembles."""
    import keras

    inputs = keras.Input(models[0].input_shape[1:], name="face")
    outputs = []
    for i, model in enumerate(models):
        member = keras.Model.from_config({**model.get_config(), "name": f"member_{i}"})
        member.set_weights(model.get_weights())
        outputs.append(member(inputs))
    return keras.Model(inputs, keras.layers.Average(name="probs")(outputs), name="ensemble")


def make_soup(paths: list[str | Path], data: Dataset, out_path: str | Path, greedy: bool = True,
              name: str | None = None, report: Callable[[str], None] = lambda line: None,
              average: str = "weights") -> SoupResult:
    """Average the weights of the ``.keras`` models at ``paths`` (same architecture and width)
    into ``out_path``, with a card scored on every split of ``data``; with ``average=
    "predictions"``, their probabilities (an ensemble of any architectures, same outputs).

    ``greedy``: keep an ingredient only if it does not lower the soup's PublicTest accuracy
    (the uniform soup, every ingredient, otherwise). ``report`` gets one line per step.
    Raises ValueError (one line) for fewer than two models, unlike ones, or data without a
    PublicTest split, and ModelError (one line) for a missing or damaged model file.
    """
    import keras

    from .export import sha256
    from .train import save_model

    paths, out_path = [Path(p) for p in paths], Path(out_path)
    if average not in AVERAGES:
        raise ValueError(f"unknown average {average!r}; choose from {', '.join(AVERAGES)}")
    if len(paths) < 2:
        raise ValueError("a soup needs at least two models")
    if out_path.suffix != ".keras":
        raise ValueError(f"the model file must end in .keras: {out_path}")
    if out_path.resolve() in {p.resolve() for p in paths}:
        raise ValueError(f"{out_path} is one of the ingredients; write the soup to another file")
    validation = data.split(VALIDATION)
    if not len(validation):
        raise DatasetError(f"a soup is chosen on {VALIDATION}; this dataset has none")

    # The classifier's loader: one line (ModelError) for a missing, damaged or unlike file.
    classifiers = [EmotionClassifier.load(path, runtime="keras") for path in paths]
    models = [classifier.model for classifier in classifiers]
    weights = [model.get_weights() for model in models]
    shapes = [[w.shape for w in ws] for ws in weights]
    for path, shape, classifier in zip(paths[1:], shapes[1:], classifiers[1:]):
        if average == "weights" and shape != shapes[0]:
            raise ValueError(f"{path.name} has another architecture or width than {paths[0].name}; "
                             f"a soup averages models of one architecture")
        if classifier.labels != classifiers[0].labels:
            raise ValueError(f"{path.name} reads other labels than {paths[0].name}; "
                             f"only models of the same labels can be averaged")
    cards = [read_card(path) for path in paths]
    trained_on = {(card.get("data") or {}).get("checksum_md5") for card in cards} - {None}
    if len(trained_on) > 1:
        raise ValueError("the models were trained on different data (their cards' checksums differ)")

    started = time.perf_counter()
    scores = []
    for path, model in zip(paths, models):
        scores.append(_accuracy(model, validation))
        report(f"{path.name}: {VALIDATION} {scores[-1]:.4f}")
    order = sorted(range(len(paths)), key=lambda i: -scores[i])
    template = keras.Model.from_config(models[order[0]].get_config()) if average == "weights" else None

    def combined(chosen: list[int]):
        if average == "predictions":
            return _ensemble([models[j] for j in chosen])
        template.set_weights(_average([weights[j] for j in chosen]))
        return template

    kept, best = [order[0]], scores[order[0]]
    for i in order[1:]:
        score = _accuracy(combined(kept + [i]), validation)
        if score >= best or not greedy:
            kept, best = kept + [i], score
        report(f"+ {paths[i].name}: {VALIDATION} {score:.4f}, " + ("kept" if i in kept else "left out"))
    soup = combined(kept)

    classifier = EmotionClassifier(soup, {"preprocessing": {"flip_average": True}})
    metrics = {split: classification_report(part.labels, classifier.predict_proba_batched(part.images))
               for split in SPLITS if len(part := data.split(split))}
    first = next((cards[i] for i in order if cards[i]), {})  # the best ingredient with a card
    card = {key: value for key, value in first.items()
            if key not in ("name", "created", "metrics", "training",  # and the ingredient's own files':
                           "file_size_bytes", "tflite", "tflite-int8", "runtimes")}
    if average == "predictions":
        # Short, as a page's metric shows it: "2 × vgg", or "small + vgg" for mixed ones.
        members = sorted(cards[i].get("architecture", "?") for i in kept)
        card.update({"architecture": f"{len(kept)} × {members[0]}" if len(set(members)) == 1 else " + ".join(members),
                     "parameters": int(soup.count_params())})
    card.update({
        "name": name or out_path.stem,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "metrics": metrics,
        "training": {
            # The recipe a fine-tune of the soup starts from: its best carded ingredient's.
            "config": (first.get("training") or {}).get("config", {}),
            "soup": {"method": "greedy" if greedy else "uniform", "chosen_on": VALIDATION, "average": average,
                     "ingredients": [
                         {"model": paths[i].name, "sha256": sha256(paths[i]), "kept": i in kept,
                          f"{VALIDATION.lower()}_accuracy": round(scores[i], 4),
                          "training": cards[i].get("training") or {}}
                         for i in order]},
            "seconds_this_run": round(time.perf_counter() - started, 1),
        },
    })
    save_model(soup, out_path, card)
    card = json.loads(card_path(out_path).read_text())
    return SoupResult(out_path, card, [paths[i] for i in kept])
