"""Caps on request bodies, enforced before Gradio reads a byte: size of any body, files per upload.

Gradio 6.31 limits each uploaded file (`max_file_size`) but not how many files one upload request
carries (its multipart parser allows 1000), and no limit at all applies to the JSON of an API call,
where an image can ride as a data: URL of any size. This ASGI middleware reads each POST body into a
spooled temporary file (memory up to SPOOL_IN_MEMORY, then disk), counting bytes and, for uploads,
multipart parts as they arrive. Only a body within the caps is replayed to Gradio. A body over a
cap gets a one-line 413 answer; what is left of it is read and dropped (up to DRAIN_LIMIT, so the
client can read the answer), never kept.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from python_multipart.multipart import parse_options_header

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SPOOL_IN_MEMORY = 1 * 2**20
DRAIN_LIMIT = 256 * 2**20  # past this, a refused body is not read on: the connection is closed
BODY_METHODS = {"POST", "PUT", "PATCH"}


class _OverCapError(Exception):
    def __init__(self, message: str, body_left: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.body_left = body_left  # whether the client is still sending


class _PartCounter:
    """Counts multipart delimiters ("--" + boundary) across chunk edges; parts = delimiters - 1."""

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"--" + boundary
        self.tail = b""
        self.delimiters = 0

    def feed(self, chunk: bytes) -> int:
        window = self.tail + chunk
        self.delimiters += window.count(self.delimiter)
        # keep fewer bytes than a delimiter, so no delimiter is ever counted twice
        self.tail = window[-(len(self.delimiter) - 1) :] if len(self.delimiter) > 1 else b""
        return max(self.delimiters - 1, 0)


class RequestCaps:
    """ASGI middleware: POST bodies over `body_bytes` (uploads: `upload_bytes`, `upload_files`) get a 413."""

    def __init__(self, app: ASGIApp, *, body_bytes: int, upload_bytes: int, upload_files: int) -> None:
        self.app = app
        self.body_bytes = body_bytes
        self.upload_bytes = upload_bytes
        self.upload_files = upload_files

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        is_upload = scope["path"].rstrip("/").endswith("/upload")
        limit = self.upload_bytes if is_upload else self.body_bytes
        headers = {key.decode("latin-1").lower(): value for key, value in scope.get("headers", [])}
        counter = _upload_counter(headers) if is_upload else None
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (closed below)
        try:
            try:
                declared = headers.get("content-length", b"").strip()
                if declared and (not declared.isdigit() or int(declared) > limit):
                    raise _OverCapError(self._size_message(is_upload, limit))
                complete = await self._read(receive, spool, limit, counter, is_upload)
            except _OverCapError as refusal:
                if refusal.body_left:
                    await _drain(receive)
                await _answer_413(send, refusal.message)
                return
            if not complete:  # the client went away
                return
            size = spool.tell()
            spool.seek(0)
            await self.app(scope, _replay(spool, size, receive), send)
        finally:
            spool.close()

    async def _read(self, receive: Receive, spool: Any, limit: int, counter: _PartCounter | None, upload: bool) -> bool:
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return False
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            total += len(chunk)
            if total > limit:
                raise _OverCapError(self._size_message(upload, limit), more)
            if counter is not None and counter.feed(chunk) > self.upload_files:
                raise _OverCapError(
                    f"Too many files in one upload: at most {self.upload_files} per request; send them one at a time.",
                    more,
                )
            spool.write(chunk)
            if not more:
                return True

    def _size_message(self, upload: bool, limit: int) -> str:
        what = "upload" if upload else "request"
        return f"The {what} is over its {limit / 2**20:.0f} MB limit; send a smaller file."


def _upload_counter(headers: dict[str, bytes]) -> _PartCounter | None:
    content_type, options = parse_options_header(headers.get("content-type", b""))
    boundary = options.get(b"boundary")
    return _PartCounter(boundary) if content_type == b"multipart/form-data" and boundary else None


async def _drain(receive: Receive) -> None:
    """Read what the client is still sending (dropping it) so it gets to read the refusal."""
    drained = 0
    while drained <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body", False):
            return
        drained += len(message.get("body", b""))


async def _answer_413(send: Send, message: str) -> None:
    body = (message + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _replay(spool: Any, size: int, receive: Receive) -> Receive:
    """A receive() that hands Gradio the checked body from the spool, then the real connection's events."""
    done = False

    async def replayed() -> Message:
        nonlocal done
        if done:
            return await receive()
        chunk = spool.read(SPOOL_IN_MEMORY)
        more = bool(chunk) and spool.tell() < size
        if not more:
            done = True
        return {"type": "http.request", "body": chunk, "more_body": more}

    return replayed
