"""Tab 4: the LIME parameter file: edit per preset, tune, validate, preview, download, inspect an upload."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from app import settings
from app.compute import ExplainRequest, explain_views
from app.errors import user_error
from app.lime_form import LimeForm, lime_form
from app.panel_tuner import build_tuner_panel
from app.settings import AppConfig
from explainers import limits
from explainers.engine.models import DEFAULT_MODEL, MODEL_SPECS
from explainers.errors import XaiLensError
from explainers.inputs.param_file import (
    PRESET_KEYS,
    default_lime_params,
    load_lime_params,
    save_lime_params,
    total_samples,
)
from explainers.inputs.presets import preset_path

PARAMS_FILENAME = "explain_params.pkl"


def params_json(params: dict) -> str:
    return json.dumps(params, indent=2)


def ui_language(message: str) -> str:
    """Library messages name Python functions; a visitor of this tab has a button instead."""
    return message.replace("with save_lime_params", f"with this tab's 'Make {PARAMS_FILENAME}' button")


def parse_params_json(text: str) -> dict:
    """Editor text -> validated parameters, through the same loader (and caps) a file goes through."""
    if not isinstance(text, str) or not text.strip():
        raise XaiLensError("The parameter editor is empty; press Reset to start from the defaults.")
    return load_lime_params(text.encode("utf-8"))


def preset_entry(params: dict, chosen: str) -> dict:
    """One preset's settings; a name that is not a preset (possible through the API) is one line."""
    if chosen not in PRESET_KEYS:
        raise XaiLensError(f"{str(chosen)[:40]!r} is not a preset; choose one of {', '.join(PRESET_KEYS)}.")
    return params[chosen]


def valid_message(params: dict) -> str:
    """The validator's answer, stating the caps actually in force on this server."""
    return (
        f"Valid: all ten presets, every setting within this server's caps (num_samples <= "
        f"{limits.lime_max_samples()} per image; {total_samples(params)} samples in all, at most "
        f"{limits.lime_max_request_samples()} per run)."
    )


def build_params_tab(config: AppConfig) -> None:
    """Lay out tab 4 and wire it (api names: validate_params, download_params, inspect_params, tune_lime)."""
    defaults = default_lime_params()
    gr.Markdown(
        f"The assignment's `{PARAMS_FILENAME}`: one entry per preset, each the keyword arguments of LIME's "
        "`explain_instance`. Pick a preset and edit its settings: every change goes straight into the file "
        "you make (the JSON below shows all ten)."
    )
    key = gr.Dropdown(list(PRESET_KEYS), value=PRESET_KEYS[0], label="Preset")
    form = lime_form(defaults[PRESET_KEYS[0]])
    message = gr.Markdown(elem_id="params-message")
    with gr.Row():
        validate = gr.Button("Validate")
        download = gr.Button(f"Make {PARAMS_FILENAME}", variant="primary", elem_id="make-params")
        reset = gr.Button("Reset all to defaults")
    out_file = gr.File(label=PARAMS_FILENAME)
    with gr.Accordion("All parameters (JSON): edit directly if you prefer", open=False):
        editor = gr.Code(params_json(defaults), language="json", label="All parameters (JSON)", interactive=True)
    with gr.Accordion("Find settings with the tuner: IoU against LIME's time, per image", open=False):
        tuned = build_tuner_panel(config, editor)
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
            return LimeForm.from_kwargs(preset_entry(parse_params_json(text), chosen))
        except XaiLensError as exc:
            raise user_error(ui_language(str(exc))) from None

    def apply_entry(chosen: str, text: str, *values):
        """Every form edit lands in the JSON at once, so 'Make' exports what the form shows."""
        try:
            params = parse_params_json(text)
            preset_entry(params, chosen)
            params[chosen] = LimeForm.to_kwargs(*values, where=chosen)
            return params_json(parse_params_json(params_json(params))), f"{chosen}: updated."
        except XaiLensError as exc:
            return gr.update(), f"Not updated: {ui_language(str(exc))}"

    def validate_text(text: str) -> str:
        try:
            params = parse_params_json(text)
        except XaiLensError as exc:
            return f"Not valid: {ui_language(str(exc))}"
        return valid_message(params)

    def make_file(text: str) -> str:
        try:
            params = parse_params_json(text)
            return str(save_lime_params(params, config.new_run_dir("params-") / PARAMS_FILENAME))
        except XaiLensError as exc:
            raise user_error(ui_language(str(exc))) from None

    def inspect_file(path: str | None):
        if not path:
            return gr.update(), "No file."
        try:
            params = load_lime_params(Path(path))
        except XaiLensError as exc:
            raise user_error(ui_language(str(exc))) from None
        return params_json(params), f"'{Path(path).name}' is a valid parameter file; it is now in the editor."

    def preview_lime(chosen: str, text: str, model_name: str):
        try:
            entry = preset_entry(parse_params_json(text), chosen)  # validated: the caps in force hold
            path = preset_path(chosen, config.examples_dir)
            lime_only = ExplainRequest(
                str(path),
                model_name,
                config.weights,
                ["lime"],
                None,
                entry,
                "top:0.10",
                deadline_s=settings.EXPLAIN_DEADLINE_S,
            )
            *_, view = explain_views(lime_only)
        except XaiLensError as exc:
            raise user_error(ui_language(str(exc))) from None
        return view.overlays["lime"], view.superpixels, f"{view.captions['lime']}."

    key.change(fill_form, [key, editor], form.components, api_visibility="private")
    for component in form.components:  # .input: the visitor's edits only, not the refills from fill_form
        component.input(apply_entry, [key, editor, *form.components], [editor, message], api_visibility="private")
    tuned.then(fill_form, [key, editor], form.components, api_visibility="private")  # the form shows the tuned entry
    reset.click(lambda: params_json(default_lime_params()), None, editor, api_visibility="private")
    validate.click(validate_text, editor, message, api_name="validate_params")
    download.click(make_file, editor, out_file, api_name="download_params")
    upload.upload(inspect_file, upload, [editor, message], api_name="inspect_params").failure(
        lambda: "**The last upload was refused** (the reason is in the message above); the editor is unchanged.",
        None,
        message,
        api_visibility="private",
    )
    preview.click(
        preview_lime,
        [key, editor, preview_model],
        [preview_overlay, preview_segments, preview_status],
        api_name="preview_params",
        concurrency_limit=1,
        concurrency_id=settings.HEAVY_CONCURRENCY_ID,
    )
