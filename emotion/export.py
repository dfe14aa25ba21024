"""A Keras model's TFLite twin: exported beside the ``.keras`` file, checked against it on real
faces, and recorded (with both files' checksums) on the model card.

``EmotionClassifier.load`` runs the twin instead of Keras when the card says it is current
(the ``.keras`` and ``.tflite`` files are still the ones the export checked), else Keras.

Two kinds of twin:

- ``tflite``: float32, the same network and the same probabilities (within 1e-5 in our
  checks); about half the CPU of the compiled Keras call for one face.
- ``tflite-int8``: weights stored as int8 and activations quantised on the fly
  (post-training dynamic-range quantisation). A different, slightly less exact model, several
  times faster for one face; its card entry records how far it is from Keras and its
  accuracy on the faces it was checked on. Only asked for by name (the live video's fast
  runtime), never silently in place of the photo model.

Why the earlier quick check found probabilities 0.23 apart: it compared the exported graph,
which is one forward pass, with ``predict_proba``, which averages each face with its mirror
image (0.32 apart on 256 PrivateTest faces; 9e-7 between like and like). The twin here is
the same single pass, and the classifier mirrors around it exactly as around Keras. The
augmentation layers at the model's front are traced with ``training=False`` (the identity);
traced in training mode they would move outputs by up to 0.78.
"""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .common import one_line, write_atomically
from .labels import FACE_SIZE

# card key -> file suffix, beside the .keras file
TWINS = {"tflite": ".tflite", "tflite-int8": ".int8.tflite"}
FLOAT_TOLERANCE = 1e-3  # largest probability difference accepted for a float twin


class ExportError(RuntimeError):
    """The model cannot be exported; the message says why in one line."""


def twin_path(model_path: str | Path, kind: str = "tflite") -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.stem + TWINS[kind])


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert(model, kind: str = "tflite") -> bytes:
    """The TFLite flatbuffer of a Keras model, traced in inference mode for any batch size."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, FACE_SIZE, FACE_SIZE, 1), tf.float32)
    # training=False explicitly: the augmentation layers at the front become the identity.
    forward = tf.function(lambda x: model(x, training=False), input_signature=[spec], autograph=False)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([forward.get_concrete_function()], model)
    if kind == "tflite-int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: no calibration data
    return converter.convert()


class TFLiteForward:
    """float32 (N, 48, 48, 1) -> (N, classes) through a TFLite interpreter.

    One interpreter, resized when the batch size changes; a lock, because the app's
    sessions and the live video's thread share one classifier and an interpreter is not
    thread-safe. One thread: for a face or two, more threads cost more than they save,
    and the server has other sessions to serve.
    """

    def __init__(self, content: bytes):
        import tensorflow as tf

        with warnings.catch_warnings():  # tf.lite.Interpreter announces its move to ai-edge-litert
            warnings.simplefilter("ignore")
            self.interpreter = tf.lite.Interpreter(model_content=content, num_threads=1)
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.batch = None
        self.lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        with self.lock:
            if len(x) != self.batch:
                self.interpreter.resize_tensor_input(self.input, list(x.shape), strict=False)
                self.interpreter.allocate_tensors()
                self.batch = len(x)
            self.interpreter.set_tensor(self.input, x)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self.output).copy()


def twin_forward(model_path: str | Path, card: dict, kind: str = "tflite",
                 classes: int | None = None) -> tuple[TFLiteForward | None, str]:
    """(the twin's forward function, "") when the card records a current twin, else
    (None, why not): no entry, file missing, either file changed since the export
    (a stale twin), or a file TFLite cannot run."""
    entry = card.get(kind)
    path = twin_path(model_path, kind)
    if not isinstance(entry, dict):
        return None, f"no {kind} twin on the card"
    if not path.is_file():
        return None, f"{path.name} is missing"
    try:
        if entry.get("keras_sha256") != sha256(model_path):
            return None, f"{path.name} is stale: {Path(model_path).name} changed after the export"
        content = path.read_bytes()
        if entry.get("sha256") != hashlib.sha256(content).hexdigest():
            return None, f"{path.name} changed after the export (damaged or replaced)"
        forward = TFLiteForward(content)
        out = forward(np.zeros((1, FACE_SIZE, FACE_SIZE, 1), np.float32))
    except Exception as error:  # TFLite raises many types for a bad flatbuffer
        return None, f"{path.name} cannot run: {one_line(error, 120)}"
    if classes is not None and out.shape != (1, classes):
        return None, f"{path.name} gives {out.shape[-1]} outputs, not {classes}"
    return forward, ""


def export(model_path: str | Path, kind: str = "tflite", check_faces: np.ndarray | None = None,
           check_labels: np.ndarray | None = None) -> dict:
    """Write ``model_path``'s twin of ``kind`` beside it and record it on the model card.

    ``check_faces`` (uint8 (N, 48, 48), real faces) are run through both Keras and the
    twin, single pass and mirror-averaged; a float twin further than 1e-3 from Keras is
    refused. With ``check_labels`` the card also gets both runtimes' accuracy on them.
    Returns the card entry.
    """
    from .classifier import EmotionClassifier, ModelError, card_path, read_card

    if kind not in TWINS:
        raise ExportError(f"unknown format {kind!r}; choose from {', '.join(TWINS)}")
    model_path = Path(model_path)
    if model_path.suffix != ".keras":
        raise ExportError(f"give a .keras model file, not {model_path.name}")
    try:
        keras_model = EmotionClassifier.load(model_path, runtime="keras")
    except ModelError as error:
        raise ExportError(str(error)) from None
    try:
        content = convert(keras_model.model, kind)
    except Exception as error:  # the converter's own errors are long MLIR dumps
        raise ExportError(f"{model_path.name} could not be converted: {one_line(error, 160)}") from error
    target = twin_path(model_path, kind)
    entry = {"file": target.name, "format": "tflite",
             "quantization": "dynamic-range int8 weights" if kind == "tflite-int8" else "none (float32)",
             "bytes": len(content), "sha256": hashlib.sha256(content).hexdigest(),
             "keras_sha256": sha256(model_path),
             "exported": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    try:
        import tensorflow as tf

        entry["tensorflow_version"] = tf.__version__
    except ImportError:
        pass
    if check_faces is not None and len(check_faces):
        twin = EmotionClassifier(keras_model.model, keras_model.card, model_path)
        twin._forward, twin.runtime = TFLiteForward(content), kind
        x = np.asarray(check_faces)
        single = np.abs(twin.predict_proba(x, flip_average=False) - keras_model.predict_proba(x, flip_average=False))
        ours, theirs = twin.predict_proba_batched(x), keras_model.predict_proba_batched(x)
        entry["check"] = {"faces": int(len(x)), "max_abs_diff": float(single.max()),
                          "max_abs_diff_mirror_averaged": float(np.abs(ours - theirs).max()),
                          "same_label": float((ours.argmax(1) == theirs.argmax(1)).mean())}
        if check_labels is not None:
            entry["check"]["accuracy"] = float((ours.argmax(1) == check_labels).mean())
            entry["check"]["keras_accuracy"] = float((theirs.argmax(1) == check_labels).mean())
        if kind == "tflite" and entry["check"]["max_abs_diff"] > FLOAT_TOLERANCE:
            raise ExportError(f"the TFLite twin differs from Keras by {entry['check']['max_abs_diff']:.2g} "
                              f"(more than {FLOAT_TOLERANCE:g}); nothing was written")
    write_atomically(target, lambda temp: temp.write_bytes(content))
    card = read_card(model_path)
    card[kind] = entry
    write_atomically(card_path(model_path), lambda temp: temp.write_text(json.dumps(card, indent=1)))
    return entry
