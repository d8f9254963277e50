"""`dissection_data build --engine ray`: the same features and tables as the in-process build, resumable, bad images
skipped in one line.

The Ray tests run a private local instance with 2 CPU workers, random-weight models and test_dissection_cli's tiny
random CLIP saved as a folder (so actors load it by name, as cluster nodes do), over its generated shape images.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from ray_local import SCALE_MISSING, kill_after_first_part, local_ray  # noqa: F401 (local_ray: the fixture the Ray tests use)
from test_dissection_cli import tiny_setup  # noqa: F401 (a fixture, used through `setup` below)

if SCALE_MISSING:
    pytest.skip(SCALE_MISSING, allow_module_level=True)
import pyarrow.parquet as pq

from dissection_data import features
from dissection_data.build import SELF_CHECK_LAYER, BuildOptions, build_tables
from dissection_data.cache import FeatureCache
from dissection_data.clip_encoder import TransformersClip
from dissection_data.probes import folder_probe_set
from dissection_data.scale import PARTS_KIND, ExtractionRecipe, extract_on_ray
from dissection_data.synthetic import write_shape_probe_set
from explainers.engine.models import load_model
from explainers.inputs.images import load_image
from explainers.study.results import PARTS_DIR
from explainers.study.sources import resolve_source

REPO = Path(__file__).resolve().parents[1]
MODELS = ("resnet18", "resnet18-places365")
LAYERS = ("layer4", "fc")
RAY_BOUND_S = 600  # a safety bound on any one Ray run in these tests, not a speed claim


@pytest.fixture(scope="module")
def setup(request) -> Path:
    """test_dissection_cli's tiny_setup: 18 shape images in probes/, words.txt, a tiny random CLIP in clip/."""
    return request.getfixturevalue("tiny_setup")


def _options(root: Path, probes: Path, out: Path, cache: Path, **engine) -> BuildOptions:
    return BuildOptions(
        models=MODELS,
        layers=LAYERS,
        weights="random",
        probe_dir=probes,
        concepts_file=root / "words.txt",
        clip=str(root / "clip"),
        device="cpu",
        out=out,
        cache=cache,
        batch_size=4,
        **engine,
    )


def _rows(table_dir: Path) -> list[dict[str, str]]:
    with (table_dir / "neurons.csv").open() as handle:
        return list(csv.DictReader(handle))


def _cached(cache: Path, kind: str, key: dict) -> object:
    """A cache entry that must exist (computing it here would hide a miss)."""
    return FeatureCache(cache).get_or_compute(kind, key, lambda: pytest.fail(f"no {kind} entry for {key}"))


def _part_ids(cache: Path) -> list[str]:
    parts = sorted((cache / PARTS_KIND).glob(f"*/{PARTS_DIR}/part-*.parquet"))
    return [image_id for part in parts for image_id in pq.read_table(part, columns=["id"])["id"].to_pylist()]


# --- fast: no Ray ---------------------------------------------------------------------------------


def test_hf_probe_without_ray_engine_and_missing_extra_are_one_line(setup, monkeypatch, capsys):
    from dissection_data.__main__ import main

    args = [
        "build",
        "--models",
        "resnet18",
        "--weights",
        "random",
        "--clip",
        str(setup / "clip"),
        "--device",
        "cpu",
    ]
    args += ["--concepts-file", str(setup / "words.txt"), "--cache", str(setup / "no-cache-used")]
    assert main([*args, "--probe", "hf:ILSVRC/imagenet-1k:validation:image"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--engine ray" in err
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main([*args, "--probe-dir", str(setup / "probes"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install .[scale]" in err


# --- Ray: 2 local CPU workers --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_ray_build_gives_the_in_process_features_and_tables(setup, tmp_path):
    probes = setup / "probes"
    results_local = build_tables(_options(setup, probes, tmp_path / "local", tmp_path / "cache-local"))
    results_ray = build_tables(
        _options(setup, probes, tmp_path / "ray", tmp_path / "cache-ray", engine="ray", workers=2)
    )

    # the Ray build's cache entries hold the features an independent in-process pass computes now
    probe_set = folder_probe_set(probes)
    encoder = TransformersClip.from_pretrained(str(setup / "clip"), "cpu")
    expected_clip = encoder.encode_images(list(probe_set.images()))
    got_clip = _cached(tmp_path / "cache-ray", "clip_images", features.clip_images_key(encoder, probe_set.fingerprint))
    torch.testing.assert_close(got_clip, expected_clip, rtol=1e-4, atol=1e-5)
    hooked = list(dict.fromkeys([*LAYERS, SELF_CHECK_LAYER]))  # what the build hooks
    for name in MODELS:
        model = load_model(name, "random", "cpu")
        expected = features.compute_activations(model, probe_set, hooked, "mean", batch_size=32)
        key = features.activations_key(model, probe_set.fingerprint, hooked, "mean")
        got = _cached(tmp_path / "cache-ray", "activations", key)
        assert set(got) == set(expected)
        for layer in hooked:
            assert got[layer].shape == (len(probe_set), expected[layer].shape[1])
            torch.testing.assert_close(got[layer], expected[layer], rtol=1e-4, atol=1e-4)

    # the same tables: every neuron's concept, score and top images
    for local_result, ray_result in zip(results_local, results_ray, strict=True):
        local_rows, ray_rows = _rows(local_result.directory), _rows(ray_result.directory)
        assert len(ray_rows) == len(local_rows) > 0
        for a, b in zip(local_rows, ray_rows, strict=True):
            for exact in ("model", "layer", "unit", "concept", "top5_concepts", "top_images"):
                assert a[exact] == b[exact], (exact, a, b)
            for close in ("similarity", "top5_similarities"):
                assert [float(v) for v in a[close].split("|")] == pytest.approx(
                    [float(v) for v in b[close].split("|")], rel=1e-3, abs=1e-5
                )
        assert ray_result.meta["probe"] == local_result.meta["probe"]
        assert ray_result.meta["self_check"] == local_result.meta["self_check"]
        thumbs = sorted(p.name for p in (ray_result.directory / "thumbs").iterdir())
        assert thumbs == sorted(p.name for p in (local_result.directory / "thumbs").iterdir()) and thumbs
    # both actors took images
    parts = sorted((tmp_path / "cache-ray" / PARTS_KIND).glob(f"*/{PARTS_DIR}/part-*.parquet"))
    workers = {w for part in parts for w in pq.read_table(part, columns=["worker"])["worker"].to_pylist()}
    assert len(workers) == 2


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_a_killed_build_resumes_with_each_image_once(setup, tmp_path):
    probes = setup / "probes"
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "dissection_data", "build", "--engine", "ray", "--workers", "1"]
    command += ["--models", "resnet18", "--layers", "layer4", "--weights", "random", "--probe-dir", str(probes)]
    command += ["--concepts-file", str(setup / "words.txt"), "--clip", str(setup / "clip"), "--device", "cpu"]
    command += ["--out", str(tmp_path / "tables"), "--cache", str(cache), "--batch-size", "2"]
    kill_after_first_part(command, REPO, lambda: bool(_part_ids(cache)), RAY_BOUND_S)
    first = _part_ids(cache)
    total = len(list(probes.iterdir()))
    assert 0 < len(first) < total, "the kill must land halfway for this test to mean anything"

    returned: list[str] = []  # every row the actors send back in the second run, saved or not
    model = load_model("resnet18", "random", "cpu")
    encoder = TransformersClip.from_pretrained(str(setup / "clip"), "cpu")
    recipe = ExtractionRecipe(("resnet18",), "random", str(setup / "clip"), ("layer4", SELF_CHECK_LAYER), "mean")
    probe_set = extract_on_ray(
        resolve_source(str(probes)),
        recipe,
        [model],
        encoder,
        FeatureCache(cache),
        workers=2,
        batch_size=2,
        on_batch=lambda batch: returned.extend(batch["id"].to_pylist()),
    )
    assert sorted(returned) == sorted(set(probe_set.ids) - set(first))  # only what the first run had not done
    assert sorted(_part_ids(cache)) == sorted(probe_set.ids) and len(probe_set) == total  # each image once
    acts = _cached(cache, "activations", features.activations_key(model, probe_set.fingerprint, recipe.layers, "mean"))
    assert acts["layer4"].shape[0] == total


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_a_bad_image_is_skipped_with_its_one_line_error(setup, tmp_path):
    probes = tmp_path / "probes"
    good = write_shape_probe_set(probes, size=64, sizes_per_shape=1)
    (probes / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is no JPEG\nsecond line")
    (probes / "empty.png").write_bytes(b"")
    lines: list[str] = []
    options = _options(setup, probes, tmp_path / "tables", tmp_path / "cache", engine="ray", workers=2)
    options.models = ("resnet18",)
    (result,) = build_tables(options, log=lines.append)
    skipped = [line for line in lines if line.startswith("skipped ")]
    assert sorted(line.split(":")[0] for line in skipped) == ["skipped broken", "skipped empty"]
    assert all("\n" not in line for line in lines)
    assert "broken.jpg" in next(line for line in skipped if "broken" in line)
    assert result.meta["probe"]["images"] == len(good) and result.meta["probe"]["skipped_unreadable"] == 2
    assert result.meta["probe"]["fingerprint"] != folder_probe_set(probes).fingerprint  # not the set with them
    assert {row["top_images"] for row in _rows(result.directory)}.isdisjoint({"broken", "empty"})


@pytest.mark.slow
@pytest.mark.usefixtures("local_ray")
def test_a_streamed_hugging_face_split_builds_with_thumbnails(setup, tmp_path):
    """hf:FOLDER is a local imagefolder read through the `datasets` streaming API, as hf:ILSVRC/imagenet-1k is:
    no paths list and no content fingerprint, so thumbnails come from a second streamed pass."""
    folder = tmp_path / "split"
    write_shape_probe_set(folder, size=64, sizes_per_shape=1)
    spec = f"hf:{folder}:train:image"
    options = _options(setup, folder, tmp_path / "tables", tmp_path / "cache", engine="ray", workers=2)
    options.probe, options.probe_dir, options.models = spec, None, ("resnet18",)
    (result,) = build_tables(options)
    records = list(resolve_source(spec).records())
    assert result.meta["probe"]["images"] == len(records) == 9 and "streamed" in result.meta["probe"]["source"]
    model = load_model("resnet18", "random", "cpu")
    images = [load_image(record.path) for record in records]
    expected = features.pooled_activations(model, images, ["layer4", "fc"], "mean")
    key = features.activations_key(model, result.meta["probe"]["fingerprint"], ["layer4", "fc"], "mean")
    got = _cached(tmp_path / "cache", "activations", key)
    for layer in ("layer4", "fc"):
        torch.testing.assert_close(got[layer], expected[layer], rtol=1e-4, atol=1e-4)
    wanted = {image for row in _rows(result.directory) for image in row["top_images"].split("|")}
    assert wanted and {p.stem for p in (result.directory / "thumbs").iterdir()} == wanted
