"""ROAD (Rong et al., 2022), defined as pytorch-grad-cam's ROADCombined defines it.

Deleting pixels by painting them a constant colour leaves a sharp-edged hole whose SHAPE tells
the model where the relevant pixels were. ROAD fills the hole instead with noisy linear
imputation: each removed pixel becomes the weighted mean of its 8 neighbours (a sparse linear
system), plus a little Gaussian noise. At each percentile p in 10..90 it removes the least
relevant (100-p)% of pixels (LeRF) and, separately, the most relevant (MoRF), and scores the
target probability. The score is (mean LeRF - mean MoRF) / 2: HIGH when keeping the map's top
pixels keeps the prediction and removing them destroys it. 18 model passes a map.

grad-cam's percentile rule is kept exactly (threshold = the p-th percentile of the map; a pixel
stays where its value is below it), so where a map has large ties (CAM maps are often exactly 0
over much of the image) a percentile can remove more than its share. Where it would remove every
pixel, grad-cam's solver returns NaN; here the image becomes its normalised mean (zeros) plus the
noise, so the score stays a number.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

from explainers.engine.cancel import CancelToken
from explainers.engine.models import LoadedModel
from explainers.faithfulness.perturbation import target_probabilities

PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
NOISE = 0.01
DEFAULT_SEED = 0
# (row offset, column offset) -> weight: edge neighbours count twice as much as corner ones; they sum to 1.
NEIGHBOUR_WEIGHTS = {
    (-1, -1): 1 / 12,
    (-1, 0): 1 / 6,
    (-1, 1): 1 / 12,
    (0, -1): 1 / 6,
    (0, 1): 1 / 6,
    (1, -1): 1 / 12,
    (1, 0): 1 / 6,
    (1, 1): 1 / 12,
}


def kept_pixels(saliency_map: np.ndarray, percentile: float, most_relevant_first: bool) -> torch.Tensor:
    """HxW bool: the pixels that stay at this percentile; MoRF removes the top of the map, LeRF the bottom."""
    scores = torch.from_numpy(np.ascontiguousarray(saliency_map, dtype=np.float32))
    if not most_relevant_first:
        scores = 1 - scores
    threshold = np.percentile(scores.numpy(), percentile)
    return scores < threshold  # compared in float32, as grad-cam compares its tensor with the numpy threshold


def impute(image: torch.Tensor, kept: torch.Tensor, generator: torch.Generator, noise: float = NOISE) -> torch.Tensor:
    """Fill the removed pixels of a CxHxW CPU image so each equals the weighted mean of its in-image neighbours.

    The removed pixels are the unknowns of one sparse linear system (one right-hand side per channel).
    Noise is drawn channel by channel (C x missing), in the order grad-cam draws it, so a shared seed gives
    the same noise.
    """
    channels, height, width = image.shape
    known = kept.reshape(-1).numpy()
    missing = np.flatnonzero(~known)
    filled = image.reshape(channels, -1).clone()
    if missing.size == 0:
        return filled.reshape_as(image)
    values = image.reshape(channels, -1).double().numpy()
    unknown_index = np.full(known.size, -1)
    unknown_index[missing] = np.arange(missing.size)
    rows, cols = np.divmod(missing, width)
    eq_rows, eq_cols, eq_weights = [], [], []
    diagonal = np.zeros(missing.size)
    rhs = np.zeros((missing.size, channels))
    for (dy, dx), weight in NEIGHBOUR_WEIGHTS.items():
        ny, nx = rows + dy, cols + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        equation = np.flatnonzero(inside)
        neighbour = ny[inside] * width + nx[inside]
        diagonal[equation] += weight
        is_known = known[neighbour]
        rhs[equation[is_known]] -= weight * values[:, neighbour[is_known]].T
        eq_rows.append(equation[~is_known])
        eq_cols.append(unknown_index[neighbour[~is_known]])
        eq_weights.append(np.full(int((~is_known).sum()), weight))
    size = missing.size
    rows_all = np.concatenate([*eq_rows, np.arange(size)])
    cols_all = np.concatenate([*eq_cols, np.arange(size)])
    weights_all = np.concatenate([*eq_weights, -diagonal])
    if known.any():
        system = coo_matrix((weights_all, (rows_all, cols_all)), shape=(size, size)).tocsc()
        solution = np.asarray(spsolve(system, rhs)).reshape(size, channels)
    else:  # nothing left to average from: the system is singular (grad-cam gets NaN); use the normalised mean
        solution = np.zeros((size, channels))
    imputed = torch.tensor(solution, dtype=torch.float32)
    filled[:, missing] = imputed.T + noise * torch.randn((channels, size), generator=generator)
    return filled.reshape_as(image)


def road_images(tensor: torch.Tensor, saliency_map: np.ndarray, seed: int = DEFAULT_SEED) -> torch.Tensor:
    """The 18 imputed images, LeRF at 10..90 then MoRF at 10..90 (grad-cam's order, so its noise lines up)."""
    image = tensor[0].detach().float().cpu()
    generator = torch.Generator().manual_seed(seed)
    images = [
        impute(image, kept_pixels(saliency_map, p, most_relevant_first), generator)
        for most_relevant_first in (False, True)
        for p in PERCENTILES
    ]
    return torch.stack(images)


def road_combined(
    model: LoadedModel,
    tensor: torch.Tensor,
    saliency_map: np.ndarray,
    target: int,
    *,
    seed: int = DEFAULT_SEED,
    cancel: CancelToken | None = None,
    batch_size: int | None = None,
) -> tuple[float, int]:
    """(ROAD combined score, model passes) for one map on one normalised 1xCxHxW input."""
    images = road_images(tensor, saliency_map, seed)
    if cancel is not None:
        cancel.check()
    on_device = images.to(tensor.device)
    scores = target_probabilities(
        model, lambda start, stop: on_device[start:stop], len(images), target, cancel=cancel, batch_size=batch_size
    )
    least_first, most_first = scores[: len(PERCENTILES)], scores[len(PERCENTILES) :]
    return float((least_first.mean() - most_first.mean()) / 2), len(images)
