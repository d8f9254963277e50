"""Launch the app in-process on a free local port (random weights) for client and browser tests."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from dissection_data.labels import NeuronLabel
from dissection_data.tables import write_table

LAYERS = ("layer3", "layer4")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_small_tables(root: Path) -> Path:
    """Two tiny tables (an ImageNet and a Places365 model) with known labels and one thumbnail per neuron."""
    concepts = {
        "resnet18": ["water", "dog", "water", "sky", "fur", "wheel"],
        "resnet18-places365": ["water", "kitchen", "sky", "sky", "shelf", "tower"],
    }
    for model, labels in concepts.items():
        rows, thumbs = [], {}
        for position, concept in enumerate(labels):
            layer, unit = LAYERS[position // 3], position % 3
            image_id = f"{model}-{layer}-{unit}"
            thumbs[image_id] = Image.new("RGB", (32, 32), (40 * position, 100, 200))
            rows.append(NeuronLabel(layer, unit, (concept, "grass", "road"), (0.9, 0.5, 0.4), (image_id,)))
        write_table(root / model, model, rows, {"model": model}, thumbs)
    return root


@contextmanager
def running_app(examples_dir: Path | None, tables_root: Path, work_root: Path):
    """Yield the base URL of the app (random weights) while it runs; close it afterwards."""
    from app.layout import build_app, launch_kwargs
    from app.settings import AppConfig

    config = AppConfig(weights="random", examples_dir=examples_dir, tables_root=tables_root, work_root=work_root)
    demo = build_app(config)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_kwargs())
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
