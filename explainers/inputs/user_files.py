"""Read a file a person handed us (a path or uploaded bytes), refusing oversized ones before reading."""

from __future__ import annotations

from pathlib import Path

from explainers.errors import XaiLensError


def read_limited(source: str | Path | bytes, *, limit_bytes: int, kind: str, advice: str) -> tuple[bytes, str]:
    """(data, display name); `kind` names the file in messages ("Image file"), `advice` says what to do."""
    limit = f"the limit is {limit_bytes / 2**20:g} MB"
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), f"the uploaded {kind.lower()}"
    else:
        path = Path(source)
        if not path.is_file():
            raise XaiLensError(f"{kind} '{path}' does not exist; check the path.")
        size = path.stat().st_size
        if size > limit_bytes:
            raise XaiLensError(f"'{path.name}' is {size / 2**20:.1f} MB; {limit}. {advice}")
        data, name = path.read_bytes(), f"'{path.name}'"
    if len(data) > limit_bytes:
        raise XaiLensError(f"{name} is {len(data) / 2**20:.1f} MB; {limit}. {advice}")
    return data, name
