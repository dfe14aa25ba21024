"""Personal datasets: face crops saved from a camera or a video under ``DATASET/<label>/``.

A :class:`Capturer` is handed frames (RGB arrays) one by one, from any source: the Capture
page's WebRTC video thread, a local camera, a video file. For each frame, once the minimum gap
since the last save has passed, it finds the largest face with the pipeline's own detection
and crop (:func:`emotion.pipeline.detect_faces`, :func:`emotion.pipeline.crop_faces`) and saves
it, as the model sees faces (grey, 48x48, framed as FER2013 frames them), until the count is
reached. The gap (seconds, and/or frames) keeps the crops from being near copies of each other.

>>> capturer = Capturer("datasets/mine", "smile", count=200, gap_s=0.5)
>>> for rgb in frames:
...     capturer.offer(rgb)            # the saved file, or None
...     if capturer.done: break

Label names are one safe file name (:func:`check_label`), and every write is checked to stay
inside the dataset folder, symlinks resolved. Files are written atomically and named by time
and a random part, so two captures into the same folder never overwrite each other.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from .access import check_name
from .common import one_line, write_atomically
from .data import IMAGE_SUFFIXES
from .labels import FACE_SIZE
from .pipeline import crop_faces, detect_faces, smallest_face_px

# A face is saved only when it is at least this share of the frame's shorter side and at least
# FACE_SIZE pixels: a smaller one would be blown up into the 48x48 crop, and a face that small
# in a webcam picture is someone in the background, not the person capturing.
CAPTURE_MIN_FACE = 0.1
PREVIEW = 8          # crops kept for the preview strip
MAX_COUNT = 100_000  # more crops than anyone captures by hand: a typo


class CaptureError(ValueError):
    """A capture cannot start or go on; the message says why in one line."""


def check_label(label: str) -> str:
    """``label`` as a folder name inside a dataset (lower case), or CaptureError in one line:
    empty names, path separators, ``..``, control characters, leading dots or dashes and names
    over 64 characters are refused (:func:`emotion.access.check_name`)."""
    try:
        return check_name(label, "label").lower()
    except ValueError as error:
        raise CaptureError(one_line(error)) from None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def label_folder(dataset: str | os.PathLike, label: str) -> Path:
    """``dataset/<label>``, checked: the label is a safe name, and the folder, with every symlink
    resolved, lies directly inside the dataset's real folder (a symlinked label folder pointing
    elsewhere is refused)."""
    name = check_label(label)
    root = Path(os.path.realpath(os.fspath(dataset)))
    folder = Path(os.path.realpath(root / name))
    if folder.parent != root or not _inside(folder, root):
        raise CaptureError(f"the label folder {name!r} leads outside the dataset {root}; nothing was written")
    return folder


def image_files(folder: Path) -> list[Path]:
    """The images of one label folder (not the temporary files of a write in progress)."""
    try:
        return sorted(p for p in folder.iterdir()
                      if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".tmp-"))
    except (FileNotFoundError, NotADirectoryError):
        return []


def label_counts(dataset: str | os.PathLike) -> dict[str, int]:
    """How many images each label of a dataset holds, by label name (empty when the dataset
    does not exist yet). Folders that are not label names are left out."""
    root = Path(dataset)
    if not root.is_dir():
        return {}
    counts = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            name = check_label(folder.name)
        except CaptureError:
            continue
        counts[name] = len(image_files(folder))
    return counts


def delete_label(dataset: str | os.PathLike, label: str) -> int:
    """Delete one label's images (and its folder, once empty); returns how many were deleted.
    Only image files directly in ``dataset/<label>/`` are removed, nothing else."""
    folder = label_folder(dataset, label)
    files = image_files(folder)
    for file in files:
        file.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # missing, or something else is in it: left as it is
    return len(files)


def crop_name(label: str, now: datetime | None = None) -> str:
    """A file name no other capture makes: the label, the time to the microsecond, and 48
    random bits (two captures in the same microsecond still differ)."""
    now = now or datetime.now(timezone.utc)
    return f"{label}-{now:%Y%m%d-%H%M%S-%f}-{uuid.uuid4().hex[:12]}.png"


def largest_face(detector, rgb: np.ndarray, min_face: float = CAPTURE_MIN_FACE) -> np.ndarray | None:
    """The uint8 48x48 grey crop of the largest face in ``rgb`` at least ``min_face`` of its
    shorter side (and FACE_SIZE pixels) wide, cut as every photo's faces are; None without one."""
    boxes = detect_faces(detector, rgb, smallest_face_px(rgb.shape, min_face, FACE_SIZE))
    if len(boxes) == 0:
        return None
    box = boxes[np.argmax(boxes[:, 2] * boxes[:, 3])]
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return crop_faces(grey, box[None])[0]


def save_png(path: Path, image: np.ndarray) -> Path:
    """``image`` written atomically as a PNG at ``path``."""
    def write(temp: Path) -> None:
        ok, data = cv2.imencode(".png", image)
        if not ok:
            raise OSError(f"{path.name} could not be encoded as PNG")
        temp.write_bytes(data.tobytes())

    return write_atomically(path, write)


@dataclass(frozen=True)
class CaptureStatus:
    """A capture's progress, as one consistent snapshot."""

    label: str
    folder: Path
    saved: int
    count: int
    frames: int                 # frames offered since the start
    frames_with_face: int       # of those looked at for a face, how many had one
    started: bool
    paused: bool
    done: bool
    problem: str | None = None  # the last save that failed, in one line
    recent: list = field(default_factory=list)  # the last crops, newest last


class Capturer:
    """Saves the largest face of the frames it is offered, under ``dataset/<label>/``, at least
    ``gap_s`` seconds and ``gap_frames`` frames apart, until ``count`` crops are saved.

    Nothing is saved before :meth:`start` (``started=True`` starts at once); :meth:`pause`
    and :meth:`resume` hold and continue it. :meth:`offer` may be called from one thread (the
    video's) while another reads :meth:`status` or pauses: the state is kept under a lock.
    The detector is this capturer's own (a detector is not safe to share between threads).
    """

    def __init__(self, dataset: str | os.PathLike, label: str, count: int, gap_s: float = 0.5,
                 gap_frames: int = 0, detector=None, started: bool = False, min_face: float = CAPTURE_MIN_FACE,
                 keep: int = PREVIEW, clock=time.monotonic):
        try:
            count, gap_s, gap_frames = int(count), float(gap_s), int(gap_frames)
        except (TypeError, ValueError):
            raise CaptureError("the count, gap and frame gap must be numbers") from None
        if not 1 <= count <= MAX_COUNT:
            raise CaptureError(f"the number of images must be from 1 to {MAX_COUNT:,}")
        if not (gap_s >= 0 and np.isfinite(gap_s)) or gap_frames < 0:
            raise CaptureError("the gap between saves cannot be negative")
        self.label = check_label(label)
        self.dataset = Path(dataset)
        self.folder = label_folder(dataset, self.label)
        self.count, self.gap_s, self.gap_frames, self.min_face = count, gap_s, gap_frames, min_face
        if detector is None:
            from .detect import make_detector

            detector = make_detector()
        self.detector = detector
        self.clock = clock
        self._lock = threading.Lock()
        self._recent: deque = deque(maxlen=keep)
        self._saved_files: list[Path] = []
        self._started, self._paused = False, False
        self._frames = self._looked = self._with_face = 0
        self._last_time: float | None = None
        self._last_frame: int | None = None
        self._problem: str | None = None
        if started:
            self.start()

    # --- control, from any thread -------------------------------------------------------

    def start(self) -> None:
        """From now on faces are saved (the folder is made on the first save)."""
        with self._lock:
            self._started, self._paused = True, False

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    @property
    def saved(self) -> int:
        return len(self._saved_files)

    @property
    def saved_files(self) -> list[Path]:
        with self._lock:
            return list(self._saved_files)

    @property
    def done(self) -> bool:
        return len(self._saved_files) >= self.count

    def status(self) -> CaptureStatus:
        with self._lock:
            return CaptureStatus(self.label, self.folder, len(self._saved_files), self.count, self._frames,
                                 self._with_face, self._started, self._paused, self.done, self._problem,
                                 list(self._recent))

    # --- frames, from one thread ----------------------------------------------------------

    def _due(self, now: float) -> bool:
        if not self._started or self._paused or self.done:
            return False
        if self._last_time is not None and now - self._last_time < self.gap_s:
            return False
        return self._last_frame is None or self._frames - self._last_frame >= self.gap_frames

    def offer(self, rgb: np.ndarray, now: float | None = None) -> Path | None:
        """Look at one RGB frame; returns the crop's file when one was saved. ``now`` is the
        frame's time in seconds (a video's own clock); by default ``clock()``. Faults are kept
        in :attr:`CaptureStatus.problem`, never raised: a video must not die on one frame."""
        now = self.clock() if now is None else float(now)
        with self._lock:
            self._frames += 1
            if not self._due(now):
                return None
            self._looked += 1
        try:
            crop = largest_face(self.detector, np.ascontiguousarray(rgb), self.min_face)
        except Exception as error:  # noqa: BLE001 - an odd frame is skipped, and said
            with self._lock:
                self._problem = f"a frame could not be used ({type(error).__name__}: {one_line(error, 160)})"
            return None
        if crop is None:
            return None
        with self._lock:
            self._with_face += 1
            if not self._due(now):  # paused, or done, while the face was looked for
                return None
        try:
            # Checked again at every save: the label folder might have been swapped for a link.
            folder = label_folder(self.dataset, self.label)
            path = save_png(folder / crop_name(self.label), crop)
        except (OSError, CaptureError) as error:
            with self._lock:
                self._problem = f"a crop could not be saved: {one_line(error, 200)}"
            return None
        with self._lock:
            self._saved_files.append(path)
            self._recent.append(crop)
            self._last_time, self._last_frame = now, self._frames
            self._problem = None
        return path


# --- frame sources for the command line -----------------------------------------------------


def video_frames(path: str | os.PathLike):
    """(seconds, RGB frame) of a video file, one at a time (never the whole video in memory),
    read by ``emotion.video.read_frames``; a file that is not a readable video raises
    CaptureError in one line."""
    from .video import VideoError, read_frames

    try:
        for frame in read_frames(path):
            yield frame.time_s, frame.rgb
    except VideoError as error:
        raise CaptureError(one_line(error)) from None


def camera_frames(index: int = 0):
    """(seconds, RGB frame) from a local camera through OpenCV, until it stops giving frames;
    CaptureError in one line, at once, when there is no such camera."""
    camera = cv2.VideoCapture(int(index))
    if not camera.isOpened():
        camera.release()
        raise CaptureError(f"no camera {index} could be opened on this computer")

    def frames():
        try:
            while True:
                ok, bgr = camera.read()
                if not ok:
                    return
                yield time.monotonic(), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        finally:
            camera.release()

    return frames()


class CaptureFeed:
    """What a live video's frame callback needs (the Capture page's streamlit-webrtc video
    thread): every frame goes to the current :class:`Capturer`, when there is one; without
    one (before Start, after Stop) frames are only counted. The page swaps ``capturer`` from
    its own thread; the callback reads it once per frame."""

    def __init__(self):
        self.capturer: Capturer | None = None
        self.frames = 0
        self.last_frame_at: float | None = None
        # One page run at a time may talk to streamlit-webrtc for this session.
        self.streamer_lock = threading.Lock()

    def offer(self, rgb: np.ndarray) -> Path | None:
        self.frames += 1
        self.last_frame_at = time.monotonic()
        capturer = self.capturer
        return None if capturer is None else capturer.offer(rgb)

    def video_frame_callback(self, frame):
        """For streamlit-webrtc: an ``av.VideoFrame`` in, the same frame out (the page shows the
        camera's own picture); never raises into the video."""
        try:
            self.offer(frame.to_ndarray(format="rgb24"))
        except Exception:  # noqa: BLE001 - an undecodable frame is skipped; the video goes on
            pass
        return frame
