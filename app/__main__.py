"""`python -m app [--weights imagenet|random|PATH] [--host H] [--port P] [--share]`."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import app.gpu  # noqa: F401  (imports `spaces` before torch starts CUDA, as ZeroGPU needs)

log = logging.getLogger("xai_lens.app")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app", description="XAI Lens web app (Gradio).")
    parser.add_argument(
        "--weights",
        default=os.environ.get("XAI_LENS_WEIGHTS", "imagenet"),
        help="imagenet (published, downloaded once), random (offline; explanations are meaningless) or a checkpoint",
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument("--examples-dir", type=Path, default=None, help="folder with the ten preset images")
    parser.add_argument("--tables", type=Path, default=None, help="neuron tables folder (default: built-in)")
    parser.add_argument(
        "--study-dir", type=Path, default=None, help="an agreement study's folder to summarise (or XAI_LENS_STUDY_DIR)"
    )
    return parser.parse_args(argv)


def prepare_models(weights: str) -> list[str]:
    """Load models in the main thread before launch; returns the names that loaded.

    On ZeroGPU every served model is loaded and placed on `cuda` here, as its docs prescribe: CUDA is
    emulated in the main thread only, and spaces packs what sits on `cuda` at launch and copies it into
    each GPU worker. Elsewhere only the default model for this device loads, and Grad-CAM runs once on it so the first
    visitor's answer comes in about a second; doing it here rather than in a thread keeps CUDA work off
    background threads (a background thread would not make the first answer sooner, as that answer needs
    the model anyway). A model whose weights cannot be had is named in one log line; the app starts
    without it, and a request for it gets the same one-line reason.
    """
    from app.defaults import device_defaults
    from app.gpu import zero_gpu
    from explainers.engine.models import MODEL_SPECS, load_model
    from explainers.errors import XaiLensError
    from explainers.pipeline import explain_image

    loaded = []
    # On any Space (SPACE_ID set) every served model's weights are fetched now: no visitor waits on a third party.
    for name in MODEL_SPECS if zero_gpu() or os.environ.get("SPACE_ID") else [device_defaults().model]:
        try:
            model = load_model(name, weights)
            if not zero_gpu():
                explain_image(np.full((224, 224, 3), 128, np.uint8), model, ["gradcam"])
        except XaiLensError as exc:
            reason = " ".join(str(exc).split())
            log.warning("XAI Lens: model %s is unavailable at start: %s", name, reason)
            continue
        loaded.append(name)
    return loaded


def configure_logging() -> None:
    """The app's own lines (one per refused request, one per stop) at INFO; other libraries at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("xai_lens").setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> None:
    from app.layout import build_app, launch_kwargs
    from app.settings import AppConfig

    args = parse_args(argv)
    configure_logging()
    prepare_models(args.weights)
    config = AppConfig(
        weights=args.weights, examples_dir=args.examples_dir, tables_root=args.tables, study_dir=args.study_dir
    )
    build_app(config).launch(server_name=args.host, server_port=args.port, share=args.share, **launch_kwargs())


if __name__ == "__main__":
    main()
