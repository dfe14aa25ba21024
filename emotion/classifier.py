"""EmotionClassifier: a trained Keras model and its model card, behind predict_proba."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .common import counted, one_line, write_atomically
from .labels import FACE_SIZE, LABELS

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "facemood-vgg.keras"
# Shipped beside the default when a more accurate model costs too much for live video (an
# ensemble): pictures and video files use it, live video and fine-tuning the default's one network.
PHOTO_MODEL = MODELS_DIR / "facemood-photos.keras"
RUNTIMES = ("auto", "fast", "keras")  # see EmotionClassifier.load
ACTIVE_FILE = "active.json"  # in the models folder: {"model": "<file>.keras"}, set by the app


def models_dir() -> Path:
    """The folder of trained models: $FACEMOOD_MODELS_DIR, or ``models/`` in the project."""
    return Path(os.environ.get("FACEMOOD_MODELS_DIR") or MODELS_DIR)


def active_model_path() -> Path | None:
    """The model chosen in the app (``active.json`` in :func:`models_dir`), if it still exists."""
    folder = models_dir()
    try:
        chosen = json.loads((folder / ACTIVE_FILE).read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(chosen, str) or not chosen:
        return None
    path = folder / chosen  # an absolute path stays absolute
    return path if path.is_file() else None


def set_active_model(path: str | Path | None) -> Path:
    """Make ``path`` the model the app uses (None: back to the shipped default).

    Written atomically to ``active.json`` in :func:`models_dir`; ``$FACEMOOD_MODEL``
    still wins over this choice.
    """
    folder = models_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ACTIVE_FILE
    if path is None:
        target.unlink(missing_ok=True)
        return DEFAULT_MODEL
    path = Path(path).resolve()
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    name = path.name if path.parent == folder.resolve() else str(path)
    write_atomically(target, lambda temp: temp.write_text(json.dumps({"model": name}) + "\n"))
    return path


def default_model_path(photos: bool = False) -> Path:
    """The model the app and CLI use unless told otherwise: $FACEMOOD_MODEL, else the
    model chosen in the app (:func:`set_active_model`), else the shipped one; for ``photos``
    (pictures and video files, not live video) the shipped photo model when there is one."""
    if os.environ.get("FACEMOOD_MODEL"):
        return Path(os.environ["FACEMOOD_MODEL"])
    chosen = active_model_path()
    if chosen:
        return chosen
    return PHOTO_MODEL if photos and PHOTO_MODEL.is_file() else DEFAULT_MODEL


def card_labels(card: dict) -> tuple[str, ...]:
    """What a model's outputs mean: its card's ``labels`` (a model fine-tuned on a personal
    dataset has its own, e.g. ``smile``, ``frown``), else the seven emotions."""
    labels = card.get("labels")
    if isinstance(labels, list) and len(labels) >= 2 and len(set(labels)) == len(labels) \
            and all(isinstance(label, str) and label for label in labels):
        return tuple(labels)
    return LABELS


class ModelError(RuntimeError):
    """The model file cannot be used; the message says why in one line."""


def card_path(model_path: str | Path) -> Path:
    """Where the JSON model card of a ``.keras`` file lives: beside it, same stem."""
    return Path(model_path).with_suffix(".json")


def read_card(model_path: str | Path) -> dict:
    """The model card beside ``model_path``; {} when there is none or it is unreadable."""
    try:
        card = json.loads(card_path(model_path).read_text())
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def _runs(training: dict) -> tuple[list[int], dict]:
    """The epochs of each run in a warm-start chain, first first, and the record it begins with."""
    runs, record = [], training
    while isinstance(record, dict) and record.get("epochs_run"):
        runs.insert(0, record["epochs_run"])
        record = (record.get("started_from") or {}).get("training")
    return runs, record if isinstance(record, dict) else {}


def epochs_run(training: dict) -> list[int]:
    """The epochs of each run that made a model, first run first, from its card's
    ``training``: one number, or several for a model warm-started from another
    (``training.started_from``, as :func:`emotion.train.train` records it)."""
    return _runs(training)[0]


def soup_ingredients(training: dict) -> list[tuple[str, str]]:
    """The models a soup averages (:mod:`emotion.soup`), each with how it was trained
    ("88 + 20 epochs", "10 epochs after a soup of 4 models" for a run warm-started from
    an earlier soup, "a soup of 2 models" for an ingredient that is one), from its card's
    ``training``; [] for a model that is not a soup."""
    soup = training.get("soup") if isinstance(training, dict) else None
    described = []
    for item in (soup or {}).get("ingredients", []):
        if item.get("kept"):
            record = item.get("training") or {}
            runs, made = epochs_run(record), warm_start_source(record)
            text = counted(runs[0], "epoch") if len(runs) == 1 else f"{' + '.join(map(str, runs))} epochs"
            if not runs:
                text = made or "training unknown"
            elif made:
                text += f" after {made}"
            described.append((item.get("model", "?"), text))
    return described


def warm_start_source(training: dict) -> str:
    """What the first run of a model's warm-start chain began from when that was a soup or an
    ensemble ("a soup of 2 models", "an ensemble of 3 models"), from its card's ``training``;
    "" for a run from scratch or from a single model."""
    start = _runs(training)[1]
    if not start.get("soup"):
        return ""
    kind = "an ensemble" if soup_average(start) == "predictions" else "a soup"
    return f"{kind} of {counted(len(soup_ingredients(start)), 'model')}"


def soup_average(training: dict) -> str:
    """What a soup's card says its ingredients' mean is of: "weights" (a model soup) or
    "predictions" (an ensemble, :func:`emotion.soup.make_soup`)."""
    soup = training.get("soup") if isinstance(training, dict) else None
    return (soup or {}).get("average", "weights")


def compiled_forward(model, shape: tuple = (FACE_SIZE, FACE_SIZE, 1)):
    """A compiled inference function of ``model``: float32 (N, *shape) -> its output.

    ``model.predict`` builds a data pipeline and callbacks on every call (~50 ms);
    the hot path calls a traced graph directly instead, one trace for any batch size.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        spec = tf.TensorSpec((None, *shape), tf.float32)
        @tf.function(input_signature=[spec], autograph=False)  # a plain call: nothing to convert
        def forward(x):
            return model(x, training=False)

        return lambda x: forward(x).numpy()
    if backend == "jax":
        import jax

        forward = jax.jit(lambda x: model(x, training=False))
        return lambda x: np.asarray(forward(x))
    return lambda x: keras.ops.convert_to_numpy(model(x, training=False))


class EmotionClassifier:
    """Seven-way emotion probabilities for 48x48 grey faces.

    Load with :meth:`load`; the card (a dict) says how the model was trained and
    how well it scores.
    """

    def __init__(self, model, card: dict | None = None, path: Path | None = None):
        self.model = model
        self.card = card or {}
        self.path = path
        # Averaging a face with its mirror image is worth about a point of accuracy.
        self.flip_average = bool(self.card.get("preprocessing", {}).get("flip_average", True))
        # What each output means: the seven emotions, or a personal model's own labels.
        self.labels = card_labels(self.card)
        self._forward = compiled_forward(model)
        # What runs the network: "keras", or a TFLite twin (emotion/export.py) when loaded
        # with one; runtime_note says why a wanted twin was not used.
        self.runtime, self.runtime_note = "keras", ""

    @classmethod
    def load(cls, path: str | Path | None = None, runtime: str = "auto") -> "EmotionClassifier":
        """The model at ``path`` (default: :func:`default_model_path`, the photo model unless
        ``runtime`` is "fast") and its card.

        ``runtime``: "auto" runs the model's float TFLite twin when its card records a
        current one (same probabilities, less CPU), else Keras; "fast" prefers the int8
        twin (a little less exact: for live video), then as "auto"; "keras" never a twin.
        """
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
        path = Path(path) if path else default_model_path(photos=runtime != "fast")
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        if not zipfile.is_zipfile(path):
            raise ModelError(f"{path.name} is not a Keras model file (damaged or wrong format)")
        import keras

        from . import model as _  # noqa: F401  registers the layers of our own (RandomJPEG)

        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as error:  # Keras raises many types for a damaged archive.
            reason = one_line(error, limit=160)
            raise ModelError(f"{path.name} could not be loaded: {reason}") from error
        card = read_card(path)
        labels = card_labels(card)
        if tuple(model.input_shape[1:]) != (FACE_SIZE, FACE_SIZE, 1) or model.output_shape[-1] != len(labels):
            raise ModelError(f"{path.name} takes {model.input_shape[1:]} and gives "
                             f"{model.output_shape[-1]} classes; expected 48x48x1 faces, {len(labels)} "
                             + ("emotions" if labels == LABELS else "labels (its card's)"))
        classifier = cls(model, card, path)
        if runtime != "keras":
            from .export import twin_forward

            notes = []
            for kind in (("tflite-int8", "tflite") if runtime == "fast" else ("tflite",)):
                forward, why = twin_forward(path, card, kind, len(labels))
                if forward is not None:
                    classifier._forward, classifier.runtime = forward, kind
                    break
                notes.append(why)
            classifier.runtime_note = "; ".join(notes) if classifier.runtime == "keras" else ""
        return classifier

    @property
    def name(self) -> str:
        return self.card.get("name") or (self.path.stem if self.path else self.model.name)

    def predict_proba(self, faces: np.ndarray, flip_average: bool | None = None) -> np.ndarray:
        """uint8 grey faces (N, 48, 48) -> float32 probabilities (N, 7) in LABELS order.

        ``flip_average`` overrides the model's own choice for this call (live video
        turns it off: half the work, and the smoothing over frames does the rest).
        """
        faces = np.asarray(faces)
        if faces.ndim == 2:
            faces = faces[None]
        if faces.ndim != 3 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE):
            raise ValueError(f"faces must have shape (N, 48, 48), got {faces.shape}")
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        x = faces.astype(np.float32)[..., None]
        if not (self.flip_average if flip_average is None else flip_average):
            return self._forward(x).astype(np.float32)
        probs = self._forward(np.concatenate([x, x[:, :, ::-1]]))
        return ((probs[: len(x)] + probs[len(x):]) / 2).astype(np.float32)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """int64 (N,): the index in LABELS of the most likely emotion of each face."""
        return self.predict_proba(faces).argmax(axis=1)

    def predict_proba_batched(self, faces: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """predict_proba over a large set in fixed-size batches, to bound memory."""
        parts = [self.predict_proba(faces[i:i + batch_size]) for i in range(0, len(faces), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.labels)), np.float32)
