"""LIME's superpixel segmentation as plain data: a name or {'name': ..., **skimage kwargs}.

Plain data can be checked, compared, written to JSON and recorded with every explanation;
`segmentation_from_spec` turns it into the lime SegmentationAlgorithm that LIME calls.
lime's own wrapper silently drops arguments the skimage function does not know (so a typo
would change nothing, quietly); here every argument is checked against the real signature.
"""

from __future__ import annotations

import difflib
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import numpy as np
from lime.wrappers.scikit_image import SegmentationAlgorithm

from explainers.errors import XaiLensError, first_line
from explainers.inputs.safe_pickle import SEGMENTATION_FUNCTIONS
from explainers.limits import check_segmentation_number

# What a bare name means. quickshift: lime's own default (about 30-80 superpixels on a 224 crop).
# slic / felzenszwalb: settings giving a similar number of superpixels on a 224 crop.
NAMED_DEFAULTS: dict[str, dict[str, Any]] = {
    "quickshift": {"kernel_size": 4, "max_dist": 200, "ratio": 0.2},
    "slic": {"n_segments": 50, "compactness": 10.0, "start_label": 0},
    "felzenszwalb": {"scale": 100.0, "sigma": 0.5, "min_size": 50},
}
# Arguments LIME itself controls (the image and its layout); a file must not change them.
_FIXED_BY_LIME = {"image", "channel_axis", "return_tree", "mask"}

SegmentationSpec: TypeAlias = str | Mapping[str, Any] | SegmentationAlgorithm | Callable[..., Any] | None


def _closest(name: str, choices: list[str]) -> str:
    match = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _check_value(where: str, name: str, value: Any, *, inside: bool = False) -> Any:
    """Only plain, finite scalars (or up to three numbers) belong in a segmentation setting.

    Every number is held to its cap in explainers.limits, whose measured bounds keep one segmentation
    of the 224x224 crop within about a second.
    """
    if isinstance(value, (list, tuple, np.ndarray)) and not inside:
        items = list(np.ravel(value)) if isinstance(value, np.ndarray) else list(value)
        if not 1 <= len(items) <= 3:
            raise XaiLensError(f"{where}: {name} must be a number or up to three numbers, got {value!r:.60}")
        checked = tuple(_check_value(where, name, item, inside=True) for item in items)
        if any(isinstance(i, (str, bool)) or i is None for i in checked):
            raise XaiLensError(f"{where}: {name} must be a number or up to three numbers, got {value!r:.60}")
        return checked
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > 40:
            raise XaiLensError(f"{where}: {name} must be a short setting, got {value!r:.40}...")
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise XaiLensError(f"{where}: {name} must be a finite number, got {value!r}")
        check_segmentation_number(where, name, value)
        return value
    raise XaiLensError(f"{where}: {name} must be a number, text or true/false, got {type(value).__name__:.40}")


def _dry_run(where: str, name: str, kwargs: dict[str, Any]) -> None:
    """Run the segmentation once on a tiny image so bad values fail now, not mid-explanation."""
    tiny = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            SEGMENTATION_FUNCTIONS[name](tiny, **kwargs)
    except Exception as exc:
        reason = first_line(exc, limit=100)
        raise XaiLensError(f"{where}: {name} rejected these settings ({reason}); check its values") from None


def validate_segmentation_spec(spec: SegmentationSpec, *, where: str) -> dict[str, Any] | Callable[..., Any] | None:
    """Return the canonical dict form {'name': ..., **kwargs}, None, or an in-process callable as given."""
    if spec is None:
        return None
    if isinstance(spec, SegmentationAlgorithm):
        spec = _spec_of_algorithm(spec, where=where)
    elif isinstance(spec, str):
        if spec not in SEGMENTATION_FUNCTIONS:
            raise XaiLensError(
                f"{where}: segmentation must be one of {', '.join(SEGMENTATION_FUNCTIONS)}, got {spec!r:.40}"
                f"{_closest(spec, list(SEGMENTATION_FUNCTIONS))}"
            )
        spec = {"name": spec, **NAMED_DEFAULTS[spec]}
    elif callable(spec):
        return spec  # only code running in this process can hand over a function
    if not isinstance(spec, Mapping):
        raise XaiLensError(
            f"{where}: segmentation_fn must be None, a name ({', '.join(SEGMENTATION_FUNCTIONS)}), "
            f"a dict with 'name', or a lime SegmentationAlgorithm, got {type(spec).__name__}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or name not in SEGMENTATION_FUNCTIONS:
        raise XaiLensError(
            f"{where}: segmentation 'name' must be one of {', '.join(SEGMENTATION_FUNCTIONS)}, got {name!r:.40}"
            f"{_closest(str(name), list(SEGMENTATION_FUNCTIONS))}"
        )
    known = [p for p in inspect.signature(SEGMENTATION_FUNCTIONS[name]).parameters if p not in _FIXED_BY_LIME]
    kwargs: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "name":
            continue
        if not isinstance(key, str) or key not in known:
            raise XaiLensError(
                f"{where}: {name} has no setting {key!r:.40}{_closest(str(key), known)}; its settings are "
                f"{', '.join(known)}"
            )
        kwargs[key] = _check_value(f"{where}: {name}", key, value)
    if name == "slic":
        # lime numbers features by segment id and builds its masks with range(n_segments):
        # it assumes ids start at 0. skimage >= 0.19 starts slic at 1, which would leave one
        # superpixel never switched off. So start_label is 0 unless the file says otherwise.
        kwargs.setdefault("start_label", 0)
    _dry_run(where, name, kwargs)
    return {"name": name, **kwargs}


def _spec_of_algorithm(algorithm: SegmentationAlgorithm, *, where: str) -> dict[str, Any]:
    """Read a lime SegmentationAlgorithm back into the dict form, refusing one that was tampered with."""
    name = getattr(algorithm, "algo_type", None)
    params = getattr(algorithm, "target_params", None)
    if name not in SEGMENTATION_FUNCTIONS or getattr(algorithm, "target_fn", None) is not SEGMENTATION_FUNCTIONS[name]:
        raise XaiLensError(
            f"{where}: segmentation_fn is a SegmentationAlgorithm that does not wrap quickshift, slic or felzenszwalb; "
            "build it with SegmentationAlgorithm('quickshift', ...)"
        )
    if not isinstance(params, Mapping):
        raise XaiLensError(
            f"{where}: segmentation_fn has unreadable settings; build it again with SegmentationAlgorithm"
        )
    return {"name": name, **params}


def segmentation_from_spec(
    spec: SegmentationSpec,
) -> SegmentationAlgorithm | Callable[..., Any] | None:
    """What lime's explain_instance wants as segmentation_fn: None (lime's default), or a callable."""
    if spec is None or callable(spec):
        return spec
    canonical = validate_segmentation_spec(spec, where="segmentation_fn")
    assert isinstance(canonical, dict)
    kwargs = {key: value for key, value in canonical.items() if key != "name"}
    return SegmentationAlgorithm(canonical["name"], **kwargs)
