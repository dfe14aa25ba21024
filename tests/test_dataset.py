"""The dataset creator (``emotion.dataset``, ``python -m emotion dataset``): captured crops of a real
clip and real photos made into grey faces with a stratified split, as folders or a FER2013 CSV, that
the training code reads as they are; photos without a face listed and skipped."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FACES_DIR, ROOT, SHARED_DATA, require

from emotion.access import DATASETS_DIR, AccessPolicy
from emotion.capture import Capturer, video_frames
from emotion.data import load_fer2013_csv, load_image_folders
from emotion.dataset import (MIN_PER_LABEL, DatasetCreationError, create_dataset, format_summary, is_face_crop,
                             labels_file, split_counts)
from emotion.detect import BlazeFaceDetector

CLIP = SHARED_DATA / "video" / "fer_woman2.mp4"
PHOTOS = ["fer_justin.jpg", "aind_gus.jpg", "aind_james.jpg", "deepface_img1.jpg", "deepface_couple.jpg"]
COUNTS = {"happy": 25, "smile": 10, "sad": 3}   # captured crops per label


@pytest.fixture(scope="module")
def detector():
    return BlazeFaceDetector()


@pytest.fixture(scope="module")
def source(tmp_path_factory, detector) -> Path:
    """SRC/<label>/: crops captured from the clip (25 happy, 10 smile, 3 sad), and in neutral five
    real photos, the photo with no human face and a file that is not an image."""
    root = tmp_path_factory.mktemp("captured") / "mine"
    capturers = [Capturer(root, label, count, gap_s=0, gap_frames=3, detector=detector, started=True)
                 for label, count in COUNTS.items()]
    frames = video_frames(require(CLIP))
    for capturer in capturers:
        for seconds, rgb in frames:
            capturer.offer(rgb, now=seconds)
            if capturer.done:
                break
        assert capturer.done
    neutral = root / "neutral"
    neutral.mkdir()
    for name in PHOTOS + ["NEG_fer_no-faces.jpg"]:
        shutil.copy(require(FACES_DIR / name), neutral / name)
    (neutral / "broken.jpg").write_bytes(b"not a picture")
    return root


def test_folders_stratified_split_and_the_training_loader_reads_them(source, detector, tmp_path):
    out = tmp_path / "set"
    summary = create_dataset(source, out, test=0.2, seed=0, detector=detector)
    assert summary.counts == {"happy": (20, 5), "neutral": (4, 1), "sad": (2, 1), "smile": (8, 2)}
    assert summary.no_face == ["neutral/NEG_fer_no-faces.jpg"]
    assert len(summary.unreadable) == 1 and "neutral/broken.jpg" in summary.unreadable[0]
    assert {w.split("'")[1] for w in summary.warnings} == {"neutral", "sad", "smile"}  # under MIN_PER_LABEL
    for part, index in (("train", 0), ("test", 1)):
        for label, counts in summary.counts.items():
            files = sorted((out / part / label).glob("*.png"))
            assert len(files) == counts[index]
            assert all(cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape == (48, 48) for f in files)
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]
    # Each source picture is in exactly one split.
    names = [p.stem for p in out.rglob("*.png")]
    assert len(names) == len(set(names)) == 43
    # A photo's face is cut from it (re-detected), not the photo squeezed to 48x48.
    justin = next(out.rglob("fer_justin.png"))
    squeezed = cv2.resize(cv2.imread(str(FACES_DIR / "fer_justin.jpg"), cv2.IMREAD_GRAYSCALE), (48, 48),
                          interpolation=cv2.INTER_AREA)
    assert np.abs(cv2.imread(str(justin), 0).astype(int) - squeezed.astype(int)).mean() > 20

    # The training code reads the seven emotions' folders as they are (test is its PrivateTest).
    seven = tmp_path / "seven"
    only = tmp_path / "only-seven"
    for label in ("happy", "sad", "neutral"):
        shutil.copytree(source / label, only / label)
    create_dataset(only, seven, detector=detector)
    data = load_image_folders(seven)
    assert len(data.split("Training")) == 26 and len(data.split("PrivateTest")) == 7
    assert data.images.shape[1:] == (48, 48)
    with pytest.raises(ValueError, match="unknown emotion 'smile'"):  # the Training page says this in one line
        load_image_folders(out)


def test_the_same_seed_gives_the_same_split(source, detector, tmp_path):
    def split(seed, name):
        create_dataset(source, tmp_path / name, seed=seed, detector=detector)
        return sorted(p.name for p in (tmp_path / name / "test").rglob("*.png"))

    assert split(0, "a") == split(0, "b")
    assert split(0, "a2") != split(1, "c")


@pytest.mark.parametrize("n, test, expected", [(25, 0.2, 5), (10, 0.2, 2), (3, 0.2, 1), (2, 0.2, 1), (1, 0.2, 0),
                                               (2, 0.9, 1), (7, 0.0, 0), (100, 0.25, 25)])
def test_split_counts(n, test, expected):
    assert split_counts(n, test) == expected


def test_csv_in_fer2013_format_with_own_labels_numbered(source, detector, tmp_path):
    summary = create_dataset(source, tmp_path / "set", fmt="csv", test=0.3, seed=3, size=48, detector=detector)
    out = tmp_path / "set.csv"
    assert summary.out == out and out.is_file()
    assert summary.label_index == {"happy": 3, "sad": 4, "neutral": 6, "smile": 7}
    assert labels_file(out).read_text() == "3 happy\n4 sad\n6 neutral\n7 smile\n"
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["emotion", "pixels", "Usage"]
    assert {r["Usage"] for r in rows} == {"Training", "PublicTest"}
    for label, (train, test) in summary.counts.items():
        index = str(summary.label_index[label])
        assert sum(r["emotion"] == index and r["Usage"] == "Training" for r in rows) == train
        assert sum(r["emotion"] == index and r["Usage"] == "PublicTest" for r in rows) == test
    assert summary.counts["happy"] == (17, 8) and summary.counts["sad"] == (2, 1)
    assert all(len(r["pixels"].split()) == 48 * 48 for r in rows)
    # FER2013's reader takes the seven emotions' rows as they are; a label of its own it refuses.
    seven = tmp_path / "seven.csv"
    seven.write_text("emotion,pixels,Usage\n" + "".join(f"{r['emotion']},{r['pixels']},{r['Usage']}\n"
                                                        for r in rows if r["emotion"] != "7"))
    data = load_fer2013_csv(seven)
    assert len(data) == len(rows) - sum(summary.counts["smile"])
    assert len(data.split("PublicTest")) == 8 + 1 + 2
    with pytest.raises(ValueError):
        load_fer2013_csv(out)


def test_other_sizes(source, detector, tmp_path):
    create_dataset(source, tmp_path / "big", size=64, detector=detector)
    shapes = {cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape for f in (tmp_path / "big").rglob("*.png")}
    assert shapes == {(64, 64)}


def test_crop_or_photo_rule():
    assert is_face_crop((48, 48)) and is_face_crop((96, 90)) and is_face_crop((48, 48, 3))
    assert not is_face_crop((97, 97)) and not is_face_crop((48, 64)) and not is_face_crop((480, 640, 3))


def test_bad_input_is_refused_before_anything_is_written(source, detector, tmp_path):
    existing = tmp_path / "exists"
    existing.mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "badlabel" / "my photos").mkdir(parents=True)
    (tmp_path / "badlabel" / "my photos" / "a.png").write_bytes(b"")
    made = tmp_path / "made"
    create_dataset(source, made, detector=detector)
    cases = [
        (dict(src=tmp_path / "missing", out=tmp_path / "o1"), "is not a folder"),
        (dict(src=source, out=existing), "already exists"),
        (dict(src=source, out=source / "set"), "inside the source folder"),
        (dict(src=tmp_path / "empty", out=tmp_path / "o2"), "holds no images"),
        (dict(src=tmp_path / "badlabel", out=tmp_path / "o3"), "cannot be a label name"),
        (dict(src=source, out=tmp_path / "o4", test=1.0), "test share"),
        (dict(src=source, out=tmp_path / "o5", size=4), "face size"),
        (dict(src=source, out=tmp_path / "o6", fmt="xml"), "unknown format"),
        (dict(src=made, out=tmp_path / "o7"), "a training set already"),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for kwargs, message in cases:
        with pytest.raises(DatasetCreationError, match=message) as refused:
            create_dataset(detector=detector, **kwargs)
        assert "\n" not in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (source / "set").exists() and list(existing.iterdir()) == []


def test_summary_text(source, detector, tmp_path):
    text = format_summary(create_dataset(source, tmp_path / "set", detector=detector))
    assert re.search(r"^happy +20 +5$", text, re.M) and re.search(r"^all +34 +9$", text, re.M)
    assert "skipped, no face found (1): neutral/NEG_fer_no-faces.jpg" in text
    assert f"warning: 'sad' has only 3 images: at least {MIN_PER_LABEL} are needed" in text


def test_cli(source, tmp_path):
    run = lambda *args: subprocess.run([sys.executable, "-m", "emotion", "dataset", *map(str, args)],  # noqa: E731
                                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    done = run(source, "--out", tmp_path / "set", "--test", 0.2, "--seed", 0)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^happy +20 +5$", done.stdout, re.M) and done.stdout.strip().endswith(f"wrote {tmp_path / 'set'}")
    assert len(list((tmp_path / "set" / "test").rglob("*.png"))) == 9
    again = run(source, "--out", tmp_path / "set")
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "already exists" in again.stderr


def test_the_training_page_may_read_the_project_datasets(monkeypatch):
    monkeypatch.delenv("FACEMOOD_DATA_DIRS", raising=False)
    policy = AccessPolicy.from_settings(None, environ={})
    assert policy.data_path(DATASETS_DIR / "mine-set") == DATASETS_DIR.resolve() / "mine-set"
