"""Facial keypoints: the person split, flip augmentation, training on a slice, the shipped model
against the mean-shape baseline on people it never saw, landmarks on real photos, the CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SHARED_DATA, require
from emotion import keypoints as kp

DATA = SHARED_DATA / "keypoints" / "keypoints96.npz"
SHIPPED = ROOT / "models" / "facemood-keypoints.keras"


@pytest.fixture(scope="module")
def data() -> kp.KeypointData:
    return kp.load_keypoints(require(DATA))


@pytest.fixture(scope="module")
def shipped() -> kp.KeypointModel:
    return kp.KeypointModel.load(require(SHIPPED))


def test_split_by_person_never_shares_a_person(data):
    parts = kp.split_by_person(data.people)
    people = {name: set(data.people[index]) for name, index in parts.items()}
    assert not people["train"] & people["test"] and not people["train"] & people["validation"]
    assert not people["validation"] & people["test"]
    assert sum(len(index) for index in parts.values()) == len(data)
    assert 0.1 < len(parts["test"]) / len(data) < 0.2
    # The same seed gives the same people: the card's held-out list can be rebuilt.
    again = kp.split_by_person(data.people)
    assert all(np.array_equal(parts[name], again[name]) for name in parts)


def test_flip_swaps_left_and_right_landmarks(data):
    points = data.points[:50]
    assert np.allclose(kp.flip_points(kp.flip_points(points)), points, atol=1e-4)
    assert np.array_equal(kp.FLIP_INDEX[kp.FLIP_INDEX], np.arange(68))
    flipped = kp.flip_points(points)
    # The mirrored right eye's outer corner (45) is the new point 36, and so on.
    assert np.allclose(flipped[:, 36, 0], 95 - points[:, 45, 0]) and np.allclose(flipped[:, 36, 1], points[:, 45, 1])
    assert np.allclose(flipped[:, 8], np.stack([95 - points[:, 8, 0], points[:, 8, 1]], -1))  # chin stays
    # In every frontal crop point 36 lies left of 45, point 0 left of 16, 48 left of 54: after a flip too.
    for left, right in ((36, 45), (0, 16), (48, 54), (17, 26)):
        assert (flipped[:, left, 0] < flipped[:, right, 0]).mean() > 0.95
        assert (points[:, left, 0] < points[:, right, 0]).mean() > 0.95


def test_augmentation_moves_points_with_the_picture(data):
    """A dot drawn at a landmark is still at that landmark (by index) after a random flip,
    rotation, shift and zoom of the picture."""
    rng = np.random.default_rng(3)
    points = data.points[:40]
    images = np.zeros((40, 96, 96), np.uint8)
    for image, face in zip(images, points):
        x, y = np.round(face[36]).astype(int)  # the subject's right eye's outer corner
        image[y - 1:y + 2, x - 1:x + 2] = 255
    aug = kp.KeypointAugmentation(flip=True, rotation=15, shift=0.05, scale=0.1, brightness=0, contrast=0)
    moved_images, moved_points = kp.augment(images, points, rng, aug)
    errors = []
    for image, face, original in zip(moved_images, moved_points, points):
        y, x = np.unravel_index(np.argmax(image), image.shape)
        # The dot is now at point 36, or, when the picture was mirrored, at point 45.
        mirrored = np.linalg.norm(face[45] - (x, y)) < np.linalg.norm(face[36] - (x, y))
        errors.append(np.linalg.norm(face[45 if mirrored else 36] - (x, y)))
    assert np.max(errors) < 2.0
    assert (moved_points[:, 36, 0] < moved_points[:, 45, 0]).mean() > 0.95  # a flip kept left left


def test_one_epoch_on_a_slice_writes_model_and_card(tmp_path):
    config = kp.KeypointConfig(epochs=1, limit=64, batch_size=32, width=16)
    card = kp.train_keypoints(config, tmp_path / "kp.keras", require(DATA), run_dir=tmp_path / "run")
    assert (tmp_path / "kp.keras").is_file()
    saved = json.loads((tmp_path / "kp.json").read_text())
    assert saved["nme"] == card["nme"] and 0 < saved["nme"] < 1
    assert saved["nme_baseline"] > 0 and saved["pixel_error_baseline"] > 0
    assert saved["held_out_people"] and not set(saved["held_out_people"]) & set(saved["validation_people"])
    assert saved["training"]["epochs"] == 1 and saved["data"]["train_crops"] == 64
    assert saved["kind"] == "keypoints" and saved["file_size_bytes"] > 0
    # The file it wrote is a keypoint model the app can use.
    model = kp.KeypointModel.load(tmp_path / "kp.keras")
    assert model.predict_crops(np.zeros((2, 96, 96), np.uint8)).shape == (2, 68, 2)


def test_shipped_model_beats_the_mean_shape_on_held_out_people(data, shipped):
    card = shipped.card
    config = card["training"]["config"]
    parts = kp.split_by_person(data.people, config["test_people"], config["validation_people"], config["seed"])
    test = data.take(parts["test"])
    assert sorted(set(test.people)) == card["held_out_people"]
    assert not set(test.people) & set(data.people[parts["train"]])
    baseline = kp.mean_shape(data.points[parts["train"]])
    predicted = shipped.predict_crops(test.images)
    model_nme = kp.nme(predicted, test.points)
    baseline_nme = kp.nme(np.broadcast_to(baseline, test.points.shape), test.points)
    assert model_nme < 0.6 * baseline_nme
    assert model_nme == pytest.approx(card["nme"], abs=0.002)  # the card tells the truth
    assert baseline_nme == pytest.approx(card["nme_baseline"], abs=0.002)


def test_landmarks_on_real_photos_fall_inside_their_face_boxes(shipped):
    """On the real photos, each face the detector finds that matches a true box (IoU >= 0.5) gets
    68 landmarks inside that box (grown by a tenth, as the drawn boxes are tight), eyes above
    the mouth."""
    from emotion import EmotionRecognizer
    from emotion.detect import iou
    from emotion.imageio import load_image

    faces = require(SHARED_DATA / "faces")
    truth: dict[str, list] = {}
    with open(faces / "boxes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["cut"] == "0":
                truth.setdefault(row["file"], []).append([float(row[k]) for k in "xywh"])
    recognizer = EmotionRecognizer()
    checked, inside = 0, []
    for name, boxes in truth.items():
        rgb = load_image(faces / name)
        results = kp.with_keypoints(shipped, rgb, recognizer.analyze_rgb(rgb))
        for result in results:
            scores = [iou(result.box, box) for box in boxes]
            if max(scores) < 0.5:
                continue
            x, y, w, h = boxes[int(np.argmax(scores))]
            points = result.keypoints
            assert points.shape == (68, 2)
            grown = (x - 0.1 * w, y - 0.1 * h, x + 1.1 * w, y + 1.1 * h)
            within = ((points[:, 0] >= grown[0]) & (points[:, 0] <= grown[2])
                      & (points[:, 1] >= grown[1]) & (points[:, 1] <= grown[3]))
            inside.append(within.mean())
            assert points[36:48, 1].mean() < points[48:68, 1].mean()  # eyes above the mouth
            checked += 1
    assert checked >= 30
    assert min(inside) >= 0.9 and np.mean(inside) >= 0.98


def test_results_carry_keypoints_only_when_asked(shipped, faces_dir):
    from emotion import EmotionRecognizer
    from emotion.imageio import load_image

    rgb = load_image(faces_dir / "deepface_couple.jpg")
    results = EmotionRecognizer().analyze_rgb(rgb)
    assert results and all("keypoints" not in r.to_dict() for r in results)
    marked = kp.with_keypoints(shipped, rgb, results)
    for result in marked:
        points = result.to_dict()["keypoints"]
        assert len(points) == 68 and all(len(p) == 2 for p in points)


def test_cli_predict_keypoints_json(faces_dir):
    photo = faces_dir / "deepface_couple.jpg"
    result = subprocess.run([sys.executable, "-m", "emotion", "predict", str(photo), "--json", "--keypoints"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    faces = report[0]["faces"]
    assert len(faces) == 2
    for face in faces:
        points = np.array(face["keypoints"])
        assert points.shape == (68, 2)
        x, y, w, h = face["box"]
        assert x - w * 0.2 <= points[:, 0].mean() <= x + w * 1.2 and y <= points[:, 1].mean() <= y + h


def test_live_pipeline_adds_keypoints_only_when_on(faces_dir):
    from emotion import EmotionClassifier
    from emotion.imageio import load_image
    from emotion.live import LivePipeline, LiveSettings

    frame = load_image(faces_dir / "deepface_img1.jpg")
    pipeline = LivePipeline(EmotionClassifier.load(), LiveSettings(min_face=0.1), detect_every=1,
                            confirm_new=False)
    plain = None
    for _ in range(3):
        plain = pipeline.process(frame)
    assert plain.faces and all(face.keypoints is None for face in plain.faces)
    pipeline.configure(keypoints=True)
    marked = pipeline.process(frame)
    assert marked.faces and all(face.keypoints.shape == (68, 2) for face in marked.faces)
    # The points are drawn inside the face: the picture differs there from the plain one.
    x, y, w, h = marked.faces[0].box
    inner = (slice(y + h // 4, y + h), slice(x + w // 8, x + w - w // 8))
    assert (marked.image[inner] != plain.image[inner]).any(axis=-1).mean() > 0.01


# --- the pages (AppTest, the real models) -------------------------------------------------

def test_image_page_toggle_draws_and_exports_keypoints(app_model, media):
    from test_app import analysed, downloads, image_page, upload

    at = image_page()
    at.toggle(key="image_keypoints").set_value(True).run()
    at = analysed(at, [upload("deepface_couple.jpg")])
    assert not at.exception and not at.error and not at.warning
    report = json.loads(downloads(at, media, "Results JSON")[0])
    assert len(report["faces"]) == 2
    assert all(np.array(face["keypoints"]).shape == (68, 2) for face in report["faces"])
    rows = list(csv.DictReader(io.StringIO(downloads(at, media, "Results CSV")[0].decode())))
    assert [json.loads(row["keypoints"]) for row in rows] == [face["keypoints"] for face in report["faces"]]
    assert "keypoints" not in at.dataframe[0].value.columns  # 136 numbers: downloads only


def test_training_page_keypoints_tab_shows_the_shipped_card(app_model):
    from test_app import home

    at = home()
    at.switch_page("pages/training.py").run(timeout=300)
    assert not at.exception, at.exception
    # Drawn only while its tab is open: the other tabs pay nothing for it.
    assert "NME, unseen people" not in [m.label for m in at.metric]
    at.session_state["training_tab"] = "Facial keypoints"
    at.run(timeout=300)
    assert not at.exception, at.exception
    card = json.loads(SHIPPED.with_suffix(".json").read_text())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["NME, unseen people"] == f"{card['nme']:.1%}"
    assert metrics["Mean shape NME"] == f"{card['nme_baseline']:.1%}"
    assert metrics["Held-out people"] == str(len(card["held_out_people"]))
    assert not [e for e in at.error if "Keypoint" in e.value]


def test_webcam_toggle_reaches_the_live_pipeline(streamer):
    from test_webcam_page import video_frame, webcam_page

    at = webcam_page()
    session = at.session_state["webcam_session"]
    assert not session.pipeline.settings.keypoints  # off by default
    at.toggle(key="webcam_keypoints").set_value(True).run()
    assert not at.exception and not at.warning
    assert session.pipeline.settings.keypoints and at.session_state["webcam_session"] is session
    faces = []
    for _ in range(3):
        faces = session.pipeline.process(video_frame()).faces
    assert faces and all(face.keypoints.shape == (68, 2) for face in faces)
    at.toggle(key="webcam_keypoints").set_value(False).run()
    assert not session.pipeline.settings.keypoints
    assert all(face.keypoints is None for face in session.pipeline.process(video_frame()).faces)
