"""Personal dataset capture (``emotion.capture``, ``python -m emotion capture``, the Capture page in
AppTest): crops of the real clips in ``../shared/data/video`` saved under DATASET/<label>/, the gap,
pause/resume, Ctrl-C, bad labels refused with nothing written outside, names that never collide."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT, SHARED_DATA, as_in_a_terminal, require

from emotion.capture import (CaptureError, Capturer, check_label, crop_name, delete_label, label_counts,
                             label_folder, video_frames)
from emotion.detect import BlazeFaceDetector

VIDEO = SHARED_DATA / "video"
SHORT_CLIP = VIDEO / "fer_test.mp4"     # 115 frames
LONG_CLIP = VIDEO / "fer_woman2.mp4"    # 464 frames
BAD_LABELS = ["../x", "..", "/etc/x", "a/b", "a\\b", "", "   ", "a\x00b", "smi\nle", "x" * 65, ".hidden", "-rf", "~"]


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def tree(path: Path) -> set[str]:
    """Every file and folder under ``path``, relative, to compare before and after."""
    return {str(p.relative_to(path)) for p in path.rglob("*")}


@pytest.fixture(scope="module")
def detector():
    return BlazeFaceDetector()


@pytest.fixture(scope="module")
def clip_frames():
    """The short clip's frames with their times (115 frames of 596x336: 70 MB)."""
    return list(video_frames(require(SHORT_CLIP)))


def test_library_saves_the_largest_face_of_a_real_clip(tmp_path, detector, clip_frames):
    capturer = Capturer(tmp_path / "mine", "Smile", count=6, gap_s=0.5, detector=detector, started=True)
    assert capturer.label == "smile" and capturer.folder == (tmp_path / "mine" / "smile").resolve()
    saved_at = []
    for seconds, rgb in clip_frames:
        if capturer.offer(rgb, now=seconds) is not None:
            saved_at.append(seconds)
        if capturer.done:
            break
    assert capturer.done and len(saved_at) == 6
    assert all(b - a >= 0.5 for a, b in zip(saved_at, saved_at[1:])), saved_at  # the gap, on the video's clock
    files = sorted((tmp_path / "mine" / "smile").iterdir())
    assert len(files) == 6 and set(files) == set(capturer.saved_files)
    crops = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
    assert all(c.shape == (48, 48) and c.dtype == np.uint8 for c in crops), "grey 48x48, as the model reads faces"
    assert all(c.std() > 20 for c in crops), "a picture, not a flat patch"
    assert len({c.tobytes() for c in crops}) == 6, "the gap makes the crops differ"
    status = capturer.status()
    assert (status.saved, status.count, status.done) == (6, 6, True)
    assert [r.tobytes() for r in status.recent] == [cv2.imread(str(f), 0).tobytes() for f in capturer.saved_files]
    assert label_counts(tmp_path / "mine") == {"smile": 6}
    # Once the count is reached nothing more is saved.
    assert capturer.offer(clip_frames[-1][1], now=1e6) is None and len(list(capturer.folder.iterdir())) == 6


def test_the_crop_is_the_face(tmp_path, detector, clip_frames):
    """The saved crop is the face the detector finds in the frame, cut as the pipeline cuts it."""
    from emotion.detect import iou
    from emotion.pipeline import crop_faces, detect_faces, smallest_face_px

    capturer = Capturer(tmp_path, "happy", count=1, detector=detector, started=True)
    seconds, rgb = clip_frames[40]
    path = capturer.offer(rgb, now=seconds)
    boxes = detect_faces(detector, rgb, smallest_face_px(rgb.shape, 0.1, 48))
    assert len(boxes) == 1
    # The pipeline's box (found on a shrunk copy) is the face the detector finds at full size.
    assert iou(boxes[0], detector.detect(rgb)[0])[0, 0] > 0.7
    expected = crop_faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), boxes)[0]
    assert np.array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), expected)


def test_frame_gap_pause_resume_and_nothing_before_start(tmp_path, detector, clip_frames):
    capturer = Capturer(tmp_path, "surprise", count=100, gap_s=0, gap_frames=10, detector=detector)
    for seconds, rgb in clip_frames[:20]:
        assert capturer.offer(rgb, now=seconds) is None
    assert not (tmp_path / "surprise").exists(), "nothing is saved, not even a folder, before Start"

    capturer.start()
    saved_at = [i for i, (s, rgb) in enumerate(clip_frames[20:60], start=20) if capturer.offer(rgb, now=s)]
    assert saved_at == list(range(20, 60, 10)), "one crop every 10 frames"
    capturer.pause()
    assert not any(capturer.offer(rgb, now=s) for s, rgb in clip_frames[60:80])
    assert capturer.status().paused and capturer.saved == 4
    capturer.resume()
    assert any(capturer.offer(rgb, now=s) for s, rgb in clip_frames[80:100])
    assert label_counts(tmp_path) == {"surprise": capturer.saved} and capturer.saved == 5


def test_a_frame_without_a_face_or_an_odd_frame_saves_nothing(tmp_path, detector):
    capturer = Capturer(tmp_path, "sad", count=3, gap_s=0, detector=detector, started=True)
    assert capturer.offer(np.zeros((480, 640, 3), np.uint8)) is None
    assert capturer.offer(np.zeros((0, 0, 3), np.uint8)) is None
    status = capturer.status()
    assert status.saved == 0 and status.frames == 2 and status.problem  # said, never raised
    assert not (tmp_path / "sad").exists()


@pytest.mark.parametrize("label", BAD_LABELS)
def test_bad_labels_are_refused_in_one_line_and_nothing_is_written(tmp_path, detector, label):
    dataset = tmp_path / "data" / "mine"
    dataset.mkdir(parents=True)
    before = tree(tmp_path)
    with pytest.raises(CaptureError) as refused:
        Capturer(dataset, label, count=5, detector=detector, started=True)
    message = str(refused.value)
    assert "\n" not in message and "label" in message
    with pytest.raises(CaptureError):
        delete_label(dataset, label)
    assert tree(tmp_path) == before
    assert not Path("/etc/x").exists()


def test_a_label_folder_linked_outside_is_refused(tmp_path, detector, clip_frames):
    outside = tmp_path / "outside"
    outside.mkdir()
    dataset = tmp_path / "mine"
    dataset.mkdir()
    (dataset / "happy").symlink_to(outside)
    with pytest.raises(CaptureError, match="outside the dataset"):
        Capturer(dataset, "happy", count=1, detector=detector, started=True)
    # Swapped for a link during a capture: the save is refused and said, nothing lands outside.
    capturer = Capturer(dataset, "sad", count=1, gap_s=0, detector=detector, started=True)
    (dataset / "sad").symlink_to(outside)
    assert capturer.offer(clip_frames[30][1]) is None
    assert "outside the dataset" in capturer.status().problem
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("options, message", [
    ({"count": 0}, "number of images"), ({"count": "many"}, "must be numbers"),
    ({"count": 5, "gap_s": -1}, "cannot be negative"), ({"count": 5, "gap_s": float("nan")}, "cannot be negative"),
])
def test_bad_counts_and_gaps(tmp_path, detector, options, message):
    with pytest.raises(CaptureError, match=message):
        Capturer(tmp_path, "happy", detector=detector, **options)
    with pytest.raises(CaptureError, match="no such file"):
        next(video_frames(tmp_path / "nowhere.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_labels_are_normalised():
    assert check_label("  Smile ") == "smile" and check_label("happy") == "happy"
    assert check_label("my_label-2.v1") == "my_label-2.v1"


def test_names_never_collide(tmp_path, clip_frames):
    assert len({crop_name("happy") for _ in range(20000)}) == 20000
    # Two captures into the same label folder at the same time, from the same frames.
    capturers = [Capturer(tmp_path, "happy", count=15, gap_s=0, detector=BlazeFaceDetector(), started=True)
                 for _ in range(2)]

    def feed(capturer):
        for seconds, rgb in clip_frames[:40]:
            capturer.offer(rgb, now=seconds)

    threads = [threading.Thread(target=feed, args=(c,)) for c in capturers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = list((tmp_path / "happy").iterdir())
    assert len(files) == 30 and not any(f.name.startswith(".tmp-") for f in files)
    assert {f.name for f in files} == {p.name for c in capturers for p in c.saved_files}


def test_counts_and_deleting_one_label(tmp_path, detector, clip_frames):
    for label, count in (("happy", 3), ("smile", 2)):
        capturer = Capturer(tmp_path, label, count=count, gap_s=0, detector=detector, started=True)
        for seconds, rgb in clip_frames[:10]:
            capturer.offer(rgb, now=seconds)
    (tmp_path / "smile" / "notes.txt").write_text("mine")  # not an image: never deleted
    (tmp_path / "not a label").mkdir()
    assert label_counts(tmp_path) == {"happy": 3, "smile": 2}
    assert delete_label(tmp_path, "smile") == 2
    assert label_counts(tmp_path) == {"happy": 3, "smile": 0}
    assert [p.name for p in (tmp_path / "smile").iterdir()] == ["notes.txt"]
    assert delete_label(tmp_path, "happy") == 3 and not (tmp_path / "happy").exists()
    assert delete_label(tmp_path, "fear") == 0
    assert label_folder(tmp_path, "fear") == tmp_path.resolve() / "fear"


# --- the command line -----------------------------------------------------------------------


def test_cli_captures_from_a_video(tmp_path):
    result = run("capture", "--emotion", "smile", "--count", 5, "--video", require(SHORT_CLIP),
                 "--out", tmp_path / "set", "--gap", 0.4)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:6]] == [f"{i}/5" for i in range(1, 6)]
    assert lines[-1] == f"done: saved 5 crops in {(tmp_path / 'set' / 'smile').resolve()}"
    assert len(list((tmp_path / "set" / "smile").glob("smile-*.png"))) == 5
    # More than the clip holds: it says so, and keeps what it saved.
    more = run("capture", "--emotion", "smile", "--count", 500, "--video", require(SHORT_CLIP),
               "--out", tmp_path / "set", "--gap", 1)
    assert more.returncode == 0, more.stderr
    saved = len(list((tmp_path / "set" / "smile").glob("*.png"))) - 5
    assert 2 <= saved < 10 and f"the video ended after 115 frames: saved {saved} of 500 crops" in more.stdout


@pytest.mark.parametrize("args, message", [
    (["--emotion", "../x", "--video", SHORT_CLIP], "cannot be a label name"),
    (["--emotion", "/tmp/abs", "--video", SHORT_CLIP], "cannot be a label name"),
    (["--emotion", "happy", "--video", "README.md"], "not a video file"),
    (["--emotion", "happy", "--camera", 7], "no camera 7 could be opened"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    result = run("capture", *args, "--out", tmp_path / "set")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "set" / "happy").exists() or not any((tmp_path / "set" / "happy").iterdir())
    assert not (tmp_path / "abs").exists() and not (tmp_path / "x").exists()


def test_cli_ctrl_c_keeps_what_was_saved_and_says_how_many(tmp_path):
    out = tmp_path / "set"
    process = subprocess.Popen([sys.executable, "-m", "emotion", "capture", "--emotion", "happy", "--count", "10000",
                                "--gap", "0", "--video", str(require(LONG_CLIP)), "--out", str(out)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=as_in_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while len(list((out / "happy").glob("*.png"))) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the capture ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    files = sorted((out / "happy").iterdir())
    last = stdout.strip().splitlines()[-1]
    assert last == f"interrupted: saved {len(files)} of 10000 crops in {(out / 'happy').resolve()}"
    assert len(files) >= 3 and len(files) < 464 and "Traceback" not in stderr
    assert not any(f.name.startswith(".tmp-") for f in files), "no half-written file is left"
    assert all(cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape == (48, 48) for f in files)


# --- the page, through AppTest --------------------------------------------------------------
# AppTest cannot hold a WebRTC connection: a stand-in for webrtc_streamer records what the page
# asks of streamlit-webrtc, and the test plays the video thread itself by handing the page's own
# frame callback real frames of the clip (as av.VideoFrame, what streamlit-webrtc hands it).
# The real browser and camera are in test_capture_e2e.py.


class FakeStreamer:
    def __init__(self):
        self.calls: list[dict] = []

    def __call__(self, key, **kwargs):
        from types import SimpleNamespace

        from streamlit import session_state

        self.calls.append({"key": key, **kwargs})
        session_state[key] = context = SimpleNamespace(state=SimpleNamespace(playing=False, signalling=False))
        return context


@pytest.fixture
def page(monkeypatch, tmp_path):
    """The Capture page in AppTest, its data folders in ``tmp_path`` (allowed; datasets/ too)."""
    return capture_page(monkeypatch, tmp_path)


def capture_page(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pages._webrtc import webrtc

    import emotion.access

    streamer = FakeStreamer()
    monkeypatch.setattr(webrtc(), "webrtc_streamer", streamer)
    monkeypatch.setattr(emotion.access, "DATASETS_DIR", tmp_path / "datasets")
    monkeypatch.setenv("FACEMOOD_DATA_DIRS", str(tmp_path / "allowed"))
    monkeypatch.delenv("FACEMOOD_TRAINING", raising=False)
    monkeypatch.delenv("FACEMOOD_PASSWORD", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/capture.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Capture your own faces"
    at.streamer = streamer
    return at


def button(at, label):
    return next(b for b in at.button if b.label == label)


def play(at, frames):
    """The video thread: the page's frame callback gets these frames, at a camera's 30 per second
    (the page's gap is in seconds of the wall clock)."""
    import av

    callback = at.streamer.calls[-1]["video_frame_callback"]
    for _seconds, rgb in frames:
        callback(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
        time.sleep(1 / 30)


def test_page_saves_nothing_before_start_then_the_count(page, tmp_path, clip_frames):
    at = page
    call = at.streamer.calls[-1]
    assert call["key"] == "capture" and call["mode"].name == "SENDRECV"
    assert call["rtc_configuration"] == {"iceServers": []} and call["media_stream_constraints"]["audio"] is False
    assert call["video_frame_callback"] == at.session_state["capture_feed"].video_frame_callback
    assert "Images go to `" + str(tmp_path / "datasets" / "mine" / "happy") + "/`." in [c.value for c in at.caption]

    at.selectbox(key="capture_label_choice").set_value("Your own label…").run()
    at.text_input(key="capture_own_label").input("Smile").run()
    at.number_input(key="capture_count").set_value(4).run()
    at.slider(key="capture_gap").set_value(0.1).run()
    play(at, clip_frames[:30])
    assert not (tmp_path / "datasets").exists(), "the camera ran, but nothing is saved before Start"
    assert button(at, "Pause").disabled and button(at, "Stop").disabled

    button(at, "Start").click().run()
    assert not at.exception and button(at, "Start").disabled and not button(at, "Pause").disabled
    play(at, clip_frames[30:32])
    button(at, "Pause").click().run()
    assert button(at, "Resume")
    saved_before_pause = len(list((tmp_path / "datasets" / "mine" / "smile").glob("*.png")))
    play(at, clip_frames[32:60])
    assert len(list((tmp_path / "datasets" / "mine" / "smile").glob("*.png"))) == saved_before_pause
    button(at, "Resume").click().run()
    play(at, clip_frames[60:])
    at.run()
    files = list((tmp_path / "datasets" / "mine" / "smile").glob("smile-*.png"))
    assert len(files) == 4
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Saved"] == "4 / 4" and metrics["State"] == "done"
    assert any("Saved 4 crops of **smile**" in s.value for s in at.success)
    assert len(at.image) == 1 and len(at.image[0].proto.imgs) == 4  # the preview strip: the four crops
    table = at.dataframe[0].value
    assert table.to_dict("records") == [{"label": "smile", "images": 4}]
    assert not button(at, "Start").disabled  # a new capture may start


@pytest.mark.parametrize("field, value, message", [
    ("capture_own_label", "../x", "cannot be a label name"),
    ("capture_own_label", "/etc/passwd", "cannot be a label name"),
    ("capture_dataset", "..", "cannot be a dataset name"),
    ("capture_dataset", "../../etc", "Only data inside the allowed folders"),
    ("capture_dataset", "/etc/facemood", "Only data inside the allowed folders"),
])
def test_page_refuses_bad_labels_and_datasets(page, tmp_path, field, value, message):
    at = page
    at.selectbox(key="capture_label_choice").set_value("Your own label…").run()
    at.text_input(key=field).input(value).run()
    if field == "capture_dataset":
        at.text_input(key="capture_own_label").input("smile").run()
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert button(at, "Start").disabled
    assert not (tmp_path / "datasets").exists() and not Path("/etc/facemood").exists()


def test_page_counts_deletes_with_confirmation_and_creates_a_set(page, tmp_path, detector, clip_frames):
    at = page
    dataset = tmp_path / "allowed" / "faces"
    for label, count in (("happy", 6), ("sad", 5)):
        capturer = Capturer(dataset, label, count, gap_s=0, detector=detector, started=True)
        for seconds, rgb in clip_frames[:20]:
            capturer.offer(rgb, now=seconds)
    at.text_input(key="capture_dataset").input(str(dataset)).run()
    assert at.dataframe[0].value.to_dict("records") == [{"label": "happy", "images": 6}, {"label": "sad", "images": 5}]

    at.selectbox(key="capture_delete_label").set_value("sad").run()
    button(at, "Delete…").click().run()
    assert any("Delete all 5 images of **sad**" in w.value for w in at.warning)
    assert len(list((dataset / "sad").iterdir())) == 5, "nothing deleted before the confirmation"
    button(at, "Cancel").click().run()
    assert (dataset / "sad").is_dir()
    button(at, "Delete…").click().run()
    button(at, "Yes, delete 5 images").click().run()
    assert not (dataset / "sad").exists() and len(list((dataset / "happy").iterdir())) == 6
    assert any("Deleted 5 images of sad" in i.value for i in at.info)

    at.text_input(key="capture_set_name").input("faces-set").run()
    button(at, "Create").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    out = tmp_path / "datasets" / "faces-set"
    assert len(list((out / "train" / "happy").glob("*.png"))) == 5 and len(list((out / "test" / "happy").glob("*.png"))) == 1
    assert any("5 faces to train on, 1 to test on" in s.value for s in at.success)
    assert any("'happy' has only 6 images" in w.value for w in at.warning)


def test_page_uses_the_configured_ice_servers(monkeypatch, tmp_path):
    """The Capture page's camera goes through the same STUN/TURN settings as the Webcam page's."""
    import json

    servers = [{"urls": "stun:stun.example.org:3478"}]
    monkeypatch.setenv("FACEMOOD_ICE_SERVERS", json.dumps(servers))
    at = capture_page(monkeypatch, tmp_path)
    assert at.streamer.calls[-1]["rtc_configuration"] == {"iceServers": servers}
