"""Reading FER2013-style datasets into arrays.

Three layouts are read, the two forms FER2013 is downloaded in and a compact one:

* the Kaggle CSV (``emotion,pixels,Usage``; plain or ``.gz``), one face a row,
  ``pixels`` being 2304 space-separated grey levels of a 48x48 image;
* image folders ``ROOT/train/<label>/*.png`` and ``ROOT/test/<label>/*.png``
  (or ``ROOT/<label>/*`` for a single, unsplit set). Pictures larger than 48x48
  (photos a user sorted by emotion) are cut down to their largest detected face;
* a pack (:func:`write_pack`): each split as WebP mosaics of 48x48 tiles beside a
  ``pack.json`` of labels, small enough to carry to a machine the data is not on.

Either way the result is a :class:`Dataset` of uint8 faces (N, 48, 48), int64
labels (N,) in :data:`emotion.LABELS` order and the split each face belongs to.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import one_line, write_atomically
from .labels import FACE_SIZE, LABELS

SPLITS = ("Training", "PublicTest", "PrivateTest")
# Image-folder names for the splits, as in the common download of FER2013.
FOLDER_SPLITS = {"train": "Training", "val": "PublicTest", "validation": "PublicTest",
                 "test": "PrivateTest"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".pgm"}
CSV_COLUMNS = ("emotion", "pixels")
# An uploaded CSV unpacked in memory: FER2013's is 287 MB; a gzip bomb stops here.
MAX_CSV_BYTES = 512 * 2**20
# Where FER2013 lives beside the project (see README: Data); $FACEMOOD_DATA overrides.
DEFAULT_DATASET = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "fer2013" / "fer2013.csv.gz"


def default_dataset_path() -> Path:
    """The FER2013 file the app offers first: $FACEMOOD_DATA, or ``../shared/data/fer2013``."""
    return Path(os.environ.get("FACEMOOD_DATA") or DEFAULT_DATASET)


class DatasetError(ValueError):
    """The dataset cannot be used; the message says why in one line."""


@dataclass
class Dataset:
    images: np.ndarray  # uint8 (N, 48, 48)
    labels: np.ndarray  # int64 (N,), indices into LABELS
    usage: np.ndarray   # str (N,), one of SPLITS
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, name: str) -> "Dataset":
        keep = self.usage == name
        return Dataset(self.images[keep], self.labels[keep], self.usage[keep], self.source)

    def head(self, n: int) -> "Dataset":
        return Dataset(self.images[:n], self.labels[:n], self.usage[:n], self.source)

    def class_counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(LABELS)).tolist()

    def checksum(self) -> str:
        """md5 of the pixels and labels, to tell which data a model saw."""
        digest = hashlib.md5()
        digest.update(np.ascontiguousarray(self.images).tobytes())
        digest.update(self.labels.astype(np.int64).tobytes())
        return digest.hexdigest()


def load_dataset(path: str | Path) -> Dataset:
    """Read a FER2013 CSV (plain or .gz), a pack or an image-folder dataset."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset not found: {path}")
    if (path / PACK_FILE).is_file():
        return load_pack(path)
    if path.is_dir():
        return load_image_folders(path)
    return load_fer2013_csv(path)


PACK_FILE = "pack.json"
PACK_FORMAT = "facemood-pack-1"
PACK_COLUMNS = 128            # tiles a mosaic row: 6,144 px
PACK_ROWS = 340               # a mosaic's most rows: 16,320 px, under WebP's 16,383 a side


def write_pack(data: Dataset, out: str | Path, quality: int = 95) -> dict:
    """Write ``data`` to the folder ``out`` as WebP mosaics of its faces (one or more a split,
    tiles in order, row by row) and ``pack.json`` (each mosaic's face count and labels, the
    source and its checksum, how far the compression moved the pixels); returns that record.

    ``quality`` 100 is lossless. Lossless mosaics of FER2013's Training and PublicTest faces take 50 MB; at ``quality`` 95
    (grey levels off by about 1 on average) 30 MB, which the GPU machine's 64 MiB allows
    beside the project. A model trained on a pack is scored on the original data.
    """
    import cv2

    if not 1 <= quality <= 100:
        raise DatasetError(f"quality must be 1 to 100 (got {quality})")
    if len(data) == 0:
        raise DatasetError("nothing to pack: the dataset has no faces")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_file = PACK_COLUMNS * PACK_ROWS
    record = {"format": PACK_FORMAT, "face_size": FACE_SIZE, "columns": PACK_COLUMNS, "quality": quality,
              "source": Path(data.source).name, "source_checksum_md5": data.checksum(), "mosaics": []}
    error_sum = error_max = 0
    for split in [s for s in SPLITS if s in set(data.usage)]:
        part = data.split(split)
        for start in range(0, len(part), per_file):
            faces, labels = part.images[start:start + per_file], part.labels[start:start + per_file]
            name = f"{split}-{start // per_file}.webp"
            # OpenCV's WebP is lossless above 100 only.
            ok, encoded = cv2.imencode(".webp", _mosaic(faces), [cv2.IMWRITE_WEBP_QUALITY, 101 if quality == 100 else quality])
            if not ok:
                raise DatasetError(f"{name} could not be encoded")
            write_atomically(out / name, lambda temp: temp.write_bytes(encoded.tobytes()))
            back = _tiles(cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE), len(faces)).astype(np.int16)
            error = np.abs(back - faces)
            error_sum, error_max = error_sum + int(error.sum()), max(error_max, int(error.max()))
            record["mosaics"].append({"file": name, "split": split, "faces": len(faces),
                                      "bytes": len(encoded), "labels": labels.tolist()})
    record["mean_abs_error"] = round(error_sum / data.images.size, 3)
    record["max_abs_error"] = error_max
    write_atomically(out / PACK_FILE, lambda temp: temp.write_text(json.dumps(record) + "\n"))
    return record


def _mosaic(faces: np.ndarray) -> np.ndarray:
    rows = -(-len(faces) // PACK_COLUMNS)
    grid = np.zeros((rows * PACK_COLUMNS, FACE_SIZE, FACE_SIZE), np.uint8)
    grid[:len(faces)] = faces
    return grid.reshape(rows, PACK_COLUMNS, FACE_SIZE, FACE_SIZE).transpose(0, 2, 1, 3).reshape(
        rows * FACE_SIZE, PACK_COLUMNS * FACE_SIZE)


def _tiles(mosaic: np.ndarray, count: int) -> np.ndarray:
    rows = mosaic.shape[0] // FACE_SIZE
    tiles = mosaic.reshape(rows, FACE_SIZE, PACK_COLUMNS, FACE_SIZE).transpose(0, 2, 1, 3)
    return tiles.reshape(-1, FACE_SIZE, FACE_SIZE)[:count]


def load_pack(root: str | Path) -> Dataset:
    """Read a pack written by :func:`write_pack`."""
    import cv2

    root = Path(root)
    try:
        record = json.loads((root / PACK_FILE).read_text())
        mosaics = record["mosaics"] if record.get("format") == PACK_FORMAT else None
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise DatasetError(f"{root / PACK_FILE} is not a readable pack record ({one_line(error)})") from None
    if not mosaics or record.get("columns") != PACK_COLUMNS or record.get("face_size") != FACE_SIZE:
        raise DatasetError(f"{root / PACK_FILE} is not a {PACK_FORMAT} record of 48x48 faces")
    images, labels, usage = [], [], []
    for entry in mosaics:
        name, count = Path(str(entry.get("file", ""))).name, entry.get("faces")  # no path out of the pack
        mosaic = cv2.imread(str(root / name), cv2.IMREAD_GRAYSCALE) if name else None
        expected_rows = -(-count // PACK_COLUMNS) if isinstance(count, int) and count > 0 else -1
        if mosaic is None or mosaic.shape != (expected_rows * FACE_SIZE, PACK_COLUMNS * FACE_SIZE):
            raise DatasetError(f"{root.name}/{name or '?'} is missing, unreadable or not the size its record says")
        if entry.get("split") not in SPLITS or len(entry.get("labels") or ()) != count \
                or not all(isinstance(v, int) and 0 <= v < len(LABELS) for v in entry["labels"]):
            raise DatasetError(f"{root / PACK_FILE}: the entry of {name} has a wrong split or labels")
        images.append(_tiles(mosaic, count))
        labels += entry["labels"]
        usage += [entry["split"]] * count
    return Dataset(np.concatenate(images), np.array(labels, dtype=np.int64), np.array(usage), source=str(root))


def load_fer2013_csv(path: str | Path | bytes, name: str | None = None) -> Dataset:
    """Read a FER2013 CSV from a file (plain or .gz) or from its bytes (an upload, which so
    never touches the disk); ``name`` is how messages call it (default: the file's name)."""
    import pandas as pd

    if isinstance(path, (bytes, bytearray, memoryview)):
        name = name or "upload.csv"
        reader, source = _unpacked(bytes(path), name), name
    else:
        path = Path(path)
        name = name or path.name
        reader, source = path, str(path)
    try:
        table = pd.read_csv(reader, dtype={"pixels": str}, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError,
            EOFError) as error:
        raise DatasetError(f"{name} is not a readable CSV file: {one_line(error)}")
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{name} lacks the column(s) {', '.join(missing)}; a FER2013 CSV "
                           f"has emotion,pixels,Usage (found: {', '.join(table.columns[:6])})")
    if table.empty:
        raise DatasetError(f"{name} has no rows")

    labels = _parse_labels(table["emotion"], name)
    images = _parse_pixels(table["pixels"], name)
    if "Usage" in table.columns:
        usage = table["Usage"].astype(str).str.strip().to_numpy()
        unknown = sorted(set(usage) - set(SPLITS))
        if unknown:
            raise DatasetError(f"{name}: unknown Usage value(s) {unknown[:3]}; "
                               f"expected {', '.join(SPLITS)}")
    else:
        usage = np.full(len(labels), "Training")
    return Dataset(images, labels, usage.astype(str), source=source)


# FER+ (fer2013new.csv): ten annotators' votes for every FER2013 row, in the same order,
# over these columns; the first seven are ours under other names and in another order.
FERPLUS_COLUMNS = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy",
                   "sadness": "sad", "surprise": "surprise", "neutral": "neutral"}


def load_crowd_votes(path: str | Path, data: Dataset) -> np.ndarray:
    """FER+ crowd votes for every face of ``data`` (the FER2013 CSV they were cast on) as
    float32 shares (N, 7) in LABELS order; a face with no vote for any of the seven
    (only "contempt", "unknown" or "not a face") has a row of zeros."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"crowd votes not found: {path}")
    try:
        table = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as error:
        raise DatasetError(f"{path.name} is not a readable CSV file: {one_line(error)}")
    missing = [c for c in FERPLUS_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(f"{path.name} lacks the FER+ vote column(s) {', '.join(missing)}")
    if len(table) != len(data) or ("Usage" in table.columns
                                   and not (table["Usage"].astype(str).to_numpy() == data.usage).all()):
        raise DatasetError(f"{path.name} does not match {Path(data.source).name} row for row "
                           f"({len(table)} against {len(data)} rows); FER+ votes go with the FER2013 CSV")
    by_label = {ours: theirs for theirs, ours in FERPLUS_COLUMNS.items()}
    votes = table[[by_label[label] for label in LABELS]].to_numpy(dtype=np.float64)
    if not np.isfinite(votes).all() or (votes < 0).any():
        raise DatasetError(f"{path.name} has vote counts that are not whole numbers of 0 or more")
    totals = votes.sum(axis=1, keepdims=True)
    return np.divide(votes, totals, out=np.zeros_like(votes), where=totals > 0).astype(np.float32)


def _unpacked(data: bytes, name: str):
    """In-memory CSV bytes as a file for pandas, gunzipped when gzipped, never unpacking
    more than MAX_CSV_BYTES (a small .gz can unpack to gigabytes)."""
    import gzip
    import io

    if data[:2] != b"\x1f\x8b":
        return io.BytesIO(data)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as packed:
            text = packed.read(MAX_CSV_BYTES + 1)
    except (OSError, EOFError) as error:
        raise DatasetError(f"{name} is not a readable gzip file ({error})") from None
    if len(text) > MAX_CSV_BYTES:
        raise DatasetError(f"{name} unpacks to more than {MAX_CSV_BYTES // 2**20} MiB, the most "
                           f"accepted for an uploaded CSV")
    return io.BytesIO(text)


def _parse_labels(column, name: str) -> np.ndarray:
    import pandas as pd

    text = column.astype(str).str.strip().str.lower()
    by_name = {label: i for i, label in enumerate(LABELS)}
    numeric = pd.to_numeric(text, errors="coerce")
    labels = numeric.where(numeric.notna(), text.map(by_name))
    bad = labels.isna() | ~labels.isin(range(len(LABELS)))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(f"{name}: unknown emotion label {column.iloc[row]!r} on data row "
                           f"{row + 1}; expected 0-6 or one of {', '.join(LABELS)}")
    return labels.to_numpy().astype(np.int64)


def _parse_pixels(column, name: str) -> np.ndarray:
    import warnings

    size = FACE_SIZE * FACE_SIZE
    # One C-level parse of the whole column: ~3 s for FER2013, against ~45 s row by row.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy only warns when it meets a non-number
        try:
            numbers = np.fromstring(" ".join(column.tolist()), dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            numbers = None
    if numbers is None or numbers.size != len(column) * size:
        for row, text in enumerate(column):
            values = text.split()
            if len(values) != size:
                raise DatasetError(f"{name}: data row {row + 1} has {len(values)} pixel values, "
                                   f"expected {size} (48x48)")
            if not all(v.isdigit() for v in values):
                raise DatasetError(f"{name}: data row {row + 1} has a pixel value that is not "
                                   f"a whole number")
        raise DatasetError(f"{name}: the pixels column could not be read")
    if numbers.min() < 0 or numbers.max() > 255:
        raise DatasetError(f"{name}: pixel values must be whole numbers from 0 to 255")
    return numbers.astype(np.uint8).reshape(-1, FACE_SIZE, FACE_SIZE)


def face_crop(grey: np.ndarray, detector=None) -> np.ndarray:
    """A uint8 48x48 face from a grey image: in a picture larger than 48x48 (a photo, not a
    FER2013-style crop), the largest face ``detector`` finds, found and framed by the same
    stages as every photo the app analyses; else the whole image, resized."""
    import cv2

    if detector is not None and max(grey.shape) > FACE_SIZE:
        from .pipeline import crop_faces, detect_faces, smallest_face_px

        boxes = detect_faces(detector, cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), smallest_face_px(grey.shape))
        if len(boxes):
            return crop_faces(grey, boxes[np.argmax(boxes[:, 2] * boxes[:, 3])][None])[0]
    if grey.shape == (FACE_SIZE, FACE_SIZE):
        return grey
    return cv2.resize(grey, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


def load_image_folders(root: str | Path, names: tuple[str, ...] = LABELS) -> Dataset:
    """Read ``root/<split>/<label>/*`` or ``root/<label>/*`` into a Dataset. ``names`` are the
    labels allowed, in index order: the seven emotions, or a personal dataset's own (``smile``)."""
    import cv2

    root = Path(root)
    split_dirs = {FOLDER_SPLITS[d.name.lower()]: d for d in sorted(root.iterdir())
                  if d.is_dir() and d.name.lower() in FOLDER_SPLITS}
    if not split_dirs:
        split_dirs = {"Training": root}

    images, labels, usage = [], [], []
    detector = None  # made on the first photo larger than a face crop
    for split, folder in split_dirs.items():
        for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            label = label_dir.name.strip().lower()
            if label not in names:
                raise DatasetError(f"folder {label_dir.relative_to(root)}: unknown emotion "
                                   f"{label_dir.name!r}; expected one of {', '.join(names)}")
            for file in sorted(label_dir.iterdir()):
                if file.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                grey = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
                if grey is None:
                    raise DatasetError(f"{file.relative_to(root)} is not a readable image")
                if grey.shape != (FACE_SIZE, FACE_SIZE):
                    if detector is None and max(grey.shape) > FACE_SIZE:
                        from .detect import make_detector

                        detector = make_detector()
                    grey = face_crop(grey, detector)
                images.append(grey)
                labels.append(names.index(label))
                usage.append(split)
    if not images:
        raise DatasetError(f"{root} holds no images in <label>/ folders "
                           f"(expected e.g. {root}/train/happy/0001.png)")
    return Dataset(np.stack(images).astype(np.uint8), np.array(labels, dtype=np.int64),
                   np.array(usage), source=str(root))
