"""Which explanation to trust: faithfulness (deletion, insertion, ROAD) and sanity (randomisation) per method.

Every metric works from maps already computed: the perturbation metrics only run the model on
altered copies of the input, and the sanity check re-runs the methods on randomised copies of
the model (never on the original). One registry names them; `evaluate` runs the ones asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from explainers.engine.cancel import CancelToken
from explainers.engine.models import LoadedModel
from explainers.errors import XaiLensError
from explainers.faithfulness.deletion_insertion import (
    BASELINES,
    DEFAULT_STEPS,
    Curves,
    check_steps,
    deletion_insertion,
)
from explainers.faithfulness.randomization import Cascade, check_stages, randomization_cascade
from explainers.faithfulness.road import DEFAULT_SEED, road_combined
from explainers.methods import SaliencyMethod, create_method

__all__ = [
    "BASELINES",
    "DEFAULT_STEPS",
    "METRICS",
    "Cascade",
    "Curves",
    "MethodMetrics",
    "check_steps",
    "evaluate",
    "measure_explanation",
    "parse_metrics",
]


@dataclass
class MethodMetrics:
    """One method's numbers (summary.json's keys), the model passes they cost, and what the figures draw."""

    values: dict[str, float] = field(default_factory=dict)
    passes: int = 0
    curves: Curves | None = None
    cascade: Cascade | None = None

    def summary(self) -> dict[str, Any]:
        return {**{key: round(value, 6) for key, value in self.values.items()}, "passes": self.passes}


@dataclass(frozen=True)
class Request:
    """What one evaluation works from: the model, the input, the target, the maps and the options."""

    model: LoadedModel
    crop: np.ndarray
    target: int
    probability: float
    maps: Mapping[str, np.ndarray]
    wanted: frozenset[str]
    steps: int
    baseline: str
    seed: int
    stages: Sequence[str] | None
    make_method: Callable[[str], SaliencyMethod]
    cancel: CancelToken | None

    @property
    def tensor(self) -> torch.Tensor:
        return self.model.to_tensor(self.crop)


def _deletion_insertion(request: Request, results: dict[str, MethodMetrics]) -> None:
    tensor = request.tensor
    for name, saliency_map in request.maps.items():
        curves = deletion_insertion(
            request.model,
            tensor,
            saliency_map,
            request.target,
            request.probability,
            steps=request.steps,
            baseline=request.baseline,
            deletion="deletion" in request.wanted,
            insertion="insertion" in request.wanted,
            cancel=request.cancel,
        )
        result = results[name]
        result.curves, result.passes = curves, result.passes + curves.passes
        if curves.deletion is not None:
            result.values["deletion_auc"] = curves.deletion_auc
        if curves.insertion is not None:
            result.values["insertion_auc"] = curves.insertion_auc


def _road(request: Request, results: dict[str, MethodMetrics]) -> None:
    tensor = request.tensor
    for name, saliency_map in request.maps.items():
        score, passes = road_combined(
            request.model, tensor, saliency_map, request.target, seed=request.seed, cancel=request.cancel
        )
        results[name].values["road"] = score
        results[name].passes += passes


def _sanity(request: Request, results: dict[str, MethodMetrics]) -> None:
    methods = {name: request.make_method(name) for name in request.maps}
    cascades = randomization_cascade(
        request.model,
        request.crop,
        request.target,
        request.maps,
        methods,
        stages=request.stages,
        seed=request.seed,
        cancel=request.cancel,
    )
    for name, cascade in cascades.items():
        results[name].cascade = cascade
        results[name].values["randomization_spearman"] = cascade.final_spearman
        results[name].values["randomization_ssim"] = cascade.final_ssim


# metric name -> the function measuring it (deletion and insertion share one run and its all-baseline pass).
METRICS: dict[str, Callable[[Request, dict[str, MethodMetrics]], None]] = {
    "deletion": _deletion_insertion,
    "insertion": _deletion_insertion,
    "road": _road,
    "sanity": _sanity,
}


def parse_metrics(metrics: str | Sequence[str]) -> list[str]:
    """'deletion,road' or a list -> validated names in the given order, or a one-line error."""
    names = [m.strip().lower() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
    for name in names:
        if name not in METRICS:
            raise XaiLensError(f"unknown metric '{name}'; choose from {', '.join(METRICS)}")
    if not names:
        raise XaiLensError(f"no metric chosen; choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def evaluate(
    model: LoadedModel,
    crop: np.ndarray,
    target: int,
    probability: float,
    maps: Mapping[str, np.ndarray],
    metrics: str | Sequence[str],
    *,
    steps: int = DEFAULT_STEPS,
    baseline: str = "zeros",
    seed: int = DEFAULT_SEED,
    stages: Sequence[str] | None = None,
    make_method: Callable[[str], SaliencyMethod] = create_method,
    cancel: CancelToken | None = None,
) -> dict[str, MethodMetrics]:
    """The asked-for metrics for each method's map (method name -> map on the crop).

    `probability` is the target's probability on the crop (the pipeline has it already);
    `make_method(name)` builds a method for the sanity check's re-runs, configured as the original was.
    """
    wanted = parse_metrics(metrics)
    steps = check_steps(steps)
    if baseline not in BASELINES:
        raise XaiLensError(f"unknown baseline '{baseline}'; choose from {', '.join(BASELINES)}")
    if "sanity" in wanted:
        check_stages(model, stages)
    request = Request(
        model, crop, target, probability, maps, frozenset(wanted), steps, baseline, seed, stages, make_method, cancel
    )
    results = {name: MethodMetrics() for name in maps}
    for measure in dict.fromkeys(METRICS[name] for name in wanted):
        measure(request, results)
    return results


def measure_explanation(explanation: Any, metrics: str | Sequence[str], **options: Any) -> dict[str, MethodMetrics]:
    """Evaluate a finished pipeline Explanation's maps and keep the result on it (explanation.metrics)."""
    maps = {name: saliency.map for name, saliency in explanation.saliency.items()}
    target = explanation.target
    explanation.metrics = evaluate(
        explanation.model, explanation.crop, target.index, target.probability, maps, metrics, **options
    )
    return explanation.metrics
