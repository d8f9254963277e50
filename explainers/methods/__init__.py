"""Every saliency method by name, and how to build one from user-facing options.

Nothing here names a method: each module of this package is imported once, and each method class
registers itself where it is defined (see base.SaliencyMethod). The lists below are read from
that registry, so adding a method is one new file in this folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from explainers.errors import XaiLensError
from explainers.methods.base import REGISTRY, MethodOptions, Saliency, SaliencyMethod, Subject

__all__ = [
    "CORE_METHODS",
    "EXTRA_METHODS",
    "METHODS",
    "MethodOptions",
    "Saliency",
    "SaliencyMethod",
    "Subject",
    "by_cost",
    "create_method",
    "parse_methods",
]

_HELPERS = {"base", "cam_common", "fx_tail"}  # modules that define no method
for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _HELPERS:
        importlib.import_module(f"{__name__}.{_module.name}")

# name -> method class, core methods first, each group in menu order. The registry itself, so a
# method defined later (a plug-in, a test's toy method) appears here too.
METHODS: dict[str, type[SaliencyMethod]] = REGISTRY


def __getattr__(attribute: str) -> tuple[str, ...]:
    """CORE_METHODS / EXTRA_METHODS: the names offered by default, and the ones a user opts into."""
    if attribute == "CORE_METHODS":
        return tuple(name for name, cls in METHODS.items() if cls.core)
    if attribute == "EXTRA_METHODS":
        return tuple(name for name, cls in METHODS.items() if not cls.core)
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")


def parse_methods(methods: str | Sequence[str]) -> list[str]:
    """'gradcam,lime' or a list -> validated, de-duplicated names in the given order."""
    names = [m.strip().lower() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise XaiLensError(f"Unknown method '{unknown[0]}'; choose from: {', '.join(METHODS)}.")
    if not names:
        raise XaiLensError(f"No method chosen; choose from: {', '.join(METHODS)}.")
    return list(dict.fromkeys(names))


def by_cost(names: Sequence[str], device: torch.device | str | None = None) -> list[str]:
    """The names reordered cheapest first on `device` (the CPU when not given), so users see maps early."""
    device_type = "cpu" if device is None else torch.device(device).type
    return sorted(names, key=lambda name: METHODS[name].rank_on(device_type))


def create_method(
    name: str,
    *,
    target_layer: str | None = None,
    lime_params: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    reference: bool = False,
) -> SaliencyMethod:
    """Build a method by name; each takes the options it understands (CAMs the layer, LIME its kwargs)."""
    cls = METHODS[parse_methods([name])[0]]
    options = MethodOptions(target_layer=target_layer, lime_params=lime_params, progress=progress, reference=reference)
    return cls.from_options(options)
