"""The emoji overlay: drawn in code, one design per emotion, laid over each face (on real photos
and their true face boxes), scaled to the face, cut at the picture's edges; through
``draw_results``, the live pipeline and ``python -m emotion predict --annotate --emoji``."""

from __future__ import annotations

import csv
import subprocess
import sys
from itertools import combinations

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from emotion import EmotionClassifier, EmotionRecognizer, FaceResult, LABELS, load_image
from emotion.annotate import draw_results
from emotion.emoji import emoji_box, emoji_rgba, has_emoji, overlay_emoji
from emotion.live import LivePipeline, LiveSettings


def face(box, label="happy") -> FaceResult:
    return FaceResult(tuple(int(v) for v in box), label, 0.9, {name: 0.0 for name in LABELS})


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=2)


@pytest.fixture(scope="module")
def true_boxes(faces_dir) -> dict[str, list[tuple[int, int, int, int]]]:
    boxes: dict[str, list] = {}
    with open(faces_dir / "boxes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            boxes.setdefault(row["file"], []).append(tuple(int(row[k]) for k in "xywh"))
    return boxes


def test_seven_designs_are_distinct_at_every_size():
    for size in (16, 48, 128):
        images = {label: emoji_rgba(label, size).astype(np.int16) for label in LABELS}
        for a, b in combinations(LABELS, 2):
            difference = np.abs(images[a][..., :3] - images[b][..., :3]).mean()
            assert difference > 4, f"{a} and {b} look alike at {size} px ({difference:.1f})"
        # Every design is a disc: opaque in the middle, transparent in the corners.
        for label, image in images.items():
            assert image[size // 2, size // 2, 3] == 255 and image[0, 0, 3] == 0, label


def test_the_features_differ_not_only_the_colour():
    """Seen in grey (colour taken away) the seven faces still differ: the brows, eyes and mouths."""
    grey = {label: cv2.cvtColor(np.ascontiguousarray(emoji_rgba(label, 96)[..., :3]), cv2.COLOR_RGB2GRAY)
            for label in LABELS}
    for a, b in combinations(LABELS, 2):
        edges_a, edges_b = cv2.Canny(grey[a], 40, 120) > 0, cv2.Canny(grey[b], 40, 120) > 0
        assert (edges_a ^ edges_b).sum() > 0.25 * max(edges_a.sum(), edges_b.sum()), (a, b)


def test_drawn_once_per_size_and_shared_read_only():
    first = emoji_rgba("sad", 57)
    assert emoji_rgba("sad", 57) is first
    assert not first.flags.writeable
    assert emoji_rgba("sad", 58).shape == (58, 58, 4)
    with pytest.raises(ValueError, match="no emoji for 'smile'"):
        emoji_rgba("smile", 40)
    with pytest.raises(ValueError):
        emoji_rgba("happy", 0)


def test_emoji_sits_on_the_true_face_boxes_of_real_photos(faces_dir, true_boxes):
    checked = 0
    for name, boxes in true_boxes.items():
        rgb = load_image(faces_dir / name)
        height, width = rgb.shape[:2]
        for index, box in enumerate(boxes):
            label = LABELS[(checked + index) % len(LABELS)]
            mask = changed(rgb, overlay_emoji(rgb, [face(box, label)]))
            x, y, w, h = box
            side = max(w, h)
            # Every changed pixel lies in the square centred on the face box...
            left, top = x + w / 2 - side / 2 - 1, y + h / 2 - side / 2 - 1
            ys, xs = np.nonzero(mask)
            assert len(xs), f"nothing drawn on {name} face {index}"
            assert xs.min() >= left and xs.max() <= left + side + 2, (name, box)
            assert ys.min() >= top and ys.max() <= top + side + 2, (name, box)
            # ...centred on the face, covering most of what of the box is inside the photo.
            inside = mask[max(y, 0):y + h, max(x, 0):x + w]
            if left >= 0 and top >= 0 and left + side + 2 <= width and top + side + 2 <= height:
                assert abs(xs.mean() - (x + w / 2)) <= 0.05 * w and abs(ys.mean() - (y + h / 2)) <= 0.05 * h
            assert inside.mean() > 0.6, (name, box, inside.mean())
        checked += len(boxes)
    assert checked == 42  # every true face box of ../shared/data/faces


def test_found_faces_get_their_own_emoji_over_them(faces_dir, true_boxes, test_model):
    """Through the real pipeline: what ``emoji=True`` adds lies over the faces found."""
    recognizer = EmotionRecognizer(EmotionClassifier.load(test_model))
    rgb = load_image(faces_dir / "deepface_couple.jpg")
    results = recognizer.analyze_rgb(rgb)
    assert len(results) == 2
    plain = recognizer.annotate(rgb, results)
    with_emoji = recognizer.annotate(rgb, results, emoji=True)
    mask = changed(plain, with_emoji)
    allowed = np.zeros(mask.shape, bool)
    thickness = max(2, round(min(rgb.shape[:2]) / 250)) + 2  # the box's smoothed edge blends with the emoji
    for result in results:
        left, top, size = emoji_box(result.box)
        allowed[max(top - thickness, 0):top + size + thickness, max(left - thickness, 0):left + size + thickness] = True
        # Each face shows its own emotion's emoji: its middle is that design's middle.
        x, y, w, h = result.box
        middle = with_emoji[y + h // 2 - 2:y + h // 2 + 3, x + w // 2 - 2:x + w // 2 + 3].reshape(-1, 3)
        design = emoji_rgba(result.label, size)[size // 2 - 2:size // 2 + 3, size // 2 - 2:size // 2 + 3, :3]
        assert np.abs(middle.astype(int) - design.reshape(-1, 3)).max() <= 40
    assert mask.sum() > 0 and not (mask & ~allowed).any()
    # The faces found are the true ones (so the emoji are on the true faces too).
    truth = true_boxes["deepface_couple.jpg"]
    for result in results:
        x, y, w, h = result.box
        best = max(truth, key=lambda t: _iou((x, y, w, h), t))
        assert _iou((x, y, w, h), best) >= 0.5


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    return ix * iy / (aw * ah + bw * bh - ix * iy)


def test_the_emoji_scales_with_the_face(faces_dir):
    rgb = load_image(faces_dir / "aind_fawzia.jpg")
    areas = []
    for side in (40, 80, 160):
        areas.append(changed(rgb, overlay_emoji(rgb, [face((100, 100, side, side), "surprise")])).sum())
    # Area grows with the square of the side (a disc of 0.94 of it): 4x each time the side doubles.
    assert 3.5 < areas[1] / areas[0] < 4.5 and 3.5 < areas[2] / areas[1] < 4.5
    assert abs(areas[2] - np.pi * (0.47 * 160) ** 2) < 0.05 * areas[2]


def test_edges_clip_without_errors(faces_dir):
    rgb = load_image(faces_dir / "fer_justin.jpg")
    height, width = rgb.shape[:2]
    boxes = [(-60, -40, 120, 120), (width - 50, height - 30, 100, 100), (width + 10, 5, 50, 50),
             (-500, -500, 100, 100), (10, 10, 3, 3)]
    out = overlay_emoji(rgb, [face(box, label) for box, label in zip(boxes, LABELS)])
    assert out.shape == rgb.shape and out.dtype == np.uint8
    mask = changed(rgb, out)
    assert mask[:20, :20].any() and mask[-10:, -10:].any()   # the parts inside are drawn
    assert not mask[200:height - 200, 200:width - 200].any()  # nothing elsewhere
    # A picture smaller than the emoji, and a face larger than the picture.
    tiny = np.full((12, 9, 3), 200, np.uint8)
    assert changed(tiny, overlay_emoji(tiny, [face((-20, -20, 60, 60), "angry")])).all()
    assert np.array_equal(overlay_emoji(rgb, []), rgb)


def test_other_labels_and_positions(faces_dir):
    rgb = load_image(faces_dir / "fer_justin.jpg")
    # A personal model's own label has no emoji: the face is left as it is, and it still gets a box.
    assert not has_emoji("smile")
    assert np.array_equal(overlay_emoji(rgb, [face((50, 50, 100, 100), "smile")]), rgb)
    boxed = draw_results(rgb, [face((50, 50, 100, 100), "smile")], emoji=True)
    assert changed(rgb, boxed).any()
    # Beside the face: right of the box, nothing over the face itself.
    mask = changed(rgb, overlay_emoji(rgb, [face((50, 50, 100, 100), "happy")], position="beside"))
    assert mask.any() and not mask[50:150, 50:150].any() and np.nonzero(mask)[1].min() >= 150
    with pytest.raises(ValueError, match="unknown emoji position"):
        overlay_emoji(rgb, [face((50, 50, 100, 100))], position="under")


def test_the_live_pipeline_draws_the_emoji_when_the_setting_says(test_model, faces_dir):
    rgb = cv2.resize(load_image(faces_dir / "fer_justin.jpg"), (640, 480))
    classifier = EmotionClassifier.load(test_model)
    plain = LivePipeline(classifier, detect_every=1, confirm_new=False)
    pipeline = LivePipeline(classifier, detect_every=1, confirm_new=False)
    pipeline.configure(emoji=True)  # the webcam page hands its settings over this way
    assert pipeline.settings == LiveSettings(emoji=True)
    without, with_emoji = plain.process(rgb), pipeline.process(rgb)
    assert len(with_emoji.faces) == 1
    left, top, size = emoji_box(with_emoji.faces[0].box)
    mask = changed(without.image, with_emoji.image)
    assert mask[top:top + size, left:left + size].mean() > 0.5
    pipeline.configure(emoji=False)
    assert np.array_equal(pipeline.process(rgb).image, plain.process(rgb).image)


def run(*args):
    return subprocess.run([sys.executable, "-m", "emotion", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_cli_emoji_writes_annotated_files_that_differ(faces_dir, tmp_path):
    photos = [faces_dir / "deepface_couple.jpg", faces_dir / "fer_justin.jpg"]
    plain = run("predict", *photos, "--annotate", tmp_path / "plain")
    emoji = run("predict", *photos, "--annotate", tmp_path / "emoji", "--emoji")
    assert plain.returncode == 0 and emoji.returncode == 0, emoji.stderr
    assert plain.stdout == emoji.stdout  # the same faces and emotions
    for photo in photos:
        name = f"{photo.stem}-annotated.png"
        a = np.asarray(Image.open(tmp_path / "plain" / name))
        b = np.asarray(Image.open(tmp_path / "emoji" / name))
        assert a.shape == b.shape and changed(a, b).mean() > 0.01, name
    alone = run("predict", photos[1], "--emoji")
    assert alone.returncode == 1 and alone.stderr.count("\n") == 1 and "--annotate" in alone.stderr
