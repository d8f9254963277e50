"""The agreement study (explainers.study): same answers as `explain`, resumable, bad images recorded, honest statistics.

The Ray tests run a private local instance with 2 CPU workers and a random-weights ResNet18; the
1000 sample images cannot be downloaded here, so the ten presets stand in (copies and crops under
distinct names) or synthetic images do.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ray_local import SCALE_MISSING, kill_after_first_part, local_ray  # noqa: F401 (local_ray: the fixture the Ray tests use)

if SCALE_MISSING:
    pytest.skip(SCALE_MISSING, allow_module_level=True)


import pyarrow.parquet as pq

from explainers.errors import XaiLensError
from explainers.study import require_scale
from explainers.study.measures import colour_entropy, object_area, top_mass_share
from explainers.study.report import half_difference, spearman_ci, verdict, write_study_report
from explainers.study.results import PARTS_DIR, StudyColumns, finished_ids, write_part
from explainers.study.runner import StudySettings, run_study
from explainers.study.sources import HuggingFaceSpec, StudyRecord, resolve_source

REPO = Path(__file__).resolve().parents[1]
METHODS = ("gradcam", "ablationcam")
SETTINGS = StudySettings("resnet18", "random", METHODS)
RAY_BOUND_S = 600  # a safety bound on any one Ray run in these tests, not a speed claim


def _synthetic_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Distinct smooth images with a few coloured blobs (enough structure for the CAMs to differ)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:160, 0:200] / 160.0
    paths = []
    for index in range(count):
        image = np.stack([x * rng.uniform(0.2, 1), y * rng.uniform(0.2, 1), np.full_like(x, rng.uniform())], axis=2)
        for _ in range(3):
            cy, cx, r = rng.uniform(20, 140), rng.uniform(20, 180), rng.uniform(10, 40)
            image[(np.mgrid[0:160, 0:200][0] - cy) ** 2 + (np.mgrid[0:160, 0:200][1] - cx) ** 2 < r**2] = rng.uniform(
                0, 1, 3
            )
        path = folder / f"synthetic_{index:03d}.png"
        Image.fromarray((image * 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


# --- fast: no Ray ---------------------------------------------------------------------------------


def test_missing_extra_is_one_line_naming_it(monkeypatch, capsys):

    from explainers.study.__main__ import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(XaiLensError, match=r"pip install \.\[scale\]"):
        require_scale()
    assert main(["somewhere", "--weights", "random"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "ray" in err and "pip install .[scale]" in err


def test_colour_entropy_counts_bits():
    flat = np.full((32, 32, 3), 200, dtype=np.uint8)
    halves = flat.copy()
    halves[:16] = 10
    quarters = halves.copy()
    quarters[:, :16, 2] = 120
    assert colour_entropy(flat) == 0.0
    assert colour_entropy(halves) == pytest.approx(1.0)
    assert colour_entropy(quarters) == pytest.approx(2.0)


def test_object_measures_read_a_planted_blob():
    saliency = np.zeros((100, 100), dtype=np.float32)
    saliency[10:30, 10:40] = 1.0  # 600 pixels at the peak
    saliency[50:60, 50:60] = 0.4  # below half of the peak
    assert object_area(saliency) == pytest.approx(600 / 10_000)
    assert top_mass_share(saliency) == pytest.approx(1.0)  # the top 10% (1000 px) hold every peak pixel and more
    assert top_mass_share(np.ones((100, 100))) == pytest.approx(1.0)  # ties at the cut are all kept
    ramp = np.tile(np.linspace(0, 1, 100), (100, 1))
    assert top_mass_share(ramp) == pytest.approx(ramp[:, 90:].sum() / ramp.sum())


def test_spearman_interval_finds_a_planted_trend_and_not_noise():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    clutter = rng.uniform(0, 1, 300)
    iou = 0.6 - 0.4 * clutter + rng.normal(0, 0.1, 300)  # planted: agreement falls with clutter
    trend = spearman_ci(clutter, iou)
    assert trend.value == pytest.approx(spearmanr(clutter, iou).statistic)
    assert trend.low <= trend.value <= trend.high < 0
    noise = spearman_ci(clutter, rng.uniform(0, 1, 300))
    assert noise.low < 0 < noise.high
    simple, complex_, difference = half_difference(clutter, iou)
    assert simple > complex_ and difference.low > 0
    assert verdict(trend, simple, complex_, difference, "CAM vs LIME").startswith("**Yes")
    assert verdict(noise, simple, complex_, difference, "CAM vs LIME").startswith("**No clear difference")


def test_report_answers_from_planted_rows(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(2)
    n = 60
    clutter = rng.uniform(0.01, 0.3, n)
    iou = np.clip(0.5 - clutter + rng.normal(0, 0.02, n), 0, 1)
    frame = pd.DataFrame(
        {
            "id": [f"img{i}" for i in range(n - 1)] + ["n01443537_goldfish"],
            "true_class": [f"class{i % 12}" for i in range(n)],
            "target_label": ["x"] * n,
            "iou__gradcam__lime": iou,
            "iou__gradcam__ablationcam": np.full(n, 0.8),
            "iou__ablationcam__lime": iou,
            "edge_density": clutter,
            "colour_entropy": rng.uniform(3, 8, n),
            "object_area": rng.uniform(0, 1, n),
            "gradcam_top10_mass": rng.uniform(0.1, 1, n),
            "error": [None] * (n - 1) + [None],
        }
    )
    frame.loc[len(frame)] = {"id": "broken", "error": "broken.jpg is not an image"}
    text = write_study_report(frame, ["gradcam", "ablationcam", "lime"], tmp_path, model="resnet18", weights="random")
    report = text.read_text()
    assert "60 explained, 1 failed" in report
    assert "**Yes: CAM vs LIME agree more on simple images" in report
    assert "| goldfish |" in report  # the preset is found and placed
    assert (tmp_path / "iou_distributions.png").stat().st_size > 0
    assert (tmp_path / "iou_vs_edge_density.png").stat().st_size > 0


def test_hugging_face_source_streams_bytes_with_ids(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "hf" / "train"
    paths = _synthetic_images(folder, 3)
    real_load = datasets.load_dataset

    def offline_imagefolder(name, split, streaming):  # stands in for the hub: the same streaming API, offline
        assert (name, split, streaming) == ("someone/images", "train", True)
        return real_load("imagefolder", data_dir=str(folder.parent), split="train", streaming=True)

    monkeypatch.setattr(datasets, "load_dataset", offline_imagefolder)
    spec = HuggingFaceSpec.parse("hf:someone/images:train:image")
    records = list(spec.records())
    assert [r.id for r in records] == ["train-00000000", "train-00000001", "train-00000002"]
    assert sorted(Path(r.path).name for r in records) == sorted(p.name for p in paths)
    with pytest.raises(XaiLensError, match="no column 'picture'"):
        HuggingFaceSpec.parse("hf:someone/images:train:picture").open()
    with pytest.raises(XaiLensError, match="hf:NAME"):
        HuggingFaceSpec.parse("hf:a:b:c:d")


def test_bad_source_and_changed_settings_fail_in_one_line(tmp_path):
    with pytest.raises(XaiLensError, match="neither a folder"):
        resolve_source(str(tmp_path / "missing"))
    source = resolve_source(str(_synthetic_images(tmp_path / "imgs", 1)[0].parent))
    from explainers.study.runner import _save_settings

    _save_settings(tmp_path / "out", source, SETTINGS)
    changed = StudySettings("resnet18", "random", ("gradcam", "lime"))
    with pytest.raises(XaiLensError, match="other settings \\(methods\\)"):
        _save_settings(tmp_path / "out", source, changed)


def test_finished_ids_ignore_half_written_parts(tmp_path):
    columns = StudyColumns(METHODS)
    write_part(columns.table([{"id": "a"}, {"id": "b"}]), tmp_path)
    (tmp_path / PARTS_DIR / ".part-x.parquet.tmp").write_bytes(b"half a file")
    assert finished_ids(tmp_path) == {"a", "b"}


def test_a_bad_record_becomes_its_error_row(resnet18_random, tmp_path):
    from explainers.study.runner import study_row

    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image\nsecond line")
    row = study_row(StudyRecord("bad", path=str(bad)), resnet18_random, SETTINGS)
    assert "bad.jpg" in row["error"] and "\n" not in row["error"]
    assert "target" not in row


# --- Ray: 2 local CPU workers --------------------------------------------------------------------


def _preset_variants(examples_dir: Path, folder: Path) -> list[Path]:
    """30 distinct images from the ten presets: each as it is, its left 85% and its lower 85%."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for preset in sorted(examples_dir.glob("*.JPEG")):
        image = Image.open(preset).convert("RGB")
        width, height = image.size
        copy = folder / preset.name
        copy.write_bytes(preset.read_bytes())
        left = folder / f"{preset.stem}__left.png"
        image.crop((0, 0, int(width * 0.85), height)).save(left)
        lower = folder / f"{preset.stem}__lower.png"
        image.crop((0, int(height * 0.15), width, height)).save(lower)
        paths += [copy, left, lower]
    return paths


@pytest.mark.slow
@pytest.mark.presets
@pytest.mark.usefixtures("local_ray")
def test_study_gives_the_same_results_as_explain(examples_dir, tmp_path):
    from explainers.cli import main as explain_main

    images = _preset_variants(examples_dir, tmp_path / "images")
    assert len(images) == 30
    outcome = run_study(resolve_source(str(tmp_path / "images")), SETTINGS, tmp_path / "study", workers=2)
    assert outcome.ran == 30 and outcome.errors == 0
    assert len(outcome.per_worker) == 2  # both actors took images
    argv = ["explain", *map(str, images), "--model", "resnet18", "--weights", "random", "--device", "cpu"]
    assert explain_main([*argv, "--methods", ",".join(METHODS), "--out", str(tmp_path / "explain")]) == 0
    rows = {row["id"]: row for row in outcome.table.to_pylist()}
    for image in images:
        summary = json.loads((tmp_path / "explain" / image.stem / "summary.json").read_text())
        row = rows[image.stem]
        assert row["target"] == summary["target"]["index"], image.name
        assert row["probability"] == pytest.approx(summary["target"]["probability"], abs=1e-6)
        assert [p["index"] for p in row["top5"]] == [p["index"] for p in summary["top5"]]
        for p_row, p_summary in zip(row["top5"], summary["top5"], strict=True):
            assert p_row["probability"] == pytest.approx(p_summary["probability"], abs=1e-6)
        for pair, value in summary["iou"].items():
            assert row[f"iou__{pair.replace('|', '__')}"] == pytest.approx(value, abs=1e-6), (image.name, pair)
        for pair, value in summary["dice"].items():
            assert row[f"dice__{pair.replace('|', '__')}"] == pytest.approx(value, abs=1e-6), (image.name, pair)
        assert all(row[f"seconds__{m}"] > 0 for m in METHODS)


def _part_ids(out: Path) -> list[str]:
    parts = sorted((out / PARTS_DIR).glob("part-*.parquet"))
    return [image_id for part in parts for image_id in pq.read_table(part)["id"].to_pylist()]


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_a_killed_run_resumes_with_each_image_once(tmp_path):
    images = _synthetic_images(tmp_path / "images", 16)
    out = tmp_path / "study"
    command = [sys.executable, "-m", "explainers.study", str(tmp_path / "images"), "--model", "resnet18"]
    command += ["--weights", "random", "--methods", ",".join(METHODS), "--out", str(out), "--workers", "1"]
    command += ["--batch-size", "2"]
    kill_after_first_part(command, REPO, lambda: bool(list((out / PARTS_DIR).glob("part-*.parquet"))), RAY_BOUND_S)
    first = _part_ids(out)
    assert 0 < len(first) < len(images), "the kill must land halfway for this test to mean anything"
    outcome = run_study(resolve_source(str(tmp_path / "images")), SETTINGS, out, workers=2, batch_size=2)
    ids = _part_ids(out)
    assert sorted(ids) == sorted(p.stem for p in images)  # every image, each exactly once, across both runs
    assert outcome.ran == len(images) - len(first) and outcome.skipped == len(first)
    assert outcome.table.num_rows == len(images)


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_a_bad_image_gets_its_error_row_and_the_study_goes_on(tmp_path):
    images = _synthetic_images(tmp_path / "images", 5)
    (tmp_path / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG")
    (tmp_path / "images" / "empty.png").write_bytes(b"")
    outcome = run_study(resolve_source(str(tmp_path / "images")), SETTINGS, tmp_path / "study", workers=2)
    rows = {row["id"]: row for row in outcome.table.to_pylist()}
    assert set(rows) == {p.stem for p in images} | {"broken", "empty"}
    for name in ("broken", "empty"):
        assert rows[name]["error"] and "\n" not in rows[name]["error"] and rows[name]["target"] is None
    assert "broken.jpg" in rows["broken"]["error"] and "empty" in rows["empty"]["error"]
    assert all(rows[p.stem]["error"] is None and rows[p.stem]["target"] is not None for p in images)
    assert outcome.errors == 2 and outcome.ran == 7


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_the_local_instance_listens_on_loopback_only():
    import ray

    assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"


@pytest.mark.slow
def test_a_process_that_imported_ray_first_still_starts_the_local_instance():
    """A notebook or script often imports ray before calling the study: its settings are read by then, and
    changing one under it (the auth mode) kept the local GCS from starting."""
    script = (
        "import ray\n"
        "from explainers.study.ray_engine import init_ray\n"
        "init_ray(None, local_cpus=1)\n"
        "print(ray.cluster_resources()['CPU'])\n"
        "ray.shutdown()\n"
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "1.0"
