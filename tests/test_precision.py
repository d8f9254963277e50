"""The arithmetic switch: float32 unless TF32 is asked for, and the benchmark's scoped variant restores it."""

from __future__ import annotations

import pytest
import torch

from explainers.engine import precision


@pytest.fixture(autouse=True)
def _restore_switches():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    yield
    precision.configure(None)
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize(("value", "wanted"), [("", False), ("0", False), ("1", True), ("yes", True), ("off", False)])
def test_environment_variable_chooses_when_nothing_is_configured(monkeypatch, value, wanted):
    monkeypatch.setenv(precision.ENV_VAR, value)
    assert precision.tf32_wanted() is wanted
    precision.apply()
    assert torch.backends.cudnn.allow_tf32 is wanted and torch.backends.cuda.matmul.allow_tf32 is wanted


def test_configure_overrides_the_environment(monkeypatch):
    monkeypatch.setenv(precision.ENV_VAR, "1")
    precision.configure(False)
    precision.apply()
    assert not precision.tf32_enabled()


def test_scoped_tf32_restores_the_previous_switches():
    precision.set_tf32(False)
    with precision.tf32(True):
        assert precision.tf32_enabled()
    assert not precision.tf32_enabled()


def test_description_names_the_arithmetic():
    precision.set_tf32(True)
    assert precision.describe(torch.device("cpu")) == "float32"  # TF32 is a GPU matter
    assert precision.describe(torch.device("cuda")).startswith("TF32")
    precision.set_tf32(False)
    assert precision.describe(torch.device("cuda")) == "float32"
