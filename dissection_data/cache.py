"""A small keyed tensor cache, so a rebuild reuses activations and CLIP features.

Each entry is `<root>/<kind>/<digest>.pt` with a readable `<digest>.json` beside it holding the key,
so a person can see what an entry was computed from. The digest is a hash of the whole key:
change any input (model, weights file, probe images, concept list, pooling...) and it misses.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def digest(value: Any) -> str:
    """A stable hex digest of a JSON-able value (dict keys sorted)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:20]


class FeatureCache:
    """get_or_compute(kind, key, compute) -> tensor or dict of tensors; `root=None` disables caching."""

    def __init__(self, root: Path | None):
        self.root = Path(root) if root is not None else None
        self.hits: list[str] = []

    def _path(self, kind: str, key: dict[str, Any]) -> Path:
        assert self.root is not None
        return self.root / kind / f"{digest(key)}.pt"

    def get_or_compute(self, kind: str, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
        if self.root is None:
            return compute()
        path = self._path(kind, key)
        if path.is_file():
            try:
                value = torch.load(path, map_location="cpu", weights_only=True)
                self.hits.append(kind)
                return value
            except Exception:  # a torn or foreign file: recompute and overwrite
                path.unlink(missing_ok=True)
        value = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(value, partial)
        partial.replace(path)  # atomic: an interrupted build never leaves a half-written entry
        path.with_suffix(".json").write_text(json.dumps(key, indent=1, sort_keys=True, default=str))
        return value
