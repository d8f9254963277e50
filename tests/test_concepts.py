"""Concept attribution: complete (sum + bias = logit), equal to grad-cam's own numbers, right on planted units."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from dissection_planted import CLASSES, SIDE, SIZES_PER_SHAPE, TOP_K, ColourNeurons, PlantedClip, shape_iou
from planted import hand_wired_model
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from reference import trainable_copy

from dissection_data import tables
from dissection_data.build import BuildOptions, build_tables
from dissection_data.concepts import _make
from dissection_data.probes import folder_probe_set
from dissection_data.synthetic import COLOURS, SHAPES, shape_image, shape_mask, shape_radii, write_shape_probe_set
from dissection_data.tables import NeuronRow, NeuronTable
from explainers.concepts import UNLABELLED, attribute_concepts
from explainers.concepts.render import concepts_figure, summary_lines
from explainers.engine.models import LoadedModel, load_model
from explainers.errors import XaiLensError


def _crop(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(224, 224, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def resnet18():
    return load_model("resnet18", "random", "cpu")


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_layer4_contributions_plus_bias_equal_the_logit(name):
    model = load_model(name, "random", "cpu")
    crop = _crop(1)
    with torch.inference_mode():
        logits = model.module(model.to_tensor(crop))[0]
    target = int(logits.argsort()[-2])  # not the top class: the target argument is honoured
    result = attribute_concepts(model, crop, target)
    assert result.target == target and result.exact
    assert len(result.contributions) == model.module.fc.in_features
    assert result.logit == pytest.approx(float(logits[target]), abs=1e-6)
    assert result.bias == pytest.approx(float(model.module.fc.bias[target]))
    assert abs(result.contributions.sum() + result.bias - float(logits[target])) < 1e-4


def test_contributions_equal_gradcam_weights_times_summed_activations(resnet18):
    crop, target = _crop(2), 7
    module = trainable_copy(resnet18.module)
    cam = GradCAM(model=module, target_layers=[module.layer4[-1]])
    seen = {}
    own_weights = cam.get_cam_weights

    def spy(input_tensor, layer, targets, activations, grads):
        seen["activations"] = activations
        seen["weights"] = own_weights(input_tensor, layer, targets, activations, grads)
        return seen["weights"]

    cam.get_cam_weights = spy
    try:
        cam(input_tensor=resnet18.to_tensor(crop), targets=[ClassifierOutputTarget(target)])
    finally:
        cam.activations_and_grads.release()
    expected = seen["weights"][0] * seen["activations"][0].sum(axis=(1, 2))
    result = attribute_concepts(resnet18, crop, target)
    np.testing.assert_allclose(result.contributions, expected, rtol=1e-4, atol=1e-7)


def test_layer3_is_first_order_and_complete_where_the_network_above_is_homogeneous(resnet18):
    """Randomly initialised BatchNorms have no shift and the convolutions no bias, so everything above layer3
    is positively homogeneous of degree 1: by Euler's theorem gradient x activation then sums to the logit
    minus the fc bias exactly. (Trained weights break this; the output says 'first order'.)"""
    result = attribute_concepts(resnet18, _crop(3), 5, layer="layer3")
    assert not result.exact and len(result.contributions) == 256
    assert result.maps.shape[1:] == (224, 224)
    assert "first order" in result.to_json()["attribution"]["kind"]
    assert abs(result.contributions.sum() + result.bias - result.logit) < 1e-4


def _labelled_table(model: str, layer: str, units: int, low: set[int]) -> NeuronTable:
    rows = [
        NeuronRow(model, layer, unit, "weak" if unit in low else f"c{unit % 3}", 0.01 if unit in low else 0.9, (), ())
        for unit in range(units)
    ]
    return NeuronTable(key=f"test/{model}", root=None, meta={"model": model, "weights": "random"}, rows=rows)


def test_by_concept_shares_group_low_similarity_units_as_unlabelled(resnet18):
    low = set(range(0, 512, 4))
    result = attribute_concepts(resnet18, _crop(4), 3, _labelled_table("resnet18", "layer4", 512, low), top_k=3)
    positive = np.clip(result.contributions, 0, None)
    expected = {UNLABELLED: positive[sorted(low)].sum() / positive.sum()}
    for name in ("c0", "c1", "c2"):
        units = [u for u in range(512) if u % 3 == int(name[1]) and u not in low]
        expected[name] = positive[units].sum() / positive.sum()
    assert result.by_concept == pytest.approx(expected)
    assert list(result.by_concept.values()) == sorted(result.by_concept.values(), reverse=True)
    assert sum(result.by_concept_negative.values()) == pytest.approx(1.0)
    assert "weak" not in result.by_concept  # its similarity is below the threshold
    shown = [u for u in result.units if u.unit in low]
    assert all(u.concept == "weak" and u.similarity == pytest.approx(0.01) for u in shown)


def test_units_are_the_top_k_each_way_with_their_maps_on_the_crop(resnet18):
    result = attribute_concepts(resnet18, _crop(5), 11, top_k=4)
    order = np.argsort(result.contributions)
    assert [u.unit for u in result.positive_units] == order[::-1][:4].tolist()
    assert [u.unit for u in result.negative_units] == order[:4].tolist()
    assert result.maps.shape == (8, 224, 224)
    for unit, unit_map in zip(result.units, result.maps, strict=True):
        np.testing.assert_array_equal(unit_map, result.unit_map(unit.unit))
        assert unit_map.mean() == pytest.approx(result.activations[unit.unit].mean(), rel=0.05)


def test_a_table_of_another_model_is_refused_in_one_line(resnet18):
    table = _labelled_table("resnet50-v1", "layer4", 2048, set())
    with pytest.raises(XaiLensError) as caught:
        attribute_concepts(resnet18, _crop(), 0, table)
    assert "--model resnet50-v1" in str(caught.value) and "\n" not in str(caught.value)


def test_concepts_json_and_figure_say_the_labels_and_weights_are_demo_ones(resnet18):
    from explainers.concepts.tables import default_table

    table = default_table("resnet18")
    assert table is not None and table.is_demo
    result = attribute_concepts(resnet18, _crop(6), None, table)
    record = json.loads(json.dumps(result.to_json()))
    assert {"model", "target", "logit", "bias", "total_contribution", "units", "by_concept", "table"} <= set(record)
    assert record["target"] == {"index": result.target, "label": resnet18.categories[result.target]}
    assert set(record["units"][0]) == {"layer", "unit", "contribution", "concept", "similarity"}
    assert record["table"]["demo"] is True and record["table"]["key"] == table.key
    assert any("RANDOM WEIGHTS" in w for w in record["warnings"]) and any("DEMO TABLE" in w for w in record["warnings"])
    assert summary_lines(result)[0].endswith("of the positive evidence")
    assert len(concepts_figure(_crop(6), result).axes) == 2 + len(result.units)


# --- planted ground truth: a ResNet-shaped head whose classes depend on units planted for known concepts ---

UNITS = 12
COLOUR_UNITS = {"red": 9, "green": 2, "blue": 6}  # scattered among distractors on purpose
SHAPE_UNITS = {"circle": 4, "square": 11, "triangle": 0}
POOL = 8


class PlantedUnits(torch.nn.Module):
    """'layer4': a map per colour (where it is), a map per shape (the foreground, x IoU^4 with that shape),
    and distractor units of constant activation."""

    def forward(self, masks):
        foreground = masks.amax(dim=1)
        pooled = torch.nn.functional.avg_pool2d(masks, POOL)
        fg_pooled = torch.nn.functional.avg_pool2d(foreground.unsqueeze(1), POOL)[:, 0]
        iou = shape_iou(foreground) ** 4
        out = torch.full((masks.shape[0], UNITS, *pooled.shape[2:]), 0.2)
        for i, colour in enumerate(COLOURS):
            out[:, COLOUR_UNITS[colour]] = pooled[:, i]
        for j, shape in enumerate(SHAPES):
            out[:, SHAPE_UNITS[shape]] = fg_pooled * iou[:, j, None, None]
        return out


class PlantedConceptNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer3, self.layer4 = ColourNeurons(), PlantedUnits()
        self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(UNITS, len(CLASSES))
        weight = torch.empty(len(CLASSES), UNITS).uniform_(-0.3, 0.3, generator=torch.Generator().manual_seed(0))
        for c, name in enumerate(CLASSES):
            colour, shape = name.split()
            weight[c, COLOUR_UNITS[colour]] = weight[c, SHAPE_UNITS[shape]] = 8.0
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.fill_(-1.0)

    def forward(self, x):
        return self.fc(torch.flatten(self.avgpool(self.layer4(self.layer3(x))), 1))


def planted_concept_model() -> LoadedModel:
    return hand_wired_model(
        PlantedConceptNet,
        "random",
        CLASSES,
        name="planted-concepts",
        title="Planted concept units (test)",
        resize=SIDE,
        crop=SIDE,
    )


@pytest.fixture(scope="module")
def planted_table(tmp_path_factory):
    """The planted model's table, built by the real dissection pipeline with the planted CLIP stand-in."""
    root = tmp_path_factory.mktemp("planted-concepts")
    write_shape_probe_set(root / "probes", size=SIDE, sizes_per_shape=SIZES_PER_SHAPE)
    options = BuildOptions(
        layers=("layer3", "layer4"),
        out=root / "tables",
        cache=None,
        similarity_params={"top_k": TOP_K},
        device="cpu",
    )
    (result,) = build_tables(
        options,
        probe_set=folder_probe_set(root / "probes"),
        concept_set=_make("planted", [*COLOURS, *SHAPES, "dog", "car", "sky", "music"], "test"),
        encoder=PlantedClip(),
        models=[planted_concept_model()],
    )
    return tables.read_table(result.directory)


@pytest.mark.parametrize("name", CLASSES)
def test_planted_units_rank_first_and_carry_their_planted_concepts(planted_table, name):
    colour, shape = name.split()
    model = planted_concept_model()
    radius = shape_radii(SIDE, SIZES_PER_SHAPE)[-1]
    crop = np.array(shape_image(colour, shape, radius, SIDE))
    result = attribute_concepts(model, crop, name, planted_table, top_k=3)
    assert result.target == CLASSES.index(name)
    first_two = result.positive_units[:2]
    assert {u.unit for u in first_two} == {COLOUR_UNITS[colour], SHAPE_UNITS[shape]}
    assert {u.concept for u in first_two} == {colour, shape}
    assert set(list(result.by_concept)[:2]) == {colour, shape}
    assert result.by_concept[colour] + result.by_concept[shape] > 0.9
    inside = shape_mask(shape, radius, SIDE)
    for unit, unit_map in zip(result.units, result.maps, strict=True):
        if unit in first_two:  # where the planted unit fires is where the shape is
            assert unit_map[inside].mean() > 3 * unit_map[~inside].mean()
