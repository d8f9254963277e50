"""`python -m explainers study` and `tune-lime` are the study's and the tuner's own commands under one roof.

Each route is run end to end in-process through explainers.cli.main on tiny inputs, and its refusals are
compared with what the module's own command prints for the same arguments: one line, word for word
(tune-lime's range refusals are compared in test_tuning.py, in the tuner's own table of bad values).
"""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest
from PIL import Image

from explainers.cli import main
from explainers.inputs.param_file import PRESET_KEYS, load_lime_params
from explainers.inputs.presets import find_preset
from explainers.pipeline import explain_image
from explainers.study.__main__ import main as study_main

HAS_SCALE = all(importlib.util.find_spec(name) is not None for name in ("ray", "pyarrow"))
RANDOM18 = ["--model", "resnet18", "--weights", "random"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def _images(folder, count: int) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    paths = []
    for index in range(count):
        path = folder / f"shape_{index}.png"
        Image.fromarray(rng.integers(0, 256, (180, 200, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    "argv",
    [
        ["somewhere", *RANDOM18, "--workers", "0"],
        ["somewhere", *RANDOM18, "--methods", "gradcam,magic"],
        ["somewhere", *RANDOM18, "--mask", "lime-top:5"],
    ],
)
def test_study_route_refuses_exactly_as_the_study_command(argv, capsys):
    assert study_main(argv) == 2
    own = _one_error_line(capsys)
    assert main(["study", *argv]) == 2
    assert _one_error_line(capsys) == own


def test_study_route_names_the_missing_extra_in_one_line(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["study", "somewhere", *RANDOM18]) == 2
    err = _one_error_line(capsys)
    assert "ray" in err and "pip install .[scale]" in err
    assert study_main(["somewhere", *RANDOM18]) == 2
    assert _one_error_line(capsys) == err


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SCALE, reason="the study needs the scale extra (ray, pyarrow): pip install .[scale]")
def test_study_route_runs_the_study_end_to_end(resnet18_random, tmp_path, capsys):
    import pyarrow.parquet as pq

    images = _images(tmp_path / "images", 3)
    out = tmp_path / "study"
    argv = ["study", str(tmp_path / "images"), *RANDOM18, "--methods", "gradcam", "--workers", "1"]
    assert main([*argv, "--batch-size", "2", "--out", str(out)]) == 0, capsys.readouterr().err
    assert "3 images run now (0 failed)" in capsys.readouterr().out
    rows = {row["id"]: row for row in pq.read_table(out / "results.parquet").to_pylist()}
    assert set(rows) == {path.stem for path in images}
    for path in images:  # the same class as explaining the image here
        assert rows[path.stem]["target"] == explain_image(path, resnet18_random, "gradcam").target.index
    assert (out / "report.md").is_file()


def test_an_unknown_option_is_one_line_naming_the_subcommands_help(capsys):
    assert main(["tune-lime", "--trials", "2", "--budget-s", "9", "--reference", "converged", "--out", "x", "--bad"])
    assert "--bad" in _one_error_line(capsys)
    assert main(["explain"]) == 2
    assert "python -m explainers explain --help" in _one_error_line(capsys)


@pytest.mark.slow
@pytest.mark.presets
def test_tune_lime_route_tunes_one_preset_and_writes_a_valid_parameter_file(examples_dir, tmp_path, monkeypatch):
    # Tiny samples: every trial and re-run draws 50-60 (the search's upper end, not the file caps, is lowered).
    monkeypatch.setattr("explainers.tuning.search_space.most_samples_per_image", lambda: 60)
    out = tmp_path / "tuned"
    argv = ["tune-lime", "--images", "goldfish", "--examples-dir", str(examples_dir), "--reference", "converged"]
    argv += ["--converged-samples", "60", "--trials", "2", "--budget-s", "300", "--time-with", "fast"]
    assert main([*argv, *RANDOM18, "--device", "cpu", "--out", str(out)]) == 0
    for name in ("pareto.csv", "pareto.png", "summary.md", "explain_params.pkl"):
        assert (out / name).is_file(), name
    with open(out / "explain_params.pkl", "rb") as handle:
        plain = pickle.load(handle)
    assert list(plain) == list(PRESET_KEYS) == list(load_lime_params(out / "explain_params.pkl"))
    chosen = plain[find_preset("goldfish").key]
    assert 50 <= chosen["num_samples"] <= 60  # the tuned entry, not the default's 1000
    assert main(["params", "check", str(out / "explain_params.pkl")]) == 0
