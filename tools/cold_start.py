"""Cold start: seconds from `python space_app.py` to the first Grad-CAM answer with the default model.

    python -m tools.cold_start --weights random --runs 3
    python -m tools.cold_start --weights imagenet --image photo.jpg   # weights already in torch's cache

Each run starts the Space's entry point as a subprocess on a free loopback port, waits for the port,
asks /explain for Grad-CAM only (default model, default settings) through gradio_client, then stops
the server. It reports, per run, when the port opened and when the answer came, and the same request
again on the warm server. A benchmark, not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 600
ANSWER_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request_image(folder: Path) -> Path:
    """A preset from XAI_LENS_EXAMPLES_DIR when set, else a generated photo-like image (no download)."""
    presets = os.environ.get("XAI_LENS_EXAMPLES_DIR")
    if presets and sorted(Path(presets).glob("*.JPEG")):
        return sorted(Path(presets).glob("*.JPEG"))[0]
    y, x = np.mgrid[0:300, 0:400] / 300.0
    picture = (np.stack([x / 1.4, y, 1 - x * y / 1.4], axis=2) * 255).astype(np.uint8)
    path = folder / "cold_start.png"
    Image.fromarray(picture).save(path)
    return path


def gradcam_args(client: Any, image: Path) -> list[Any]:
    """/explain's arguments by the API's own listing: its defaults, the image, and Grad-CAM as the only method."""
    from gradio_client import handle_file

    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/explain"]["parameters"]
    values = []
    for param in params:
        if param["component"] == "Image":
            values.append(handle_file(str(image)))
        elif param["label"] == "Methods":
            values.append(["gradcam"])
        elif param["label"] == "Extra methods":
            values.append([])
        else:
            values.append(param.get("parameter_default"))
    return values


def one_run(weights: str, image: Path) -> dict[str, float]:
    from gradio_client import Client

    port = free_port()
    env = {**os.environ, "XAI_LENS_WEIGHTS": weights, "GRADIO_SERVER_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    env.pop("SPACES_ZERO_GPU", None)
    with tempfile.TemporaryFile() as log:
        start = time.monotonic()
        server = subprocess.Popen([sys.executable, "space_app.py"], cwd=REPO, env=env, stdout=log, stderr=log)
        try:
            while True:
                if server.poll() is not None or time.monotonic() - start > START_TIMEOUT_S:
                    log.seek(0)
                    raise SystemExit(f"the server did not start:\n{log.read().decode(errors='replace')[-2000:]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            port_open = time.monotonic() - start
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            args = gradcam_args(client, image)
            client.submit(*args, api_name="/explain").result(timeout=ANSWER_TIMEOUT_S)
            first_answer = time.monotonic() - start
            again = time.monotonic()
            client.submit(*args, api_name="/explain").result(timeout=ANSWER_TIMEOUT_S)
            warm_answer = time.monotonic() - again
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=30)
    return {"port_open_s": port_open, "first_gradcam_s": first_answer, "warm_gradcam_s": warm_answer}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="random", help="imagenet, random or a checkpoint path (as the app)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--image", type=Path, default=None, help="default: a preset, else a generated image")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        image = args.image or request_image(Path(folder))
        runs = [one_run(args.weights, image) for _ in range(max(1, args.runs))]
    keys = runs[0].keys()
    result = {
        "weights": args.weights,
        "image": image.name,
        "runs": runs,
        "median": {key: statistics.median(run[key] for run in runs) for key in keys},
        "cpu_count": os.cpu_count(),
    }
    for key in keys:
        print(f"{key}: median {result['median'][key]:.2f} s over {len(runs)} runs")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
