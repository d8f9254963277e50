"""The benchmark runs end to end and reports what it claims (no timing is asserted: speed is judged by running it)."""

from __future__ import annotations

import json

import pytest

from tools import bench


def test_benchmark_reports_ratios_and_equal_maps(examples_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = [
        "--models",
        "resnet18",
        "--methods",
        "gradcam,ablationcam",
        "--images",
        "1",
        "--examples-dir",
        str(examples_dir),
        "--out",
        str(out),
    ]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    rows = {row["method"]: row for row in report["rows"]}
    assert set(rows) == {"gradcam", "ablationcam"}
    for row in rows.values():
        assert row["floor_s"] > 0 and row["ours_s"] > 0 and row["reference_s"] > 0
        assert row["speedup"] == pytest.approx(row["reference_s"] / row["ours_s"])
        assert row["max_abs_diff"] <= 1e-4  # the same map as grad-cam's
    assert "| resnet18 | ablationcam |" in capsys.readouterr().out


def test_missing_presets_is_one_line(tmp_path, capsys):
    assert bench.main(["--examples-dir", str(tmp_path), "--images", "1"]) == 2
    assert capsys.readouterr().err.strip().startswith("error:")
