"""ZeroGPU hook: `spaces.GPU` where the package is present, and how long each request asks the GPU for.

Off ZeroGPU (a laptop, a dedicated GPU Space) `spaces.GPU` returns the function unchanged. On
ZeroGPU (SPACES_ZERO_GPU=true) it runs the function in a worker forked per GPU lease: arguments and
results cross by pickle, and the lease lasts the seconds the request asks for. ZeroGPU serves
shorter requests first, so each request asks for what its own work needs (`explain_seconds`,
`presets_seconds`: the docs' dynamic-duration callable), never more than the caps in app.settings.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

try:  # imported before torch touches CUDA, as ZeroGPU requires (space_app and app/__main__ import this first)
    import spaces
    from spaces.config import Config as _SpacesConfig
except ImportError:  # a laptop without the spaces package: run on whatever device there is
    spaces = None
    _SpacesConfig = None

# Seconds per image on an H100 in float32 (tools/bench_results/h100_float32.json, worst image, rounded up).
_SCORECAM_S = {"resnet50": 0.7, "resnet18": 0.1}  # one pass per activation channel: 2048 vs 512 channels
_ONE_PASS_CAM_S = 0.05  # Grad-CAM and its kin, Ablation-CAM's closed form: a pass or two
_LIME_FIXED_S = 0.6  # segmentation and the regression, on the CPU beside the GPU
_LIME_PER_SAMPLE_S = {"resnet50": 0.0005, "resnet18": 0.0003}
_RENDER_PER_METHOD_S = 0.1  # overlay, mask and the view's pictures, on the CPU
_REPORT_S = 5.0  # the presets' figures, CSV, report and zip
# ZeroGPU lends a slice of an H200: spaces' default device is "NVIDIA H200 MIG 3g.71gb" with 60 SMs, against the
# benchmark H100's 132, so about 2.2x slower where the GPU bounds the work; 3 leaves margin (a lease that runs out
# may abort the request) without asking so much that visitors with little quota left are refused.
ZEROGPU_SLOWDOWN = 3.0
# Forking the worker, starting CUDA in it and copying the packed weights over (~390 MB measured with three models;
# resnet50-v1 adds ~100 MB).
WORKER_START_S = 10.0


def zero_gpu() -> bool:
    """True on ZeroGPU, where decorated functions run in a forked worker (so what crosses must pickle)."""
    return _SpacesConfig is not None and bool(_SpacesConfig.zero_gpu)


def gpu(duration: int | Callable[..., int]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate heavy work so a ZeroGPU Space lends it a GPU for `duration` seconds.

    `duration` is a number, or a function of the decorated function's arguments (by name, defaults
    filled in) that returns the seconds this call needs; spaces calls it before asking for the GPU.
    """
    if spaces is None:
        return lambda function: function

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(duration):
            return spaces.GPU(duration=duration)(function)
        signature = inspect.signature(function)

        def seconds(*args: Any, **kwargs: Any) -> int:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return duration(bound.arguments)

        return spaces.GPU(duration=seconds)(function)

    return decorate


def method_seconds(method: str, model_name: str, lime_samples: int) -> float:
    """One method on one image on an H100, from the benchmark (unknown names: the dearest figures)."""
    family = "resnet18" if model_name.startswith("resnet18") else "resnet50"
    if method == "scorecam":
        return _SCORECAM_S[family]
    if method == "lime":
        return _LIME_FIXED_S + max(0, lime_samples) * _LIME_PER_SAMPLE_S[family]
    return _ONE_PASS_CAM_S


def lease_seconds(work_s: float, cap: int) -> int:
    """H100 work seconds -> the seconds to ask ZeroGPU for: slowed down, plus the worker's start, within bounds."""
    return min(cap, math.ceil(WORKER_START_S + ZEROGPU_SLOWDOWN * work_s))


def image_work_s(methods: Sequence[str], model_name: str, lime_params: Mapping[str, Any]) -> float:
    samples = _samples(lime_params)
    return sum(method_seconds(m, model_name, samples) + _RENDER_PER_METHOD_S for m in _names(methods))


def explain_seconds(arguments: Mapping[str, Any]) -> int:
    """Lease for one explanation: its methods, model and LIME samples (bound arguments of explain)."""
    from app import settings

    work = image_work_s(arguments["methods"], str(arguments["model_name"]), arguments.get("lime_params") or {})
    return lease_seconds(work, settings.GPU_SECONDS_EXPLAIN)


def presets_seconds(arguments: Mapping[str, Any]) -> int:
    """Lease for the preset report: every image's methods with that image's LIME samples, then the report."""
    from app import settings
    from explainers.inputs.presets import PRESETS

    per_image = arguments.get("lime_params") or {}
    model_name = str(arguments["model_name"])
    work = sum(image_work_s(arguments["methods"], model_name, per_image.get(p.key) or {}) for p in PRESETS)
    return lease_seconds(work + _REPORT_S, settings.GPU_SECONDS_PRESETS)


def _names(methods: Any) -> list[str]:
    items = methods.split(",") if isinstance(methods, str) else list(methods or [])
    return list(dict.fromkeys(str(m).strip().lower() for m in items if str(m).strip()))


def _samples(lime_params: Mapping[str, Any]) -> int:
    try:
        return int(lime_params.get("num_samples", 1000))
    except (TypeError, ValueError):  # refused later, in the worker, with a one-line reason
        return 0
