"""Many photos and videos at once: ``python -m emotion batch`` and :func:`analyze`.

Inputs are files, folders (searched recursively) and glob patterns, photos and videos mixed.
Each photo goes through the one photo pipeline (``EmotionRecognizer.analyze_rgb``: the faces and
labels ``python -m emotion predict`` gives); each video is read frame by frame
(``emotion.video.read_frames``, never whole) through the live composition
(``emotion.live.LivePipeline``: detection, tracking, smoothing), one row per frame and face in
``emotion.video.frame_rows``' format.

The result is one table (the batch table's schema, ``_schema()``) with two kinds of rows, so that one file's faces and its
summary are always written together (in the same Parquet file) and a stopped run never leaves a
file half in the output:

* ``record == "face"``: one per face (file, frame index and time for video, track id, box, label,
  score, the seven probabilities, model name and SHA-256);
* ``record == "file"``: one per input file (frames analysed, faces, dominant emotion, error).

:func:`read_results` splits it into :class:`BatchResult` (``faces``, ``files``, ``errors``).
Written output is a Parquet dataset: a folder of part files, readable by pandas, pyarrow, Ray,
Spark or DuckDB, which grows as files finish (so Ctrl-C keeps what was done and ``resume``
continues).

Work is spread over a pool of worker processes on this machine (one model each), or, with
``ray=``, over a Ray cluster with Ray Data (an actor pool, one model per actor).
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .common import one_line, write_atomically
from .labels import LABELS

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv",
                  ".3gp", ".ts", ".y4m")
FACE_COLUMNS = ("file", "kind", "frame", "time_s", "track_id", "x", "y", "w", "h", "label", "score",
                *LABELS, "model", "model_sha256")
FILE_COLUMNS = ("file", "kind", "frames", "faces", "dominant", "error", "seconds", "model", "model_sha256")


def _schema():
    import pyarrow as pa

    fields = [("record", pa.string()), ("file", pa.string()), ("kind", pa.string()),
              ("frame", pa.int64()), ("time_s", pa.float64()), ("track_id", pa.int64()),
              ("x", pa.int64()), ("y", pa.int64()), ("w", pa.int64()), ("h", pa.int64()),
              ("label", pa.string()), ("score", pa.float64()),
              *[(label, pa.float64()) for label in LABELS],
              ("model", pa.string()), ("model_sha256", pa.string()),
              ("frames", pa.int64()), ("faces", pa.int64()), ("dominant", pa.string()),
              ("error", pa.string()), ("seconds", pa.float64())]
    return pa.schema(fields)


class BatchError(ValueError):
    """A batch that cannot start (bad output folder, no inputs, bad option), in one line."""


class Stopped(Exception):
    """The batch was asked to stop while a file was being analysed."""


@dataclass
class BatchResult:
    """The tables of a batch: ``faces`` (one row per face; for video one per frame and face, and
    a row with the face columns empty for a frame without a face), ``files`` (one row per input
    file: frames, faces, dominant emotion, error) and ``errors`` (the files that could not be
    analysed, with a one-line reason). ``interrupted``: the run was stopped before the end."""

    faces: "object"
    files: "object"
    interrupted: bool = False
    out: Path | None = None

    @property
    def errors(self):
        bad = self.files[self.files["error"].notna()]
        return bad[["file", "kind", "error"]].reset_index(drop=True)


@dataclass(frozen=True)
class BatchProgress:
    """How far a batch is: files finished of ``total``, video frames and photos analysed
    (``frames``), seconds since it started, and seconds left (None until it can be said)."""

    done: int
    total: int
    frames: int
    elapsed_s: float
    errors: int = 0

    @property
    def files_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def left_s(self) -> float | None:
        return (self.total - self.done) / self.files_per_s if self.done and self.files_per_s else None

    def describe(self) -> str:
        from .video import format_seconds

        return (f"{self.done}/{self.total} files, {self.files_per_s:.2f} files/s, "
                f"{self.frames_per_s:.1f} frames/s, {format_seconds(self.left_s)} left"
                + (f", {self.errors} bad" if self.errors else ""))


# --- inputs ------------------------------------------------------------------------------


def kind_of(path: str) -> str:
    """``"video"`` for a video file's name, else ``"photo"`` (an unknown type is tried as a photo
    and reported as a bad file if it is not one)."""
    return "video" if Path(path).suffix.lower() in VIDEO_SUFFIXES else "photo"


def find_inputs(inputs: Iterable) -> tuple[list, list[tuple[str, str]]]:
    """``(sources, problems)``: files named, the photos and videos inside folders (recursively,
    sorted) and the files matching glob patterns, each once, in order; an input that names
    nothing comes back as ``(input, reason)``. ``(name, bytes)`` pairs (uploads) pass through."""
    sources, problems, seen = [], [], set()

    def add(item):
        key = item if isinstance(item, tuple) else os.path.abspath(item)
        if key not in seen:
            seen.add(key)
            sources.append(item)

    for item in inputs:
        if isinstance(item, tuple):
            add((str(item[0]), bytes(item[1])))
            continue
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            found = sorted(str(p) for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES + VIDEO_SUFFIXES)
            if not found:
                problems.append((text, "no photos or videos in this folder"))
            for name in found:
                add(name)
        elif path.exists():
            add(text)
        elif glob.has_magic(text):
            found = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
            if not found:
                problems.append((text, "no file matches this pattern"))
            for name in found:
                add(name)
        else:
            problems.append((text, "no such file or folder"))
    return sources, problems


def source_name(source) -> str:
    return source[0] if isinstance(source, tuple) else str(source)


# --- one file --------------------------------------------------------------------------------


_CHECKSUMS: dict = {}


def model_checksum(path) -> str:
    """The SHA-256 of a model file (hex), remembered per path, size and time of change."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKSUMS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _CHECKSUMS[key] = digest.hexdigest()
    return _CHECKSUMS[key]


def _limit_threads(threads: int | None) -> None:
    """Give this process's TensorFlow ``threads`` threads: workers side by side, each with every
    core, would fight over them."""
    if not threads:
        return
    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[name] = str(threads)
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except (ImportError, RuntimeError):  # RuntimeError: TF already running; it keeps its threads
        pass


class FileAnalyzer:
    """Turns one input file into its rows (the batch table's schema, ``_schema()``): the model is loaded once, in
    ``__init__``, and every file after reuses it. A callable class, so that Ray Data's actor pool
    runs one per actor (``__call__`` takes a batch of paths); the local pool keeps one per process.

    A bad file gives its file row with ``error`` set, never an exception. ``stop`` (an Event)
    ends a video between two frames; ``on_frames`` is told how many frames were just analysed.
    """

    def __init__(self, model_path=None, every: int = 1, recognizer=None, threads: int | None = None,
                 stop=None, on_frames: Callable[[int], None] | None = None):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        _limit_threads(threads)
        from .classifier import EmotionClassifier, default_model_path
        from .recognizer import EmotionRecognizer

        if recognizer is None:
            recognizer = EmotionRecognizer(EmotionClassifier.load(model_path))
        self.recognizer = recognizer
        classifier = recognizer.classifier
        path = classifier.path or Path(model_path or default_model_path())
        self.model = classifier.name
        self.model_sha256 = model_checksum(path) if path and Path(path).is_file() else None
        self.every = int(every)
        self.stop = stop
        self.on_frames = on_frames

    def __call__(self, batch) -> "object":
        """Ray Data: a batch ``{"source": [path, ...]}`` -> a pyarrow table of their rows."""
        import pyarrow as pa

        rows = [row for source in batch["source"] for row in self.rows(str(source))]
        return pa.Table.from_pylist(rows, schema=_schema())

    def table(self, source):
        import pyarrow as pa

        return pa.Table.from_pylist(self.rows(source), schema=_schema())

    def rows(self, source) -> list[dict]:
        """Face rows, then the file row, of one photo or video (path, or ``(name, bytes)``)."""
        name = source_name(source)
        kind = kind_of(name)
        started = time.perf_counter()
        faces: list[dict] = []
        frames, error = 0, None
        try:
            if kind == "video":
                frames = self._video(source, faces)
            else:
                frames = self._photo(source, faces)
        except Stopped:
            raise
        except Exception as problem:  # noqa: BLE001 - a bad file is a row of the errors table
            error = one_line(problem)
            if not isinstance(problem, ValueError):  # ImageError and VideoError say it all already
                error = f"{Path(name).name}: {error}"
            if kind == "video":  # a video cut short keeps the rows of the frames read before the cut
                frames = len({row["frame"] for row in faces})
        model = {"model": self.model, "model_sha256": self.model_sha256}
        for row in faces:
            row.update(record="face", file=name, kind=kind, **model)
        counted = [row for row in faces if row.get("label")]
        ids = {row["track_id"] for row in counted if row.get("track_id") is not None}
        file_row = {"record": "file", "file": name, "kind": kind, "frames": frames,
                    "faces": len(ids) if kind == "video" else len(counted),
                    "dominant": _dominant(counted), "error": error,
                    "seconds": round(time.perf_counter() - started, 4), **model}
        return faces + [file_row]

    def _photo(self, source, faces: list[dict]) -> int:
        from .imageio import load_image
        from .video import frame_rows

        rgb = load_image(source[1], name=source[0]) if isinstance(source, tuple) else load_image(source)
        results = self.recognizer.analyze_rgb(rgb)
        if results:
            for row in frame_rows(0, 0.0, results):
                faces.append(_typed(row, photo=True))
        if self.on_frames:
            self.on_frames(1)
        return 1

    def _video(self, source, faces: list[dict]) -> int:
        from .video import frame_rows, read_frames, video_pipeline

        # Videos are analysed exactly as the Video page and `python -m emotion video` do.
        pipeline = video_pipeline(self.recognizer.classifier, self.recognizer.detector)
        data = source[1] if isinstance(source, tuple) else source
        frames, unreported, reported = 0, 0, time.monotonic()
        for frame in read_frames(data, every=self.every):
            if self.stop is not None and self.stop.is_set():
                raise Stopped()
            result = pipeline.process(frame.rgb)
            faces.extend(_typed(row) for row in frame_rows(frame.index, frame.time_s, result.faces))
            frames += 1
            unreported += 1
            if self.on_frames and time.monotonic() - reported > 0.25:
                self.on_frames(unreported)
                unreported, reported = 0, time.monotonic()
        if self.on_frames and unreported:
            self.on_frames(unreported)
        return frames


def _typed(row: dict, photo: bool = False) -> dict:
    """A :func:`emotion.video.frame_rows` row with its empty cells as None and ``face_id`` named
    ``track_id``; a photo has no frame, time or track."""
    row = {("track_id" if key == "face_id" else key): (None if value == "" else value)
           for key, value in row.items()}
    if photo:
        row.update(frame=None, time_s=None, track_id=None)
    return row


def _dominant(rows: list[dict]) -> str | None:
    """The emotion with the highest mean probability over a file's faces (None without faces)."""
    if not rows:
        return None
    means = {label: sum(row[label] for row in rows) / len(rows) for label in LABELS}
    return max(means, key=means.get)


# --- output ------------------------------------------------------------------------------


def _parts(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.parquet") if not p.name.startswith((".", "_")))


def drop_broken_parts(out: Path) -> list[Path]:
    """Remove part files that cannot be read (a run killed while writing one); their files are
    not in the output, so they are analysed again on resume."""
    import pyarrow.parquet as pq

    broken = []
    for part in _parts(out):
        try:
            pq.read_metadata(part)
        except Exception:  # noqa: BLE001 - any unreadable part is dropped
            part.unlink(missing_ok=True)
            broken.append(part)
    return broken


def _read_table(out: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    parts = [pq.read_table(part).select(schema.names).cast(schema) for part in _parts(out)]
    return pa.concat_tables(parts) if parts else schema.empty_table()


def split_table(table, out: Path | None = None, interrupted: bool = False) -> BatchResult:
    """The rows of the batch table's schema, ``_schema()`` as a :class:`BatchResult`; faces of a file with no file row
    (a run stopped half way through writing it) are left out."""
    frame = table.to_pandas()
    files = frame[frame["record"] == "file"].drop_duplicates("file", keep="last")
    faces = frame[(frame["record"] == "face") & frame["file"].isin(files["file"])]
    files = files[list(FILE_COLUMNS)].reset_index(drop=True)
    for column in ("frames", "faces"):
        files[column] = files[column].astype("Int64")
    faces = faces[list(FACE_COLUMNS)].reset_index(drop=True)
    for column in ("frame", "track_id", "x", "y", "w", "h"):
        faces[column] = faces[column].astype("Int64")
    return BatchResult(faces, files, interrupted, out)


def read_results(out) -> BatchResult:
    """The tables of a batch written to ``out`` (a Parquet folder)."""
    out = Path(out)
    if not out.is_dir():
        raise BatchError(f"{out}: no batch results there")
    return split_table(_read_table(out), out)


def finished_files(out: Path) -> set[str]:
    """Absolute paths of the files that already have a file row in ``out``."""
    import pyarrow.dataset as ds

    if not out.is_dir() or not _parts(out):
        return set()
    table = ds.dataset([str(p) for p in _parts(out)], format="parquet").to_table(
        columns=["record", "file"], filter=ds.field("record") == "file")
    return {os.path.abspath(name) for name in table.column("file").to_pylist()}


class _PartWriter:
    """Finished files' rows into part files of ``out``, each written atomically, every few
    seconds or files: the folder is always a valid Parquet dataset of whole files."""

    def __init__(self, out: Path | None, every_s: float = 5.0, every_files: int = 200):
        self.out, self.every_s, self.every_files = out, every_s, every_files
        self.run = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.pending, self.kept, self.count, self.last = [], [], 0, time.monotonic()

    def add(self, table) -> None:
        self.pending.append(table)
        if self.out and (len(self.pending) >= self.every_files or time.monotonic() - self.last >= self.every_s):
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.last = time.monotonic()
        if not self.pending:
            return
        table = pa.concat_tables(self.pending)
        self.pending = []
        if self.out is None:
            self.kept.append(table)
            return
        self.count += 1
        write_atomically(self.out / f"part-{self.run}-{self.count:05d}.parquet",
                         lambda temp: pq.write_table(table, temp))


# --- the runs --------------------------------------------------------------------------------

_worker: FileAnalyzer | None = None


def _init_worker(model_path, every, threads, stop, frames_queue) -> None:
    # Ctrl-C reaches every process of the terminal's group: the parent decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    global _worker
    _worker = FileAnalyzer(model_path, every, threads=threads, stop=stop,
                           on_frames=frames_queue.put if frames_queue is not None else None)


def _work(source):
    try:
        return _worker.table(source)
    except Stopped:
        return None


def _drain(frames_queue) -> int:
    import queue

    count = 0
    while True:
        try:
            count += frames_queue.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return count


def _run_pool(todo, writer, workers, model_path, every, progress):
    import concurrent.futures as cf
    import multiprocessing

    # spawn: the caller may be a process with TensorFlow's threads running (the app), which a
    # fork would copy in a broken state.
    context = multiprocessing.get_context("spawn")
    stop, frames_queue = context.Event(), context.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    started, frames, done, errors = time.perf_counter(), 0, 0, 0
    interrupted = False
    # Worker processes start while Ctrl-C is ignored, so they inherit that and a Ctrl-C during
    # their start-up cannot kill them with a traceback.
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
    try:
        pool = cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                      initargs=(str(model_path), every, threads, stop, frames_queue))
        pending = {pool.submit(_work, source) for source in todo}
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    try:
        while pending:
            finished, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                try:
                    table = future.result()
                except cf.BrokenExecutor:
                    raise BatchError("a worker process died (out of memory, or the model could not be "
                                     "loaded); the files finished so far are written, --resume continues") from None
                if table is not None:
                    writer.add(table)
                    done += 1
                    errors += _errors_in(table)
            frames += _drain(frames_queue)
            if progress:
                progress(BatchProgress(done, len(todo), frames, time.perf_counter() - started, errors))
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        for future in pending:
            future.cancel()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if interrupted:  # files that finished while the pool wound down are kept too
        for future in pending:
            if future.done() and not future.cancelled() and future.exception() is None and future.result():
                writer.add(future.result())
    return interrupted


def _errors_in(table) -> int:
    records, errors = table.column("record").to_pylist(), table.column("error").to_pylist()
    return sum(1 for record, error in zip(records, errors) if record == "file" and error)


def _run_here(todo, writer, analyzer_args, progress, lock):
    started, frames, done, errors = time.perf_counter(), [0], 0, 0
    analyzer = FileAnalyzer(**analyzer_args, on_frames=lambda n: frames.__setitem__(0, frames[0] + n))
    try:
        for source in todo:
            if lock is not None:
                with lock:
                    table = analyzer.table(source)
            else:
                table = analyzer.table(source)
            writer.add(table)
            done += 1
            errors += _errors_in(table)
            if progress:
                progress(BatchProgress(done, len(todo), frames[0], time.perf_counter() - started, errors))
    except KeyboardInterrupt:
        return True
    return False


def _ray_runtime_env() -> dict:
    # Ray's workers find this project's code where the driver has it (every machine of a cluster
    # needs the project, its model and the inputs at the same paths: only paths travel).
    root = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if os.environ.get("FACEMOOD_MODELS_DIR"):
        env["FACEMOOD_MODELS_DIR"] = os.environ["FACEMOOD_MODELS_DIR"]
    return {"env_vars": env}


class LocalRay:
    """A Ray head on this machine for one batch (``ray start --head --block``), in a session of
    its own: Ctrl-C in the terminal then reaches the batch alone, which stops cleanly, instead of
    Ray's own processes (a Ray started inside the batch's process group dies with it, and the
    batch hangs). :meth:`stop` ends it and everything it started."""

    def __init__(self, num_cpus: int | None = None, timeout_s: float = 180.0):
        import socket
        import subprocess
        import tempfile

        from ray.util import get_node_ip_address

        with socket.socket() as probe:
            probe.bind(("", 0))
            port = probe.getsockname()[1]
        # The driver reaches the head at this machine's address as Ray sees it, never 127.0.0.1.
        self.address = f"{get_node_ip_address()}:{port}"
        self.log = tempfile.NamedTemporaryFile("w+", prefix="facemood-ray-", suffix=".log", delete=False)
        command = [sys.executable, "-c", "from ray.scripts.scripts import main; main()", "start", "--head",
                   "--block", f"--port={port}", "--include-dashboard=false",
                   "--disable-usage-stats", *([f"--num-cpus={num_cpus}"] if num_cpus else [])]
        env = {**os.environ, **_ray_runtime_env()["env_vars"]}
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout_s
        try:
            while "Ray runtime started" not in Path(self.log.name).read_text(errors="replace"):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    lines = Path(self.log.name).read_text(errors="replace").strip().splitlines()
                    raise BatchError(f"a local Ray instance could not be started: "
                                     f"{(lines or ['no output'])[-1][:200]}")
                time.sleep(0.25)
        except BaseException:  # Ctrl-C while it starts included: never leave a head behind
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(10)
            except (ProcessLookupError, PermissionError):
                pass
            except Exception:  # noqa: BLE001 - a head that will not go is killed
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def connect_ray(address: str = "auto", num_cpus: int | None = None) -> "LocalRay | None":
    """Join the Ray cluster at ``address``; with ``"auto"``, the one ``RAY_ADDRESS`` names, or else
    a new local Ray instance (returned, to be stopped by the caller; None when joining)."""
    if address not in (None, "", "auto") and "ray" not in sys.modules and not os.environ.get("RAY_AUTH_MODE") \
            and (Path.home() / ".ray" / "auth_token").is_file():
        # Ray's driver sends its token only to a cluster it finds itself, never to an address it is
        # given, unless told before ray is imported; a machine holding Ray's token means to use it.
        os.environ["RAY_AUTH_MODE"] = "token"
    import ray

    if ray.is_initialized():
        return None
    local = None
    if address in (None, "", "auto"):
        address = os.environ.get("RAY_ADDRESS") or None
        if address is None:
            local = LocalRay(num_cpus)
    try:
        # Our own head: found as "the cluster last started on this machine", the one way Ray's
        # driver picks up the head's authentication token by itself.
        ray.init(address=None if local else address, runtime_env=_ray_runtime_env(), log_to_driver=False,
                 configure_logging=False)
        if local and ray.get_runtime_context().gcs_address != local.address:
            raise RuntimeError(f"joined {ray.get_runtime_context().gcs_address}, not the new {local.address}")
    except BaseException as error:  # noqa: BLE001 - Ray raises many kinds for an unreachable cluster
        if local:
            local.stop()
        if not isinstance(error, Exception):
            raise
        where = local.address if local else address
        raise BatchError(f"cannot reach the Ray cluster at {where}: {one_line(error)}") from None
    return local


def _run_ray(todo, out, address, workers, model_path, every):
    joined = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    local = connect_ray(address, num_cpus=workers)
    import ray

    try:
        return _ray_dataset(ray, todo, out, workers, model_path, every)
    finally:
        if not joined:
            ray.shutdown()
        if local:
            local.stop()


def _ray_dataset(ray, todo, out, workers, model_path, every):
    import ray.data

    actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # Only the paths travel through Ray; each actor reads its own files.
    items = ray.data.from_items([{"source": str(source)} for source in todo],
                                override_num_blocks=max(1, min(len(todo), 10 * actors)))
    rows = items.map_batches(FileAnalyzer, batch_size=1, batch_format="numpy",
                             compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
                             fn_constructor_kwargs={"model_path": str(model_path), "every": every, "threads": 1})
    try:
        if out is None:
            import pyarrow as pa

            return pa.Table.from_pandas(rows.to_pandas(), schema=_schema(), preserve_index=False), False
        # Writing takes no CPU of its own: with every CPU held by an actor, a write that waits for
        # one would hold every finished file back until the end (and lose it to a Ctrl-C).
        rows.write_parquet(str(out), ray_remote_args={"num_cpus": 0})
    except KeyboardInterrupt:
        return None, True
    return None, False


def _run(todo, writer, ray, out, workers, model_path, every, recognizer, progress, lock) -> bool:
    """Analyse ``todo`` into ``writer``; True when stopped by Ctrl-C."""
    if not todo:
        return False
    if ray:
        table, interrupted = _run_ray(todo, out, ray, workers, model_path, every)
        if table is not None:
            writer.add(table)
        return interrupted
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers == 0 or recognizer is not None or any(isinstance(s, tuple) for s in todo):
        args = {"model_path": model_path, "every": every, "recognizer": recognizer}
        return _run_here(todo, writer, args, progress, lock)
    return _run_pool(todo, writer, min(workers, len(todo)), model_path, every, progress)


def analyze(inputs, *, workers: int | None = None, ray: str | None = None, every: int = 1, out=None,
            resume: bool = False, model=None, progress: Callable[[BatchProgress], None] | None = None,
            recognizer=None, lock=None) -> BatchResult:
    """Analyse every photo and video in ``inputs`` (paths, folders, glob patterns, or
    ``(name, bytes)`` pairs for photos and videos held in memory).

    ``workers``: worker processes on this machine (default: one per core; 0: in this process,
    with ``recognizer`` if given). ``ray``: ``"auto"`` or a cluster's address: run on Ray Data
    instead (``workers`` then caps the actors). ``every``: analyse every K-th video frame.
    ``out``: a folder to write the Parquet dataset to (see :func:`read_results`), else the
    tables are only returned; ``resume`` skips the files already in ``out``. ``model``: a .keras
    file (default: the model the app uses). ``progress`` gets a :class:`BatchProgress` as files
    finish (local runs; Ray draws its own). ``lock`` is held around each file in this process.
    On Ctrl-C, the files finished so far are written and the result says ``interrupted``.
    """
    from .classifier import default_model_path

    every = int(every)
    if every < 1:
        raise BatchError(f"--every must be at least 1 (got {every})")
    if workers is not None and workers < 0:
        raise BatchError(f"--workers must be 0 or more (got {workers})")
    model_path = Path(model) if model else (recognizer.classifier.path if recognizer is not None
                                            and recognizer.classifier.path else default_model_path(photos=True))
    if recognizer is None and not Path(model_path).is_file():
        raise BatchError(f"model file not found: {model_path}")
    out = Path(out) if out is not None else None
    if out is not None:
        if out.exists() and not out.is_dir():
            raise BatchError(f"{out} exists and is not a folder of results; choose another --out")
        if out.is_dir():
            drop_broken_parts(out)
            if _parts(out) and not resume:
                raise BatchError(f"{out} already holds results: add --resume to continue it, "
                                 "or choose another --out")
        out.mkdir(parents=True, exist_ok=True)
    sources, problems = find_inputs(inputs)
    if not sources and not problems:
        raise BatchError("no inputs given")
    done = finished_files(out) if (out is not None and resume) else set()
    todo = [s for s in sources if isinstance(s, tuple) or os.path.abspath(s) not in done]
    if ray and any(isinstance(s, tuple) for s in todo):
        raise BatchError("Ray reads files by path: files held in memory go through the local pool")

    writer = _PartWriter(out)
    problems = [p for p in problems if os.path.abspath(p[0]) not in done]
    if problems:
        import pyarrow as pa

        writer.add(pa.Table.from_pylist([{"record": "file", "file": name, "kind": kind_of(name), "frames": 0,
                                          "faces": 0, "error": f"{name}: {reason}"} for name, reason in problems],
                                        schema=_schema()))
    try:
        interrupted = _run(todo, writer, ray, out, workers, model_path, every, recognizer, progress, lock)
    finally:  # whatever stops the run, the files finished so far are written
        writer.flush()
    if out is None:
        import pyarrow as pa

        table = pa.concat_tables(writer.kept) if writer.kept else _schema().empty_table()
        return split_table(table, None, interrupted)
    if interrupted:
        drop_broken_parts(out)
    result = read_results(out)
    result.interrupted = interrupted
    return result


def write_csv(result: BatchResult, out) -> list[Path]:
    """The faces and files tables as CSV beside ``out``: ``NAME.csv`` and ``NAME-files.csv``."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix else out
    written = []
    for table, path in ((result.faces, Path(f"{stem}.csv")), (result.files, Path(f"{stem}-files.csv"))):
        write_atomically(path, lambda temp, table=table: table.to_csv(temp, index=False))
        written.append(path)
    return written


class TerminalProgress:
    """A batch's progress on a terminal: one line redrawn in place, or on a log (not a
    terminal) a line every ``log_every_s`` seconds."""

    def __init__(self, stream=None, log_every_s: float = 10.0):
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.log_every_s = log_every_s
        self.last = -math.inf
        self.width = 0

    def __call__(self, progress: BatchProgress) -> None:
        now = time.monotonic()
        finished = progress.done == progress.total
        if self.interactive:
            if now - self.last >= 0.2 or finished:
                text = progress.describe()
                self.stream.write("\r" + text.ljust(self.width))
                self.width = len(text)
                self.last = now
                if finished:
                    self.stream.write("\n")
                self.stream.flush()
        elif now - self.last >= self.log_every_s or finished:
            self.last = now
            self.stream.write(progress.describe() + "\n")
            self.stream.flush()
