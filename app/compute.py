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
from typing import Any, TypeVar

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

Callback = TypeVar("Callback")
Answer = TypeVar("Answer")


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

    def options(self) -> dict[str, Any]:
        """The pipeline's keyword options (explainers.pipeline.iter_explain) this request sets, by their names."""
        return {name: getattr(self, name) for name in ("target", "lime_params", "mask_rule", "image_name")}


def _staying_here(callback: Callback, cancel: CancelToken | None) -> tuple[Callback | None, CancelToken | None]:
    """The tab's callback and Stop token where the GPU function runs in this process; neither where it runs in a
    forked ZeroGPU worker (a closure does not pickle, and a token holds a lock: the worker makes its own)."""
    return (None, None) if zero_gpu() else (callback, cancel)


def _unrefused(result: Answer | Refusal) -> Answer:
    """A GPU function's answer, or its refusal raised again here as the one-line XaiLensError it was."""
    if isinstance(result, Refusal):
        raise result.error from None
    return result


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
    lime_progress, cancel = _staying_here(lime_progress, cancel)
    for item in explain_on_gpu(request, lime_progress=lime_progress, cancel=cancel):
        yield _unrefused(item)


def of_request(seconds: Callable[[Mapping[str, Any]], int]) -> Callable[[Mapping[str, Any]], int]:
    """A lease function of a request's fields as a GPU function's duration: spaces hands the duration the
    function's bound arguments, and each GPU function here takes its plain-data request as `request`."""
    return lambda arguments: seconds(vars(arguments["request"]))


@gpu(duration=of_request(trust_seconds))
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
        maps = iter_explain(
            request.image_path, model, request.methods, lime_progress=lime_progress, cancel=token, **request.options()
        )
        for explanation in maps:
            yield snapshot(explanation)  # the pipeline reports what is still pending
            if concepts:
                concepts = False
                token.check()
                yield explain_concepts(model, explanation.crop, explanation.target.index, request.concepts_root)
        if request.trust is not None and explanation is not None:
            yield measure_trust(explanation, request.trust, request.lime_params, token)
    except XaiLensError as exc:
        yield Refusal(exc)


@dataclass(frozen=True)
class PresetsRequest:
    """The ten-preset report as plain data (what crosses into the GPU worker; `on_image` and the token do not)."""

    model_name: str
    weights: str
    methods: str | Sequence[str]
    lime_params: Mapping[str, Mapping[str, Any]]  # preset key -> explain_instance kwargs
    mask_rule: str
    out_dir: str
    examples_dir: str | None = None
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", _plain(self.methods))
        object.__setattr__(self, "lime_params", {key: dict(entry) for key, entry in self.lime_params.items()})


def run_presets(
    request: PresetsRequest,
    on_image: Callable[[int, int, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """The ten-preset report into out_dir; returns the table, the answer and the file paths.

    It stops between batches once `cancel` is set (Stop) or `deadline_s` has passed (CancelledError)."""
    on_image, cancel = _staying_here(on_image, cancel)
    return _unrefused(presets_on_gpu(request, on_image=on_image, cancel=cancel))


@gpu(duration=of_request(presets_seconds))
def presets_on_gpu(
    request: PresetsRequest,
    on_image: Callable[[int, int, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any] | Refusal:
    """run_presets' work, where the GPU is."""
    try:
        token = cancel if cancel is not None else CancelToken(request.deadline_s)
        model = load_model(request.model_name, request.weights)
        images = ensure_presets(request.examples_dir, progress=False)
        out = Path(request.out_dir)
        rows = build_report(
            model, images, out, request.methods, request.lime_params, request.mask_rule, on_image=on_image, cancel=token
        )
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


@dataclass(frozen=True)
class TunerRequest:
    """A tuning run as plain data (what crosses into the GPU worker; `on_progress` and the token do not)."""

    image_paths: Mapping[str, str]  # preset key -> its verified local file
    model_name: str
    weights: str
    reference: str
    trials: int
    budget_s: float
    max_samples: int
    reference_samples: int
    families: Sequence[str]
    min_iou: float | None
    out_dir: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "image_paths", dict(self.image_paths))
        object.__setattr__(self, "families", list(self.families))


def run_tuner(
    request: TunerRequest,
    on_progress: Callable[[float, str], None] | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Tune LIME's settings for the given preset images and export the front, the summary and the parameter file.

    Returns plain data: why it stopped, the files, the chosen parameters (all ten entries) and the keys tuned.
    Stop (`cancel`) ends the search between LIME batches; what was found so far is still exported."""
    on_progress, cancel = _staying_here(on_progress, cancel)
    return _unrefused(tuner_on_gpu(request, on_progress=on_progress, cancel=cancel))


@gpu(duration=of_request(tuner_seconds))
def tuner_on_gpu(
    request: TunerRequest,
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
        min_iou = check_min_iou(request.min_iou)
        token = cancel if cancel is not None else CancelToken(check_budget(request.budget_s) + TUNER_LEASE_MARGIN_S)
        model = load_model(request.model_name, request.weights)
        result = tune(
            dict(request.image_paths),
            model,
            request.reference,
            trials=request.trials,
            budget_s=request.budget_s,
            space=SearchSpace(families=tuple(request.families), max_samples=request.max_samples),
            converged_samples=request.reference_samples,
            progress=report,
            cancel=token,
        )
        paths = export(result, request.out_dir, min_iou)
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
