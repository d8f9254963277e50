"""Concept attribution: the target logit split over layer4's units, each unit named by a neuron table.

A torchvision ResNet global-average-pools layer4 and applies one linear layer, so the logit of
class c is exactly `bias_c + sum_k W[c, k] * mean_hw(A_k)`. Unit k's share `W[c, k] * mean(A_k)` is
also its Grad-CAM weight (the mean gradient, W[c, k] / hw) times its summed activation: no second
explanation is invented, Grad-CAM's own numbers are read unit by unit. For layer3 only a first-order
split exists (gradient x activation, summed over positions); it is labelled as such and not exact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dissection_data.tables import NeuronRow, NeuronTable
from explainers.engine.models import PUBLISHED, RANDOM_WEIGHTS_WARNING, LoadedModel, canonical_weights
from explainers.errors import XaiLensError

EXACT_LAYER = "layer4"
FIRST_ORDER_LAYER = "layer3"
DEFAULT_TOP_K = 5
# Below this label similarity a unit's label is too weak to carry evidence in the by-concept summary.
# CLIP-dissect's published ResNet50 layer4 labels mostly score 0.1-0.7; a judgement, not a standard.
DEFAULT_MIN_SIMILARITY = 0.15
UNLABELLED = "unlabelled"
# Relative to max(1, |logit|). Float32 rounding stays near 1e-6; a head that is not GAP + one linear
# layer misses by far more, and then the split would be a guess presented as exact.
COMPLETENESS_TOLERANCE = 1e-3
EXACT_KIND = "exact: fc weight x mean activation (layer4 is average-pooled into one linear layer)"
FIRST_ORDER_KIND = "first order: gradient x activation summed over positions (an approximation, not exact)"
NO_TABLE_WARNING = "NO NEURON TABLE for {model}: its units are unlabelled (build one: python -m dissection_data build)."


@dataclass(frozen=True)
class UnitEvidence:
    """One listed unit: its contribution to the target logit and its label from the neuron table."""

    layer: str
    unit: int
    contribution: float
    concept: str | None  # None: no table, or the table has no row for this unit
    similarity: float | None

    @property
    def caption(self) -> str:
        """'unit 1234: fur (0.21)', the bar chart's label."""
        if self.concept is None:
            return f"unit {self.unit}: no label"
        return f"unit {self.unit}: {self.concept} ({self.similarity:.2f})"

    def to_json(self) -> dict[str, Any]:
        """Every field under its own name: concepts.json's keys are the dataclass's fields."""
        return asdict(self)


@dataclass
class ConceptAttribution:
    """Plain data for the CLI, the app and notebooks; `to_json()` is concepts.json."""

    model: str
    weights: str
    layer: str
    exact: bool
    target: int
    target_label: str
    logit: float
    bias: float
    contributions: np.ndarray = field(repr=False)  # float64, one per unit of `layer`
    units: list[UnitEvidence]  # top positive (largest first), then top negative (most negative first)
    maps: np.ndarray = field(repr=False)  # len(units) x H x W float32: each listed unit's activation on the crop
    activations: np.ndarray = field(repr=False)  # C x h x w float32: the layer's output, for any unit's map
    by_concept: dict[str, float]  # share of the positive evidence per label, largest first
    by_concept_negative: dict[str, float]  # share of the negative evidence per label, largest first
    table: dict[str, Any] | None  # which table named the units, with its provenance
    min_similarity: float
    warnings: list[str]

    @property
    def total_contribution(self) -> float:
        return float(self.contributions.sum())

    @property
    def completeness_error(self) -> float:
        """|sum of contributions + bias - logit|: ~1e-6 for layer4, unbounded for layer3's first order."""
        return abs(self.total_contribution + self.bias - self.logit)

    @property
    def positive_units(self) -> list[UnitEvidence]:
        return [u for u in self.units if u.contribution > 0]

    @property
    def negative_units(self) -> list[UnitEvidence]:
        return [u for u in self.units if u.contribution < 0]

    def unit_map(self, unit: int) -> np.ndarray:
        """Any unit's activation map upsampled onto the crop (for the neuron tab's selected unit)."""
        if not 0 <= unit < self.activations.shape[0]:
            raise XaiLensError(f"{self.layer} has units 0-{self.activations.shape[0] - 1}; unit {unit} does not exist.")
        return upsample(self.activations[unit : unit + 1], self.maps.shape[1:])[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "weights": self.weights,
            "target": {"index": self.target, "label": self.target_label},
            "logit": self.logit,
            "bias": self.bias,
            "total_contribution": self.total_contribution,
            "completeness_error": self.completeness_error,
            "attribution": {
                "layer": self.layer,
                "exact": self.exact,
                "kind": EXACT_KIND if self.exact else FIRST_ORDER_KIND,
            },
            "units": [unit.to_json() for unit in self.units],
            "by_concept": self.by_concept,
            "by_concept_negative": self.by_concept_negative,
            "min_similarity": self.min_similarity,
            "table": self.table,
            "warnings": self.warnings,
        }


def unit_contributions(pooled: torch.Tensor, weight_row: torch.Tensor) -> torch.Tensor:
    """W[c, k] * mean_hw(A_k) per unit, in float64 so the sum keeps the logit's precision."""
    return weight_row.double() * pooled.double()


def upsample(maps: np.ndarray | torch.Tensor, size: Sequence[int]) -> np.ndarray:
    """N x h x w activation maps -> N x H x W on the crop (bilinear, the CAMs' resizing)."""
    if len(maps) == 0:
        return np.zeros((0, *size), dtype=np.float32)
    tensor = torch.as_tensor(np.asarray(maps, dtype=np.float32)).unsqueeze(1)
    return F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False)[:, 0].numpy()


def check_table_fits(table: NeuronTable, model_name: str) -> None:
    """Labels hold only for the weights they were computed on: refuse any other model in one line."""
    if table.model != model_name:
        raise XaiLensError(
            f"Table '{table.key}' labels the units of {table.model}, not {model_name}; "
            f"explain with --model {table.model} to use it, or pick {model_name}'s own table."
        )


def table_provenance(table: NeuronTable) -> dict[str, Any]:
    """Which table named the units and where it came from, for concepts.json."""
    meta = table.meta
    keep = ("source", "url", "commit", "sha256", "file", "weights", "dataset", "created", "probe", "concepts")
    return {
        "key": table.key,
        "model": table.model,
        "demo": table.is_demo,
        "random": table.is_random,
        **{key: meta[key] for key in keep if key in meta},
    }


def _resnet_head(module: torch.nn.Module, channels: int) -> torch.nn.Linear:
    fc = getattr(module, "fc", None)
    if not isinstance(fc, torch.nn.Linear) or fc.in_features != channels:
        raise XaiLensError(
            "Concept attribution needs a torchvision-ResNet-like model: layer4 average-pooled into one linear 'fc' "
            "layer; this model has no such head."
        )
    return fc


def _layer_pass(
    model: LoadedModel, crop: np.ndarray, layer: str, target: int | str | None, with_gradient: bool
) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor | None]:
    """One forward pass (and, for the first-order split, one backward): activation, logits, target, gradient."""
    captured: list[torch.Tensor] = []
    with model.lock:
        handle = model.layer(layer).register_forward_hook(lambda _m, _i, output: captured.append(output))
        try:
            tensor = model.to_tensor(crop)
            if with_gradient:
                with torch.enable_grad():
                    tensor.requires_grad_(True)  # the shared model's parameters are frozen
                    logits = model.module(tensor)
                    index = int(logits[0].argmax()) if target is None else model.class_index(target)
                    (gradient,) = torch.autograd.grad(logits[0, index], captured[0])
                return captured[0].detach()[0], logits.detach()[0], index, gradient[0]
            with torch.inference_mode():
                logits = model.module(tensor)
            index = int(logits[0].argmax()) if target is None else model.class_index(target)
            return captured[0][0], logits[0], index, None
        finally:
            handle.remove()


def _labels(table: NeuronTable | None, layer: str, units: int) -> dict[int, NeuronRow]:
    if table is None:
        return {}
    rows = {row.unit: row for row in table.rows_for(layer)}
    if not rows:
        raise XaiLensError(
            f"Table '{table.key}' has no {layer} units (its layers: {', '.join(table.layers)}); "
            f"choose a table that labels {layer}."
        )
    if max(rows) >= units:
        raise XaiLensError(
            f"Table '{table.key}' labels {layer} unit {max(rows)} but this model's {layer} has {units} units; "
            "the table was built for another network."
        )
    return rows


def _concept_of(row: NeuronRow | None, min_similarity: float) -> str:
    return row.concept if row is not None and row.similarity >= min_similarity else UNLABELLED


def _shares(contributions: np.ndarray, concepts: Sequence[str], sign: int) -> dict[str, float]:
    """Each label's share of the positive (sign=1) or negative (sign=-1) evidence, largest first."""
    totals: dict[str, float] = defaultdict(float)
    for value, concept in zip(contributions * sign, concepts, strict=True):
        if value > 0:
            totals[concept] += float(value)
    whole = sum(totals.values())
    if whole <= 0:
        return {}
    return {name: value / whole for name, value in sorted(totals.items(), key=lambda item: (-item[1], item[0]))}


def _top_units(contributions: np.ndarray, top_k: int) -> list[int]:
    order = np.argsort(-contributions, kind="stable")
    positive = [int(k) for k in order[:top_k] if contributions[k] > 0]
    negative = [int(k) for k in order[::-1][:top_k] if contributions[k] < 0]
    return positive + negative


def _warnings(model: LoadedModel, table: NeuronTable | None) -> list[str]:
    warnings = [RANDOM_WEIGHTS_WARNING] if model.is_random else []
    if table is None:
        warnings.append(NO_TABLE_WARNING.format(model=model.name))
        return warnings
    if table.warning:  # a demo table's warning already says RANDOM WEIGHTS: say it once
        warnings = [w for w in warnings if w not in table.warning] + [table.warning]
    table_weights = canonical_weights(table.meta.get("weights", PUBLISHED))
    if table_weights != model.weights and not (table.is_random and model.is_random):
        warnings.append(
            f"LABELS FROM OTHER WEIGHTS: table '{table.key}' was computed on {table_weights} weights, this model runs "
            f"{model.weights} weights, so its labels may not describe these units."
        )
    return warnings


def attribute_concepts(
    model: LoadedModel,
    crop: np.ndarray,
    target: int | str | None = None,
    table: NeuronTable | None = None,
    *,
    layer: str = EXACT_LAYER,
    top_k: int = DEFAULT_TOP_K,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
) -> ConceptAttribution:
    """Split the target logit over `layer`'s units and name the strongest with `table`'s labels.

    `target` None explains the top class. layer4 is exact and checked (sum + bias = logit); layer3 is
    first order. Without a table the units are listed unlabelled, with a warning saying so.
    """
    if layer not in (EXACT_LAYER, FIRST_ORDER_LAYER):
        raise XaiLensError(
            f"Concept attribution reads {EXACT_LAYER} (exact) or {FIRST_ORDER_LAYER} (first order), not '{layer}'."
        )
    if top_k < 1:
        raise XaiLensError(f"top_k must be at least 1 (got {top_k}).")
    if table is not None:
        check_table_fits(table, model.name)
    exact = layer == EXACT_LAYER
    activation, logits, index, gradient = _layer_pass(model, crop, layer, target, with_gradient=not exact)
    activation = activation.float()
    if activation.ndim != 3:
        raise XaiLensError(f"{layer} gives {activation.ndim - 1}-d outputs; concept attribution needs C x H x W maps.")
    fc = _resnet_head(model.module, activation.shape[0]) if exact else getattr(model.module, "fc", None)
    bias = float(fc.bias.detach()[index]) if isinstance(fc, torch.nn.Linear) and fc.bias is not None else 0.0
    logit = float(logits[index])
    if exact:
        assert isinstance(fc, torch.nn.Linear)  # _resnet_head returns the fc layer or refuses
        contributions = unit_contributions(activation.mean(dim=(1, 2)), fc.weight.detach()[index]).cpu().numpy()
        error = abs(float(contributions.sum()) + bias - logit)
        if error > COMPLETENESS_TOLERANCE * max(1.0, abs(logit)):
            raise XaiLensError(
                f"{model.name}: layer4's unit contributions plus the fc bias miss the logit by {error:.3g}; the split "
                "is exact only when layer4 is average-pooled straight into the fc layer (a torchvision ResNet)."
            )
    else:
        assert gradient is not None  # _layer_pass ran the backward pass (with_gradient)
        contributions = (gradient.double() * activation.double()).sum(dim=(1, 2)).cpu().numpy()
    rows = _labels(table, layer, activation.shape[0])
    concepts = [_concept_of(rows.get(unit), min_similarity) for unit in range(activation.shape[0])]
    chosen = _top_units(contributions, top_k)
    activations = activation.cpu().numpy()
    units = [
        UnitEvidence(
            layer=layer,
            unit=unit,
            contribution=float(contributions[unit]),
            concept=rows[unit].concept if unit in rows else None,
            similarity=float(rows[unit].similarity) if unit in rows else None,
        )
        for unit in chosen
    ]
    return ConceptAttribution(
        model=model.name,
        weights=model.weights,
        layer=layer,
        exact=exact,
        target=index,
        target_label=model.categories[index],
        logit=logit,
        bias=bias,
        contributions=contributions,
        units=units,
        maps=upsample(activations[chosen], crop.shape[:2]),
        activations=activations,
        by_concept=_shares(contributions, concepts, 1),
        by_concept_negative=_shares(contributions, concepts, -1),
        table=table_provenance(table) if table is not None else None,
        min_similarity=min_similarity,
        warnings=_warnings(model, table),
    )
