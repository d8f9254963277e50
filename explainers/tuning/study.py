"""The search: per image, an Optuna multi-objective study over explain_instance's parameters.

Each image gets its own study (what explains a goldfish well need not explain a kite well), maximising
IoU with the reference and minimising LIME's seconds. The sampler is Optuna's multi-objective TPE, seeded,
run one trial at a time: for a given seed and the same measurements the trials, and so the front, are the
same. (Wall time itself is a measurement: two settings whose times differ by less than the machine's
noise may trade places between runs; IoU does not move, LIME being seeded.)

Work is bounded three ways: trials per image and the budget in seconds are capped (check_trials,
check_budget), and a CancelToken is checked between trials and inside LIME's batches. The budget covers
the references, the search and the stability re-runs; each image's search stops when its share of what
is left is spent, then its front is re-run with other seeds (3 runs a front setting) while budget is left
(settings not re-run are reported "not measured"). A LIME run under way is never cut short by the budget,
so a run ends at most one trial or re-run past it; Stop cuts that run short at its next batch.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from explainers import limits
from explainers.comparison.masks import DEFAULT_RULE, MaskRule, parse_rule
from explainers.engine.cancel import CancelledError, CancelToken
from explainers.engine.models import LoadedModel
from explainers.errors import XaiLensError, first_line
from explainers.inputs.images import ImageSource
from explainers.methods.base import Subject
from explainers.pipeline import prepare
from explainers.tuning.objective import Timer, check_implementation, measure, wall_seconds
from explainers.tuning.references import CONVERGED_SAMPLES, Reference, make_reference
from explainers.tuning.search_space import SearchSpace, suggest_entry
from explainers.tuning.stability import OTHER_SEEDS, Stability, measure_stability

MAX_SEED = 2**31 - 1
STARTUP_TRIALS = 10  # random trials before TPE starts modelling the front (Optuna's default)

optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial is noise in a CLI or server log


@dataclass(frozen=True)
class Trial:
    """One trial on one image: Optuna's trial number and the settings it tried (canonical explain_instance kwargs)."""

    image: str
    number: int
    entry: dict[str, Any]


@dataclass(frozen=True)
class TrialRecord(Trial):
    """A completed trial and its two numbers."""

    iou: float
    seconds: float


@dataclass(frozen=True)
class FailedTrial(Trial):
    """A trial whose settings LIME refused (too many superpixels, a failed fit), and why."""

    error: str


@dataclass
class ImageResult:
    key: str
    target: str  # the class explained (the model's top class)
    trials: list[TrialRecord] = field(default_factory=list)  # completed, in trial order
    failed: list[FailedTrial] = field(default_factory=list)
    front: list[TrialRecord] = field(default_factory=list)
    stability: dict[int, Stability] = field(default_factory=dict)  # trial number -> re-run IoUs


@dataclass(frozen=True)
class Progress:
    """What the tuner is doing now, for a progress bar: trials done of this image's cap."""

    image: str
    image_index: int
    images: int
    trials_done: int
    trials: int
    elapsed_s: float
    message: str


@dataclass
class TuningResult:
    reference: str
    reference_description: str
    mask_rule: str
    seed: int
    implementation: str
    trials: int
    budget_s: float
    model: str
    images: dict[str, ImageResult] = field(default_factory=dict)
    stopped: str | None = None  # None (finished), "budget" or "cancelled"
    elapsed_s: float = 0.0


def _whole_number(name: str, value: Any, low: int, high: int, what: str) -> int:
    """The CLI hands over text, the library numbers: both get the same one-line refusal."""
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        value = int(value.strip())
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise XaiLensError(f"{name} must be a whole number from {low} to {high} ({what}), got {value!r:.30}")
    return int(value)


def check_trials(value: Any) -> int:
    return _whole_number("trials", value, 1, limits.MAX_TUNING_TRIALS, "trials per image")


def check_budget(value: Any) -> float:
    """Seconds for the whole run, from 1 to limits.MAX_TUNING_BUDGET_S."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            value = value[:30]
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not math.isfinite(value)
        or not 1 <= value <= limits.MAX_TUNING_BUDGET_S
    ):
        raise XaiLensError(
            f"budget must be from 1 to {limits.MAX_TUNING_BUDGET_S} seconds for the whole run, got {value!r:.30}"
        )
    return float(value)


def check_seed(value: Any) -> int:
    return _whole_number("seed", value, 0, MAX_SEED, "the search's and LIME's random seed")


def pareto_front(records: list[TrialRecord]) -> list[TrialRecord]:
    """Trials no other beats on both IoU (higher) and seconds (lower), fastest first."""
    ordered = sorted(records, key=lambda r: (r.seconds, -r.iou, r.number))
    front: list[TrialRecord] = []
    for record in ordered:
        if not front or record.iou > front[-1].iou:
            front.append(record)
    return front


def new_study(seed: int) -> optuna.Study:
    """A seeded in-memory study; TPE's multivariate, grouped mode models each segmentation family apart."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=STARTUP_TRIALS)
    return optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)


@dataclass
class _Run:
    """What every image's search shares: settings, the reference, the clock, the stop conditions."""

    model: LoadedModel
    reference: Reference
    rule: MaskRule
    seed: int
    trials: int
    implementation: str
    space: SearchSpace
    timer: Timer
    cancel: CancelToken | None
    progress: Callable[[Progress], None] | None
    started: float
    deadline: float
    images: int

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stop_reason(self, share_deadline: float) -> str | None:
        if self.cancel is not None and self.cancel.cancelled:
            return "cancelled"
        return "budget" if time.monotonic() >= min(share_deadline, self.deadline) else None

    def report(self, key: str, index: int, done: int, message: str) -> None:
        if self.progress is not None:
            self.progress(Progress(key, index, self.images, done, self.trials, self.elapsed(), message))

    def iou(self, key: str, subject: Subject, entry: dict[str, Any], explainer_seed: int) -> tuple[float, float]:
        family = entry["segmentation_fn"]["name"]
        reference_mask = self.reference.mask(key, subject, family)
        result = measure(
            subject,
            entry,
            reference_mask,
            self.rule,
            implementation=self.implementation,
            explainer_seed=explainer_seed,
            timer=self.timer,
        )
        return result.iou, result.seconds


def _search(
    run: _Run, key: str, index: int, subject: Subject, result: ImageResult, share_deadline: float
) -> str | None:
    """Run this image's trials until the cap, its share of the budget, or a stop; return why it stopped early."""
    study = new_study(run.seed)
    for _ in range(run.trials):
        reason = run.stop_reason(share_deadline)
        if reason == "cancelled" or (reason == "budget" and result.trials):  # every image gets one trial
            return reason
        trial = study.ask()
        entry = suggest_entry(trial, run.space, run.seed)
        try:
            score, seconds = run.iou(key, subject, entry, run.seed)
        except CancelledError:
            study.tell(trial, state=TrialState.FAIL)
            return "cancelled"
        except XaiLensError as error:  # a setting lime refuses (too many superpixels, a failed fit): next trial
            study.tell(trial, state=TrialState.FAIL)
            result.failed.append(FailedTrial(key, trial.number, entry, first_line(error, limit=1000)))
            continue
        study.tell(trial, [score, seconds])
        result.trials.append(TrialRecord(key, trial.number, entry, score, seconds))
        run.report(key, index, len(result.trials), f"{key}: trial {trial.number} IoU {score:.3f} in {seconds:.2f} s")
    return None


def _stability(run: _Run, key: str, index: int, subject: Subject, result: ImageResult, count: int) -> str | None:
    for record in result.front:
        if run.stop_reason(run.deadline) is not None:  # past the budget: the rest stay "not measured"
            return run.stop_reason(run.deadline)

        def iou_with_seed(seed: int, entry: dict[str, Any] = record.entry) -> float:
            return run.iou(key, subject, entry, seed)[0]

        try:
            result.stability[record.number] = measure_stability(record.iou, run.seed, iou_with_seed, count=count)
        except CancelledError:
            return "cancelled"
        run.report(key, index, len(result.trials), f"{key}: trial {record.number} re-run with {count} other seeds")
    return None


def tune(
    images: Mapping[str, ImageSource],
    model: LoadedModel,
    reference: str | Reference,
    *,
    trials: int,
    budget_s: float,
    seed: int = 0,
    mask_rule: str | MaskRule = DEFAULT_RULE,
    implementation: str = "lime",
    space: SearchSpace | None = None,
    converged_samples: int = CONVERGED_SAMPLES,
    stability_seeds: int = OTHER_SEEDS,
    progress: Callable[[Progress], None] | None = None,
    cancel: CancelToken | None = None,
    timer: Timer = wall_seconds,
) -> TuningResult:
    """Search each image's LIME settings; every input is checked (one-line errors) before any work starts."""
    trials, budget_s, seed = check_trials(trials), check_budget(budget_s), check_seed(seed)
    rule = parse_rule(mask_rule)
    check_implementation(implementation)
    space = space or SearchSpace()
    space.check()
    if not images or len(images) > limits.MAX_IMAGES_PER_REQUEST:
        raise XaiLensError(f"The tuner takes 1 to {limits.MAX_IMAGES_PER_REQUEST} images, got {len(images)}")
    if not 1 <= stability_seeds <= OTHER_SEEDS:
        raise XaiLensError(f"stability_seeds must be from 1 to {OTHER_SEEDS}, got {stability_seeds!r:.20}")
    if isinstance(reference, str):
        reference = make_reference(reference, rule=rule, seed=seed, converged_samples=converged_samples)
    reference.check_keys(list(images))
    started = time.monotonic()
    run = _Run(
        model, reference, rule, seed, trials, implementation, space, timer, cancel, progress,
        started, started + budget_s, len(images),
    )  # fmt: skip
    result = TuningResult(
        reference.name, reference.description, str(rule), seed, implementation, trials, budget_s, model.name
    )
    for index, (key, source) in enumerate(images.items()):
        if cancel is not None and cancel.cancelled:
            result.stopped = "cancelled"
            break
        prepared = prepare(source, model, image_name=key, cancel=cancel)
        subject = Subject(model, prepared.crop, prepared.target.index, cancel)
        image = result.images[key] = ImageResult(key, prepared.target.label)
        share_deadline = time.monotonic() + (run.deadline - time.monotonic()) / (len(images) - index)
        stopped = _search(run, key, index, subject, image, share_deadline)
        image.front = pareto_front(image.trials)
        if stopped != "cancelled":
            stopped = _stability(run, key, index, subject, image, stability_seeds) or stopped
        if stopped == "cancelled" or (stopped == "budget" and time.monotonic() >= run.deadline):
            result.stopped = stopped
            if stopped == "cancelled":
                break
    result.elapsed_s = run.elapsed()
    return result
