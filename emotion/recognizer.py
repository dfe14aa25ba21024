"""EmotionRecognizer: a face detector and an emotion classifier, from photo to results."""

from __future__ import annotations

import numpy as np

from .annotate import draw_results
from .classifier import EmotionClassifier
from .detect import BlazeFaceDetector, FaceDetector
from .imageio import load_image
from .pipeline import (MIN_FACE, MIN_FACE_PX, FaceResult, analyze_rgb, crop_faces, photo_report,  # noqa: F401
                       reading_order, to_results)


class EmotionRecognizer:
    """Finds faces in a photo and reads the emotion of each.

    >>> recognizer = EmotionRecognizer()            # shipped model, built-in BlazeFace detector
    >>> results = recognizer.analyze("photo.jpg")   # list[FaceResult], reading order
    >>> picture = recognizer.annotate("photo.jpg", results)

    ``min_face`` is the smallest face looked for, as a fraction of the photo's shorter side
    (never under ``min_face_px`` pixels): the photo is shrunk as far as that allows before
    detection, which is most of the speed.
    """

    def __init__(self, classifier: EmotionClassifier | None = None,
                 detector: FaceDetector | None = None, min_face: float = MIN_FACE,
                 min_face_px: float = MIN_FACE_PX):
        self.classifier = classifier or EmotionClassifier.load()
        self.detector = detector or BlazeFaceDetector()
        self.min_face = min_face
        self.min_face_px = min_face_px

    def analyze(self, image, color_order: str = "rgb") -> list[FaceResult]:
        """One result per face found in ``image``, in reading order (rows, then left to right).

        ``image`` is an RGB (or, with ``color_order="bgr"``, BGR) uint8 array, a
        PIL image, a path or raw bytes. Raises ``ImageError`` for unusable input.
        """
        rgb = load_image(image, color_order=color_order)
        return self.analyze_rgb(rgb)

    def analyze_rgb(self, rgb: np.ndarray) -> list[FaceResult]:
        """analyze() for an image already decoded to uint8 RGB (H, W, 3)."""
        return analyze_rgb(self.detector, self.classifier, rgb, self.min_face, self.min_face_px)

    def annotate(self, image, results: list[FaceResult], show_scores: bool = True,
                 emoji: bool = False) -> np.ndarray:
        """An RGB uint8 copy of ``image`` with every result boxed and labelled (and, with
        ``emoji``, covered by its emotion's emoji)."""
        is_rgb = isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape[-1:] == (3,)
        rgb = image if is_rgb else load_image(image)
        return draw_results(rgb, results, show_scores=show_scores, emoji=emoji)
