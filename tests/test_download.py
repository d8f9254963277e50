"""The one downloader against a real HTTP server on 127.0.0.1: intact bytes, or a timeout, an over-cap body or a
wrong checksum refused with no debris left."""

from __future__ import annotations

import hashlib
import time

import pytest
from loopback import http_server

from explainers.download import ChecksumMismatchError, DownloadError, download_file, fetch_bytes

PAYLOAD = bytes(range(256)) * 9000  # ~2.3 MB: several chunks


def _respond(path: str) -> bytes:
    if path == "/stall":
        time.sleep(3)
        return b""
    return PAYLOAD


@pytest.fixture
def server():
    with http_server(_respond, unsized=("/unsized",)) as url:  # without Content-Length the cap must hold
        yield url


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


def test_a_pinned_checksum_is_checked_before_the_file_lands(server, tmp_path):
    target = tmp_path / "table.csv"
    download_file(f"{server}/table.csv", target, sha256=hashlib.sha256(PAYLOAD).hexdigest(), progress=False)
    assert target.read_bytes() == PAYLOAD
    target.unlink()
    with pytest.raises(ChecksumMismatchError):
        download_file(f"{server}/table.csv", target, sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["/sized", "/unsized"])
def test_a_body_over_the_cap_is_refused_and_leaves_nothing(server, tmp_path, path):
    with pytest.raises(DownloadError, match="byte"):
        download_file(f"{server}{path}", tmp_path / "big.bin", max_bytes=len(PAYLOAD) - 1, progress=False)
    assert list(tmp_path.iterdir()) == []
    download_file(f"{server}{path}", tmp_path / "big.bin", max_bytes=len(PAYLOAD), progress=False)  # at the cap
    assert (tmp_path / "big.bin").stat().st_size == len(PAYLOAD)


def test_fetch_bytes_holds_its_cap(server):
    assert fetch_bytes(f"{server}/listing.json", max_bytes=len(PAYLOAD)) == PAYLOAD
    with pytest.raises(DownloadError):
        fetch_bytes(f"{server}/listing.json", max_bytes=1000)
