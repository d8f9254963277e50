"""A real HTTP server on 127.0.0.1 for download tests: the downloader runs for real, nothing leaves the machine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def http_server(respond: Callable[[str], bytes], unsized: tuple[str, ...] = ()) -> Iterator[str]:
    """Serve `respond(path)` for every GET (it may sleep to play a silent server); yields the base URL.

    Paths in `unsized` are sent without Content-Length, so a client must enforce its caps while streaming.
    """

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = respond(self.path)
            self.send_response(200)
            if self.path not in unsized:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
