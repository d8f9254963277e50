"""The whole app: banner, four tabs, queue and launch settings."""

from __future__ import annotations

import gradio as gr
from starlette.middleware import Middleware

from app import settings
from app.errors import log_gradio_refusals_in_one_line
from app.file_inputs import refuse_remote_files
from app.panel_concepts import NEURON_TAB_ID
from app.request_caps import RequestCaps
from app.settings import AppConfig
from app.tab_explain import build_explain_tab
from app.tab_neurons import build_neurons_tab
from app.tab_params import build_params_tab
from app.tab_presets import build_presets_tab
from explainers.limits import API_REQUEST_BYTES, MAX_FILES_PER_UPLOAD, UPLOAD_REQUEST_BYTES

TITLE = "XAI Lens: where does the classifier look?"
CSS = """
#random-banner {background: #b00020; padding: 4px 10px; border-radius: 6px;}
#random-banner * {color: white !important; margin: 0 !important;}
#app-title h2 {margin: 0 !important;}
#presets .grid-wrap {max-height: none !important; overflow: visible !important; padding: 4px !important;}
#presets .grid-container {grid-template-columns: repeat(5, minmax(0, 1fr)) !important;
  grid-template-rows: none !important;
  grid-auto-rows: auto !important; gap: 6px !important;}
#presets .caption-label {font-size: 11px !important; padding: 0 4px !important; max-width: 96% !important;}
#explain-status p {margin: 0;}
body.presenting #explain-status, body.presenting #explain-status * {font-size: 1.4rem !important; line-height: 1.4;}
body.presenting #top5 * {font-size: 1.25rem !important;}
body.presenting #explain-button, body.presenting #stop-button {font-size: 1.4rem !important;}
@media (max-width: 640px) {
  #app-subtitle {display: none;}
  #side-by-side .image-container, #side-by-side .image-frame {overflow-x: auto !important;
    justify-content: flex-start !important; display: block !important;}
  #side-by-side img {min-width: 820px !important; max-width: none !important; position: static !important;
    transform: none !important; margin: 0 !important;}
  input[role="listbox"] {text-overflow: ellipsis; padding-right: 28px !important;}
}
"""
SUBTITLE = (
    "Grad-CAM, Score-CAM, Ablation-CAM and LIME side by side, how much they agree, and what single neurons detect."
)
RANDOM_BANNER = "**RANDOM WEIGHTS**: an untrained model, so its predictions and maps mean nothing (a demo of the app)."
# Request caps (app/request_caps.py): explainers.limits defines them.


def build_app(config: AppConfig) -> gr.Blocks:
    """Blocks with the four tabs; queue bounded for a public demo (one heavy job at a time)."""
    log_gradio_refusals_in_one_line()
    with gr.Blocks(title=TITLE, delete_cache=settings.DELETE_CACHE) as demo:
        gr.Markdown(f"## {TITLE}", elem_id="app-title")
        gr.Markdown(SUBTITLE, elem_id="app-subtitle")
        if config.is_random:  # one short line: on a phone the full warning took five
            gr.Markdown(RANDOM_BANNER, elem_id="random-banner")
        with gr.Tabs() as tabs:
            with gr.Tab("Explain"):
                concepts_link = build_explain_tab(config)
            with gr.Tab("Ten presets"):
                build_presets_tab(config)
            with gr.Tab("Neuron concepts", id=NEURON_TAB_ID):  # a unit clicked in Explain opens here
                build_neurons_tab(config, concepts_link, tabs)
            with gr.Tab("LIME parameters"):
                build_params_tab(config)
    demo.queue(max_size=settings.QUEUE_MAX_SIZE, default_concurrency_limit=1)
    refuse_remote_files(demo)
    return demo


def launch_kwargs() -> dict:
    """What launch() needs besides host and port: look, upload limit, caps on every request body."""
    caps = Middleware(
        RequestCaps,
        body_bytes=API_REQUEST_BYTES,
        upload_bytes=UPLOAD_REQUEST_BYTES,
        upload_files=MAX_FILES_PER_UPLOAD,
    )
    return {
        "css": CSS,
        "theme": gr.themes.Soft(),
        "max_file_size": settings.MAX_UPLOAD,
        "show_error": False,
        "app_kwargs": {"middleware": [caps]},
    }
