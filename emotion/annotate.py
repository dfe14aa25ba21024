"""Drawing results on photos: a box and a label per face, one colour per emotion."""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from .labels import LABELS

# RGB; distinct hues that stay readable with white or black text on them.
EMOTION_COLORS = {
    "angry": (220, 38, 38),
    "disgust": (101, 163, 13),
    "fear": (147, 51, 234),
    "happy": (250, 204, 21),
    "sad": (37, 99, 235),
    "surprise": (249, 115, 22),
    "neutral": (148, 163, 184),
}
assert set(EMOTION_COLORS) == set(LABELS)


def _text_color(background: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def caption(result, show_scores: bool = True, show_ids: bool = False) -> str:
    """The text drawn on a face: "label NN%", with "#id " first for a tracked face if asked."""
    text = f"{result.label} {result.score:.0%}" if show_scores else result.label
    track_id = getattr(result, "track_id", None)
    return f"#{track_id} {text}" if show_ids and track_id is not None else text


def label_color(label: str) -> tuple[int, int, int]:
    """The colour of a label: the emotion's own, or for a personal model's label (``smile``) a
    colour fixed by its name, so it is the same on every picture."""
    if label in EMOTION_COLORS:
        return EMOTION_COLORS[label]
    hue = zlib.crc32(label.encode("utf-8")) % 180
    return tuple(int(v) for v in cv2.cvtColor(np.uint8([[[hue, 200, 210]]]), cv2.COLOR_HSV2RGB)[0, 0])


def draw_keypoints(canvas: np.ndarray, points: np.ndarray, face_width: float) -> None:
    """68 landmarks drawn in place on ``canvas``: each group (jaw, brows, nose, eyes, mouth) as a
    thin line of its own colour through small dots, sized to the face."""
    from .keypoints import OUTLINES

    points = np.asarray(points, np.float64)
    line = max(1, round(face_width / 160))
    dot = max(1, round(face_width / 100))
    for color, chains in OUTLINES:
        for chain, closed in chains:
            curve = np.round(points[list(chain)] * 16).astype(np.int32)  # 4 fractional bits
            cv2.polylines(canvas, [curve], closed, color, line, cv2.LINE_AA, shift=4)
            for px, py in curve:
                cv2.circle(canvas, (int(px), int(py)), dot * 16, color, cv2.FILLED, cv2.LINE_AA, shift=4)


def draw_results(rgb: np.ndarray, results, show_scores: bool = True, show_ids: bool = False,
                 emoji: bool = False) -> np.ndarray:
    """A copy of ``rgb`` (uint8 H, W, 3) with each result's box and "label NN%" drawn.

    Line width and text size follow the image size, so labels stay readable on a
    thumbnail and on a 24-megapixel photo alike. ``show_scores=False`` leaves out
    the percentage; ``show_ids=True`` puts "#id" before the label of results that
    have a ``track_id`` (faces followed in live video). ``emoji=True`` covers each face
    with its emotion's emoji (``emotion.emoji``), under the box and label.
    """
    canvas = np.ascontiguousarray(rgb).copy()
    if emoji:
        from .emoji import draw_emoji

        draw_emoji(canvas, results)
    height, width = canvas.shape[:2]
    side = min(height, width)
    thickness = max(2, round(side / 250))
    for result in results:
        x, y, w, h = (int(v) for v in result.box)
        color = label_color(result.label)
        cv2.rectangle(canvas, (x, y), (x + w, y + h), color, thickness, cv2.LINE_AA)
        if getattr(result, "keypoints", None) is not None:
            draw_keypoints(canvas, result.keypoints, w)
        text = caption(result, show_scores, show_ids)
        # Text height tracks the face size too, within bounds of the image size.
        scale = float(np.clip(w / 220, side / 1400, side / 350))
        scale = max(scale, 0.4)
        weight = max(1, round(scale * 2))
        (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
        pad = max(2, round(text_h * 0.3))
        top = y - text_h - baseline - 2 * pad
        if top < 0:  # no room above the box: put the label inside its top edge
            top = y
        left = min(max(x, 0), max(width - text_w - 2 * pad, 0))
        cv2.rectangle(canvas, (left, top), (left + text_w + 2 * pad, top + text_h + baseline + 2 * pad),
                      color, cv2.FILLED)
        cv2.putText(canvas, text, (left + pad, top + pad + text_h), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    _text_color(color), weight, cv2.LINE_AA)
    return canvas
