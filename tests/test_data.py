"""Reading FER2013 in its two download forms, and refusing broken datasets clearly."""

import gzip

import cv2
import numpy as np
import pytest

from emotion import LABELS
from emotion.data import DatasetError, load_dataset


def write_csv(path, rows, header="emotion,pixels,Usage"):
    text = header + "\n" + "\n".join(rows) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def face_row(label, value=0, usage="Training"):
    return f"{label},{' '.join([str(value)] * 2304)},{usage}"


def test_real_fer2013_has_the_published_counts(fer2013):
    assert len(fer2013) == 35887
    assert fer2013.images.shape == (35887, 48, 48) and fer2013.images.dtype == np.uint8
    assert fer2013.split("Training").class_counts() == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert fer2013.split("PrivateTest").class_counts() == [491, 55, 528, 879, 594, 416, 626]
    assert len(fer2013.split("PublicTest")) == 3589


@pytest.mark.parametrize("name", ["small.csv", "small.csv.gz"])
def test_csv_plain_and_gzip(tmp_path, name):
    path = write_csv(tmp_path / name, [face_row(3, 7), face_row(6, 255, "PublicTest")])
    data = load_dataset(path)
    assert data.labels.tolist() == [3, 6]
    assert data.usage.tolist() == ["Training", "PublicTest"]
    assert data.images[0].max() == 7 and data.images[1].min() == 255


def test_csv_without_usage_is_all_training_and_labels_may_be_names(tmp_path):
    path = write_csv(tmp_path / "named.csv", ["happy," + " ".join(["1"] * 2304)], "emotion,pixels")
    data = load_dataset(path)
    assert data.labels.tolist() == [LABELS.index("happy")] and data.usage.tolist() == ["Training"]


def test_image_folders(tmp_path):
    for split, label, n in [("train", "happy", 3), ("train", "sad", 2), ("test", "angry", 1)]:
        folder = tmp_path / split / label
        folder.mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(folder / f"{i}.png"), np.full((48, 48), 10 * i, np.uint8))
    (tmp_path / "train" / "happy" / "notes.txt").write_text("ignored")
    cv2.imwrite(str(tmp_path / "train" / "sad" / "big.jpg"), np.zeros((96, 96, 3), np.uint8))
    data = load_dataset(tmp_path)
    assert len(data) == 7 and data.images.shape == (7, 48, 48)
    assert data.split("Training").class_counts()[LABELS.index("happy")] == 3
    assert data.split("PrivateTest").labels.tolist() == [LABELS.index("angry")]


@pytest.mark.parametrize("rows, header, message", [
    ([face_row(3)], "label,image,Usage", "lacks the column"),
    ([face_row(9)], "emotion,pixels,Usage", "unknown emotion label"),
    ([face_row("joy")], "emotion,pixels,Usage", "unknown emotion label"),
    (["3,1 2 3,Training"], "emotion,pixels,Usage", "has 3 pixel values"),
    ([f"3,{' '.join(['x'] * 2304)},Training"], "emotion,pixels,Usage", "not a whole number"),
    ([face_row(3, 300)], "emotion,pixels,Usage", "from 0 to 255"),
    ([face_row(3, usage="Holdout")], "emotion,pixels,Usage", "unknown Usage"),
    ([], "emotion,pixels,Usage", "has no rows"),
])
def test_broken_csv_files_are_refused_with_a_reason(tmp_path, rows, header, message):
    path = write_csv(tmp_path / "bad.csv", rows, header)
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)


def test_empty_or_missing_inputs(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DatasetError, match="not a readable CSV"):
        load_dataset(tmp_path / "empty.csv")
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "missing.csv")
    (tmp_path / "folder").mkdir()
    with pytest.raises(DatasetError, match="holds no images"):
        load_dataset(tmp_path / "folder")
    (tmp_path / "folder" / "joy").mkdir()
    with pytest.raises(DatasetError, match="unknown emotion 'joy'"):
        load_dataset(tmp_path / "folder")
