"""Issue 11, item 4 (files): every named endpoint that takes a file refuses over-cap files, in one line.

The endpoints are listed through gradio_client, so an endpoint added later is covered without editing
this test. Each file parameter is sent: a file over the size limit (through gradio_client and raw),
two files in one upload, a data: URL over the limit, a server path, and a web address. Each must be
refused in one line, no file but the uploads is opened (an audit hook watches a canary folder), and
afterwards the server still serves.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
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
META = {"_type": "gradio.FileData"}
TIMEOUT_S = 60
CANARY_OPENED: list[str] = []
_WATCHED: list[str] = []


def _watch_opens(event: str, args: tuple) -> None:
    """Audit hook (lives as long as the process; inert unless a folder is being watched)."""
    if event == "open" and _WATCHED and isinstance(args[0], (str, os.PathLike)):
        path = os.path.realpath(os.fspath(args[0]))
        if any(path.startswith(folder + os.sep) for folder in _WATCHED):
            CANARY_OPENED.append(path)


sys.addaudithook(_watch_opens)


@dataclass(frozen=True)
class FileParameter:
    endpoint: str  # "/explain"
    fn_index: int
    position: int
    defaults: list  # every parameter's default, None where there is none
    component: str


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    from app_server import running_app, write_small_tables

    canary_dir = tmp_path_factory.mktemp("canary")
    Image.new("RGB", (32, 32)).save(canary_dir / "canary.jpg")
    _WATCHED.append(os.path.realpath(canary_dir))
    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    try:
        with running_app(None, tables, tmp_path_factory.mktemp("work")) as url:
            yield url, canary_dir / "canary.jpg"
    finally:
        _WATCHED.clear()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app[0], verbose=False)


@pytest.fixture(scope="module")
def file_parameters(app, client) -> list[FileParameter]:
    from app_server import component_ids

    ids = component_ids(app[0])
    found = []
    for endpoint, info in client.view_api(return_format="dict", print_info=False)["named_endpoints"].items():
        parameters = info["parameters"]
        defaults = [p["parameter_default"] if p.get("parameter_has_default") else None for p in parameters]
        for position, parameter in enumerate(parameters):
            if parameter["python_type"]["type"] == "filepath":
                found.append(
                    FileParameter(endpoint, ids[endpoint.strip("/")], position, defaults, parameter["component"])
                )
    assert {p.endpoint for p in found} >= {"/explain", "/run_presets", "/inspect_params"}, found
    return found


def _call(url: str, parameter: FileParameter, value: dict) -> str:
    """Send `value` as the file parameter (defaults elsewhere); the one-line refusal it must get."""
    from app_server import error_of, queue_call

    data = list(parameter.defaults)
    data[parameter.position] = value
    message = queue_call(url, parameter.fn_index, data, timeout_s=TIMEOUT_S)
    refusal = error_of(message)
    assert refusal is not None, (parameter.endpoint, str(message)[:300])
    assert "\n" not in refusal.strip() and len(refusal) < 300, refusal
    return refusal


def _raw_upload(url: str, files: list[tuple[str, bytes]]) -> httpx.Response:
    return httpx.post(url + "gradio_api/upload", files=[("files", file) for file in files], timeout=TIMEOUT_S)


def _assert_413_in_one_line(response: httpx.Response) -> None:
    assert response.status_code == 413, (response.status_code, response.text[:200])
    text = response.text.strip()
    assert "\n" not in text and any(word in text for word in ("limit", "maximum", "Too many")), text


def test_a_file_over_the_size_limit_is_refused_through_the_client(app, client, file_parameters, tmp_path):
    from gradio_client import handle_file

    big = tmp_path / "big.png"
    with open(big, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing on disk
    for parameter in file_parameters:
        arguments = list(parameter.defaults)
        arguments[parameter.position] = handle_file(str(big))
        with pytest.raises(Exception) as caught:  # gradio_client raises its transport's error
            client.predict(*arguments, api_name=parameter.endpoint)
        # gradio_client checks the endpoint's max_file_size before it uploads; the server would answer 413
        assert any(word in str(caught.value) for word in ("413", "limit", "maximum file size")), caught.value


def test_a_file_over_the_size_limit_is_refused_at_the_upload_in_one_line(app, file_parameters):
    for _parameter in file_parameters:  # one upload route serves them all; each parameter's upload is tried
        _assert_413_in_one_line(_raw_upload(app[0], [("big.png", b"\0" * (MAX_FILE_BYTES + 1))]))


def test_two_files_in_one_upload_are_refused_in_one_line(app, file_parameters):
    for _parameter in file_parameters:
        response = _raw_upload(app[0], [("a.png", b"a" * 100), ("b.png", b"b" * 100)])
        _assert_413_in_one_line(response)
        assert "Too many files" in response.text


def test_a_data_url_over_the_limit_is_refused(app, file_parameters):
    url = "data:image/png;base64," + "A" * (MAX_DATA_URL_CHARS + 4)
    for parameter in file_parameters:
        refusal = _call(app[0], parameter, {"path": None, "url": url, "meta": META})
        if parameter.component == "Image":
            assert f"{MAX_FILE_BYTES / 2**20:g} MB limit" in refusal, refusal


def test_a_server_path_is_refused_and_never_opened(app, file_parameters):
    url, canary = app
    for parameter in file_parameters:
        for value in ({"path": str(canary)}, {"path": str(canary), "meta": META}):
            refusal = _call(url, parameter, value)
            assert str(canary.parent) not in refusal, refusal
            if parameter.component == "Image" and "meta" not in value:
                assert refusal == UPLOAD_ONLY, refusal
    assert CANARY_OPENED == [], CANARY_OPENED


def test_a_web_address_is_not_fetched(app, file_parameters):
    for parameter in file_parameters:
        address = f"https://example.com/{secrets.token_hex(4)}.png"
        assert _call(app[0], parameter, {"path": address, "meta": META}) == REMOTE_REFUSED, parameter.endpoint


def test_afterwards_the_server_still_serves(app, client, tmp_path):
    from app_server import fast_lime_values
    from gradio_client import handle_file

    from app.tab_explain import TOP1

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(photo)
    status, *_ = client.predict(
        handle_file(str(photo)), "resnet18", TOP1, ["gradcam"], [], "top:0.10", *fast_lime_values(), api_name="/explain"
    )
    assert "Done" in status
    assert CANARY_OPENED == [], CANARY_OPENED


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, 10_000])
def test_the_part_counter_sees_delimiters_split_across_chunks(chunk_size):
    """The middleware counts files as the body streams in; a delimiter cut in two still counts once."""
    from app.request_caps import _PartCounter

    boundary = b"xyz123"
    body = b"".join(b"--xyz123\r\nheaders\r\n\r\n" + b"-" * 50 + b"\r\n" for _ in range(3)) + b"--xyz123--\r\n"
    counter = _PartCounter(boundary)
    parts = 0
    for start in range(0, len(body), chunk_size):
        parts = counter.feed(body[start : start + chunk_size])
    assert parts == 3
