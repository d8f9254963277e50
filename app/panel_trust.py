"""The Explain tab's "Which explanation to trust" panel: faithfulness and sanity per method, opt-in.

The numbers come from `explainers.faithfulness` over the maps the explanation already made (no method
is re-run for deletion, insertion or ROAD); only the sanity check re-runs each method, on randomised
copies of the model, so it is a separate opt-in with its cost said beside it. The measuring runs in
the explanation's own GPU function, after the last map (`measure_trust`); what crosses back is plain
data (`TrustResult`), drawn here in the app's process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from app.gpu import explain_seconds, image_work_s, lease_seconds
from explainers.engine.cancel import CancelToken
from explainers.engine.models import MODEL_SPECS
from explainers.errors import XaiLensError
from explainers.faithfulness import (
    BASELINES,
    DEFAULT_STEPS,
    MethodMetrics,
    check_steps,
    measure_explanation,
    parse_metrics,
)
from explainers.faithfulness.deletion_insertion import MAX_STEPS, perturbed_counts
from explainers.faithfulness.figures import cascade_strip, curves_figure
from explainers.faithfulness.randomization import UNCHANGED_SPEARMAN, default_stages
from explainers.faithfulness.road import PERCENTILES
from explainers.methods import METHODS, create_method
from explainers.outputs import render

PERTURBATION_METRICS = ("deletion", "insertion", "road")
SANITY = "sanity"
CROP_PIXELS = 224 * 224  # every model's crop (explainers.engine.models.ModelSpec.crop)
ROAD_PASSES = 2 * len(PERCENTILES)  # LeRF and MoRF at each percentile
# Lease estimate per perturbed input on an H100 (batched, float32, rounded up), and ROAD's sparse imputation
# solves, which run on the CPU beside the GPU (tools/bench_results: ~0.6 s a map on an idle 2-core CPU).
_PASS_S = {"resnet50": 0.002, "resnet18": 0.001}
_ROAD_SOLVE_S = 1.5

# (label, value) for the metric checkboxes; each label says what it costs.
METRIC_CHOICES = [
    ("Deletion AUC", "deletion"),
    ("Insertion AUC", "insertion"),
    ("ROAD (18 passes a map)", "road"),
    ("Sanity: re-run on a randomised model", SANITY),
]
COLUMNS = {  # summary key -> column header (the direction to read it in)
    "deletion_auc": "Deletion AUC (lower is better)",
    "insertion_auc": "Insertion AUC (higher is better)",
    "road": "ROAD (higher is better)",
    "randomization_spearman": "Sanity: Spearman (near 0 is right)",
    "randomization_ssim": "Sanity: SSIM (near 0 is right)",
}
PASSES_COLUMN = "Model passes"
OFF_TEXT = (
    "Tick a metric under **Which explanation to trust** (left) to measure, per method, how faithful each map is "
    "to the model, from the maps already made."
)


@dataclass(frozen=True)
class TrustRequest:
    """What the visitor asked to measure, checked: metric names, deletion/insertion steps and baseline."""

    metrics: tuple[str, ...]
    steps: int = DEFAULT_STEPS
    baseline: str = "zeros"

    @property
    def sanity(self) -> bool:
        return SANITY in self.metrics


@dataclass
class TrustResult:
    """Plain data back from the GPU worker: each method's metrics, and its original map for the sanity strip."""

    request: TrustRequest
    titles: dict[str, str]
    results: dict[str, MethodMetrics]
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    is_random: bool = False


def check_trust_request(metrics: Sequence[str] | str | None, steps: Any, baseline: Any) -> TrustRequest | None:
    """None when no metric is ticked; else the checked request, or a one-line XaiLensError for bad values."""
    if not metrics:
        return None
    names = parse_metrics(metrics)
    if isinstance(steps, float) and steps.is_integer():
        steps = int(steps)  # a slider sends 20.0
    if str(baseline) not in BASELINES:
        raise XaiLensError(f"unknown baseline '{baseline!s:.40}'; choose from {', '.join(BASELINES)}.")
    return TrustRequest(tuple(names), check_steps(steps), str(baseline))


def passes_per_map(metrics: Sequence[str], steps: int) -> int:
    """Model passes deletion, insertion and ROAD cost for one map (deletion and insertion share one pass)."""
    interior = len(perturbed_counts(CROP_PIXELS, steps)) - 2
    wanted = set(metrics)
    passes = 0
    if wanted & {"deletion", "insertion"}:
        passes = 1 + interior * (("deletion" in wanted) + ("insertion" in wanted))
    return passes + (ROAD_PASSES if "road" in wanted else 0)


@functools.cache
def sanity_stages(model_name: str) -> int:
    """How many randomised copies the sanity check makes for this model (fc, then each layer4 block)."""
    return len(default_stages(MODEL_SPECS[model_name].build()))


def cost_line(metrics: Sequence[str] | None, steps: Any, methods: Sequence[str], model_name: str) -> str:
    """The cost of the ticked metrics for the ticked methods, in model passes; refusals read as the line itself."""
    try:
        request = check_trust_request(metrics, steps, "zeros")
    except XaiLensError as exc:
        return str(exc)
    if request is None:
        return "Metrics off: no extra model passes."
    count = max(len(methods), 1)
    parts = []
    per_map = passes_per_map(request.metrics, request.steps)
    if per_map:
        parts.append(f"{per_map} model passes a map, {per_map * count} for {count} map{'s' * (count > 1)}")
    if "road" in request.metrics:
        parts.append("ROAD also solves a sparse system a map (seconds on a CPU)")
    if request.sanity and model_name in MODEL_SPECS:
        stages = sanity_stages(model_name)
        slow = [METHODS[m].title for m in methods if m in ("lime", "scorecam")]
        note = f": minutes on a CPU for {' and '.join(slow)}" if slow else ""
        parts.append(f"sanity re-runs every ticked method {stages} times (one randomised model each){note}")
    return "Cost: " + "; ".join(parts) + ". Maps come first; the measurements follow them."


def trust_seconds(arguments: Mapping[str, Any]) -> int:
    """The explanation's lease plus the metrics' passes (the duration callable of the one GPU function).

    Without metrics it is exactly app.gpu.explain_seconds, so a plain explanation asks for what it always did.
    """
    from app import settings

    request = arguments.get("trust")
    if not isinstance(request, TrustRequest):
        return explain_seconds(arguments)
    model_name = str(arguments["model_name"])
    family = "resnet18" if model_name.startswith("resnet18") else "resnet50"
    methods, lime_params = arguments["methods"], arguments.get("lime_params") or {}
    maps = len(methods.split(",") if isinstance(methods, str) else methods)
    work = image_work_s(methods, model_name, lime_params)
    work += maps * passes_per_map(request.metrics, request.steps) * _PASS_S[family]
    work += maps * _ROAD_SOLVE_S if "road" in request.metrics else 0.0
    if request.sanity and model_name in MODEL_SPECS:
        work += sanity_stages(model_name) * image_work_s(methods, model_name, lime_params)
    return lease_seconds(work, settings.GPU_SECONDS_EXPLAIN)


def measure_trust(
    explanation: Any, request: TrustRequest, lime_params: Mapping[str, Any], token: CancelToken
) -> TrustResult:
    """Worker side: the asked metrics over the finished explanation's maps (sanity re-runs as configured)."""

    def make_method(name: str):  # the sanity re-runs get the token through their Subject, as every method does
        return create_method(name, lime_params=lime_params)

    results = measure_explanation(
        explanation,
        list(request.metrics),
        steps=request.steps,
        baseline=request.baseline,
        make_method=make_method,
        cancel=token,
    )
    maps = {name: s.map for name, s in explanation.saliency.items()} if request.sanity else {}
    titles = {name: METHODS[name].title for name in explanation.saliency}
    return TrustResult(request, titles, results, maps, explanation.model.is_random)


def table_frame(result: TrustResult) -> pd.DataFrame:
    """One row per method, one column per number asked for: the values exactly as measured."""
    keys = [key for key in COLUMNS if any(key in r.values for r in result.results.values())]
    rows = []
    for name, metrics in result.results.items():
        row: dict[str, Any] = {"Method": result.titles[name]}
        row.update({COLUMNS[key]: metrics.values.get(key, np.nan) for key in keys})
        row[PASSES_COLUMN] = metrics.passes
        rows.append(row)
    return pd.DataFrame(rows, columns=["Method", *(COLUMNS[k] for k in keys), PASSES_COLUMN])


def styled_table(frame: pd.DataFrame) -> Any:
    """Three significant digits on screen (random-weights probabilities are ~1e-3), full values in the data."""
    numbers = [column for column in frame.columns if column not in ("Method", PASSES_COLUMN)]
    return frame.style.format("{:.3g}", subset=numbers, na_rep="-")


def verdict(result: TrustResult) -> str:
    """One sentence per method that still draws the same map on a randomised model; '' when none does."""
    flagged = [
        (result.titles[name], metrics.values["randomization_spearman"])
        for name, metrics in result.results.items()
        if metrics.values.get("randomization_spearman", 0.0) > UNCHANGED_SPEARMAN
    ]
    return " ".join(
        f"**{title} still draws nearly the same map on a randomised model** (Spearman {rho:.2f}): it shows the "
        "image, not what the model uses, so do not trust it here."
        for title, rho in flagged
    )


def headline(result: TrustResult) -> str:
    """What was measured, how to read it, the verdict, and the random-weights caveat."""
    request = result.request
    lines = [
        f"Measured {', '.join(request.metrics)} over the maps above (steps {request.steps}, baseline "
        f"{request.baseline}). Compare methods on this image, not across images."
    ]
    if request.sanity:
        lines.append(verdict(result) or "Every method's map changed on the randomised model, as it should.")
    if result.is_random:
        lines.append("**RANDOM WEIGHTS**: these numbers test the machinery; they say nothing about the image.")
    return "\n\n".join(lines)


def cascade_gallery(result: TrustResult) -> list[tuple[np.ndarray, str]]:
    """Each method's sanity strip (original, then each randomised stage) as a picture with its caption."""
    strips = []
    for name, metrics in result.results.items():
        if metrics.cascade is not None and name in result.maps:
            title = f"{result.titles[name]}: model randomisation"
            strips.append((render.figure_array(cascade_strip(result.maps[name], metrics.cascade, title)), title))
    return strips


def curves_image(result: TrustResult) -> np.ndarray | None:
    curves = {name: m.curves for name, m in result.results.items() if m.curves is not None}
    return render.figure_array(curves_figure(curves, result.titles)) if curves else None


def steps_limits() -> tuple[int, int]:
    """The steps slider's range: the library's own bounds."""
    return 1, MAX_STEPS
