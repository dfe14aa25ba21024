"""load_image: whatever a user hands us (path, upload, bytes, array, PIL image) as one RGB uint8 array.

Every way an input can be unusable ends in ``ImageError`` with a one-line message that
can be shown to the user as it is; nothing else escapes for bad data.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A 50-megapixel photo is already larger than any phone camera makes; past that the
# decoded pixels (150 MB and more) are far more likely a mistake or an attack.
MAX_PIXELS = 50_000_000


class ImageError(ValueError):
    """The input cannot be used as an image; the message says why in one line, for the user."""


def load_image(source, name: str | None = None, *, color_order: str = "rgb") -> np.ndarray:
    """Read ``source`` as an upright RGB uint8 array of shape (H, W, 3), C-contiguous.

    ``source`` may be a numpy array ((H, W), (H, W, 3) or (H, W, 4); uint8, uint16,
    bool, or float in [0, 1]), a PIL image, a path, raw bytes, or a binary file-like
    object such as Streamlit's UploadedFile. ``name`` is how messages refer to the
    input; by default the path, or the file object's ``.name``, or "image".
    ``color_order="bgr"`` says an array is in OpenCV's BGR(A) order.
    Transparent pixels are composited onto white; animations give their first frame;
    JPEG EXIF orientation is applied. Raises ``ImageError`` for unusable input.
    """
    if color_order not in ("rgb", "bgr"):
        raise ValueError(f"color_order must be 'rgb' or 'bgr', not {color_order!r}")
    if isinstance(source, np.ndarray):
        return _from_array(source, name or "image", bgr=color_order == "bgr")
    if color_order != "rgb":
        raise ValueError("color_order applies to numpy arrays only")

    if isinstance(source, Image.Image):
        return _decode(source, name or getattr(source, "filename", "") or "image")
    if isinstance(source, (str, os.PathLike)):
        return _decode(_checked_path(Path(source), name or str(source)), name or str(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "image"
    elif hasattr(source, "read"):
        label = name or _file_name(source) or "image"
        # An UploadedFile may already have been read on an earlier Streamlit run;
        # getvalue() gives its whole content wherever its position is.
        data = source.getvalue() if hasattr(source, "getvalue") else source.read()
        if isinstance(data, str):
            raise TypeError("load_image needs a file opened in binary mode ('rb')")
        data = bytes(data)
    else:
        raise TypeError(f"load_image cannot read a {type(source).__name__}")
    if not data:
        raise ImageError(f"{label} is empty (0 bytes)")
    return _decode(io.BytesIO(data), label)


def _file_name(fileobj) -> str:
    name = getattr(fileobj, "name", None)
    return name if isinstance(name, str) else ""


def _checked_path(path: Path, label: str) -> Path:
    try:
        exists = path.exists()
    except (OSError, ValueError):  # a name too long, or with a NUL byte in it
        exists = False
    if not exists:
        raise ImageError(f"{label} not found")
    if path.is_dir():
        raise ImageError(f"{label} is a folder, not an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{label} is empty (0 bytes)")
    return path


def _check_size(width: int, height: int, label: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{label} is {width}x{height} pixels; the largest accepted is "
            f"{MAX_PIXELS // 1_000_000} megapixels"
        )


def _decode(source, label: str) -> np.ndarray:
    try:
        # PIL only warns between its own limit and twice that; as an error it cannot
        # slip past, and either way the pixels are never decoded. (catch_warnings is
        # process-wide state; it only touches this one warning category.)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if isinstance(source, Image.Image):
                return _pil_to_rgb(source, label)
            with Image.open(source) as im:
                return _pil_to_rgb(im, label)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        # PIL refused in Image.open, before we could see the size; its message has the count.
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"has {int(found.group(1)) // 1_000_000} megapixels" if found else "is too large"
        raise ImageError(
            f"{label} {size}; the largest accepted is {MAX_PIXELS // 1_000_000} megapixels"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{label} is not an image file (or a format we cannot read)") from None
    except PermissionError:
        raise ImageError(f"{label} cannot be read (permission denied)") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error):
        # PIL reports broken data with any of these; with ImageFile.LOAD_TRUNCATED_IMAGES
        # left False (PIL's default), a cut-off file fails here instead of coming back
        # with its missing part filled grey.
        raise ImageError(f"{label} is truncated or damaged") from None


def _pil_to_rgb(im: Image.Image, label: str) -> np.ndarray:
    _check_size(*im.size, label)  # from the header alone: nothing is decoded yet
    im.load()
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not cost the user the photo
        pass

    if im.mode in ("1", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        pixels = np.asarray(im)
        # 16-bit PNGs open as I;16 or, in older PIL, as I: values past 255 mean 16 bits.
        if im.mode == "I" and pixels.size and 255 < pixels.max() <= 65535 and pixels.min() >= 0:
            pixels = pixels.astype(np.uint16)
        return _from_array(pixels, label, bgr=False)

    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    target = "RGBA" if has_alpha else "RGB"
    if im.mode != target:
        try:
            im = im.convert(target)
        except ValueError:
            raise ImageError(f"{label} uses a colour mode ({im.mode}) we cannot read") from None
    return _from_array(np.asarray(im), label, bgr=False)


def _from_array(arr: np.ndarray, label: str, *, bgr: bool) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ImageError(f"{label} has shape {arr.shape}; expected (H, W), (H, W, 3) or (H, W, 4)")
    if arr.size == 0:
        raise ImageError(f"{label} is empty (0 pixels)")
    _check_size(arr.shape[1], arr.shape[0], label)

    arr = _to_uint8(arr, label)
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if bgr:
        arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]
    if arr.shape[2] == 4:
        return _onto_white(arr)
    return np.array(arr, dtype=np.uint8, order="C")  # a copy: callers may write to it


def _to_uint8(arr: np.ndarray, label: str) -> np.ndarray:
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "b":
        return arr.astype(np.uint8) * 255
    if kind == "u" and arr.dtype.itemsize == 2:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if kind in "iu":
        if arr.min() < 0 or arr.max() > 255:
            raise ImageError(f"{label} has {arr.dtype} values outside 0..255")
        return arr.astype(np.uint8)
    if kind == "f":
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ImageError(f"{label} has float values outside [0, 1]")
        return np.rint(arr.astype(np.float32) * 255).astype(np.uint8)
    raise ImageError(f"{label} has pixel type {arr.dtype}, which is not an image type")


def _onto_white(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[:, :, :3].astype(np.uint16)
    alpha = rgba[:, :, 3:].astype(np.uint16)
    # At most 255*255 + 127: fits in uint16; +127 rounds the division.
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return np.ascontiguousarray(out.astype(np.uint8))
