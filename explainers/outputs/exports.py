"""Bundling outputs for download: one zip of a whole run folder."""

from __future__ import annotations

import zipfile
from pathlib import Path


def zip_folder(folder: Path, zip_path: Path) -> Path:
    """Zip every file under `folder` (paths relative to it) into `zip_path`, skipping the zip itself."""
    folder, zip_path = Path(folder), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.resolve() != zip_path.resolve():
                archive.write(path, path.relative_to(folder).as_posix())
    return zip_path
