"""`python -m app [--weights imagenet|random|PATH] [--host H] [--port P] [--share]`."""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import app.gpu  # noqa: F401  (imports `spaces` before torch starts CUDA, as ZeroGPU needs)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app", description="XAI Lens web app (Gradio).")
    parser.add_argument(
        "--weights", default=os.environ.get("XAI_LENS_WEIGHTS", "imagenet"),
        help="imagenet (published, downloaded once), random (offline; explanations are meaningless) or a checkpoint",
    )
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also open a temporary public gradio.live link")
    parser.add_argument("--examples-dir", type=Path, default=None, help="folder with the ten preset images")
    parser.add_argument("--tables", type=Path, default=None, help="neuron tables folder (default: built-in)")
    return parser.parse_args(argv)


def warm_up(weights: str) -> None:
    """Load the default model and run Grad-CAM once, so the first visitor's Grad-CAM takes about a second."""
    from explainers.errors import XaiLensError
    from explainers.models import DEFAULT_MODEL, load_model
    from explainers.pipeline import explain_image

    with contextlib.suppress(XaiLensError):  # weights not available yet: the first request reports it
        explain_image(np.full((224, 224, 3), 128, np.uint8), load_model(DEFAULT_MODEL, weights), ["gradcam"])


def main(argv: Sequence[str] | None = None) -> None:
    from app.layout import build_app, launch_kwargs
    from app.settings import AppConfig

    args = parse_args(argv)
    threading.Thread(target=warm_up, args=(args.weights,), daemon=True).start()
    config = AppConfig(weights=args.weights, examples_dir=args.examples_dir, tables_root=args.tables)
    build_app(config).launch(server_name=args.host, server_port=args.port, share=args.share, **launch_kwargs())


if __name__ == "__main__":
    main()
