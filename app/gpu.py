"""ZeroGPU hook: `spaces.GPU` where the package is present (a no-op off Spaces), nothing otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:  # imported before torch touches CUDA, as ZeroGPU requires (app/__main__ imports this first)
    import spaces
except ImportError:  # a laptop without the spaces package: run on whatever device there is
    spaces = None


def gpu(duration: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate heavy work so a ZeroGPU Space lends it a GPU for up to `duration` seconds."""
    if spaces is None:
        return lambda function: function
    return spaces.GPU(duration=duration)
