"""ZeroGPU, emulated: `python space_app.py` with the real `spaces` package in ZeroGPU mode.

The app runs as a Space runs it (SPACES_ZERO_GPU=true), against a fake of the device API served here
(tests/zerogpu_fake.py). spaces then emulates CUDA in the server's main thread, packs what sits on `cuda`
at launch, and forks a worker per GPU lease that receives each request's arguments by pickle.

On a machine without CUDA the worker stops where it needs a driver: spaces' worker reads its pickled
arguments, calls /allow, then starts CUDA (`torch.init`), which fails. Everything up to there is checked.
With CUDA, the fake API hands out the GPU's real UUID and the full path runs, and its answers are
compared with a plain (not ZeroGPU) server's.
"""

from __future__ import annotations

import csv
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from app_server import free_port, stop, wait_until_answering
from PIL import Image
from zerogpu_fake import FAKE_UUID, FakeDeviceApi

ROOT = Path(__file__).resolve().parent.parent
GOLDFISH = "n01443537_goldfish.JPEG"
CORE = ["gradcam", "scorecam", "ablationcam", "lime"]
NO_DRIVER = "Found no NVIDIA driver"
START_TIMEOUT_S = 300  # two cores, three models built and packed before the port opens
CALL_TIMEOUT_S = 300
HAS_CUDA = torch.cuda.is_available()  # in this test process only; the server decides for itself
CPU_REASON = (
    "no CUDA here: the forked ZeroGPU worker stops at spaces' torch.init ('Found no NVIDIA driver'), "
    "so explain and presets cannot answer; startup, /schedule, /allow from the forked worker (which has "
    "read the pickled arguments by then) and /release are checked in the other tests of this file"
)


# --- the duration callable and what crosses the boundary (fast, in-process) ---


def test_durations_grow_with_the_request_and_stay_capped():
    from app import settings
    from app.gpu import WORKER_START_S, explain_seconds, presets_seconds
    from explainers.inputs.param_file import default_lime_params

    def explain(methods, model="resnet50", samples=1000):
        return explain_seconds({"methods": methods, "model_name": model, "lime_params": {"num_samples": samples}})

    assert WORKER_START_S < explain(["gradcam"]) < explain(["gradcam", "scorecam"]) < explain(CORE)
    assert explain(["lime"], samples=500) < explain(["lime"], samples=5000)
    assert explain(["scorecam"], "resnet18") < explain(["scorecam"], "resnet50")
    assert explain(["gradcam"], samples=10**9) == explain(["gradcam"])  # samples count only for LIME
    assert explain(CORE, samples=10**9) == settings.GPU_SECONDS_EXPLAIN
    assert explain(["gradcam"], "no-such-model") >= explain(["gradcam"])  # refused in the worker, not here

    params = default_lime_params()
    few = {key: {**entry, "num_samples": 100} for key, entry in params.items()}

    def presets(methods, lime_params):
        return presets_seconds({"methods": methods, "model_name": "resnet18", "lime_params": lime_params})

    assert explain(["gradcam", "lime"], "resnet18") < presets(["gradcam", "lime"], params)  # ten images
    assert presets(["gradcam", "lime"], few) < presets(["gradcam", "lime"], params)
    many = {key: {**entry, "num_samples": 10**6} for key, entry in params.items()}
    assert presets(["gradcam", "lime"], many) == settings.GPU_SECONDS_PRESETS


def test_duration_callable_reads_the_decorated_functions_arguments(monkeypatch):
    import spaces

    import app.gpu as gpu

    seen = {}

    def fake_gpu(duration):
        seen["duration"] = duration
        return lambda function: function

    monkeypatch.setattr(gpu, "spaces", spaces)
    monkeypatch.setattr(spaces, "GPU", fake_gpu)

    def task(a, b, c=3):
        return a + b + c

    assert gpu.gpu(lambda arguments: arguments["a"] * 100 + arguments["c"])(task)(1, 2) == 6
    assert seen["duration"](1, b=2) == 103 and seen["duration"](5, 2, c=9) == 509


def test_off_zerogpu_the_decorator_changes_nothing():
    """A laptop or a dedicated GPU Space: spaces is installed but SPACES_ZERO_GPU is not set."""
    from app.gpu import explain_seconds, gpu, zero_gpu

    def task(x):
        return x + 1

    assert not zero_gpu()
    assert gpu(explain_seconds)(task) is task and gpu(60)(task) is task


def recording(calls: list):
    """A stand-in for a decorated function that pickles its arguments, as ZeroGPU's queue does."""

    def task(*args, **kwargs):
        calls.append(pickle.loads(pickle.dumps((args, kwargs))))
        return iter(())

    return task


@pytest.mark.parametrize("on_zerogpu", [True, False])
def test_callbacks_cross_only_where_nothing_is_pickled(monkeypatch, on_zerogpu):
    import app.compute as compute

    calls: list = []
    monkeypatch.setattr(compute, "zero_gpu", lambda: on_zerogpu)
    monkeypatch.setattr(compute, "explain_on_gpu", recording(calls) if on_zerogpu else _keeping(calls))
    progress = lambda done, total: None  # noqa: E731 (a closure, as the tabs pass)
    request = compute.ExplainRequest("x.png", "resnet18", "random", ("gradcam",), None, {}, "top:0.10")
    list(compute.explain_views(request, progress, compute.CancelToken()))
    ((args, kwargs),) = calls
    assert (kwargs["lime_progress"] is None) == on_zerogpu and (kwargs["cancel"] is None) == on_zerogpu
    assert args[0].methods == ["gradcam"]


def _keeping(calls: list):
    def task(*args, **kwargs):
        calls.append((args, kwargs))
        return iter(())

    return task


def test_a_refusal_in_the_worker_comes_back_as_its_one_line(tmp_path):
    """spaces would print a traceback and show only 'XaiLensError'; the worker sends the message as data."""
    from app.compute import ExplainRequest, PresetsRequest, Refusal, explain_on_gpu, explain_views, presets_on_gpu
    from explainers.errors import XaiLensError

    missing = ExplainRequest(str(tmp_path / "missing.png"), "resnet18", "random", ["gradcam"], None, {}, "top:0.10")
    (refusal,) = list(explain_on_gpu(missing))
    assert isinstance(refusal, Refusal) and pickle.loads(pickle.dumps(refusal)).message == refusal.message
    with pytest.raises(XaiLensError) as raised:
        list(explain_views(missing))
    assert str(raised.value) == refusal.message and "\n" not in refusal.message
    report = PresetsRequest("no-such-model", "random", ["gradcam", "eigencam"], {}, "top:0.10", str(tmp_path))
    refused = presets_on_gpu(report)
    assert isinstance(refused, Refusal) and "no-such-model" in refused.message


def test_lime_settings_from_the_form_pickle():
    """Every segmentation and regressor choice the form offers reaches the worker intact."""
    from app.lime_form import DEFAULT_REGRESSOR, LimeForm
    from explainers.inputs.safe_pickle import REGRESSOR_CLASSES, SEGMENTATION_FUNCTIONS

    for segmentation in SEGMENTATION_FUNCTIONS:
        for regressor in [DEFAULT_REGRESSOR, *REGRESSOR_CLASSES]:
            kwargs = LimeForm.to_kwargs(500, 100, 5, "none", 50, segmentation, "{}", "cosine", regressor, 0)
            assert pickle.loads(pickle.dumps(kwargs)).keys() == kwargs.keys()


def test_missing_weights_at_start_say_so_in_one_line(monkeypatch, caplog, tmp_path):
    import app.__main__ as main_module
    import app.gpu

    missing = str(tmp_path / "none.pth")
    with caplog.at_level("WARNING", logger="xai_lens.app"):
        assert main_module.prepare_models(missing) == []
    (record,) = caplog.records
    from app.defaults import device_defaults  # off ZeroGPU only this device's default model loads at start

    assert device_defaults().model in record.getMessage() and "none.pth" in record.getMessage()
    assert record.exc_info is None and "\n" not in record.getMessage()

    caplog.clear()
    monkeypatch.setattr(app.gpu, "zero_gpu", lambda: True)  # on ZeroGPU every served model loads at start
    with caplog.at_level("WARNING", logger="xai_lens.app"):
        assert main_module.prepare_models(missing) == []
    from explainers.engine.models import MODEL_SPECS

    assert [r.getMessage().split()[3] for r in caplog.records] == list(MODEL_SPECS)


# --- the real server in ZeroGPU mode (slow) ---


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log: Path
    startup_log: str

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def gpu_uuid() -> str:
    """The first GPU's UUID as `nvidia-smi -L` prints it (what ZeroGPU's device API hands out)."""
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=True).stdout
    return re.search(r"UUID: (GPU-[0-9a-fA-F-]+)", listing).group(1)


def descendants(pid: int) -> list[int]:
    """Processes started by `pid` and theirs (ZeroGPU's forked workers), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@contextmanager
def serving(extra_env: Mapping[str, str], log: Path, examples_dir: Path) -> Iterator[Server]:
    """`python space_app.py` (random weights) until the port opens; stopped, with its workers, afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "XAI_LENS_WEIGHTS": "random",
        "XAI_LENS_EXAMPLES_DIR": str(examples_dir),
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "space_app.py"], cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        wait_until_answering(
            process, lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close(), START_TIMEOUT_S, log
        )
        yield Server(process, f"http://127.0.0.1:{port}/", log, log.read_text(errors="replace"))
    finally:
        for pid in descendants(process.pid):
            os.kill(pid, signal.SIGKILL)
        stop(process)


@dataclass
class ZeroGpuApp:
    server: Server
    api: FakeDeviceApi
    client: Any
    cgroup: str


@pytest.fixture(scope="module")
def zerogpu(examples_dir, tmp_path_factory) -> Iterator[ZeroGpuApp]:
    from gradio_client import Client

    work = tmp_path_factory.mktemp("zerogpu")
    cgroup = "/xai-lens-test/devices"
    (work / "cgroup").write_text(f"1:devices:{cgroup}\n")
    api = FakeDeviceApi(nvidia_uuid=gpu_uuid() if HAS_CUDA else FAKE_UUID)
    env = {
        "SPACES_ZERO_GPU": "true",
        "SPACES_ZERO_DEVICE_API_URL": api.start(),
        "ZEROGPU_OFFLOAD_DIR": str(work / "offload"),  # where spaces packs the models at launch
        "ZEROGPU_PROC_SELF_CGROUP_PATH": str(work / "cgroup"),
    }
    try:
        with serving(env, work / "server.log", examples_dir) as server:
            yield ZeroGpuApp(server, api, Client(server.url, verbose=False), cgroup)
    finally:
        api.stop()


def endpoint_args(client, api_name: str, **by_label: Any) -> list:
    """The endpoint's arguments: its defaults, with those whose label starts with a key (or whose component
    is the key, e.g. Image) replaced. Found through gradio_client, so the test follows the tabs' signatures.
    """
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]

    def matches(param: dict, key: str) -> bool:
        return param["label"].startswith(key) or param["component"] == key

    values = []
    for param in params:
        hits = [key for key in by_label if matches(param, key)]
        assert len(hits) <= 1, f"{api_name}: {param['label']!r} matches {hits}"
        values.append(by_label[hits[0]] if hits else param.get("parameter_default"))
    for key in by_label:
        assert sum(matches(p, key) for p in params) == 1, f"{api_name}: not one parameter is {key}..."
    return values


def call(client, api_name: str, args: list) -> tuple[list, str | None]:
    """Every streamed output and the error message (None when it answered), within CALL_TIMEOUT_S."""
    from gradio_client.exceptions import AppError

    job = client.submit(*args, api_name=api_name)
    try:
        job.result(timeout=CALL_TIMEOUT_S)
    except AppError as exc:
        return job.outputs(), str(exc)
    return job.outputs(), None


def explain_args(client, examples_dir: Path, model: str, methods: list[str], samples: int = 1000) -> list:
    from gradio_client import handle_file

    image = handle_file(str(examples_dir / GOLDFISH))
    return endpoint_args(
        client, "/explain", Image=image, Model=model, Methods=methods, **{"Extra methods": [], "num_samples": samples}
    )


def presets_args(client, model: str, methods: list[str]) -> list:
    return endpoint_args(client, "/run_presets", Model=model, Methods=methods)


@pytest.mark.slow
def test_startup_makes_the_report_and_logs_no_traceback(zerogpu):
    assert zerogpu.api.routes()[:1] == ["/startup-report"]
    assert zerogpu.api.routes().count("/startup-report") == 1
    assert "Traceback" not in zerogpu.server.startup_log
    assert "Running on local URL" in zerogpu.server.startup_log
    # spaces packs only what sits on (emulated) cuda at launch: the models placed there in the main thread
    assert "ZeroGPU tensors packing" in zerogpu.server.startup_log


@pytest.mark.slow
def test_explain_and_presets_cross_the_fork_through_the_device_api(zerogpu, examples_dir):
    """Each request: /schedule for as long as its arguments need, /allow from a forked child, /release."""
    from app import settings
    from app.gpu import explain_seconds

    client, api = zerogpu.client, zerogpu.api
    requests = {
        "light": ("/explain", explain_args(client, examples_dir, "resnet18", ["gradcam"])),
        "heavy": ("/explain", explain_args(client, examples_dir, "resnet50", CORE, samples=2000)),
        "presets": ("/run_presets", presets_args(client, "resnet18", ["gradcam", "ablationcam"])),
    }
    seen, answers = {}, {}
    for name, (api_name, args) in requests.items():
        before = len(api.calls)
        answers[name] = call(client, api_name, args)
        seen[name] = api.calls[before:]
        assert [c.route for c in seen[name]] == ["/schedule", "/allow", "/release"], (name, answers[name][1])

    for name, (schedule, allow, release) in seen.items():
        assert schedule.params["cgroupPath"] == zerogpu.cgroup
        assert allow.params["allowToken"] == release.params["allowToken"] == schedule.allow_token
        assert int(allow.params["pid"]) != zerogpu.server.process.pid
        assert allow.parent_pid == zerogpu.server.process.pid, name  # the worker is the server's fork
        assert release.params["fail"] == ("false" if HAS_CUDA else "true"), (name, answers[name][1])

    seconds = {name: int(calls[0].params["durationSeconds"]) for name, calls in seen.items()}
    assert seconds["light"] < seconds["heavy"] <= settings.GPU_SECONDS_EXPLAIN
    assert seconds["light"] < seconds["presets"] <= settings.GPU_SECONDS_PRESETS
    heavy = {"methods": CORE, "model_name": "resnet50", "lime_params": {"num_samples": 2000}}
    assert seconds["heavy"] == explain_seconds(heavy)  # the dynamic duration saw this request's values

    if not HAS_CUDA:
        assert all(error == "RuntimeError" for _, error in answers.values()), answers
        log = zerogpu.server.log_text()
        assert log.count(NO_DRIVER) == len(requests)  # each worker got as far as starting CUDA
        assert "torch.init(nvidia_uuid)" in log and "PicklingError" not in log
        return  # the answers themselves: test_zerogpu_answers_equal_a_plain_servers, skipped here
    for name, (_, error) in answers.items():
        assert error is None, (name, error)
    assert len(answers["heavy"][0]) >= 2  # streamed through spaces' generator wrapper: maps before the last


def overlay_arrays(output: tuple) -> dict[str, np.ndarray]:
    overlays = output[2]
    return {o["caption"].split(" for ")[0]: np.asarray(Image.open(o["image"]), dtype=np.int16) for o in overlays}


def iou_from_csv(files: list) -> dict[str, float]:
    """iou.csv of a presets answer: (image|method_a|method_b) -> IoU."""
    path = next(str(f) for f in files if str(f).endswith(".csv"))
    with open(path, newline="") as handle:
        return {f"{r['image']}|{r['method_a']}|{r['method_b']}": float(r["iou"]) for r in csv.DictReader(handle)}


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CUDA, reason=CPU_REASON)
def test_zerogpu_answers_equal_a_plain_servers(zerogpu, examples_dir, tmp_path):
    """Explain and presets through ZeroGPU's worker give the maps a plain server gives, on the same GPU."""
    from gradio_client import Client

    assert shutil.which("nvidia-smi")
    with serving({}, tmp_path / "plain.log", examples_dir) as plain_server:
        plain = Client(plain_server.url, verbose=False)
        answers = {}
        for name, client in (("zero", zerogpu.client), ("plain", plain)):
            request = explain_args(client, examples_dir, "resnet18", CORE, samples=200)
            explained, error = call(client, "/explain", request)
            assert error is None, (name, error)
            presets, error = call(client, "/run_presets", presets_args(client, "resnet18", ["gradcam", "scorecam"]))
            assert error is None, (name, error)
            answers[name] = explained[-1], presets[-1]
    (zero_explained, zero_presets), (plain_explained, plain_presets) = answers["zero"], answers["plain"]
    zero_maps, plain_maps = overlay_arrays(zero_explained), overlay_arrays(plain_explained)
    assert zero_maps.keys() == plain_maps.keys() and len(zero_maps) == len(CORE)
    for method, picture in zero_maps.items():
        assert np.abs(picture - plain_maps[method]).max() <= 2, method  # same GPU, float32: rounding at most
    zero_iou, plain_iou = zero_explained[6]["iou"], plain_explained[6]["iou"]
    assert zero_iou.keys() == plain_iou.keys()
    assert all(abs(zero_iou[k] - plain_iou[k]) < 0.02 for k in zero_iou)
    zero_table, plain_table = iou_from_csv(zero_presets[-1]), iou_from_csv(plain_presets[-1])
    assert zero_table and zero_table.keys() == plain_table.keys()
    assert all(abs(zero_table[k] - plain_table[k]) < 0.02 for k in zero_table)
