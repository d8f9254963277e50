"""Decode any input image safely into an upright RGB PIL image.

Size is checked from the header before any pixel is decoded, so a decompression bomb or a
20000x20000 PNG is refused without costing memory. Transparency is composited on white,
animations give their first frame, EXIF orientation is applied.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explainers.errors import XaiLensError

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000  # e.g. 8000x5000; larger images are refused before decoding
MAX_SIDE = 12_000

ImageSource = str | Path | bytes | Image.Image | np.ndarray


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        name = "the uploaded data"
    else:
        path = Path(source)
        if not path.is_file():
            raise XaiLensError(f"Image file '{path}' does not exist; check the path.")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise XaiLensError(
                f"'{path.name}' is {size / 2**20:.1f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB. "
                "Use a smaller image."
            )
        data = path.read_bytes()
        name = f"'{path.name}'"
    if not data:
        raise XaiLensError(f"{name} is empty (0 bytes); choose a JPEG, PNG, WebP, GIF or BMP image.")
    if len(data) > MAX_FILE_BYTES:
        raise XaiLensError(f"{name} is over the {MAX_FILE_BYTES // 2**20} MB limit; use a smaller image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise XaiLensError(
            f"{name} is not an image this tool can read; use a JPEG, PNG, WebP, GIF or BMP file."
        ) from None


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4)):
        if array.dtype != np.uint8:
            scaled = array.astype(np.float64)
            if scaled.max(initial=0) <= 1.0:
                scaled *= 255.0
            array = np.clip(scaled, 0, 255).astype(np.uint8)
        return Image.fromarray(array.squeeze(2) if array.ndim == 3 and array.shape[2] == 1 else array)
    raise XaiLensError(f"An image array must be HxW or HxWx3/4; got shape {array.shape}.")


def _check_size(image: Image.Image) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise XaiLensError("The image has no pixels; choose another image.")
    if width * height > MAX_PIXELS or max(width, height) > MAX_SIDE:
        raise XaiLensError(
            f"The image is {width}x{height} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels "
            f"and {MAX_SIDE} pixels a side. Resize it first."
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if pixels.max(initial=0) > 255 else 255.0
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
            f"The image could not be decoded ({str(exc).splitlines()[0][:120] or type(exc).__name__}); "
            "it may be truncated or corrupt. Try another file."
        ) from None
