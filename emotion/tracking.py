"""What video adds to the photo stages: faces followed from frame to frame, and steadied labels.

* :class:`Tracker` gives each face an id: detections are matched to the faces already followed
  by box overlap (IoU), a new face is confirmed by a second detection, one missed detection does
  not drop a face, and between detections each face moves with the median optical flow
  (Lucas-Kanade) of a few corners inside it, which costs a fraction of a detection.
* :class:`Smoother` averages each face's probabilities over frames (an exponential moving
  average whose weight on the past is ``smoothing``) and changes its label only when another
  emotion leads by a margin (hysteresis), so labels do not flicker.

``emotion.live`` composes them with the photo stages of ``emotion.pipeline``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .detect import iou

MATCH_IOU = 0.3          # a detection continues a face when their boxes overlap this much
LOST_FRAMES = 24         # a face no detection has confirmed for this many frames is dropped
MAX_SMOOTHING = 0.95     # the weight on the past never reaches 1 (labels would freeze)
HYSTERESIS = 0.1         # at full smoothing, another emotion must lead by this much to take the label


@dataclass
class Track:
    order: int                       # creation order: of two tracks on one face, the older stays
    box: np.ndarray                  # float64 x, y, w, h in frame pixels
    track_id: int = 0                # the id shown, given once the face is confirmed (0 before)
    probs: np.ndarray | None = None  # smoothed probabilities, None until first classified
    label: int = -1                  # index of the label shown (held until another clearly leads)
    missed: int = 0                  # detections in a row without a match
    hits: int = 1                    # detections that matched it
    seen: int = 0                    # the frame it was last detected in
    read: int = -1                   # the frame its emotion was last read in
    points: np.ndarray | None = None  # float32 (K, 1, 2) corners in the flow image


class Tracker:
    """Faces followed over the frames of one stream, each with a stable id.

    ``confirm_new``: a new face gets its id once a second detection confirms it, so a one-frame
    false alarm never shows (a single picture has no second frame: no confirming).
    """

    def __init__(self, confirm_new: bool = True):
        self.confirm_new = confirm_new
        self.reset()

    def reset(self) -> None:
        self.tracks: list[Track] = []
        self._next_id = 1
        self._created = 0
        self._prev: np.ndarray | None = None

    def forget_motion(self) -> None:
        """The flow image changed scale or view: corners followed so far do not carry over."""
        self._prev = None
        for track in self.tracks:
            track.points = None

    def match(self, boxes: np.ndarray, frame_index: int, smoothing: float) -> None:
        """Continue the followed faces with the detections that overlap them; new faces for the rest."""
        overlap = iou(np.array([t.box for t in self.tracks]).reshape(-1, 4), boxes)
        matched_tracks, matched_boxes = set(), set()
        # Greedy by overlap: with a handful of faces this is as good as an optimal assignment.
        for flat in np.argsort(-overlap, axis=None):
            i, j = np.unravel_index(flat, overlap.shape)
            if overlap[i, j] < MATCH_IOU:
                break
            if i in matched_tracks or j in matched_boxes:
                continue
            matched_tracks.add(i)
            matched_boxes.add(j)
            track = self.tracks[i]
            keep = 0.5 * min(smoothing, 0.8)  # boxes are steadied a little, never left behind
            track.box = keep * track.box + (1 - keep) * boxes[j]
            track.missed, track.hits, track.seen = 0, track.hits + 1, frame_index
            self._confirm(track)
        for i, track in enumerate(self.tracks):
            if i not in matched_tracks:
                track.missed += 1
        for j, box in enumerate(boxes):
            if j not in matched_boxes:
                self._created += 1
                track = Track(self._created, np.asarray(box, np.float64), seen=frame_index)
                self.tracks.append(track)
                self._confirm(track)

    def _confirm(self, track: Track) -> None:
        if not track.track_id and track.hits >= (2 if self.confirm_new else 1):
            track.track_id = self._next_id
            self._next_id += 1

    def seed(self, flow_image: np.ndarray, scale: float) -> None:
        """Corners inside each face (in the flow image, ``scale`` times the frame) for the flow to follow."""
        for track in self.tracks:
            x, y, w, h = track.box * scale
            x0, y0 = max(int(x + 0.2 * w), 0), max(int(y + 0.15 * h), 0)
            x1, y1 = min(int(x + 0.8 * w), flow_image.shape[1]), min(int(y + 0.9 * h), flow_image.shape[0])
            if x1 - x0 < 4 or y1 - y0 < 4:
                track.points = None
                continue
            mask = np.zeros(flow_image.shape, np.uint8)
            mask[y0:y1, x0:x1] = 255
            track.points = cv2.goodFeaturesToTrack(flow_image, maxCorners=20, qualityLevel=0.01, minDistance=3,
                                                   mask=mask)

    def follow(self, flow_image: np.ndarray, scale: float) -> None:
        """Move each face by the median optical flow of its corners since the last frame."""
        prev, self._prev = self._prev, flow_image
        if prev is None or prev.shape != flow_image.shape:
            return
        for track in self.tracks:
            if track.points is None or len(track.points) < 3:
                continue
            moved, status, _ = cv2.calcOpticalFlowPyrLK(prev, flow_image, track.points, None,
                                                        winSize=(15, 15), maxLevel=2)
            good = status.reshape(-1) == 1
            if good.sum() < 3:
                track.points = None
                continue
            shift = np.median((moved - track.points).reshape(-1, 2)[good], axis=0) / scale
            track.box[:2] += shift
            track.points = moved[good].reshape(-1, 1, 2)

    def drop_lost(self, shape: tuple, frame_index: int) -> None:
        """Forget faces lost (missed by the detector more often than found, or not found for a
        while, or missed before being confirmed: a false alarm), moved out of the frame, or
        doubled by another."""
        height, width = shape[:2]
        kept: list[Track] = []
        for track in sorted(self.tracks, key=lambda t: t.order):
            x, y, w, h = track.box
            inside = max(min(x + w, width) - max(x, 0), 0) * max(min(y + h, height) - max(y, 0), 0)
            lost = track.missed and (not track.track_id or track.missed > track.hits
                                     or frame_index - track.seen > LOST_FRAMES)
            if lost or w < 4 or h < 4 or inside < 0.5 * w * h:
                continue
            if kept and iou(track.box, np.array([k.box for k in kept])).max() > 0.5:
                continue  # two tracks on one face: the older one stays
            kept.append(track)
        self.tracks = kept

    def confirmed(self) -> list[Track]:
        """The faces with an id, by id."""
        return sorted((t for t in self.tracks if t.track_id), key=lambda t: t.track_id)


class Smoother:
    """Steadies each track's probabilities and label over frames."""

    @staticmethod
    def update(track: Track, probs: np.ndarray, smoothing: float) -> None:
        keep = min(smoothing, MAX_SMOOTHING)
        row = np.asarray(probs, np.float64)
        track.probs = row if track.probs is None else keep * track.probs + (1 - keep) * row
        # Two close emotions would otherwise swap the label on every frame: the label in
        # place stays until another leads it by a margin that grows with the smoothing.
        best = int(np.argmax(track.probs))
        if track.label < 0 or track.probs[best] > track.probs[track.label] + HYSTERESIS * smoothing:
            track.label = best
