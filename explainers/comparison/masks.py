"""Binarisation rules: one rule turns every method's map into a mask, so IoU compares like with like.

Rules: `top:Q` (the top Q fraction of pixels, default 0.10), `thresh:T` (map >= T), `otsu`
(Otsu's threshold on the map), and `lime-top:K` (LIME's own K strongest positive superpixels;
the other methods then take the same share of pixels as LIME's mask covers, so areas match).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.filters import threshold_otsu

from explainers.errors import XaiLensError
from explainers.methods.base import Saliency

DEFAULT_RULE = "top:0.10"


@dataclass(frozen=True)
class MaskRule:
    kind: str  # "top" | "thresh" | "otsu" | "lime-top"
    value: float | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"


def parse_rule(text: str | MaskRule) -> MaskRule:
    """'top:0.10' -> MaskRule('top', 0.1), with a one-line error for anything else."""
    if isinstance(text, MaskRule):
        return text
    kind, _, raw = str(text).strip().lower().partition(":")
    help_text = "use top:0.10, thresh:0.5, otsu or lime-top:5"
    if kind == "otsu" and not raw:
        return MaskRule("otsu")
    if kind not in ("top", "thresh", "lime-top") or not raw:
        raise XaiLensError(f"Unknown mask rule '{text}'; {help_text}.")
    try:
        value = float(raw)
    except ValueError:
        raise XaiLensError(f"Mask rule '{text}' needs a number after ':'; {help_text}.") from None
    if kind == "top" and not 0 < value <= 1:
        raise XaiLensError(f"Mask rule '{text}': the fraction must be in (0, 1], e.g. top:0.10.")
    if kind == "thresh" and not 0 <= value <= 1:
        raise XaiLensError(f"Mask rule '{text}': the threshold must be in [0, 1], e.g. thresh:0.5.")
    if kind == "lime-top" and (value != int(value) or value < 1):
        raise XaiLensError(f"Mask rule '{text}': K must be a whole number of superpixels >= 1, e.g. lime-top:5.")
    return MaskRule(kind, value)


def top_fraction_mask(saliency_map: np.ndarray, fraction: float) -> np.ndarray:
    """Pixels at or above the value of the k-th strongest pixel (k = fraction of all), excluding zeros.

    Ties at the cut are all kept, so a piecewise-constant map (LIME) is never split arbitrarily.
    """
    flat = saliency_map.ravel()
    count = max(1, round(fraction * flat.size))
    cut = np.partition(flat, flat.size - count)[flat.size - count]
    return (saliency_map >= cut) & (saliency_map > 0)


def lime_top_mask(saliency: Saliency, count: int) -> np.ndarray:
    """LIME's own mask: its `count` strongest positively weighted superpixels."""
    if "segments" not in saliency.extras:
        raise XaiLensError("The lime-top rule needs a LIME explanation; add lime to the methods or use top:0.10.")
    positive = sorted(
        ((w, f) for f, w in saliency.extras["weights"].items() if w > 0), key=lambda pair: pair[0], reverse=True
    )
    chosen = [feature for _, feature in positive[:count]]
    return np.isin(saliency.extras["segments"], chosen)


def _number(rule: MaskRule) -> float:
    """The rule's number (parse_rule gives one to every kind but otsu)."""
    if rule.value is None:
        raise XaiLensError(f"The mask rule {rule.kind} needs a number, e.g. {rule.kind}:0.10.")
    return rule.value


def binarise(saliency: Saliency, rule: MaskRule, lime_area: float | None = None) -> np.ndarray:
    """One method's mask under the rule; `lime_area` is the pixel share of LIME's mask for lime-top."""
    saliency_map = saliency.map
    if rule.kind == "top":
        return top_fraction_mask(saliency_map, _number(rule))
    if rule.kind == "thresh":
        return (saliency_map >= rule.value) & (saliency_map > 0)
    if rule.kind == "otsu":
        if saliency_map.max() == saliency_map.min():
            return np.zeros(saliency_map.shape, dtype=bool)
        return saliency_map > threshold_otsu(saliency_map)
    if saliency.method == "lime":
        return lime_top_mask(saliency, int(_number(rule)))
    if lime_area is None:
        raise XaiLensError("The lime-top rule needs LIME among the methods; add lime or use top:0.10.")
    return top_fraction_mask(saliency_map, max(lime_area, 1.0 / saliency_map.size))


def masks_for(saliencies: dict[str, Saliency], rule: str | MaskRule = DEFAULT_RULE) -> dict[str, np.ndarray]:
    """Apply one rule to every method's map (LIME's mask first under lime-top, so areas can match)."""
    parsed = parse_rule(rule)
    lime_area = None
    masks: dict[str, np.ndarray] = {}
    if parsed.kind == "lime-top" and "lime" in saliencies:
        masks["lime"] = binarise(saliencies["lime"], parsed)
        lime_area = float(masks["lime"].mean())
    for name, saliency in saliencies.items():
        if name not in masks:
            masks[name] = binarise(saliency, parsed, lime_area)
    return {name: masks[name] for name in saliencies}
