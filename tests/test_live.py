"""The live frame pipeline (emotion.live) on real video frames, with the real model.

Frames come from the clips in ../shared/data/video (one real face in every frame),
letterboxed or resized to 640x480 as a webcam gives them.
"""

from __future__ import annotations

import asyncio
import functools
import fractions
import threading
import time

import cv2
import numpy as np
import pytest

from conftest import SHARED_DATA, require
from emotion import EmotionClassifier, FaceResult, LABELS
from emotion.annotate import caption, draw_results
from emotion.live import (LiveFrame, LivePipeline, LiveSession, LiveSettings, LiveStats, frame_labels, iou,
                          read_frame)

VIDEO = SHARED_DATA / "video"


def clip(name: str, count: int | None = None, size=(640, 480)) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(require(VIDEO / name)))
    frames = []
    while count is None or len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, interpolation=cv2.INTER_AREA))
    capture.release()
    assert frames, f"no frames in {name}"
    return frames


@pytest.fixture(scope="module")
def classifier(test_model) -> EmotionClassifier:
    return EmotionClassifier.load(test_model)


@pytest.fixture(scope="module")
def woman() -> list[np.ndarray]:
    return clip("fer_woman2.mp4", 240)


@pytest.fixture(scope="module")
def phone() -> list[np.ndarray]:
    return clip("fer_test.mp4")


def run(pipeline: LivePipeline, frames) -> list[LiveFrame]:
    return [pipeline.process(frame) for frame in frames]


class CountingClassifier:
    """A classifier that records the batches it is given, around the real one."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def predict_proba(self, faces, flip_average=None):
        self.batches.append(len(faces))
        return self.inner.predict_proba(faces, flip_average=flip_average)


class FlickeringClassifier:
    """Says "happy" and "sad" on alternate calls, at 60%: the worst case for a label."""

    def __init__(self):
        self.calls = 0

    def predict_proba(self, faces, flip_average=None):
        self.calls += 1
        probs = np.full((len(faces), len(LABELS)), 0.4 / (len(LABELS) - 1), np.float32)
        probs[:, LABELS.index("happy" if self.calls % 2 else "sad")] = 0.6
        return probs


# --- the pipeline on real video ---------------------------------------------------------


@pytest.mark.parametrize("name, least", [("fer_woman2.mp4", 0.97), ("fer_test.mp4", 0.8)])
def test_faces_are_found_in_nearly_every_frame(classifier, name, least, woman, phone):
    frames = woman if name == "fer_woman2.mp4" else phone
    results = run(LivePipeline(classifier, detect_every=3), frames)
    counts = np.array([len(r.faces) for r in results])
    assert np.mean(counts >= 1) >= least, np.bincount(counts)
    assert np.mean(counts <= 1) >= 0.95, np.bincount(counts)  # one person: hardly ever a second box
    for result, frame in zip(results, frames):
        assert result.image.shape == frame.shape and result.image.dtype == np.uint8
        for face in result.faces:
            assert face.label in LABELS and abs(sum(face.probs.values()) - 1) < 1e-3
            # The label is the leading emotion, or one that trails it narrowly (held, not flickering).
            assert face.score == face.probs[face.label] >= max(face.probs.values()) - 0.1


def test_detection_runs_on_some_frames_and_faces_are_followed_in_between(classifier, woman):
    pipeline = LivePipeline(classifier, detect_every=4)
    results = run(pipeline, woman[:120])
    assert 25 <= sum(r.detected for r in results) <= 40  # every 4th frame, plus a retry after a miss
    # The followed box stays on the face the full detector finds on the same frame.
    reference = pipeline.detector.__class__()  # Haar with the photo settings, on the full frame
    overlaps = []
    for result, frame in list(zip(results, woman))[1::7]:
        if not result.detected and result.faces:
            found = reference.detect(frame)
            if len(found):
                overlaps.append(iou(np.array(result.faces[0].box), found[:1]).max())
    assert len(overlaps) >= 10 and np.median(overlaps) > 0.6, overlaps


def test_tracking_keeps_the_same_face_id(classifier, woman, phone):
    ids = {face.track_id for result in run(LivePipeline(classifier, detect_every=3), woman) for face in result.faces}
    assert ids == {1}
    results = run(LivePipeline(classifier, detect_every=3), phone)
    later = {face.track_id for result in results[40:] for face in result.faces}
    assert len(later) == 1, later  # once found, the face keeps its id through the turns of her head


def test_all_faces_of_a_frame_go_to_the_model_in_one_batch(classifier, woman):
    # Four people: a 2x2 grid of video frames, each 320x240.
    grids = [np.vstack([np.hstack([cv2.resize(f, (320, 240))] * 2)] * 2) for f in woman[:30]]
    counting = CountingClassifier(classifier)
    pipeline = LivePipeline(counting, LiveSettings(min_face=0.1), detect_every=1)
    counting.batches.clear()
    results = run(pipeline, grids)
    assert len(counting.batches) <= len(grids)  # one model call per frame, never one per face
    assert [len(r.faces) for r in results[5:]] == [4] * 25
    assert counting.batches[-25:] == [4] * 25
    assert {f.track_id for f in results[-1].faces} == {1, 2, 3, 4}


def test_a_crowd_is_read_a_few_faces_a_frame_and_every_face_in_turn(classifier):
    # The 13-person group photo as a still webcam frame: all 13 are followed and shown, but
    # each frame reads at most max_reads faces, the ones read longest ago first.
    photo = cv2.cvtColor(cv2.imread(str(require(SHARED_DATA / "faces" / "aind_test_image_1.jpg"))), cv2.COLOR_BGR2RGB)
    frame = cv2.resize(photo, (640, 480), interpolation=cv2.INTER_AREA)
    counting = CountingClassifier(classifier)
    pipeline = LivePipeline(counting, LiveSettings(min_face=0.03), detect_every=1, max_reads=5)
    results = run(pipeline, [frame] * 12)
    assert len(results[-1].faces) == 13
    reads = counting.batches[-6:]
    assert reads and max(reads) <= 5 and sum(reads) >= 13
    ages = [pipeline._frame_index - 1 - t.read for t in pipeline.tracker.confirmed()]
    assert max(ages) < 3  # 13 faces, 5 a frame: every face read in the last three frames


def test_smoothing_steadies_the_label():
    frames = clip("fer_woman2.mp4", 40)
    labels = {}
    for smoothing in (0.0, 0.8):
        pipeline = LivePipeline(FlickeringClassifier(), LiveSettings(smoothing=smoothing), detect_every=1)
        labels[smoothing] = [r.faces[0].label for r in run(pipeline, frames) if r.faces]
    flips = {s: sum(a != b for a, b in zip(seq, seq[1:])) for s, seq in labels.items()}
    assert flips[0.0] >= 30  # unsmoothed, the label changes on every frame
    assert flips[0.8] <= 1   # smoothed, it settles and stays


def test_smoothing_steadies_the_real_model_on_video(classifier, phone):
    change = {}
    for smoothing in (0.0, 0.8):
        results = run(LivePipeline(classifier, LiveSettings(smoothing=smoothing), detect_every=3), phone)
        probs = [np.array([r.faces[0].probs[k] for k in LABELS]) for r in results if len(r.faces) == 1]
        change[smoothing] = float(np.mean([np.abs(a - b).sum() for a, b in zip(probs, probs[1:])]))
    assert change[0.8] < 0.5 * change[0.0], change


def test_mirror_view_flips_the_picture_and_the_boxes(classifier, woman):
    plain = LivePipeline(classifier, detect_every=1, confirm_new=False).process(woman[0])
    mirrored = LivePipeline(classifier, LiveSettings(mirror=True), detect_every=1, confirm_new=False).process(woman[0])
    (x, y, w, h), (mx, my, mw, mh) = plain.faces[0].box, mirrored.faces[0].box
    assert abs((640 - mx - mw) - x) <= 0.05 * w and abs(my - y) <= 0.05 * h
    assert abs(mw - w) <= 0.05 * w and abs(mh - h) <= 0.05 * h
    # Away from the drawings, the mirrored frame is the frame flipped.
    assert np.array_equal(mirrored.image[-40:, ::-1], woman[0][-40:])


def test_probabilities_and_ids_can_be_hidden_on_the_video(classifier, woman):
    pipeline = LivePipeline(classifier, LiveSettings(show_probs=False, show_ids=False), detect_every=1)
    face = run(pipeline, woman[:2])[-1].faces[0]
    assert caption(face, show_scores=False, show_ids=False) == face.label
    assert caption(face, show_scores=True, show_ids=True) == f"#1 {face.label} {face.score:.0%}"
    with_text = draw_results(woman[0], [face], show_scores=True, show_ids=True)
    without = draw_results(woman[0], [face], show_scores=False, show_ids=False)
    assert (with_text != woman[0]).any(axis=2).sum() > (without != woman[0]).any(axis=2).sum()


def test_detection_period_adapts_to_the_time_budget(classifier, woman):
    generous = LivePipeline(classifier, budget_ms=10_000)
    run(generous, woman[:20])
    assert generous.period == 1
    tight = LivePipeline(classifier, budget_ms=0.01, max_detect_every=5)
    run(tight, woman[:20])
    assert tight.period == 5


def test_settings_are_kept_in_range():
    settings = LiveSettings(min_face=5.0, smoothing=-1).checked()
    assert settings.min_face == 0.9 and settings.smoothing == 0.0


# --- bad frames ---------------------------------------------------------------------------


BAD_FRAMES = {
    "1x1": np.zeros((1, 1, 3), np.uint8),
    "3x5": np.full((5, 3, 3), 128, np.uint8),
    "one row": np.zeros((1, 640, 3), np.uint8),
    "empty": np.zeros((0, 0, 3), np.uint8),
    # Float images in [0, 1] and bool masks are images to the shared loader; these are not.
    "float out of range": np.full((480, 640, 3), 3.0, np.float32),
    "complex": np.zeros((480, 640), np.complex64),
    "5 channels": np.zeros((480, 640, 5), np.uint8),
    "1-D": np.zeros(100, np.uint8),
    "4-D": np.zeros((2, 48, 48, 3), np.uint8),
    "not an array": "frame.jpg",
    "none": None,
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_unusable_frames_are_skipped_with_a_reason(classifier, name):
    result = LivePipeline(classifier).process(BAD_FRAMES[name])
    assert result.image is None and result.faces == [] and result.skipped
    assert "\n" not in result.skipped


@pytest.mark.parametrize("make", [
    lambda f: cv2.cvtColor(f, cv2.COLOR_RGB2GRAY),
    lambda f: cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[..., None],
    lambda f: cv2.cvtColor(f, cv2.COLOR_RGB2RGBA),
    lambda f: cv2.resize(f, (333, 251)),      # odd sizes
    lambda f: np.asfortranarray(f),           # not C-contiguous
    lambda f: f[::2, ::2],                    # a strided view
], ids=["grey", "grey-1-channel", "rgba", "odd-size", "fortran-order", "strided"])
def test_other_formats_and_sizes_are_analysed(classifier, woman, make):
    frame = make(woman[10])
    result = LivePipeline(classifier, detect_every=1, confirm_new=False).process(frame)
    assert result.skipped is None and result.image.shape == frame.shape[:2] + (3,)
    assert len(result.faces) == 1


def test_bgr_and_bgra_frames_are_read_in_their_colour_order(classifier, woman):
    rgb = woman[10]
    expected = LivePipeline(classifier, detect_every=1, confirm_new=False).process(rgb).image
    for frame, order in ((cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), "bgr"), (cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA), "bgr")):
        assert np.array_equal(read_frame(frame, order)[0], rgb)
        pipeline = LivePipeline(classifier, detect_every=1, confirm_new=False)
        assert np.array_equal(pipeline.process(frame, order).image, expected)


def test_dark_and_black_frames_find_nothing_and_say_so(classifier, woman):
    pipeline = LivePipeline(classifier, detect_every=1)
    black = pipeline.process(np.zeros((480, 640, 3), np.uint8))
    assert black.faces == [] and black.dark and black.image.shape == (480, 640, 3)
    dim = (woman[10].astype(np.float32) * 0.04).astype(np.uint8)  # a face in a nearly dark room
    assert pipeline.process(dim).dark
    # The stream goes on: light again, the face is found.
    found = [pipeline.process(frame).faces for frame in woman[10:14]]
    assert all(len(faces) == 1 for faces in found[1:])


def test_a_stream_of_odd_frames_then_a_good_one_still_works(classifier, woman):
    session = LiveSession(classifier)
    for frame in list(BAD_FRAMES.values()) + [np.zeros((480, 640, 3), np.uint8)]:
        session.process(frame)
    images = [session.process(frame) for frame in woman[:2]]
    snap = session.stats.snapshot()
    assert all(image is not None for image in images) and len(snap.faces) == 1
    assert snap.skipped == len(BAD_FRAMES) and snap.problem == "not an image array (NoneType)"
    assert snap.frames == 3 and snap.frames_with_faces == 1


def test_a_fault_in_the_pipeline_skips_the_frame_and_the_next_one_works(classifier, woman):
    class Faulty:
        fail = True

        def predict_proba(self, faces, flip_average=None):
            if self.fail:
                raise RuntimeError("model exploded\nwith a second line")
            return classifier.predict_proba(faces, flip_average=flip_average)

    faulty = Faulty()
    session = LiveSession(faulty, warm_up=False, detect_every=1, confirm_new=False)
    assert session.process(woman[0]) is None
    assert session.stats.snapshot().problem == "RuntimeError: model exploded"
    faulty.fail = False
    assert session.process(woman[1]) is not None and len(session.stats.snapshot().faces) == 1


def test_the_listener_hears_each_frames_labels_left_to_right_and_cannot_break_the_video(classifier, woman):
    heard = []
    session = LiveSession(classifier, confirm_new=False)
    session.listener = heard.append
    session.process(woman[0])
    assert heard == [[session.stats.snapshot().faces[0].label]]
    session.set_running(True)  # a new run, so that no face is followed from before
    session.process(np.zeros((480, 640, 3), np.uint8))  # no face: an empty list
    session.process(None)  # skipped: nothing to hear
    assert heard[1:] == [[]]

    def broken(labels):
        raise RuntimeError("the voice is gone")

    session.listener = broken
    assert session.process(woman[1]) is not None and session.stats.snapshot().skipped == 1  # only the None


def test_frame_labels_go_left_to_right():
    def face(x, label):
        return FaceResult(box=(x, 0, 10, 10), label=label, score=1.0, probs={}, track_id=x)

    assert frame_labels([face(300, "sad"), face(10, "happy"), face(150, "fear")]) == ["happy", "fear", "sad"]
    assert frame_labels([]) == []


# --- what the page reads: the stats ---------------------------------------------------


def test_stats_count_frames_fps_and_keep_a_minute_of_history():
    now = [1000.0]
    stats = LiveStats(clock=lambda: now[0])
    face = lambda i: [type("F", (), {"track_id": i, "box": (0, 0, 10 * i, 10 * i), "label": "happy",  # noqa: E731
                                      "score": 0.9, "probs": dict.fromkeys(LABELS, 1 / 7)})()]
    for i in range(90 * 25):  # 90 s at 25 frames per second, a face in 4 of 5 frames
        now[0] += 0.04
        stats.record(LiveFrame(np.zeros((2, 2, 3), np.uint8), face(1) if i % 5 else [], seconds=0.006))
    stats.record(LiveFrame(None, [], skipped="frame too small (3x5)"))
    snap = stats.snapshot()
    assert snap.frames == 2250 and snap.frames_with_faces == 1800 and snap.skipped == 1
    assert snap.problem == "frame too small (3x5)" and snap.faces_seen == 1
    assert abs(snap.fps - 25) < 1 and abs(snap.ms_per_frame - 6) < 0.01
    ages = [ago for ago, _ in snap.history]
    assert max(ages) <= 60 and min(ages) < 0.5 and 200 <= len(ages) <= 241  # 4 samples a second
    now[0] += 30
    assert stats.snapshot().fps == 0 and stats.snapshot().seconds_since_frame == pytest.approx(30, abs=0.1)
    stats.reset()
    assert stats.snapshot().frames == 0 and stats.snapshot().seconds_since_frame is None


def test_stats_are_safe_to_read_while_the_video_thread_writes(classifier, woman):
    session = LiveSession(classifier)
    done = threading.Event()
    seen = []

    def video():
        for frame in woman[:60]:
            session.process(frame)
        done.set()

    writer = threading.Thread(target=video)
    writer.start()
    while not done.is_set():
        snap = session.stats.snapshot()
        assert snap.frames_with_faces <= snap.frames and len(snap.faces) <= 1
        seen.append(snap.frames)
        time.sleep(0.005)
    writer.join()
    assert seen == sorted(seen) and session.stats.snapshot().frames == 60


# --- start/stop through streamlit-webrtc's own video thread --------------------------------


def webrtc_classes():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pages._webrtc import webrtc

    webrtc()  # loads the SRTP library safely next to TensorFlow
    from streamlit_webrtc.models import CallbackAttachableProcessor
    from streamlit_webrtc.process import AsyncVideoProcessTrack

    return CallbackAttachableProcessor, AsyncVideoProcessTrack


def test_start_stop_cycles_through_the_webrtc_video_thread_leak_no_threads(classifier, woman):
    CallbackAttachableProcessor, AsyncVideoProcessTrack = webrtc_classes()  # before aiortc, see there
    import av
    from aiortc import MediaStreamTrack

    class Camera(MediaStreamTrack):
        kind = "video"

        def __init__(self, frames):
            super().__init__()
            self.frames, self.count = frames, 0

        async def recv(self):
            await asyncio.sleep(1 / 30)
            frame = av.VideoFrame.from_ndarray(self.frames[self.count % len(self.frames)], format="rgb24")
            frame.pts, frame.time_base = self.count, fractions.Fraction(1, 30)
            self.count += 1
            return frame

    session = LiveSession(classifier)

    async def stream(frames: int) -> list:
        camera = Camera(woman[:30])
        session.set_running(True)  # as the page does when streamlit-webrtc says the stream started
        processor = CallbackAttachableProcessor(session.video_frame_callback, None,
                                                functools.partial(session.end, session.run))
        track = AsyncVideoProcessTrack(camera, processor, stop_timeout=10)
        out = []
        try:  # until the callback has processed ``frames`` frames (slow on a busy machine)
            while session.stats.snapshot().frames < frames and len(out) < 3000:
                out.append(await track.recv())
        finally:
            track.stop()
        return out

    asyncio.run(stream(3))  # the first run builds what stays (TensorFlow's threads, caches)
    baseline = threading.active_count()
    for _ in range(6):
        returned = asyncio.run(stream(15))
        assert not session.running  # the track's end reached the session (the page's loop stops on it)
        snap = session.stats.snapshot()
        assert snap.frames >= 15 and snap.frames_with_faces >= snap.frames - 3  # a new face is confirmed first
        assert all(frame.width == 640 and frame.height == 480 for frame in returned)
        assert threading.active_count() <= baseline
    # Every run began afresh: the ids restart, the counts too (the last run's alone are shown).
    assert snap.faces_seen == 1 and snap.frames <= 17


def test_the_video_callback_turns_frames_round_and_passes_bad_ones_through(classifier, woman):
    import av

    session = LiveSession(classifier, confirm_new=False)
    frame = av.VideoFrame.from_ndarray(cv2.cvtColor(woman[0], cv2.COLOR_RGB2YUV_I420), format="yuv420p")
    out = session.video_frame_callback(frame)
    assert isinstance(out, av.VideoFrame) and (out.width, out.height) == (640, 480)
    assert len(session.stats.snapshot().faces) == 1

    class Broken:
        def to_ndarray(self, format):
            raise ValueError("corrupt")

    broken = Broken()
    assert session.video_frame_callback(broken) is broken
    tiny = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
    assert session.video_frame_callback(tiny) is tiny
    snap = session.stats.snapshot()
    assert snap.skipped == 2 and snap.problem == "frame too small (8x8)"


def test_the_session_owns_the_runs_state_and_a_late_end_cannot_end_the_next_run(classifier):
    session = LiveSession(classifier, warm_up=False)
    assert not session.running and session.run == 0
    assert session.set_running(True, playing=False) and not session.playing  # connecting
    assert not session.set_running(True, playing=True) and session.playing  # the same run, now playing
    first = session.run
    assert session.running and first == 1 and session.started_at is not None
    assert session.set_running(False) and session.stopped_without_video  # no picture arrived
    session.set_running(True)
    session.process(np.zeros((480, 640, 3), np.uint8))
    session.end(first)  # the first run's stream ends late: the second goes on
    assert session.running and session.run == 2
    session.end(session.run)
    assert not session.running and not session.stopped_without_video  # a frame had arrived

    # The page's loop sleeps in wait(): a change of state, or a newer view, wakes it at once.
    session.set_running(True)
    run, view = session.run, session.claim()
    threading.Timer(0.3, session.claim).start()
    began = time.monotonic()
    assert not session.wait(30, run, view)  # a newer script run took over
    assert time.monotonic() - began < 20
    view = session.claim()
    threading.Timer(0.3, session.set_running, (False,)).start()
    assert not session.wait(30, run, view)  # Stop
    assert session.wait(0, session.run) is False
