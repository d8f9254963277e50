"""End-to-end builds on planted ground truth, and the real transformers CLIP path on a tiny random config."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from dissection_planted import CONCEPTS, EXPECTED, SIDE, SIZES_PER_SHAPE, TOP_K, PlantedClip, planted_model

from dissection_data import tables
from dissection_data.build import BuildOptions, StageTimer, build_tables
from dissection_data.concepts import ConceptSet, _make
from dissection_data.offline_clip import TINY, random_clip_encoder
from dissection_data.probes import folder_probe_set
from dissection_data.synthetic import write_shape_probe_set


@pytest.fixture(scope="module")
def shape_probes(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shapes")
    write_shape_probe_set(directory, size=SIDE, sizes_per_shape=SIZES_PER_SHAPE)
    return folder_probe_set(directory)


def planted_concepts() -> ConceptSet:
    return _make("planted", CONCEPTS, "test")


def build_planted(tmp_path, probe_set, similarity="soft_wpmi", **params):
    options = BuildOptions(
        layers=("layer3", "layer4", "fc"),
        out=tmp_path / "tables",
        cache=tmp_path / "cache",
        similarity=similarity,
        similarity_params={"top_k": TOP_K, **params} if similarity in ("soft_wpmi", "wpmi") else params,
        device="cpu",
    )
    timer = StageTimer()
    results = build_tables(
        options,
        probe_set=probe_set,
        concept_set=planted_concepts(),
        encoder=PlantedClip(),
        models=[planted_model()],
        timer=timer,
    )
    return results, timer


@pytest.mark.parametrize("similarity", ["soft_wpmi", "wpmi"])
def test_every_planted_neuron_gets_its_planted_concept(tmp_path, shape_probes, similarity):
    (result,), _ = build_planted(tmp_path, shape_probes, similarity)
    table = tables.read_table(result.directory)
    for layer, expected in EXPECTED.items():
        if layer == "fc":
            continue  # fc units are colour+shape classes, absent from this concept set; see the self-check
        got = [row.concept for row in table.rows_for(layer)]
        assert got == expected, f"{layer}: {got}"
    check = result.meta["self_check"]
    assert (check["top1"], check["top5"], check["neurons"]) == (1.0, 1.0, len(EXPECTED["fc"]))


def test_planted_fc_top_images_are_their_class(tmp_path, shape_probes):
    (result,), _ = build_planted(tmp_path, shape_probes)
    table = tables.read_table(result.directory)
    for row, name in zip(table.rows_for("fc"), EXPECTED["fc"], strict=True):
        assert all(image.startswith(name.replace(" ", "_")) for image in row.top_images[:SIZES_PER_SHAPE])
        assert len(table.thumbnail_paths("fc", row.unit)) == len(row.top_images)


def test_rebuild_reuses_cached_features(tmp_path, shape_probes):
    build_planted(tmp_path, shape_probes)
    calls = []
    clip = PlantedClip()
    original = clip.encode_images
    clip.encode_images = lambda images: calls.append(len(images)) or original(images)
    options = BuildOptions(
        out=tmp_path / "tables", cache=tmp_path / "cache", device="cpu", similarity_params={"top_k": TOP_K}
    )
    model = planted_model()
    forward_calls = []
    model.module.register_forward_hook(lambda *args: forward_calls.append(1))
    build_tables(options, probe_set=shape_probes, concept_set=planted_concepts(), encoder=clip, models=[model])
    assert calls == [] and forward_calls == []  # neither CLIP nor the model ran again


def test_transformers_clip_path_on_tiny_random_config(tmp_path, shape_probes):
    concepts = planted_concepts()
    encoder = random_clip_encoder(TINY, concepts.concepts, device="cpu")
    image_feats = encoder.encode_images([next(shape_probes.images())])
    assert image_feats.shape == (1, TINY.projection_dim)
    torch.testing.assert_close(image_feats.norm(dim=1), torch.ones(1))
    options = BuildOptions(
        out=tmp_path / "tables", cache=tmp_path / "cache", device="cpu", similarity_params={"top_k": TOP_K}
    )
    (result,) = build_tables(
        options, probe_set=shape_probes, concept_set=concepts, encoder=encoder, models=[planted_model()]
    )
    meta = json.loads((result.directory / "meta.json").read_text())
    assert meta["clip"]["random"] is True and "RANDOM CLIP" in meta["warning"]
    with (result.directory / "neurons.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 + 3 + 9
    assert all(row["concept"] in concepts.concepts for row in rows)
