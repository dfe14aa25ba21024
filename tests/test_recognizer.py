"""EmotionRecognizer end to end on real photos, in every input form, and annotation."""

import io

import numpy as np
import pytest
from PIL import Image

from emotion import LABELS, EmotionRecognizer, ImageError, load_image
from emotion.annotate import EMOTION_COLORS


@pytest.fixture(scope="module")
def recognizer():
    return EmotionRecognizer()


def test_analyze_a_couple(recognizer, faces_dir):
    results = recognizer.analyze(faces_dir / "deepface_couple.jpg")
    assert len(results) == 2
    assert results[0].box[0] < results[1].box[0], "reading order, left to right"
    for face in results:
        assert face.label in LABELS and face.score == max(face.probs.values())
        assert list(face.probs) == list(LABELS)
        assert abs(sum(face.probs.values()) - 1) < 1e-3
        record = face.to_dict()
        assert set(record) == {"box", "label", "score", "probs"} and len(record["box"]) == 4


def test_every_input_form_gives_the_same_faces(recognizer, faces_dir):
    path = faces_dir / "fer_justin.jpg"
    rgb = load_image(path)
    forms = [path, str(path), path.read_bytes(), Image.open(path), rgb]
    boxes = [[r.box for r in recognizer.analyze(form)] for form in forms]
    boxes.append([r.box for r in recognizer.analyze(rgb[:, :, ::-1].copy(), color_order="bgr")])
    assert all(b == boxes[0] for b in boxes) and len(boxes[0]) == 1


def test_no_face_is_an_empty_list_not_an_error(recognizer, faces_dir):
    assert recognizer.analyze(faces_dir / "NEG_fer_no-faces.jpg") == []


def test_exif_rotated_photo_boxes_match_what_the_user_sees(recognizer, faces_dir):
    upright = Image.open(faces_dir / "fer_justin.jpg").convert("RGB")
    # Store the pixels turned on their side with an EXIF tag saying "turn me back" (6 = 90° CW),
    # as phone cameras do.
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(stored, "JPEG", quality=95, exif=exif)
    rotated = recognizer.analyze(stored.getvalue())
    straight = recognizer.analyze(upright)
    assert len(rotated) == len(straight) == 1
    assert np.abs(np.subtract(rotated[0].box, straight[0].box)).max() <= 12


def test_bad_images_raise_one_clear_error(recognizer, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(ImageError, match="notes.jpg is not an image"):
        recognizer.analyze(text)
    with pytest.raises(ImageError, match="empty"):
        recognizer.analyze(b"")


def test_annotate_draws_boxes_in_the_emotion_colour(recognizer, faces_dir):
    rgb = load_image(faces_dir / "deepface_couple.jpg")
    results = recognizer.analyze_rgb(rgb)
    picture = recognizer.annotate(rgb, results)
    assert picture.shape == rgb.shape and picture.dtype == np.uint8
    assert not np.shares_memory(picture, rgb)
    for face in results:
        x, y, w, h = face.box
        edge = picture[y + h // 2, x - 1:x + 2]  # the left edge of the box, mid-height
        assert (np.abs(edge.astype(int) - EMOTION_COLORS[face.label]).sum(axis=1) < 60).any()
    # The face itself is left as it was.
    x, y, w, h = results[0].box
    inner = (slice(y + h // 3, y + 2 * h // 3), slice(x + w // 3, x + 2 * w // 3))
    assert np.array_equal(picture[inner], rgb[inner])


def test_annotate_is_readable_on_tiny_and_huge_images(recognizer, faces_dir):
    from emotion.recognizer import FaceResult

    face = FaceResult((2, 2, 20, 20), "happy", 0.9, dict.fromkeys(LABELS, 1 / 7))
    small = recognizer.annotate(np.zeros((40, 40, 3), np.uint8), [face])
    assert small.any()
    big_face = FaceResult((1000, 1000, 1500, 1500), "sad", 0.5, dict.fromkeys(LABELS, 1 / 7))
    big = recognizer.annotate(np.zeros((4000, 6000, 3), np.uint8), [big_face])
    # The label's filled background is large enough to read at this size.
    assert (big[:1000, 1000:2500] == EMOTION_COLORS["sad"]).all(axis=2).sum() > 20000
