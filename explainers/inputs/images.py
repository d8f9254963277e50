"""Decode any input image safely into an upright RGB PIL image.

Size is checked from the header before any pixel is decoded, so a decompression bomb or a
20000x20000 PNG is refused without costing memory. Only a short list of formats is opened, and
PostScript/EPS/PDF are refused from their first bytes, so Pillow never hands a visitor's file to
an external program (Ghostscript). Transparency is composited on white, animations give their
first frame, EXIF orientation is applied.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explainers.errors import XaiLensError, first_line
from explainers.inputs.user_files import read_limited
from explainers.limits import MAX_ASPECT, MAX_PIXELS, MAX_SIDE
from explainers.limits import MAX_IMAGE_FILE_BYTES as MAX_FILE_BYTES  # this module's name for it

# The formats Pillow may try, decoded in-process by Pillow's own plugins. Pillow's default is every
# plugin it has, EPS among them (which runs Ghostscript) and exotic ones nobody photographs in.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG also opens MPO (phone photos)
READABLE = "a JPEG, PNG, WebP, GIF, BMP or TIFF image"
# First bytes of files that only an external interpreter can render: PostScript/EPS, DOS EPS, PDF.
PROGRAM_MAGIC = (b"%!", b"\xc5\xd0\xd3\xc6", b"%PDF")

ImageSource = str | Path | bytes | Image.Image | np.ndarray


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    data, name = read_limited(source, limit_bytes=MAX_FILE_BYTES, kind="Image file", advice="Use a smaller image.")
    if not data:
        raise XaiLensError(f"{name} is empty (0 bytes); choose {READABLE}.")
    return _open_bytes(data, name)


def _open_bytes(data: bytes, name: str) -> Image.Image:
    """Header only: no pixel is decoded here, and only ALLOWED_FORMATS are tried."""
    if data[:64].lstrip().startswith(PROGRAM_MAGIC):
        raise XaiLensError(f"{name} is PostScript or PDF, not an image this tool can read; choose {READABLE}.")
    try:
        # Pillow warns above 89 and refuses above 179 megapixels from the header alone; our own,
        # lower limit is checked next, also before decoding. (No warning filters or global limits
        # are changed here: both are process-wide and the app serves many visitors at once.)
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(claimed.group(1)) // 1_000_000} megapixels" if claimed else "too many pixels"
        raise XaiLensError(
            f"{name} claims {size}; the limit is {MAX_PIXELS // 1_000_000} megapixels and {MAX_SIDE} pixels a side. "
            "Resize it first."
        ) from None
    except UnidentifiedImageError:
        raise XaiLensError(f"{name} is not an image this tool can read; use {READABLE}.") from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:  # a header that lies
        raise XaiLensError(f"{name} has a broken header ({first_line(exc, limit=120)}); try another file.") from None


def _from_array(array: np.ndarray) -> Image.Image:
    if array.size == 0:
        raise XaiLensError(f"The image array has no pixels (shape {array.shape}); choose another image.")
    if array.dtype.kind not in "biuf":
        raise XaiLensError(f"An image array must hold numbers; got dtype {array.dtype}.")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise XaiLensError("The image array holds NaN or infinite values; pixels must be finite numbers.")
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4)):
        _check_dimensions(array.shape[1], array.shape[0])
        if array.dtype != np.uint8:
            scaled = array.astype(np.float64)
            if scaled.max(initial=0) <= 1.0:
                scaled *= 255.0
            array = np.clip(scaled, 0, 255).astype(np.uint8)
        return Image.fromarray(array.squeeze(2) if array.ndim == 3 and array.shape[2] == 1 else array)
    raise XaiLensError(f"An image array must be HxW or HxWx3/4; got shape {array.shape}.")


def _check_size(image: Image.Image) -> None:
    _check_dimensions(*image.size)


def _check_dimensions(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise XaiLensError("The image has no pixels; choose another image.")
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise XaiLensError(
            f"The image is {width}x{height} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels "
            f"and {MAX_SIDE} pixels a side. Resize it first."
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise XaiLensError(
            f"The image is {width}x{height} pixels, a narrow strip; the longer side may be at most "
            f"{MAX_ASPECT} times the shorter. Crop it first."
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        # 16-bit files are scaled by their format's range, not by their content (a dark 16-bit photo stays dark)
        sixteen_bit = image.mode.startswith("I;16") or image.format == "PNG" or pixels.max(initial=0) > 255
        peak = 65535.0 if sixteen_bit else 255.0
        image = Image.fromarray(np.clip(pixels / peak * 255.0, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        span = max(pixels.max(initial=0) - pixels.min(initial=0), 1e-12)
        image = Image.fromarray(((pixels - pixels.min()) / span * 255).astype(np.uint8), mode="L")
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


def check_header(source: str | Path | bytes) -> tuple[int, int]:
    """(width, height) from the header, refusing what load_image would refuse, without decoding a pixel.

    The app calls this on a visitor's upload before anything else touches the file.
    """
    image = _open(source)
    try:
        _check_size(image)
        return image.size
    finally:
        image.close()


def load_image(source: ImageSource) -> Image.Image:
    """Any image input -> upright RGB PIL image, or an XaiLensError saying what to do."""
    image = _open(source)
    _check_size(image)
    try:
        if getattr(image, "is_animated", False):
            image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return _to_rgb(image)
    except XaiLensError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise XaiLensError(
            f"The image could not be decoded ({first_line(exc, limit=120)}); it may be truncated or corrupt. "
            "Try another file."
        ) from None
