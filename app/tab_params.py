"""Tab 4: the LIME parameter file: edit per preset, validate, preview, download, inspect an upload."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from app import settings
from app.compute import explain_views
from app.lime_form import LimeForm, lime_form
from app.settings import AppConfig
from examples.presets import preset_path
from explainers.errors import XaiLensError
from explainers.models import DEFAULT_MODEL, MODEL_SPECS
from explainers.params import PRESET_KEYS, default_lime_params, load_lime_params, save_lime_params

PARAMS_FILENAME = "explain_params.pkl"


def params_json(params: dict) -> str:
    return json.dumps(params, indent=2)


def parse_params_json(text: str) -> dict:
    """Editor text -> validated parameters, through the same loader a file goes through."""
    if not text or not text.strip():
        raise XaiLensError("The parameter editor is empty; press Reset to start from the defaults.")
    return load_lime_params(text.encode("utf-8"))


def build_params_tab(config: AppConfig) -> None:
    """Lay out tab 4 and wire it (api names: validate_params, download_params, inspect_params)."""
    defaults = default_lime_params()
    gr.Markdown(
        f"The assignment's `{PARAMS_FILENAME}`: one entry per preset, each the keyword arguments of LIME's "
        "`explain_instance`. Pick a preset, edit its settings, press *Apply*; or edit the JSON directly."
    )
    with gr.Row():
        with gr.Column():
            key = gr.Dropdown(list(PRESET_KEYS), value=PRESET_KEYS[0], label="Preset")
            form = lime_form(defaults[PRESET_KEYS[0]])
            with gr.Row():
                apply = gr.Button("Apply to this preset")
                reset = gr.Button("Reset all to defaults")
        with gr.Column():
            editor = gr.Code(params_json(defaults), language="json", label="All parameters (JSON)", interactive=True)
    message = gr.Markdown()
    with gr.Row():
        validate = gr.Button("Validate")
        download = gr.Button(f"Make {PARAMS_FILENAME}", variant="primary")
        out_file = gr.File(label=PARAMS_FILENAME)
    with gr.Accordion("Preview one preset with LIME", open=False):
        with gr.Row():
            preview_model = gr.Dropdown(
                [(spec.title, name) for name, spec in MODEL_SPECS.items()], value=DEFAULT_MODEL, label="Model"
            )
            preview = gr.Button("Preview LIME on the chosen preset")
        with gr.Row():
            preview_overlay = gr.Image(label="LIME overlay", type="numpy")
            preview_segments = gr.Image(label="Superpixels", type="numpy")
        preview_status = gr.Markdown()
    upload = gr.File(label="Inspect a parameter file (read with the restricted loader; code in it never runs)")

    def fill_form(chosen: str, text: str):
        try:
            return LimeForm.from_kwargs(parse_params_json(text)[chosen])
        except XaiLensError as exc:
            raise gr.Error(str(exc)) from None

    def apply_entry(chosen: str, text: str, *values):
        try:
            params = parse_params_json(text)
            params[chosen] = LimeForm.to_kwargs(*values, where=chosen)
            return params_json(parse_params_json(params_json(params))), f"Applied to {chosen}."
        except XaiLensError as exc:
            raise gr.Error(str(exc)) from None

    def validate_text(text: str) -> str:
        try:
            parse_params_json(text)
        except XaiLensError as exc:
            return f"Not valid: {exc}"
        return f"Valid: all ten presets, every setting within bounds (num_samples <= {settings.LIME_MAX_SAMPLES})."

    def make_file(text: str) -> str:
        try:
            params = parse_params_json(text)
            return str(save_lime_params(params, config.new_run_dir("params-") / PARAMS_FILENAME))
        except XaiLensError as exc:
            raise gr.Error(str(exc)) from None

    def inspect_file(path: str | None):
        if not path:
            return gr.update(), "No file."
        try:
            params = load_lime_params(Path(path))
        except XaiLensError as exc:
            raise gr.Error(str(exc)) from None
        return params_json(params), f"'{Path(path).name}' is a valid parameter file; it is now in the editor."

    def preview_lime(chosen: str, text: str, model_name: str):
        try:
            entry = parse_params_json(text)[chosen]
            if entry.get("num_samples", 1000) > settings.LIME_MAX_SAMPLES:
                raise XaiLensError(f"num_samples is capped at {settings.LIME_MAX_SAMPLES} here.")
            path = preset_path(chosen, config.examples_dir)
            *_, view = explain_views(str(path), model_name, config.weights, ["lime"], None, entry, "top:0.10")
        except XaiLensError as exc:
            raise gr.Error(str(exc)) from None
        return view.overlays["lime"], view.superpixels, f"{view.captions['lime']}."

    key.change(fill_form, [key, editor], form.components, api_visibility="private")
    apply.click(apply_entry, [key, editor, *form.components], [editor, message], api_visibility="private")
    reset.click(lambda: params_json(default_lime_params()), None, editor, api_visibility="private")
    validate.click(validate_text, editor, message, api_name="validate_params")
    download.click(make_file, editor, out_file, api_name="download_params")
    upload.upload(inspect_file, upload, [editor, message], api_name="inspect_params")
    preview.click(
        preview_lime, [key, editor, preview_model], [preview_overlay, preview_segments, preview_status],
        api_name="preview_params", concurrency_limit=1, concurrency_id=settings.HEAVY_CONCURRENCY_ID,
    )
