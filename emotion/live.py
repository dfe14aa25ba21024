"""The live video pipeline: faces found, followed and read frame after frame, steadily.

One :class:`LivePipeline` per video stream turns each frame into an annotated frame
and a list of :class:`LiveFace`. It is built for live video on a small CPU:

* detection runs on a downscaled grey copy, shrunk so that the smallest face looked
  for is about 24 pixels (the Haar cascade's window), and the boxes are mapped back;
* detection runs every ``detect_every`` frames, or, by default, as often as a time
  budget per frame allows; between detections faces are followed with sparse
  optical flow (Lucas-Kanade), which costs a fraction of a detection;
* detections are matched to the faces already followed by box overlap (IoU), so
  each face keeps a stable id, and one missed detection does not drop it;
* all faces of a frame go to the classifier in one batch (without the mirror-image
  average the photo path uses: half the work, and the smoothing does the rest);
* each face's probabilities are smoothed over time (an exponential moving average
  whose weight on the past is ``smoothing``), and its label changes only when another
  emotion leads by a margin (hysteresis), so labels do not flicker.

:class:`LiveStats` hands results from the video thread to whoever shows them,
under a lock; :class:`LiveSession` ties the two together for one viewer and never
raises on a bad frame: the frame is skipped and the reason kept.

>>> session = LiveSession(EmotionClassifier.load())
>>> annotated = session.process(rgb_frame)      # None when the frame was skipped
>>> session.stats.snapshot().faces[0].label
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from .annotate import draw_results
from .detect import FaceDetector, HaarDetector
from .labels import FACE_SIZE, LABELS

logger = logging.getLogger(__name__)

DETECT_FACE_PX = 24      # the smallest wanted face, in pixels of the image detection runs on
MIN_FRAME_SIDE = 24      # frames with a shorter side cannot hold a face: skipped
DARK_LEVEL = 16          # mean grey level below which a frame counts as too dark
MATCH_IOU = 0.3          # a detection continues a face when their boxes overlap this much
LOST_FRAMES = 24         # a face no detection has confirmed for this many frames is dropped
MAX_SMOOTHING = 0.95     # the weight on the past never reaches 1 (labels would freeze)
HYSTERESIS = 0.1         # at full smoothing, another emotion must lead by this much to take the label
NEW_STREAM_GAP_S = 2.0   # a pause this long between frames starts afresh (new faces, new ids)


@dataclass(frozen=True)
class LiveSettings:
    """What a viewer can change while the video runs."""

    min_face: float = 0.15      # smallest face side, as a fraction of the frame's shorter side
    smoothing: float = 0.6      # 0 = raw per-frame probabilities, towards 1 = steadier, slower
    show_probs: bool = True     # "happy 80%" rather than "happy" on the video
    show_ids: bool = True       # "#1 happy" so the faces on the video match the list beside it
    mirror: bool = False        # flip the picture left-right, as a mirror (selfie view)

    def checked(self) -> "LiveSettings":
        """These settings with every value brought into its valid range."""
        return replace(self, min_face=float(np.clip(self.min_face, 0.02, 0.9)),
                       smoothing=float(np.clip(self.smoothing, 0.0, 1.0)))


@dataclass
class LiveFace:
    """One face in a frame; ``box``, ``label`` and ``score`` as in :class:`FaceResult`."""

    track_id: int
    box: tuple[int, int, int, int]   # x, y, w, h in the pixels of the (mirrored, if asked) frame
    label: str                       # the leading emotion (held while another leads only narrowly)
    score: float                     # its smoothed probability
    probs: dict[str, float]          # smoothed, in LABELS order

    def to_dict(self) -> dict:
        return {"id": self.track_id, "box": list(self.box), "label": self.label,
                "score": round(self.score, 4), "probs": {k: round(v, 4) for k, v in self.probs.items()}}


@dataclass
class LiveFrame:
    """What the pipeline made of one frame."""

    image: np.ndarray | None         # annotated RGB frame; None when the frame was skipped
    faces: list[LiveFace]
    seconds: float = 0.0             # time spent on the frame
    detected: bool = False           # whether the detector ran on this frame
    dark: bool = False               # the frame is too dark to find faces in
    skipped: str | None = None       # why the frame was skipped, in a few words


@dataclass
class _Track:
    order: int                       # creation order: of two tracks on one face, the older stays
    box: np.ndarray                  # float64 x, y, w, h in frame pixels
    track_id: int = 0                # the id shown, given once the face is confirmed (0 before)
    probs: np.ndarray | None = None  # smoothed probabilities, None until first classified
    label: int = -1                  # index of the label shown (held until another clearly leads)
    missed: int = 0                  # detections in a row without a match
    hits: int = 1                    # detections that matched it
    seen: int = 0                    # the frame it was last detected in
    points: np.ndarray | None = None  # float32 (K, 1, 2) features in the detection image


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes (N, 4) and (M, 4) as x, y, w, h -> (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    width = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def as_rgb(frame, color_order: str = "rgb") -> tuple[np.ndarray | None, str | None]:
    """``(rgb, None)`` for a frame the pipeline can use, else ``(None, reason)``.

    Takes uint8 grey (H, W) or (H, W, 1), RGB/BGR (H, W, 3) and RGBA/BGRA (H, W, 4).
    """
    if not isinstance(frame, np.ndarray):
        return None, f"not an image array ({type(frame).__name__})"
    if frame.dtype != np.uint8:
        return None, f"unsupported pixel type {frame.dtype}"
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        return None, f"unsupported frame shape {frame.shape}"
    height, width = frame.shape[:2]
    if min(height, width) < MIN_FRAME_SIDE:
        return None, f"frame too small ({width}x{height})"
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB), None
    bgr = color_order.lower() == "bgr"
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB if bgr else cv2.COLOR_RGBA2RGB), None
    return (cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if bgr else frame), None


class LivePipeline:
    """Frames in, annotated frames and steadily labelled faces out; one per video stream.

    ``detect_every=None`` (the default) runs the detector as often as ``budget_ms``
    per frame allows on average, at least every ``max_detect_every`` frames; an int
    fixes the period. Not thread-safe: one thread feeds it (settings may be changed
    from any thread with :meth:`configure`).
    """

    def __init__(self, classifier, settings: LiveSettings | None = None, detector: FaceDetector | None = None,
                 detect_every: int | None = None, budget_ms: float = 8.0, max_detect_every: int = 6,
                 flip_average: bool = False, confirm_new: bool = True):
        self.classifier = classifier
        # The Haar detector below is told the smallest face in pixels of the image it sees.
        self._own_detector = detector is None
        self.detector = detector or HaarDetector(scale_factor=1.15, min_neighbors=4, min_face=0.0,
                                                 max_side=1 << 30)
        self.settings = (settings or LiveSettings()).checked()
        self.detect_every = detect_every
        self.budget_s = budget_ms / 1000
        self.max_detect_every = max(1, int(max_detect_every))
        self.flip_average = flip_average
        # A new face is shown once a second detection (on the next frame) confirms it, so a
        # one-frame false alarm never appears; a single picture has no next frame: no confirming.
        self.confirm_new = confirm_new
        self.reset()

    # --- state --------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every face (ids start again at 1) and the timing history."""
        self.tracks: list[_Track] = []
        self._next_id = 1
        self._created = 0
        self._frame_index = 0
        self._since_detection = 1 << 30  # detect on the first frame
        self._retry = False
        self._prev_small: np.ndarray | None = None
        self._shape: tuple | None = None
        self._applied: LiveSettings | None = None
        self._detect_cost: float | None = None  # EMA seconds of the detector
        self._rest_cost: float | None = None    # EMA seconds of everything else
        self.period = self.detect_every or 1     # the detection period in use

    def warm_up(self) -> None:
        """Run the classifier and detector once on blank input, so that the first live frame
        does not pay for building the model's graph (many seconds on a busy small CPU,
        and streamlit-webrtc gives up on a frame after ten)."""
        self.classifier.predict_proba(np.zeros((1, FACE_SIZE, FACE_SIZE), np.uint8),
                                      flip_average=self.flip_average)
        self.detector.detect(np.zeros((2 * DETECT_FACE_PX, 2 * DETECT_FACE_PX), np.uint8))

    def configure(self, **changes) -> LiveSettings:
        """Change settings (any of LiveSettings' fields); safe while frames are processed."""
        self.settings = replace(self.settings, **changes).checked()
        return self.settings

    # --- one frame ----------------------------------------------------------------------

    def process(self, frame, color_order: str = "rgb") -> LiveFrame:
        """Detect (or follow), classify, smooth and draw the faces of one frame.

        A frame that cannot be used comes back with ``image=None`` and ``skipped``
        saying why; nothing is raised for bad frames.
        """
        start = time.perf_counter()
        settings = self.settings
        rgb, problem = as_rgb(frame, color_order)
        if rgb is None:
            return LiveFrame(None, [], time.perf_counter() - start, skipped=problem)
        if settings.mirror:
            rgb = rgb[:, ::-1]
        rgb = np.ascontiguousarray(rgb)
        if self._shape != rgb.shape or self._applied is None or self._applied.mirror != settings.mirror:
            # A new size or a flipped view: the faces followed so far are elsewhere now.
            self.tracks, self._prev_small, self._since_detection = [], None, 1 << 30
        self._shape = rgb.shape

        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        scale = min(1.0, DETECT_FACE_PX / (settings.min_face * min(grey.shape)))
        small = grey if scale >= 1.0 else cv2.resize(
            grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))),
            interpolation=cv2.INTER_AREA)
        if self._applied is not None and self._applied.min_face != settings.min_face:
            self._prev_small = None  # another detection scale: the flow points do not carry over
            for track in self.tracks:
                track.points = None
        self._applied = settings
        dark = float(small.mean()) < DARK_LEVEL

        self._follow(small, scale)
        retry, detected = self._retry, self._retry or self._since_detection >= self.period
        detect_seconds = 0.0
        if detected:
            began = time.perf_counter()
            boxes = np.zeros((0, 4)) if dark else self._detect(small, scale, settings.min_face * min(grey.shape))
            detect_seconds = time.perf_counter() - began
            self._match(boxes, settings.smoothing)
            self._seed_points(small, scale)
            # A face the detector just missed, or a new one to confirm, is looked for again on
            # the next frame (once).
            self._retry = not retry and any(t.missed or not t.track_id for t in self.tracks)
            self._since_detection = 0
        self._since_detection += 1
        self._prev_small = small
        self._drop_lost(grey.shape)

        # When detection skips frames, a detection frame reads only new faces, which halves
        # the worst frame's time; the others were read on the frame before and are on the next.
        todo = [t for t in self.tracks if t.track_id and (t.probs is None or not detected or self.period == 1)]
        self._classify(grey, todo, settings.smoothing)

        faces = self.faces()
        image = draw_results(rgb, faces, show_scores=settings.show_probs, show_ids=settings.show_ids)
        seconds = time.perf_counter() - start
        self._adapt(detected, detect_seconds, seconds - detect_seconds)
        self._frame_index += 1
        return LiveFrame(image, faces, seconds, detected, dark)

    def faces(self) -> list[LiveFace]:
        """The faces followed now that are confirmed and have been read, by id."""
        faces = []
        for track in sorted(self.tracks, key=lambda t: t.track_id):
            if not track.track_id or track.probs is None:
                continue
            faces.append(LiveFace(track.track_id, tuple(int(round(v)) for v in track.box), LABELS[track.label],
                                  float(track.probs[track.label]), dict(zip(LABELS, map(float, track.probs)))))
        return faces

    # --- the steps ----------------------------------------------------------------------

    def _detect(self, small: np.ndarray, scale: float, min_side: float) -> np.ndarray:
        boxes = np.asarray(self.detector.detect(small), np.float64).reshape(-1, 4) / scale
        if not self._own_detector:  # another detector does not know the smallest face wanted
            boxes = boxes[np.minimum(boxes[:, 2], boxes[:, 3]) >= 0.8 * min_side]
        return boxes

    def _match(self, boxes: np.ndarray, smoothing: float) -> None:
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
            track.missed, track.hits, track.seen = 0, track.hits + 1, self._frame_index
            self._confirm(track)
        for i, track in enumerate(self.tracks):
            if i not in matched_tracks:
                track.missed += 1
        for j, box in enumerate(boxes):
            if j not in matched_boxes:
                self._created += 1
                track = _Track(self._created, box.astype(np.float64), seen=self._frame_index)
                self.tracks.append(track)
                self._confirm(track)

    def _confirm(self, track: _Track) -> None:
        """Give a face its id once it has been detected often enough to be believed."""
        if not track.track_id and track.hits >= (2 if self.confirm_new else 1):
            track.track_id = self._next_id
            self._next_id += 1

    def _seed_points(self, small: np.ndarray, scale: float) -> None:
        """Corners inside each face (in the detection image) for the flow to follow."""
        for track in self.tracks:
            x, y, w, h = track.box * scale
            mask = np.zeros(small.shape, np.uint8)
            x0, y0 = max(int(x + 0.2 * w), 0), max(int(y + 0.15 * h), 0)
            x1, y1 = min(int(x + 0.8 * w), small.shape[1]), min(int(y + 0.9 * h), small.shape[0])
            if x1 - x0 < 4 or y1 - y0 < 4:
                track.points = None
                continue
            mask[y0:y1, x0:x1] = 255
            track.points = cv2.goodFeaturesToTrack(small, maxCorners=20, qualityLevel=0.01, minDistance=3,
                                                   mask=mask)

    def _follow(self, small: np.ndarray, scale: float) -> None:
        """Move each face by the median optical flow of its points since the last frame."""
        if self._prev_small is None or self._prev_small.shape != small.shape:
            return
        for track in self.tracks:
            if track.points is None or len(track.points) < 3:
                continue
            moved, status, _ = cv2.calcOpticalFlowPyrLK(self._prev_small, small, track.points, None,
                                                        winSize=(15, 15), maxLevel=2)
            good = status.reshape(-1) == 1
            if good.sum() < 3:
                track.points = None
                continue
            shift = np.median((moved - track.points).reshape(-1, 2)[good], axis=0) / scale
            track.box[:2] += shift
            track.points = moved[good].reshape(-1, 1, 2)

    def _drop_lost(self, shape: tuple[int, int]) -> None:
        """Forget faces lost (missed by the detector more often than found, or not found for a
        while, or missed before being confirmed: a false alarm), moved out of the frame, or
        doubled by another."""
        height, width = shape[:2]
        kept: list[_Track] = []
        for track in sorted(self.tracks, key=lambda t: t.order):
            x, y, w, h = track.box
            inside = max(min(x + w, width) - max(x, 0), 0) * max(min(y + h, height) - max(y, 0), 0)
            lost = track.missed and (not track.track_id or track.missed > track.hits
                                     or self._frame_index - track.seen > LOST_FRAMES)
            if lost or w < 4 or h < 4 or inside < 0.5 * w * h:
                continue
            if kept and iou(track.box, np.array([k.box for k in kept])).max() > 0.5:
                continue  # two tracks on one face: the older one stays
            kept.append(track)
        self.tracks = kept

    def _classify(self, grey: np.ndarray, tracks: list[_Track], smoothing: float) -> None:
        if not tracks:
            return
        height, width = grey.shape
        crops = np.empty((len(tracks), FACE_SIZE, FACE_SIZE), np.uint8)
        for i, track in enumerate(tracks):
            x, y, w, h = np.round(track.box).astype(int)
            crop = grey[max(y, 0):min(y + h, height), max(x, 0):min(x + w, width)]
            crops[i] = cv2.resize(crop, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
        probs = self.classifier.predict_proba(crops, flip_average=self.flip_average)
        keep = min(smoothing, MAX_SMOOTHING)
        for track, row in zip(tracks, probs):
            track.probs = row.astype(np.float64) if track.probs is None else keep * track.probs + (1 - keep) * row
            # Two close emotions would otherwise swap the label on every frame: the label in
            # place stays until another leads it by a margin that grows with the smoothing.
            best = int(np.argmax(track.probs))
            if track.label < 0 or track.probs[best] > track.probs[track.label] + HYSTERESIS * smoothing:
                track.label = best

    def _adapt(self, detected: bool, detect_seconds: float, rest_seconds: float) -> None:
        """Pick the detection period that keeps the average frame within the budget."""
        if self.detect_every:
            self.period = self.detect_every
            return
        ema = lambda old, new: new if old is None else 0.8 * old + 0.2 * new  # noqa: E731
        if detected:
            self._detect_cost = ema(self._detect_cost, detect_seconds)
        self._rest_cost = ema(self._rest_cost, rest_seconds)
        if self._detect_cost is None:
            return
        spare = self.budget_s - self._rest_cost
        if spare <= 0 or self._detect_cost >= spare * self.max_detect_every:
            self.period = self.max_detect_every
        else:
            self.period = max(math.ceil(self._detect_cost / spare), 1)


@dataclass
class LiveSnapshot:
    """A consistent copy of what :class:`LiveStats` knows, for showing."""

    frames: int = 0                  # frames processed since the stream started
    frames_with_faces: int = 0
    faces_seen: int = 0              # different faces (ids) so far
    skipped: int = 0                 # frames that could not be used
    problem: str | None = None       # why the last one was skipped
    dark: bool = False               # the latest frame was too dark
    fps: float = 0.0                 # frames processed per second, over the last seconds
    ms_per_frame: float = 0.0        # average pipeline time per frame, recent frames
    detect_period: int = 1           # the detector runs every this many frames
    faces: list[LiveFace] = field(default_factory=list)
    history: list[tuple[float, dict[str, float]]] = field(default_factory=list)  # (seconds ago, probs)
    seconds_since_frame: float | None = None  # None before the first frame
    running_seconds: float = 0.0     # since the first frame of this stream


class LiveStats:
    """What the video thread found, handed to the page's thread under a lock.

    ``history`` keeps the probabilities of the main (largest) face a few times a
    second over the last ``history_seconds``, for a chart.
    """

    def __init__(self, history_seconds: float = 60.0, fps_window: float = 2.0, sample_every: float = 0.25,
                 clock=time.monotonic):
        self.history_seconds = history_seconds
        self.fps_window = fps_window
        self.sample_every = sample_every
        self.clock = clock
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._frames = self._with_faces = self._skipped = 0
            self._ids: set[int] = set()
            self._problem: str | None = None
            self._dark = False
            self._times: deque[float] = deque()
            self._costs: deque[float] = deque(maxlen=30)
            self._history: deque[tuple[float, dict[str, float]]] = deque()
            self._faces: list[LiveFace] = []
            self._first: float | None = None
            self._last: float | None = None
            self._period = 1

    def record(self, result: LiveFrame, detect_period: int = 1) -> None:
        """Count one frame (from the video thread)."""
        now = self.clock()
        with self._lock:
            self._last = now
            if self._first is None:
                self._first = now
            if result.skipped:
                self._skipped += 1
                self._problem = result.skipped
                return
            self._frames += 1
            self._with_faces += bool(result.faces)
            self._ids.update(face.track_id for face in result.faces)
            self._dark = result.dark
            self._faces = list(result.faces)
            self._period = detect_period
            self._costs.append(result.seconds)
            self._times.append(now)
            while self._times and now - self._times[0] > self.fps_window:
                self._times.popleft()
            if result.faces and (not self._history or now - self._history[-1][0] >= self.sample_every):
                main = max(result.faces, key=lambda f: f.box[2] * f.box[3])
                self._history.append((now, dict(main.probs)))
            while self._history and now - self._history[0][0] > self.history_seconds:
                self._history.popleft()

    def snapshot(self) -> LiveSnapshot:
        now = self.clock()
        with self._lock:
            times = [t for t in self._times if now - t <= self.fps_window]
            span = min(self.fps_window, now - self._first) if self._first is not None else 0.0
            fps = len(times) / span if span > 0.25 else 0.0
            return LiveSnapshot(
                frames=self._frames, frames_with_faces=self._with_faces, faces_seen=len(self._ids),
                skipped=self._skipped, problem=self._problem, dark=self._dark, fps=fps,
                ms_per_frame=1000 * float(np.mean(self._costs)) if self._costs else 0.0,
                detect_period=self._period, faces=list(self._faces),
                history=[(now - t, probs) for t, probs in self._history if now - t <= self.history_seconds],
                seconds_since_frame=None if self._last is None else now - self._last,
                running_seconds=0.0 if self._first is None else now - self._first)


def frame_labels(faces: list[LiveFace]) -> list[str]:
    """The faces' labels, left to right on the picture: what a frame "says"."""
    return [face.label for face in sorted(faces, key=lambda face: face.box[0])]


class LiveSession:
    """A pipeline and its stats for one viewer: what a video callback needs.

    :meth:`process` never raises: a frame that cannot be used (or a fault in the
    pipeline) is skipped and counted, and the caller shows the original frame.
    :meth:`begin` (Start pressed) and :meth:`end` (the video stream ended) make the next
    frame start a new run (new ids, stats from zero); ``ended`` says whether the stream
    has ended since the last :meth:`begin`. After a pause of a few seconds the faces are
    looked for afresh.

    ``listener``, when set, is called on the video thread with each processed frame's
    labels, left to right (an empty list when no face is in view), for example an
    ``emotion.speech.Announcer``'s ``observe``; it must return quickly, and its
    errors are logged, never raised into the video.
    """

    def __init__(self, classifier, settings: LiveSettings | None = None, warm_up: bool = True,
                 **pipeline_options):
        self.pipeline = LivePipeline(classifier, settings, **pipeline_options)
        if warm_up:
            self.pipeline.warm_up()
        self.stats = LiveStats()
        self.listener = None
        self._ended = False
        self.ended = False
        self._last_frame: float | None = None

    @property
    def classifier(self):
        return self.pipeline.classifier

    def configure(self, **changes) -> LiveSettings:
        return self.pipeline.configure(**changes)

    def begin(self) -> None:
        """A new run is starting (from any thread): counts start from zero now, and the
        first frame starts afresh."""
        self._ended, self.ended = True, False
        self.stats.reset()

    def end(self) -> None:
        """The stream stopped (from any thread): the next frame begins a new run."""
        self._ended = self.ended = True

    def process(self, frame, color_order: str = "rgb") -> np.ndarray | None:
        """The annotated RGB frame, or None when the frame was skipped."""
        now = time.monotonic()
        if self._ended:
            self._ended = False
            self.pipeline.reset()
            self.stats.reset()
        elif self._last_frame is not None and now - self._last_frame > NEW_STREAM_GAP_S:
            self.pipeline.reset()  # after a long pause the faces are elsewhere: find them afresh
        self._last_frame = now
        try:
            result = self.pipeline.process(frame, color_order)
        except Exception as error:  # noqa: BLE001 - a live view must never die on one frame
            logger.warning("live frame skipped after an error", exc_info=True)
            self.pipeline.reset()
            text = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            result = LiveFrame(None, [], skipped=f"{type(error).__name__}: {text}" if text else type(error).__name__)
        self.stats.record(result, self.pipeline.period)
        listener = self.listener  # read once: the page may swap it from another thread
        if listener is not None and not result.skipped:
            try:
                listener(frame_labels(result.faces))
            except Exception:  # noqa: BLE001 - a voice problem must not cost a video frame
                logger.warning("live listener failed", exc_info=True)
        return result.image

    def video_frame_callback(self, frame):
        """For streamlit-webrtc: an ``av.VideoFrame`` in, the annotated one out (the same
        frame when it was skipped). Runs on the video thread; touches no Streamlit."""
        try:
            rgb = frame.to_ndarray(format="rgb24")
        except Exception as error:  # noqa: BLE001 - an undecodable frame is skipped
            logger.warning("undecodable live frame skipped", exc_info=True)
            self.stats.record(LiveFrame(None, [], skipped=f"undecodable frame ({type(error).__name__})"))
            return frame
        image = self.process(rgb)
        if image is None:
            return frame
        import av  # streamlit-webrtc's dependency; only needed here

        return av.VideoFrame.from_ndarray(image, format="rgb24")
