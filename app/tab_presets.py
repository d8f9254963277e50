"""Tab 2: all ten presets, IoU per image, and the simple-vs-complex answer from the numbers."""

from __future__ import annotations

import math

import gradio as gr

from app import settings
from app.compute import PresetsRequest, run_presets
from app.defaults import device_defaults, model_choices
from app.errors import user_error
from app.panel_study import build_study_panel, study_dir
from app.settings import AppConfig
from app.stops import STOPS, wire_stop_button
from app.tab_explain import available_presets, method_choices
from explainers import limits
from explainers.comparison.masks import DEFAULT_RULE
from explainers.engine.cancel import CancelledError
from explainers.errors import XaiLensError
from explainers.inputs.param_file import (
    PRESET_KEYS,
    default_lime_params,
    load_lime_params,
    validate_lime_params,
)
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
    """Lay out tab 2 and wire its run (api names: run_presets, and study_summary when a study is configured)."""
    defaults = device_defaults()
    gr.Markdown(
        "Runs the chosen methods on the ten preset images and compares their masks. "
        f"{defaults.note} ResNet50 with all four methods takes several minutes on a CPU."
    )
    if not available_presets(config):  # said before the click, as the Explain tab does
        gr.Markdown(
            "**The preset images are unavailable** (offline, and no folder given): set XAI_LENS_EXAMPLES_DIR or "
            "--examples-dir to a folder holding them, then restart the app.",
            elem_id="presets-unavailable",
        )
    with gr.Row():
        model = gr.Dropdown(model_choices(config.weights), value=defaults.model, label="Model")
        mask_rule = gr.Dropdown(
            list(settings.MASK_RULES), value=DEFAULT_RULE, label="Mask rule", allow_custom_value=True
        )
    methods = gr.CheckboxGroup(
        method_choices(CORE_METHODS + EXTRA_METHODS), value=list(defaults.methods), label="Methods (two or more)"
    )
    with gr.Row():
        param_file = gr.File(label="LIME parameter file (optional; default settings otherwise)", type="filepath")
        samples = gr.Slider(
            0,
            min(settings.lime_max_samples(), limits.lime_max_request_samples() // len(PRESET_KEYS)),
            value=defaults.preset_samples,
            step=10,
            label="LIME num_samples for every image (0 = as in the parameters)",
        )
    with gr.Row():
        run = gr.Button("Run the ten presets", variant="primary", scale=3, elem_id="presets-run")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="presets-stop")
    status = gr.Markdown()
    answer = gr.Markdown(elem_id="presets-answer")
    bars = gr.Image(label="IoU per image", type="filepath")
    table = gr.Markdown()
    grid = gr.Image(label="Overlays of every image", type="filepath")
    files = gr.File(label="Downloads: CSV, figures, report, zip of everything", file_count="multiple")

    def run_all(request: gr.Request, model_name, chosen, rule, file_path, samples_override, progress=gr.Progress()):  # noqa: B008 (gradio injects it)
        if not chosen or len(chosen) < 2:
            raise user_error("Tick at least two methods: agreement needs a pair.")
        session = getattr(request, "session_hash", None)
        token = STOPS.start("presets", session, settings.PRESETS_DEADLINE_S)
        try:
            params = lime_params_for_run(file_path, samples_override)
            out_dir = config.new_run_dir("presets-")

            def on_image(index: int, total: int, key: str) -> None:
                progress(index / total, desc=f"{key} ({index + 1}/{total})")

            report = PresetsRequest(
                model_name,
                config.weights,
                chosen,
                params,
                rule,
                str(out_dir),
                examples_dir=str(config.examples_dir) if config.examples_dir else None,
                deadline_s=settings.PRESETS_DEADLINE_S,
            )
            result = run_presets(report, on_image=None if settings.ON_SPACES else on_image, cancel=token)
        except CancelledError:
            by_visitor = STOPS.finish("presets", session, token)
            reason = "you pressed Stop" if by_visitor else f"the {settings.PRESETS_DEADLINE_S:g} s time limit passed"
            return (f"**Stopped** ({reason}); nothing was kept. Press Run to start again.", *(gr.update(),) * 5)
        except XaiLensError as exc:
            raise user_error(str(exc)) from None
        finally:
            STOPS.finish("presets", session, token)
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

    running = run.click(
        run_all,
        [model, methods, mask_rule, param_file, samples],
        [status, answer, bars, table, grid, files],
        api_name="run_presets",
        concurrency_limit=1,
        concurrency_id=settings.HEAVY_CONCURRENCY_ID,
        show_progress_on=[status],  # the last run's figures stay visible under a new run
        trigger_mode="always_last",
    )

    wire_stop_button(stop, "presets", running)
    with gr.Accordion("Beyond ten images: the agreement study", open=study_dir(config) is not None):
        build_study_panel(config)
