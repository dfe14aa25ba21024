"""How a model holds up when faces do not look like FER2013's: realistic shifts of the
crop and the picture, test-time averaging, and a report of accuracy under each.

A face from our own detector is framed a little differently from FER2013's crops,
tilted, lit otherwise, blurred by motion or compressed by a webcam; each shift here
imitates one of those on (N, 48, 48) uint8 faces, deterministically.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from .labels import FACE_SIZE, LABELS
from .metrics import classification_report


def _warp(faces: np.ndarray, scale: float = 1.0, angle: float = 0.0,
          dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """Each face zoomed by ``scale`` (< 1: a looser crop), turned by ``angle`` degrees
    and moved by (dx, dy) pixels about its centre, borders reflected as in training."""
    centre = (FACE_SIZE / 2 - 0.5, FACE_SIZE / 2 - 0.5)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[:, 2] += (dx, dy)
    return np.stack([cv2.warpAffine(face, matrix, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101) for face in faces])


def _gamma(faces: np.ndarray, gamma: float) -> np.ndarray:
    table = (255.0 * (np.arange(256) / 255.0) ** gamma).round().astype(np.uint8)
    return table[faces]


def _jpeg(faces: np.ndarray, quality: int) -> np.ndarray:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    return np.stack([cv2.imdecode(cv2.imencode(".jpg", face, params)[1], cv2.IMREAD_GRAYSCALE)
                     for face in faces])


def _blur(faces: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(face, (0, 0), sigma) for face in faces])


# name -> what it does to (N, 48, 48) uint8 faces
SHIFTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean": lambda faces: faces,
    "looser crop (x0.85)": lambda faces: _warp(faces, scale=0.85),
    "tighter crop (x1.15)": lambda faces: _warp(faces, scale=1.15),
    "off-centre (4 px)": lambda faces: _warp(faces, dx=4, dy=-4),
    "rotated 10 deg": lambda faces: _warp(faces, angle=10),
    "rotated -10 deg": lambda faces: _warp(faces, angle=-10),
    "brighter (gamma 0.6)": lambda faces: _gamma(faces, 0.6),
    "darker (gamma 1.6)": lambda faces: _gamma(faces, 1.6),
    "blur (sigma 1)": lambda faces: _blur(faces, 1.0),
    "JPEG quality 30": lambda faces: _jpeg(faces, 30),
}

# Test-time views: the face and four 2-pixel shifts; each is also mirrored by the
# classifier's flip average, so ten views in all (the "ten-crop" of the literature).
TTA_OFFSETS = ((0, 0), (2, 2), (-2, 2), (2, -2), (-2, -2))


def tta_proba(classifier, faces: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Probabilities averaged over the TTA views: (N, 48, 48) uint8 -> (N, 7) float32."""
    total = None
    for dx, dy in TTA_OFFSETS:
        view = faces if (dx, dy) == (0, 0) else _warp(faces, dx=dx, dy=dy)
        probs = classifier.predict_proba_batched(view, batch_size=batch_size)
        total = probs if total is None else total + probs
    return (total / len(TTA_OFFSETS)).astype(np.float32)


def predict(classifier, faces: np.ndarray, tta: bool = False) -> np.ndarray:
    """The classifier's probabilities, with test-time averaging when ``tta``."""
    return tta_proba(classifier, faces) if tta else classifier.predict_proba_batched(faces)


def shift_report(classifier, faces: np.ndarray, labels: np.ndarray, tta: bool = False,
                 shifts: dict | None = None) -> dict[str, dict]:
    """{shift name: {"accuracy", "macro_f1"}} of the classifier on shifted copies of ``faces``."""
    report = {}
    for name, shift in (shifts or SHIFTS).items():
        result = classification_report(labels, predict(classifier, shift(faces), tta))
        report[name] = {"accuracy": result["accuracy"], "macro_f1": result["macro_f1"]}
    return report


def detector_crops(recognizer, faces: np.ndarray, upscale: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """FER2013 faces as our own pipeline would see them: each face is enlarged, set in a
    wider frame (its borders reflected, so the head continues), found by the recognizer's
    detector and cut out by the pipeline's own crop. Returns (probabilities (N, 7), found (N,) bool);
    a face the detector misses gets uniform probabilities, so it counts as a likely miss."""
    side = FACE_SIZE * upscale
    pad = side // 2
    probs = np.full((len(faces), len(LABELS)), 1 / len(LABELS), np.float32)
    found = np.zeros(len(faces), bool)
    for i, face in enumerate(faces):
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        framed = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        results = recognizer.analyze(cv2.cvtColor(framed, cv2.COLOR_GRAY2RGB))
        central = [r for r in results if _contains(r.box, (pad + side / 2, pad + side / 2))]
        if central:
            best = max(central, key=lambda r: r.box[2] * r.box[3])
            probs[i] = [best.probs[label] for label in LABELS]
            found[i] = True
    return probs, found


def _contains(box, point) -> bool:
    x, y, w, h = box
    return x <= point[0] <= x + w and y <= point[1] <= y + h
