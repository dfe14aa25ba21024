"""Emoji for the seven emotions, drawn in code, and laid over the faces of a picture.

The artwork is the project's own: each emoji is a disc with eyes, brows and a mouth made of
OpenCV shapes (no font, no image file), so it is free of anyone else's licence. An emoji is
drawn at four times its size and shrunk (smooth edges at any size), and kept per size, so a
video that shows the same face size frame after frame draws it once.

>>> from emotion.emoji import emoji_rgba, overlay_emoji
>>> emoji_rgba("happy", 64).shape            # RGBA uint8, transparent outside the disc
(64, 64, 4)
>>> picture = overlay_emoji(rgb, results)    # a copy, with each face's emoji over the face
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .labels import LABELS

SUPERSAMPLE = 4
MIN_SIZE = 8       # smaller than this an emoji is a blur: not drawn
MAX_SIZE = 1024    # a face filling a 24-megapixel photo; larger sizes are drawn at this and scaled
POSITIONS = ("over", "beside")

# RGB face colours: the usual yellow, with the emotions that have a colour of their own in
# common emoji sets (red anger, green disgust, pale blue fear) tinted so that the seven differ
# even as small thumbnails.
_FACE = {"angry": (232, 76, 50), "disgust": (150, 196, 72), "fear": (176, 196, 240),
         "happy": (255, 205, 40), "sad": (250, 210, 90), "surprise": (255, 196, 30),
         "neutral": (250, 214, 100)}
_INK = (70, 40, 20)        # eyes, brows, mouth
_RIM = (150, 95, 20)       # the disc's outline
_TEAR = (70, 150, 235)
_MOUTH = (150, 40, 40)     # inside an open mouth
_TONGUE = (235, 95, 120)
_WHITE = (255, 255, 255)


def _draw(label: str, size: int) -> np.ndarray:
    """The emoji of ``label`` as RGBA (size, size, 4), drawn at SUPERSAMPLE times and shrunk."""
    if label not in _FACE:
        raise ValueError(f"no emoji for {label!r}; emoji exist for {', '.join(LABELS)}")
    n = size * SUPERSAMPLE
    rgb = np.zeros((n, n, 3), np.uint8)
    alpha = np.zeros((n, n), np.uint8)
    c = n // 2
    r = int(n * 0.47)
    u = n / 100.0  # one unit: feature sizes below are in hundredths of the emoji's side

    def p(x: float, y: float) -> tuple[int, int]:
        return int(round(c + x * u)), int(round(c + y * u))

    def t(width: float) -> int:
        return max(1, int(round(width * u)))

    cv2.circle(alpha, (c, c), r, 255, cv2.FILLED, cv2.LINE_AA)
    cv2.circle(rgb, (c, c), r, _FACE[label], cv2.FILLED, cv2.LINE_AA)
    cv2.circle(rgb, (c, c), r - t(1.5), _RIM, t(3), cv2.LINE_AA)

    def arc(centre, axes, start, end, colour=_INK, width=4.5):
        cv2.ellipse(rgb, p(*centre), (t(axes[0]), t(axes[1])), 0, start, end, colour, t(width), cv2.LINE_AA)

    def line(a, b, colour=_INK, width=5):
        cv2.line(rgb, p(*a), p(*b), colour, t(width), cv2.LINE_AA)

    def dot(centre, radius, colour=_INK):
        cv2.circle(rgb, p(*centre), t(radius), colour, cv2.FILLED, cv2.LINE_AA)

    def oval(centre, axes, colour, filled=True, width=4):
        cv2.ellipse(rgb, p(*centre), (t(axes[0]), t(axes[1])), 0, 0, 360, colour,
                    cv2.FILLED if filled else t(width), cv2.LINE_AA)

    def polygon(points, colour):
        cv2.fillPoly(rgb, [np.array([p(*q) for q in points], np.int32)], colour, cv2.LINE_AA)

    if label == "happy":
        # Closed, smiling eyes and a wide open grin.
        arc((-16, -10), (8, 7), 200, 340)
        arc((16, -10), (8, 7), 200, 340)
        cv2.ellipse(rgb, p(0, 8), (t(28), t(24)), 0, 0, 180, _MOUTH, cv2.FILLED, cv2.LINE_AA)
        cv2.rectangle(rgb, p(-27, 8), p(27, 13), _WHITE, cv2.FILLED, cv2.LINE_AA)  # teeth
        cv2.ellipse(rgb, p(0, 8), (t(28), t(24)), 0, 0, 180, _INK, t(3), cv2.LINE_AA)
        line((-28, 8), (28, 8), width=3)
    elif label == "sad":
        # Brows rising to the middle, downcast eyes, a frown and a tear.
        line((-26, -22), (-9, -28), width=4)
        line((26, -22), (9, -28), width=4)
        oval((-15, -8), (5, 7), _INK)
        oval((15, -8), (5, 7), _INK)
        arc((0, 32), (20, 13), 200, 340, width=5)
        polygon([(-19, 0), (-24, 12), (-19, 16), (-14, 12)], _TEAR)
        dot((-19, 12), 5, _TEAR)
    elif label == "angry":
        # Brows slanting down to the nose, narrowed eyes, a tight downturned mouth.
        line((-30, -24), (-7, -13), width=6)
        line((30, -24), (7, -13), width=6)
        oval((-16, -5), (6, 4), _INK)
        oval((16, -5), (6, 4), _INK)
        arc((0, 30), (18, 9), 195, 345, width=6)
    elif label == "surprise":
        # High round brows, wide open eyes and a round open mouth.
        arc((-16, -22), (10, 6), 200, 340, width=4)
        arc((16, -22), (10, 6), 200, 340, width=4)
        oval((-16, -6), (8, 10), _WHITE)
        oval((16, -6), (8, 10), _WHITE)
        oval((-16, -6), (8, 10), _INK, filled=False, width=2.5)
        oval((16, -6), (8, 10), _INK, filled=False, width=2.5)
        dot((-16, -5), 4.5)
        dot((16, -5), 4.5)
        oval((0, 24), (10, 13), _MOUTH)
        oval((0, 24), (10, 13), _INK, filled=False, width=3)
    elif label == "fear":
        # Worried brows, wide eyes with small pupils, a stretched grimace of clenched teeth.
        line((-27, -20), (-10, -27), width=4)
        line((27, -20), (10, -27), width=4)
        oval((-16, -8), (8, 9), _WHITE)
        oval((16, -8), (8, 9), _WHITE)
        oval((-16, -8), (8, 9), _INK, filled=False, width=2.5)
        oval((16, -8), (8, 9), _INK, filled=False, width=2.5)
        dot((-16, -7), 3)
        dot((16, -7), 3)
        cv2.rectangle(rgb, p(-24, 16), p(24, 32), _WHITE, cv2.FILLED, cv2.LINE_AA)
        cv2.rectangle(rgb, p(-24, 16), p(24, 32), _INK, t(3), cv2.LINE_AA)
        line((-24, 24), (24, 24), width=2)
        for x in (-12, 0, 12):
            line((x, 16), (x, 32), width=2)
    elif label == "disgust":
        # One brow up and one down, squinting eyes, a wavy mouth with the tongue out.
        line((-28, -20), (-8, -24), width=4)
        line((8, -18), (28, -14), width=4)
        line((-24, -8), (-8, -8), width=5)
        line((8, -4), (24, -4), width=5)
        polygon([(-6, 22), (10, 22), (10, 34), (2, 40), (-6, 34)], _TONGUE)
        wave = [(-26, 20), (-17, 15), (-8, 22), (1, 16), (10, 22), (19, 15), (26, 19)]
        cv2.polylines(rgb, [np.array([p(*q) for q in wave], np.int32)], False, _INK, t(5), cv2.LINE_AA)
    else:  # neutral: level eyes and a straight mouth
        oval((-16, -8), (5, 7), _INK)
        oval((16, -8), (5, 7), _INK)
        line((-18, 24), (18, 24), width=5)

    rgba = np.dstack([rgb, alpha])
    # Colour times alpha before shrinking, so the edge does not pick up the black outside.
    premultiplied = rgba.astype(np.float32)
    premultiplied[..., :3] *= premultiplied[..., 3:] / 255.0
    small = cv2.resize(premultiplied, (size, size), interpolation=cv2.INTER_AREA)
    a = small[..., 3:]
    small[..., :3] = np.where(a > 0, small[..., :3] * 255.0 / np.maximum(a, 1e-6), 0)
    return np.clip(np.round(small), 0, 255).astype(np.uint8)


@lru_cache(maxsize=256)
def _cached(label: str, size: int) -> np.ndarray:
    image = _draw(label, size)
    image.flags.writeable = False  # shared between callers: nobody may paint on it
    return image


def has_emoji(label: str) -> bool:
    """Whether ``label`` has an emoji (the seven emotions do; a personal model's own labels not)."""
    return label in _FACE


def emoji_rgba(label: str, size: int) -> np.ndarray:
    """The emoji of ``label``, RGBA uint8 (size, size, 4), read-only; drawn once per size."""
    size = int(size)
    if size < 1:
        raise ValueError(f"an emoji must be at least 1 pixel wide, not {size}")
    if size > MAX_SIZE:
        return cv2.resize(_cached(label, MAX_SIZE), (size, size), interpolation=cv2.INTER_LINEAR)
    return _cached(label, size)


def emoji_box(box, position: str = "over") -> tuple[int, int, int]:
    """Where a face's emoji goes: (left, top, size) in the picture's pixels.

    ``over``: a square as large as the face box, centred on it (the face is hidden);
    ``beside``: three quarters of the box's height, right of the box, level with its top.
    """
    x, y, w, h = (float(v) for v in box)
    if position == "over":
        size = max(w, h)
        return int(round(x + w / 2 - size / 2)), int(round(y + h / 2 - size / 2)), int(round(size))
    if position == "beside":
        size = 0.75 * h
        return int(round(x + w + 0.05 * w)), int(round(y)), int(round(size))
    raise ValueError(f"unknown emoji position {position!r}; choose {' or '.join(POSITIONS)}")


def paste_rgba(canvas: np.ndarray, image: np.ndarray, left: int, top: int) -> None:
    """Blend the RGBA ``image`` onto the RGB ``canvas`` in place at (left, top); what falls
    outside the canvas is cut off."""
    height, width = canvas.shape[:2]
    size_y, size_x = image.shape[:2]
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + size_x, width), min(top + size_y, height)
    if x0 >= x1 or y0 >= y1:
        return
    part = image[y0 - top:y1 - top, x0 - left:x1 - left]
    alpha = part[..., 3:].astype(np.float32) / 255.0
    region = canvas[y0:y1, x0:x1]
    region[...] = np.round(part[..., :3] * alpha + region * (1 - alpha)).astype(np.uint8)


def draw_emoji(canvas: np.ndarray, results, position: str = "over") -> np.ndarray:
    """Draw each result's emoji onto ``canvas`` (uint8 RGB, in place) and return it. Faces
    whose label has no emoji, or too small for one, are left as they are."""
    if position not in POSITIONS:
        raise ValueError(f"unknown emoji position {position!r}; choose {' or '.join(POSITIONS)}")
    for result in results:
        if not has_emoji(result.label):
            continue
        left, top, size = emoji_box(result.box, position)
        if size < MIN_SIZE:
            continue
        paste_rgba(canvas, emoji_rgba(result.label, size), left, top)
    return canvas


def overlay_emoji(rgb: np.ndarray, results, position: str = "over") -> np.ndarray:
    """A copy of ``rgb`` (uint8 H, W, 3) with each face's emoji over (or beside) its box,
    scaled to the face and cut off at the picture's edges."""
    return draw_emoji(np.ascontiguousarray(rgb).copy(), results, position)
