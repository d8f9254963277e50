"""Arithmetic shared by the CAM methods, written to match grad-cam's own post-processing step for step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from pytorch_grad_cam.utils.image import scale_cam_image


def weighted_cam_map(weights: np.ndarray, activations: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """grad-cam's finishing: ReLU(sum_k w_k A_k), min-max scale, resize to (H, W), scale again.

    weights: (K,), activations: (K, h, w); returns float32 (H, W) in [0, 1].
    """
    weights = np.asarray(weights, dtype=np.float32)[None, :]
    activations = np.asarray(activations, dtype=np.float32)[None]
    cam = (weights[:, :, None, None] * activations).sum(axis=1)
    cam = np.maximum(cam, 0)
    scaled = scale_cam_image(cam, (size[1], size[0]))[:, None, :]
    return scale_cam_image(np.maximum(scaled, 0).mean(axis=1))[0]


@contextmanager
def captured_output(layer: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record a layer's output during the forward passes inside the block; the hook never outlives it."""
    outputs: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: outputs.append(output.detach()))
    try:
        yield outputs
    finally:
        handle.remove()


def activations_and_logits(
    model: torch.nn.Module, layer: torch.nn.Module, batch: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass giving the target layer's activations and the logits."""
    with captured_output(layer) as outputs, torch.inference_mode():
        logits = model(batch)
    return outputs[0], logits


def default_batch_size(device: torch.device) -> int:
    """Forward-pass batch for the heavy methods: large on a GPU, moderate on a CPU."""
    return 128 if device.type == "cuda" else 16  # on a 2-core CPU, 32 images spill the caches (ResNet50 ~10% slower)
