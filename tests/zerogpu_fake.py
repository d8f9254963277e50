"""A fake of ZeroGPU's device API on 127.0.0.1, recording every call, for the emulation test.

The routes, query parameters and answers follow the `spaces` package's client (spaces/zero/api.py
and spaces/zero/client.py, version 0.51.3): POST /startup-report, /schedule, /allow, /release and
GET /queue-size. /schedule answers at once with a GPU (no queue, no quota); /allow also records the
calling process's parent, read from /proc while the forked worker waits for the answer.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

FAKE_UUID = "GPU-00000000-0000-0000-0000-000000000000"


@dataclass
class Call:
    """One request the fake answered: route, query parameters, and for /allow the worker's parent pid."""

    route: str
    params: dict[str, str]
    parent_pid: int | None = None
    allow_token: str | None = None  # what /schedule answered


@dataclass
class FakeDeviceApi:
    """Serves the device API in a thread; `calls` lists what it saw, in order."""

    nvidia_uuid: str = FAKE_UUID
    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tokens: int = 0

    def start(self) -> str:
        """Start serving on a free port; returns the base URL for SPACES_ZERO_DEVICE_API_URL."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def routes(self) -> list[str]:
        with self._lock:
            return [call.route for call in self.calls]

    def of(self, route: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.route == route]

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _new_token(self) -> str:
        with self._lock:
            self._tokens += 1
            return f"allow-{self._tokens}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the test reads `calls`, not a log
                pass

            def _answer(self, status: int, body: object | None = None) -> None:
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/queue-size":
                    api._record(Call("/queue-size", {}))
                    return self._answer(200, 0.0)
                self._answer(404, {"detail": "not found"})

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                params = dict(parse_qsl(url.query))
                if url.path == "/startup-report":
                    api._record(Call(url.path, params))
                    return self._answer(200, {})
                if url.path == "/schedule":
                    token = api._new_token()
                    api._record(Call(url.path, params, allow_token=token))
                    # idle: a worker kept from an earlier call on this GPU may be reused, as on a real node
                    answer = {"idle": True, "nvidiaIndex": 0, "nvidiaUUID": api.nvidia_uuid, "allowToken": token}
                    return self._answer(200, answer)
                if url.path == "/allow":
                    api._record(Call(url.path, params, parent_pid=parent_pid(int(params.get("pid", "0")))))
                    return self._answer(200, {})
                if url.path == "/release":
                    api._record(Call(url.path, params))
                    return self._answer(200, {})
                self._answer(404, {"detail": "not found"})

        return Handler


def parent_pid(pid: int) -> int | None:
    """The parent of a live process, from /proc/PID/stat (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # fields after the command name: state, ppid, ...
