"""Deletion and insertion (Petsiuk et al., RISE, 2018), defined as torchcam's DeletionInsertionMetric defines them.

Pixels are ranked by the map. Deletion replaces the top-ranked ones with a baseline in `steps`
intervals and watches the target probability fall; insertion starts from the baseline and puts
them back, watching it rise. Each curve's area (trapezoid rule over the fraction actually
perturbed) is the score: a faithful map has a LOW deletion area and a HIGH insertion area.
The unperturbed input's probability is the first deletion point and the last insertion point,
and the all-baseline input is shared, so both curves cost 2*steps-1 model passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from explainers.engine.cancel import CancelToken
from explainers.engine.models import LoadedModel
from explainers.errors import XaiLensError
from explainers.faithfulness.perturbation import pixel_ranks, target_probabilities

DEFAULT_STEPS = 20
MAX_STEPS = 500  # finer than ~100 pixels a step changes nothing a person can read, at 2 passes a step
BASELINES = ("zeros", "blur")
# RISE's blurred baseline: an 11-pixel Gaussian kernel, sigma 5.
_BLUR_KERNEL, _BLUR_SIGMA = 11, 5.0


@dataclass
class Curves:
    """The probability curves against the fraction of pixels perturbed, and their areas."""

    fractions: np.ndarray
    deletion: np.ndarray | None
    insertion: np.ndarray | None
    passes: int

    @property
    def deletion_auc(self) -> float:
        if self.deletion is None:
            raise ValueError("deletion was not measured")
        return float(np.trapezoid(self.deletion, self.fractions))

    @property
    def insertion_auc(self) -> float:
        if self.insertion is None:
            raise ValueError("insertion was not measured")
        return float(np.trapezoid(self.insertion, self.fractions))


def check_steps(steps: object) -> int:
    """The number of intervals, or a one-line error saying what is allowed."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 1 <= steps <= MAX_STEPS:
        raise XaiLensError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}; the default is 20.")
    return int(steps)


def baseline_for(tensor: torch.Tensor, baseline: str) -> torch.Tensor:
    """The image that deleted pixels become: zeros in normalised input space (the data set's mean colour), or a blur."""
    if baseline == "zeros":
        return torch.zeros_like(tensor)
    if baseline == "blur":
        return gaussian_blur(tensor, [_BLUR_KERNEL, _BLUR_KERNEL], [_BLUR_SIGMA, _BLUR_SIGMA])
    raise XaiLensError(f"unknown baseline '{baseline}'; choose from {', '.join(BASELINES)}.")


def perturbed_counts(pixels: int, steps: int) -> list[int]:
    """How many pixels are perturbed at each point: 0, then every ceil(pixels/steps), then all (torchcam's grid)."""
    step = -(-pixels // steps)
    return [*range(0, pixels, step), pixels]


def deletion_insertion(
    model: LoadedModel,
    tensor: torch.Tensor,
    saliency_map: np.ndarray,
    target: int,
    original_probability: float,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: str = "zeros",
    deletion: bool = True,
    insertion: bool = True,
    cancel: CancelToken | None = None,
    batch_size: int | None = None,
) -> Curves:
    """Both curves (or the one asked for) for one map on one normalised 1xCxHxW input.

    `original_probability` is the target's probability on the unperturbed input, which the pipeline
    already has: the metric never re-runs the prediction or the method.
    """
    steps = check_steps(steps)
    if not (deletion or insertion):
        raise ValueError("ask for deletion, insertion or both")
    flat_input = tensor.flatten(2)  # 1 x C x N
    flat_baseline = baseline_for(tensor, baseline).flatten(2)
    ranks = pixel_ranks(saliency_map, tensor.device)
    pixels = ranks.numel()
    counts = perturbed_counts(pixels, steps)
    interior = counts[1:-1]
    # Each job: (keep the top-ranked pixels from the input?, how many are top-ranked). The first job is the
    # all-baseline image, deletion's last point and insertion's first.
    jobs = [(False, pixels)]
    jobs += [(False, c) for c in interior] if deletion else []
    jobs += [(True, c) for c in interior] if insertion else []
    keep_top = torch.tensor([job[0] for job in jobs], device=tensor.device)
    job_counts = torch.tensor([job[1] for job in jobs], device=tensor.device)
    shape = tensor.shape[1:]

    def build(start: int, stop: int) -> torch.Tensor:
        top = ranks[None, :] < job_counts[start:stop, None]  # B x N: the pixels ranked above this step's cut
        from_input = torch.where(keep_top[start:stop, None], top, ~top)
        return torch.where(from_input[:, None, :], flat_input, flat_baseline).reshape(-1, *shape)

    scores = target_probabilities(model, build, len(jobs), target, cancel=cancel, batch_size=batch_size).numpy()
    all_baseline, rest = scores[0], scores[1:]
    deletion_curve = insertion_curve = None
    if deletion:
        deletion_curve = np.array([original_probability, *rest[: len(interior)], all_baseline], dtype=np.float32)
        rest = rest[len(interior) :]
    if insertion:
        insertion_curve = np.array([all_baseline, *rest, original_probability], dtype=np.float32)
    fractions = np.asarray(counts, dtype=np.float32) / pixels
    return Curves(fractions, deletion_curve, insertion_curve, passes=len(jobs))
