"""Tab 2: all ten presets, IoU per image, and the simple-vs-complex answer from the numbers."""

from __future__ import annotations

import math

import gradio as gr

from app import settings
from app.compute import run_presets
from app.settings import AppConfig
from app.tab_explain import method_choices
from explainers import limits
from explainers.engine.models import DEFAULT_MODEL, MODEL_SPECS
from explainers.errors import XaiLensError
from explainers.inputs.param_file import PRESET_KEYS, default_lime_params, load_lime_params, validate_lime_params
from explainers.masks import DEFAULT_RULE
from explainers.methods import CORE_METHODS, EXTRA_METHODS


def samples_for_every_image(value: object) -> int | None:
    """The slider's num_samples override: None or 0 keeps the file's; anything else must be a whole number.

    API callers skip the slider, so its bounds are checked again (validation below applies the caps).
    """
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise XaiLensError(f"LIME num_samples for every image must be a number, got {str(value)[:30]!r}.")
    if value != int(value):
        raise XaiLensError(f"LIME num_samples for every image must be a whole number, got {value}.")
    return int(value)


def lime_params_for_run(param_file: str | None, samples_override: object) -> dict:
    """The uploaded file (restricted loader) or the defaults, with an optional num_samples for every image.

    Everything is validated here, before the GPU is asked for: the caps in force (samples per image,
    samples per run, segmentation and regressor settings) bound the run whatever the caller sent.
    """
    params = load_lime_params(param_file) if param_file else default_lime_params()
    samples = samples_for_every_image(samples_override)
    if samples is not None:
        params = {key: {**entry, "num_samples": samples} for key, entry in params.items()}
    return validate_lime_params(params)


def build_presets_tab(config: AppConfig) -> None:
    """Lay out tab 2 and wire its run (api name: run_presets)."""
    gr.Markdown(
        "Runs the chosen methods on the ten preset images and compares their masks. "
        "On a CPU the four core methods take several minutes for ResNet50."
    )
    with gr.Row():
        model = gr.Dropdown(
            [(spec.title, name) for name, spec in MODEL_SPECS.items()], value=DEFAULT_MODEL, label="Model"
        )
        mask_rule = gr.Dropdown(
            list(settings.MASK_RULES), value=DEFAULT_RULE, label="Mask rule", allow_custom_value=True
        )
    methods = gr.CheckboxGroup(
        method_choices(CORE_METHODS + EXTRA_METHODS), value=list(CORE_METHODS), label="Methods (two or more)"
    )
    with gr.Row():
        param_file = gr.File(label="LIME parameter file (optional; default settings otherwise)", type="filepath")
        samples = gr.Slider(
            0,
            min(settings.lime_max_samples(), limits.lime_max_request_samples() // len(PRESET_KEYS)),
            value=0,
            step=10,
            label="LIME num_samples for every image (0 = as in the parameters)",
        )
    run = gr.Button("Run the ten presets", variant="primary")
    status = gr.Markdown()
    answer = gr.Markdown(elem_id="presets-answer")
    bars = gr.Image(label="IoU per image", type="filepath")
    table = gr.Markdown()
    grid = gr.Image(label="Overlays of every image", type="filepath")
    files = gr.File(label="Downloads: CSV, figures, report, zip of everything", file_count="multiple")

    def run_all(model_name, chosen, rule, file_path, samples_override, progress=gr.Progress()):  # noqa: B008 (gradio injects it)
        if not chosen or len(chosen) < 2:
            raise gr.Error("Tick at least two methods: agreement needs a pair.")
        try:
            params = lime_params_for_run(file_path, samples_override)
            out_dir = config.new_run_dir("presets-")

            def on_image(index: int, total: int, key: str) -> None:
                progress(index / total, desc=f"{key} ({index + 1}/{total})")

            result = run_presets(
                model_name,
                config.weights,
                chosen,
                params,
                rule,
                str(out_dir),
                examples_dir=str(config.examples_dir) if config.examples_dir else None,
                on_image=None if settings.ON_SPACES else on_image,
            )
        except XaiLensError as exc:
            raise gr.Error(str(exc)) from None
        paths = result["files"]
        note = "**Random weights: these numbers say nothing about a trained model.** " if config.is_random else ""
        return (
            f"Done: {len(result['iou'])} images, methods {', '.join(chosen)}, mask rule `{rule}`.",
            f"### Is the IoU higher for simple images?\n{note}{result['answer']}",
            paths["bar"],
            result["table"],
            paths["grid"],
            [paths["csv"], paths["bar"], paths["grid"], paths["report"], paths["zip"]],
        )

    run.click(
        run_all,
        [model, methods, mask_rule, param_file, samples],
        [status, answer, bars, table, grid, files],
        api_name="run_presets",
        concurrency_limit=1,
        concurrency_id=settings.HEAVY_CONCURRENCY_ID,
    )
