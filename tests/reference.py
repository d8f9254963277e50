"""Calling the reference library exactly as its users do: one grad-cam map, hooks released afterwards."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import pytest
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainers.engine.models import resolve_layer


def grad_cam_map(cam_class, module, layer_path, tensor, target, **attributes):
    """grad-cam's map for `target` at `layer_path`; `attributes` are set on the CAM object (e.g. batch_size)."""
    cam = cam_class(model=module, target_layers=[resolve_layer(module, layer_path)])
    for key, value in attributes.items():
        setattr(cam, key, value)
    try:
        return cam(input_tensor=tensor, targets=[ClassifierOutputTarget(target)])[0]
    finally:
        cam.activations_and_grads.release()


def trainable_copy(module: torch.nn.Module) -> torch.nn.Module:
    """An independent copy of a network with trainable parameters, as grad-cam's users hold it (ours are frozen)."""
    module = copy.deepcopy(module)
    for parameter in module.parameters():
        parameter.requires_grad_(True)
    return module.eval()


def assert_same_lime(
    segments: np.ndarray, weights: Mapping[int, float], reference, target: int, rel: float = 1e-4, tol: float = 1e-6
) -> None:
    """Ours agrees with lime's own explanation `reference`: the same segments, features and weights for `target`."""
    np.testing.assert_array_equal(segments, reference.segments)
    expected = dict(reference.local_exp[target])
    assert set(weights) == set(expected)
    for feature, weight in weights.items():
        assert weight == pytest.approx(expected[feature], rel=rel, abs=tol)
