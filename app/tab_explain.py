"""Tab 1: one image, chosen methods side by side, streamed as each method finishes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from app import settings
from app.compute import explain_views
from app.errors import user_error
from app.file_inputs import UploadedImage
from app.lime_form import LimeForm, lime_form
from app.settings import AppConfig
from explainers import render
from explainers.engine.models import DEFAULT_MODEL, MODEL_SPECS, model_spec
from explainers.errors import XaiLensError
from explainers.inputs.param_file import default_lime_params
from explainers.inputs.presets import PRESETS, ensure_presets
from explainers.masks import DEFAULT_RULE
from explainers.methods import CORE_METHODS, EXTRA_METHODS, METHODS
from explainers.snapshot import ExplanationView

TOP1 = "top-1 (the model's prediction)"


def method_choices(names: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(METHODS[name].title, name) for name in names]


def target_choices(model_name: str, first: list[int] | tuple[int, ...] = ()) -> list[str]:
    """TOP1, then `first` (the top-5 after a run), then every class as 'index: name' (type to search)."""
    categories = model_spec(model_name).categories()
    order = [*first, *(i for i in range(len(categories)) if i not in set(first))]
    return [TOP1, *(f"{i}: {categories[i]}" for i in order)]


def parse_target(choice: str | None) -> int | None:
    if not choice or choice == TOP1:
        return None
    head = str(choice).split(":", 1)[0].strip()
    if not head.isdigit() or len(head) > 6:
        raise XaiLensError(f"Target class {choice!r:.40} is not in the list; pick one, or top-1.")
    return int(head)


def available_presets(config: AppConfig) -> list[tuple[str, str]]:
    """(path, label) of the presets found locally or downloadable; empty when they cannot be had."""
    try:
        return [(str(path), preset.label) for preset, path in ensure_presets(config.examples_dir, progress=False)]
    except XaiLensError:
        return []


def _status(view: ExplanationView) -> str:
    done = ", ".join(f"{view.titles[m]} {view.seconds[m]:.2f} s" for m in view.methods)
    waiting = ", ".join(METHODS[m].title for m in view.pending)
    target = f"Explaining **{view.target['label']}** (p = {view.target['probability']:.3f}) with {view.model_title}."
    state = f" Still running: {waiting}." if waiting else " Done."
    return f"{target} Finished: {done}.{state} Maps {render.CROP_CAPTION}."


def view_outputs(view: ExplanationView, model_name: str) -> tuple[Any, ...]:
    """One explanation view -> values of the tab's output components."""
    overlays = [(view.overlays[m], view.captions[m]) for m in view.methods]
    masks = [(render.mask_image(view.masks[m]), f"{view.titles[m]} mask ({view.mask_rule})") for m in view.masks]
    figure = view.iou_figure()
    predictions = {f"{p['index']}: {p['label']}": p["probability"] for p in view.top5}
    choices = gr.update(choices=target_choices(model_name, [p["index"] for p in view.top5])) if view.done else None
    return (
        _status(view),
        predictions,
        overlays,
        masks,
        render.figure_array(figure) if figure is not None else None,
        view.superpixels,
        view.summary if view.done else None,
        choices or gr.update(),
        render.figure_array(view.side_by_side_figure()) if view.methods else None,
    )


def build_explain_tab(config: AppConfig) -> None:
    """Lay out tab 1 and wire its events (api name: explain)."""
    presets = available_presets(config)
    default_lime = default_lime_params()[PRESETS[0].key]
    with gr.Row():
        with gr.Column(scale=1):
            image = UploadedImage(
                type="filepath",
                sources=["upload", "webcam", "clipboard"],
                label="Image (drop, upload, paste, webcam)",
                elem_id="input-image",
            )
            if presets:
                gallery = gr.Gallery(
                    presets, label="Presets: click one", columns=5, height=260, allow_preview=False, elem_id="presets"
                )
                gallery.select(_pick_preset(gallery_copies(gallery)), None, image, api_visibility="private")
            else:
                gr.Markdown("Preset images are unavailable offline; set XAI_LENS_EXAMPLES_DIR to their folder.")
            model = gr.Dropdown(
                [(spec.title, name) for name, spec in MODEL_SPECS.items()], value=DEFAULT_MODEL, label="Model"
            )
            target = gr.Dropdown(
                target_choices(DEFAULT_MODEL), value=TOP1, label="Target class (type to search)", filterable=True
            )
            methods = gr.CheckboxGroup(method_choices(CORE_METHODS), value=list(CORE_METHODS), label="Methods")
            with gr.Accordion("More CAM methods", open=False):
                extras = gr.CheckboxGroup(method_choices(EXTRA_METHODS), value=[], label="Extra methods")
            mask_rule = gr.Dropdown(
                list(settings.MASK_RULES), value=DEFAULT_RULE, label="Mask rule (for IoU)", allow_custom_value=True
            )
            with gr.Accordion("LIME parameters (explain_instance)", open=False):
                form = lime_form(default_lime)
            with gr.Row():
                run = gr.Button("Explain", variant="primary", scale=3)
                stop = gr.Button("Stop", variant="stop", scale=1)
        with gr.Column(scale=2):
            status = gr.Markdown("Choose an image and press Explain. Grad-CAM appears first; slower methods follow.")
            predictions = gr.Label(num_top_classes=5, label="Top-5 predictions")
            side_by_side = gr.Image(
                label="Side by side", type="numpy", interactive=False, elem_id="side-by-side", show_label=False
            )
            with gr.Row():
                iou = gr.Image(label="IoU matrix", type="numpy", elem_id="iou-matrix")
                superpixels = gr.Image(label="LIME superpixels", type="numpy")
            with gr.Accordion("Each overlay and mask on its own (full size, downloadable)", open=False):
                overlays = gr.Gallery(
                    label="Saliency overlays", columns=4, object_fit="contain", allow_preview=True, elem_id="overlays"
                )
                masks = gr.Gallery(label="Masks", columns=4, object_fit="contain", allow_preview=True)
            with gr.Accordion("Summary (what made these maps)", open=False):
                summary = gr.JSON(label="summary")
    model.change(_switch_model, model, target, api_visibility="private")

    def explain(image_path, model_name, target_choice, core, extra, rule, *lime_values, progress=gr.Progress()):  # noqa: B008 (gradio injects it)
        if not image_path:
            raise user_error("Choose an image first: drop one, upload, paste, use the webcam or click a preset.")
        chosen = [*(core or []), *(extra or [])]
        if not chosen:
            raise user_error("Tick at least one method.")
        try:
            lime_kwargs = LimeForm.to_kwargs(*lime_values)
            progress(0, desc="classifying")
            lime_progress = (
                None
                if settings.ON_SPACES
                else (lambda done, total: progress(done / total, desc=f"LIME: {done}/{total} samples"))
            )
            stream = explain_views(
                image_path,
                model_name,
                config.weights,
                chosen,
                parse_target(target_choice),
                lime_kwargs,
                rule,
                image_name=Path(image_path).name,
                lime_progress=lime_progress,
                deadline_s=settings.EXPLAIN_DEADLINE_S,
            )
            for view in stream:
                yield view_outputs(view, model_name)
        except XaiLensError as exc:
            raise user_error(str(exc)) from None

    running = run.click(
        explain,
        [image, model, target, methods, extras, mask_rule, *form.components],
        [status, predictions, overlays, masks, iou, superpixels, summary, target, side_by_side],
        api_name="explain",
        concurrency_limit=1,
        concurrency_id=settings.HEAVY_CONCURRENCY_ID,
    )
    # Stopping ends the stream at the next method boundary (LIME also checks between its batches).
    stop.click(None, None, None, cancels=[running], api_visibility="private")


def gallery_copies(gallery: gr.Gallery) -> list[str]:
    """The copies of the preset files Gradio made in its cache to show the gallery.

    A click hands the image input one of these, not the original: Gradio lets an output name only
    files in its cache, the working directory or the temp directory, and the preset folder may be
    anywhere (--examples-dir, XAI_LENS_EXAMPLES_DIR, ~/.cache/xai-lens/presets). The copies are kept
    for the app's life (keep_in_cache), so nothing beyond the ten images already shown is served.
    """
    return [item["image"]["path"] for item in gallery.value or []]


def _pick_preset(copies: list[str]):
    def pick(event: gr.SelectData) -> str:
        index = event.index
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(copies):
            raise user_error("Click one of the preset images.")
        return copies[index]

    return pick


def _switch_model(name: str):
    """Model changed: the target list follows (private event; the dropdown admits only listed models)."""
    if name not in MODEL_SPECS:
        raise user_error("Choose a model from the list.")
    return gr.update(choices=target_choices(name), value=TOP1)
