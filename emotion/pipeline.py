"""The photo pipeline, in stages that every entry point shares.

image in -> :func:`detect_faces` (on a copy shrunk as far as the smallest face wanted allows,
boxes mapped back to the original pixels) -> :func:`crop_faces` -> :func:`classify_faces`
(every face in one batch) -> :class:`FaceResult` list.

:class:`emotion.EmotionRecognizer` runs them on a photo (the Image page, the CLI, the webcam
page's snapshot mode); ``emotion.live`` runs the same stages on video frames, with tracking and
smoothing (``emotion.tracking``) in between.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .labels import FACE_SIZE, LABELS

MIN_FACE_PX = 32  # faces smaller than this are not looked for: the model reads 48x48 faces
MIN_FACE = 0.03   # the smallest face looked for in a photo, as a fraction of its shorter side


@dataclass
class FaceResult:
    """One face: where it is and what it shows. ``track_id`` is set for faces followed in video."""

    box: tuple[int, int, int, int]  # x, y, w, h in the original image's pixels
    label: str                      # the most likely emotion (in video: held until another clearly leads)
    score: float                    # its probability
    probs: dict[str, float]         # all seven, in LABELS order
    track_id: int | None = None     # the id of a face followed from frame to frame
    keypoints: np.ndarray | None = None  # (68, 2) x, y landmarks in the image's pixels, when asked for

    def to_dict(self) -> dict:
        data = {"box": [int(v) for v in self.box], "label": self.label,
                "score": round(float(self.score), 4),
                "probs": {k: round(float(v), 4) for k, v in self.probs.items()}}
        if self.keypoints is not None:
            data["keypoints"] = [[round(float(x), 1), round(float(y), 1)] for x, y in self.keypoints]
        return data if self.track_id is None else {"id": self.track_id, **data}


def photo_report(file: str, results: list[FaceResult]) -> dict:
    """The results of one photo as plain data: ``{"file", "faces": [FaceResult.to_dict(), ...]}``
    (the JSON the CLI prints and the app offers for download)."""
    return {"file": str(file), "faces": [r.to_dict() for r in results]}


def smallest_face_px(shape: tuple, min_face: float = MIN_FACE, min_face_px: float = MIN_FACE_PX) -> float:
    """The smallest face looked for, in pixels: ``min_face`` of the image's shorter side, and never
    under ``min_face_px``."""
    return max(float(min_face) * min(shape[:2]), float(min_face_px))


def working_scale(shape: tuple, smallest_px: float, detector_px: float) -> float:
    """How far an image may shrink before detection: until its smallest wanted face is as small
    as the detector still finds reliably (``detector_px``); never enlarged."""
    return min(1.0, float(detector_px) / max(float(smallest_px), 1.0))


def shrink(image: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def detect_faces(detector, rgb: np.ndarray, smallest_px: float) -> np.ndarray:
    """Float boxes (K, 4) x, y, w, h in ``rgb``'s pixels of the faces at least ``smallest_px``
    wide, found on a copy shrunk by :func:`working_scale`."""
    detector_px = getattr(detector, "min_face_px", None)
    scale = working_scale(rgb.shape, smallest_px, detector_px) if detector_px else 1.0
    boxes = np.asarray(detector.detect(shrink(rgb, scale)), np.float64).reshape(-1, 4) / scale
    # A detector may find smaller faces than asked for; the caller asked for none of them.
    return boxes[np.minimum(boxes[:, 2], boxes[:, 3]) >= 0.8 * smallest_px]


# The model learnt from FER2013's framing, a little wider than the built-in detector's box,
# mostly above the brows. Measured by running the detector on FER2013 faces (bench/crop_frame.py,
# medians over 659 PublicTest faces): the 48x48 frame is the box grown by these fractions of its size.
CROP_FRAME = (0.055, 0.095, 0.055, 0.025)  # left, top, right, bottom


def crop_box(box, frame=CROP_FRAME) -> np.ndarray:
    """The square-ish region around a face box that is cut out for the model."""
    x, y, w, h = np.asarray(box, np.float64)
    left, top, right, bottom = frame
    return np.array([x - left * w, y - top * h, w * (1 + left + right), h * (1 + top + bottom)])


def crop_faces(grey: np.ndarray, boxes: np.ndarray, frame=CROP_FRAME) -> np.ndarray:
    """uint8 (N, 48, 48) face crops of a grey image at boxes (N, 4) x, y, w, h, each framed as
    FER2013 frames its faces (what the model learnt from); the image's edge is repeated where the
    frame runs past it."""
    faces = np.empty((len(boxes), FACE_SIZE, FACE_SIZE), np.uint8)
    height, width = grey.shape
    for i, box in enumerate(boxes):
        x, y, w, h = crop_box(box, frame)
        # An affine warp crops and resizes in one step, and handles frames past the edge.
        sx, sy = FACE_SIZE / max(w, 1e-6), FACE_SIZE / max(h, 1e-6)
        source = grey
        if sx < 0.5 or sy < 0.5:  # large faces: shrink first, as INTER_AREA would, to avoid aliasing
            factor = min(1.0, 2 * max(sx, sy))
            x0, y0 = int(max(x, 0)), int(max(y, 0))
            x1, y1 = int(min(np.ceil(x + w), width)), int(min(np.ceil(y + h), height))
            patch = grey[y0:y1, x0:x1]
            small = cv2.resize(patch, (max(1, round(patch.shape[1] * factor)), max(1, round(patch.shape[0] * factor))),
                               interpolation=cv2.INTER_AREA)
            source, x, y, w, h = small, (x - x0) * factor, (y - y0) * factor, w * factor, h * factor
            sx, sy = FACE_SIZE / w, FACE_SIZE / h
        matrix = np.array([[sx, 0, -x * sx], [0, sy, -y * sy]], np.float64)
        faces[i] = cv2.warpAffine(source, matrix, (FACE_SIZE, FACE_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return faces


def classify_faces(classifier, grey: np.ndarray, boxes: np.ndarray, flip_average: bool | None = None) -> np.ndarray:
    """float32 (N, 7) probabilities of every face at ``boxes``, in one call of the model."""
    if len(boxes) == 0:
        return np.zeros((0, len(getattr(classifier, "labels", LABELS))), np.float32)
    return classifier.predict_proba(crop_faces(grey, boxes), flip_average=flip_average)


def reading_order(boxes: np.ndarray) -> np.ndarray:
    """Boxes sorted row by row, left to right, as a person would list the faces."""
    if len(boxes) == 0:
        return boxes
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


def to_results(boxes: np.ndarray, probs: np.ndarray, track_ids=None, labels=None,
               names: tuple[str, ...] = LABELS) -> list[FaceResult]:
    """One FaceResult per box; the label is the most likely emotion unless ``labels`` (indices)
    says otherwise (video holds a label while another leads only narrowly). ``names``: what the
    columns of ``probs`` mean (the classifier's ``labels``)."""
    results = []
    for i, (box, row) in enumerate(zip(boxes, probs)):
        best = int(np.argmax(row)) if labels is None else int(labels[i])
        results.append(FaceResult(tuple(int(round(v)) for v in box), names[best], float(row[best]),
                                  dict(zip(names, (float(p) for p in row))),
                                  None if track_ids is None else int(track_ids[i])))
    return results


def analyze_rgb(detector, classifier, rgb: np.ndarray, min_face: float = MIN_FACE,
                min_face_px: float = MIN_FACE_PX) -> list[FaceResult]:
    """Every face of a decoded uint8 RGB image, in reading order: the whole photo pipeline."""
    boxes = detect_faces(detector, rgb, smallest_face_px(rgb.shape, min_face, min_face_px))
    if len(boxes) == 0:
        return []
    boxes = reading_order(np.round(boxes))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return to_results(boxes, classify_faces(classifier, grey, boxes),
                      names=getattr(classifier, "labels", LABELS))
