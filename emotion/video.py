"""Video files: read them frame by frame, analyse each frame as the live webcam does, and write
the annotated video and a CSV of every frame's faces.

* :func:`probe` says what a file holds (frames when the file says, frame rate, duration, size);
  :func:`read_frames` decodes it one frame at a time (PyAV), so a long video is never held in
  memory; :func:`check_video` also counts its packets (no decoding), to refuse a file cut
  short before any work. A file that is not a video, is cut short, has no video stream or no
  frame raises :class:`VideoError` with a one-line message.
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
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .common import one_line, write_atomically
from .labels import LABELS

COLUMNS = ("frame", "time_s", "face_id", "x", "y", "w", "h", "label", "score", *LABELS)


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


def check_video(source) -> VideoInfo:
    """:func:`probe`, then the file's packets counted (read, not decoded: a fraction of a second
    for a long video), so that a video with no frame or cut short is refused before any work.
    ``frames`` is then the count found where the file does not state one. Raises VideoError."""
    import av

    name = _name(source)
    container, stream = _open(source)
    try:
        info = _info(container, stream)
        packets = 0
        try:
            for packet in container.demux(stream):
                packets += bool(packet.size)
        except av.FFmpegError as error:
            raise VideoError(f"{name}: damaged or cut short after {packets} frames ({_av_reason(error)})") from None
    finally:
        container.close()
    if hasattr(source, "seek"):
        source.seek(0)
    if packets == 0:
        raise VideoError(f"{name}: the video has no frames")
    if info.frames and packets < 0.9 * info.frames:
        raise VideoError(f"{name}: cut short: {packets} of its {info.frames} frames are in the file")
    return info if info.frames else replace(info, frames=packets)


def check_output(target, fallback: str = ".mp4") -> str:
    """The extension of the video to write (``fallback`` for a file object); VideoError for
    one that cannot be written."""
    extension = _extension(target, fallback)
    if extension not in FORMATS:
        raise VideoError(f"{_name(target)}: cannot write {extension or 'a file without extension'} video; "
                         f"choose one of {', '.join(FORMATS)}")
    return extension


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
                     # A personal model's own labels have no column: theirs stay empty.
                     **{label: round(float(face.probs[label]), 4) if label in face.probs else ""
                        for label in LABELS}})
    return rows


@dataclass(frozen=True)
class VideoProgress:
    """How far an analysis is: frames done, of ``total`` (None when unknown), and the
    seconds spent and (estimated) left (None until it can be said)."""

    done: int
    total: int | None
    elapsed_s: float
    left_s: float | None

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None


@dataclass
class VideoSummary:
    """What :func:`analyse_video` did."""

    frames: int            # frames read and written
    analysed: int          # frames the pipeline ran on (every ``every``-th)
    rows: int              # CSV rows written
    faces: int             # different faces (ids) seen
    fps: float | None      # the video's frame rate
    width: int
    height: int
    seconds: float         # time the analysis took

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# Output formats by the file's extension: (PyAV format, encoder, pixel format). H.264 in MP4
# plays in every browser (the Video page shows it); WebM/VP9 where H.264 is unwanted.
FORMATS = {
    ".mp4": ("mp4", "libx264", "yuv420p"), ".m4v": ("mp4", "libx264", "yuv420p"),
    ".mov": ("mov", "libx264", "yuv420p"), ".mkv": ("matroska", "libx264", "yuv420p"),
    ".webm": ("webm", "libvpx-vp9", "yuv420p"),
}
TIME_BASE = Fraction(1, 90000)  # the output's clock: each frame keeps the time it had in the input


class _VideoWriter:
    """Annotated frames into a video file or file object, each at its input time."""

    def __init__(self, target, extension: str, fps: float | None, width: int, height: int):
        import av

        if extension not in FORMATS:
            raise VideoError(f"cannot write {extension or 'a file without extension'}: "
                             f"choose one of {', '.join(FORMATS)}")
        container_format, codec, pixel_format = FORMATS[extension]
        rate = Fraction(fps).limit_denominator(1001) if fps and fps > 0 else Fraction(25)
        self.container = av.open(target, mode="w", format=container_format)
        self.stream = self.container.add_stream(codec, rate=rate)
        # 4:2:0 video needs an even size: an odd row or column is repeated.
        self.width, self.height = width + width % 2, height + height % 2
        self.stream.width, self.stream.height = self.width, self.height
        self.stream.pix_fmt = pixel_format
        self.stream.codec_context.time_base = TIME_BASE
        if codec == "libx264":
            self.stream.options = {"preset": "veryfast", "crf": "23"}
        else:  # VP9's defaults are many times slower than the analysis itself
            self.stream.options = {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "32", "b": "0"}
        self._last_pts = -1
        self._frame_period = 1 / float(rate)
        self.frames = 0

    def write(self, rgb: np.ndarray, time_s: float) -> None:
        import av

        height, width = rgb.shape[:2]
        if (width, height) != (self.width, self.height):
            rgb = np.pad(rgb, ((0, self.height - height), (0, self.width - width), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        # Times that do not increase (a damaged timestamp) would be refused by the muxer.
        pts = max(round(time_s / TIME_BASE), self._last_pts + 1)
        frame.pts, frame.time_base = pts, TIME_BASE
        self._last_pts = pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self, flush: bool = True) -> None:
        try:
            if flush:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
        finally:
            self.container.close()


def _extension(target, fallback: str = ".mp4") -> str:
    if isinstance(target, (str, os.PathLike)):
        return Path(target).suffix.lower()
    return fallback


# A file is analysed with faces from 8 % of the frame's shorter side and the detector every 3rd
# analysed frame, optical flow in between: a fixed period (the webcam's is a time budget), so
# that a file gives the same rows on any computer. The Video page, the CLI and batch share it.
VIDEO_MIN_FACE = 0.08
DETECT_EVERY = 3


def video_pipeline(classifier, detector=None, settings=None, detect_every: int = DETECT_EVERY):
    """The :class:`emotion.live.LivePipeline` a video file is analysed with."""
    from .live import LivePipeline, LiveSettings

    settings = settings or LiveSettings(min_face=VIDEO_MIN_FACE, show_ids=True)
    return LivePipeline(classifier, settings, detector=detector, detect_every=detect_every)


def analyse_video(source, out=None, csv_out=None, *, classifier=None, detector=None, settings=None,
                  every: int = 1, detect_every: int = DETECT_EVERY, progress: Callable[[VideoProgress], None] | None = None,
                  progress_every_s: float = 0.25, out_format: str = ".mp4") -> VideoSummary:
    """Analyse every ``every``-th frame of a video as the live webcam does, and write
    ``out`` (the annotated video: every input frame, at its time; the faces found last are
    drawn on the frames in between) and ``csv_out`` (``COLUMNS``, rows of :func:`frame_rows`
    for each analysed frame), both as the frames go, so memory does not grow with the video.

    ``out`` and ``csv_out``: paths (written atomically: a failed run leaves no file) or
    open file objects (binary for the video, in ``out_format``; text for the CSV), or None.
    ``settings``: an :class:`emotion.live.LiveSettings` (default: faces from
    ``VIDEO_MIN_FACE`` of the frame's shorter side, steady labels, ids shown). The detector
    runs every ``detect_every`` analysed frames, optical flow follows the faces in between.
    ``progress`` is called with a :class:`VideoProgress` at most every ``progress_every_s``
    seconds, and once at the end. Raises VideoError for a bad video (checked with
    :func:`check_video` before anything is written) or output format.
    """
    if every < 1:
        raise VideoError(f"every must be at least 1 (got {every})")
    extension = check_output(out, out_format)
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)  # read twice (checked, then decoded): one view of the bytes
    info = check_video(source)
    summary = []

    def run(video_target, csv_target):
        summary.append(_run(source, info, video_target, extension, csv_target, classifier, detector,
                            settings, every, detect_every, progress, progress_every_s))

    def with_csv(video_target):
        if isinstance(csv_out, (str, os.PathLike)):
            write_atomically(csv_out, lambda temp: run(video_target, temp))
        else:
            run(video_target, csv_out)

    if isinstance(out, (str, os.PathLike)):
        write_atomically(out, with_csv)
    else:
        with_csv(out)
    return summary[0]


def _run(source, info, video_target, extension, csv_target, classifier, detector, settings, every,
         detect_every, progress, progress_every_s) -> VideoSummary:
    from .annotate import draw_results

    if classifier is None:
        from .classifier import EmotionClassifier

        classifier = EmotionClassifier.load()
    pipeline = video_pipeline(classifier, detector, settings, detect_every)
    settings = pipeline.settings
    total = info.expected_frames
    started = time.perf_counter()
    last_report = -math.inf
    writer = csv_file = None
    frames = analysed = rows = 0
    ids: set[int] = set()
    faces: list = []
    ok = False
    try:
        if video_target is not None:
            writer = _VideoWriter(str(video_target) if isinstance(video_target, Path) else video_target,
                                  extension, info.fps, info.width, info.height)
        if csv_target is not None:
            if isinstance(csv_target, (str, os.PathLike)):
                csv_file = open(csv_target, "w", newline="", encoding="utf-8")
                table = csv.DictWriter(csv_file, COLUMNS)
            else:
                table = csv.DictWriter(csv_target, COLUMNS)
            table.writeheader()
        for frame in read_frames(source):
            if frame.index % every == 0:
                result = pipeline.process(frame.rgb)
                faces = result.faces
                image = result.image if result.image is not None else frame.rgb
                ids.update(face.track_id for face in faces if face.track_id)
                analysed += 1
                if csv_target is not None:
                    new_rows = frame_rows(frame.index, frame.time_s, faces)
                    table.writerows(new_rows)
                    rows += len(new_rows)
            else:  # not analysed: the faces found last, where they were
                image = draw_results(frame.rgb, faces, show_scores=settings.show_probs,
                                     show_ids=settings.show_ids, **_extra_drawing(settings)) if faces else frame.rgb
            if writer is not None:
                writer.write(image, frame.time_s)
            frames += 1
            now = time.perf_counter()
            if progress is not None and now - last_report >= progress_every_s:
                last_report = now
                progress(_progress(frames, total, now - started))
        ok = True
    finally:
        if csv_file is not None:
            csv_file.close()
        if writer is not None:
            try:
                writer.close(flush=ok)
            except Exception:  # noqa: BLE001 - the error that stopped the run is the one to report
                if ok:
                    raise
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(VideoProgress(frames, frames, seconds, 0.0))
    return VideoSummary(frames, analysed, rows, len(ids), info.fps, info.width, info.height, seconds)


def _extra_drawing(settings) -> dict:
    """The drawing options the live pipeline passes beyond ids and scores (an emoji overlay)."""
    return {"emoji": True} if getattr(settings, "emoji", False) else {}


def _progress(done: int, total: int | None, elapsed: float) -> VideoProgress:
    left = None
    if total and done >= 5 and elapsed >= 1.0:  # the first frames pay for warming up: no guess yet
        left = max(0.0, elapsed / done * (total - done))
    # A file that states too few frames: the count so far is the least it has.
    return VideoProgress(done, max(total, done) if total else None, elapsed, left)


def format_seconds(seconds: float | None) -> str:
    """``1:05`` for 65 seconds, ``1:02:03`` past an hour; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def read_rows(source):
    """A CSV written by :func:`analyse_video` (a path, text or bytes) as a DataFrame."""
    import pandas as pd

    if isinstance(source, bytes):
        source = io.BytesIO(source)
    elif isinstance(source, str) and "\n" in source:
        source = io.StringIO(source)
    return pd.read_csv(source, dtype={"label": "string"})


def describe(progress: VideoProgress) -> str:
    """``frame 120 of 1500 (8%), 0:42 left`` (what is known of it)."""
    if progress.total:
        text = f"frame {progress.done} of {progress.total} ({progress.fraction:.0%})"
    else:
        text = f"frame {progress.done}"
    if progress.left_s is not None and progress.done < (progress.total or 0):
        text += f", {format_seconds(progress.left_s)} left"
    return text


class TerminalProgress:
    """Progress on a terminal: one line redrawn in place; without a terminal (a log file),
    a line every ``log_every`` of the video."""

    def __init__(self, stream=None, interactive: bool | None = None, log_every: float = 0.1):
        import sys

        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.log_every = log_every
        self._line = 0
        self._logged = -1.0

    def __call__(self, progress: VideoProgress) -> None:
        text = describe(progress)
        if self.interactive:
            self.stream.write("\r" + text.ljust(self._line))
            self._line = len(text)
        else:
            fraction = progress.fraction
            if fraction is not None and fraction < 1 and fraction - self._logged < self.log_every:
                return
            self._logged = fraction if fraction is not None else self._logged
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.interactive and self._line:
            self.stream.write("\n")
            self.stream.flush()
            self._line = 0


def face_summary(rows):
    """One row per face id of a :func:`read_rows` table: when it was seen (first and last
    second), in how many analysed frames, and its most frequent label with that share."""
    import pandas as pd

    faces = rows.dropna(subset=["face_id"])
    summary = []
    for face_id, face in faces.groupby(faces["face_id"].astype(int)):
        counts = face["label"].value_counts()
        summary.append({"face": int(face_id), "from_s": float(face["time_s"].min()),
                        "to_s": float(face["time_s"].max()), "frames": len(face),
                        "mostly": str(counts.index[0]), "share": round(float(counts.iloc[0]) / len(face), 4)})
    return pd.DataFrame(summary, columns=["face", "from_s", "to_s", "frames", "mostly", "share"])
