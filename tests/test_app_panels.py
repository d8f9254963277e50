"""The Explain tab's two panels through gradio_client (ResNet18, random weights, Grad-CAM and Ablation-CAM).

"Which explanation to trust" must return exactly what explainers.faithfulness gives on the same maps, cost no
model pass when it is off, and state its cost truthfully when on; "Why, in concepts" must return exactly what
explainers.concepts.attribute_concepts gives on the same crop. The server runs in this process, so the test
counts the model's forward passes with hooks on the very model the app uses.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app.tab_explain import TOP1

pytestmark = pytest.mark.slow
METHODS = ["gradcam", "ablationcam"]
STEPS = 5
OUTPUTS = 9  # the map outputs come first; the panels follow in this order:
CONCEPTS_HEADER, CONCEPTS_CHART, CONCEPTS_STRIP, CONCEPTS_SUMMARY, CONCEPTS_JSON = range(OUTPUTS, OUTPUTS + 5)
TRUST_TEXT, TRUST_TABLE, TRUST_CURVES, TRUST_STRIPS = range(OUTPUTS + 5, OUTPUTS + 9)


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    """A drawn picture (sky, an orange disc, grass), so the maps have structure to rank."""
    image = Image.new("RGB", (320, 300), (90, 150, 210))
    draw = ImageDraw.Draw(image)
    draw.ellipse((80, 90, 240, 250), fill=(230, 120, 30))
    draw.rectangle((20, 250, 300, 295), fill=(40, 140, 60))
    path = tmp_path_factory.mktemp("image") / "drawn.png"
    image.save(path)
    return path


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    from app_server import write_small_tables

    return write_small_tables(tmp_path_factory.mktemp("tables"))


@pytest.fixture(scope="module")
def client(tables, tmp_path_factory):
    from app_server import running_app
    from gradio_client import Client

    with running_app(None, tables, tmp_path_factory.mktemp("work")) as url:
        yield Client(url, verbose=False)


@pytest.fixture(scope="module")
def model():
    """The model the in-process app uses (load_model caches one per name, weights and device)."""
    from explainers.engine.models import load_model

    return load_model("resnet18", "random")


def explain(client, image_path, metrics=(), steps=STEPS, baseline="zeros", methods=METHODS):
    from app_server import fast_lime_values
    from gradio_client import handle_file

    return client.predict(
        handle_file(str(image_path)),
        "resnet18",
        TOP1,
        list(methods),
        [],
        "top:0.10",
        *fast_lime_values(),
        list(metrics),
        steps,
        baseline,
        api_name="/explain",
    )


@contextlib.contextmanager
def counted_passes(model):
    """Images through the model (either copy: hooked and BatchNorm-folded) while the block runs."""
    seen = {"images": 0}

    def count(_module, inputs):
        seen["images"] += int(inputs[0].shape[0])

    modules = {id(m): m for m in (model.module, model.inference_module)}.values()
    handles = [module.register_forward_pre_hook(count) for module in modules]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def library_explanation(model, image_path):
    from explainers.pipeline import explain_image

    return explain_image(str(image_path), model, METHODS, mask_rule="top:0.10")


def table_rows(table: dict) -> dict[str, dict[str, float]]:
    value = table["value"]
    return {row[0]: dict(zip(value["headers"][1:], row[1:], strict=True)) for row in value["data"]}


@pytest.fixture(scope="module")
def measured(client, image_path, model):
    """One explanation with all four metrics, and the forward passes it cost."""
    with counted_passes(model) as seen:
        output = explain(client, image_path, ["deletion", "insertion", "road", "sanity"])
    return output, seen["images"]


def test_trust_table_equals_the_library_on_the_same_maps(measured, model, image_path):
    from app.panel_trust import COLUMNS, PASSES_COLUMN, passes_per_map
    from explainers.faithfulness import measure_explanation
    from explainers.methods import METHODS as REGISTRY

    output, _ = measured
    rows = table_rows(output[TRUST_TABLE])
    explanation = library_explanation(model, image_path)
    expected = measure_explanation(explanation, ["deletion", "insertion", "road", "sanity"], steps=STEPS)
    assert list(rows) == [REGISTRY[m].title for m in METHODS]
    for name in METHODS:
        row = rows[REGISTRY[name].title]
        assert set(row) == {*COLUMNS.values(), PASSES_COLUMN}  # every metric asked for, for each method
        for key, header in COLUMNS.items():
            assert math.isclose(row[header], expected[name].values[key], rel_tol=1e-6, abs_tol=1e-9), (name, key)
        assert row[PASSES_COLUMN] == expected[name].passes == passes_per_map(["deletion", "insertion", "road"], STEPS)
    assert output[TRUST_CURVES]["visible"] and output[TRUST_CURVES]["value"]
    strips = output[TRUST_STRIPS]
    assert strips["visible"] and [s["caption"].split(":")[0] for s in strips["value"]] == ["Grad-CAM", "Ablation-CAM"]
    assert "Done." in output[0]  # the status ends when the measurements are in


def test_only_the_metrics_asked_for_are_measured(client, image_path):
    from app.panel_trust import COLUMNS, PASSES_COLUMN

    output = explain(client, image_path, ["insertion"], methods=["gradcam"])
    rows = table_rows(output[TRUST_TABLE])
    assert list(rows) == ["Grad-CAM"]
    assert set(rows["Grad-CAM"]) == {COLUMNS["insertion_auc"], PASSES_COLUMN}
    assert rows["Grad-CAM"][PASSES_COLUMN] == STEPS  # insertion alone: the baseline image and steps-1 others


def test_metrics_off_cost_no_pass_and_on_cost_what_the_table_says(client, image_path, model, measured):
    from explainers.concepts import attribute_concepts
    from explainers.pipeline import explain_image

    with counted_passes(model) as app_off:
        output = explain(client, image_path, [])
    with counted_passes(model) as library:
        explanation = explain_image(str(image_path), model, METHODS, mask_rule="top:0.10")
        attribute_concepts(model, explanation.crop, explanation.target.index)  # the concepts panel's one pass
    assert app_off["images"] == library["images"] > 0
    assert output[TRUST_TABLE]["visible"] is False and output[TRUST_CURVES]["visible"] is False
    assert "Tick a metric" in output[TRUST_TEXT]

    measured_output, measured_images = measured
    stated = sum(row["Model passes"] for row in table_rows(measured_output[TRUST_TABLE]).values())
    with counted_passes(model) as perturbation_only:
        explain(client, image_path, ["deletion", "insertion", "road"])
    assert perturbation_only["images"] - app_off["images"] == stated  # the table's passes are the real extra ones
    assert measured_images >= perturbation_only["images"]  # sanity's re-runs happen on randomised copies


def test_concepts_panel_equals_attribute_concepts_on_the_same_crop(measured, model, image_path, tables):
    from app.panel_concepts import concept_table
    from explainers.concepts import attribute_concepts
    from explainers.inputs.images import load_image

    output, _ = measured
    shown = output[CONCEPTS_JSON]
    crop = model.crop(load_image(str(image_path)))
    expected = attribute_concepts(model, crop, None, concept_table("resnet18", str(tables))).to_json()
    assert shown["target"] == expected["target"]
    assert math.isclose(shown["logit"], expected["logit"], rel_tol=1e-6)
    assert math.isclose(shown["bias"], expected["bias"], rel_tol=1e-6)
    assert [u["unit"] for u in shown["units"]] == [u["unit"] for u in expected["units"]]
    for got, want in zip(shown["units"], expected["units"], strict=True):
        assert math.isclose(got["contribution"], want["contribution"], rel_tol=1e-6, abs_tol=1e-9)
        assert (got["concept"], got["similarity"]) == (want["concept"], want["similarity"])
    assert shown["by_concept"].keys() == expected["by_concept"].keys()
    strip = output[CONCEPTS_STRIP]
    assert [item["caption"] for item in strip] == [
        f"unit {u['unit']}: " + (f"{u['concept']} ({u['similarity']:.2f})" if u["concept"] else "no label")
        for u in expected["units"]
    ]
    summary = {c["label"]: c["confidence"] for c in output[CONCEPTS_SUMMARY]["confidences"]}
    assert summary == pytest.approx(dict(list(expected["by_concept"].items())[: len(summary)]), rel=1e-6)
    header = output[CONCEPTS_HEADER]
    assert "RANDOM WEIGHTS" in header and "Labels: Built by XAI Lens" in header  # loud, and where labels came from


@pytest.mark.parametrize(
    ("metrics", "steps", "baseline", "says"),
    [
        (["bogus"], STEPS, "zeros", "bogus"),
        (["deletion"], 0, "zeros", "minimum"),
        (["deletion"], 2.5, "zeros", "steps must be a whole number"),
        (["deletion"], 10_000, "zeros", "maximum"),
        (["deletion"], STEPS, "sideways", "sideways"),
    ],
)
def test_bad_metric_values_from_the_api_get_one_line(client, image_path, metrics, steps, baseline, says):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as refused:
        explain(client, image_path, metrics, steps=steps, baseline=baseline, methods=["gradcam"])
    message = str(refused.value)
    assert says in message and "\n" not in message.strip() and "Traceback" not in message


def test_the_lease_grows_with_the_metrics_and_stays_put_without(model):
    from app import settings
    from app.gpu import explain_seconds
    from app.panel_trust import TrustRequest, sanity_stages, trust_seconds

    base = {"methods": METHODS, "model_name": "resnet50", "lime_params": {}}
    assert trust_seconds({**base, "trust": None}) == explain_seconds(base)
    light = trust_seconds({**base, "trust": TrustRequest(("deletion",), 5)})
    heavy = trust_seconds({**base, "trust": TrustRequest(("deletion", "insertion", "road"), 200)})
    sanity = trust_seconds({**base, "trust": TrustRequest(("sanity",), 5)})
    assert explain_seconds(base) <= light < heavy <= settings.GPU_SECONDS_EXPLAIN
    assert explain_seconds(base) < sanity and sanity_stages("resnet50") == 4 and sanity_stages("resnet18") == 3


def test_verdict_names_a_method_whose_map_survives_randomisation():
    from app.panel_trust import TrustRequest, TrustResult, headline
    from explainers.faithfulness import MethodMetrics

    def result(rho: float) -> TrustResult:
        metrics = MethodMetrics({"randomization_spearman": rho, "randomization_ssim": rho})
        return TrustResult(TrustRequest(("sanity",)), {"gradcam": "Grad-CAM"}, {"gradcam": metrics})

    assert "Grad-CAM still draws nearly the same map on a randomised model" in headline(result(0.9))
    assert "still draws" not in headline(result(0.1)) and "changed on the randomised model" in headline(result(0.1))


def test_the_neurons_tab_hook_gives_any_units_map_on_the_crop(model, image_path):
    from app.panel_concepts import ConceptsResult, last_explanation, pick_unit
    from explainers.concepts import attribute_concepts
    from explainers.inputs.images import load_image

    crop = model.crop(load_image(str(image_path)))
    attribution = attribute_concepts(model, crop)
    last = last_explanation(ConceptsResult("resnet18", attribution, None, None), crop)
    listed = attribution.units[1].unit
    assert np.array_equal(last.unit_map("layer4", listed), attribution.maps[1])
    assert np.array_equal(last.unit_map("layer4", 7), attribution.unit_map(7))  # any unit, not only the listed
    assert last.unit_map("layer3", 7) is None and last.unit_map("layer4", 10_000) is None
    assert last.unit_overlay("layer4", listed).shape == crop.shape

    class Click:
        index = 1

    assert pick_unit(last, Click()).selected == listed
    Click.index = 99
    assert pick_unit(last, Click()).selected is None  # a click the strip cannot have made changes nothing


def test_no_table_line_names_the_model_with_published_labels():
    from app.panel_concepts import no_table_line

    assert no_table_line("resnet50").startswith(
        "No neuron table for resnet50: use resnet50-v1 with CLIP-dissect's published labels, or build one with"
    )
    assert "resnet18-places365" not in no_table_line("resnet18")  # other classes: not a substitute


def test_what_the_panels_send_back_from_the_gpu_worker_pickles(model, image_path):
    """On ZeroGPU the panels' results cross from a forked worker by pickle, like the maps."""
    import pickle

    from app.panel_concepts import explain_concepts
    from app.panel_trust import TrustRequest, measure_trust
    from explainers.engine.cancel import CancelToken

    explanation = library_explanation(model, image_path)
    concepts = explain_concepts(model, explanation.crop, explanation.target.index, None)
    trust = measure_trust(explanation, TrustRequest(("deletion", "sanity"), STEPS), {}, CancelToken(None))
    for result in (concepts, trust):
        copy = pickle.loads(pickle.dumps(result))
        assert type(copy) is type(result)
    assert pickle.loads(pickle.dumps(trust)).results["gradcam"].values == trust.results["gradcam"].values
