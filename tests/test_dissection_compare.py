"""`python -m dissection_data compare`: planted agreement between a synthetic table of ours and a published CSV."""

from __future__ import annotations

import json

import pytest

from dissection_data.__main__ import main
from dissection_data.compare import compare_tables, open_published
from dissection_data.labels import NeuronLabel
from dissection_data.tables import read_table, write_table
from explainers.errors import XaiLensError

MODEL = "resnet18-places365"
PUBLISHED_NAME = "resnet18_places_imagenet_broden.csv"
FILLER = ("w1", "w2", "w3", "w4", "w5")


def _ours_concepts(layer: str, unit: int) -> tuple[str, ...]:
    """layer3: every unit's top-1 is the published one (in other letter case).
    layer4: units 0-3 top-1 match, 4-6 have the published label at rank 2-4, 7-9 do not have it at all."""
    published = f"{layer}-c{unit}"
    if layer == "layer3" or unit < 4:
        return (published.upper(), *FILLER[:4])
    if unit < 7:
        rank = unit - 3  # 1, 2, 3
        return (*FILLER[:rank], published, *FILLER[rank:4])
    return FILLER


@pytest.fixture
def tables_pair(tmp_path):
    labels = [
        NeuronLabel(layer, unit, _ours_concepts(layer, unit), (0.5, 0.4, 0.3, 0.2, 0.1), ())
        for layer, count in (("layer3", 8), ("layer4", 10))
        for unit in range(count)
    ]
    ours = write_table(tmp_path / "ours" / MODEL, MODEL, labels, {"model": MODEL}, {})
    rows = [
        f"{layer},{unit},{layer}-c{unit},0.3\n"
        for layer, n in (("conv1", 3), ("layer3", 8), ("layer4", 10))
        for unit in range(n)
    ]
    published = tmp_path / PUBLISHED_NAME
    published.write_text("layer,unit,description,similarity\n" + "".join(rows))
    return ours, published


def test_per_layer_shares_match_the_planted_agreement(tables_pair):
    ours, published = tables_pair
    results = compare_tables(read_table(ours), open_published(str(published)))
    assert [(r.layer, r.units, r.top1, r.top5) for r in results] == [("layer3", 8, 1.0, 1.0), ("layer4", 10, 0.4, 0.7)]


def test_the_command_prints_and_writes_the_comparison(tables_pair, tmp_path, capsys):
    ours, published = tables_pair
    out = tmp_path / "agreement.json"
    assert main(["compare", str(ours), str(published), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "layer4" in printed and "40.0%" in printed and "70.0%" in printed
    record = json.loads(out.read_text())
    assert record["model"] == MODEL and [layer["top5"] for layer in record["layers"]] == [1.0, 0.7]


def test_tables_of_different_models_are_refused_in_one_line(tables_pair, tmp_path, capsys):
    ours, published = tables_pair
    other = tmp_path / "resnet50_imagenet_broden.csv"
    other.write_text(published.read_text())
    assert main(["compare", str(ours), str(other)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "resnet50-v1" in error and "\n" not in error


def test_no_shared_layer_is_one_line(tables_pair, tmp_path):
    ours, _ = tables_pair
    conv_only = tmp_path / "conv" / PUBLISHED_NAME
    conv_only.parent.mkdir()
    conv_only.write_text("layer,unit,description,similarity\nconv1,0,red,0.2\n")
    with pytest.raises(XaiLensError, match="label no unit in common") as caught:
        compare_tables(read_table(ours), open_published(str(conv_only)))
    assert "\n" not in str(caught.value)
