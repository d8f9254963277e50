"""The whole app: banner, four tabs, queue and launch settings."""

from __future__ import annotations

import gradio as gr

from app import settings
from app.settings import AppConfig
from app.tab_explain import build_explain_tab
from app.tab_neurons import build_neurons_tab
from app.tab_params import build_params_tab
from app.tab_presets import build_presets_tab
from explainers.models import RANDOM_WEIGHTS_WARNING

TITLE = "XAI Lens: where does the classifier look?"
CSS = (
    "#random-banner {background: #b00020; padding: 8px 12px; border-radius: 6px;}"
    " #random-banner * {color: white !important;}"
)


def build_app(config: AppConfig) -> gr.Blocks:
    """Blocks with the four tabs; queue bounded for a public demo (one heavy job at a time)."""
    with gr.Blocks(title=TITLE, delete_cache=settings.DELETE_CACHE) as demo:
        gr.Markdown(f"# {TITLE}\nGrad-CAM, Score-CAM, Ablation-CAM and LIME side by side, how much they agree, "
                    "and which concepts single neurons stand for.")
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
    return demo


def launch_kwargs() -> dict:
    """What launch() needs besides host and port: look, upload limit."""
    return {"css": CSS, "theme": gr.themes.Soft(), "max_file_size": settings.MAX_UPLOAD, "show_error": False}
