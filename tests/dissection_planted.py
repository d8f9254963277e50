"""Planted ground truth for the dissection tests: a tiny 'model' whose neurons respond to known
properties of generated shape images, and a CLIP stand-in whose image-concept similarities follow
the same properties. Every neuron has a right answer, so the pipeline can be checked exactly."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from planted import hand_wired_model

from dissection_data.synthetic import COLOURS, SHAPES, shape_mask, shape_radii
from explainers.engine.models import IMAGENET_MEAN, IMAGENET_STD, LoadedModel

SIDE = 64
SIZES_PER_SHAPE = 4
CLASSES = [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]
DISTRACTORS = ["dog", "car", "tree", "sky", "water", "the", "music", "house"]
CONCEPTS = [*COLOURS, *SHAPES, *DISTRACTORS]
# Which concept each planted neuron should get.
EXPECTED = {"layer3": list(COLOURS), "layer4": list(SHAPES), "fc": CLASSES}
TOP_K = SIZES_PER_SHAPE  # images per class: the fc neurons' whole positive set

_PALETTE = torch.tensor(list(COLOURS.values()), dtype=torch.float32) / 255  # colours x 3
_TEMPLATES = torch.stack(
    [torch.from_numpy(np.stack([shape_mask(s, r, SIDE) for r in shape_radii(SIDE, SIZES_PER_SHAPE)])) for s in SHAPES]
).float()  # shapes x sizes x H x W


def colour_masks(rgb: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W in [0,1] -> N x colours x H x W: 1 where the pixel is (close to) that colour."""
    distance = (rgb.unsqueeze(1) - _PALETTE.view(1, -1, 3, 1, 1)).abs().amax(dim=2)
    return (distance < 0.1).float()


def shape_iou(foreground: torch.Tensor) -> torch.Tensor:
    """N x H x W -> N x shapes: best IoU of the foreground with any size of each shape template."""
    f = foreground.unsqueeze(1).unsqueeze(1)  # N x 1 x 1 x H x W
    inter = (f * _TEMPLATES).sum(dim=(-1, -2))
    union = ((f + _TEMPLATES) > 0).float().sum(dim=(-1, -2))
    return (inter / union.clamp_min(1)).amax(dim=2)


def _rgb(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)


class ColourNeurons(torch.nn.Module):
    """'layer3': one map per colour; mean pooling gives that colour's share of the image."""

    def forward(self, x):
        return colour_masks(_rgb(x))


class ShapeNeurons(torch.nn.Module):
    """'layer4': one unit per shape, high for that shape (IoU^4), scaled by the shape's area."""

    def forward(self, x):
        foreground = colour_masks(_rgb(x)).amax(dim=1)
        area = foreground.mean(dim=(1, 2)).unsqueeze(1)
        return (shape_iou(foreground) ** 4 * area).view(x.shape[0], len(SHAPES), 1, 1)


class ClassNeurons(torch.nn.Module):
    """'fc': one logit per (colour, shape) class: colour share of the foreground x shape IoU^8."""

    def forward(self, x):
        masks = colour_masks(_rgb(x))
        foreground = masks.amax(dim=1)
        colour_share = masks.sum(dim=(2, 3)) / foreground.sum(dim=(1, 2)).clamp_min(1).unsqueeze(1)
        shape = shape_iou(foreground) ** 8
        return (colour_share.unsqueeze(2) * shape.unsqueeze(1)).flatten(1)  # colour-major, like CLASSES


class PlantedNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer3, self.layer4, self.fc = ColourNeurons(), ShapeNeurons(), ClassNeurons()

    def forward(self, x):
        self.layer3(x)
        self.layer4(x)
        return self.fc(x)


def planted_model() -> LoadedModel:
    return hand_wired_model(
        PlantedNet,
        "random",
        CLASSES,
        name="planted",
        title="Planted shapes model (test)",
        resize=SIDE,
        crop=SIDE,
        dataset="generated shapes",
    )


def _unit(seed_text: str, dim: int) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:4], "little")
    vector = torch.randn(dim, generator=torch.Generator().manual_seed(seed))
    return vector / vector.norm()


class PlantedClip:
    """CLIP stand-in: image and text vectors live in one space with a dimension per colour and shape;
    other words get their own random directions, orthogonal to those."""

    model_id = "planted-clip-stand-in (test)"
    is_random = False
    attributes: ClassVar[list[str]] = [*COLOURS, *SHAPES]
    extra_dims = 24

    def _vector(self, attributes: Sequence[str], fallback: str) -> torch.Tensor:
        vector = torch.zeros(len(self.attributes) + self.extra_dims)
        for attribute in attributes:
            vector[self.attributes.index(attribute)] = 1.0
        if not attributes:
            vector[len(self.attributes) :] = _unit(fallback, self.extra_dims)
        return vector / vector.norm()

    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        rgb = torch.stack([torch.from_numpy(np.array(i.convert("RGB").resize((SIDE, SIDE)))) for i in images])
        masks = colour_masks(rgb.permute(0, 3, 1, 2).float() / 255)
        colours = masks.sum(dim=(2, 3)).argmax(dim=1).tolist()
        shapes = shape_iou(masks.amax(dim=1)).argmax(dim=1).tolist()
        rows = [self._vector([list(COLOURS)[c], SHAPES[s]], "") for c, s in zip(colours, shapes, strict=True)]
        return torch.stack(rows)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.stack([self._vector([w for w in t.split() if w in self.attributes], t) for t in texts])
