"""Every saliency method by name, and how to build one from user-facing options."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from explainers.errors import XaiLensError
from explainers.methods.ablationcam import AblationCAMMethod
from explainers.methods.base import Saliency, SaliencyMethod, Subject
from explainers.methods.gradient_cams import (
    EigenCAMMethod,
    GradCAMMethod,
    GradCAMPlusPlusMethod,
    HiResCAMMethod,
    LayerCAMMethod,
    XGradCAMMethod,
)
from explainers.methods.lime import LimeMethod
from explainers.methods.scorecam import ScoreCAMMethod

__all__ = ["CORE_METHODS", "EXTRA_METHODS", "METHODS", "Saliency", "SaliencyMethod", "Subject", "create_method"]

METHODS: dict[str, type[SaliencyMethod]] = {
    cls.name: cls
    for cls in (
        GradCAMMethod,
        ScoreCAMMethod,
        AblationCAMMethod,
        LimeMethod,
        GradCAMPlusPlusMethod,
        XGradCAMMethod,
        EigenCAMMethod,
        LayerCAMMethod,
        HiResCAMMethod,
    )
}
CORE_METHODS = ("gradcam", "scorecam", "ablationcam", "lime")
EXTRA_METHODS = ("gradcampp", "xgradcam", "eigencam", "layercam", "hirescam")
# Cheapest first, so interactive users see the first maps while the heavy ones run.
_COST_ORDER = (
    "gradcam",
    "gradcampp",
    "xgradcam",
    "eigencam",
    "layercam",
    "hirescam",
    "ablationcam",
    "lime",
    "scorecam",
)
# On a GPU, Score-CAM's passes take less time than LIME's segmentation and regression on the CPU,
# and LIME's segmentation (started ahead by prefetch) overlaps them.
_GPU_COST_ORDER = (*_COST_ORDER[:-2], "scorecam", "lime")


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
    """The names reordered cheapest first on `device` (the CPU when not given)."""
    order = _GPU_COST_ORDER if device is not None and torch.device(device).type == "cuda" else _COST_ORDER
    return sorted(names, key=order.index)


def create_method(
    name: str,
    *,
    target_layer: str | None = None,
    lime_params: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    reference: bool = False,
) -> SaliencyMethod:
    """Build a method: CAMs take the target layer, LIME takes explain_instance keyword arguments."""
    cls = METHODS[parse_methods([name])[0]]
    if cls is LimeMethod:
        return LimeMethod(reference=reference, progress=progress, **dict(lime_params or {}))
    if cls in (ScoreCAMMethod, AblationCAMMethod):
        return cls(target_layer=target_layer, reference=reference)
    return cls(target_layer=target_layer)
