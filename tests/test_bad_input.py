"""Every kind of file a public demo receives: a correct image or one clear line, never a traceback.

Each case makes its own file. A case either decodes (and a check says what "correct" means for it:
the first frame, composited on white, upright, scaled from 16 bits...) or raises XaiLensError with a
single-line message matching a pattern. The same table runs through load_image, the whole engine and
(for a few cases) the command line.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explainers.errors import XaiLensError
from explainers.inputs import images
from explainers.inputs.images import load_image
from explainers.pipeline import explain_image

RED, BLUE, GREEN, WHITE = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 255, 255)


def _photo(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A smooth RGB gradient: enough structure for JPEG and the model, nothing special."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), np.full_like(x, 90)], axis=2)
    return Image.fromarray(array.astype(np.uint8))


def _saved(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height RGBA pixels, with a tiny (wrong) image body: a bomb's header."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def _bomb_png() -> bytes:
    """A real, valid 1-bit PNG of 30000x30000 (900 megapixels) that compresses to about 100 kB."""
    return _saved(Image.new("1", (30000, 30000), 0), "PNG", optimize=True)


def _animation(fmt: str) -> bytes:
    frames = [Image.new("RGB", (40, 30), colour) for colour in (RED, BLUE, GREEN)]
    return _saved(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)


def _rgba() -> bytes:
    array = np.zeros((20, 20, 4), dtype=np.uint8)
    array[..., 0] = 255  # red everywhere...
    array[:, :10, 3] = 0  # ...left half fully transparent, right half opaque
    array[:, 10:, 3] = 255
    return _saved(Image.fromarray(array, "RGBA"), "PNG")


def _la() -> bytes:
    array = np.zeros((20, 20, 2), dtype=np.uint8)
    array[..., 0] = 0  # black...
    array[:, :10, 1] = 0  # ...left half transparent
    array[:, 10:, 1] = 255
    return _saved(Image.fromarray(array, "LA"), "PNG")


def _palette_with_transparency() -> bytes:
    image = Image.new("P", (20, 20), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 0 black, index 1 red
    image.paste(1, (10, 0, 20, 20))
    return _saved(image, "PNG", transparency=0)  # black (left half) is transparent


def _palette() -> bytes:
    return _saved(_photo().convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG")


def _cmyk_jpeg() -> bytes:
    image = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    return _saved(image, "JPEG", quality=95)


def _sixteen_bit_png() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    return _saved(Image.fromarray(ramp, "I;16"), "PNG")


def _exif_rotated() -> bytes:
    """Stored 60 wide x 40 high with a red top-left corner; EXIF orientation 6 says 'turn 90 degrees clockwise'."""
    image = Image.new("RGB", (60, 40), BLUE)
    image.paste(RED, (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _saved(image, "JPEG", quality=95, exif=exif.tobytes())


def _truncated_jpeg() -> bytes:
    data = _saved(_photo((200, 150)), "JPEG", quality=90)
    return data[: len(data) // 2]


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _eps() -> bytes:
    """A real EPS file (Pillow writes PostScript without Ghostscript; reading it would need Ghostscript)."""
    return _saved(Image.new("RGB", (8, 8), RED), "EPS")


def _dos_eps() -> bytes:
    """The binary DOS EPS wrapper: its magic, then offsets pointing at the PostScript section."""
    body = _eps()
    return b"\xc5\xd0\xd3\xc6" + struct.pack("<IIIIII", 30, len(body), 0, 0, 0, 0) + b"\xff\xff" + body


def _pixel(array: np.ndarray, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in array[y, x])


def _near(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def _check_first_frame(rgb: np.ndarray) -> None:
    assert _near(_pixel(rgb, 5, 5), RED), _pixel(rgb, 5, 5)


def _check_white_left_red_right(rgb: np.ndarray) -> None:
    assert _pixel(rgb, 2, 10) == WHITE and _pixel(rgb, 15, 10) == RED


def _check_white_left_black_right(rgb: np.ndarray) -> None:
    assert _pixel(rgb, 2, 10) == WHITE and _pixel(rgb, 15, 10) == (0, 0, 0)


def _check_grey(rgb: np.ndarray) -> None:
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    assert (rgb[..., 0] == np.asarray(_photo().convert("L"))).all()  # grey levels kept exactly


def _check_sixteen_bit(rgb: np.ndarray) -> None:
    row = rgb[0, :, 0].astype(int)
    expected = np.linspace(0, 255, 64)
    assert np.abs(row - expected).max() <= 1.5, row  # scaled by 65535, not clipped at 255


def _check_upright(rgb: np.ndarray) -> None:
    assert rgb.shape[:2] == (60, 40)  # now 40 wide, 60 high
    assert _near(_pixel(rgb, 35, 3), RED, 40)  # the stored top-left corner is now top-right
    assert _near(_pixel(rgb, 3, 3), BLUE, 40)


def _check_palette(rgb: np.ndarray) -> None:
    original = np.asarray(_photo(), dtype=int)
    assert np.abs(rgb.astype(int) - original).mean() < 20  # 16 colours approximate the gradient


def _check_red(rgb: np.ndarray) -> None:
    assert _near(_pixel(rgb, 16, 16), RED, 30), _pixel(rgb, 16, 16)


def _check_shape(height: int, width: int) -> Callable[[np.ndarray], None]:
    def check(rgb: np.ndarray) -> None:
        assert rgb.shape == (height, width, 3)

    return check


@dataclass(frozen=True)
class Case:
    name: str
    suffix: str
    make: Callable[[], bytes]
    check: Callable[[np.ndarray], None] | None = None  # None: the case must be refused
    error: str = ""  # the pattern the one-line message must match when refused


CASES = [
    Case("zero_byte", ".jpg", lambda: b"", error="empty"),
    Case("truncated_jpeg", ".jpg", _truncated_jpeg, error="truncated or corrupt"),
    Case("text_as_image", ".png", lambda: b"just some words\n" * 20, error="not an image"),
    Case("html_as_image", ".jpg", lambda: HTML, error="not an image"),
    Case("svg", ".svg", lambda: SVG, error="not an image"),
    Case("pdf", ".pdf", lambda: PDF, error="PostScript or PDF, not an image"),
    Case("eps", ".eps", _eps, error="PostScript or PDF, not an image"),
    Case("eps_named_png", ".png", _eps, error="PostScript or PDF, not an image"),
    Case("dos_eps", ".eps", _dos_eps, error="PostScript or PDF, not an image"),
    Case("ppm_not_on_the_list", ".ppm", lambda: _saved(_photo(), "PPM"), error="not an image this tool can read"),
    Case("animated_gif", ".gif", lambda: _animation("GIF"), _check_first_frame),
    Case("animated_webp", ".webp", lambda: _animation("WEBP"), _check_first_frame),
    Case("greyscale", ".png", lambda: _saved(_photo().convert("L"), "PNG"), _check_grey),
    Case("palette", ".png", _palette, _check_palette),
    Case("palette_transparent", ".png", _palette_with_transparency, _check_white_left_red_right),
    Case("rgba", ".png", _rgba, _check_white_left_red_right),
    Case("la", ".png", _la, _check_white_left_black_right),
    Case("cmyk_jpeg", ".jpg", _cmyk_jpeg, _check_red),
    Case("sixteen_bit_png", ".png", _sixteen_bit_png, _check_sixteen_bit),
    Case("exif_rotated", ".jpg", _exif_rotated, _check_upright),
    Case("one_pixel", ".png", lambda: _saved(Image.new("RGB", (1, 1), RED), "PNG"), _check_shape(1, 1)),
    Case("strip_3x5000", ".png", lambda: _saved(_photo((3, 5000)), "PNG"), error="narrow strip"),
    Case("huge_20000", ".png", lambda: _png_header_only(20000, 20000), error="400 megapixels; the limit"),
    # 48 megapixels: over our limit, under twice it (where Pillow itself refuses once the app has set its cap)
    Case("over_our_pixels", ".png", lambda: _png_header_only(8000, 6000), error="8000x6000 pixels; the limit"),
    Case("over_our_side", ".png", lambda: _png_header_only(13000, 300), error="13000x300 pixels; the limit"),
    Case("bomb", ".png", _bomb_png, error="900 megapixels; the limit"),
    Case("over_upload_limit", ".png", lambda: b"\x89PNG" + b"\0" * (images.MAX_FILE_BYTES + 1), error="limit"),
]
IDS = [case.name for case in CASES]


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_input")
    for case in CASES:
        (folder / f"{case.name}{case.suffix}").write_bytes(case.make())
    return folder


def _path(folder: Path, case: Case) -> Path:
    return folder / f"{case.name}{case.suffix}"


def _assert_one_line_refusal(caught: pytest.ExceptionInfo, case: Case) -> None:
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message and len(message) < 300, message
    assert case.error in message, message


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_load_image_decodes_correctly_or_refuses_in_one_line(case_dir, case):
    path = _path(case_dir, case)
    for source in (path, path.read_bytes()):
        if case.check is None:
            with pytest.raises(XaiLensError) as caught:
                load_image(source)
            _assert_one_line_refusal(caught, case)
        else:
            image = load_image(source)
            assert image.mode == "RGB"
            case.check(np.asarray(image))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_engine_gives_a_map_or_the_same_one_line_error(case_dir, case, resnet18_random):
    path = _path(case_dir, case)
    if case.check is None:
        with pytest.raises(XaiLensError) as caught:
            explain_image(path, resnet18_random, "gradcam")
        _assert_one_line_refusal(caught, case)
        return
    explanation = explain_image(path, resnet18_random, "gradcam")
    saliency = explanation.saliency["gradcam"].map
    assert saliency.shape == (224, 224) and saliency.dtype == np.float32
    assert np.isfinite(saliency).all() and saliency.min() >= 0 and saliency.max() <= 1


@pytest.mark.parametrize("name", ["bomb", "huge_20000", "over_our_pixels"])
def test_oversized_images_are_refused_from_the_header_without_decoding(case_dir, name):
    path = case_dir / f"{name}.png"
    tracemalloc.start()
    try:
        with pytest.raises(XaiLensError):
            load_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # decoding would need 900 MB (bomb, 1 bit -> RGB 2.7 GB) or 1.6 GB; reading the file costs its size
    assert peak < path.stat().st_size + 8 * 2**20, peak


def test_a_file_over_the_limit_is_refused_without_reading_it(tmp_path, monkeypatch):
    path = tmp_path / "huge.jpg"
    with open(path, "wb") as handle:
        handle.truncate(images.MAX_FILE_BYTES + 1)  # sparse: nothing on disk
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("the file was read"))
    with pytest.raises(XaiLensError, match=r"MB; the limit is \d+ MB"):
        load_image(path)


def test_postscript_never_reaches_pillow_or_ghostscript(monkeypatch):
    """EPS would make Pillow run Ghostscript on load; it must be refused before Pillow even opens it."""
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: pytest.fail("Ghostscript was called"))
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("Pillow was asked to open PostScript"))
    for data in (_eps(), _dos_eps(), b"  \n" + _eps()):
        with pytest.raises(XaiLensError, match="PostScript or PDF"):
            load_image(data)


def test_pillow_tries_only_the_allowed_formats(monkeypatch):
    """Even a file whose first bytes slip past the magic check is only offered to the listed plugins."""
    seen = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: seen.append(k.get("formats")) or real_open(*a, **k))
    load_image(_saved(_photo(), "PNG"))
    assert seen == [images.ALLOWED_FORMATS] and "EPS" not in images.ALLOWED_FORMATS


def test_check_header_reads_the_size_without_decoding(case_dir, monkeypatch):
    from PIL import ImageFile

    png = _saved(_photo((64, 48)), "PNG")
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels were decoded"))
    assert images.check_header(png) == (64, 48)
    for name in ("bomb", "over_our_pixels", "eps"):
        case = next(c for c in CASES if c.name == name)
        with pytest.raises(XaiLensError, match=case.error):
            images.check_header(_path(case_dir, case))


def test_the_aspect_limit_still_accepts_ordinary_panoramas():
    image = load_image(_saved(_photo((images.MAX_ASPECT * 10, 10)), "PNG"))
    assert image.size == (images.MAX_ASPECT * 10, 10)


@pytest.mark.parametrize(
    "array, expected_error",
    [
        (np.zeros((0, 5, 3), dtype=np.uint8), "no pixels"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "HxW"),
        (np.full((4, 4, 3), np.nan), "finite"),
        (np.zeros((2, 2, 3), dtype=object), "numbers"),
    ],
)
def test_bad_arrays_are_refused_in_one_line(array, expected_error):
    with pytest.raises(XaiLensError, match=expected_error) as caught:
        load_image(array)
    assert "\n" not in str(caught.value)


CLI_CASES = ["zero_byte", "html_as_image", "bomb"]


@pytest.mark.slow
def test_command_line_prints_one_error_line_and_exits_2(case_dir, tmp_path):
    """One run per refused file; `error: <msg>` on stderr, exit 2, no traceback."""
    for name in CLI_CASES:
        case = next(c for c in CASES if c.name == name)
        command = [sys.executable, "-m", "explainers", "explain", str(_path(case_dir, case))]
        command += ["--model", "resnet18", "--weights", "random", "--methods", "gradcam", "--out", str(tmp_path)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (name, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and case.error in errors[0], (name, result.stderr[-2000:])
