"""Download a large file once: per-request timeout, progress bar, atomic rename into place."""

from __future__ import annotations

import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

DOWNLOAD_TIMEOUT_S = 30
CHUNK_BYTES = 1 << 20


def download_file(url: str, target: Path, *, timeout: float = DOWNLOAD_TIMEOUT_S, progress: bool = True) -> Path:
    """Stream `url` to `target`; a half-finished download never appears under the final name.

    The timeout applies to this request alone (connect and each read), so a silent network fails
    instead of hanging, without touching the process-wide socket default other threads rely on.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "xai-lens"})
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, os.fdopen(handle, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target
