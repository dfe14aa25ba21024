"""Face detection on the real photos in ../shared/data/faces."""

import csv

import numpy as np
import pytest

from emotion import load_image
from emotion.detect import HaarDetector, YuNetDetector, make_detector

from conftest import SHARED_DATA, require


def true_counts(faces_dir):
    with open(faces_dir / "faces.csv") as table:
        return {row["file"]: int(row["faces"]) for row in csv.DictReader(table)}


def test_haar_counts_match_faces_csv(faces_dir):
    detector = HaarDetector()
    counts = true_counts(faces_dir)
    found = {name: len(detector.detect(load_image(faces_dir / name))) for name in counts}
    errors = {name: found[name] - counts[name] for name in counts if found[name] != counts[name]}
    assert found["NEG_fer_no-faces.jpg"] == 0
    assert abs(found["aind_test_image_1.jpg"] - 13) <= 1, "the 13-person group photo"
    assert found["deepface_couple.jpg"] == 2 and found["aind_obamas4.jpg"] == 2
    # The selfie's two faces cut by the frame edge are beyond a frontal cascade.
    assert 5 <= found["deepface_selfie-many-people.jpg"] <= 7
    assert sum(abs(e) for e in errors.values()) <= 6, f"miscounts: {errors}"
    single = [n for n, c in counts.items() if c == 1]
    assert sum(found[n] == 1 for n in single) >= len(single) - 3


def test_boxes_lie_inside_the_image_largest_first(faces_dir):
    rgb = load_image(faces_dir / "aind_test_image_1.jpg")
    boxes = HaarDetector().detect(rgb)
    assert boxes.dtype == np.int32 and boxes.shape[1] == 4
    assert (boxes[:, :2] >= 0).all()
    assert (boxes[:, 0] + boxes[:, 2] <= rgb.shape[1]).all()
    assert (boxes[:, 1] + boxes[:, 3] <= rgb.shape[0]).all()
    areas = boxes[:, 2] * boxes[:, 3]
    assert (np.diff(areas) <= 0).all()


def test_downscaled_detection_maps_boxes_back(faces_dir):
    rgb = load_image(faces_dir / "deepface_couple.jpg")  # 2280 px wide, detected at 800
    boxes = HaarDetector().detect(rgb)
    full = HaarDetector(max_side=4000).detect(rgb)
    assert len(boxes) == 2 and len(full) >= 2
    # Each box found on the small copy sits on a face found at full size.
    for x, y, w, h in boxes:
        centre = np.array([x + w / 2, y + h / 2])
        centres = full[:, :2] + full[:, 2:] / 2
        assert np.min(np.linalg.norm(centres - centre, axis=1)) < 0.25 * w


def test_blank_and_tiny_images_have_no_face():
    detector = HaarDetector()
    assert len(detector.detect(np.zeros((480, 640, 3), np.uint8))) == 0
    assert len(detector.detect(np.full((5, 5), 128, np.uint8))) == 0


def test_yunet_detector_from_a_user_file(faces_dir):
    model = require(SHARED_DATA / "detectors" / "face_detection_yunet_2026may.onnx")
    detector = make_detector("yunet", model)
    expected = {"deepface_couple.jpg": 2, "aind_test_image_1.jpg": 13, "NEG_fer_no-faces.jpg": 0}
    for name, count in expected.items():
        boxes = detector.detect(load_image(faces_dir / name))
        assert len(boxes) == count, name
    assert 6 <= len(detector.detect(load_image(faces_dir / "deepface_selfie-many-people.jpg"))) <= 7


def test_bad_detector_settings_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        make_detector("yunet", tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a network")
    with pytest.raises(ValueError, match="not a YuNet"):
        make_detector("yunet", junk)
    with pytest.raises(ValueError, match="unknown face detector"):
        make_detector("mtcnn")
