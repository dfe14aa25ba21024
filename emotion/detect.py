"""Face detectors behind one small interface: ``detect(rgb) -> boxes``.

Boxes are int32 arrays of shape (K, 4) holding x, y, w, h in the pixels of the
image passed in, largest face first.

* :class:`HaarDetector` uses the Haar cascade that ships inside OpenCV (no file
  to download), tuned on the real photos in ``../shared/data/faces``.
* :class:`YuNetDetector` uses OpenCV's ``FaceDetectorYN`` with a YuNet ONNX file
  the user supplies; more accurate on small, turned or partly hidden faces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np


class FaceDetector(Protocol):
    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """uint8 RGB (H, W, 3) or grey (H, W) -> int32 boxes (K, 4) as x, y, w, h."""


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


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, run on a downscaled grey copy.

    ``min_face`` is the smallest face side, as a fraction of the image's shorter
    side, that is looked for (smaller means slower and more false alarms).
    """

    CASCADE = "haarcascade_frontalface_default.xml"

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

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        image = rgb if rgb.ndim == 3 else cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)
        small, scale = _downscale(image, self.max_side)
        self.net.setInputSize((small.shape[1], small.shape[0]))
        _, found = self.net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        if found is None:
            return np.zeros((0, 4), np.int32)
        boxes = found[:, :4].astype(np.float64) / scale
        # YuNet boxes may start outside the frame; clip so crops stay inside the image.
        height, width = image.shape[:2]
        x0 = np.clip(boxes[:, 0], 0, width - 1)
        y0 = np.clip(boxes[:, 1], 0, height - 1)
        x1 = np.clip(boxes[:, 0] + boxes[:, 2], 1, width)
        y1 = np.clip(boxes[:, 1] + boxes[:, 3], 1, height)
        return _largest_first(np.round(np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)))


def make_detector(kind: str = "haar", model_path: str | Path | None = None, **options) -> FaceDetector:
    """``"haar"`` (built in) or ``"yunet"`` (needs ``model_path``)."""
    if kind == "haar":
        return HaarDetector(**options)
    if kind == "yunet":
        if model_path is None:
            raise ValueError("the YuNet detector needs the path of its .onnx file")
        return YuNetDetector(model_path, **options)
    raise ValueError(f"unknown face detector {kind!r}; choose haar or yunet")
