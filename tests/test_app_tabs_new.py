"""The LIME tuner, the study summary and the neuron tables' provenance, through gradio_client (random weights).

Each app runs in this process on a free local port (tests/app_server.py), so a test may prepare what the app
finds at start (a study folder, a cached published table) before building it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import urllib.request
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explainers import limits
from explainers.errors import XaiLensError
from explainers.inputs.param_file import PRESET_KEYS, default_lime_params, load_lime_params
from explainers.study.measures import MEASURES

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
def tuner_url(examples_dir, tmp_path_factory):
    from app_server import running_app, write_small_tables

    assert not os.environ.get("XAI_LENS_STUDY_DIR"), "this app is the one without a study"
    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    with running_app(examples_dir, tables, tmp_path_factory.mktemp("work")) as url:
        yield url


@pytest.fixture(scope="module")
def tuner_app(tuner_url):
    return client_for(tuner_url)


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


# --- The agreement study's summary (Ten presets tab) ------------------------------------------------------
STUDY_METHODS = ["gradcam", "lime"]


def write_tiny_study(folder: Path) -> Path:
    """A 12-image study written by the test: two of the ten presets among ten other images, known IoUs.

    report.md comes from the library's own write_study_report over the same table, as a real study's does."""
    pd = pytest.importorskip("pandas")
    from explainers.inputs.presets import PRESETS
    from explainers.study.report import write_study_report

    stems = [Path(preset.filename).stem for preset in PRESETS[:2]]
    ids = [*stems, *(f"other_{index}" for index in range(10))]
    ious = [0.91, 0.07, *np.linspace(0.2, 0.6, 10)]
    table = pd.DataFrame(
        {
            "id": ids,
            "error": [None] * len(ids),
            "true_class": [f"class {index % 4}" for index in range(len(ids))],
            "target_label": ["x"] * len(ids),
            "iou__gradcam__lime": ious,
            "seconds__gradcam": 0.1,
            "seconds__lime": 2.0,
            **{measure: np.linspace(0, 1, len(ids)) for measure in MEASURES},
        }
    )
    folder.mkdir(parents=True)
    table.to_parquet(folder / "results.parquet")
    (folder / "study.json").write_text(json.dumps({"methods": STUDY_METHODS, "model": "resnet18"}))
    write_study_report(table, STUDY_METHODS, folder, model="resnet18", weights="random")
    return folder


@pytest.fixture(scope="module")
def study_app(tmp_path_factory):
    pytest.importorskip("pyarrow", reason="the study summary reads Parquet: pip install .[scale]")
    from app_server import running_app, write_small_tables

    study = write_tiny_study(tmp_path_factory.mktemp("study") / "study")
    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    with pytest.MonkeyPatch.context() as patch, ExitStack() as stack:
        patch.setenv("XAI_LENS_STUDY_DIR", str(study))  # read only while the app is built
        url = stack.enter_context(running_app(None, tables, tmp_path_factory.mktemp("work")))
        patch.undo()
        yield client_for(url)


def test_the_study_summary_marks_where_the_presets_stand(study_app):
    from explainers.inputs.presets import PRESETS

    client = study_app
    headline, figure, report = client.predict(api_name="/study_summary")
    assert "12 images, 12 explained; 2 of the ten presets are among them" in headline, headline
    picture = np.asarray(Image.open(figure["path"] if isinstance(figure, dict) else figure).convert("RGB"))
    red = (picture[..., 0] > 180) & (picture[..., 1] < 80) & (picture[..., 2] < 80)
    assert red.sum() > 20  # the presets marked in red on the library's distribution figure
    first, second = PRESETS[0].key, PRESETS[1].key
    assert f"| {first} | 0.910 | 100 |" in report and f"| {second} | 0.070 | 8 |" in report, report
    assert "Do CAM and LIME agree" in report


def test_without_pyarrow_the_study_summary_is_one_line(tmp_path, monkeypatch):
    import importlib.util

    from app.panel_study import load_summary

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *rest: None if name == "pyarrow" else real(name, *rest)
    )
    with pytest.raises(XaiLensError) as raised:
        load_summary(tmp_path)
    assert str(raised.value) == str(raised.value).splitlines()[0]
    assert "pyarrow" in str(raised.value) and "pip install .[scale]" in str(raised.value)


def test_without_a_study_the_tab_shows_the_command_over_imagenet1000(tuner_url):
    from app.panel_study import STUDY_COMMAND

    config = urllib.request.urlopen(tuner_url + "config", timeout=30).read().decode()
    assert "python -m explainers study imagenet1000" in STUDY_COMMAND
    assert json.dumps(STUDY_COMMAND)[1:-1] in config


# --- Neuron concepts tab: each table's provenance, demo tables only alone, cached published tables --------------
PUBLISHED_MODEL = "resnet18-places365"


def write_demo_table(root: Path) -> Path:
    from dissection_data.labels import NeuronLabel
    from dissection_data.tables import write_table

    rows = [NeuronLabel("layer4", unit, ("noise", "grass", "road"), (0.5, 0.4, 0.3), ()) for unit in range(3)]
    write_table(root / "demo" / "resnet18", "resnet18", rows, {"model": "resnet18", "demo": True}, {})
    return root


def cache_published_csv(folder: Path, monkeypatch) -> None:
    """A CSV in CLIP-dissect's published layout, in the cache, with its pin set to this file's own sha256."""
    from explainers.concepts import published

    spec = published.PUBLISHED_TABLES[PUBLISHED_MODEL]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / spec.file
    path.write_text("layer,unit,description,similarity\nlayer4,0,kitchen,0.31\nlayer4,1,tower,0.27\n")
    monkeypatch.setenv(published.CACHE_ENV, str(folder))
    pinned = replace(spec, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setitem(published.PUBLISHED_TABLES, PUBLISHED_MODEL, pinned)


@contextmanager
def neurons_app(tables: Path, work: Path, published_cache: Path | None = None):
    """The app built over `tables` (and a cached published table when asked), with its /config as JSON."""
    from app_server import running_app

    with pytest.MonkeyPatch.context() as patch, ExitStack() as stack:
        patch.setenv("XAI_LENS_PUBLISHED_CACHE", str(work / "empty-cache"))  # never the real cache
        if published_cache is not None:
            cache_published_csv(published_cache, patch)
        url = stack.enter_context(running_app(None, tables, work))
        config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
        yield client_for(url), config


def table_choices(config: dict) -> list[str]:
    for component in config["components"]:
        props = component.get("props", {})
        if props.get("label") == "Table (model)":
            return [str(choice[1]) for choice in props["choices"]]
    raise AssertionError("no table dropdown")


def test_built_and_published_tables_show_their_provenance_and_hide_the_demo(tmp_path):
    from app_server import write_small_tables

    tables = write_demo_table(write_small_tables(tmp_path / "tables"))
    with neurons_app(tables, tmp_path / "work", published_cache=tmp_path / "cache") as (client, config):
        choices = table_choices(config)
        assert "demo/resnet18" not in choices  # a real table is there, so the demo is not served
        assert {"resnet18", "resnet18-places365", f"published/{PUBLISHED_MODEL}"} <= set(choices), choices
        built = client.predict("resnet18", api_name="/neurons_table")[0]
        assert built.startswith("Built by XAI Lens with CLIP-dissect's method"), built
        published = client.predict(f"published/{PUBLISHED_MODEL}", api_name="/neurons_table")[0]
        assert published.startswith("Published by CLIP-dissect's authors"), published
        assert "Demo table" not in built + published


def test_a_published_table_not_in_the_cache_is_not_listed_and_not_fetched(tmp_path):
    from app_server import write_small_tables

    with neurons_app(write_small_tables(tmp_path / "tables"), tmp_path / "work") as (_client, config):
        assert not [choice for choice in table_choices(config) if choice.startswith("published/")]
    assert not (tmp_path / "work" / "empty-cache").exists()  # nothing was downloaded into the cache


def test_a_demo_table_alone_is_shown_and_says_it_is_a_demo(tmp_path):
    tables = write_demo_table(tmp_path / "tables")
    with neurons_app(tables, tmp_path / "work") as (client, config):
        assert table_choices(config) == ["demo/resnet18"]
        header = client.predict("demo/resnet18", api_name="/neurons_table")[0]
        assert header.startswith("**Demo table: random model weights and a random CLIP"), header
        assert "python -m tools.deploy --space OWNER/NAME --build-tables" in header


def test_the_unit_map_needs_an_explanation_of_the_same_model(tmp_path):
    from app_server import write_small_tables

    from app.panel_concepts import LastExplanation
    from app.tab_neurons import NO_EXPLANATION, unit_on_last_image
    from dissection_data.tables import load_tables

    table = {t.key: t for t in load_tables(write_small_tables(tmp_path))}["resnet18"]
    activations = np.zeros((3, 7, 7), np.float32)
    activations[1, :3, :3] = 1.0  # unit 1 fires in the top-left corner only
    crop = np.full((224, 224, 3), 128, np.uint8)
    explained = LastExplanation("resnet18", "layer4", crop, activations, "goldfish", (1, 0), "resnet18")
    assert unit_on_last_image(table, "layer4", 1, None) == (None, NO_EXPLANATION)
    picture, note = unit_on_last_image(table, "layer4", 1, explained)
    assert np.array_equal(picture, explained.unit_overlay("layer4", 1)) and "layer4 unit 1" in note
    corner, far = picture[10:50, 10:50].astype(int).mean(axis=(0, 1)), picture[180:, 180:].astype(int).mean(axis=(0, 1))
    assert np.abs(corner - far).sum() > 30  # the overlay marks the corner where unit 1 fired, not the rest
    silent = unit_on_last_image(table, "layer4", 0, explained)[0]  # unit 0 never fired: one colour throughout
    assert np.array_equal(silent[10:50, 10:50].mean(axis=(0, 1)), silent[180:, 180:].mean(axis=(0, 1)))
    other = LastExplanation("resnet50", "layer4", crop, activations, "goldfish", (1,), None)
    assert unit_on_last_image(table, "layer4", 1, other)[0] is None
