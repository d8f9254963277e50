"""The app through gradio_client, launched on 127.0.0.1 with random weights (ResNet18, few LIME samples)."""

from __future__ import annotations

import csv
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.lime_form import DEFAULT_REGRESSOR
from app.tab_explain import TOP1
from explainers.inputs.lime_kwargs import MAX_SAMPLES
from explainers.inputs.param_file import default_lime_params, load_lime_params

pytestmark = pytest.mark.slow
SEGMENTATION = '{"kernel_size": 4, "max_dist": 200, "ratio": 0.2}'


def lime_values(samples: int = 40) -> list:
    """The LIME form in the order LimeForm uses: few samples keep the test fast."""
    return [samples, 100_000, 5, "0", 40, "quickshift", SEGMENTATION, "cosine", DEFAULT_REGRESSOR, 0]


@pytest.fixture(scope="module")
def app_url(examples_dir, tmp_path_factory):
    from app_server import running_app, write_small_tables

    tables = write_small_tables(tmp_path_factory.mktemp("tables"))
    with running_app(examples_dir, tables, tmp_path_factory.mktemp("work")) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def explain(client, image_path, methods, extras=(), target=TOP1, rule="top:0.10"):
    from gradio_client import handle_file

    return client.predict(
        handle_file(str(image_path)),
        "resnet18",
        target,
        list(methods),
        list(extras),
        rule,
        *lime_values(),
        api_name="/explain",
    )[:9]  # the map outputs; the two panels' outputs follow them (tests/test_app_panels.py)


def test_endpoints_and_random_banner(client, app_url):
    names = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/explain", "/run_presets", "/download_params", "/inspect_params"} <= set(names)
    config = urllib.request.urlopen(app_url + "config", timeout=30).read().decode()
    assert "RANDOM WEIGHTS" in config


def test_explain_preset(client, examples_dir):
    status, predictions, overlays, masks, iou, superpixels, summary, _, side_by_side = explain(
        client, examples_dir / "n01443537_goldfish.JPEG", ["gradcam", "ablationcam", "lime"]
    )
    assert [o["caption"].split(" for ")[0] for o in overlays] == ["Grad-CAM", "Ablation-CAM", "LIME"]
    assert all("224x224 crop" in o["caption"] for o in overlays)
    assert len(masks) == 3 and Path(overlays[0]["image"]).is_file()
    assert np.asarray(Image.open(iou)).shape[0] > 100  # the rendered heatmap
    assert superpixels and Path(superpixels).is_file()
    assert len(predictions["confidences"]) == 5
    assert summary["weights"] == "random" and summary["model"] == "resnet18"
    assert summary["target"]["index"] == summary["top5"][0]["index"]
    assert set(summary["iou"]) == {"gradcam|ablationcam", "gradcam|lime", "ablationcam|lime"}
    assert summary["params"]["lime"]["num_samples"] == 40
    assert "Done" in status
    picture = np.asarray(Image.open(side_by_side))
    assert picture.shape[1] > picture.shape[0] * 1.5  # four columns (crop + three methods) over two rows


def test_explain_uploaded_file_with_chosen_target(client, tmp_path):
    rng = np.random.default_rng(3)
    upload = tmp_path / "my photo.png"
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(upload)
    *_, overlays, _masks, _iou, superpixels, summary, _, _side_by_side = explain(
        client, upload, ["gradcam"], extras=["eigencam"], target="1: goldfish"
    )
    assert summary["target"]["index"] == 1 and summary["target"]["label"] == "goldfish"
    assert len(overlays) == 2 and superpixels is None
    assert list(summary["iou"]) == ["gradcam|eigencam"]


def test_explain_without_methods_is_a_one_line_error(client, examples_dir):
    with pytest.raises(Exception, match="at least one method"):
        explain(client, examples_dir / "n07747607_orange.JPEG", [])


def test_presets_tab(client):
    _status, answer, bars, table, grid, files = client.predict(
        "resnet18", ["gradcam", "eigencam"], "top:0.10", None, 0, api_name="/run_presets"
    )
    names = {Path(f).name for f in files}
    assert {"iou.csv", "iou_bar.png", "overlays_grid.png", "report.md", "xai_lens_presets.zip"} <= names
    rows = list(csv.DictReader(Path(next(f for f in files if f.endswith("iou.csv"))).read_text().splitlines()))
    assert len(rows) == 10 and {r["method_a"] + "|" + r["method_b"] for r in rows} == {"gradcam|eigencam"}
    assert "goldfish" in answer and "kite" in answer and "Random weights" in answer
    assert table.count("\n") >= 11 and Path(bars).is_file() and Path(grid).is_file()


def test_parameter_file_downloads_and_round_trips(client):
    from gradio_client import handle_file

    params = default_lime_params()
    params["kite"]["num_samples"] = 321
    path = client.predict(json.dumps(params), api_name="/download_params")
    assert Path(path).name == "explain_params.pkl"
    loaded = load_lime_params(Path(path))
    assert loaded["kite"]["num_samples"] == 321 and loaded == load_lime_params(json.dumps(params).encode())
    text, message = client.predict(handle_file(path), api_name="/inspect_params")
    assert "valid parameter file" in message
    assert json.loads(text) == json.loads(json.dumps(loaded))


def test_parameter_bounds_are_enforced(client):
    params = default_lime_params()
    params["orange"]["num_samples"] = MAX_SAMPLES + 1
    assert client.predict(json.dumps(params), api_name="/validate_params").startswith("Not valid")
    assert client.predict(json.dumps(default_lime_params()), api_name="/validate_params").startswith("Valid")


def test_neuron_search_filters_table_and_histogram(client):
    records, histogram = client.predict("resnet18", "all layers", "water", api_name="/neurons_filter")
    assert [row[3] for row in records["data"]] == ["water", "water"]
    assert Path(histogram).is_file()
    thumbs = client.predict("resnet18", "layer4", 1, api_name="/neuron_images")
    assert len(thumbs) == 1 and "resnet18-layer4-1" in thumbs[0]["caption"]


def test_out_of_range_unit_names_the_valid_range(client):
    with pytest.raises(Exception, match="Unit 99 is not in layer4: choose a unit from 0 to 2"):
        client.predict("resnet18", "layer4", 99, api_name="/neuron_images")
