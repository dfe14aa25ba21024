"""Tracking and smoothing (emotion.tracking) on the shared photo stages, with real video frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import SHARED_DATA, require
from emotion.detect import BlazeFaceDetector, iou
from emotion.labels import LABELS
from emotion.pipeline import detect_faces, shrink, smallest_face_px
from emotion.tracking import Smoother, Track, Tracker


def clip(name: str, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(require(SHARED_DATA / "video" / name)))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (640, 480), interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


@pytest.fixture(scope="module")
def woman() -> list[np.ndarray]:
    return clip("fer_woman2.mp4", 120)


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    return BlazeFaceDetector()


def follow(frames, detector, every: int, min_face: float = 0.15):
    """Detect with the photo stage every ``every`` frames, follow with the tracker in between;
    yields (frame, tracker, detected) after each frame."""
    tracker = Tracker()
    for index, rgb in enumerate(frames):
        smallest = smallest_face_px(rgb.shape, min_face)
        scale = min(1.0, 24 / smallest)
        flow_image = shrink(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), scale)
        tracker.follow(flow_image, scale)
        detected = index % every == 0 or index == 1  # the second frame confirms the new face
        if detected:
            tracker.match(detect_faces(detector, rgb, smallest), index, smoothing=0.6)
            tracker.seed(flow_image, scale)
        tracker.drop_lost(rgb.shape, index)
        yield rgb, tracker, detected


def test_optical_flow_keeps_the_box_on_the_face_between_detections(woman, detector):
    overlaps, ids = [], set()
    for index, (rgb, tracker, detected) in enumerate(follow(woman, detector, every=8)):
        ids.update(t.track_id for t in tracker.confirmed())
        if not detected and index % 3 == 0 and tracker.confirmed():
            truth = detect_faces(detector, rgb, smallest_face_px(rgb.shape, 0.15))
            if len(truth):
                overlaps.append(iou(tracker.confirmed()[0].box, truth).max())
    assert ids == {1}  # one person, one id, through 120 frames with detection on one frame in eight
    assert len(overlaps) >= 20 and np.median(overlaps) > 0.7 and min(overlaps) > 0.4, overlaps


def test_new_faces_need_a_second_detection_and_lost_ones_are_dropped(woman, detector):
    tracker = Tracker()
    face = detect_faces(detector, woman[0], smallest_face_px(woman[0].shape, 0.15))
    assert len(face) == 1
    ghost = np.array([[20.0, 20.0, 60.0, 60.0]])  # a one-frame false alarm beside the face
    tracker.match(np.vstack([face, ghost]), 0, smoothing=0.6)
    assert tracker.confirmed() == []  # nothing shown after one detection
    tracker.match(face, 1, smoothing=0.6)
    tracker.drop_lost(woman[1].shape, 1)
    assert [t.track_id for t in tracker.confirmed()] == [1] and len(tracker.tracks) == 1  # the ghost is gone
    for index in range(2, 2 + 30):  # the face leaves: after enough missed detections it is dropped
        tracker.match(np.zeros((0, 4)), index, smoothing=0.6)
        tracker.drop_lost(woman[0].shape, index)
    assert tracker.tracks == []


def test_four_faces_keep_four_ids(woman, detector):
    grids = [np.vstack([np.hstack([cv2.resize(f, (320, 240))] * 2)] * 2) for f in woman[:20]]
    seen = []
    for _, tracker, _ in follow(grids, detector, every=4, min_face=0.1):
        seen.append(sorted(t.track_id for t in tracker.confirmed()))
    assert seen[-10:] == [[1, 2, 3, 4]] * 10


def test_smoothing_steadies_the_label_and_holds_it_against_a_narrow_lead():
    happy, sad = LABELS.index("happy"), LABELS.index("sad")

    def flicker(step: int) -> np.ndarray:
        row = np.full(len(LABELS), 0.4 / (len(LABELS) - 1))
        row[happy if step % 2 else sad] = 0.6
        return row

    labels = {}
    for smoothing in (0.0, 0.8):
        track = Track(order=1, box=np.zeros(4))
        seq = []
        for step in range(40):
            Smoother.update(track, flicker(step), smoothing)
            seq.append(track.label)
        labels[smoothing] = sum(a != b for a, b in zip(seq, seq[1:]))
    assert labels[0.0] == 39 and labels[0.8] == 0

    # A label in place stays while another emotion leads it by less than the margin...
    track = Track(order=1, box=np.zeros(4), probs=np.eye(len(LABELS))[happy] * 0.45, label=happy)
    track.probs[sad] = 0.5  # sad leads by 0.05; at smoothing 0.8 the margin is 0.08
    Smoother.update(track, track.probs.copy(), smoothing=0.8)
    assert track.label == happy
    # ...and goes once it clearly trails.
    for _ in range(10):
        Smoother.update(track, np.eye(len(LABELS))[sad], smoothing=0.8)
    assert track.label == sad
