"""The command line: a full build on a tiny offline setup writes the documented table format, and
missing weights or network give one line and exit status 2, never a traceback."""

from __future__ import annotations

import csv
import json
import urllib.error
from pathlib import Path

import pytest

from dissection_data import tables
from dissection_data.__main__ import main
from dissection_data.offline_clip import TINY, save_random_clip
from dissection_data.synthetic import write_shape_probe_set

WORDS = ["red", "green", "blue", "circle", "square", "triangle", "dog", "car", "tree", "sky", "the", "water"]


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    write_shape_probe_set(root / "probes", size=64, sizes_per_shape=2)
    (root / "words.txt").write_text("\n".join(WORDS) + "\n")
    save_random_clip(root / "clip", TINY, WORDS)
    return root


def _build_args(root: Path, *extra: str) -> list[str]:
    return [
        "build",
        "--models", "resnet18",
        "--weights", "random",
        "--probe-dir", str(root / "probes"),
        "--concepts-file", str(root / "words.txt"),
        "--clip", str(root / "clip"),
        "--device", "cpu",
        "--out", str(root / "tables"),
        "--cache", str(root / "cache"),
        "--param", "top_k=5",
        *extra,
    ]  # fmt: skip


def test_cli_build_writes_documented_table(tiny_setup):
    assert main(_build_args(tiny_setup)) == 0
    directory = tiny_setup / "tables" / "resnet18"
    with (directory / tables.CSV_NAME).open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == tables.COLUMNS
        rows = list(reader)
    assert [sum(r["layer"] == layer for r in rows) for layer in ("layer3", "layer4", "fc")] == [256, 512, 1000]
    first = rows[0]
    assert first["model"] == "resnet18" and first["concept"] in WORDS
    assert first["top5_concepts"].split("|")[0] == first["concept"] and len(first["top5_concepts"].split("|")) == 5
    assert len(first["top_images"].split("|")) == 5

    meta = json.loads((directory / tables.META_NAME).read_text())
    assert meta["format"] == tables.TABLE_FORMAT
    assert meta["random_weights"] is True and "RANDOM WEIGHTS" in meta["warning"] and meta["demo"] is False
    assert meta["similarity"] == {
        "name": "soft_wpmi",
        "params": {"top_k": 5, "a": 10, "lam": 1, "min_prob": 1e-7, "p_start": 0.998, "p_end": 0.97},
    }
    assert meta["layers"] == {"layer3": 256, "layer4": 512, "fc": 1000}
    assert meta["probe"]["images"] == 18 and meta["concepts"]["concepts"] == len(WORDS)
    assert meta["clip"]["id"] == str(tiny_setup / "clip")
    assert {"torch", "transformers", "wordfreq"} <= set(meta["versions"])
    assert 0 <= meta["self_check"]["top1"] <= meta["self_check"]["top5"] <= 1
    assert meta["time_s"] > 0 and "CLIP image features" in meta["timings_s"]

    (table,) = tables.load_tables(tiny_setup / "tables")
    assert table.key == "resnet18" and not table.is_demo and table.is_random
    thumbs = tables.thumbnail_paths("resnet18", "layer4", 7, root=tiny_setup / "tables")
    assert len(thumbs) == 5 and all(p.suffix == ".jpg" and p.parent.name == "thumbs" for p in thumbs)


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0]


def test_missing_checkpoint_is_one_line_from_both_commands(tiny_setup, tmp_path, capsys):
    """Both command lines load weights through explainers.engine.models: one test for the message each prints."""
    from PIL import Image

    from explainers.cli import main as explainers_main

    missing = str(tmp_path / "missing.pth")
    args = _build_args(tiny_setup)
    args[args.index("random")] = missing
    _assert_one_line_error(main(args), capsys.readouterr().err, "Checkpoint", "missing.pth", "does not exist")

    image = tmp_path / "grey.png"
    Image.new("RGB", (32, 32), (128, 128, 128)).save(image)
    argv = ["explain", str(image), "--model", "resnet18", "--weights", missing, "--methods", "gradcam"]
    code = explainers_main([*argv, "--out", str(tmp_path / "out")])
    _assert_one_line_error(code, capsys.readouterr().err, "Checkpoint", "missing.pth", "does not exist")


def test_unreachable_published_weights_are_one_line(tiny_setup, monkeypatch, capsys):
    from explainers.engine import models

    def offline(spec):
        raise models.WeightsUnavailableError(f"The {spec.title} weights are not on this machine (offline).")

    monkeypatch.setattr(models, "_download_published", offline)
    models._load_cached.cache_clear()
    args = _build_args(tiny_setup)
    args[args.index("random")] = "imagenet"
    _assert_one_line_error(main(args), capsys.readouterr().err, "weights are not on this machine")


def test_offline_default_probe_set_is_one_line(tiny_setup, monkeypatch, capsys):
    from dissection_data import probes

    def offline(url, **caps):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(probes, "fetch_bytes", offline)
    args = _build_args(tiny_setup, "--probe", "imagenet1000")
    i = args.index("--probe-dir")
    del args[i : i + 2]
    _assert_one_line_error(main(args), capsys.readouterr().err, "--probe-dir")


def test_missing_clip_is_one_line(tiny_setup, capsys):
    args = _build_args(tiny_setup)
    args[args.index("--clip") + 1] = str(tiny_setup / "no-such-clip")
    _assert_one_line_error(main(args), capsys.readouterr().err, "no-such-clip")


def test_unknown_layer_fails_before_any_long_work(tiny_setup, capsys):
    args = _build_args(tiny_setup, "--layers", "layer9")
    _assert_one_line_error(main(args), capsys.readouterr().err, "layer9")


def test_push_to_hub_uploads_each_table_folder(tmp_path, monkeypatch):
    import huggingface_hub

    from dissection_data.hub import push_tables

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create", repo_id, kwargs["repo_type"]))

        def upload_folder(self, **kwargs):
            calls.append(("upload", kwargs["path_in_repo"], kwargs["repo_type"]))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = push_tables([tmp_path / "resnet18", tmp_path / "resnet18-places365"], "me/neurons")
    assert url == "https://huggingface.co/datasets/me/neurons"
    assert calls == [
        ("create", "me/neurons", "dataset"),
        ("upload", "resnet18", "dataset"),
        ("upload", "resnet18-places365", "dataset"),
    ]


def test_push_to_hub_failure_is_one_line(monkeypatch):
    import huggingface_hub

    from dissection_data.hub import push_tables
    from explainers.errors import XaiLensError

    class OfflineApi:
        def __init__(self, token=None):
            raise ConnectionError("Name or service not known\nmore detail")

    monkeypatch.setattr(huggingface_hub, "HfApi", OfflineApi)
    with pytest.raises(XaiLensError, match="hf auth login") as caught:
        push_tables([Path("x")], "me/neurons")
    assert "\n" not in str(caught.value)
