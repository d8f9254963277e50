"""The LIME settings form (every explain_instance argument), shared by the Explain and Parameters tabs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app import settings
from explainers.errors import XaiLensError
from explainers.inputs.lime_kwargs import validate_explain_kwargs
from explainers.inputs.safe_pickle import REGRESSOR_CLASSES, SEGMENTATION_FUNCTIONS

DEFAULT_REGRESSOR = "lime default (Ridge, alpha=1)"
DISTANCE_METRICS = ["cosine", "euclidean", "manhattan", "hamming", "jaccard", "chebyshev"]


@dataclass
class LimeForm:
    """The form's components, in the order `to_kwargs` and `from_kwargs` use."""

    components: list[gr.components.Component]

    @staticmethod
    def to_kwargs(*values: Any, where: str = "LIME settings") -> dict[str, Any]:
        """Form values -> validated explain_instance kwargs (XaiLensError with a one-line reason)."""
        if len(values) != 10:
            raise XaiLensError(f"{where}: expected the 10 LIME form values, got {len(values)}")
        samples, features, top_labels, hide, batch, seg_name, seg_json, metric, regressor, seed = values
        seg_text = str(seg_json or "{}")
        if len(seg_text) > 2000:
            raise XaiLensError(
                f"{where}: segmentation settings are {len(seg_text)} characters; a few settings fit in 2000"
            )
        try:
            seg_settings = json.loads(seg_text)
        except (ValueError, RecursionError):
            raise XaiLensError(f'{where}: segmentation settings must be JSON, e.g. {{"n_segments": 100}}') from None
        if not isinstance(seg_settings, dict):
            raise XaiLensError(f'{where}: segmentation settings must be a JSON object such as {{"n_segments": 100}}')
        kwargs = {
            "num_samples": _whole(samples, f"{where}: num_samples"),
            "num_features": _whole(features, f"{where}: num_features"),
            "top_labels": None if not top_labels else _whole(top_labels, f"{where}: top_labels"),
            "hide_color": _colour(hide, where),
            "batch_size": _whole(batch, f"{where}: batch_size"),
            "segmentation_fn": {"name": seg_name, **seg_settings},
            "distance_metric": metric,
            "model_regressor": None if regressor == DEFAULT_REGRESSOR else {"name": regressor},
            "random_seed": None if seed is None else _whole(seed, f"{where}: random_seed"),
        }
        return validate_explain_kwargs(kwargs, where=where)

    @staticmethod
    def from_kwargs(entry: dict[str, Any]) -> list[Any]:
        """A validated entry -> values for the form's components."""
        segmentation = dict(entry.get("segmentation_fn") or {"name": "quickshift"})
        seg_name = segmentation.pop("name")
        regressor = entry.get("model_regressor")
        hide = entry.get("hide_color", 0)
        return [
            entry.get("num_samples", settings.LIME_DEFAULT_SAMPLES),
            entry.get("num_features", 100_000),
            entry.get("top_labels") or 0,
            "none" if hide is None else ",".join(map(str, hide)) if isinstance(hide, (list, tuple)) else str(hide),
            entry.get("batch_size", 50),
            seg_name,
            json.dumps(segmentation),
            entry.get("distance_metric", "cosine"),
            DEFAULT_REGRESSOR if not regressor else regressor["name"],
            entry.get("random_seed", 0),
        ]


def _whole(value: Any, name: str = "a LIME setting") -> int:
    """A form number as an int; API callers skip the form, so anything not a finite number is one line."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise XaiLensError(f"{name} must be a number, got {str(value)[:30]!r}") from None
    if not math.isfinite(number):
        raise XaiLensError(f"{name} must be a finite number, got {value}")
    return round(number)


def _colour(text: Any, where: str) -> Any:
    raw = str(text).strip().lower()[:100]
    if raw in ("", "none"):
        return None
    try:
        parts = [float(part) for part in raw.split(",")]
    except ValueError:
        raise XaiLensError(f"{where}: hide_color must be none, one number 0-255 or r,g,b; got {text!r:.30}") from None
    parts = [int(p) if p.is_integer() else p for p in parts]
    return parts[0] if len(parts) == 1 else tuple(parts)


def lime_form(entry: dict[str, Any]) -> LimeForm:
    """Lay out the form inside the current block, filled from one validated entry."""
    values = LimeForm.from_kwargs(entry)
    with gr.Row():
        samples = gr.Slider(
            10,
            settings.lime_max_samples(),
            value=values[0],
            step=10,
            label="num_samples",
            info="perturbed images; each is one forward pass (the cost of LIME)",
        )
        batch = gr.Slider(1, settings.LIME_MAX_BATCH, value=values[4], step=1, label="batch_size")
    with gr.Row():
        features = gr.Number(
            values[1], label="num_features", precision=0, minimum=1, maximum=settings.LIME_MAX_FEATURES
        )
        top_labels = gr.Number(
            values[2],
            label="top_labels (0 = only the target)",
            precision=0,
            minimum=0,
            maximum=settings.LIME_MAX_LABELS,
        )
        hide = gr.Textbox(values[3], label="hide_color", info="0 = black, none = superpixel mean, or r,g,b")
        seed = gr.Number(values[9], label="random_seed", precision=0, minimum=0)
    with gr.Row():
        seg_name = gr.Dropdown(list(SEGMENTATION_FUNCTIONS), value=values[5], label="segmentation_fn")
        seg_json = gr.Textbox(values[6], label="segmentation settings (JSON)", scale=2)
    with gr.Row():
        metric = gr.Dropdown(DISTANCE_METRICS, value=values[7], label="distance_metric", allow_custom_value=True)
        regressor = gr.Dropdown([DEFAULT_REGRESSOR, *REGRESSOR_CLASSES], value=values[8], label="model_regressor")
    return LimeForm([samples, features, top_labels, hide, batch, seg_name, seg_json, metric, regressor, seed])
