"""The one downloader: everything XAI Lens fetches (weights, preset images, probe images and their listing,
published neuron tables) comes through here.

Each download has a per-request timeout (a silent network fails instead of hanging, without touching the
process-wide socket default other threads rely on), an optional size cap (a server cannot fill the disk or
memory), an optional pinned sha256 (a damaged or substituted file is refused), a progress bar, and lands
under a temporary name that is renamed into place only when complete and verified: a half-written or
wrong file never sits where the next run would trust it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from explainers.errors import XaiLensError, first_line
from explainers.limits import DOWNLOAD_TIMEOUT_S

CHUNK_BYTES = 1 << 20
USER_AGENT = "xai-lens"


class DownloadError(OSError):
    """A download that did not arrive whole: over its size cap, or not matching its pinned sha256."""


class ChecksumMismatchError(DownloadError):
    """The bytes arrived but are not the pinned file (damaged or substituted): they were discarded."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in blocks (weights files are hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(
    url: str,
    target: Path,
    *,
    sha256: str | None = None,
    max_bytes: int | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
    progress: bool = True,
) -> Path:
    """Stream `url` to `target`, checking size and checksum on the way; atomic rename at the end.

    Network failures raise OSError (urllib's URLError, timeouts); a size or checksum failure raises
    DownloadError. Either way nothing is left at `target` or beside it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, os.fdopen(handle, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            if max_bytes is not None and total is not None and total > max_bytes:
                raise DownloadError(f"{url} is {total} bytes, over the {max_bytes}-byte cap")
            received = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    received += len(chunk)
                    if max_bytes is not None and received > max_bytes:
                        raise DownloadError(f"the server sent more than {max_bytes} bytes for {url}")
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise ChecksumMismatchError(f"{target.name} from {url} does not match its pinned sha256")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return target


def fetch_bytes(url: str, *, max_bytes: int, timeout: float = DOWNLOAD_TIMEOUT_S) -> bytes:
    """A small document (a file listing) into memory, with the same timeout and size cap as download_file."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data = response.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DownloadError(f"the server sent more than {max_bytes} bytes for {url}")
    return data


class Pinned(Protocol):
    """A file at a fixed address, trusted only when its bytes match a pinned sha256 (a preset, a published table)."""

    @property
    def url(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def max_bytes(self) -> int: ...  # its download's size cap

    @property
    def description(self) -> str: ...  # how a refusal names it: "Preset 'kite' (kite.JPEG)"


def download_or_refuse(pinned: Pinned, target: Path, *, advice: str) -> Path:
    """download_file for a pinned file a person is waiting for: any failure becomes one line ending in `advice`."""
    try:
        return download_file(pinned.url, target, sha256=pinned.sha256, max_bytes=pinned.max_bytes, progress=False)
    except ChecksumMismatchError:
        raise XaiLensError(
            f"The download of {pinned.description} does not match its pinned sha256 and was discarded; {advice}"
        ) from None
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused connections, over the size cap
        raise XaiLensError(
            f"{pinned.description} could not be downloaded ({first_line(exc, limit=100)}); {advice}"
        ) from None
