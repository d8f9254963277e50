"""LIME's explain_instance keyword arguments: the schema, its validation and the call form.

Inside the program every set of kwargs is kept in a canonical plain-data form (segmentation and
regressor as {'name': ..., **settings}), so entries can be compared, written to JSON and recorded
with each explanation; `lime_call_kwargs` turns one entry back into what lime wants.
Every work-scaling setting is held to the caps in explainers.limits, read when validating, so the
public cap (XAI_LENS_LIME_MAX_SAMPLES) binds every entry point that validates through here.
The ten-key parameter file that holds one such entry per preset is explainers.inputs.param_file.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from lime.lime_image import LimeImageExplainer
from lime.wrappers.scikit_image import SegmentationAlgorithm
from sklearn.metrics import pairwise_distances

from explainers import limits
from explainers.errors import XaiLensError, first_line
from explainers.inputs.safe_pickle import REGRESSOR_CLASSES
from explainers.inputs.segmentation import segmentation_from_spec, validate_segmentation_spec

__all__ = [
    "KNOWN_PARAMETERS",
    "LIME_DEFAULT_SAMPLES",
    "MAX_SAMPLES",
    "lime_call_kwargs",
    "segmentation_from_spec",
    "validate_explain_kwargs",
]

MAX_SAMPLES = limits.LIBRARY_MAX_SAMPLES  # the library's cap; limits.lime_max_samples() is the one in force
LIME_DEFAULT_SAMPLES = 1000  # what explain_instance uses when num_samples is not given
_SUPPLIED_AT_RUN_TIME = ("image", "classifier_fn")
KNOWN_PARAMETERS: tuple[str, ...] = (
    "labels",
    "hide_color",
    "top_labels",
    "num_features",
    "num_samples",
    "batch_size",
    "segmentation_fn",
    "distance_metric",
    "model_regressor",
    "random_seed",
    "progress_bar",  # newer lime has it, PyPI lime 0.2.0.1 does not; lime_call_kwargs drops it there
)


def _shown(value: Any) -> str:
    """A short one-line rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def closest(name: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _integer(where: str, name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise XaiLensError(f"{where}: {name} must be an integer from {low} to {high}, got {_shown(value)}")
    return int(value)


def _colour_level(where: str, value: Any) -> float | int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise XaiLensError(
            f"{where}: hide_color must be None, a number from 0 to 255 or an RGB triple, got {_shown(value)}"
        )
    number = value.item() if isinstance(value, np.generic) else value
    if not (math.isfinite(number) and 0 <= number <= 255):
        raise XaiLensError(f"{where}: hide_color values must be from 0 to 255, got {_shown(value)}")
    return number


def _hide_color(where: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
        if len(items) != 3:
            raise XaiLensError(f"{where}: hide_color as colour must be an RGB triple, got {len(items)} values")
        return tuple(_colour_level(where, item) for item in items)
    return _colour_level(where, value)


def _labels(where: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray)):
        raise XaiLensError(f"{where}: labels must be a list of class indices 0..999, got {_shown(value)}")
    if not 1 <= np.size(value) <= limits.MAX_LABELS:
        raise XaiLensError(
            f"{where}: labels must name 1 to {limits.MAX_LABELS} class indices 0..999 (one regression each), "
            f"got {np.size(value)}"
        )
    items = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
    return tuple(_integer(where, "labels", item, 0, 999) for item in items)


@functools.lru_cache(maxsize=64)
def _metric_works(name: str) -> bool:
    """Ask sklearn itself, on the kind of 0/1 data LIME gives it, instead of keeping our own list."""
    data = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 1, 1, 0]], dtype=float)
    try:
        pairwise_distances(data, data[:1], metric=name)
    except Exception:
        return False
    return True


def _distance_metric(where: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 40 or not _metric_works(value):
        choices = ["cosine", "euclidean", "manhattan", "l1", "l2", "cityblock", "hamming", "jaccard", "chebyshev"]
        hint = closest(value, choices) if isinstance(value, str) else ""
        raise XaiLensError(
            f"{where}: distance_metric must be a metric name sklearn's pairwise_distances knows "
            f"(e.g. cosine, euclidean, manhattan), got {_shown(value)}{hint}"
        )
    return value


def _plain_setting(where: str, name: str, value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise XaiLensError(
        f"{where}: model_regressor setting {name} must be a plain number, text or None, got {_shown(value)}"
    )


def _model_regressor(where: str, value: Any) -> dict[str, Any] | None:
    """Canonical form {'name': 'Ridge', **all its settings}; built once to let sklearn check the values."""
    if value is None:
        return None
    names = ", ".join(REGRESSOR_CLASSES)
    if isinstance(value, Mapping):
        name = value.get("name")
        if not isinstance(name, str) or name not in REGRESSOR_CLASSES:
            raise XaiLensError(
                f"{where}: model_regressor 'name' must be one of {names}, got {_shown(name)}"
                f"{closest(str(name), list(REGRESSOR_CLASSES))}"
            )
        settings = {key: val for key, val in value.items() if key != "name"}
        try:
            regressor = REGRESSOR_CLASSES[name](**settings)
        except TypeError as exc:
            raise XaiLensError(f"{where}: model_regressor {name}: {first_line(exc)}") from None
    elif type(value) in REGRESSOR_CLASSES.values():
        regressor = value
    else:
        raise XaiLensError(f"{where}: model_regressor must be None or one of sklearn's {names}, got {_shown(value)}")
    settings = {key: _plain_setting(where, key, val) for key, val in regressor.get_params(deep=False).items()}
    fresh = type(regressor)(**settings)  # drops anything fitted or smuggled in beside the settings
    try:
        fresh._validate_params()
    except Exception as exc:
        reason = first_line(exc, limit=100)
        raise XaiLensError(f"{where}: model_regressor {type(regressor).__name__}: {reason}") from None
    limits.check_regressor_work(where, type(regressor).__name__, settings)
    return {"name": type(regressor).__name__, **settings}


def _num_samples(where: str, value: Any) -> int:
    """num_samples within the cap in force now; the message says when it is this server's cap."""
    cap = limits.lime_max_samples()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 1 <= value <= cap:
        raise XaiLensError(
            f"{where}: num_samples must be an integer from 1 to {cap}{limits.samples_cap_note()}, got {_shown(value)}"
        )
    return int(value)


def _bool(where: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise XaiLensError(f"{where}: {name} must be true or false, got {_shown(value)}")
    return bool(value)


def validate_explain_kwargs(
    kwargs: Mapping[str, Any], *, where: str = "LIME", allow_callables: bool = True
) -> dict[str, Any]:
    """Check one set of explain_instance kwargs and return it in canonical plain-data form.

    `allow_callables=False` is for anything read from a file: a function may only come from
    code running in this process, never from data.
    """
    if not isinstance(kwargs, Mapping):
        raise XaiLensError(
            f"{where}: the LIME settings must be a dict of explain_instance arguments, got {_shown(kwargs)}"
        )
    result: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in _SUPPLIED_AT_RUN_TIME:
            raise XaiLensError(
                f"{where}: '{name}' is supplied by XAI Lens at run time; remove it from the LIME settings"
            )
        if name not in KNOWN_PARAMETERS:
            raise XaiLensError(
                f"{where}: unknown LIME parameter {_shown(name)}{closest(str(name), KNOWN_PARAMETERS)}; "
                f"known: {', '.join(KNOWN_PARAMETERS)}"
            )
        if name == "labels":
            result[name] = _labels(where, value)
        elif name == "hide_color":
            result[name] = _hide_color(where, value)
        elif name == "top_labels":
            result[name] = None if value is None else _integer(where, name, value, 1, limits.MAX_LABELS)
        elif name == "num_features":
            result[name] = _integer(where, name, value, 1, limits.MAX_NUM_FEATURES)
        elif name == "num_samples":
            result[name] = _num_samples(where, value)
        elif name == "batch_size":
            result[name] = _integer(where, name, value, 1, limits.MAX_BATCH_SIZE)
        elif name == "segmentation_fn":
            if not allow_callables and callable(value) and not isinstance(value, SegmentationAlgorithm):
                raise XaiLensError(
                    f"{where}: segmentation_fn from a file must be a name, a dict or a SegmentationAlgorithm, "
                    "not a function"
                )
            result[name] = validate_segmentation_spec(value, where=f"{where}: segmentation_fn")
        elif name == "distance_metric":
            result[name] = _distance_metric(where, value)
        elif name == "model_regressor":
            result[name] = _model_regressor(where, value)
        elif name == "random_seed":
            result[name] = None if value is None else _integer(where, name, value, 0, 2**32 - 1)
        else:  # progress_bar
            result[name] = _bool(where, name, value)
    return result


def lime_call_kwargs(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One validated entry as explain_instance wants it: live segmentation and regressor objects.

    progress_bar is dropped when the installed lime does not know it (PyPI lime 0.2.0.1).
    """
    kwargs = dict(entry)
    if "segmentation_fn" in kwargs:
        kwargs["segmentation_fn"] = segmentation_from_spec(kwargs["segmentation_fn"])
    regressor = kwargs.get("model_regressor")
    if isinstance(regressor, Mapping):
        settings = {key: value for key, value in regressor.items() if key != "name"}
        kwargs["model_regressor"] = REGRESSOR_CLASSES[regressor["name"]](**settings)
    if (
        "progress_bar" in kwargs
        and "progress_bar" not in inspect.signature(LimeImageExplainer.explain_instance).parameters
    ):
        del kwargs["progress_bar"]
    return kwargs
