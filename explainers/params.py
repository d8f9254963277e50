"""The LIME parameter file: per preset image, the keyword arguments of lime's explain_instance.

The file format is the assignment's: a pickled plain dict whose ten keys are the preset names,
each mapping to explain_instance kwargs, usable as `explain_instance(image, fn, **params[key])`.
Inside the program every entry is kept in a canonical plain-data form (segmentation and regressor
as {'name': ..., **settings}), so entries can be compared, written to JSON and recorded with
each explanation; `lime_call_kwargs` turns one entry back into what lime wants.
Files are read with a restricted unpickler (see safe_pickle) and refused by size before reading.
Every work-scaling setting is held to the caps in explainers.limits, read when validating, so the
public cap (XAI_LENS_LIME_MAX_SAMPLES) binds every entry point that validates through here.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import math
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lime.lime_image import LimeImageExplainer
from lime.wrappers.scikit_image import SegmentationAlgorithm
from sklearn.metrics import pairwise_distances

from explainers import limits
from explainers.errors import XaiLensError
from explainers.safe_pickle import REGRESSOR_CLASSES, restricted_loads
from explainers.segmentation import segmentation_from_spec, validate_segmentation_spec
from explainers.user_files import read_limited

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_SAMPLES",
    "PRESET_KEYS",
    "default_lime_params",
    "lime_call_kwargs",
    "load_lime_params",
    "restricted_loads",
    "save_lime_params",
    "segmentation_from_spec",
    "validate_explain_kwargs",
    "validate_lime_params",
]

PRESET_KEYS: tuple[str, ...] = (
    "West_Highland_white_terrier",
    "American_coot",
    "racer",
    "flamingo",
    "kite",
    "goldfish",
    "tiger_shark",
    "vulture",
    "common_iguana",
    "orange",
)
MAX_SAMPLES = limits.LIBRARY_MAX_SAMPLES  # the library's cap; limits.lime_max_samples() is the one in force
MAX_FILE_BYTES = limits.MAX_PARAM_FILE_BYTES
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


def _closest(name: str, choices: Sequence[str]) -> str:
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
        hint = _closest(value, choices) if isinstance(value, str) else ""
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
                f"{_closest(str(name), list(REGRESSOR_CLASSES))}"
            )
        settings = {key: val for key, val in value.items() if key != "name"}
        try:
            regressor = REGRESSOR_CLASSES[name](**settings)
        except TypeError as exc:
            raise XaiLensError(f"{where}: model_regressor {name}: {str(exc).splitlines()[0]}") from None
    elif type(value) in REGRESSOR_CLASSES.values():
        regressor = value
    else:
        raise XaiLensError(f"{where}: model_regressor must be None or one of sklearn's {names}, got {_shown(value)}")
    settings = {key: _plain_setting(where, key, val) for key, val in regressor.get_params(deep=False).items()}
    fresh = type(regressor)(**settings)  # drops anything fitted or smuggled in beside the settings
    try:
        fresh._validate_params()
    except Exception as exc:
        reason = str(exc).splitlines()[0][:100]
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


def total_samples(params: Mapping[str, Mapping[str, Any]]) -> int:
    """LIME samples a whole file asks for (an entry without num_samples gets lime's 1000)."""
    return sum(int(entry.get("num_samples", LIME_DEFAULT_SAMPLES)) for entry in params.values())


def check_request_samples(params: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse a run whose entries together ask for more LIME samples than one request may use."""
    total, cap = total_samples(params), limits.lime_max_request_samples()
    if total > cap:
        raise XaiLensError(
            f"The LIME parameters ask for {total} samples over the {len(params)} presets; one run may use at most "
            f"{cap} ({limits.REQUEST_SAMPLES_ENV}). Lower num_samples."
        )


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
                f"{where}: unknown LIME parameter {_shown(name)}{_closest(str(name), KNOWN_PARAMETERS)}; "
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


def validate_lime_params(params: Mapping[str, Any], *, allow_callables: bool = True) -> dict[str, dict[str, Any]]:
    """Check a whole parameter file: exactly the ten preset keys, each with valid settings."""
    if not isinstance(params, Mapping):
        raise XaiLensError(
            f"The LIME parameter file must hold a dict keyed by the ten preset names, got {type(params).__name__}"
        )
    missing = [key for key in PRESET_KEYS if key not in params]
    extra = [key for key in params if key not in PRESET_KEYS]
    if extra:
        hints = "".join(_closest(str(key)[:60], PRESET_KEYS) for key in extra[:1])
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        shown = ", ".join(str(key)[:60] for key in extra[:3]) + more
        raise XaiLensError(
            f"The LIME parameter file has unknown preset keys: {shown}{hints}; "
            f"it must hold exactly: {', '.join(PRESET_KEYS)}"
        )
    if missing:
        raise XaiLensError(
            f"The LIME parameter file lacks preset keys: {', '.join(missing)}; it must hold exactly: "
            f"{', '.join(PRESET_KEYS)}"
        )
    validated = {
        key: validate_explain_kwargs(params[key], where=key, allow_callables=allow_callables) for key in PRESET_KEYS
    }
    check_request_samples(validated)
    return validated


def default_lime_params() -> dict[str, dict[str, Any]]:
    """Settings that explain the presets well in about a minute each on a CPU.

    - num_samples 1000: lime's default; on the 224 crop the top superpixels are stable by then,
      and each sample costs one forward pass.
    - top_labels 5: the explanation then covers whatever class the chosen model ranks first.
    - hide_color 0: switched-off superpixels turn black, a strong, unambiguous removal. (None,
      lime's default, paints each superpixel its own mean colour, which keeps colour cues.)
    - quickshift kernel_size 4, max_dist 200, ratio 0.2: lime's own segmentation default,
      written out so the file says what runs and does not depend on lime's internals.
    - kite: a small bird in a tangle of branches and blossom; quickshift's superpixels follow the
      branches across the whole crop, so switching one off removes scattered bits of everything.
      slic (compactness 20) gives about 60 compact superpixels instead (checked on the 224 crop).
    - random_seed 0: the segmentation is repeatable (the explainer's own seed is set by the caller).
    """
    base = {
        "top_labels": 5,
        "hide_color": 0,
        "num_features": 100_000,
        "num_samples": 1000,
        "batch_size": 50,
        "segmentation_fn": {"name": "quickshift", "kernel_size": 4, "max_dist": 200, "ratio": 0.2},
        "distance_metric": "cosine",
        "random_seed": 0,
    }
    params = {key: dict(base) for key in PRESET_KEYS}
    params["kite"]["segmentation_fn"] = {"name": "slic", "n_segments": 100, "compactness": 20.0, "start_label": 0}
    return validate_lime_params(params)


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


def save_lime_params(params: Mapping[str, Any], path: str | Path) -> Path:
    """Write the parameter file: a pickle in the assignment's format, or JSON for a `.json` path.

    The pickle holds what explain_instance accepts directly (a lime SegmentationAlgorithm, an sklearn
    regressor), so `explain_instance(image, fn, **params[key])` works with nothing but lime installed.
    """
    validated = validate_lime_params(params)
    for key, entry in validated.items():
        if callable(entry.get("segmentation_fn")):
            raise XaiLensError(
                f"{key}: a segmentation function cannot be stored in a parameter file; "
                "use a name or {'name': 'slic', ...} instead"
            )
    path = Path(path)
    if path.suffix.lower() == ".json":
        data = json.dumps(validated, indent=2).encode("utf-8")
    else:
        file_form = {key: _file_entry(entry) for key, entry in validated.items()}
        data = pickle.dumps(file_form, protocol=4)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def _file_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The pickle form keeps progress_bar if set: the file records what the user asked for."""
    live = dict(entry)
    if live.get("segmentation_fn") is not None:
        live["segmentation_fn"] = segmentation_from_spec(live["segmentation_fn"])
    if live.get("model_regressor") is not None:
        live["model_regressor"] = lime_call_kwargs({"model_regressor": live["model_regressor"]})["model_regressor"]
    return live


def _read_limited(path_or_bytes: str | Path | bytes) -> tuple[bytes, str]:
    """The file's bytes and its format: 'json' by suffix or content, else 'pickle'."""
    data, name = read_limited(
        path_or_bytes, limit_bytes=MAX_FILE_BYTES, kind="LIME parameter file", advice="Choose the right file."
    )
    if not data:
        raise XaiLensError(f"{name} is empty; save the parameters again with save_lime_params.")
    by_suffix = not isinstance(path_or_bytes, (bytes, bytearray)) and Path(path_or_bytes).suffix.lower() == ".json"
    looks_like_json = data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
    return data, "json" if by_suffix or looks_like_json else "pickle"


def load_lime_params(path_or_bytes: str | Path | bytes) -> dict[str, dict[str, Any]]:
    """Read and validate a parameter file (pickle or JSON); code in the file is never run."""
    data, kind = _read_limited(path_or_bytes)
    if kind == "json":
        try:
            loaded = json.loads(data.decode("utf-8-sig"))
        except (ValueError, RecursionError) as exc:
            reason = str(exc).splitlines()[0][:100]
            raise XaiLensError(f"The LIME parameter file is not valid JSON ({reason}); fix or re-save it.") from None
    else:
        loaded = restricted_loads(data)
    return validate_lime_params(loaded, allow_callables=False)
