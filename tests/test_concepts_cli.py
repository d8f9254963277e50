"""`explain --concepts` and the report's concept column, end to end through explainers.cli.main (in-process).

The numbers are checked against the test's own pass through the model (layer4's mean activation times the
fc row, the logit from the full network on the saved crop), and the labels against a table the test wrote,
so neither side can agree with the other by sharing a mistake.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from app_server import write_small_tables
from PIL import Image

from dissection_data.labels import NeuronLabel
from dissection_data.paths import TABLES_DIR
from dissection_data.tables import write_table
from explainers.cli import main
from explainers.outputs.report import build_report

SCHEMA = {"model", "target", "logit", "bias", "total_contribution", "units", "by_concept", "table"}
UNIT_KEYS = {"layer", "unit", "contribution", "concept", "similarity"}
ARGS = ["--model", "resnet18", "--weights", "random", "--device", "cpu", "--methods", "gradcam"]


def _image(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (230, 250, 3), dtype=np.uint8)).save(path)
    return path


def _own_contributions(model, crop: np.ndarray, target: int) -> tuple[np.ndarray, float, float]:
    """fc.weight[target] * mean(layer4) per unit, the fc bias and the logit, from the test's own pass."""
    captured = []
    handle = model.module.layer4.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    try:
        with torch.inference_mode():
            logits = model.module(model.to_tensor(crop))[0]
    finally:
        handle.remove()
    pooled = captured[0][0].double().mean(dim=(1, 2))
    fc = model.module.fc
    contributions = (fc.weight[target].double() * pooled).numpy()
    return contributions, float(fc.bias[target]), float(logits[target])


def _only_tables(monkeypatch, root: Path) -> None:
    """The model's 'own' table is looked for under `root` only (not the repository's, nor a cache)."""
    monkeypatch.setattr("explainers.concepts.tables.TABLES_DIR", root)
    monkeypatch.setenv("XAI_LENS_PUBLISHED_CACHE", str(root / "published-cache"))


def test_explain_concepts_writes_the_schema_and_the_split_adds_up_to_the_logit(resnet18_random, tmp_path, capsys):
    tables = write_small_tables(tmp_path / "tables")  # resnet18 layer4 units 0, 1, 2: sky, fur, wheel
    image = _image(tmp_path / "street.png", 1)
    out = tmp_path / "out"
    code = main(["explain", str(image), *ARGS, "--out", str(out), "--concepts", str(tables / "resnet18")])
    assert code == 0, capsys.readouterr().err
    folder = out / "street"
    record = json.loads((folder / "concepts.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    assert set(record) >= SCHEMA and record["model"] == "resnet18"
    assert record["target"] == {"index": summary["target"]["index"], "label": summary["target"]["label"]}

    crop = np.array(Image.open(folder / "crop.png").convert("RGB"))
    contributions, bias, logit = _own_contributions(resnet18_random, crop, record["target"]["index"])
    assert record["logit"] == pytest.approx(logit, abs=1e-4)
    assert record["bias"] == pytest.approx(bias, abs=1e-6)
    assert abs(record["total_contribution"] + record["bias"] - record["logit"]) < 1e-4  # completeness, as written
    assert record["total_contribution"] == pytest.approx(contributions.sum(), abs=1e-4)

    labels = {0: "sky", 1: "fur", 2: "wheel"}
    listed = record["units"]
    assert listed and all(set(unit) == UNIT_KEYS and unit["layer"] == "layer4" for unit in listed)
    order = np.argsort(-contributions)
    positive = [u["unit"] for u in listed if u["contribution"] > 0]
    assert positive == [int(k) for k in order[: len(positive)]]  # the strongest units, strongest first
    for unit in listed:
        assert unit["contribution"] == pytest.approx(contributions[unit["unit"]], abs=1e-5)
        assert unit["concept"] == labels.get(unit["unit"])  # joined to the table's row, or None where it has none
    whole = contributions[contributions > 0].sum()
    for unit, concept in labels.items():
        share = max(contributions[unit], 0) / whole
        assert record["by_concept"].get(concept, 0.0) == pytest.approx(share, abs=1e-6)
    assert record["table"]["key"] == "resnet18" and record["table"]["model"] == "resnet18"
    assert Image.open(folder / "concepts.png").format == "PNG"
    assert "concepts (resnet18)" in capsys.readouterr().out


def test_a_table_for_another_model_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    tables = write_small_tables(tmp_path / "tables")
    image = _image(tmp_path / "img.png", 2)
    out = tmp_path / "out"
    code = main(["explain", str(image), *ARGS, "--out", str(out), "--concepts", str(tables / "resnet18-places365")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    assert "--model resnet18-places365" in err[-1]  # names the model the labels belong to
    assert not out.exists()


def test_offline_with_random_weights_the_default_table_says_loudly_it_is_a_demo(tmp_path, monkeypatch, capsys):
    _only_tables(monkeypatch, tmp_path / "tables")
    shutil.copytree(TABLES_DIR / "demo" / "resnet18", tmp_path / "tables" / "demo" / "resnet18")
    image = _image(tmp_path / "img.png", 3)
    out = tmp_path / "out"
    assert main(["explain", str(image), *ARGS, "--out", str(out), "--concepts"]) == 0
    captured = capsys.readouterr()
    assert "RANDOM WEIGHTS" in captured.err and "DEMO TABLE" in captured.err
    assert "DEMO labels" in captured.out
    record = json.loads((out / "img" / "concepts.json").read_text())
    assert record["table"]["demo"] is True and record["table"]["key"] == "demo/resnet18"
    assert any("RANDOM WEIGHTS" in w for w in record["warnings"]) and any("DEMO TABLE" in w for w in record["warnings"])


def _grouped_table(root: Path) -> Path:
    """Every layer4 unit labelled 'group{k % 4}' (similarity 0.9): the column's answer follows from the split."""
    labels = [NeuronLabel("layer4", unit, (f"group{unit % 4}",), (0.9,), ()) for unit in range(512)]
    return write_table(root / "resnet18", "resnet18", labels, {"model": "resnet18"}, {})


def _presets(tmp_path: Path) -> list[tuple[SimpleNamespace, Path]]:
    return [(SimpleNamespace(key=f"img{i}", class_index=i), _image(tmp_path / f"img{i}.png", 10 + i)) for i in (0, 1)]


def test_the_report_column_names_each_images_top_three_concepts(resnet18_random, tmp_path):
    table = _grouped_table(tmp_path / "tables")
    out = tmp_path / "report"
    rows = build_report(resnet18_random, _presets(tmp_path), out, ["gradcam"], {}, concept_source=str(table))
    report = (out / "report.md").read_text()
    assert "top 3 concepts" in report and "`resnet18`" in report
    for row in rows:
        crop = row.explanation.crop
        contributions, _, _ = _own_contributions(resnet18_random, crop, row.explanation.target.index)
        positive = np.clip(contributions, 0, None)
        groups = {f"group{g}": positive[g::4].sum() / positive.sum() for g in range(4)}
        top = sorted(groups, key=groups.get, reverse=True)[:3]
        expected = ", ".join(f"{name} {groups[name]:.0%}" for name in top)
        line = next(line for line in report.splitlines() if line.startswith(f"| {row.key} |"))
        assert line.rstrip(" |").endswith(expected), (line, expected)
        assert (out / row.key / "concepts.json").is_file()


def test_without_a_table_the_report_column_says_why(resnet18_random, tmp_path, monkeypatch):
    _only_tables(monkeypatch, tmp_path / "no-tables")
    out = tmp_path / "report"
    build_report(resnet18_random, _presets(tmp_path)[:1], out, ["gradcam"], {})
    line = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| img0 |"))
    assert "no neuron table for resnet18" in line and "python -m dissection_data build" in line


def test_report_refuses_a_table_of_another_model_before_any_image(tmp_path, capsys):
    tables = write_small_tables(tmp_path / "tables")
    argv = ["report", *ARGS, "--out", str(tmp_path / "r"), "--examples-dir", str(tmp_path / "no-presets-here")]
    assert main([*argv, "--concepts", str(tables / "resnet18-places365")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "--model resnet18-places365" in err[-1]
