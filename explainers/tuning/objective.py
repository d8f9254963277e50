"""One trial's two numbers: IoU of its LIME mask with the reference (higher is better) and LIME's wall time.

The mask comes from the same rule (explainers.comparison.masks) that makes the reference, so like is compared with
like. Time is measured two ways: `implementation="lime"` runs lime's own explain_instance loop (what a
grader's call costs: batch_size matters there); `"fast"` runs XAI Lens's batched LIME, which draws the very
same samples and fits the very same regression, so the IoU is identical and only the seconds differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from explainers.comparison.agreement import iou
from explainers.comparison.masks import MaskRule, masks_for
from explainers.errors import XaiLensError
from explainers.inputs.segmentation import segmentation_from_spec
from explainers.methods.base import Saliency, Subject
from explainers.methods.lime import LimeMethod, check_superpixels

IMPLEMENTATIONS = ("lime", "fast")
# How a trial's seconds are read from its LIME run; the default is the wall time LimeMethod measured.
# (Tests of determinism pass a clock that cannot drift; nothing else should.)
Timer = Callable[[Saliency], float]


def wall_seconds(saliency: Saliency) -> float:
    return saliency.seconds


@dataclass(frozen=True)
class Measurement:
    iou: float
    seconds: float
    mask_share: float  # the share of the crop the LIME mask covers (an empty or full mask shows here)


def check_implementation(implementation: str) -> None:
    if implementation not in IMPLEMENTATIONS:
        raise XaiLensError(
            f"Unknown LIME implementation {implementation!r:.30} to time; use lime (lime's own loop) or fast"
        )


def lime_mask(saliency: Saliency, rule: MaskRule) -> np.ndarray:
    return masks_for({"lime": saliency}, rule)["lime"]


def measure(
    subject: Subject,
    entry: Mapping[str, Any],
    reference_mask: np.ndarray,
    rule: MaskRule,
    *,
    implementation: str = "lime",
    explainer_seed: int = 0,
    timer: Timer = wall_seconds,
) -> Measurement:
    """Run LIME once with `entry` and score it against the reference mask.

    lime's own loop never counts superpixels, so its segmentation is checked against the cap first
    (untimed, about a second at most): a setting that makes too many fails here, before any sample.
    """
    check_implementation(implementation)
    segmenter = segmentation_from_spec(entry.get("segmentation_fn"))
    if implementation == "lime" and segmenter is not None:
        check_superpixels(segmenter(subject.crop))
    method = LimeMethod(reference=implementation == "lime", explainer_seed=explainer_seed, **dict(entry))
    saliency = method.explain(subject)
    mask = lime_mask(saliency, rule)
    return Measurement(iou(mask, reference_mask), float(timer(saliency)), float(mask.mean()))
