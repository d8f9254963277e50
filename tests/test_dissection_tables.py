"""The committed DEMO tables: readable through the app-facing API, flagged as demo, small."""

from __future__ import annotations

from dissection_data.paths import TABLES_DIR
from dissection_data.tables import load_tables, thumbnail_paths


def test_demo_tables_load_and_say_they_are_demos():
    demos = [table for table in load_tables() if table.key.startswith("demo/")]
    assert {table.key for table in demos} == {"demo/resnet18", "demo/resnet18-places365"}
    for table in demos:
        assert table.is_demo and table.is_random
        assert "DEMO TABLE" in table.warning and "RANDOM WEIGHTS" in table.warning
        assert table.layers == ["layer3", "layer4", "fc"]
        fc_units = 1000 if table.model == "resnet18" else 365
        assert [len(table.rows_for(layer)) for layer in table.layers] == [256, 512, fc_units]
        row = table.row("layer4", 3)
        assert row.concept == row.top_concepts[0][0] and len(row.top_concepts) == 5
        assert table.thumbnail_paths("layer4", 3) == thumbnail_paths(table.key, "layer4", 3)
        assert len(table.thumbnail_paths("layer4", 3)) == 5


def test_demo_tables_stay_small():
    size = sum(path.stat().st_size for path in (TABLES_DIR / "demo").rglob("*") if path.is_file())
    assert size < 2 * 2**20
