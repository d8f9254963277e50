"""What the tuner may try for one image: explain_instance's parameters, each held inside the library's caps.

Every range sits inside explainers.limits (the same caps every parameter file is validated against), and
the most samples one trial may use is a tenth of the per-request cap, so any mix of tuned entries for the
ten presets still passes `params check`. Ranges that would only produce settings the caps refuse (e.g. a
quickshift kernel so small it makes thousands of superpixels) start where the refusals stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from explainers import limits
from explainers.errors import XaiLensError
from explainers.inputs.lime_kwargs import validate_explain_kwargs
from explainers.inputs.param_file import PRESET_KEYS

FAMILIES: tuple[str, ...] = ("quickshift", "slic", "felzenszwalb")
# hide_color: None is lime's own (each superpixel painted its mean colour), 0 black, 128 mid grey.
HIDE_COLORS: tuple[int | None, ...] = (None, 0, 128)
DISTANCE_METRICS: tuple[str, ...] = ("cosine", "euclidean", "manhattan")
# Labels lime explains change only the time (each label is its own regression on the same samples).
TOP_LABELS: tuple[int, ...] = (1, 2, 5)
FEWEST_SAMPLES = 50  # below this lime's regression has fewer rows than a preset crop has superpixels


def most_samples_per_image() -> int:
    """num_samples one tuned entry may ask for: within the per-image cap and a tenth of the per-request cap."""
    return max(FEWEST_SAMPLES, min(limits.lime_max_samples(), limits.lime_max_request_samples() // len(PRESET_KEYS)))


@dataclass(frozen=True)
class SearchSpace:
    """The ranges searched; narrow them (e.g. max_samples) for quick runs. None means 'up to the caps'."""

    families: tuple[str, ...] = FAMILIES
    min_samples: int = FEWEST_SAMPLES
    max_samples: int | None = None
    hide_colors: tuple[int | None, ...] = HIDE_COLORS
    distance_metrics: tuple[str, ...] = DISTANCE_METRICS
    top_labels: tuple[int, ...] = TOP_LABELS

    def samples_range(self) -> tuple[int, int]:
        """(fewest, most) samples, checked against the caps in force now."""
        cap = most_samples_per_image()
        high = cap if self.max_samples is None else self.max_samples
        if not 1 <= self.min_samples <= high <= cap:
            raise XaiLensError(
                f"The tuner's num_samples range must lie within 1..{cap} (a tenth of the per-request cap), "
                f"got {self.min_samples}..{high}"
            )
        return self.min_samples, high

    def check(self) -> None:
        """Refuse a space that names a family, colour or metric the parameter files would refuse."""
        self.samples_range()
        unknown = [family for family in self.families if family not in FAMILIES]
        if not self.families or unknown:
            raise XaiLensError(f"The tuner's segmentation families must be among {', '.join(FAMILIES)}, got {unknown}")
        if not self.hide_colors or not self.distance_metrics or not self.top_labels:
            raise XaiLensError("The tuner's search space needs at least one hide_color, distance_metric and top_labels")


def suggest_segmentation(trial: optuna.Trial, family: str) -> dict[str, Any]:
    """One family's settings; names are prefixed by the family so each family keeps its own history."""
    if family == "quickshift":
        return {
            "name": "quickshift",
            "kernel_size": trial.suggest_float("quickshift.kernel_size", 2.0, 8.0),
            "max_dist": trial.suggest_float("quickshift.max_dist", 20.0, 400.0, log=True),
            "ratio": trial.suggest_float("quickshift.ratio", 0.05, 1.0),
        }
    if family == "slic":
        return {
            "name": "slic",
            "n_segments": trial.suggest_int("slic.n_segments", 10, limits.MAX_SUPERPIXELS, log=True),
            "compactness": trial.suggest_float("slic.compactness", 1.0, 100.0, log=True),
            "start_label": 0,
        }
    return {
        "name": "felzenszwalb",
        "scale": trial.suggest_float("felzenszwalb.scale", 20.0, 1000.0, log=True),
        "sigma": trial.suggest_float("felzenszwalb.sigma", 0.0, 2.0),
        "min_size": trial.suggest_int("felzenszwalb.min_size", 20, 400, log=True),
    }


def suggest_entry(trial: optuna.Trial, space: SearchSpace, seed: int) -> dict[str, Any]:
    """One trial's explain_instance kwargs in the parameter file's canonical form (validated)."""
    low, high = space.samples_range()
    family = trial.suggest_categorical("segmentation", list(space.families))
    entry = {
        "segmentation_fn": suggest_segmentation(trial, family),
        "num_samples": trial.suggest_int("num_samples", low, high, log=True),
        # lime keeps this many superpixels (at most MAX_SUPERPIXELS exist); <= 6 switches it to forward selection.
        "num_features": trial.suggest_int("num_features", 1, limits.MAX_SUPERPIXELS, log=True),
        "batch_size": trial.suggest_int("batch_size", 10, limits.MAX_BATCH_SIZE, log=True),
        "hide_color": trial.suggest_categorical("hide_color", list(space.hide_colors)),
        "distance_metric": trial.suggest_categorical("distance_metric", list(space.distance_metrics)),
        # lime's default regressor is Ridge(alpha=1); alpha sets how strongly the superpixel weights shrink.
        "model_regressor": {"name": "Ridge", "alpha": trial.suggest_float("ridge_alpha", 0.01, 100.0, log=True)},
        "top_labels": trial.suggest_categorical("top_labels", list(space.top_labels)),
        "random_seed": seed,  # the segmentation's seed: the file then reproduces the tuned segmentation
    }
    return validate_explain_kwargs(entry, where="tuner")
