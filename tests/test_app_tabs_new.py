"""The LIME tuner, the study summary and the neuron tables' provenance, through gradio_client (random weights).

Each app runs in this process on a free local port (tests/app_server.py), so a test may prepare what the app
finds at start (a study folder, a cached published table) before building it.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from explainers import limits
from explainers.inputs.param_file import PRESET_KEYS, default_lime_params, load_lime_params

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def client_for(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def one_line_refusal(call) -> str:
    """The message of the app's refusal; it must be one line."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message
    return message


@pytest.fixture(scope="module")
def tuner_app(examples_dir, tmp_path_factory):
    from app_server import running_app, write_small_tables

    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    with running_app(examples_dir, tables, tmp_path_factory.mktemp("work")) as url:
        yield client_for(url)


def tune(client, *, images=("goldfish",), trials=2, budget_s=200, max_samples=50, reference_samples=60):
    """One tuning run with tiny settings: few samples per trial and a small converged reference."""
    return client.predict(
        list(images),
        "resnet18",
        "converged",
        trials,
        budget_s,
        max_samples,
        reference_samples,
        0,
        ["quickshift"],
        api_name="/tune_lime",
    )


def test_the_tuner_returns_a_front_and_a_parameter_file_that_passes_params_check(tuner_app, tmp_path):
    key = PRESET_KEYS[0]
    status, pareto, summary, files, editor = tune(tuner_app, images=(key,))
    assert status.startswith("**Done**"), status
    by_name = {Path(item).name: Path(item) for item in files}
    assert {"explain_params.pkl", "pareto.csv", "summary.md", "pareto.png"} <= set(by_name)
    assert Path(pareto).stat().st_size > 0
    front = by_name["pareto.csv"].read_text().splitlines()
    assert front[0].startswith("image,trial,iou,seconds,stability,params")
    assert 1 <= len(front) - 1 <= 2 and all(row.startswith(f"{key},") for row in front[1:])  # 2 trials: 1-2 on it
    checked = subprocess.run(
        [sys.executable, "-m", "explainers", "params", "check", str(by_name["explain_params.pkl"])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr
    with open(by_name["explain_params.pkl"], "rb") as handle:
        saved = pickle.load(handle)
    assert list(saved) == list(PRESET_KEYS)
    assert saved[key]["num_samples"] <= 50  # the tiny search space, not the defaults
    assert saved[key] != default_lime_params()[key]
    # The editor now holds what 'Make explain_params.pkl' exports: the file's entries, read back as plain data.
    assert load_lime_params(editor.encode()) == load_lime_params(by_name["explain_params.pkl"])
    assert f"| {key} |" in summary


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            {"trials": limits.MAX_TUNING_TRIALS + 1},
            f"Trials per image must be a whole number from 1 to {limits.MAX_TUNING_TRIALS}",
        ),
        (
            {"budget_s": limits.MAX_TUNING_BUDGET_S + 1},
            f"Budget in seconds must be a whole number from 1 to {limits.MAX_TUNING_BUDGET_S}",
        ),
        ({"budget_s": 0}, "Budget in seconds must be a whole number"),
    ],
)
def test_over_cap_trials_and_budget_are_refused_in_one_line(tuner_app, options, expected):
    message = one_line_refusal(lambda: tune(tuner_app, **options))
    assert expected in message, message


def test_a_public_demo_lowers_the_trials_and_budget_caps(tuner_app, monkeypatch):
    from app import panel_tuner, settings

    monkeypatch.setattr(settings, "ON_SPACES", True)  # read per call: the app in this process sees it at once
    message = one_line_refusal(lambda: tune(tuner_app, trials=panel_tuner.PUBLIC_MAX_TRIALS + 1))
    assert f"from 1 to {panel_tuner.PUBLIC_MAX_TRIALS} (this public demo's cap)" in message, message
    message = one_line_refusal(lambda: tune(tuner_app, budget_s=panel_tuner.PUBLIC_MAX_BUDGET_S + 1))
    assert f"from 1 to {panel_tuner.PUBLIC_MAX_BUDGET_S} (this public demo's cap" in message, message
