"""EmotionRecognizer: a face detector and an emotion classifier, from photo to results."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .annotate import draw_results
from .classifier import EmotionClassifier
from .detect import FaceDetector, HaarDetector
from .imageio import load_image
from .labels import FACE_SIZE, LABELS


@dataclass
class FaceResult:
    box: tuple[int, int, int, int]  # x, y, w, h in the original image's pixels
    label: str                      # the most likely emotion
    score: float                    # its probability
    probs: dict[str, float]         # all seven, in LABELS order

    def to_dict(self) -> dict:
        return {"box": [int(v) for v in self.box], "label": self.label,
                "score": round(float(self.score), 4),
                "probs": {k: round(float(v), 4) for k, v in self.probs.items()}}


def photo_report(file: str, results: list[FaceResult]) -> dict:
    """The results of one photo as plain data: ``{"file", "faces": [FaceResult.to_dict(), ...]}``
    (the JSON the CLI prints and the app offers for download)."""
    return {"file": str(file), "faces": [r.to_dict() for r in results]}


def crop_faces(grey: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """uint8 (N, 48, 48) face crops of a grey image at int boxes (N, 4) x, y, w, h."""
    faces = np.empty((len(boxes), FACE_SIZE, FACE_SIZE), np.uint8)
    for i, (x, y, w, h) in enumerate(boxes):
        crop = grey[max(y, 0):y + h, max(x, 0):x + w]
        faces[i] = cv2.resize(crop, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return faces


def reading_order(boxes: np.ndarray) -> np.ndarray:
    """Boxes sorted row by row, left to right, as a person would list the faces."""
    centre_y = boxes[:, 1] + boxes[:, 3] / 2
    # A face starts a new row once its centre is half a face lower than the row's first.
    gap = 0.5 * float(np.median(boxes[:, 3]))
    row = np.zeros(len(boxes), np.int64)
    anchor, current = None, 0
    for i in np.argsort(centre_y, kind="stable"):
        if anchor is not None and centre_y[i] - anchor > gap:
            current += 1
            anchor = None
        anchor = centre_y[i] if anchor is None else anchor
        row[i] = current
    return boxes[np.lexsort((boxes[:, 0], row))]


def to_results(boxes: np.ndarray, probs: np.ndarray) -> list[FaceResult]:
    results = []
    for box, row in zip(boxes, probs):
        best = int(np.argmax(row))
        results.append(FaceResult(tuple(int(v) for v in box), LABELS[best], float(row[best]),
                                  dict(zip(LABELS, (float(p) for p in row)))))
    return results


class EmotionRecognizer:
    """Finds faces in a photo and reads the emotion of each.

    >>> recognizer = EmotionRecognizer()            # shipped model, Haar detector
    >>> results = recognizer.analyze("photo.jpg")   # list[FaceResult], reading order
    >>> picture = recognizer.annotate("photo.jpg", results)
    """

    def __init__(self, classifier: EmotionClassifier | None = None,
                 detector: FaceDetector | None = None):
        self.classifier = classifier or EmotionClassifier.load()
        self.detector = detector or HaarDetector()

    def analyze(self, image, color_order: str = "rgb") -> list[FaceResult]:
        """One result per face found in ``image``, in reading order (rows, then left to right).

        ``image`` is an RGB (or, with ``color_order="bgr"``, BGR) uint8 array, a
        PIL image, a path or raw bytes. Raises ``ImageError`` for unusable input.
        """
        rgb = load_image(image, color_order=color_order)
        return self.analyze_rgb(rgb)

    def analyze_rgb(self, rgb: np.ndarray) -> list[FaceResult]:
        """analyze() for an image already decoded to uint8 RGB (H, W, 3)."""
        boxes = self.detector.detect(rgb)
        if len(boxes) == 0:
            return []
        boxes = reading_order(boxes)
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        probs = self.classifier.predict_proba(crop_faces(grey, boxes))
        return to_results(boxes, probs)

    def annotate(self, image, results: list[FaceResult]) -> np.ndarray:
        """An RGB uint8 copy of ``image`` with every result boxed and labelled."""
        is_rgb = isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape[-1:] == (3,)
        rgb = image if is_rgb else load_image(image)
        return draw_results(rgb, results)
