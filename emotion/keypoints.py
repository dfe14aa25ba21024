"""Facial keypoints: 68 landmarks (jaw, brows, nose, eyes, mouth) on every face, by a small
ResNet-style CNN this project trains itself.

The data (``../shared/data/keypoints/keypoints96.npz``, see its README) holds grey 96x96 crops,
each the landmarks' box grown by 25 % a side and made square, with 68 (x, y) points in the
iBUG/300-W order. Its published split shares people between train and test, so here the
people are split instead (:func:`split_by_person`), and the figure quoted is on people never
seen in training. The metric is the mean landmark error normalised by the outer eye corners'
distance (NME), beside the mean error in pixels at 96x96, for the model and for a baseline that
always answers the mean shape.

At inference (:class:`KeypointModel`) a detector box is turned into the crop the model learnt
from (:data:`DETECTOR_FRAME`, measured by :func:`measure_detector_frame`), every face of a
picture goes through the model in one batch, and the points are mapped back to the picture.

    python -m emotion.keypoints train --epochs 40 --out models/facemood-keypoints.keras
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .classifier import ModelError, models_dir, read_card
from .common import one_line, run_dir_for
from .labels import LABELS

CROP = 96          # the model's input side, in pixels
POINTS = 68
DATA_PATH = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "keypoints" / "keypoints96.npz"
DEFAULT_MODEL_NAME = "facemood-keypoints.keras"
SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "models" / DEFAULT_MODEL_NAME
GROUPS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
          "eyes": range(36, 48), "mouth": range(48, 68)}
OUTER_EYE_CORNERS = (36, 45)  # the NME's normaliser, as in 300-W
LEFT_EYE, RIGHT_EYE = range(36, 42), range(42, 48)  # the subject's right and left eye, as drawn

# How the points are drawn: per group an RGB colour and its chains (indices, closed or not).
OUTLINES = (
    ((0, 200, 255), ((range(0, 17), False),)),                                        # jaw
    ((255, 170, 0), ((range(17, 22), False), (range(22, 27), False))),                 # brows
    ((255, 255, 255), ((range(27, 31), False), (range(31, 36), False))),              # nose
    ((0, 255, 120), ((range(36, 42), True), (range(42, 48), True))),                  # eyes
    ((255, 60, 160), ((range(48, 60), True), (range(60, 68), True))),                 # mouth
)

# What a horizontal mirror turns each point into: the same place on the other side of the face.
_PAIRS = ([(i, 16 - i) for i in range(8)]                                 # jaw
          + [(17 + i, 26 - i) for i in range(5)]                           # brows
          + [(31, 35), (32, 34)]                                           # nostrils
          + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]   # eyes
          + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]             # outer lips
          + [(60, 64), (61, 63), (65, 67)])                                # inner lips
FLIP_INDEX = np.arange(POINTS)
for _a, _b in _PAIRS:
    FLIP_INDEX[_a], FLIP_INDEX[_b] = _b, _a

# The crop the model learnt from, in terms of the built-in detector's box (x, y, w, h): the
# landmarks' box is the detector box moved and scaled by these fractions of its width/height
# (dx, dy, sw, sh), then grown by 25 % a side and made square, as the data was made. Medians of
# :func:`measure_detector_frame` over the training people's crops (README: Facial keypoints).
DETECTOR_FRAME = (0.035, 0.14, 0.961, 0.924)
MARGIN = 0.25


class KeypointError(ValueError):
    """The keypoint data or model cannot be used; the message says why in one line."""


# ----------------------------------------------------------------------------- data

@dataclass
class KeypointData:
    images: np.ndarray   # uint8 (N, 96, 96)
    points: np.ndarray   # float32 (N, 68, 2), x, y in crop pixels
    people: np.ndarray   # str (N,), the person each crop shows
    source: str = ""

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index) -> "KeypointData":
        return KeypointData(self.images[index], self.points[index], self.people[index], self.source)


def person_of(filename: str) -> str:
    """The person a file shows: ``Person_Name_NN.jpg`` -> ``Person_Name``."""
    return re.sub(r"_\d+(\.\w+)?$", "", Path(str(filename)).stem if "." in str(filename) else str(filename))


def load_keypoints(path: str | Path = DATA_PATH) -> KeypointData:
    path = Path(path)
    if not path.is_file():
        raise KeypointError(f"keypoint data not found: {path}")
    try:
        with np.load(path) as data:
            images, points, names = data["images"], data["keypoints"], data["filenames"]
    except (OSError, ValueError, KeyError) as error:
        raise KeypointError(f"{path.name} is not keypoint data (images, keypoints, filenames): "
                            f"{one_line(error)}") from None
    if images.ndim != 3 or images.shape[1:] != (CROP, CROP) or points.shape[1:] != (POINTS, 2) \
            or len(images) != len(points) or len(names) != len(images):
        raise KeypointError(f"{path.name} must hold (N, 96, 96) images and (N, 68, 2) keypoints")
    people = np.array([person_of(name) for name in names])
    return KeypointData(images.astype(np.uint8), points.astype(np.float32), people, str(path))


def split_by_person(people: np.ndarray, test: float = 0.15, validation: float = 0.10,
                    seed: int = 1) -> dict[str, np.ndarray]:
    """Indices {"train", "validation", "test"} with every person in exactly one part: the
    people, sorted by name and shuffled with ``seed``, are dealt out by these fractions."""
    names = sorted(set(people.tolist()))
    order = np.random.default_rng(seed).permutation(len(names))
    n_test = max(1, round(test * len(names)))
    n_val = max(1, round(validation * len(names))) if len(names) > 2 else 0
    chosen = {"test": {names[i] for i in order[:n_test]},
              "validation": {names[i] for i in order[n_test:n_test + n_val]}}
    part = np.array(["test" if p in chosen["test"] else "validation" if p in chosen["validation"]
                     else "train" for p in people.tolist()])
    return {name: np.flatnonzero(part == name) for name in ("train", "validation", "test")}


# ------------------------------------------------------------------- augmentation

@dataclass
class KeypointAugmentation:
    flip: bool = True
    rotation: float = 12.0     # degrees, either way
    shift: float = 0.05        # fraction of the side, either way
    scale: float = 0.08        # zoom in or out by up to this fraction
    brightness: float = 0.25   # fraction of the 0..255 range, either way
    contrast: float = 0.25     # fraction, either way

    @classmethod
    def none(cls) -> "KeypointAugmentation":
        return cls(flip=False, rotation=0, shift=0, scale=0, brightness=0, contrast=0)


def flip_points(points: np.ndarray, width: int = CROP) -> np.ndarray:
    """Points (..., 68, 2) of a horizontally mirrored picture: x mirrored about the picture's
    centre (pixel centres, as ``cv2.flip``) and left/right landmarks swapped, so that point 36
    is still the subject's right eye's outer corner."""
    flipped = np.array(points, np.float32, copy=True)[..., FLIP_INDEX, :]
    flipped[..., 0] = (width - 1) - flipped[..., 0]
    return flipped


def flip_images(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(images)[..., ::-1])


def _affine(rng: np.random.Generator, aug: KeypointAugmentation, flip: bool) -> np.ndarray:
    centre = (CROP - 1) / 2
    angle = rng.uniform(-aug.rotation, aug.rotation) if aug.rotation else 0.0
    scale = 1 + (rng.uniform(-aug.scale, aug.scale) if aug.scale else 0.0)
    matrix = np.vstack([cv2.getRotationMatrix2D((centre, centre), angle, scale), [0, 0, 1]])
    if aug.shift:
        matrix[:2, 2] += rng.uniform(-aug.shift, aug.shift, 2) * CROP
    if flip:
        matrix = matrix @ np.array([[-1, 0, CROP - 1], [0, 1, 0], [0, 0, 1]], np.float64)
    return matrix[:2]


def augment(images: np.ndarray, points: np.ndarray, rng: np.random.Generator,
            aug: KeypointAugmentation) -> tuple[np.ndarray, np.ndarray]:
    """Randomly mirrored (with the landmark swap), turned, moved and zoomed copies of crops
    and their points (one affine warp each, applied alike to both), then brighter or darker."""
    out_images = np.empty_like(images)
    out_points = np.empty_like(points)
    for i in range(len(images)):
        flip = bool(aug.flip and rng.random() < 0.5)
        matrix = _affine(rng, aug, flip)
        out_images[i] = cv2.warpAffine(images[i], matrix, (CROP, CROP), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REFLECT_101)
        moved = points[i] @ matrix[:, :2].T + matrix[:, 2]
        out_points[i] = moved[FLIP_INDEX] if flip else moved
    if aug.brightness or aug.contrast:
        n = len(images)
        gain = 1 + rng.uniform(-aug.contrast, aug.contrast, (n, 1, 1))
        offset = rng.uniform(-aug.brightness, aug.brightness, (n, 1, 1)) * 255
        mean = out_images.mean(axis=(1, 2), keepdims=True)
        out_images = np.clip((out_images - mean) * gain + mean + offset, 0, 255).astype(np.uint8)
    return out_images, out_points


# ------------------------------------------------------------------------ metrics

def point_errors(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(N, 68) distances between predicted and true points, in the points' pixels."""
    return np.linalg.norm(np.asarray(predicted, np.float64) - np.asarray(true, np.float64), axis=-1)


def nme(predicted: np.ndarray, true: np.ndarray) -> float:
    """Mean landmark error over faces, each face's normalised by its outer eye corners' distance."""
    ocular = np.linalg.norm(true[:, OUTER_EYE_CORNERS[0]] - true[:, OUTER_EYE_CORNERS[1]], axis=-1)
    return float(np.mean(point_errors(predicted, true).mean(axis=1) / np.maximum(ocular, 1e-6)))


def landmark_report(predicted: np.ndarray, true: np.ndarray) -> dict:
    """NME, mean pixel error (at 96x96) and both per landmark group."""
    errors = point_errors(predicted, true)
    ocular = np.linalg.norm(true[:, OUTER_EYE_CORNERS[0]] - true[:, OUTER_EYE_CORNERS[1]], axis=-1)
    normalised = errors / np.maximum(ocular, 1e-6)[:, None]
    return {"nme": round(float(normalised.mean()), 5),
            "pixel_error": round(float(errors.mean()), 3),
            "faces": int(len(true)),
            "groups": {name: {"nme": round(float(normalised[:, list(idx)].mean()), 5),
                              "pixel_error": round(float(errors[:, list(idx)].mean()), 3)}
                       for name, idx in GROUPS.items()}}


def mean_shape(points: np.ndarray) -> np.ndarray:
    """The baseline's answer for every crop: the average of the training points (68, 2)."""
    return np.asarray(points, np.float64).mean(axis=0).astype(np.float32)


# ------------------------------------------------------------------------- model

def build_keypoint_model(width: int = 24, mean: np.ndarray | None = None, dropout: float = 0.1):
    """A small ResNet (basic blocks, stride-2 stages 48 -> 24 -> 12 -> 6 -> 3) on (N, 96, 96, 1)
    raw 0..255 grey crops, regressing (N, 68, 2) points as fractions of the crop (0..1).
    The last layer starts at ``mean`` (the mean shape), so training begins from the baseline."""
    import keras
    from keras import layers

    from .model import _conv_bn, residual_stages

    inputs = keras.Input((CROP, CROP, 1), name="crop")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = residual_stages(_conv_bn(x, width, kernel=5, strides=2), width, blocks=(1, 2, 2, 2))
    # Where a feature is matters for landmarks: keep a coarse 3x3 map rather than pooling it away.
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 1, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    bias = (np.zeros(POINTS * 2) if mean is None else np.asarray(mean, np.float32).reshape(-1) / CROP)
    x = layers.Dense(POINTS * 2, kernel_initializer=keras.initializers.RandomNormal(stddev=1e-3),
                     bias_initializer=keras.initializers.Constant(bias.tolist()), name="points_flat")(x)
    outputs = layers.Reshape((POINTS, 2), name="points")(x)
    return keras.Model(inputs, outputs, name="keypoints_resnet")


def _batches(data: KeypointData, batch_size: int, aug: KeypointAugmentation, seed: int):
    """A Keras PyDataset of augmented (crops, points / CROP) batches, reshuffled every epoch."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(data))

        def __len__(self):
            return math.ceil(len(data) / batch_size)

        def __getitem__(self, index):
            pick = self.order[index * batch_size:(index + 1) * batch_size]
            images, points = augment(data.images[pick], data.points[pick], self.rng, aug)
            return images.astype(np.float32)[..., None], points / CROP

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(data))

    return Batches()


# ---------------------------------------------------------------------- training

@dataclass
class KeypointConfig:
    epochs: int = 40
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 24
    test_people: float = 0.15
    validation_people: float = 0.10
    limit: int | None = None   # train on the first N training crops only
    seed: int = 1
    augmentation: KeypointAugmentation = field(default_factory=KeypointAugmentation)

    def schedule(self):
        """The emotion trainer's cosine schedule with one warm-up epoch, for these epochs."""
        from .train import TrainConfig

        return TrainConfig(epochs=self.epochs, learning_rate=self.learning_rate,
                           schedule="cosine", warmup_epochs=1).learning_rate_at


def predict_crops(model, crops: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, 68, 2) points in crop pixels for uint8 crops (N, 96, 96), by ``model`` (a Keras model)."""
    import keras

    parts = [keras.ops.convert_to_numpy(model(np.asarray(crops[i:i + batch_size], np.float32)[..., None],
                                              training=False))
             for i in range(0, len(crops), batch_size)]
    return (np.concatenate(parts) if parts else np.zeros((0, POINTS, 2))) * CROP


def train_keypoints(config: KeypointConfig, out_path: str | Path, data_path: str | Path = DATA_PATH,
                    run_dir: str | Path | None = None, progress: Callable[[dict], None] | None = None,
                    stop: threading.Event | None = None) -> dict:
    """Train on the training people, keep the epoch with the lowest validation loss (other
    people again), report NME and pixel error on the held-out test people for the model and the
    mean-shape baseline, and save the model and its card atomically. Returns the card."""
    import keras

    from .train import TrainingStopped, _machine, _progress_callback, read_history, save_model

    out_path = Path(out_path)
    if out_path.suffix != ".keras":
        raise KeypointError(f"the model file must end in .keras: {out_path}")
    if config.epochs < 1:
        raise KeypointError("epochs must be at least 1")
    data = load_keypoints(data_path)
    parts = split_by_person(data.people, config.test_people, config.validation_people, config.seed)
    train_idx = parts["train"][:config.limit] if config.limit else parts["train"]
    train_set, val_set, test_set = (data.take(train_idx), data.take(parts["validation"]),
                                    data.take(parts["test"]))
    run_dir = run_dir_for(out_path, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "history.csv").unlink(missing_ok=True)  # a keypoint run is short: it starts afresh

    keras.utils.set_random_seed(config.seed)
    shape = mean_shape(train_set.points)
    model = build_keypoint_model(config.width, shape)
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate, weight_decay=config.weight_decay),
                  loss="mean_absolute_error")
    batches = _batches(train_set, config.batch_size, config.augmentation, config.seed)
    best_path = run_dir / "best.weights.h5"
    callbacks = [
        keras.callbacks.LearningRateScheduler(config.schedule()),
        keras.callbacks.ModelCheckpoint(str(best_path), monitor="val_loss", mode="min",
                                        save_best_only=True, save_weights_only=True),
        _progress_callback(config, len(train_set), len(batches), progress, stop),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
    ]
    started = time.perf_counter()
    stopped = False
    try:
        model.fit(batches, validation_data=(val_set.images.astype(np.float32)[..., None],
                                            val_set.points / CROP),
                  epochs=config.epochs, verbose=0, callbacks=callbacks)
    except TrainingStopped:
        stopped = True
    history = read_history(run_dir / "history.csv")
    if not history or not best_path.is_file():
        raise RuntimeError("training stopped before its first epoch ended; nothing was saved")
    model.load_weights(best_path)
    best = min(history, key=lambda row: row.get("val_loss", math.inf))
    if progress:
        progress({"kind": "evaluate", "best_epoch": best["epoch"], "stopped_by_user": stopped,
                  "faces": len(test_set) + len(val_set)})

    evaluation = {}
    for name, part in (("test", test_set), ("validation", val_set)):
        model_report = landmark_report(predict_crops(model, part.images), part.points)
        baseline = landmark_report(np.broadcast_to(shape, part.points.shape), part.points)
        evaluation[name] = {"model": model_report, "mean_shape": baseline}
    test = evaluation["test"]
    card = {
        "name": out_path.stem,
        "kind": "keypoints",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "nme": test["model"]["nme"],
        "nme_baseline": test["mean_shape"]["nme"],
        "pixel_error": test["model"]["pixel_error"],
        "pixel_error_baseline": test["mean_shape"]["pixel_error"],
        "metric": "NME: mean point error / outer eye corners' distance (points 36, 45), on people "
                  "never seen in training; pixel errors at 96x96; baseline: the training mean shape",
        "held_out_people": sorted(set(test_set.people.tolist())),
        "validation_people": sorted(set(val_set.people.tolist())),
        "input": {"shape": [CROP, CROP], "dtype": "uint8",
                  "description": "grey crop: the landmarks' box grown by 25 % a side, made square"},
        "output": {"shape": [POINTS, 2], "units": "fraction of the crop (x, y), iBUG 68-point order"},
        "detector_frame": list(DETECTOR_FRAME),
        "architecture": "resnet (basic blocks 1-2-2-2, 3x3 head)",
        "parameters": int(model.count_params()),
        "backend": keras.backend.backend(),
        "keras_version": keras.__version__,
        "data": {"source": Path(data.source).name, "crops": len(data), "people": len(set(data.people)),
                 "train_crops": len(train_set), "validation_crops": len(val_set),
                 "test_crops": len(test_set), "split": "by person"},
        "metrics": evaluation,
        "mean_shape": np.round(shape, 3).tolist(),
        "training": {"config": asdict(config), "epochs": int(history[-1]["epoch"]),
                     "best_epoch": int(best["epoch"]), "stopped_by_user": stopped,
                     "machine": _machine(), "seconds": round(time.perf_counter() - started, 1),
                     "history": history},
    }
    save_model(model, out_path, card)
    card = read_card(out_path)
    if progress:
        progress({"kind": "done", "model_path": str(out_path), "card": card})
    return card


# --------------------------------------------------------------------- inference

def default_keypoint_model_path() -> Path:
    """The keypoint model the app uses: the models folder's (``$FACEMOOD_MODELS_DIR``), else
    the one shipped with the project."""
    chosen = models_dir() / DEFAULT_MODEL_NAME
    return chosen if chosen.is_file() else SHIPPED_MODEL


def crop_squares(boxes: np.ndarray, frame=DETECTOR_FRAME, margin: float = MARGIN) -> np.ndarray:
    """(N, 3) x, y, side of the square crop the model expects around each detector box
    (x, y, w, h): the landmarks' box estimated from the box, grown by ``margin`` a side, made
    square about its centre, as the training crops were made."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    dx, dy, sw, sh = frame
    w, h = boxes[:, 2] * sw, boxes[:, 3] * sh
    cx = boxes[:, 0] + dx * boxes[:, 2] + w / 2
    cy = boxes[:, 1] + dy * boxes[:, 3] + h / 2
    side = np.maximum(w, h) * (1 + 2 * margin)
    return np.stack([cx - side / 2, cy - side / 2, side], axis=1)


def cut_crops(grey: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """uint8 (N, 96, 96) crops of a grey picture at squares (x, y, side); edges repeated."""
    crops = np.empty((len(squares), CROP, CROP), np.uint8)
    for i, (x, y, side) in enumerate(squares):
        s = CROP / max(side, 1e-6)
        source, ox, oy = grey, x, y
        if s < 0.5:  # a large face: shrink its region first, as INTER_AREA would, against aliasing
            x0, y0 = int(max(x, 0)), int(max(y, 0))
            x1, y1 = int(min(math.ceil(x + side), grey.shape[1])), int(min(math.ceil(y + side), grey.shape[0]))
            factor = 2 * s
            patch = grey[y0:y1, x0:x1]
            if patch.size:
                source = cv2.resize(patch, (max(1, round(patch.shape[1] * factor)),
                                            max(1, round(patch.shape[0] * factor))), interpolation=cv2.INTER_AREA)
                ox, oy, s = (x - x0) * factor, (y - y0) * factor, 0.5
        matrix = np.array([[s, 0, -ox * s], [0, s, -oy * s]])
        crops[i] = cv2.warpAffine(source, matrix, (CROP, CROP), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return crops


_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def shared_model() -> "KeypointModel":
    """The shipped (or $FACEMOOD_MODELS_DIR's) keypoint model, loaded once per process and
    file version, for every caller (pages, video threads)."""
    from .evaluation import file_key

    key = file_key(default_keypoint_model_path())
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED.clear()
            _SHARED[key] = KeypointModel.load(key[0])
        return _SHARED[key]


def with_keypoints(model: "KeypointModel", rgb: np.ndarray, results: list) -> list:
    """``results`` (FaceResults of ``rgb``) with their 68 landmarks, all faces in one batch."""
    from dataclasses import replace

    if not results:
        return results
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    points = model.locate(grey, np.array([r.box for r in results], np.float64))
    return [replace(r, keypoints=p) for r, p in zip(results, points)]


class KeypointModel:
    """68 landmarks for every face box of a picture, in the picture's pixels."""

    def __init__(self, model, card: dict | None = None, path: Path | None = None):
        from .classifier import compiled_forward

        self.model, self.card, self.path = model, card or {}, path
        # The framing belongs to the detector and the data, not the weights: the module's.
        self.frame = DETECTOR_FRAME
        self._forward = compiled_forward(model, (CROP, CROP, 1))

    @classmethod
    def load(cls, path: str | Path | None = None) -> "KeypointModel":
        path = Path(path) if path else default_keypoint_model_path()
        if not path.is_file():
            raise ModelError(f"keypoint model not found: {path}")
        import keras

        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as error:  # Keras raises many types for a damaged archive.
            raise ModelError(f"{path.name} could not be loaded: {one_line(error, 160)}") from error
        if tuple(model.input_shape[1:]) != (CROP, CROP, 1) or tuple(model.output_shape[1:]) != (POINTS, 2):
            raise ModelError(f"{path.name} is not a keypoint model (96x96x1 crops -> 68x2 points)")
        return cls(model, read_card(path), path)

    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, 68, 2) points in crop pixels of uint8 crops (N, 96, 96), in one call."""
        if len(crops) == 0:
            return np.zeros((0, POINTS, 2), np.float32)
        return (self._forward(np.asarray(crops, np.float32)[..., None]) * CROP).astype(np.float32)

    def locate(self, grey: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """float32 (N, 68, 2) landmarks of the faces at ``boxes`` (x, y, w, h) in a grey picture,
        in its pixels; all faces go through the model in one batch."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, POINTS, 2), np.float32)
        squares = crop_squares(boxes, self.frame)
        points = self.predict_crops(cut_crops(grey, squares))
        return (points * (squares[:, 2] / CROP)[:, None, None] + squares[:, None, :2]).astype(np.float32)


def example_grid(crops: np.ndarray, true: np.ndarray, predicted: np.ndarray, columns: int = 4,
                 scale: int = 2) -> np.ndarray:
    """RGB picture of crops side by side, enlarged ``scale`` times, the true points in green and
    the predicted ones in red joined to them by thin lines (the errors)."""
    side = CROP * scale
    rows = math.ceil(len(crops) / columns)
    grid = np.full((rows * side, columns * side, 3), 255, np.uint8)
    for i, crop in enumerate(crops):
        tile = cv2.cvtColor(cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)
        for (tx, ty), (px, py) in zip(true[i] * scale, predicted[i] * scale):
            cv2.line(tile, (round(tx), round(ty)), (round(px), round(py)), (255, 220, 0), 1, cv2.LINE_AA)
        for (x, y), color in [(p, (40, 220, 40)) for p in true[i] * scale] + \
                [(p, (235, 30, 30)) for p in predicted[i] * scale]:
            cv2.circle(tile, (round(x), round(y)), 2, color, cv2.FILLED, cv2.LINE_AA)
        r, c = divmod(i, columns)
        grid[r * side:(r + 1) * side, c * side:(c + 1) * side] = tile
    return grid


def held_out_examples(model_path: str | Path, count: int = 8, data_path: str | Path = DATA_PATH):
    """(crops, true, predicted) of one crop each of ``count`` people the model never saw (its
    card's ``held_out_people``), predicted by the model file."""
    card = read_card(model_path)
    people = card.get("held_out_people") or []
    data = load_keypoints(data_path)
    picks = [int(np.flatnonzero(data.people == person)[0]) for person in people[:count]
             if (data.people == person).any()]
    subset = data.take(np.array(picks, int))
    predicted = KeypointModel.load(model_path).predict_crops(subset.images)
    return subset.images, subset.points, predicted


def keypoint_models(folder: str | Path | None = None) -> list[Path]:
    """The keypoint models (cards of ``kind`` keypoints) in the models folder, newest first."""
    folder = Path(folder) if folder else models_dir()
    found = [p for p in folder.glob("*.keras") if read_card(p).get("kind") == "keypoints"]
    found = sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
    shipped = SHIPPED_MODEL if SHIPPED_MODEL.is_file() else None
    if shipped and not any(p.resolve() == shipped.resolve() for p in found):
        found.append(shipped)  # the models folder was moved ($FACEMOOD_MODELS_DIR): the shipped one too
    return found


class KeypointJob:
    """A keypoint training in a child process (``python -m emotion.keypoints train``), watched
    through the run's ``history.csv``; :meth:`stop` ends it after the current batch, keeping the
    best epoch so far."""

    def __init__(self, out_path: str | Path, epochs: int, run_dir: str | Path, owner: str | None = None):
        self.out_path, self.epochs, self.run_dir, self.owner = Path(out_path), int(epochs), Path(run_dir), owner
        self.log_path = self.run_dir / "train.log"
        self.process = None
        self.started = 0.0

    def start(self) -> "KeypointJob":
        import os
        import subprocess

        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "history.csv").unlink(missing_ok=True)
        log = open(self.log_path, "w")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "emotion.keypoints", "train", "--epochs", str(self.epochs),
             "--out", str(self.out_path), "--run-dir", str(self.run_dir)],
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent, env=env)
        log.close()
        self.started = time.monotonic()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        import signal

        if self.running:
            self.process.send_signal(signal.SIGINT)

    def history(self) -> list[dict]:
        from .train import read_history

        return read_history(self.run_dir / "history.csv")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def outcome(self) -> tuple[str, str]:
        """("running" | "done" | "failed", one line for the user)."""
        if self.running:
            return "running", f"epoch {len(self.history()) + 1} of {self.epochs}"
        try:
            lines = [line for line in self.log_path.read_text().splitlines() if line.strip()]
        except OSError:
            lines = []
        done = [line for line in lines if line.startswith("saved ")]
        if self.process.returncode == 0 and done:
            return "done", done[-1]
        errors = [line for line in lines if line.startswith("error:")]
        return "failed", errors[-1][len("error:"):].strip() if errors else \
            f"the training process ended with code {self.process.returncode}"


_JOB: list[KeypointJob] = []


def current_job() -> KeypointJob | None:
    return _JOB[-1] if _JOB else None


def start_job(out_path: str | Path, epochs: int, run_dir: str | Path, owner: str | None = None) -> KeypointJob:
    """Start a keypoint training; one at a time per process (a RuntimeError says so)."""
    job = current_job()
    if job is not None and job.running:
        raise RuntimeError("a keypoint training is already running on this server; wait for it or stop it")
    if not 1 <= int(epochs) <= 500:
        raise KeypointError("epochs must be between 1 and 500")
    _JOB[:] = [KeypointJob(out_path, epochs, run_dir, owner).start()]
    return _JOB[-1]


# ----------------------------------------------------------------------- alignment

# Where the eyes sit in the emotion model's usual 48x48 crop (the pipeline's, from the detector
# box), as fractions of its side: the midpoint of the eye centres (x, y) and their distance.
# Medians over the faces the built-in detector found among the first 500 FER2013 PublicTest
# faces, with the shipped keypoint model (bench/bench_alignment.py --measure).
ALIGN_EYES = (0.51, 0.397, 0.366)


def eye_centres(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) centres of the subject's right eye (left in the picture) and left eye."""
    points = np.asarray(points, np.float64)
    return points[:, list(LEFT_EYE)].mean(axis=1), points[:, list(RIGHT_EYE)].mean(axis=1)


def aligned_crops(grey: np.ndarray, points: np.ndarray, size: int = 48, eyes=ALIGN_EYES) -> np.ndarray:
    """uint8 (N, size, size) face crops turned and scaled so that the eyes are level, at the
    place and distance apart they have in the usual crop (``eyes``)."""
    first, second = eye_centres(points)
    crops = np.empty((len(first), size, size), np.uint8)
    for i, (a, b) in enumerate(zip(first, second)):
        angle = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))
        scale = eyes[2] * size / max(float(np.hypot(*(b - a))), 1e-6)
        middle = (a + b) / 2
        matrix = cv2.getRotationMatrix2D((float(middle[0]), float(middle[1])), angle, scale)
        matrix[:, 2] += (eyes[0] * size - middle[0], eyes[1] * size - middle[1])
        source = grey
        if scale < 0.5:  # a large face: blur before the warp, as shrinking by area would, against aliasing
            sigma = 0.5 / scale
            x0, y0 = np.maximum(middle - 1.2 * size / scale, 0).astype(int)
            x1, y1 = (middle + 1.2 * size / scale).astype(int)
            source = grey.copy()
            region = source[y0:y1, x0:x1]
            if region.size:
                source[y0:y1, x0:x1] = cv2.GaussianBlur(region, (0, 0), sigma)
        crops[i] = cv2.warpAffine(source, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return crops


def analyze_aligned(recognizer, landmarks: "KeypointModel", rgb: np.ndarray) -> list:
    """The photo pipeline with each face aligned by its eye landmarks before the emotion model
    (``predict --align``): faces found as :func:`emotion.pipeline.analyze_rgb` finds them, their
    landmarks in one batch, then the aligned crops in one batch. Results carry the landmarks."""
    from dataclasses import replace

    from .pipeline import detect_faces, reading_order, smallest_face_px, to_results

    boxes = detect_faces(recognizer.detector, rgb,
                         smallest_face_px(rgb.shape, recognizer.min_face, recognizer.min_face_px))
    if len(boxes) == 0:
        return []
    boxes = reading_order(np.round(boxes))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    points = landmarks.locate(grey, boxes)
    probs = recognizer.classifier.predict_proba(aligned_crops(grey, points))
    results = to_results(boxes, probs, names=getattr(recognizer.classifier, "labels", LABELS))
    return [replace(r, keypoints=p) for r, p in zip(results, points)]


# ------------------------------------------------------------ detector framing

def measure_detector_frame(detector, data: KeypointData, upscale: int = 3) -> dict:
    """How the landmarks' box sits in the detector's box, over ``data``'s crops: each crop is
    enlarged and set in a frame of its reflected borders, the detector finds the face, and the
    landmarks' box is expressed as (dx, dy, sw, sh) of the found box. Medians and quartiles."""
    side = CROP * upscale
    pad = side // 2
    rows = []
    for image, points in zip(data.images, data.points):
        big = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
        framed = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        boxes = np.asarray(detector.detect(cv2.cvtColor(framed, cv2.COLOR_GRAY2RGB)), float).reshape(-1, 4)
        if not len(boxes):
            continue
        centre = side / 2 + pad
        inside = [b for b in boxes if b[0] <= centre <= b[0] + b[2] and b[1] <= centre <= b[1] + b[3]]
        if not inside:
            continue
        x, y, w, h = max(inside, key=lambda b: b[2] * b[3])
        lo, hi = points.min(0) * upscale + pad, points.max(0) * upscale + pad
        rows.append([(lo[0] - x) / w, (lo[1] - y) / h, (hi[0] - lo[0]) / w, (hi[1] - lo[1]) / h])
    rows = np.array(rows)
    return {"found": len(rows), "of": len(data), "median": np.round(np.median(rows, 0), 3).tolist(),
            "q25": np.round(np.percentile(rows, 25, 0), 3).tolist(),
            "q75": np.round(np.percentile(rows, 75, 0), 3).tolist()}


# --------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emotion.keypoints",
                                     description="train or measure the facial keypoint model")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train the keypoint model and save it with its card")
    train.add_argument("--out", default=str(models_dir() / DEFAULT_MODEL_NAME))
    train.add_argument("--data", default=str(DATA_PATH))
    train.add_argument("--epochs", type=int, default=KeypointConfig.epochs)
    train.add_argument("--batch-size", type=int, default=KeypointConfig.batch_size)
    train.add_argument("--learning-rate", type=float, default=KeypointConfig.learning_rate)
    train.add_argument("--width", type=int, default=KeypointConfig.width)
    train.add_argument("--limit", type=int)
    train.add_argument("--no-augment", action="store_true")
    train.add_argument("--run-dir")
    frame = commands.add_parser("frame", help="measure DETECTOR_FRAME with the built-in detector")
    frame.add_argument("--data", default=str(DATA_PATH))
    frame.add_argument("--crops", type=int, default=600)
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            config = KeypointConfig(epochs=args.epochs, batch_size=args.batch_size,
                                    learning_rate=args.learning_rate, width=args.width, limit=args.limit)
            if args.no_augment:
                config.augmentation = KeypointAugmentation.none()

            def show(event):
                if event["kind"] == "epoch":
                    print(f"epoch {event['epoch']}/{event['epochs']}: loss {event['loss']:.4f} "
                          f"val_loss {event['val_loss']:.4f} ({event['seconds']:.0f} s)", flush=True)

            import signal

            stop = threading.Event()
            # Ctrl-C or a stop from the app ends the run after the current batch, keeping the best epoch.
            for number in (signal.SIGINT, signal.SIGTERM):
                signal.signal(number, lambda *_: stop.set())
            card = train_keypoints(config, args.out, args.data, args.run_dir, progress=show, stop=stop)
            print(f"saved {args.out}: NME {card['nme']:.4f} (mean shape {card['nme_baseline']:.4f}), "
                  f"{card['pixel_error']:.2f} px (mean shape {card['pixel_error_baseline']:.2f}) "
                  f"on {len(card['held_out_people'])} held-out people")
        else:
            from .detect import make_detector

            data = load_keypoints(args.data)
            parts = split_by_person(data.people)
            print(json.dumps(measure_detector_frame(make_detector(), data.take(parts["train"][:args.crops]))))
    except (KeypointError, ModelError, OSError, ValueError, RuntimeError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
