"""Issue 19, items 5-7, replayed against `python -m app` on 127.0.0.1 as a hostile visitor would send them.

One server process serves the whole table. Each attack must end in a one-line refusal within
ATTACK_TIMEOUT_S. Afterwards (the last test): the server still explains a normal upload, no file
outside what was uploaded was ever opened (an audit hook in the server watches a canary folder
outside Gradio's), no traceback in the server log is a crash, and its peak memory stayed within RSS_BOUND
of what it held after its first explanation (decoding the 169-megapixel PNG alone would add
~1.5 GB, the 80 MB data: URL ~2 GB).
"""

from __future__ import annotations

import base64
import io
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from app.file_inputs import REMOTE_REFUSED, UPLOAD_ONLY
from explainers.inputs.images import MAX_FILE_BYTES
from explainers.limits import MAX_DATA_URL_CHARS

pytestmark = pytest.mark.slow
ATTACK_TIMEOUT_S = 60
RSS_BOUND = 400 * 2**20
META = {"_type": "gradio.FileData"}
MB = 2**20


@dataclass
class Server:
    url: str
    pid: int
    log: Path
    canary: Path  # a real JPEG outside every folder Gradio serves or writes
    ids: dict[str, int]
    baseline_rss: int = 0


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    from app_server import app_process, component_ids, write_small_tables

    canary_dir = tmp_path_factory.mktemp("canary")
    canary = canary_dir / "canary.jpg"
    _photo().save(canary, "JPEG")
    (canary_dir / "secret.txt").write_text("not for visitors")
    examples = os.environ.get("XAI_LENS_EXAMPLES_DIR")
    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    log = tmp_path_factory.mktemp("log") / "server.log"
    with app_process(Path(examples) if examples else None, tables, log, canary_dir) as (url, pid):
        yield Server(url, pid, log, canary, component_ids(url))


def _photo(size: tuple[int, int] = (96, 64)) -> Image.Image:
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    return Image.fromarray(np.stack([x * 2 % 256, y * 3 % 256, (x + y) % 256], axis=2).astype(np.uint8))


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _bomb_png() -> bytes:
    """A valid 13000x13000 1-bit PNG (169 megapixels) of about 20 kB: the issue's bomb."""
    return _encoded(Image.new("1", (13000, 13000), 0), "PNG", optimize=True)


def _explain_data(image: dict | None) -> list:
    from app_server import explain_inputs, fast_lime_values

    return explain_inputs(image, ["gradcam"], fast_lime_values())


def _upload(server: Server, name: str, data: bytes) -> dict:
    """POST one file to /gradio_api/upload; the FileData a browser would then send."""
    response = httpx.post(server.url + "gradio_api/upload", files=[("files", (name, data))], timeout=60)
    assert response.status_code == 200, response.text
    return {"path": response.json()[0], "orig_name": name, "meta": META}


def _explain(server: Server, image: dict | None) -> dict:
    from app_server import queue_call

    return queue_call(server.url, server.ids["explain"], _explain_data(image), timeout_s=ATTACK_TIMEOUT_S)


def _refusal_of(message: dict) -> str:
    from app_server import error_of

    refusal = error_of(message)
    assert refusal is not None, f"accepted: {str(message)[:300]}"
    return refusal


def _multipart(parts: list[tuple[str, int]], boundary: str) -> Iterator[bytes]:
    """A streamed multipart body of (file name, size) parts of zero bytes: nothing large is held in memory."""
    block = b"\0" * MB
    for name, size in parts:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        left = size
        while left > 0:
            yield block[: min(left, MB)]
            left -= MB
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _raw_upload(server: Server, parts: list[tuple[str, int]]) -> httpx.Response:
    boundary = secrets.token_hex(12)
    length = sum(len(chunk) for chunk in _multipart(parts, boundary))
    return httpx.post(
        server.url + "gradio_api/upload",
        content=_multipart(parts, boundary),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)},
        timeout=ATTACK_TIMEOUT_S,
    )


def _data_url_body(server: Server, base64_chars: int) -> Iterator[bytes]:
    """The queue/join JSON of an explain whose image is a data: URL of `base64_chars`, streamed."""
    marker = "@@DATA@@"
    body = {
        "data": _explain_data({"path": None, "url": f"data:image/png;base64,{marker}", "meta": META}),
        "fn_index": server.ids["explain"],
        "session_hash": secrets.token_hex(8),
        "event_data": None,
        "trigger_id": None,
    }
    head, tail = json.dumps(body).split(marker)
    yield head.encode()
    block = b"A" * MB
    left = base64_chars
    while left > 0:
        yield block[: min(left, MB)]
        left -= MB
    yield tail.encode()


def _one_line_http_refusal(response: httpx.Response, pattern: str) -> str:
    assert response.status_code == 413, (response.status_code, response.text[:300])
    text = response.text.strip()
    assert "\n" not in text and pattern in text, text
    return text


# ---- item 5: local file reads through the image input -------------------------------------------------
def attack_server_path_without_meta(server: Server) -> str:
    return _refusal_of(_explain(server, {"path": str(server.canary)}))


def attack_server_path_with_meta(server: Server) -> str:
    """Gradio's own check (InvalidPathError) refuses this one; show_error=False keeps its text, and path, back."""
    refusal = _refusal_of(_explain(server, {"path": str(server.canary), "meta": META}))
    assert refusal == "Error", refusal
    return refusal


def attack_svg_name_reveals_nothing(server: Server) -> str:
    """'x.svg' made Gradio pass the path on unread, and the library's message named the file and its size."""
    existing = _refusal_of(_explain(server, {"path": str(server.canary.with_name("secret.txt")), "orig_name": "x.svg"}))
    missing = _refusal_of(_explain(server, {"path": str(server.canary.with_name("nothing.txt")), "orig_name": "x.svg"}))
    assert existing == missing, (existing, missing)  # existence is not revealed
    for secret in ("secret", "nothing", str(server.canary.parent), " MB", " bytes"):
        assert secret not in existing, existing
    return existing


def attack_traversal_out_of_the_upload_folder(server: Server) -> str:
    from gradio.utils import get_upload_folder

    escape = os.path.join(get_upload_folder(), *[".."] * 12) + str(server.canary)  # resolves: the folder exists
    return _refusal_of(_explain(server, {"path": escape}))


def attack_link_planted_in_the_upload_folder(server: Server) -> str:
    """Even a link inside Gradio's folder (none can be uploaded, but say one were there) leads nowhere."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / f"xai-lens-test-{secrets.token_hex(6)}"
    folder.mkdir(parents=True)
    link = folder / "photo.jpg"
    link.symlink_to(server.canary)
    try:
        refusal = _refusal_of(_explain(server, {"path": str(link), "meta": META}))
        assert refusal == "Error", refusal  # Gradio's check resolves the link; without meta, ours does (next)
        assert _refusal_of(_explain(server, {"path": str(link)})) == UPLOAD_ONLY
        return refusal
    finally:
        link.unlink()
        folder.rmdir()


def attack_web_address(server: Server) -> str:
    refusal = _refusal_of(_explain(server, {"path": "https://example.com/photo.png", "meta": META}))
    assert refusal == REMOTE_REFUSED, refusal
    return refusal


# ---- item 6: limits bypassed ----------------------------------------------------------------------------
def attack_data_url_of_80_mb(server: Server) -> str:
    """The issue's 79.9 MB image as a data: URL (a 107 MB request): refused before Gradio parses it."""
    chars = 4 * (80 * MB // 3)
    return _one_line_http_refusal(
        httpx.post(
            server.url + "gradio_api/queue/join",
            content=_data_url_body(server, chars),
            headers={"Content-Type": "application/json"},
            timeout=ATTACK_TIMEOUT_S,
        ),
        "limit",
    )


def attack_data_url_of_80_mb_with_its_length_declared(server: Server) -> str:
    chars = 4 * (80 * MB // 3)
    length = sum(len(chunk) for chunk in _data_url_body(server, chars))
    return _one_line_http_refusal(
        httpx.post(
            server.url + "gradio_api/queue/join",
            content=_data_url_body(server, chars),
            headers={"Content-Type": "application/json", "Content-Length": str(length)},
            timeout=ATTACK_TIMEOUT_S,
        ),
        "limit",
    )


def attack_data_url_just_over_20_mb(server: Server) -> str:
    """Small enough for the request cap, too large as an image: the component refuses before decoding."""
    from app_server import queue_call

    url = "data:image/png;base64," + "A" * (MAX_DATA_URL_CHARS + 4)
    data = _explain_data({"path": None, "url": url, "meta": META})
    refusal = _refusal_of(queue_call(server.url, server.ids["explain"], data, timeout_s=ATTACK_TIMEOUT_S))
    assert f"{MAX_FILE_BYTES / MB:g} MB limit" in refusal, refusal
    return refusal


def attack_bomb_png_named_webp(server: Server) -> str:
    refusal = _refusal_of(_explain(server, _upload(server, "small.webp", _bomb_png())))
    assert "megapixels" in refusal, refusal
    return refusal


def attack_bomb_png_as_data_url(server: Server) -> str:
    url = "data:image/webp;base64," + base64.b64encode(_bomb_png()).decode()
    refusal = _refusal_of(_explain(server, {"path": None, "url": url, "meta": META}))
    assert "megapixels" in refusal, refusal
    return refusal


def attack_ten_files_of_19_9_mb_in_one_upload(server: Server) -> str:
    return _one_line_http_refusal(_raw_upload(server, [(f"{i}.png", int(19.9 * MB)) for i in range(10)]), "")


def attack_two_small_files_in_one_upload(server: Server) -> str:
    return _one_line_http_refusal(_raw_upload(server, [("a.png", 100), ("b.png", 100)]), "Too many files")


def attack_one_file_over_20_mb(server: Server) -> str:
    response = _raw_upload(server, [("big.png", MAX_FILE_BYTES + MB)])
    return _one_line_http_refusal(response, "")


# ---- item 7: notes -------------------------------------------------------------------------------------
def attack_eps_upload(server: Server) -> str:
    eps = _encoded(Image.new("RGB", (8, 8)), "EPS")
    refusal = _refusal_of(_explain(server, _upload(server, "photo.jpg", eps)))
    assert "PostScript" in refusal, refusal
    return refusal


def _private(server: Server, api_name: str, data: list, event_data: dict | None = None) -> str:
    from app_server import queue_call

    return _refusal_of(queue_call(server.url, server.ids[api_name], data, event_data, timeout_s=ATTACK_TIMEOUT_S))


def attack_private_gallery_select(server: Server) -> str:
    if "pick" not in server.ids:
        pytest.skip("no preset gallery: XAI_LENS_EXAMPLES_DIR is not set")
    refusals = {_private(server, "pick", [], {"index": index, "value": None}) for index in (10**9, "0", None, [1])}
    assert refusals == {"Click one of the preset images."}, refusals
    return refusals.pop()


def _expect(refusal: str, pattern: str) -> str:
    assert pattern in refusal, refusal  # a bare "Error" here would be an unhandled exception
    return refusal


def attack_private_model_change(server: Server) -> str:
    return _expect(_private(server, "_switch_model", ["not-a-model"]), "not in the list of choices")


def attack_private_fill_form(server: Server) -> str:
    return _expect(_private(server, "fill_form", ["goldfish", "{not json"]), "not valid JSON")


def attack_private_apply_entry(server: Server) -> str:
    values = ["goldfish", "{}", 10**12, -1, 0, "red", 0, "nope", "[", "x", "y", -5]
    return _expect(_private(server, "apply_entry", values), "greater than maximum")


def attack_private_neuron_row(server: Server) -> str:
    refusal = _private(server, "pick_row", ["resnet18", {"headers": [], "data": []}], {"index": [99, 0], "value": ""})
    return _expect(refusal, "Click a row of the neuron table.")


def attack_private_neuron_filter(server: Server) -> str:
    return _expect(_private(server, "filter_view", ["no-such-table", "all layers", "x" * 10_000]), "list of choices")


ATTACKS: list[Callable[[Server], str]] = [
    attack_server_path_without_meta,
    attack_server_path_with_meta,
    attack_svg_name_reveals_nothing,
    attack_traversal_out_of_the_upload_folder,
    attack_link_planted_in_the_upload_folder,
    attack_web_address,
    attack_data_url_of_80_mb,
    attack_data_url_of_80_mb_with_its_length_declared,
    attack_data_url_just_over_20_mb,
    attack_bomb_png_named_webp,
    attack_bomb_png_as_data_url,
    attack_ten_files_of_19_9_mb_in_one_upload,
    attack_two_small_files_in_one_upload,
    attack_one_file_over_20_mb,
    attack_eps_upload,
    attack_private_gallery_select,
    attack_private_model_change,
    attack_private_fill_form,
    attack_private_apply_entry,
    attack_private_neuron_row,
    attack_private_neuron_filter,
]


def _normal_explain_works(server: Server) -> None:
    answer = _explain(server, _upload(server, "photo.jpg", _encoded(_photo(), "JPEG")))
    assert answer.get("success"), str(answer)[:500]
    assert "Done" in answer["output"]["data"][0]


GRADIO_PATH_REFUSAL = "it was not uploaded by a user"  # Gradio's own InvalidPathError, as logged


def test_a_normal_upload_is_explained_first(server):
    from app_server import restart_peak_memory

    _normal_explain_works(server)
    server.baseline_rss = restart_peak_memory(server.pid)


def test_a_small_data_url_is_explained_like_an_upload(server):
    url = "data:image/png;base64," + base64.b64encode(_encoded(_photo(), "PNG")).decode()
    answer = _explain(server, {"path": None, "url": url, "meta": META})
    assert answer.get("success"), str(answer)[:500]


@pytest.mark.parametrize("attack", ATTACKS, ids=[attack.__name__.removeprefix("attack_") for attack in ATTACKS])
def test_attack_ends_in_a_one_line_refusal(server, attack):
    from app_server import one_line_refusal

    refusal = one_line_refusal(lambda: attack(server), ATTACK_TIMEOUT_S, max_chars=300)
    assert str(server.canary.parent) not in refusal, refusal


def test_the_upload_only_refusal_names_no_path(server):
    refusal = attack_server_path_without_meta(server)
    assert refusal == UPLOAD_ONLY


def test_afterwards_the_server_serves_read_nothing_else_and_stayed_small(server):
    from app_server import CANARY_MARK, peak_rss_bytes, traceback_endings

    _normal_explain_works(server)
    log = server.log.read_text(errors="replace")
    assert CANARY_MARK not in log, [line for line in log.splitlines() if CANARY_MARK in line][:5]
    # No traceback at all: the app's own refusals print none, and Gradio's own input checks (a model not in
    # the list, a slider value past its maximum, a path not uploaded) are logged as one line each too.
    assert traceback_endings(log) == [], traceback_endings(log)
    assert any(GRADIO_PATH_REFUSAL in line and "xai_lens.app: refused: " in line for line in log.splitlines())
    # The app's own refusals reach the log as one "refused: ..." line each (issue 12), never inside a traceback.
    for own in (UPLOAD_ONLY, REMOTE_REFUSED, "PostScript", "megapixels"):
        lines = [line for line in log.splitlines() if own in line]
        assert all("xai_lens.app: refused: " in line for line in lines), (own, lines[:3])
    grown = peak_rss_bytes(server.pid) - server.baseline_rss
    assert grown < RSS_BOUND, f"peak RSS grew {grown / MB:.0f} MB past the first explanation"
