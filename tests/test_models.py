"""The real loading code on checkpoints the tests write, preprocessing, names and offline errors."""

from __future__ import annotations

import subprocess
import sys
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import save_file

from explainers.engine import models
from explainers.errors import XaiLensError


def _trained_like_state(num_classes: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    return torchvision.models.resnet18(weights=None, num_classes=num_classes).state_dict()


def _same_weights(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(module.state_dict()[k], v) for k, v in state.items())


def test_torchvision_layout_checkpoint(tmp_path):
    state = _trained_like_state(1000)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    assert _same_weights(models.build_model("resnet18", str(path)), state)


def test_csail_layout_with_module_prefix(tmp_path):
    state = _trained_like_state(365)
    path = tmp_path / "resnet18_places365.pth.tar"
    torch.save({"epoch": 90, "arch": "resnet18", "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    loaded = models.load_model("resnet18-places365", str(path), "cpu")
    assert _same_weights(loaded.module, state)
    assert len(loaded.categories) == 365 and loaded.categories[0] == "airfield"


def test_safetensors_checkpoint(tmp_path):
    state = _trained_like_state(1000)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    assert _same_weights(models.build_model("resnet18", str(path)), state)


def test_mismatched_checkpoint_is_one_clear_line(tmp_path):
    path = tmp_path / "places.pth"
    torch.save(_trained_like_state(365), path)
    with pytest.raises(XaiLensError, match="does not fit this model") as error:
        models.build_model("resnet18", str(path))
    assert "\n" not in str(error.value)


def test_code_carrying_checkpoint_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (subprocess.call, (["touch", str(marker)],))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": Evil()}, path)
    with pytest.raises(XaiLensError, match="Could not read checkpoint"):
        models.build_model("resnet18", str(path))
    assert not marker.exists()


def test_offline_error_names_the_expected_file(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(url, target, **options):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(models, "download_file", no_network)
    with pytest.raises(models.WeightsUnavailableError) as error:
        models.build_model("resnet18-places365", "imagenet")
    message = str(error.value)
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18_places365.pth.tar") in message
    assert models.PLACES365_URL in message and "--weights random" in message and "\n" not in message


def _published_resnet18_in_cache(tmp_path, monkeypatch) -> dict[str, torch.Tensor]:
    """resnet18's published file already in torch's cache (written here), and any download a failure."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    state = _trained_like_state(1000)
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / models.model_spec("resnet18").weights_file)
    monkeypatch.setattr(models, "download_file", lambda *a, **k: pytest.fail("must not download"))
    return state


def test_cached_published_weights_are_used_without_network(tmp_path, monkeypatch):
    state = _published_resnet18_in_cache(tmp_path, monkeypatch)
    assert _same_weights(models.build_model("resnet18", "imagenet"), state)


def test_missing_weights_cli_prints_one_line_without_traceback(tmp_path):
    image = tmp_path / "grey.png"
    Image.new("RGB", (64, 48), (120, 120, 120)).save(image)
    env = {"TORCH_HOME": str(tmp_path / "torch"), "PATH": "/usr/bin:/bin", "XAI_LENS_OFFLINE_TEST": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "explainers",
            "explain",
            str(image),
            "--model",
            "resnet18",
            "--weights",
            str(tmp_path / "nope.pth"),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


@pytest.mark.parametrize(("name", "weights"), [("resnet50", "IMAGENET1K_V2"), ("resnet18", "IMAGENET1K_V1")])
def test_preprocessing_equals_the_weights_transform(name, weights):
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (300, 420, 3), dtype=np.uint8))
    official = getattr(torchvision.models, f"{name.replace('resnet', 'ResNet')}_Weights")[weights].transforms()
    loaded = models.LoadedModel(models.model_spec(name), "random", torch.nn.Identity(), [], torch.device("cpu"))
    ours = loaded.to_tensor(loaded.crop(image))[0]
    torch.testing.assert_close(ours, official(image), atol=1e-6, rtol=0)


def test_random_weights_are_seeded_and_flagged():
    first, second = models.build_model("resnet18", "random"), models.build_model("resnet18", "random")
    assert all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )
    assert models.load_model("resnet18", "random", "cpu").is_random


@pytest.mark.parametrize(
    ("query", "expected"),
    [(1, 1), ("1", 1), ("goldfish", 1), ("Goldfish", 1), ("tiger shark", 3), ("tiger_shark", 3)],
)
def test_class_names_resolve(query, expected):
    assert models.resolve_class(models.imagenet_categories(), query) == expected


@pytest.mark.parametrize("query", [1000, -1, "zzzz-not-a-class", "dog"])
def test_bad_class_names_are_one_line_errors(query):
    with pytest.raises(XaiLensError) as error:
        models.resolve_class(models.imagenet_categories(), query)
    assert "\n" not in str(error.value)


def test_layers_resolve_and_unknown_layers_name_the_choices(resnet18_random):
    module = resnet18_random.module
    assert resnet18_random.layer("layer4[-1]") is module.layer4[1] is resnet18_random.layer("layer4.1")
    with pytest.raises(XaiLensError, match="layer4"):
        resnet18_random.layer("layer9")


def test_imagenet_is_an_alias_of_published(tmp_path, monkeypatch):
    """--weights imagenet and XAI_LENS_WEIGHTS=imagenet keep working: the same published file, one cached model."""
    state = _published_resnet18_in_cache(tmp_path, monkeypatch)
    models._load_cached.cache_clear()
    try:
        by_alias = models.load_model("resnet18", "imagenet", "cpu")
        assert by_alias is models.load_model("resnet18", "published", "cpu")
        assert by_alias.weights == "published" and models.weights_label("imagenet") == "published"
        assert _same_weights(by_alias.module, state)
    finally:
        models._load_cached.cache_clear()
