"""Where built tables and caches live by default (overridable per call and on the command line)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).parent
TABLES_DIR = PACKAGE_DIR / "tables"


def cache_dir() -> Path:
    """dissection_data/cache (git-ignored), or $XAI_LENS_DISSECTION_CACHE."""
    return Path(os.environ.get("XAI_LENS_DISSECTION_CACHE", PACKAGE_DIR / "cache"))
