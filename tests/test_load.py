"""The app under a little load (4 sessions), and what it refuses to serve.

Launches the app in-process on 127.0.0.1 with random weights.
The full run (8 sessions, figures for HARDENING.md) is tools/load_test.py.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest

import app.layout  # noqa: F401 (a broken app import must fail here, not skip)
from tools import load_test

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from app_server import running_app, write_small_tables

    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    no_presets = tmp_path_factory.mktemp("no_presets")
    with running_app(no_presets, tables, tmp_path_factory.mktemp("work")) as url:
        yield url


def test_concurrent_sessions_all_served_and_equal_to_alone(app_url, tmp_path):
    from gradio_client import Client

    image = load_test.test_image(tmp_path)
    client = Client(app_url, verbose=False)
    endpoint = load_test.explain_endpoint(client)
    alone = {kind: load_test.one_request(client, endpoint, image, kind, 120).answer for kind in load_test.KINDS}
    assert all(alone.values())
    outcomes = load_test.run_sessions(app_url, image, sessions=4, requests_each=1, timeout_s=120, deadline_s=150)
    figures = load_test.report(outcomes, alone, None, 0.0)
    assert figures["requests"] == 4 and figures["failed"] == 0, figures
    assert figures["served"] + figures["queue_full"] == 4
    assert figures["differed_from_alone"] == 0, figures


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize(
    "path",
    [
        "gradio_api/file=/etc/passwd",
        "gradio_api/file=../../../../etc/passwd",
        "gradio_api/file=%2Fetc%2Fpasswd",
        "gradio_api/file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "file=/etc/passwd",
        "gradio_api/file=" + str(Path(__file__).resolve()),  # the app's own source is not served either
    ],
)
def test_files_outside_the_apps_folders_are_not_served(app_url, path):
    assert _status(app_url + path) in (403, 404, 400)


def test_the_only_served_file_roots_are_temporary_and_cache_folders(app_url):
    import json

    config = json.loads(urllib.request.urlopen(app_url + "config", timeout=30).read())
    assert not config.get("allowed_paths"), config.get("allowed_paths")  # nothing added beyond gradio's cache
