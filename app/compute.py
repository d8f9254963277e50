"""The heavy work, behind the GPU decorator: plain-data arguments in, plain-data results out.

ZeroGPU runs the decorated functions in a forked worker, so nothing crossing takes or returns a
live model, a figure, a callback or a gradio object: on ZeroGPU the public wrappers drop the tabs'
progress callbacks (closures do not pickle), and a refusal raised in the worker (XaiLensError)
travels back as data and is raised again here, so the user reads its one line (spaces itself would
log a traceback and show only the exception's class name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.gpu import gpu, presets_seconds, zero_gpu
from app.panel_concepts import ConceptsResult, explain_concepts
from app.panel_trust import TrustRequest, TrustResult, measure_trust, trust_seconds
from explainers.engine.cancel import CancelToken
from explainers.engine.models import load_model
from explainers.errors import XaiLensError
from explainers.inputs.presets import ensure_presets
from explainers.outputs.exports import zip_folder
from explainers.outputs.report import answer_simple_vs_complex, build_report, iou_table_markdown
from explainers.outputs.snapshot import ExplanationView, snapshot
from explainers.pipeline import iter_explain


@dataclass(frozen=True)
class Refusal:
    """A one-line XaiLensError (or subclass, e.g. CancelledError) from the GPU worker, carried back as a result."""

    error: XaiLensError

    @property
    def message(self) -> str:
        return str(self.error)


@dataclass(frozen=True)
class ExplainRequest:
    """One explanation as plain data: what crosses into a ZeroGPU worker by pickle, and what sizes its lease.

    The tabs' progress callbacks and the Stop token travel beside it, never in it: closures and locks do
    not pickle, and on ZeroGPU they stay behind in this process.
    """

    image_path: str
    model_name: str
    weights: str
    methods: str | Sequence[str]
    target: int | None
    lime_params: Mapping[str, Any]
    mask_rule: str
    image_name: str | None = None
    deadline_s: float | None = None  # the worker's own limit where the caller's token cannot follow
    trust: TrustRequest | None = None  # the metrics to measure after the last map, if any
    concepts_root: str | None = None
    concepts: bool = False  # a ConceptsResult right after the first map

    def __post_init__(self) -> None:
        """Plain types whatever the caller passed (a tuple of methods, a form's mapping), so the request pickles."""
        object.__setattr__(self, "methods", _plain(self.methods))
        object.__setattr__(self, "lime_params", dict(self.lime_params or {}))


def explain_views(
    request: ExplainRequest,
    lime_progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[ExplanationView]:
    """Yield a picklable view after each method, cheapest first; past the request's `deadline_s` (or once
    `cancel` is set, e.g. by the Stop button) the work stops between batches with CancelledError."""
    for item in explain_stream(request, lime_progress, cancel):
        if isinstance(item, ExplanationView):
            yield item


def explain_stream(
    request: ExplainRequest,
    lime_progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[ExplanationView | ConceptsResult | TrustResult]:
    """explain_views, plus the Explain tab's panels: a ConceptsResult right after the first map (when
    `concepts`), and a TrustResult after the last map (when `trust` asks for metrics). One GPU function
    does it all, so one ZeroGPU lease covers the maps and their measurements."""
    on_fork = zero_gpu()  # a forked worker: the callback does not pickle, and a token holds a lock
    stream = explain_on_gpu(
        request, lime_progress=None if on_fork else lime_progress, cancel=None if on_fork else cancel
    )
    for item in stream:
        if isinstance(item, Refusal):
            raise item.error from None
        yield item


def request_seconds(arguments: Mapping[str, Any]) -> int:
    """explain_on_gpu's lease: trust_seconds over its request's fields (spaces passes the bound arguments)."""
    return trust_seconds(vars(arguments["request"]))


@gpu(duration=request_seconds)
def explain_on_gpu(
    request: ExplainRequest,
    lime_progress: Callable[[int, int], None] | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[ExplanationView | ConceptsResult | TrustResult | Refusal]:
    """explain_stream's work, where the GPU is (a ZeroGPU worker, or this process elsewhere).

    The maps stream first; concepts cost one forward pass after the first map, and the metrics run
    only once every map is out, so no map waits for a measurement. The token reaches every method
    through the pipeline's Subject, which checks it between batches."""
    try:
        # The caller's token (Stop button) where the work runs in this process; in a forked worker, one made here.
        token = cancel if cancel is not None else CancelToken(request.deadline_s)
        model = load_model(request.model_name, request.weights)
        concepts = request.concepts
        explanation = None
        for explanation in iter_explain(
            request.image_path,
            model,
            request.methods,
            target=request.target,
            lime_params=request.lime_params,
            mask_rule=request.mask_rule,
            image_name=request.image_name,
            lime_progress=lime_progress,
            cancel=token,
        ):
            yield snapshot(explanation)  # the pipeline reports what is still pending
            if concepts:
                concepts = False
                token.check()
                yield explain_concepts(model, explanation.crop, explanation.target.index, request.concepts_root)
        if request.trust is not None and explanation is not None:
            yield measure_trust(explanation, request.trust, request.lime_params, token)
    except XaiLensError as exc:
        yield Refusal(exc)


def run_presets(
    model_name: str,
    weights: str,
    methods: Sequence[str],
    lime_params: Mapping[str, Mapping[str, Any]],
    mask_rule: str,
    out_dir: str,
    examples_dir: str | None = None,
    on_image: Callable[[int, int, str], None] | None = None,
    deadline_s: float | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """The ten-preset report into out_dir; returns the table, the answer and the file paths.

    It stops between batches once `cancel` is set (Stop) or `deadline_s` has passed (CancelledError)."""
    result = presets_on_gpu(
        model_name,
        weights,
        _plain(methods),
        {key: dict(entry) for key, entry in lime_params.items()},
        mask_rule,
        out_dir,
        examples_dir=examples_dir,
        on_image=None if zero_gpu() else on_image,
        deadline_s=deadline_s,
        cancel=None if zero_gpu() else cancel,
    )
    if isinstance(result, Refusal):
        raise result.error from None
    return result


@gpu(duration=presets_seconds)
def presets_on_gpu(
    model_name: str,
    weights: str,
    methods: Sequence[str],
    lime_params: Mapping[str, Mapping[str, Any]],
    mask_rule: str,
    out_dir: str,
    examples_dir: str | None = None,
    on_image: Callable[[int, int, str], None] | None = None,
    deadline_s: float | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any] | Refusal:
    """run_presets' work, where the GPU is."""
    try:
        token = cancel if cancel is not None else CancelToken(deadline_s)
        model = load_model(model_name, weights)
        images = ensure_presets(examples_dir, progress=False)
        out = Path(out_dir)
        rows = build_report(model, images, out, methods, lime_params, mask_rule, on_image=on_image, cancel=token)
        zip_path = zip_folder(out, out / "xai_lens_presets.zip")
    except XaiLensError as exc:
        return Refusal(exc)
    return {
        "table": iou_table_markdown(rows),
        "answer": answer_simple_vs_complex(rows),
        "iou": {row.key: row.explanation.iou for row in rows},
        "files": {
            "csv": str(out / "iou.csv"),
            "bar": str(out / "iou_bar.png"),
            "grid": str(out / "overlays_grid.png"),
            "report": str(out / "report.md"),
            "zip": str(zip_path),
        },
    }


def _plain(methods: str | Sequence[str]) -> str | list[str]:
    """Method names as given: a 'gradcam,lime' string stays one (list() would split it into letters)."""
    return methods if isinstance(methods, str) else list(methods)


# --- The LIME tuner (LIME parameters tab; explainers.tuning does the work) -----------------------------
TUNER_LEASE_CAP_S = 300  # the longest GPU lease a tuning run asks ZeroGPU for (as the ten-preset run)
TUNER_LEASE_MARGIN_S = 30  # the tuner may end one LIME run past its budget, then the export writes its files


def tuner_seconds(arguments: Mapping[str, Any]) -> int:
    """Lease for a tuning run: its own budget (wall seconds already, so no slowdown factor), the worker's start
    and a margin, within TUNER_LEASE_CAP_S."""
    import math

    from app.gpu import WORKER_START_S

    try:
        budget = max(0.0, float(arguments.get("budget_s") or 0))
    except (TypeError, ValueError):  # refused in the worker with a one-line reason
        budget = 0.0
    return min(TUNER_LEASE_CAP_S, math.ceil(WORKER_START_S + budget + TUNER_LEASE_MARGIN_S))


def run_tuner(
    image_paths: Mapping[str, str],
    model_name: str,
    weights: str,
    reference: str,
    *,
    trials: int,
    budget_s: float,
    max_samples: int,
    reference_samples: int,
    families: Sequence[str],
    min_iou: float | None,
    out_dir: str,
    on_progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Tune LIME's settings for the given preset images and export the front, the summary and the parameter file.

    Returns plain data: why it stopped, the files, the chosen parameters (all ten entries) and the keys tuned.
    Stop (`cancel`) ends the search between LIME batches; what was found so far is still exported."""
    result = tuner_on_gpu(
        dict(image_paths),
        model_name,
        weights,
        reference,
        trials=trials,
        budget_s=budget_s,
        max_samples=max_samples,
        reference_samples=reference_samples,
        families=list(families),
        min_iou=min_iou,
        out_dir=out_dir,
        on_progress=None if zero_gpu() else on_progress,
        cancel=None if zero_gpu() else cancel,
    )
    if isinstance(result, Refusal):
        raise result.error from None
    return result


@gpu(duration=tuner_seconds)
def tuner_on_gpu(
    image_paths: Mapping[str, str],
    model_name: str,
    weights: str,
    reference: str,
    *,
    trials: int,
    budget_s: float,
    max_samples: int,
    reference_samples: int,
    families: Sequence[str],
    min_iou: float | None,
    out_dir: str,
    on_progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any] | Refusal:
    """run_tuner's work, where the GPU is."""
    from explainers.inputs.param_file import load_lime_params
    from explainers.tuning.export import check_min_iou, choices, export
    from explainers.tuning.search_space import SearchSpace
    from explainers.tuning.study import Progress, check_budget, tune

    def report(step: Progress) -> None:
        if on_progress is not None:
            done = (step.image_index + min(step.trials_done, step.trials) / max(step.trials, 1)) / max(step.images, 1)
            on_progress(min(done, 1.0), f"image {step.image_index + 1}/{step.images}: {step.message}")

    try:
        min_iou = check_min_iou(min_iou)
        token = cancel if cancel is not None else CancelToken(check_budget(budget_s) + TUNER_LEASE_MARGIN_S)
        model = load_model(model_name, weights)
        result = tune(
            dict(image_paths),
            model,
            reference,
            trials=trials,
            budget_s=budget_s,
            space=SearchSpace(families=tuple(families), max_samples=max_samples),
            converged_samples=reference_samples,
            progress=report,
            cancel=token,
        )
        paths = export(result, out_dir, min_iou)
        params = load_lime_params(paths["explain_params.pkl"])
    except XaiLensError as exc:
        return Refusal(exc)
    return {
        "stopped": result.stopped,
        "elapsed_s": result.elapsed_s,
        "tuned": sorted(choices(result, min_iou)),
        "trials": {key: len(image.trials) for key, image in result.images.items()},
        "params": params,
        "summary": Path(paths["summary.md"]).read_text(encoding="utf-8"),
        "files": {name: str(path) for name, path in paths.items()},
    }
