"""load_image on real inputs of every awkward kind, each one built here with PIL/numpy."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from emotion.imageio import MAX_PIXELS, ImageError, load_image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHOTO = DATA / "faces" / "fer_justin.jpg"


def real_photo() -> Path:
    if not PHOTO.is_file():
        pytest.fail(f"test photo missing: {PHOTO} (the shared data belongs at ../shared/data)")
    return PHOTO


def encoded(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG start claiming width x height, with no real pixel data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def image_error(source, **kwargs) -> str:
    with pytest.raises(ImageError) as caught:
        load_image(source, **kwargs)
    message = str(caught.value)
    assert message and "\n" not in message
    return message


def assert_rgb(out: np.ndarray, shape: tuple[int, int]) -> None:
    assert out.shape == (*shape, 3)
    assert out.dtype == np.uint8
    assert out.flags.c_contiguous and out.flags.writeable


# --- a real photo, through every kind of source -------------------------------------


def test_real_photo_from_path_bytes_filelike_pil_and_bgr_array():
    import cv2

    path = real_photo()
    from_path = load_image(path)
    with Image.open(path) as im:
        assert_rgb(from_path, (im.height, im.width))

    assert np.array_equal(load_image(str(path)), from_path)
    assert np.array_equal(load_image(path.read_bytes()), from_path)
    assert np.array_equal(load_image(bytearray(path.read_bytes())), from_path)
    assert np.array_equal(load_image(memoryview(path.read_bytes())), from_path)
    with open(path, "rb") as f:
        assert np.array_equal(load_image(f), from_path)
    with Image.open(path) as im:
        assert np.array_equal(load_image(im), from_path)

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    from_bgr = load_image(bgr, color_order="bgr")
    assert_rgb(from_bgr, from_path.shape[:2])
    # Two JPEG decoders may differ by a level or so; a channel swap would differ by far more.
    assert np.abs(from_bgr.astype(int) - from_path).mean() < 2
    assert np.abs(load_image(bgr).astype(int) - from_path).mean() > 10


def test_uploaded_file_like_uses_its_name_and_survives_a_previous_read():
    class Upload(io.BytesIO):  # shaped like Streamlit's UploadedFile
        name = "holiday.jpg"

    upload = Upload(encoded(noise(30, 20), "PNG"))
    upload.read()  # an earlier rerun consumed it
    assert_rgb(load_image(upload), (20, 30))
    assert image_error(Upload(b"")) == "holiday.jpg is empty (0 bytes)"
    assert image_error(Upload(b"hello"), name="mine.png").startswith("mine.png is not an image")


def test_plain_reader_with_only_read():
    class Reader:
        def __init__(self, data: bytes):
            self._data = data

        def read(self) -> bytes:
            return self._data

    assert_rgb(load_image(Reader(encoded(noise(8, 6), "BMP"))), (6, 8))


def test_the_result_is_a_fresh_array():
    pixels = np.zeros((4, 5, 3), np.uint8)
    out = load_image(pixels)
    out[:] = 9
    assert pixels.max() == 0


# --- bad input: one clear line each --------------------------------------------------


def test_missing_path_and_folder(tmp_path):
    assert image_error(tmp_path / "nope.jpg").endswith("nope.jpg not found")
    assert "folder" in image_error(tmp_path)


def test_empty_inputs(tmp_path):
    empty = tmp_path / "photo.jpg"
    empty.write_bytes(b"")
    assert image_error(empty, name="photo.jpg") == "photo.jpg is empty (0 bytes)"
    assert image_error(b"") == "image is empty (0 bytes)"
    assert "empty" in image_error(np.zeros((0, 5, 3), np.uint8))


def test_text_file_named_jpg(tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("shopping list: eggs, milk\n")
    message = image_error(notes)
    assert message.endswith("notes.jpg is not an image file (or a format we cannot read)")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_refused_not_grey_filled(fmt):
    data = encoded(noise(120, 90), fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    message = image_error(data[: len(data) * 6 // 10], name=f"photo.{fmt.lower()}")
    assert message == f"photo.{fmt.lower()} is truncated or damaged"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_too_large_is_refused_from_the_header(tmp_path):
    # 8000x8000 is past our limit but under PIL's own: our check speaks, with the size.
    big = tmp_path / "big.png"
    big.write_bytes(png_header_only(8000, 8000))
    assert big.stat().st_size < 200
    assert image_error(big, name="big.png") == (
        "big.png is 8000x8000 pixels; the largest accepted is 50 megapixels"
    )


@pytest.mark.parametrize("side", [10_000, 20_000])  # PIL's warning band, then its error band
def test_decompression_bomb_becomes_image_error(side):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may leak out either
        message = image_error(png_header_only(side, side))
    assert message == (
        f"image has {side * side // 1_000_000} megapixels; the largest accepted is 50 megapixels"
    )


def test_too_large_array_is_refused_without_copying():
    huge = np.broadcast_to(np.uint8(0), (10_000, MAX_PIXELS // 10_000 + 1))  # no memory behind it
    assert "the largest accepted is 50 megapixels" in image_error(huge)


def test_bad_arrays():
    assert "shape" in image_error(np.zeros((4, 4, 2), np.uint8))
    assert "shape" in image_error(np.zeros(16, np.uint8))
    assert "[0, 1]" in image_error(np.full((2, 2), 3.5))
    assert "[0, 1]" in image_error(np.full((2, 2), np.nan))
    assert "0..255" in image_error(np.full((2, 2), 300, np.int32))


def test_misuse_is_a_programming_error_not_an_image_error():
    with pytest.raises(TypeError):
        load_image(42)
    with pytest.raises(ValueError, match="color_order"):
        load_image(np.zeros((2, 2, 3), np.uint8), color_order="hsv")
    with pytest.raises(ValueError, match="arrays only"):
        load_image(b"abc", color_order="bgr")


# --- odd but valid images ------------------------------------------------------------


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (48, 16), (0, 0, 0, 0))  # white
    cmyk.paste((255, 0, 0, 0), (0, 0, 16, 16))  # cyan
    cmyk.paste((0, 0, 0, 255), (16, 0, 32, 16))  # black
    out = load_image(encoded(cmyk, "JPEG", quality=95))
    assert_rgb(out, (16, 48))
    assert np.allclose(out[4:12, 4:12].mean(axis=(0, 1)), (0, 255, 255), atol=8)
    assert np.allclose(out[4:12, 20:28].mean(axis=(0, 1)), (0, 0, 0), atol=8)
    assert np.allclose(out[4:12, 36:44].mean(axis=(0, 1)), (255, 255, 255), atol=8)


def test_exif_orientation_6_is_applied():
    # Stored 60 wide x 40 high, red block top-left; orientation 6 = "turn 90 degrees
    # clockwise to view", so the user sees it 40 wide x 60 high, red block top-right.
    stored = Image.new("RGB", (60, 40), "white")
    stored.paste((255, 0, 0), (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encoded(stored, "JPEG", quality=95, exif=exif)

    out = load_image(data)
    assert_rgb(out, (60, 40))
    assert np.allclose(out[2:10, 30:38].mean(axis=(0, 1)), (255, 0, 0), atol=12)
    assert out[50:, :10].min() > 240 and out[2:10, 2:10].min() > 240
    with Image.open(io.BytesIO(data)) as lazy:  # a PIL image gets the same treatment
        assert np.array_equal(load_image(lazy), out)


def test_16_bit_grey_png():
    levels = np.array([[0, 257 * 128, 65535]], np.uint16)
    out = load_image(encoded(Image.fromarray(levels), "PNG"))
    assert_rgb(out, (1, 3))
    assert out[0, :, 0].tolist() == [0, 128, 255]
    assert np.array_equal(load_image(levels), out)


def test_rgba_png_composited_onto_white():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[:, 0] = (255, 0, 0, 255)  # opaque red
    rgba[:, 1] = (255, 0, 0, 128)  # half red
    rgba[:, 2] = (0, 0, 0, 0)  # fully transparent black
    out = load_image(encoded(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [255, 127, 127]
    assert out[0, 2].tolist() == [255, 255, 255]
    assert np.array_equal(load_image(rgba), out)
    bgra = rgba[:, :, [2, 1, 0, 3]]
    assert np.array_equal(load_image(bgra, color_order="bgr"), out)


def test_la_png():
    la = Image.fromarray(np.array([[[0, 255], [0, 0]]], np.uint8), "LA")
    out = load_image(encoded(la, "PNG"))
    assert out[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_palette_png_with_transparency():
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 0, 128, 255] + [0] * 762)
    pal.putdata([0, 1])
    out = load_image(encoded(pal, "PNG", transparency=0))
    assert out[0].tolist() == [[255, 255, 255], [0, 128, 255]]


def test_grey_and_one_bit():
    grey = Image.fromarray(np.array([[0, 77, 255]], np.uint8), "L")
    assert load_image(encoded(grey, "PNG"))[0].tolist() == [[0] * 3, [77] * 3, [255] * 3]

    bits = Image.new("1", (3, 1), 0)
    bits.putpixel((1, 0), 1)
    assert load_image(encoded(bits, "PNG"))[0, :, 0].tolist() == [0, 255, 0]
    assert load_image(np.array([[False, True]]))[0, :, 0].tolist() == [0, 255]


@pytest.mark.parametrize("fmt, params", [("GIF", {}), ("WEBP", {"lossless": True})])
def test_animation_gives_its_first_frame(fmt, params):
    red, blue = Image.new("RGB", (6, 4), (255, 0, 0)), Image.new("RGB", (6, 4), (0, 0, 255))
    data = encoded(red, fmt, save_all=True, append_images=[blue], duration=100, loop=0, **params)
    with Image.open(io.BytesIO(data)) as im:
        assert getattr(im, "n_frames", 1) == 2
    out = load_image(data)
    assert_rgb(out, (4, 6))
    assert (out == (255, 0, 0)).all()


@pytest.mark.parametrize("fmt", ["WEBP", "BMP"])
def test_webp_and_bmp(fmt):
    source = noise(10, 7, seed=3)
    out = load_image(encoded(source, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    assert np.array_equal(out, np.asarray(source))


def test_array_kinds():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = load_image(grey)
    assert_rgb(out, (3, 4))
    assert (out == grey[:, :, None]).all()
    assert np.array_equal(load_image(grey[:, :, None]), out)

    unit = np.array([[0.0, 0.5, 1.0]], np.float32)
    assert load_image(unit)[0, :, 0].tolist() == [0, 128, 255]

    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB, blue if read as BGR
    assert load_image(rgb)[0, 0].tolist() == [200, 0, 0]
    assert load_image(rgb, color_order="bgr")[0, 0].tolist() == [0, 0, 200]
    assert load_image(np.asfortranarray(rgb)).flags.c_contiguous
