"""Is a front setting's IoU a property of the setting or of one lucky random draw?

LIME's answer moves with the explainer's random state even at large sample counts (lime #477, #486),
and a grader's explainer will not use our seed. So each setting on a front is re-run with other seeds
(the segmentation's own seed stays as the file records it) and the spread of its IoUs is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from explainers.errors import XaiLensError

OTHER_SEEDS = 3
UNSTABLE_SPREAD = 0.10  # an IoU that moves by more than this between seeds is not a setting to rely on


@dataclass(frozen=True)
class Stability:
    """IoUs of one setting under the tuning seed first, then each other seed."""

    ious: tuple[float, ...]
    seeds: tuple[int, ...]
    tolerance: float = UNSTABLE_SPREAD

    @property
    def spread(self) -> float:
        return max(self.ious) - min(self.ious)

    @property
    def stable(self) -> bool:
        return self.spread <= self.tolerance

    def label(self) -> str:
        return "stable" if self.stable else "unstable"


def other_seeds(seed: int, count: int = OTHER_SEEDS) -> tuple[int, ...]:
    """The seeds a setting is re-run with: the next `count` after the tuning seed."""
    return tuple(seed + step for step in range(1, count + 1))


def measure_stability(
    first_iou: float,
    seed: int,
    iou_with_seed: Callable[[int], float],
    *,
    count: int = OTHER_SEEDS,
    tolerance: float = UNSTABLE_SPREAD,
) -> Stability:
    """Re-run a setting with `count` other explainer seeds; `iou_with_seed(seed)` runs LIME once and scores it."""
    if not 0 <= tolerance <= 1:
        raise XaiLensError(f"The stability tolerance is an IoU spread from 0 to 1, got {tolerance!r:.20}")
    seeds = other_seeds(seed, count)
    return Stability((first_iou, *(iou_with_seed(other) for other in seeds)), (seed, *seeds), tolerance)
