"""Every named endpoint that takes LIME settings refuses over-cap values in one line (issue #11 item 4, #19).

The app runs on 127.0.0.1 with the public cap (XAI_LENS_LIME_MAX_SAMPLES=2000) set before it is
built; the caps are read when validating, so the same process enforces them. The endpoints are
found through gradio_client's view_api: any endpoint with a LIME setting (a num_samples or a
parameter-file input) must appear in CASES, so a new endpoint cannot skip the caps unnoticed.
Each case is sent with gradio_client, as an API caller would, past every slider.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.lime_form import DEFAULT_REGRESSOR
from app.tab_explain import TOP1
from explainers.inputs.param_file import PRESET_KEYS, default_lime_params

pytestmark = pytest.mark.slow
PUBLIC_CAP = 2000
# Ten presets at the public cap are exactly the default run cap (20000); a lower run cap makes it bind here.
RUN_CAP = 15_000
QUICKSHIFT = '{"kernel_size": 4, "max_dist": 200, "ratio": 0.2}'


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    from app_server import running_app, write_small_tables
    from gradio_client import Client

    with pytest.MonkeyPatch.context() as env:
        env.setenv("XAI_LENS_LIME_MAX_SAMPLES", str(PUBLIC_CAP))
        env.setenv("XAI_LENS_LIME_MAX_REQUEST_SAMPLES", str(RUN_CAP))
        tables = write_small_tables(tmp_path_factory.mktemp("tables"))
        # no preset folder is needed: every case is refused before an image is read
        with running_app(None, tables, tmp_path_factory.mktemp("work")) as url:
            yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("files")


def _params(**changes) -> dict:
    """The defaults with `changes` applied to the kite entry."""
    params = default_lime_params()
    params["kite"] = {**params["kite"], **changes}
    return params


def _every(**changes) -> dict:
    return {key: {**entry, **changes} for key, entry in default_lime_params().items()}


def _pickle_file(folder: Path, name: str, params: dict) -> str:
    path = folder / name
    path.write_bytes(pickle.dumps(params))
    return str(path)


def _explain_args(image: str, samples=40, batch=40, seg_name="quickshift", seg_json=QUICKSHIFT, top_labels=5):
    from gradio_client import handle_file

    lime = [samples, 100_000, top_labels, "0", batch, seg_name, seg_json, "cosine", DEFAULT_REGRESSOR, 0]
    return [handle_file(image), "resnet18", TOP1, ["gradcam", "lime"], [], "top:0.10", *lime]


def _image(folder: Path) -> str:
    import numpy as np
    from PIL import Image

    path = folder / "photo.png"
    if not path.exists():
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(path)
    return str(path)


def _file(path: str):
    from gradio_client import handle_file

    return handle_file(path)


OVER_CAP_JSON = {
    "samples": (_params(num_samples=PUBLIC_CAP + 1), f"from 1 to {PUBLIC_CAP} (this server's cap"),
    "batch size": (_params(batch_size=257), "batch_size must be an integer from 1 to 256"),
    "top_labels": (_params(top_labels=11), "top_labels must be an integer from 1 to 10"),
    "sigma": (_params(segmentation_fn={"name": "felzenszwalb", "sigma": 1e7}), "sigma must be from 0 to 100"),
    "kernel_size": (_params(segmentation_fn={"name": "quickshift", "kernel_size": 50}), "kernel_size must be from"),
    "n_segments": (_params(segmentation_fn={"name": "slic", "n_segments": 5000}), "n_segments must be from 1 to 300"),
    "lasso": (
        _params(model_regressor={"name": "Lasso", "max_iter": 10**7, "tol": 0.0, "alpha": 1e-12}),
        "max_iter must be from 1 to 1000",
    ),
    "samples per run": (_every(num_samples=PUBLIC_CAP), f"ask for {10 * PUBLIC_CAP} samples over the 10 presets"),
}


def _json_cases(endpoint: str, send: Callable) -> list:
    return [(endpoint, name, send(params), expected) for name, (params, expected) in OVER_CAP_JSON.items()]


def _cases(files: Path) -> list[tuple[str, str, Callable, str]]:
    """(endpoint, what is over its cap, call(client) -> answer, text the refusal must contain)."""
    image = _image(files)
    cases = []
    for endpoint in ("/validate_params", "/download_params"):
        cases += _json_cases(endpoint, lambda p, e=endpoint: lambda c: c.predict(json.dumps(p), api_name=e))
    cases += _json_cases(
        "/preview_params", lambda p: lambda c: c.predict("kite", json.dumps(p), "resnet18", api_name="/preview_params")
    )
    for name, (params, expected) in OVER_CAP_JSON.items():
        path = _pickle_file(files, f"{name.replace(' ', '_')}.pkl", params)
        cases.append(
            ("/inspect_params", name, lambda c, p=path: c.predict(_file(p), api_name="/inspect_params"), expected)
        )
        cases.append(
            (
                "/run_presets",
                name,
                lambda c, p=path: c.predict(
                    "resnet18", ["gradcam", "lime"], "top:0.10", _file(p), 0, api_name="/run_presets"
                ),
                expected,
            )
        )
    big = files / "big.pkl"
    big.write_bytes(pickle.dumps({"pad": "x" * (2**20 + 10)}))
    for endpoint, call in (
        ("/inspect_params", lambda c: c.predict(_file(str(big)), api_name="/inspect_params")),
        (
            "/run_presets",
            lambda c: c.predict(
                "resnet18", ["gradcam", "lime"], "top:0.10", _file(str(big)), 0, api_name="/run_presets"
            ),
        ),
    ):
        cases.append((endpoint, "file size", call, "the limit is 1 MB"))
    cases.append(
        (
            "/run_presets",
            "samples slider",
            lambda c: c.predict(
                "resnet18", ["gradcam", "lime"], "top:0.10", None, PUBLIC_CAP + 1, api_name="/run_presets"
            ),
            str(min(PUBLIC_CAP, RUN_CAP // 10)),  # the slider's maximum: a run of ten stays within the run cap
        )
    )
    explain_cases = {
        "samples": (dict(samples=PUBLIC_CAP + 1), str(PUBLIC_CAP)),
        "batch size": (dict(batch=257), "256"),
        "top_labels": (dict(top_labels=11), "10"),
        "sigma": (dict(seg_name="felzenszwalb", seg_json='{"sigma": 30000}'), "sigma must be from 0 to 100"),
        "kernel_size": (dict(seg_json='{"kernel_size": 50}'), "kernel_size must be from 0.1 to 10"),
        "n_segments": (dict(seg_name="slic", seg_json='{"n_segments": 5000}'), "n_segments must be from 1 to 300"),
        "samples as text": (dict(samples="1e9"), ""),
    }
    for name, (changes, expected) in explain_cases.items():
        args = _explain_args(image, **changes)
        cases.append(("/explain", name, lambda c, a=args: c.predict(*a, api_name="/explain"), expected))
    tune_cases = {  # images, model, reference, trials, budget, most samples, reference samples, min IoU, families
        "trials": ((10**6, 60, 100, 100), "Trials per image must be a whole number from 1 to"),
        "budget": ((2, 10**9, 100, 100), "Budget in seconds must be a whole number from 1 to"),
        "samples per trial": ((2, 60, PUBLIC_CAP + 1, 100), "Most num_samples"),
        "reference samples": ((2, 60, 100, PUBLIC_CAP + 1), f"from 1 to {PUBLIC_CAP}"),
    }
    for name, ((trials, budget, most, reference), expected) in tune_cases.items():
        args = (["goldfish"], "resnet18", "converged", trials, budget, most, reference, 0, ["quickshift"])
        cases.append(("/tune_lime", name, lambda c, a=args: c.predict(*a, api_name="/tune_lime"), expected))
    return cases


def _lime_endpoints(client) -> set[str]:
    """Named endpoints with a LIME setting among their inputs."""
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    return {
        name
        for name, endpoint in api.items()
        if any("num_samples" in p["label"] or "parameter" in p["label"].lower() for p in endpoint["parameters"])
    }


def _refusal(call: Callable, client) -> str:
    """The one-line refusal an over-cap call gets (the validator's "Not valid: ..." counts as one)."""
    try:
        answer = call(client)
    except Exception as exc:  # gradio_client raises the server's one-line gr.Error as AppError
        return str(exc)
    assert isinstance(answer, str) and answer.startswith("Not valid: "), f"accepted: {str(answer)[:200]}"
    return answer


def test_every_endpoint_with_lime_settings_is_covered(client, files):
    covered = {endpoint for endpoint, *_ in _cases(files)}
    assert _lime_endpoints(client) == covered


def test_every_endpoint_refuses_over_cap_values_in_one_line(client, files):
    refused = {}
    for endpoint, what, call, expected in _cases(files):
        message = _refusal(call, client)
        assert "\n" not in message.strip() and len(message) < 400, (endpoint, what, message)
        assert "Traceback" not in message, (endpoint, what, message)
        assert expected in message, (endpoint, what, message)
        refused[(endpoint, what)] = message
    assert len(refused) >= 40


def test_the_server_keeps_serving_with_the_caps_in_force(client, files):
    answer = client.predict(json.dumps(_every(num_samples=1400)), api_name="/validate_params")
    assert answer == (
        f"Valid: all ten presets, every setting within this server's caps (num_samples <= {PUBLIC_CAP} per image; "
        f"14000 samples in all, at most {RUN_CAP} per run)."
    )
    path = _pickle_file(files, "at_cap.pkl", _every(num_samples=PUBLIC_CAP // 2))
    text, message = client.predict(_file(path), api_name="/inspect_params")
    assert "valid parameter file" in message and json.loads(text)["kite"]["num_samples"] == PUBLIC_CAP // 2
    assert set(json.loads(text)) == set(PRESET_KEYS)
