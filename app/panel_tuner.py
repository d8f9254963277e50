"""The LIME tuner inside the LIME parameters tab: search explain_instance's settings, then load the chosen ones.

explainers.tuning does the search (Optuna, per image: IoU with a reference up, LIME's seconds down) and the
export (pareto.csv, pareto.png, summary.md, explain_params.pkl). This panel only collects the inputs, shows
progress on a line of its own, wires Stop to the session's cancel token (app.stops), and puts the chosen
settings into the parameter editor, so the tab's 'Make explain_params.pkl' button exports exactly them.

Caps: trials and budget are the library's (explainers.limits); a public demo (a Space) lowers them so a
run fits one GPU lease. A CPU starts from small settings (one image, few trials and samples) and says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app import settings
from app.compute import TUNER_LEASE_CAP_S, TUNER_LEASE_MARGIN_S, TunerRequest, run_tuner
from app.defaults import device_defaults, model_choices
from app.errors import user_error
from app.gpu import WORKER_START_S, zero_gpu
from app.settings import AppConfig
from app.stops import STOPS, wire_stop_button
from explainers import limits
from explainers.engine.cancel import CancelledError
from explainers.errors import XaiLensError
from explainers.inputs.param_file import PRESET_KEYS
from explainers.inputs.presets import preset_path
from explainers.tuning.references import CONVERGED_SAMPLES, NAMED_REFERENCES
from explainers.tuning.search_space import FAMILIES, FEWEST_SAMPLES, most_samples_per_image

JOB = "tuner"
# A public demo shares one GPU among visitors: a run must fit one lease (compute.TUNER_LEASE_CAP_S).
PUBLIC_MAX_TRIALS = 30
PUBLIC_MAX_BUDGET_S = int(TUNER_LEASE_CAP_S - WORKER_START_S - TUNER_LEASE_MARGIN_S)
OFF_SPACES_GRACE_S = 600  # off a Space the run's own deadline: its budget plus this (one LIME run, the export)
FILES_SHOWN = ("explain_params.pkl", "pareto.csv", "summary.md", "pareto.png", "trials.csv")


def public_demo() -> bool:
    """A Space (or ZeroGPU): visitors share the machine, so the lower caps hold."""
    return settings.ON_SPACES or zero_gpu()


def trials_cap() -> int:
    return min(limits.MAX_TUNING_TRIALS, PUBLIC_MAX_TRIALS) if public_demo() else limits.MAX_TUNING_TRIALS


def budget_cap() -> int:
    return min(limits.MAX_TUNING_BUDGET_S, PUBLIC_MAX_BUDGET_S) if public_demo() else limits.MAX_TUNING_BUDGET_S


@dataclass(frozen=True)
class TunerDefaults:
    """First-run settings: small on a CPU (minutes, not hours), the fuller search on a GPU."""

    images: tuple[str, ...]
    trials: int
    budget_s: int
    max_samples: int
    reference_samples: int
    families: tuple[str, ...]
    note: str


def tuner_defaults(on_gpu: bool | None = None) -> TunerDefaults:
    gpu = device_defaults(on_gpu).on_gpu
    cap = limits.lime_max_samples()
    if gpu:
        budget = min(budget_cap(), 600)
        return TunerDefaults(
            PRESET_KEYS, min(20, trials_cap()), budget, most_samples_per_image(), min(2000, cap), FAMILIES,
            f"GPU: all ten presets, 20 trials each, every segmentation family; the {budget} s budget ends the run.",
        )  # fmt: skip
    return TunerDefaults(
        PRESET_KEYS[:1], 4, min(budget_cap(), 120), 100, min(300, cap), ("quickshift",),
        "CPU: small settings (1 image, 4 trials, at most 100 samples, quickshift only, a 300-sample reference) so "
        "a run takes a few minutes; each LIME trial is seconds to minutes here, so add images and trials with care.",
    )  # fmt: skip


def whole(value: Any, name: str, low: int, high: int, why: str) -> int:
    """A form number as an int within [low, high]; API callers skip the form, so anything else is one line."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise XaiLensError(f"{name} must be a whole number from {low} to {high} ({why}), got {str(value)[:30]!r}")
    if value != int(value) or not low <= value <= high:
        raise XaiLensError(f"{name} must be a whole number from {low} to {high} ({why}), got {value:g}")
    return int(value)


def check_public_caps(trials: Any, budget_s: Any) -> tuple[int, int]:
    """Trials and budget within the caps in force (the library's, lowered on a public demo)."""
    where = "this public demo's cap" if public_demo() else "the tuner's cap"
    return (
        whole(trials, "Trials per image", 1, trials_cap(), where),
        whole(budget_s, "Budget in seconds", 1, budget_cap(), f"{where}, for the whole run"),
    )


def check_images(chosen: Any) -> list[str]:
    if not isinstance(chosen, (list, tuple)) or not chosen:
        raise XaiLensError("Tick at least one preset image to tune.")
    unknown = [str(key)[:30] for key in chosen if key not in PRESET_KEYS]
    if unknown:
        raise XaiLensError(f"{unknown[0]!r} is not a preset; choose from {', '.join(PRESET_KEYS)}.")
    return list(dict.fromkeys(chosen))


def check_reference(name: Any) -> str:
    if name not in NAMED_REFERENCES:
        raise XaiLensError(f"Reference must be one of {', '.join(NAMED_REFERENCES)}, got {str(name)[:30]!r}.")
    return str(name)


def parse_min_iou(value: Any) -> float | None:
    """0 or empty means 'the knee of each front'; anything else is the IoU the chosen setting must reach."""
    if value in (None, 0, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise XaiLensError(f"Minimum IoU is from 0 (the knee) to 1, got {str(value)[:20]!r}.")
    return float(value)


def outcome_line(result: dict[str, Any], stopped_by_visitor: bool) -> str:
    """What happened, in one line: finished, stopped by the budget, or stopped by the visitor."""
    trials = sum(result["trials"].values())
    tuned = ", ".join(result["tuned"]) or "none"
    ended = {None: "Done", "budget": "The budget ran out", "cancelled": "Stopped"}[result["stopped"]]
    if result["stopped"] == "cancelled":
        ended += " (you pressed Stop)" if stopped_by_visitor else " (the time limit passed)"
    loaded = (
        "their settings are now in the parameter editor (the rest keep the defaults)"
        if result["tuned"]
        else "no trial finished, so the editor is unchanged"
    )
    return f"**{ended}** after {result['elapsed_s']:.0f} s: {trials} trials; tuned: {tuned}; {loaded}."


def build_tuner_panel(config: AppConfig, editor: gr.Code) -> gr.events.Dependency:
    """Lay out the tuner (api name: tune_lime) inside the current block; the returned event ends after the
    editor holds the chosen settings, so the tab can refill its form with `.then`."""
    defaults = tuner_defaults()
    gr.Markdown(
        "Searches each image's `explain_instance` settings for a high IoU with a reference mask in little LIME "
        f"time (Optuna, multi-objective), re-runs the best with other seeds, and loads the knee of each front into "
        f"the editor above. {defaults.note}",
        elem_id="tuner-intro",
    )
    with gr.Row():
        images = gr.CheckboxGroup(list(PRESET_KEYS), value=list(defaults.images), label="Preset images to tune")
    with gr.Row():
        model = gr.Dropdown(model_choices(config.weights), value=device_defaults().model, label="Model")
        reference = gr.Dropdown(
            list(NAMED_REFERENCES), value=NAMED_REFERENCES[0], label="Reference",
            info="converged: LIME at many samples; cam-consensus: where the three CAMs agree",
        )  # fmt: skip
        trials = gr.Number(defaults.trials, precision=0, label=f"Trials per image (1-{trials_cap()})")
        budget = gr.Number(defaults.budget_s, precision=0, label=f"Budget, seconds for the run (1-{budget_cap()})")
    with gr.Accordion("Search space and choice", open=False):
        with gr.Row():
            max_samples = gr.Number(
                defaults.max_samples, precision=0,
                label=f"Most num_samples a trial may use ({FEWEST_SAMPLES}-{most_samples_per_image()})",
            )  # fmt: skip
            reference_samples = gr.Number(
                defaults.reference_samples, precision=0,
                label=f"Samples of the converged reference (1-{limits.lime_max_samples()}; library default "
                f"{CONVERGED_SAMPLES})",
            )  # fmt: skip
            min_iou = gr.Number(0, label="Minimum IoU (0 = the knee of each front; else the fastest above it)")
        families = gr.CheckboxGroup(list(FAMILIES), value=list(defaults.families), label="Segmentation families")
    with gr.Row():
        run = gr.Button("Tune", variant="primary", scale=3, elem_id="tuner-run")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="tuner-stop")
    status = gr.Markdown(elem_id="tuner-status")
    pareto = gr.Image(
        label="Fronts per image: IoU against LIME seconds (chosen starred)",
        show_label=False,  # the figure's own title says it; a label chip would cover that title
        type="filepath",
        elem_id="tuner-pareto",
    )
    with gr.Accordion("Summary of the chosen settings", open=False):
        summary = gr.Markdown(elem_id="tuner-summary")
    files = gr.File(label="Downloads: " + ", ".join(FILES_SHOWN), file_count="multiple")

    def tune_lime(
        request: gr.Request, chosen, model_name, reference_name, trial_count, budget_s, samples_high,
        reference_count, min_iou_value, chosen_families, progress=gr.Progress(),  # noqa: B008 (gradio injects it)
    ):  # fmt: skip
        session = getattr(request, "session_hash", None)
        try:
            keys = check_images(chosen)
            trial_count, budget_s = check_public_caps(trial_count, budget_s)
            name = check_reference(reference_name)
            high = whole(samples_high, "Most num_samples", FEWEST_SAMPLES, most_samples_per_image(), "the caps")
            ref_samples = whole(reference_count, "Reference samples", 1, limits.lime_max_samples(), "the cap")
            floor = parse_min_iou(min_iou_value)
            paths = {key: str(preset_path(key, config.examples_dir)) for key in keys}  # before the GPU is asked for
        except XaiLensError as exc:
            raise user_error(str(exc)) from None
        token = STOPS.start(JOB, session, budget_s + OFF_SPACES_GRACE_S)
        try:
            tuning = TunerRequest(
                paths, model_name, config.weights, name, trials=trial_count, budget_s=budget_s, max_samples=high,
                reference_samples=ref_samples, families=list(chosen_families or []), min_iou=floor,
                out_dir=str(config.new_run_dir("tuner-")),
            )  # fmt: skip
            result = run_tuner(tuning, on_progress=lambda done, message: progress(done, desc=message), cancel=token)
        except CancelledError:
            by_visitor = STOPS.finish(JOB, session, token)
            reason = "you pressed Stop" if by_visitor else "the time limit passed"
            return (f"**Stopped** ({reason}) before any trial finished.", *(gr.update(),) * 4)
        except XaiLensError as exc:
            raise user_error(str(exc)) from None
        finally:
            by_visitor = STOPS.finish(JOB, session, token)
        line = outcome_line(result, by_visitor)
        note = " **Random weights: these settings were tuned on an untrained model.**" if config.is_random else ""
        shown = [result["files"][name] for name in FILES_SHOWN if name in result["files"]]
        text = json.dumps(result["params"], indent=2) if result["tuned"] else gr.update()
        return line + note, result["files"].get("pareto.png"), result["summary"], shown, text

    running = run.click(
        tune_lime,
        [images, model, reference, trials, budget, max_samples, reference_samples, min_iou, families],
        [status, pareto, summary, files, editor],
        api_name="tune_lime",
        concurrency_limit=1,
        concurrency_id=settings.HEAVY_CONCURRENCY_ID,
        show_progress_on=[status],  # the last front stays visible under a new run
        trigger_mode="always_last",
    )

    wire_stop_button(stop, JOB, running)
    return running
