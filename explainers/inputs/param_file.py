"""The LIME parameter file: per preset image, the keyword arguments of lime's explain_instance.

The file format is the assignment's: a pickled plain dict whose ten keys are the preset names (read
from the preset manifest, explainers.inputs.presets), each mapping to explain_instance kwargs, usable
as `explain_instance(image, fn, **params[key])`. Each entry is checked by explainers.inputs.lime_kwargs.
Files are read with a restricted unpickler (see safe_pickle) and refused by size before reading.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from explainers import limits
from explainers.errors import XaiLensError, first_line
from explainers.inputs.lime_kwargs import LIME_DEFAULT_SAMPLES, closest, lime_call_kwargs, validate_explain_kwargs
from explainers.inputs.presets import PRESET_KEYS
from explainers.inputs.safe_pickle import restricted_loads
from explainers.inputs.segmentation import segmentation_from_spec
from explainers.inputs.user_files import read_limited

__all__ = [
    "MAX_FILE_BYTES",
    "PRESET_KEYS",
    "check_request_samples",
    "default_lime_params",
    "load_lime_params",
    "restricted_loads",
    "save_lime_params",
    "total_samples",
    "validate_lime_params",
]

MAX_FILE_BYTES = limits.MAX_PARAM_FILE_BYTES


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


def validate_lime_params(params: Mapping[str, Any], *, allow_callables: bool = True) -> dict[str, dict[str, Any]]:
    """Check a whole parameter file: exactly the ten preset keys, each with valid settings."""
    if not isinstance(params, Mapping):
        raise XaiLensError(
            f"The LIME parameter file must hold a dict keyed by the ten preset names, got {type(params).__name__}"
        )
    missing = [key for key in PRESET_KEYS if key not in params]
    extra = [key for key in params if key not in PRESET_KEYS]
    if extra:
        hints = "".join(closest(str(key)[:60], PRESET_KEYS) for key in extra[:1])
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
            reason = first_line(exc, limit=100)
            raise XaiLensError(f"The LIME parameter file is not valid JSON ({reason}); fix or re-save it.") from None
    else:
        loaded = restricted_loads(data)
    return validate_lime_params(loaded, allow_callables=False)
