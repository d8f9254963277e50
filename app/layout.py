"""The whole app: banner, four tabs, queue and launch settings."""

from __future__ import annotations

import gradio as gr
from starlette.middleware import Middleware

from app import settings
from app.file_inputs import MAX_DATA_URL_CHARS, refuse_remote_files
from app.request_caps import RequestCaps
from app.settings import AppConfig
from app.tab_explain import build_explain_tab
from app.tab_neurons import build_neurons_tab
from app.tab_params import build_params_tab
from app.tab_presets import build_presets_tab
from explainers.engine.models import RANDOM_WEIGHTS_WARNING
from explainers.inputs.images import MAX_FILE_BYTES

TITLE = "XAI Lens: where does the classifier look?"
CSS = (
    "#random-banner {background: #b00020; padding: 8px 12px; border-radius: 6px;}"
    " #random-banner * {color: white !important;}"
)
# Request caps (app/request_caps.py). No input takes more than one file, and the browser and
# gradio_client upload each file in its own request. An upload carries one file of at most
# MAX_FILE_BYTES plus its multipart headers; any other body (an API call's JSON) at most one image
# as a data: URL plus the other arguments.
MAX_FILES_PER_UPLOAD = 1
UPLOAD_REQUEST_BYTES = MAX_FILE_BYTES + 64 * 2**10
API_REQUEST_BYTES = MAX_DATA_URL_CHARS + 2**20


def build_app(config: AppConfig) -> gr.Blocks:
    """Blocks with the four tabs; queue bounded for a public demo (one heavy job at a time)."""
    with gr.Blocks(title=TITLE, delete_cache=settings.DELETE_CACHE) as demo:
        gr.Markdown(
            f"# {TITLE}\nGrad-CAM, Score-CAM, Ablation-CAM and LIME side by side, how much they agree, "
            "and which concepts single neurons stand for."
        )
        if config.is_random:
            gr.Markdown(f"**{RANDOM_WEIGHTS_WARNING}**", elem_id="random-banner")
        with gr.Tabs():
            with gr.Tab("Explain"):
                build_explain_tab(config)
            with gr.Tab("Ten presets"):
                build_presets_tab(config)
            with gr.Tab("Neuron concepts"):
                build_neurons_tab(config)
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
