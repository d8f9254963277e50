"""Neuron-table views: filtering, frequencies and the ImageNet vs Places365 comparison."""

from __future__ import annotations

from app_server import write_small_tables

from dissection_data import table_views
from dissection_data.tables import load_tables


def tables(tmp_path):
    return {t.key: t for t in load_tables(write_small_tables(tmp_path))}


def test_filter_by_layer_and_query(tmp_path):
    rows = tables(tmp_path)["resnet18"].rows
    assert [r.concept for r in table_views.filter_rows(rows, "layer4")] == ["sky", "fur", "wheel"]
    assert [r.unit for r in table_views.filter_rows(rows, query="WAT")] == [0, 2]
    assert len(table_views.filter_rows(rows, query="grass")) == 6  # runner-ups are searched too
    assert table_views.filter_rows(rows, layer="layer3", query="sky") == []


def test_concept_counts_most_frequent_first(tmp_path):
    rows = tables(tmp_path)["resnet18-places365"].rows
    assert table_views.concept_counts(rows, top=2) == [("sky", 2), ("kitchen", 1)]


def test_compare_imagenet_and_places(tmp_path):
    found = tables(tmp_path)
    imagenet, places = table_views.dataset_pair(list(found.values()))
    assert (imagenet.key, places.key) == ("resnet18", "resnet18-places365")
    result = table_views.compare_tables(imagenet, places)
    assert result.shared == ["sky", "water"]
    assert result.only_first == ["dog", "fur", "wheel"] and result.only_second == ["kitchen", "shelf", "tower"]
    assert result.per_layer == [("layer3", 1, 1, 2), ("layer4", 1, 2, 2)]


def test_records_show_runner_ups(tmp_path):
    record = table_views.row_records(tables(tmp_path)["resnet18"].rows[:1])[0]
    assert record[:4] == ["resnet18", "layer3", 0, "water"] and record[5] == "grass (0.5), road (0.4)"
