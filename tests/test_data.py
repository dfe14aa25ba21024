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


# --- packs: the compact copy carried to a GPU machine ---------------------------------------


def real_part(fer2013, training=300, public=100):
    from emotion.data import Dataset

    train, public_test = fer2013.split("Training").head(training), fer2013.split("PublicTest").head(public)
    return Dataset(np.concatenate([train.images, public_test.images]),
                   np.concatenate([train.labels, public_test.labels]),
                   np.concatenate([train.usage, public_test.usage]), fer2013.source)


def test_a_pack_reads_back_as_the_faces_it_was_made_of(fer2013, tmp_path):
    from emotion.data import PACK_COLUMNS, PACK_ROWS, write_pack

    part = real_part(fer2013)
    record = write_pack(part, tmp_path / "pack")
    back = load_dataset(tmp_path / "pack")
    assert back.labels.tolist() == part.labels.tolist() and back.usage.tolist() == part.usage.tolist()
    error = np.abs(back.images.astype(int) - part.images)
    assert error.mean() < 1.5 and error.mean() == pytest.approx(record["mean_abs_error"], abs=0.01)
    assert record["source_checksum_md5"] == part.checksum()
    # Small: under 1.1 kB a face at quality 95, where the faces alone are 2.3 kB.
    assert sum(m["bytes"] for m in record["mosaics"]) / len(part) < 1100
    # Lossless at 100; a split larger than one mosaic spans several.
    lossless = write_pack(part, tmp_path / "lossless", quality=100)
    assert np.array_equal(load_dataset(tmp_path / "lossless").images, part.images) and lossless["max_abs_error"] == 0
    assert max(PACK_COLUMNS, PACK_ROWS) * 48 <= 16383  # a mosaic stays inside WebP's largest picture


def test_a_large_split_spans_several_mosaics(tmp_path, monkeypatch):
    from emotion import data as data_module
    from emotion.data import Dataset, write_pack

    monkeypatch.setattr(data_module, "PACK_ROWS", 1)  # 128 faces a mosaic
    faces = np.random.default_rng(0).integers(0, 256, (300, 48, 48), dtype=np.uint8)
    part = Dataset(faces, np.arange(300) % 7, np.array(["Training"] * 300), "noise")
    record = write_pack(part, tmp_path / "pack", quality=100)
    assert [m["faces"] for m in record["mosaics"]] == [128, 128, 44]
    back = load_dataset(tmp_path / "pack")
    assert np.array_equal(back.images, faces) and back.labels.tolist() == part.labels.tolist()


def test_a_broken_pack_is_refused_in_one_line(fer2013, tmp_path):
    import json

    from emotion.data import write_pack

    pack = tmp_path / "pack"
    write_pack(real_part(fer2013, 140, 0), pack)
    record = json.loads((pack / "pack.json").read_text())
    cases = {
        "missing mosaic": lambda: (pack / "Training-0.webp").unlink(),
        "path trick": lambda: (pack / "pack.json").write_text(json.dumps(
            {**record, "mosaics": [{**record["mosaics"][0], "file": "../../etc/passwd"}]})),
        "wrong count": lambda: (pack / "pack.json").write_text(json.dumps(
            {**record, "mosaics": [{**record["mosaics"][0], "faces": 500}]})),
        "bad label": lambda: (pack / "pack.json").write_text(json.dumps(
            {**record, "mosaics": [{**record["mosaics"][0], "labels": [9] * 140}]})),
        "not json": lambda: (pack / "pack.json").write_text("{"),
    }
    for case, damage in cases.items():
        write_pack(real_part(fer2013, 140, 0), pack)
        damage()
        with pytest.raises(DatasetError) as error:
            load_dataset(pack)
        assert "\n" not in str(error.value), case


def test_cli_packs_training_and_public_test_only(tmp_path, fer2013_slice):
    import subprocess
    import sys

    from conftest import ROOT

    done = subprocess.run([sys.executable, "-m", "emotion", "pack", "--data", str(fer2013_slice),
                           "--out", str(tmp_path / "pack")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    back = load_dataset(tmp_path / "pack")
    assert sorted(set(back.usage)) == ["PublicTest", "Training"] and len(back) == 256 + 64
    assert "train on it with --data" in done.stdout
