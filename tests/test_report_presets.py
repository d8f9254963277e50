"""The ten real presets through the report (CI points XAI_LENS_EXAMPLES_DIR at them)."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from explainers.inputs.param_file import default_lime_params
from explainers.outputs.report import answer_simple_vs_complex, build_report, edge_density

pytestmark = pytest.mark.presets


@pytest.fixture(scope="module")
def report(resnet18_random, examples_dir, tmp_path_factory):
    from explainers.inputs.presets import ensure_presets

    presets = ensure_presets(examples_dir, progress=False)
    params = {key: {**value, "num_samples": 40} for key, value in default_lime_params().items()}
    out = tmp_path_factory.mktemp("report")
    rows = build_report(resnet18_random, presets, out, ["gradcam", "ablationcam", "lime"], params)
    return out, rows, presets


def test_every_preset_is_explained_on_its_own_crop(report):
    out, rows, presets = report
    assert [row.key for row in rows] == [preset.key for preset, _ in presets]
    for (preset, path), row in zip(presets, rows, strict=True):
        folder = out / path.stem
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["image"] == path.name and summary["weights"] == "random" and "warning" in summary
        crop = np.asarray(Image.open(folder / "crop.png"))
        np.testing.assert_array_equal(crop, row.explanation.crop)
        assert row.true_label == row.explanation.model.categories[preset.class_index]


def test_iou_csv_and_figures(report):
    out, rows, _ = report
    with open(out / "iou.csv") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 10 * 3
    for row in rows:
        for pair, value in row.explanation.iou.items():
            a, b = pair.split("|")
            match = [
                r
                for r in table
                if r["image"] == row.explanation.image_name.rsplit(".", 1)[0]
                and (r["method_a"], r["method_b"]) == (a, b)
            ]
            assert len(match) == 1 and float(match[0]["iou"]) == pytest.approx(value, abs=1e-6)
    for figure in ("iou_bar.png", "overlays_grid.png"):
        assert Image.open(out / figure).size[0] > 500
    text = (out / "report.md").read_text()
    assert "RANDOM WEIGHTS" in text and "goldfish" in text and "kite" in text


def _row(key, mean_iou, complexity):
    explanation = SimpleNamespace(iou={"a|b": mean_iou})
    return SimpleNamespace(key=key, mean_iou=mean_iou, complexity=complexity, explanation=explanation)


def test_the_answer_follows_the_numbers():
    simple_wins = [_row("goldfish", 0.8, 0.05), _row("kite", 0.3, 0.30), _row("orange", 0.6, 0.10)]
    assert "agreement is higher on the simple image" in answer_simple_vs_complex(simple_wins)
    assert "tends to fall" in answer_simple_vs_complex(simple_wins)
    complex_wins = [_row("goldfish", 0.2, 0.05), _row("kite", 0.7, 0.30), _row("orange", 0.5, 0.10)]
    assert "agreement is not higher on the simple image" in answer_simple_vs_complex(complex_wins)
    assert "tends to rise" in answer_simple_vs_complex(complex_wins)


def test_edge_density_orders_clutter():
    flat = np.full((64, 64, 3), 128, dtype=np.uint8)
    stripes = flat.copy()
    stripes[:, ::6] = 0
    assert edge_density(flat) == 0.0 < edge_density(stripes)
