"""`python -m tools.deploy --build-tables` on stand-ins: the planted model and CLIP of the dissection tests
(tests/dissection_planted.py), generated shape probes, and a fake Hub API (no network).

The planted model's fc self-check is 100% by construction; a copy whose class names are shifted by one
(the classic broken build: names in the wrong order) scores 0% and must be refused.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from dissection_planted import CLASSES, CONCEPTS, SIDE, SIZES_PER_SHAPE, PlantedClip, PlantedNet, planted_model

from dissection_data import build as build_module
from dissection_data import features, provenance, space_tables
from dissection_data.concepts import _make
from dissection_data.probes import folder_probe_set
from dissection_data.synthetic import write_shape_probe_set
from dissection_data.tables import load_tables, read_table
from explainers.concepts.published import PUBLISHED_TABLES, read_published_csv
from explainers.engine.models import LoadedModel
from tools import deploy

ROOT = Path(__file__).resolve().parent.parent
FLOOR = "0.5"


@pytest.fixture(scope="module")
def shape_probes(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shapes")
    write_shape_probe_set(directory, size=SIDE, sizes_per_shape=SIZES_PER_SHAPE)
    return folder_probe_set(directory)


def trained_planted(name: str = "planted", shift: int = 0) -> LoadedModel:
    """The planted model under a weights label that is not 'random' (it stands for a trained model);
    `shift` rotates its class names, so each fc neuron carries its neighbour's name."""
    base = planted_model()
    spec = dataclasses.replace(base.spec, name=name)
    names = CLASSES[shift:] + CLASSES[:shift]
    return LoadedModel(spec, "planted-weights", PlantedNet().eval(), names, torch.device("cpu"))


class FakeHub:
    """Records what deploy asks of the Hugging Face API; holds one stale thumbnail from an older deploy."""

    def __init__(self, remote: list[str] | None = None):
        self.calls: list[tuple] = []
        self.remote = remote or []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id))

    def list_repo_files(self, repo_id, **kwargs):
        return list(self.remote)

    def create_commit(self, repo_id, operations, **kwargs):
        self.calls.append(("create_commit", repo_id, operations))

    def add_space_variable(self, repo_id, key, value):
        self.calls.append(("variable", key, value))

    def request_space_hardware(self, repo_id, hardware, **kwargs):
        self.calls.append(("hardware", hardware))

    def commit_operations(self) -> list:
        (commit,) = [call for call in self.calls if call[0] == "create_commit"]
        return commit[2]


def inputs(probes, *models):
    return {"models": list(models), "probe_set": probes, "concept_set": _make("planted", CONCEPTS, "test"),
            "encoder": PlantedClip()}  # fmt: skip


def run_deploy(tmp_path: Path, *extra: str, build_inputs=None, api=None) -> int:
    argv = ["--space", "me/lens", "--tables", str(tmp_path / "tables"), "--cache", str(tmp_path / "cache"), *extra]
    return deploy.main(argv, build_inputs=build_inputs, api=api)


def test_build_tables_builds_checks_and_publishes_with_the_space(tmp_path, shape_probes, capsys):
    hub = FakeHub(remote=["dissection_data/tables/planted/thumbs/old_image.jpg", "app/keep.py"])
    code = run_deploy(
        tmp_path, "--build-tables", "--min-self-check", FLOOR, build_inputs=inputs(shape_probes, trained_planted()),
        api=hub,
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "planted: fc self-check with class names as concepts: top-1 100.0%, top-5 100.0% of 9 neurons" in out

    table = read_table(tmp_path / "tables" / "planted", "planted")  # promoted where the app reads
    assert table.meta["self_check"]["top1"] == 1.0 and table.meta["clip"]["id"] == PlantedClip.model_id
    assert {row.layer for row in table.rows} == {"layer3", "layer4", "fc"}

    operations = hub.commit_operations()
    added = {op.path_in_repo: op for op in operations if type(op).__name__ == "CommitOperationAdd"}
    deleted = [op.path_in_repo for op in operations if type(op).__name__ == "CommitOperationDelete"]
    table_paths = sorted(p for p in added if p.startswith("dissection_data/tables/planted/"))
    thumbs = sorted(p.name for p in (tmp_path / "tables" / "planted" / "thumbs").iterdir())
    assert table_paths == sorted(
        ["dissection_data/tables/planted/neurons.csv", "dissection_data/tables/planted/meta.json"]
        + [f"dissection_data/tables/planted/thumbs/{name}" for name in thumbs]
    )
    assert thumbs and "space_app.py" in added and not any(p.startswith(("tests/", "tools/")) for p in added)
    assert deleted == ["dissection_data/tables/planted/thumbs/old_image.jpg"]  # app/keep.py is not ours to drop
    assert ("hardware", "zero-a10g") in hub.calls


def test_a_table_below_the_floor_is_refused_and_nothing_is_uploaded(tmp_path, shape_probes, capsys):
    hub = FakeHub()
    models = [trained_planted(), trained_planted("shifted", shift=1)]
    code = run_deploy(tmp_path, "--build-tables", "--min-self-check", FLOOR, build_inputs=inputs(shape_probes, *models),
                      api=hub)  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and hub.calls == []
    assert "shifted: fc self-check top-1 0.0% is below the floor of 50.0%" in captured.err
    assert (tmp_path / "tables" / "planted" / "neurons.csv").is_file()  # the good one is in place
    assert not (tmp_path / "tables" / "shifted").exists()  # the refused one stays in staging only
    staged = tmp_path / "cache" / space_tables.STAGING_NAME / "shifted" / "meta.json"
    assert json.loads(staged.read_text())["self_check"]["top1"] == 0.0

    # The dry run's upload list holds exactly the accepted table's files, with its provenance line.
    assert run_deploy(tmp_path, "--dry-run") == 0
    out = capsys.readouterr().out
    listed = [line.strip() for line in out.splitlines() if line.startswith("  dissection_data/tables/")]
    assert "  dissection_data/tables/demo/resnet18/neurons.csv" in out  # the committed fallback, hidden by the app
    listed = [path for path in listed if not path.startswith("dissection_data/tables/demo/")]
    thumbs = (tmp_path / "tables" / "planted" / "thumbs").iterdir()
    expected = ["neurons.csv", "meta.json", *(f"thumbs/{p.name}" for p in thumbs)]
    assert sorted(listed) == sorted(f"dissection_data/tables/planted/{name}" for name in expected)
    assert "Table planted: upload" in out and "Built by XAI Lens" in out and "top-1 100.0%" in out
    assert hub.calls == []


def test_dry_run_with_build_tables_lists_what_it_would_build_and_builds_nothing(tmp_path, monkeypatch, capsys):
    def no_build(*args, **kwargs):
        raise AssertionError("a dry run built something")

    monkeypatch.setattr(space_tables, "build_tables", no_build)
    monkeypatch.setattr(build_module, "build_tables", no_build)
    assert run_deploy(tmp_path, "--build-tables", "--dry-run", api=FakeHub()) == 0
    out = capsys.readouterr().out
    for model in ("resnet18", "resnet18-places365"):
        assert f"  {model}: would build into {tmp_path / 'tables' / model} (built by XAI Lens)" in out
        assert f"  dissection_data/tables/{model}/neurons.csv" in out
        assert f"  dissection_data/tables/{model}/meta.json" in out
    assert "CLIP openai/clip-vit-base-patch16, probe set imagenet1000, concepts 20k" in out
    assert "at least 20%" in out and "Dry run: nothing built, nothing uploaded." in out
    assert not (tmp_path / "cache").exists() and not (tmp_path / "tables").exists()


def test_a_build_killed_halfway_resumes_from_what_was_done(tmp_path, shape_probes):
    """The second model fails during its activations (as a kill would stop it); the rerun must not
    recompute CLIP features or the first model's activations, and must finish both tables."""
    first, second = trained_planted("first"), trained_planted("second")
    forward = second.module.forward
    state = {"fail": True}

    def dies_once(x):
        if state["fail"]:
            raise KeyboardInterrupt  # what Ctrl-C or a kill's signal handler raises mid-pass
        return forward(x)

    second.module.forward = dies_once
    plan = space_tables.plan_space_build(tmp_path / "tables", tmp_path / "cache", device="cpu")
    with pytest.raises(KeyboardInterrupt):
        space_tables.build_and_promote(plan, log=lambda line: None, **inputs(shape_probes, first, second))
    assert not (tmp_path / "tables").exists()

    state["fail"] = False
    clip = PlantedClip()
    image_calls, first_calls = [], []
    original_images = clip.encode_images
    clip.encode_images = lambda images: image_calls.append(len(images)) or original_images(images)
    first.module.register_forward_hook(lambda *args: first_calls.append(1))
    lines: list[str] = []
    rerun = {**inputs(shape_probes, first, second), "encoder": clip}
    outcomes = space_tables.build_and_promote(plan, log=lines.append, **rerun)
    assert image_calls == [] and first_calls == []  # done before the failure: reused from the cache
    assert [o.model for o in outcomes if o.promoted] == ["first", "second"]
    assert any("a rerun resumes" in line for line in lines)


def test_a_build_killed_inside_the_clip_image_pass_resumes_at_the_next_chunk(tmp_path, shape_probes, monkeypatch):
    """The CPU build's longest pass is cached chunk by chunk: killed in its third chunk, the rerun encodes
    only the images from that chunk on, and the table is the same as an uninterrupted build's."""
    monkeypatch.setattr(features, "IMAGE_CHUNK", 8)
    plan = space_tables.plan_space_build(tmp_path / "tables", tmp_path / "cache", device="cpu")
    dying, encoded = PlantedClip(), []
    original = dying.encode_images

    def killed_in_third_chunk(images):
        if len(encoded) >= 16:
            raise KeyboardInterrupt
        encoded.extend(images)
        return original(images)

    dying.encode_images = killed_in_third_chunk
    with pytest.raises(KeyboardInterrupt):
        space_tables.build_and_promote(plan, log=lambda line: None, **{**inputs(shape_probes, trained_planted()),
                                                                      "encoder": dying})  # fmt: skip
    resumed, encoded_again = PlantedClip(), []
    original_resumed = resumed.encode_images
    resumed.encode_images = lambda images: encoded_again.extend(images) or original_resumed(images)
    rerun = {**inputs(shape_probes, trained_planted()), "encoder": resumed}
    (outcome,) = space_tables.build_and_promote(plan, log=lambda line: None, **rerun)
    assert len(encoded_again) == len(shape_probes) - 16  # the first two chunks came from the cache
    assert outcome.promoted is not None
    fresh = space_tables.plan_space_build(tmp_path / "fresh", tmp_path / "fresh-cache", device="cpu")
    space_tables.build_and_promote(fresh, log=lambda line: None, **inputs(shape_probes, trained_planted()))
    resumed_rows = read_table(outcome.promoted).rows
    assert resumed_rows == read_table(tmp_path / "fresh" / "planted").rows


# --- provenance: one line per kind, and which tables the app presents ---


def built_table(tmp_path, shape_probes):
    plan = space_tables.plan_space_build(tmp_path / "tables", tmp_path / "cache", device="cpu")
    space_tables.build_and_promote(plan, log=lambda line: None, **inputs(shape_probes, trained_planted()))
    return read_table(tmp_path / "tables" / "planted", "planted")


def test_provenance_line_of_a_table_built_here(tmp_path, shape_probes):
    table = built_table(tmp_path, shape_probes)
    line = provenance.provenance_line(table)
    assert provenance.table_kind(table) == provenance.BUILT
    assert line.startswith("Built by XAI Lens") and "\n" not in line
    assert f"CLIP {PlantedClip.model_id}" in line and "(36 images)" in line
    assert "top-1 100.0% / top-5 100.0% (9 neurons)" in line and table.meta["created"][:10] in line
    assert "RANDOM" not in line


def test_provenance_line_of_a_table_published_by_clip_dissect(tmp_path):
    spec = PUBLISHED_TABLES["resnet18-places365"]
    path = tmp_path / spec.file
    path.write_text("layer,unit,description,similarity\nlayer4,0,kitchen,0.31\n")
    table = read_published_csv(path, spec)
    line = provenance.provenance_line(table)
    assert provenance.table_kind(table) == provenance.PUBLISHED
    assert line == (
        "Published by CLIP-dissect's authors (their repository at commit 21e7697), probe set ImageNet val + Broden."
    )


def test_provenance_line_of_the_demo_names_the_build_command():
    demo = [table for table in load_tables() if table.key == "demo/resnet18"]
    assert demo, "the committed demo table is missing"
    line = provenance.provenance_line(demo[0])
    assert provenance.table_kind(demo[0]) == provenance.DEMO
    assert "meaningless" in line and provenance.SPACE_BUILD_COMMAND in line and "\n" not in line


def test_demo_tables_are_served_only_when_nothing_else_is_there(tmp_path, shape_probes):
    demos = load_tables(ROOT / "dissection_data" / "tables")
    assert demos and all(t.is_demo for t in demos)
    assert provenance.select_served(demos) == demos
    real = built_table(tmp_path, shape_probes)
    assert provenance.select_served([*demos, real]) == [real]
    for demo in demos:  # a real table beside the demos on disk: the app's list holds the real one only
        target = tmp_path / "tables" / demo.key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(demo.root, target)
    assert [t.key for t in provenance.served_tables(tmp_path / "tables")] == ["planted"]


# --- the gate on its own ---


def test_refusal_names_each_reason_and_accepts_a_sound_table(tmp_path, shape_probes):
    table = built_table(tmp_path, shape_probes)
    assert space_tables.refusal(table, 1.0) is None  # 100% meets a floor of 100%

    def variant(**meta):
        return dataclasses.replace(table, meta={**table.meta, **meta})

    assert "random model weights" in space_tables.refusal(variant(random_weights=True))
    assert "randomly initialised CLIP" in space_tables.refusal(variant(clip={"id": "x", "random": True}))
    assert "no fc self-check" in space_tables.refusal(variant(self_check={}))
    assert "demo table" in space_tables.refusal(variant(demo=True))
    low = space_tables.refusal(variant(self_check={"top1": 0.19, "top5": 0.4}))
    assert "19.0% is below the floor of 20.0%" in low and "\n" not in low
