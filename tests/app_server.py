"""Launch the app in-process on a free local port (random weights) for client and browser tests."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Callable
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


# The app as its own process (`python -m app`), for attacks that could crash or bloat a server: the test
# reads the server's peak memory from /proc and its log, and an audit hook in the server reports any
# file opened under CANARY_ENV's folder (a file the visitor never uploaded must never be read).
CANARY_ENV = "XAI_LENS_TEST_CANARY_DIR"
CANARY_MARK = "CANARY-OPENED"
SERVER_CODE = f"""
import os, sys
canary = os.path.realpath(os.environ["{CANARY_ENV}"])
def report(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if os.path.realpath(path).startswith(canary + os.sep):
            sys.__stderr__.write("{CANARY_MARK} " + path + "\\n")
sys.addaudithook(report)
from app.__main__ import main
main(sys.argv[1:])
"""


@contextmanager
def app_process(examples_dir: Path | None, tables_root: Path, log_path: Path, canary_dir: Path):
    """Yield (base URL, pid) of `python -m app --weights random` on a free local port; stop it afterwards."""
    import os
    import sys
    import urllib.request

    port = free_port()
    args = ["--weights", "random", "--host", "127.0.0.1", "--port", str(port), "--tables", str(tables_root)]
    if examples_dir is not None:
        args += ["--examples-dir", str(examples_dir)]
    environment = {**os.environ, CANARY_ENV: str(canary_dir), "GRADIO_ANALYTICS_ENABLED": "False"}
    repo = Path(__file__).resolve().parents[1]
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, *args], cwd=repo, env=environment, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_answering(server, lambda: urllib.request.urlopen(url + "config", timeout=5).read(), 240, log_path)
        yield url, server.pid
    finally:
        stop(server)


def wait_until_answering(
    server: subprocess.Popen, answer: Callable[[], object], timeout_s: float, log_path: Path
) -> None:
    """Call `answer` until it stops raising OSError. A server that exits, or never answers, ends the wait with
    the tail of its log, so a test that cannot start says why instead of hanging."""
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}:\n{_tail(log_path)}")
        try:
            answer()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer within {timeout_s} s:\n{_tail(log_path)}") from None
            time.sleep(0.5)


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-3000:]


def stop(server: subprocess.Popen) -> None:
    """Ask the server to end; kill it when it has not within 30 s."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=30)


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM)."""
    return _proc_status_kb(pid, "VmHWM") * 1024


def rss_bytes(pid: int) -> int:
    return _proc_status_kb(pid, "VmRSS") * 1024


def restart_peak_memory(pid: int) -> int:
    """The server's resident memory now, its peak (VmHWM) restarted from here (Linux: 5 in clear_refs), so that
    a later peak_rss_bytes says what the requests since then cost, not what loading the models did."""
    baseline = rss_bytes(pid)
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    return baseline


def _proc_status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


# Raw Gradio 6 protocol, for requests gradio_client cannot express (bare paths, event data, odd bodies).
def component_ids(url: str) -> dict[str, int]:
    """api_name -> fn_index for every event, private ones included (the browser calls them too)."""
    import json
    import urllib.request

    config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
    return {dependency["api_name"]: dependency["id"] for dependency in config["dependencies"]}


def queue_call(url: str, fn_index: int, data: list, event_data: dict | None = None, timeout_s: float = 120) -> dict:
    """Join the queue as the browser does and return the final message ({"success": bool, "output": ...})."""
    import json
    import secrets
    import time

    import httpx

    session = secrets.token_hex(8)
    body = {"data": data, "fn_index": fn_index, "session_hash": session, "event_data": event_data, "trigger_id": None}
    joined = httpx.post(url + "gradio_api/queue/join", json=body, timeout=60)
    if joined.status_code != 200:
        return {"success": False, "status": joined.status_code, "output": {"error": joined.text}}
    deadline = time.monotonic() + timeout_s
    with httpx.stream("GET", url + "gradio_api/queue/data", params={"session_hash": session}, timeout=60) as stream:
        for line in stream.iter_lines():
            if time.monotonic() > deadline:
                raise TimeoutError(f"fn {fn_index} gave no answer within {timeout_s} s")
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                return message
    raise ConnectionError(f"fn {fn_index}: the stream ended without an answer")


def error_of(message: dict) -> str | None:
    """The refusal text of a final queue message, None when the call succeeded."""
    if message.get("success"):
        return None
    output = message.get("output") or {}
    return str(output.get("error") or output.get("title") or "Error")


def one_line_refusal(attack: Callable[[], str], within_s: float, max_chars: int) -> str:
    """Run `attack` and return its refusal, checked to have come within `within_s` as one short line that
    holds no traceback: what a hostile visitor may see of the server."""
    started = time.monotonic()
    refusal = attack()
    assert time.monotonic() - started < within_s
    assert refusal and "\n" not in refusal.strip() and len(refusal) < max_chars, refusal
    assert "Traceback" not in refusal, refusal
    return refusal


def traceback_endings(log: str) -> list[str]:
    """The exception line that closes each traceback in a server log."""
    lines = log.splitlines()
    return [
        next((later for later in lines[number + 1 :] if later and not later[0].isspace()), "")
        for number, line in enumerate(lines)
        if line.startswith("Traceback (most recent call last):")
    ]


def fast_lime_values() -> list:
    """The LIME form's values in LimeForm order, with few samples: a quick explain for these tests."""
    from app.lime_form import DEFAULT_REGRESSOR

    segmentation = '{"kernel_size": 4, "max_dist": 200, "ratio": 0.2}'
    return [40, 100_000, 5, "0", 40, "quickshift", segmentation, "cosine", DEFAULT_REGRESSOR, 0]


def explain_inputs(image: dict | None, methods: list[str] | tuple[str, ...], lime_values: list) -> list:
    """Every input of the explain event for raw queue calls, in the tab's order: the trust panel's off by default."""
    from app.tab_explain import TOP1
    from explainers.faithfulness import BASELINES, DEFAULT_STEPS

    return [image, "resnet18", TOP1, list(methods), [], "top:0.10", *lime_values, [], DEFAULT_STEPS, BASELINES[0]]
