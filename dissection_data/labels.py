"""From a neurons x concepts similarity matrix to labels, and the fc self-check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dissection_data.concepts import readable_class_name


@dataclass(frozen=True)
class NeuronLabel:
    layer: str
    unit: int
    concepts: tuple[str, ...]  # best first; concepts[0] is the label
    similarities: tuple[float, ...]
    top_images: tuple[str, ...]  # probe image ids, most activating first


def label_layer(
    layer: str,
    similarity: torch.Tensor,
    concepts: Sequence[str],
    activations: torch.Tensor,
    image_ids: Sequence[str],
    top_concepts: int = 5,
    top_images: int = 5,
) -> list[NeuronLabel]:
    """Top concepts per neuron (by similarity) and its most activating probe images."""
    scores, concept_idx = torch.topk(similarity, k=min(top_concepts, similarity.shape[1]), dim=1)
    image_idx = torch.topk(activations.float(), k=min(top_images, activations.shape[0]), dim=0).indices.T
    return [
        NeuronLabel(
            layer=layer,
            unit=unit,
            concepts=tuple(concepts[i] for i in concept_idx[unit].tolist()),
            similarities=tuple(round(float(s), 5) for s in scores[unit].tolist()),
            top_images=tuple(image_ids[i] for i in image_idx[unit].tolist()),
        )
        for unit in range(similarity.shape[0])
    ]


def _same_name(a: str, b: str) -> bool:
    return readable_class_name(a).lower() == readable_class_name(b).lower()


def self_check(similarity: torch.Tensor, class_concepts: Sequence[str], categories: Sequence[str]) -> dict:
    """Share of fc neurons whose best (top-1) or top-5 concept is their own class name.

    `similarity` is fc-neurons x class-name concepts. Matching is by name, so ImageNet's two 'crane'
    (bird, machine) and two 'maillot' classes count as correct when either spelling of their name wins.
    """
    n = min(similarity.shape[0], len(categories))
    top5 = torch.topk(similarity[:n], k=min(5, similarity.shape[1]), dim=1).indices.tolist()
    hits1 = sum(_same_name(class_concepts[row[0]], categories[unit]) for unit, row in enumerate(top5))
    hits5 = sum(any(_same_name(class_concepts[i], categories[unit]) for i in row) for unit, row in enumerate(top5))
    return {
        "layer": "fc",
        "concepts": "the model's own class names",
        "neurons": n,
        "top1": round(hits1 / n, 4) if n else None,
        "top5": round(hits5 / n, 4) if n else None,
        "paper_reference": "CLIP-dissect reports 95.5% top-1 / 98.9% top-5 for ResNet-50 on ImageNet val",
    }
