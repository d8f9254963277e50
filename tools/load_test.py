"""Load test of the app on 127.0.0.1: N concurrent gradio_client sessions, mixed Grad-CAM and LIME requests.

    python -m tools.load_test --launch                 # start `python -m app --weights random`, test, stop it
    python -m tools.load_test --url http://127.0.0.1:7860/ --server-pid PID

Every session sends a bounded number of requests with a per-request timeout; the whole run has a
deadline, so it always ends by itself. It reports requests served, failures, queue-full refusals,
latency percentiles, the server's peak memory, and whether each answer under load equals the
answer the same request got alone (same prediction, probabilities and IoU).
Only loopback addresses are accepted: this is a tool for one's own machine, not for others' servers.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from explainers.errors import first_line

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
# A request's kind -> (methods, LIME samples). LIME requests use few samples to keep the run short.
KINDS: dict[str, tuple[list[str], int]] = {"gradcam": (["gradcam"], 40), "lime": (["gradcam", "lime"], 40)}
SEGMENTATION = '{"kernel_size": 4, "max_dist": 200, "ratio": 0.2}'
QUEUE_FULL_WORDS = ("queue is full", "queue full", "too many")
TOP1 = "top-1 (the model's prediction)"  # app.tab_explain.TOP1: the target dropdown's first choice


@dataclass
class Outcome:
    kind: str
    seconds: float
    status: str  # served | queue_full | failed
    detail: str = ""
    answer: dict[str, Any] = field(default_factory=dict)


def lime_values(samples: int) -> list[Any]:
    """The LIME form's values in the app's order (num_samples, batch_size, num_features, hide_color, ...)."""
    from app.lime_form import DEFAULT_REGRESSOR

    return [samples, 100_000, 5, "0", 40, "quickshift", SEGMENTATION, "cosine", DEFAULT_REGRESSOR, 0]


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """What must not change under load: the prediction, its probabilities and the agreement."""
    return {
        "target": summary["target"],
        "top5": summary["top5"],
        "iou": {pair: round(value, 4) for pair, value in summary["iou"].items()},
    }


def explain_endpoint(client) -> str:
    names = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    found = [name for name in names if "explain" in name]
    if not found:
        raise SystemExit(f"no endpoint whose name contains 'explain' (endpoints: {', '.join(names)})")
    return "/explain" if "/explain" in found else found[0]


def one_request(client, endpoint: str, image: Path, kind: str, timeout_s: float) -> Outcome:
    from gradio_client import handle_file

    methods, samples = KINDS[kind]
    started = time.perf_counter()
    try:
        job = client.submit(
            handle_file(str(image)), "resnet18", TOP1, methods, [], "top:0.10", *lime_values(samples), api_name=endpoint
        )
        outputs = job.result(timeout=timeout_s)
        summary = outputs[6]
        return Outcome(kind, time.perf_counter() - started, "served", answer=comparable(summary))
    except Exception as error:  # the test's purpose is to classify every failure, so catch them all
        message = first_line(error, limit=200)
        status = "queue_full" if any(word in message.lower() for word in QUEUE_FULL_WORDS) else "failed"
        return Outcome(kind, time.perf_counter() - started, status, detail=message)


def run_sessions(
    url: str, image: Path, sessions: int, requests_each: int, timeout_s: float, deadline_s: float
) -> list[Outcome]:
    """`sessions` threads, each its own gradio_client session, alternating request kinds; all bounded."""
    from gradio_client import Client

    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s

    def session(number: int) -> None:
        client = Client(url, verbose=False)
        endpoint = explain_endpoint(client)
        for index in range(requests_each):
            if time.monotonic() > stop_at:
                return
            kind = list(KINDS)[(number + index) % len(KINDS)]
            remaining = max(1.0, min(timeout_s, stop_at - time.monotonic()))
            outcome = one_request(client, endpoint, image, kind, remaining)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=session, args=(n,), daemon=True) for n in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, stop_at - time.monotonic()) + 5)
    return outcomes


def peak_rss_mb(pid: int | None) -> float | None:
    """The server's peak resident memory (VmHWM), from /proc; psutil is not needed."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def report(outcomes: list[Outcome], alone: dict[str, dict[str, Any]], pid: int | None, wall_s: float) -> dict:
    served = [o for o in outcomes if o.status == "served"]
    latencies = [o.seconds for o in served]
    mismatched = [o.kind for o in served if o.answer != alone[o.kind]]
    return {
        "requests": len(outcomes),
        "served": len(served),
        "queue_full": sum(o.status == "queue_full" for o in outcomes),
        "failed": sum(o.status == "failed" for o in outcomes),
        "failures": sorted({o.detail for o in outcomes if o.status == "failed"})[:5],
        "latency_s": {f"p{q}": round(percentile(latencies, q) or 0.0, 2) for q in (50, 90, 99)},
        "by_kind_p50_s": {
            kind: round(percentile([o.seconds for o in served if o.kind == kind], 50) or 0.0, 2) for kind in KINDS
        },
        "equal_to_alone": len(served) - len(mismatched),
        "differed_from_alone": len(mismatched),
        "server_peak_rss_mb": peak_rss_mb(pid),
        "wall_s": round(wall_s, 1),
    }


def check_loopback(url: str) -> str:
    host = urllib.parse.urlparse(url).hostname
    if host not in (LOOPBACK, "localhost"):
        raise SystemExit(f"refusing {url}: the load test only targets {LOOPBACK}")
    return url if url.endswith("/") else url + "/"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def launch_app(port: int, work: Path) -> subprocess.Popen:
    """`python -m app --weights random` on 127.0.0.1 (no preset download: an empty examples folder)."""
    examples = work / "no-presets"
    examples.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "app", "--weights", "random", "--host", LOOPBACK, "--port", str(port)]
    command += ["--examples-dir", str(examples)]
    log = open(work / "server.log", "wb")  # noqa: SIM115 (closed with the process)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(work)}
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def wait_until_up(url: str, process: subprocess.Popen | None, timeout_s: float) -> None:
    stop_at = time.monotonic() + timeout_s
    while time.monotonic() < stop_at:
        if process is not None and process.poll() is not None:
            raise SystemExit(f"the app exited with code {process.returncode} before it answered")
        try:
            urllib.request.urlopen(url + "config", timeout=5).read()
            return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the app did not answer at {url} within {timeout_s:.0f} s")


def test_image(folder: Path) -> Path:
    """A deterministic, photo-like test image (no download needed)."""
    y, x = np.mgrid[0:300, 0:400] / 300.0
    pixels = np.stack([np.sin(3 * x) * 0.5 + 0.5, y % 1.0, (x * y) % 1.0], axis=2)
    path = folder / "load_test.png"
    Image.fromarray((pixels * 255).astype(np.uint8)).save(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help=f"a running app on {LOOPBACK} (else use --launch)")
    parser.add_argument("--launch", action="store_true", help="start `python -m app --weights random` and stop it")
    parser.add_argument("--server-pid", type=int, default=None, help="the app's process id, for its peak memory")
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3, help="requests per session")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one request may take")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds the whole run may take")
    parser.add_argument("--startup", type=float, default=180.0, help="seconds to wait for the app to answer")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if bool(args.url) == args.launch:
        parser.error("give exactly one of --url and --launch")

    from gradio_client import Client

    work = Path(tempfile.mkdtemp(prefix="xai-lens-load-"))
    process = launch_app(free_port(), work) if args.launch else None
    url = check_loopback(args.url or f"http://{LOOPBACK}:{process.args[process.args.index('--port') + 1]}/")
    pid = process.pid if process else args.server_pid
    try:
        wait_until_up(url, process, args.startup)
        image = test_image(work)
        client = Client(url, verbose=False)
        endpoint = explain_endpoint(client)
        alone = {}
        for kind in KINDS:  # each kind once, alone: the reference for results under load
            outcome = one_request(client, endpoint, image, kind, args.timeout)
            if outcome.status != "served":
                raise SystemExit(f"a single {kind} request failed: {outcome.detail}")
            alone[kind] = outcome.answer
        started = time.perf_counter()
        outcomes = run_sessions(url, image, args.sessions, args.requests, args.timeout, args.deadline)
        figures = report(outcomes, alone, pid, time.perf_counter() - started)
        figures.update(sessions=args.sessions, requests_per_session=args.requests, endpoint=endpoint)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    ok = figures["failed"] == 0 and figures["differed_from_alone"] == 0
    ok = ok and figures["served"] + figures["queue_full"] == args.sessions * args.requests
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
