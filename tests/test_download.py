"""The weights downloader against a real HTTP server on 127.0.0.1: intact bytes, or a timeout and no debris."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from explainers.download import download_file

PAYLOAD = bytes(range(256)) * 9000  # ~2.3 MB: several chunks


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/stall":
            time.sleep(3)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_arrives_intact(server, tmp_path):
    target = tmp_path / "weights" / "model.pth"
    download_file(f"{server}/model.pth", target, progress=False)
    assert target.read_bytes() == PAYLOAD
    assert [p.name for p in target.parent.iterdir()] == ["model.pth"]


def test_a_silent_server_times_out_and_leaves_nothing(server, tmp_path):
    target = tmp_path / "model.pth"
    started = time.monotonic()
    with pytest.raises(OSError):
        download_file(f"{server}/stall", target, timeout=0.5, progress=False)
    assert time.monotonic() - started < 2.5
    assert list(tmp_path.iterdir()) == []
