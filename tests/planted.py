"""Planted ground truth: a hand-wired classifier whose 'red patch' score depends only on red pixels.

The image is grey noise with one red square at a known place, so the region that explains the
decision is known exactly. The model is shaped like a torchvision ResNet at its end (layer3,
layer4, avgpool, fc) so both the closed-form and the generic Ablation-CAM paths apply to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from explainers.engine.models import IMAGENET_MEAN, IMAGENET_STD, LoadedModel, ModelSpec

SIZE = 224
PATCH = 72  # 72x72 is ~10% of the crop, the share the default top:0.10 mask keeps
CLASSES = ["background", "red patch"]


class RedPatchNet(nn.Module):
    """redness = ReLU(R - (G + B)/2 - 0.3) in raw pixel units, pooled to 28x28, then GAP + linear."""

    def __init__(self) -> None:
        super().__init__()
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        redness = nn.Conv2d(3, 1, kernel_size=1)
        mix = torch.tensor([1.0, -0.5, -0.5])
        with torch.no_grad():
            # The input is normalised: raw_c = std_c * x_c + mean_c, folded into the 1x1 conv.
            redness.weight.copy_((mix * std).view(1, 3, 1, 1))
            redness.bias.copy_(((mix * mean).sum() - 0.3).view(1))
        self.stem = nn.Sequential(redness, nn.ReLU(), nn.AvgPool2d(8))
        self.layer3 = nn.Sequential(nn.Conv2d(1, 4, kernel_size=1), nn.ReLU())
        self.layer4 = nn.Sequential(nn.Conv2d(4, 8, kernel_size=3, padding=1), nn.ReLU())
        with torch.no_grad():
            self.layer3[0].weight.fill_(1.0)
            self.layer3[0].bias.zero_()
            self.layer4[0].weight.zero_()
            self.layer4[0].weight[:, :, 1, 1] = torch.linspace(0.5, 1.5, 8)[:, None] / 4
            self.layer4[0].bias.zero_()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[0.0] * 8, [12.0] * 8]))
            self.fc.bias.copy_(torch.tensor([3.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def hand_wired_model(
    build: Callable[[], nn.Module], weights: str, classes: list[str], **spec_fields: Any
) -> LoadedModel:
    """A test network wrapped as load_model wraps a registered one (no weights file, CPU, eval mode), so the
    library's code paths run on it unchanged; `spec_fields` are the ModelSpec fields that tell the models apart."""
    spec = ModelSpec(build=build, weights_url="", weights_file="", categories=lambda: list(classes), **spec_fields)
    return LoadedModel(spec, weights, build().eval(), list(classes), torch.device("cpu"))


def planted_model() -> LoadedModel:
    return hand_wired_model(
        RedPatchNet,
        "planted",
        CLASSES,
        name="planted-red-patch",
        title="Planted red-patch net",
        resize=SIZE,
        default_target_layer="layer4",
    )


def patch_image(top: int, left: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 224x224 grey-noise image with a red PATCH x PATCH square; returns (uint8 image, bool truth mask)."""
    rng = np.random.default_rng(seed)
    grey = rng.uniform(0.25, 0.75, size=(SIZE, SIZE, 1))
    image = np.repeat(grey, 3, axis=2) + rng.normal(0, 0.03, size=(SIZE, SIZE, 3))
    truth = np.zeros((SIZE, SIZE), dtype=bool)
    truth[top : top + PATCH, left : left + PATCH] = True
    image[truth] = (0.9, 0.1, 0.1)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), truth


def grid_segments(image: np.ndarray, cell: int = 8) -> np.ndarray:
    """A regular grid of cell x cell superpixels, numbered from 0 (a 'suitable segmentation' for LIME)."""
    rows, cols = np.indices(image.shape[:2]) // cell
    return rows * (image.shape[1] // cell + (image.shape[1] % cell > 0)) + cols
