"""Video files: read them frame by frame, analyse each frame as the live webcam does, and write
the annotated video and a CSV of every frame's faces.

* :func:`probe` says what a file holds (frames when the file says, frame rate, duration, size);
  :func:`read_frames` decodes it one frame at a time (PyAV), so a long video is never held in
  memory. A file that is not a video, is cut short, has no video stream or no frame raises
  :class:`VideoError` with a one-line message.
* :func:`frame_rows` turns one analysed frame into CSV rows (``COLUMNS``): the one row format of
  every video and batch result.
* :func:`analyse_video` runs :class:`emotion.live.LivePipeline` (detection, tracking and
  smoothing, the webcam's composition) on each frame, draws the faces with
  ``emotion.annotate.draw_results`` and writes both files as it goes, reporting progress.

>>> for frame in read_frames("clip.mp4", every=5):
...     frame.index, frame.time_s, frame.rgb.shape
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .common import one_line
from .labels import LABELS

COLUMNS = ("frame", "time_s", "face_id", "x", "y", "w", "h", "label", "score", *LABELS)

Source = "str | os.PathLike | bytes | io.IOBase"


class VideoError(ValueError):
    """A video that cannot be read (or written), said in one line."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` finds; ``frames``, ``fps`` and ``duration`` are None when unknown."""

    frames: int | None
    fps: float | None
    duration: float | None   # seconds
    width: int
    height: int

    @property
    def expected_frames(self) -> int | None:
        """The frame count the file states, else one estimated from its duration and rate."""
        if self.frames:
            return self.frames
        if self.duration and self.fps:
            return max(1, round(self.duration * self.fps))
        return None


@dataclass
class VideoFrame:
    """One decoded frame: its number (from 0, every frame of the file counted), its time in
    seconds from the start of the video, and its picture (RGB uint8, H x W x 3)."""

    index: int
    time_s: float
    rgb: np.ndarray


def _name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).name or str(source)
    return getattr(source, "name", None) or "the video"


def _open(source):
    """An open PyAV container and its first video stream, or VideoError."""
    import av  # a requirement; imported here so that importing emotion stays light

    name = _name(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise VideoError(f"{name}: no such file")
        if path.is_dir():
            raise VideoError(f"{name}: is a folder, not a video file")
        if path.stat().st_size == 0:
            raise VideoError(f"{name}: the file is empty")
        target = str(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if not len(source):
            raise VideoError(f"{name}: the file is empty")
        target = io.BytesIO(source)
    else:
        target = source
    try:
        container = av.open(target, mode="r")
    except av.FFmpegError as error:
        raise VideoError(f"{name}: not a video file, or a damaged one ({_av_reason(error)})") from None
    except OSError as error:
        raise VideoError(f"{name}: cannot be read ({one_line(error)})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{name}: has no video stream")
    stream = container.streams.video[0]
    if not stream.codec_context or not stream.width or not stream.height:
        container.close()
        raise VideoError(f"{name}: its video stream has no picture size (an unsupported or damaged video)")
    return container, stream


def _av_reason(error) -> str:
    """FFmpeg's reason without the file name it repeats."""
    reason = getattr(error, "strerror", None) or one_line(error)
    return one_line(Exception(reason), limit=120)


def _info(container, stream) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None
    duration = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000  # AV_TIME_BASE
    return VideoInfo(frames=int(stream.frames) or None, fps=fps, duration=duration,
                     width=int(stream.width), height=int(stream.height))


def probe(source) -> VideoInfo:
    """What the video holds, from its headers (nothing decoded). Raises VideoError."""
    container, stream = _open(source)
    try:
        return _info(container, stream)
    finally:
        container.close()


def read_frames(source, every: int = 1) -> Iterator[VideoFrame]:
    """Every ``every``-th frame of the video (the first included), decoded one at a time.

    ``source``: a path, the file's bytes, or a binary file object. Raises VideoError when
    the file cannot be read, is cut short (a decoding error, or far fewer frames than it
    states), or has no frame at all.
    """
    every = int(every)
    if every < 1:
        raise VideoError(f"every must be at least 1 (got {every})")
    import av

    name = _name(source)
    container, stream = _open(source)
    info = _info(container, stream)
    stream.thread_type = "AUTO"  # frame threads: a few frames in flight, never the whole video
    start = stream.start_time or 0
    index = 0
    try:
        try:
            for frame in container.decode(stream):
                if index % every == 0:
                    if frame.pts is not None and stream.time_base:
                        time_s = float((frame.pts - start) * stream.time_base)
                    else:
                        time_s = index / info.fps if info.fps else 0.0
                    yield VideoFrame(index, round(time_s, 6), frame.to_ndarray(format="rgb24"))
                index += 1
        except av.FFmpegError as error:
            if index == 0:
                raise VideoError(f"{name}: not a video file, or a damaged one ({_av_reason(error)})") from None
            raise VideoError(f"{name}: damaged or cut short after frame {index} "
                             f"({_av_reason(error)})") from None
    finally:
        container.close()
    if index == 0:
        raise VideoError(f"{name}: the video has no frames")
    # A file cut short often decodes "fine" up to where its data ends.
    if info.frames and index < 0.9 * info.frames:
        raise VideoError(f"{name}: cut short: {index} of its {info.frames} frames could be decoded")


def frame_rows(index: int, time_s: float, faces) -> list[dict]:
    """The CSV rows (``COLUMNS``) of one analysed frame: one per face, or one with the face
    columns empty when the frame has no face (so every analysed frame is in the table).
    ``faces``: :class:`emotion.pipeline.FaceResult` list (``track_id`` is the face id)."""
    base = {"frame": int(index), "time_s": round(float(time_s), 3)}
    if not faces:
        return [{**base, **{column: "" for column in COLUMNS[2:]}}]
    rows = []
    for face in faces:
        x, y, w, h = (int(v) for v in face.box)
        rows.append({**base, "face_id": "" if face.track_id is None else int(face.track_id),
                     "x": x, "y": y, "w": w, "h": h, "label": face.label,
                     "score": round(float(face.score), 4),
                     **{label: round(float(face.probs[label]), 4) for label in LABELS}})
    return rows
