"""XAI Lens, the library: where an image classifier looks, by several saliency methods side by side.

The public API, in the order of the data flow (each name is loaded on first use, so `import explainers`
stays cheap and `explainers.errors` or `explainers.limits` never pull in torch):

    model = explainers.load_model("resnet18", weights="published")   # or "random", or a checkpoint path
    explanation = explainers.explain_image("photo.jpg", model, ["gradcam", "lime"])
    explanation.iou, explanation.save("out/")

`iter_explain` yields the growing Explanation after each method (for streaming UIs), `METHODS` lists every
registered method, and `load_lime_params` / `save_lime_params` read and write the ten-key parameter file.
docs/architecture.md maps the packages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_PUBLIC = {
    "explain_image": "explainers.pipeline",
    "iter_explain": "explainers.pipeline",
    "Explanation": "explainers.pipeline",
    "load_model": "explainers.engine.models",
    "LoadedModel": "explainers.engine.models",
    "METHODS": "explainers.methods",
    "CORE_METHODS": "explainers.methods",
    "load_lime_params": "explainers.inputs.param_file",
    "save_lime_params": "explainers.inputs.param_file",
    "default_lime_params": "explainers.inputs.param_file",
    "PRESETS": "explainers.inputs.presets",
    "CancelToken": "explainers.engine.cancel",
    "XaiLensError": "explainers.errors",
}
__all__ = [
    "CORE_METHODS",
    "METHODS",
    "PRESETS",
    "CancelToken",
    "Explanation",
    "LoadedModel",
    "XaiLensError",
    "default_lime_params",
    "explain_image",
    "iter_explain",
    "load_lime_params",
    "load_model",
    "save_lime_params",
]

if TYPE_CHECKING:
    from explainers.engine.cancel import CancelToken
    from explainers.engine.models import LoadedModel, load_model
    from explainers.errors import XaiLensError
    from explainers.inputs.param_file import default_lime_params, load_lime_params, save_lime_params
    from explainers.inputs.presets import PRESETS
    from explainers.methods import CORE_METHODS, METHODS
    from explainers.pipeline import Explanation, explain_image, iter_explain


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'explainers' has no attribute {name!r}")
