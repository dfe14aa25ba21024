"""The dataset creator: captured crops, or any folder of face photos sorted by label, made into a
training set of grey faces with a stratified train/test split.

``SRC/<label>/*.jpg|png|…`` in; out, either

* ``folders``: ``DST/train/<label>/*.png`` and ``DST/test/<label>/*.png`` (the layout
  ``emotion.data.load_image_folders`` reads, ``test`` being its PrivateTest), or
* ``csv``: ``DST`` as a FER2013-format CSV (``emotion,pixels,Usage``; ``Usage`` is
  ``Training`` or ``PublicTest``, FER2013's split for choosing the epoch). The seven
  FER2013 emotions keep their indices 0-6; any other label is numbered from 7 on, in
  alphabetical order, and ``DST`` with ``.labels.txt`` for ``.csv`` lists every index
  with its label (always written, so a reader never has to guess).

Which pictures are faces already: a picture that is square (sides within 10 %) and at most
:data:`CROP_MAX_SIDE` pixels a side is taken as a face crop, as the Capture page saves them
and as FER2013 ships them, and only resized; a face detector cannot find a face filling a
picture that small anyway. Every other picture is a photo: its largest face is found and
cut out by the same stages as every photo the app analyses (``emotion.pipeline``), and a
photo with no face found is listed and skipped.

The whole output is written in a temporary folder (or file) beside ``DST`` and renamed to
``DST`` at the end: an interrupted run leaves no half dataset, and an existing ``DST`` is
never overwritten.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .capture import CaptureError, check_label, image_files, largest_face
from .common import one_line, write_atomically
from .imageio import ImageError, load_image
from .labels import FACE_SIZE, LABELS
from .pipeline import MIN_FACE

FORMATS = ("folders", "csv")
CROP_MAX_SIDE = 96   # a square picture up to this size is a face crop already (FER2013's are 48)
MIN_PER_LABEL = 20   # fewer images than this in a label: warned (too few to learn or to test on)
MIN_SIZE, MAX_SIZE = 16, 256


class DatasetCreationError(ValueError):
    """The dataset cannot be made; the message says why in one line."""


@dataclass
class DatasetSummary:
    """What :func:`create_dataset` made."""

    out: Path
    format: str
    counts: dict[str, tuple[int, int]]               # label -> (train, test)
    no_face: list[str] = field(default_factory=list)    # photos skipped: no face found
    unreadable: list[str] = field(default_factory=list) # files skipped: not a usable image ("name: why")
    warnings: list[str] = field(default_factory=list)
    label_index: dict[str, int] = field(default_factory=dict)  # csv: the emotion column's value per label

    @property
    def total(self) -> tuple[int, int]:
        return (sum(t for t, _ in self.counts.values()), sum(t for _, t in self.counts.values()))


def is_face_crop(shape: tuple) -> bool:
    """Whether a picture of this shape is taken as a face crop already (see the module's rule)."""
    height, width = shape[:2]
    return max(height, width) <= CROP_MAX_SIDE and abs(height - width) <= 0.1 * max(height, width)


def face_of(rgb: np.ndarray, detector, size: int = FACE_SIZE) -> np.ndarray | None:
    """The uint8 grey ``size`` x ``size`` face of a picture: a face crop resized, or a photo's largest
    face cut as the pipeline cuts faces; None for a photo in which no face is found."""
    if is_face_crop(rgb.shape):
        face = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    else:
        # Any face the pipeline would find in a photo (3 % of its shorter side, at least 32 px).
        face = largest_face(detector, rgb, MIN_FACE)
        if face is None:
            return None
    if face.shape != (size, size):
        shrinking = face.shape[0] > size
        face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return face


def label_indices(labels) -> dict[str, int]:
    """The CSV's emotion value of each label: FER2013's index for its seven, 7, 8, … for the others."""
    own = sorted(label for label in labels if label not in LABELS)
    return {**{label: LABELS.index(label) for label in labels if label in LABELS},
            **{label: len(LABELS) + i for i, label in enumerate(own)}}


def split_counts(n: int, test: float) -> int:
    """How many of a label's ``n`` images go to the test split: ``round(n * test)``, but with a
    test share above 0 at least one, and at least one left to train on, once there are two."""
    n_test = int(round(n * test))
    if test > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    return min(n_test, n)


def _check_paths(src: Path, out: Path, fmt: str) -> tuple[Path, Path]:
    if not src.is_dir():
        raise DatasetCreationError(f"{src} is not a folder (expected SRC/<label>/*.png)")
    if fmt == "csv" and out.suffix.lower() != ".csv":
        out = out.with_name(out.name + ".csv")
    if out.exists() or out.is_symlink():
        raise DatasetCreationError(f"{out} already exists; choose a new name (nothing is overwritten)")
    real_src, real_out = Path(os.path.realpath(src)), Path(os.path.realpath(out))
    if real_out == real_src or real_src in real_out.parents:
        raise DatasetCreationError(f"{out} is inside the source folder {src}: it would become one of its labels")
    return src, out


def create_dataset(src: str | os.PathLike, out: str | os.PathLike, size: int = FACE_SIZE, test: float = 0.2,
                   seed: int = 0, fmt: str = "folders", detector=None, progress=None) -> DatasetSummary:
    """Make a training set from ``src/<label>/*`` at ``out`` (see the module). ``progress``, when
    given, is called with (pictures done, pictures in all, current file). Bad input raises
    DatasetCreationError with a one-line message, before anything is written."""
    if fmt not in FORMATS:
        raise DatasetCreationError(f"unknown format {fmt!r}; choose {' or '.join(FORMATS)}")
    try:
        size, test, seed = int(size), float(test), int(seed)
    except (TypeError, ValueError):
        raise DatasetCreationError("--size and --seed must be whole numbers, --test a fraction") from None
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise DatasetCreationError(f"the face size must be from {MIN_SIZE} to {MAX_SIZE} pixels")
    if not 0 <= test < 1:
        raise DatasetCreationError("the test share must be at least 0 and below 1 (e.g. 0.2)")
    src, out = _check_paths(Path(src), Path(out), fmt)

    if (src / "train").is_dir() and (src / "test").is_dir():
        raise DatasetCreationError(f"{src} is a training set already (train/ and test/); give the folder of "
                                   f"its <label>/ folders")
    folders = {}
    for folder in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            label = check_label(folder.name)
        except CaptureError as error:
            raise DatasetCreationError(f"folder {folder.name!r} of {src}: {error}") from None
        if label in folders:
            raise DatasetCreationError(f"{src} has two folders for the label {label!r} (names differ only in case)")
        folders[label] = image_files(folder)
    total = sum(len(files) for files in folders.values())
    if total == 0:
        raise DatasetCreationError(f"{src} holds no images in <label>/ folders (expected e.g. {src}/happy/0001.png)")

    faces: dict[str, list[tuple[str, np.ndarray]]] = {label: [] for label in folders}
    summary = DatasetSummary(out, fmt, {})
    done = 0
    for label, files in folders.items():
        for file in files:
            name = f"{label}/{file.name}"
            if progress is not None:
                progress(done, total, name)
            done += 1
            try:
                rgb = load_image(file, name=name)
            except ImageError as error:
                summary.unreadable.append(one_line(error))
                continue
            if detector is None and not is_face_crop(rgb.shape):
                from .detect import make_detector

                detector = make_detector()
            face = face_of(rgb, detector, size)
            if face is None:
                summary.no_face.append(name)
            else:
                faces[label].append((file.stem, face))
    if progress is not None:
        progress(total, total, "")

    # Stratified: each label is shuffled and cut on its own, so every label keeps the ratio.
    rng = np.random.default_rng(seed)
    splits: dict[str, tuple[list, list]] = {}
    for label, items in faces.items():
        order = rng.permutation(len(items))
        n_test = split_counts(len(items), test)
        splits[label] = ([items[i] for i in order[n_test:]], [items[i] for i in order[:n_test]])
        summary.counts[label] = (len(items) - n_test, n_test)
        if len(items) < MIN_PER_LABEL:
            summary.warnings.append(f"{label!r} has only {len(items)} image{'s' if len(items) != 1 else ''}: "
                                    f"at least {MIN_PER_LABEL} are needed to learn it and test it")
    if not any(len(items) for items in faces.values()):
        raise DatasetCreationError(f"no face was found in any picture of {src}; nothing was written")

    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "folders":
        _write_folders(out, splits)
    else:
        summary.label_index = label_indices([label for label, items in faces.items() if items])
        _write_csv(out, splits, summary.label_index)
    return summary


def _write_folders(out: Path, splits: dict) -> None:
    temp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".tmp-{out.name}-"))
    try:
        for label, parts in splits.items():
            for part, items in zip(("train", "test"), parts):
                if not items:
                    continue
                folder = temp / part / label
                folder.mkdir(parents=True)
                used = Counter()
                for stem, face in items:
                    # Two pictures may share a stem (a.jpg and a.png): the second gets a number.
                    used[stem] += 1
                    name = stem if used[stem] == 1 else f"{stem}-{used[stem]}"
                    if not cv2.imwrite(str(folder / f"{name}.png"), face):
                        raise OSError(f"{folder / name}.png could not be written")
        temp.chmod(0o755)
        os.rename(temp, out)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def _write_csv(out: Path, splits: dict, index: dict[str, int]) -> None:
    def write(temp: Path) -> None:
        with open(temp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["emotion", "pixels", "Usage"])
            for usage, part in (("Training", 0), ("PublicTest", 1)):
                for label, parts in splits.items():
                    for _, face in parts[part]:
                        writer.writerow([index[label], " ".join(map(str, face.ravel().tolist())), usage])

    write_atomically(labels_file(out), lambda temp: temp.write_text(
        "".join(f"{value} {label}\n" for label, value in sorted(index.items(), key=lambda item: item[1]))))
    write_atomically(out, write)


def labels_file(csv_path: str | os.PathLike) -> Path:
    """Where the label list of a CSV made here lies: ``NAME.labels.txt`` beside ``NAME.csv``."""
    path = Path(csv_path)
    return path.with_name(path.stem + ".labels.txt")


def format_summary(summary: DatasetSummary) -> str:
    """The summary as lines for a terminal: counts per label, what was skipped, the warnings."""
    width = max([5] + [len(label) for label in summary.counts])
    lines = [f"{'label':<{width}}  train   test"]
    for label, (train, test) in summary.counts.items():
        lines.append(f"{label:<{width}}  {train:5d}  {test:5d}")
    train, test = summary.total
    lines.append(f"{'all':<{width}}  {train:5d}  {test:5d}")
    if summary.label_index:
        lines.append("emotion column: " + ", ".join(f"{v} {k}" for k, v in
                                                     sorted(summary.label_index.items(), key=lambda kv: kv[1]))
                     + f" (also in {labels_file(summary.out).name})")
    if summary.no_face:
        lines.append(f"skipped, no face found ({len(summary.no_face)}): " + ", ".join(summary.no_face))
    if summary.unreadable:
        lines.append(f"skipped, not a usable image ({len(summary.unreadable)}): " + "; ".join(summary.unreadable))
    lines += [f"warning: {warning}" for warning in summary.warnings]
    lines.append(f"wrote {summary.out}")
    return "\n".join(lines)
