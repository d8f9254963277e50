"""`explain --metrics` and the report's metrics: only the asked-for keys, the passes they cost, one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from planted import patch_image

from explainers.outputs.report import build_report


def explain_cli(image, out, *options):
    """`python -m explainers explain IMAGE` with ResNet18 random weights, in a fresh process."""
    command = [sys.executable, "-m", "explainers", "explain", str(image), "--model", "resnet18", "--weights", "random"]
    return subprocess.run([*command, "--out", str(out), *options], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "patch.png"
    Image.fromarray(patch_image(50, 90)[0]).save(path)
    return path


def test_deletion_and_insertion_only_with_their_cost(image_file, tmp_path):
    result = explain_cli(
        image_file, tmp_path, "--methods", "gradcam,ablationcam", "--metrics", "deletion,insertion", "--steps", "4"
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "patch" / "summary.json").read_text())
    assert set(summary["metrics"]) == {"gradcam", "ablationcam"}
    for values in summary["metrics"].values():
        assert set(values) == {"deletion_auc", "insertion_auc", "passes"}
        assert values["passes"] == 2 * 4 - 1
        assert 0 <= values["deletion_auc"] <= 1 and 0 <= values["insertion_auc"] <= 1
    assert (tmp_path / "patch" / "metrics_curves.png").exists()
    assert "(7 model passes)" in result.stdout
    assert not list((tmp_path / "patch").glob("*_sanity.png"))


def test_road_and_sanity_keys_and_strip(image_file, tmp_path):
    result = explain_cli(image_file, tmp_path, "--methods", "gradcam", "--metrics", "sanity,road")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "patch" / "summary.json").read_text())
    values = summary["metrics"]["gradcam"]
    assert set(values) == {"road", "randomization_spearman", "randomization_ssim", "passes"}
    assert values["passes"] == 18  # ROAD's; the sanity check re-runs the method, not the metric passes
    assert -1 <= values["randomization_spearman"] <= 1
    assert (tmp_path / "patch" / "gradcam_sanity.png").exists()


def test_without_metrics_summary_has_no_metrics_key(image_file, tmp_path):
    result = explain_cli(image_file, tmp_path, "--methods", "gradcam")
    assert result.returncode == 0, result.stderr
    assert "metrics" not in json.loads((tmp_path / "patch" / "summary.json").read_text())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--metrics", "deletion,faith"],
            "error: unknown metric 'faith'; choose from deletion, insertion, road, sanity",
        ),
        (["--metrics", "deletion", "--steps", "0"], "error: steps must be a whole number from 1 to 500, got 0"),
        (["--metrics", "deletion", "--steps", "many"], "error: steps must be a whole number from 1 to 500, got 'many'"),
        (["--metrics", "deletion", "--baseline", "grey"], "error: unknown baseline 'grey'; choose from zeros, blur"),
    ],
)
def test_bad_metric_options_one_line_before_any_work(image_file, tmp_path, options, message):
    result = explain_cli(image_file, tmp_path / "out", "--methods", "gradcam", *options)
    assert result.returncode == 2
    assert result.stderr.strip().startswith(message) and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == "" and not (tmp_path / "out").exists()  # nothing was explained


def test_report_writes_metrics_csv_table_and_answer(resnet18_random, tmp_path):
    images = []
    for index, position in enumerate([(20, 20), (120, 100)]):
        path = tmp_path / f"img{index}.png"
        Image.fromarray(patch_image(*position, seed=index)[0]).save(path)
        images.append((SimpleNamespace(key=f"img{index}", class_index=index), path))
    rows = build_report(
        resnet18_random,
        images,
        tmp_path / "report",
        ["gradcam", "ablationcam", "gradcampp"],
        metrics=["deletion", "insertion"],
        metric_options={"steps": 3},
    )
    with open(tmp_path / "report" / "metrics.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["image"], r["method"]) for r in table] == [
        (k, m) for k in ("img0", "img1") for m in ("gradcam", "ablationcam", "gradcampp")
    ]
    assert set(table[0]) == {"image", "method", "deletion_auc", "insertion_auc", "passes"}
    for record, (row, method) in zip(table, [(r, m) for r in rows for m in r.explanation.metrics], strict=True):
        assert float(record["deletion_auc"]) == pytest.approx(
            row.explanation.metrics[method].values["deletion_auc"], abs=1e-6
        )
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## Which explanation to trust" in report and "metrics_bar.png" in report
    mean_gradcam = np.mean([row.explanation.metrics["gradcam"].values["insertion_auc"] for row in rows])
    assert "| Grad-CAM | " in report and f"{mean_gradcam:.3f} ±" in report
    assert "The methods that agree most" in report
    assert (tmp_path / "report" / "metrics_bar.png").stat().st_size > 0
