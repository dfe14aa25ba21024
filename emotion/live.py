"""The live video pipeline: the photo stages of ``emotion.pipeline``, frame after frame, steadily.

One :class:`LivePipeline` per video stream turns each frame into an annotated frame and a list
of :class:`~emotion.pipeline.FaceResult` (with their ``track_id``). It composes shared pieces:

* the frame is read by ``emotion.imageio.load_image``, the loader every entry point uses;
* faces are found by :func:`emotion.pipeline.detect_faces`, as in a photo (on a copy shrunk as
  far as the smallest face wanted allows), every ``detect_every`` frames or, by default, as
  often as a time budget per frame allows;
* between detections, and to keep ids, :class:`emotion.tracking.Tracker` follows the faces
  with optical flow;
* the faces of a frame (up to ``max_reads``, the least recently read first) go to the classifier in one batch (:func:`emotion.pipeline.classify_faces`;
  without the mirror-image average the photo path uses: half the work, and the smoothing does
  the rest), and :class:`emotion.tracking.Smoother` steadies their probabilities and labels.

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
from .common import one_line
from .detect import BlazeFaceDetector, FaceDetector, iou  # noqa: F401 - iou: part of this module's API
from .imageio import ImageError, load_image
from .labels import FACE_SIZE, LABELS
from .pipeline import FaceResult, classify_faces, detect_faces, shrink, smallest_face_px, to_results
from .tracking import Smoother, Tracker

logger = logging.getLogger(__name__)

FLOW_FACE_PX = 24        # optical flow runs on a copy where the smallest wanted face is this wide
# The webcam page lets a viewer ask for faces down to 5 % of a 480-pixel frame: 24 pixels, under
# the photo path's 32 (a photo is analysed once and must be quick; a video detects every few frames).
LIVE_MIN_FACE_PX = 24
MIN_FRAME_SIDE = 24      # frames with a shorter side cannot hold a face: skipped
DARK_LEVEL = 16          # mean grey level below which a frame counts as too dark
# Faces read per frame at most: up to six every frame; a crowd of 13 has each face read every
# third frame or so (about 10 times a second at 30 fps), which keeps its frame cost near a
# few faces' instead of growing with the crowd.
MAX_READS_PER_FRAME = 6
NEW_STREAM_GAP_S = 2.0   # a pause this long between frames starts afresh (new faces, new ids)


@dataclass(frozen=True)
class LiveSettings:
    """What a viewer can change while the video runs."""

    min_face: float = 0.15      # smallest face side, as a fraction of the frame's shorter side
    smoothing: float = 0.6      # 0 = raw per-frame probabilities, towards 1 = steadier, slower
    show_probs: bool = True     # "happy 80%" rather than "happy" on the video
    show_ids: bool = True       # "#1 happy" so the faces on the video match the list beside it
    mirror: bool = False        # flip the picture left-right, as a mirror (selfie view)
    emoji: bool = False         # cover each face with its emotion's emoji (emotion.emoji)
    keypoints: bool = False     # draw each face's 68 landmarks (emotion.keypoints); off: no cost

    def checked(self) -> "LiveSettings":
        """These settings with every value brought into its valid range."""
        return replace(self, min_face=float(np.clip(self.min_face, 0.02, 0.9)),
                       smoothing=float(np.clip(self.smoothing, 0.0, 1.0)))


@dataclass
class LiveFrame:
    """What the pipeline made of one frame."""

    image: np.ndarray | None         # annotated RGB frame; None when the frame was skipped
    faces: list[FaceResult]          # with their track_id; boxes in the (mirrored, if asked) frame
    seconds: float = 0.0             # time spent on the frame
    detected: bool = False           # whether the detector ran on this frame
    dark: bool = False               # the frame is too dark to find faces in
    skipped: str | None = None       # why the frame was skipped, in a few words


def read_frame(frame, color_order: str = "rgb") -> tuple[np.ndarray | None, str | None]:
    """``(rgb, None)`` for a frame the pipeline can use, else ``(None, reason)``: any image array
    ``emotion.load_image`` reads, at least ``MIN_FRAME_SIDE`` pixels on its shorter side."""
    if not isinstance(frame, np.ndarray):
        return None, f"not an image array ({type(frame).__name__})"
    try:
        rgb = load_image(frame, name="frame", color_order=color_order)
    except ImageError as error:
        return None, str(error)
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_FRAME_SIDE:
        return None, f"frame too small ({width}x{height})"
    return rgb, None


class LivePipeline:
    """Frames in, annotated frames and steadily labelled faces out; one per video stream.

    ``detect_every=None`` (the default) runs the detector as often as ``budget_ms``
    per frame allows on average, at least every ``max_detect_every`` frames; an int
    fixes the period. Not thread-safe: one thread feeds it (settings may be changed
    from any thread with :meth:`configure`).
    """

    def __init__(self, classifier, settings: LiveSettings | None = None, detector: FaceDetector | None = None,
                 detect_every: int | None = None, budget_ms: float = 8.0, max_detect_every: int = 6,
                 flip_average: bool = False, confirm_new: bool = True, min_face_px: float = LIVE_MIN_FACE_PX,
                 max_reads: int = MAX_READS_PER_FRAME):
        self.classifier = classifier
        self.detector = detector or BlazeFaceDetector()
        self.settings = (settings or LiveSettings()).checked()
        self.detect_every = detect_every
        self.budget_s = budget_ms / 1000
        self.max_detect_every = max(1, int(max_detect_every))
        self.flip_average = flip_average
        self.min_face_px = min_face_px
        self.max_reads = max(1, int(max_reads))
        self.tracker = Tracker(confirm_new)
        self.smoother = Smoother()
        self.reset()

    @property
    def tracks(self):
        return self.tracker.tracks

    # --- state --------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every face (ids start again at 1) and the timing history."""
        self.tracker.reset()
        self._frame_index = 0
        self._since_detection = 1 << 30  # detect on the first frame
        self._retry = False
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
        self.detector.detect(np.zeros((480, 640, 3), np.uint8))

    def configure(self, **changes) -> LiveSettings:
        """Change settings (any of LiveSettings' fields); safe while frames are processed."""
        settings = replace(self.settings, **changes).checked()
        if settings.keypoints:
            self.landmarks()  # loaded here, by the caller (errors too), rather than stalling a video frame
        self.settings = settings
        return self.settings

    def landmarks(self):
        """The keypoint model, loaded on first use (one per process, shared)."""
        from .keypoints import shared_model

        return shared_model()

    # --- one frame ----------------------------------------------------------------------

    def process(self, frame, color_order: str = "rgb") -> LiveFrame:
        """Detect (or follow), classify, smooth and draw the faces of one frame.

        A frame that cannot be used comes back with ``image=None`` and ``skipped``
        saying why; nothing is raised for bad frames.
        """
        start = time.perf_counter()
        settings = self.settings
        rgb, problem = read_frame(frame, color_order)
        if rgb is None:
            return LiveFrame(None, [], time.perf_counter() - start, skipped=problem)
        if settings.mirror:
            rgb = np.ascontiguousarray(rgb[:, ::-1])
        tracker = self.tracker
        if self._shape != rgb.shape or self._applied is None or self._applied.mirror != settings.mirror:
            # A new size or a flipped view: the faces followed so far are elsewhere now.
            tracker.tracks = []
            tracker.forget_motion()
            self._since_detection = 1 << 30
        elif self._applied.min_face != settings.min_face:
            tracker.forget_motion()  # another flow scale: the corners do not carry over
        self._shape = rgb.shape
        self._applied = settings

        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        smallest = smallest_face_px(grey.shape, settings.min_face, self.min_face_px)
        flow_scale = min(1.0, FLOW_FACE_PX / smallest)
        flow_image = shrink(grey, flow_scale)
        dark = float(flow_image.mean()) < DARK_LEVEL

        tracker.follow(flow_image, flow_scale)
        retry, detected = self._retry, self._retry or self._since_detection >= self.period
        detect_seconds = 0.0
        if detected:
            began = time.perf_counter()
            boxes = np.zeros((0, 4)) if dark else detect_faces(self.detector, rgb, smallest)
            detect_seconds = time.perf_counter() - began
            tracker.match(boxes, self._frame_index, settings.smoothing)
            tracker.seed(flow_image, flow_scale)
            # A face the detector just missed, or a new one to confirm, is looked for again on
            # the next frame (once).
            self._retry = not retry and any(t.missed or not t.track_id for t in tracker.tracks)
            self._since_detection = 0
        self._since_detection += 1
        tracker.drop_lost(grey.shape, self._frame_index)

        # When detection skips frames, a detection frame reads only new faces, which halves
        # the worst frame's time; the others were read on the frame before and are on the next.
        todo = [t for t in tracker.confirmed() if t.probs is None or not detected or self.period == 1]
        if len(todo) > self.max_reads:
            # A crowd: read the faces never read, then those read longest ago. Each face is
            # still read several times a second and the smoothing carries it in between.
            todo = sorted(todo, key=lambda t: (t.probs is not None, t.read))[:self.max_reads]
        if todo:
            probs = classify_faces(self.classifier, grey, np.array([t.box for t in todo]),
                                   flip_average=self.flip_average)
            for track, row in zip(todo, probs):
                self.smoother.update(track, row, settings.smoothing)
                track.read = self._frame_index

        faces = self.faces()
        if settings.keypoints and faces:
            from .keypoints import with_keypoints

            faces = with_keypoints(self.landmarks(), grey, faces)
        image = draw_results(rgb, faces, show_scores=settings.show_probs, show_ids=settings.show_ids,
                             emoji=settings.emoji)
        seconds = time.perf_counter() - start
        self._adapt(detected, detect_seconds, seconds - detect_seconds)
        self._frame_index += 1
        return LiveFrame(image, faces, seconds, detected, dark)

    def faces(self) -> list[FaceResult]:
        """The faces followed now that are confirmed and have been read, by id."""
        tracks = [t for t in self.tracker.confirmed() if t.probs is not None]
        if not tracks:
            return []
        return to_results(np.array([t.box for t in tracks]), np.array([t.probs for t in tracks]),
                          track_ids=[t.track_id for t in tracks], labels=[t.label for t in tracks],
                          names=getattr(self.classifier, "labels", LABELS))

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
    faces: list[FaceResult] = field(default_factory=list)
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
            self._faces: list[FaceResult] = []
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


def frame_labels(faces: list[FaceResult]) -> list[str]:
    """The faces' labels, left to right on the picture: what a frame "says"."""
    return [face.label for face in sorted(faces, key=lambda face: face.box[0])]


class LiveSession:
    """A pipeline, its stats and its run's state for one viewer: what a video callback needs,
    and the one owner of the live run (the page only shows what it holds).

    :meth:`process` never raises: a frame that cannot be used (or a fault in the
    pipeline) is skipped and counted, and the caller shows the original frame.

    The run's state lives here, under one lock, and changes only through
    :meth:`set_running` (the browser's stream started or stopped: streamlit-webrtc's own
    state changes) and :meth:`end` (the stream ended on the server). A run that starts
    counts from zero and its first frame starts afresh (new ids); after a pause of a few
    seconds the faces are looked for afresh. ``run`` numbers the runs; ``played`` is
    free for the page's voice player (what it played last), ``stopped_without_video``
    says whether the last run stopped before any picture arrived.

    ``listener``, when set, is called on the video thread with each processed frame's
    labels, left to right (an empty list when no face is in view), for example an
    ``emotion.speech.Announcer``'s ``observe``; it must return quickly, and its
    errors are logged, never raised into the video.
    """

    def __init__(self, classifier, settings: LiveSettings | None = None, warm_up: bool = True,
                 clock=time.monotonic, **pipeline_options):
        self.pipeline = LivePipeline(classifier, settings, **pipeline_options)
        if warm_up:
            self.pipeline.warm_up()
        self.stats = LiveStats(clock=clock)
        self.clock = clock
        self.listener = None
        # The page's voice player: (caption, number of the last clip it handled, number and
        # sentence of the last one it played).
        self.played = (None, 0, 0, None)
        self._changed = threading.Condition()
        # One page run at a time may talk to streamlit-webrtc for this session (see :meth:`claim`).
        self.streamer_lock = threading.Lock()
        self._view = 0
        self._running = False
        self._playing = False
        self._run = 0
        self._started_at: float | None = None
        self._fresh = True  # the next frame starts afresh
        self._stopped_without_video = False
        self._last_frame: float | None = None

    # --- the run's state ------------------------------------------------------------------

    def set_running(self, running: bool, playing: bool | None = None) -> bool:
        """The browser's stream started (connecting or playing) or stopped; from any thread.
        ``playing``: whether the browser says the video plays (not only connecting; default:
        as ``running``). Returns whether the run started or stopped."""
        with self._changed:
            self._playing = running if playing is None else running and playing
            if running == self._running:
                return False
            self._running = running
            self._fresh = True
            if running:
                self._run += 1
                self._started_at = self.clock()
                self._stopped_without_video = False
                self.stats.reset()
            else:
                self._stopped_without_video = self.stats.snapshot().seconds_since_frame is None
            self._changed.notify_all()
            return True

    def end(self, run: int | None = None) -> None:
        """The stream ended on the server (the browser went away, or stopped): the run is over.
        With ``run``, only if that run is still the current one: a stream that ends late
        must not end the next one."""
        with self._changed:
            if run is not None and run != self._run:
                return
        self.set_running(False)

    @property
    def running(self) -> bool:
        return self._running

    @property
    def playing(self) -> bool:
        """Whether the browser has said that the video plays (after connecting)."""
        return self._playing

    @property
    def run(self) -> int:
        """The number of the current (or last) run; 0 before the first."""
        return self._run

    @property
    def started_at(self) -> float | None:
        """When the current (or last) run started, on ``clock``."""
        return self._started_at

    @property
    def stopped_without_video(self) -> bool:
        return self._stopped_without_video

    def claim(self) -> int:
        """A new view of this session (a page's script run) takes over from the one before:
        that one's :meth:`wait` returns False at once. Returns the new view's number."""
        with self._changed:
            self._view += 1
            self._changed.notify_all()
            return self._view

    def wait(self, timeout: float, run: int, view: int | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking at once when the run's state changes or
        another view claims the session; whether run ``run`` is still going and (with
        ``view``) still this view's to show."""
        def going() -> bool:
            return self._running and self._run == run and (view is None or view == self._view)

        with self._changed:
            if going():
                self._changed.wait(timeout)
            return going()

    @property
    def classifier(self):
        return self.pipeline.classifier

    def configure(self, **changes) -> LiveSettings:
        return self.pipeline.configure(**changes)

    def process(self, frame, color_order: str = "rgb") -> np.ndarray | None:
        """The annotated RGB frame, or None when the frame was skipped."""
        now = time.monotonic()
        if self._fresh:
            self._fresh = False
            self.pipeline.reset()
        elif self._last_frame is not None and now - self._last_frame > NEW_STREAM_GAP_S:
            self.pipeline.reset()  # after a long pause the faces are elsewhere: find them afresh
        self._last_frame = now
        try:
            result = self.pipeline.process(frame, color_order)
        except Exception as error:  # noqa: BLE001 - a live view must never die on one frame
            logger.warning("live frame skipped after an error", exc_info=True)
            self.pipeline.reset()
            text = one_line(error, limit=200)
            name = type(error).__name__
            result = LiveFrame(None, [], skipped=name if text == name else f"{name}: {text}")
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
