"""CLIP-dissect's neuron-concept similarity functions (Oikarinen & Weng, ICLR 2023), vectorised.

Every function takes `clip_feats` (images x concepts: cosine of L2-normalised CLIP image and
text features) and `target_feats` (images x neurons: the layer's activations on the same probe
images) and returns neurons x concepts, higher = better match.

The published reference loops over neurons one by one; here neurons are processed in chunks so
a 1000-image x 20k-concept x 1000-neuron layer runs as a few hundred tensor operations while the
gathered block stays under `max_chunk_bytes`.

soft_wpmi and wpmi compare each neuron with all other neurons of the same call (the log p(concept)
term averages over neurons), so call them once per layer, as CLIP-dissect does.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

DEFAULT_SIMILARITY = "soft_wpmi"
MAX_CHUNK_BYTES = 256 * 2**20
RANK_REORDER_BASELINE_PERMUTATIONS = 5


def _check_shapes(clip_feats: torch.Tensor, target_feats: torch.Tensor) -> None:
    if clip_feats.ndim != 2 or target_feats.ndim != 2 or clip_feats.shape[0] != target_feats.shape[0]:
        raise ValueError(
            f"clip_feats must be images x concepts and target_feats images x neurons with the same images; "
            f"got {tuple(clip_feats.shape)} and {tuple(target_feats.shape)}."
        )


def _neuron_chunks(n_neurons: int, bytes_per_neuron: int, max_chunk_bytes: int) -> tuple[range, int]:
    step = max(1, min(n_neurons, max_chunk_bytes // max(1, bytes_per_neuron)))
    return range(0, n_neurons, step), step


def _top_image_indices(target_feats: torch.Tensor, top_k: int) -> torch.Tensor:
    """Indices (k x neurons) of each neuron's most activating images; k is capped at the probe count."""
    k = max(1, min(int(top_k), target_feats.shape[0]))
    return torch.topk(target_feats.float(), k=k, dim=0).indices


def _log_prob_given_top_images(
    probs: torch.Tensor, top_idx: torch.Tensor, weights: torch.Tensor | None, min_prob: float, max_chunk_bytes: int
) -> torch.Tensor:
    """sum_i log(1 + w_i (P[top_i, c] - 1) + min_prob) per neuron and concept (w = 1 gives plain log P)."""
    k, n_neurons = top_idx.shape
    n_concepts = probs.shape[1]
    out = torch.empty(n_neurons, n_concepts, dtype=probs.dtype, device=probs.device)
    starts, step = _neuron_chunks(n_neurons, k * n_concepts * probs.element_size(), max_chunk_bytes)
    for start in starts:
        block = probs[top_idx[:, start : start + step]]  # k x chunk x concepts (a fresh tensor: safe in place)
        if weights is not None:
            block.sub_(1.0).mul_(weights.view(k, 1, 1)).add_(1.0)
        block.add_(min_prob).log_()
        out[start : start + step] = block.sum(dim=0)
    return out


def _pointwise_mutual_information(log_p_given_neuron: torch.Tensor, lam: float) -> torch.Tensor:
    # log p(concept) is the log of the mean over neurons of p(concept | neuron); logsumexp keeps it finite.
    log_p_concept = torch.logsumexp(log_p_given_neuron, dim=0, keepdim=True) - math.log(log_p_given_neuron.shape[0])
    return log_p_given_neuron - lam * log_p_concept


@torch.no_grad()
def top_image_pmi(
    clip_feats: torch.Tensor,
    target_feats: torch.Tensor,
    top_k: int,
    a: float,
    lam: float,
    min_prob: float,
    p_start: float,
    p_end: float,
    *,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
) -> torch.Tensor:
    """log p(concept | a neuron's top_k images) - lam * log p(concept): SoftWPMI and WPMI are this one formula.

    Each top image counts as "in the concept" with a probability falling linearly from p_start (most
    activating) to p_end, so a single odd image cannot veto a concept; p_start = p_end = 1 makes every
    top image a certain member (WPMI).
    """
    _check_shapes(clip_feats, target_feats)
    probs = torch.softmax(a * clip_feats.float(), dim=1)
    top_idx = _top_image_indices(target_feats, top_k)
    k = top_idx.shape[0]
    weights = None  # certain members: log P itself, without the (P - 1) + 1 round trip that rounds small P
    if not p_start == p_end == 1:
        weights = p_start - torch.arange(k, dtype=probs.dtype, device=probs.device) / k * (p_start - p_end)
    log_p = _log_prob_given_top_images(probs, top_idx.to(probs.device), weights, min_prob, max_chunk_bytes)
    return _pointwise_mutual_information(log_p, lam)


# CLIP-dissect's two settings of it: SoftWPMI (their default) and WPMI, each under the paper's defaults;
# any keyword (top_k=..., max_chunk_bytes=...) overrides.
soft_wpmi = functools.partial(top_image_pmi, top_k=100, a=10, lam=1, min_prob=1e-7, p_start=0.998, p_end=0.97)
wpmi = functools.partial(top_image_pmi, top_k=28, a=2, lam=0.6, min_prob=1e-7, p_start=1.0, p_end=1.0)


@torch.no_grad()
def cos_similarity(
    clip_feats: torch.Tensor, target_feats: torch.Tensor, *, max_chunk_bytes: int = MAX_CHUNK_BYTES
) -> torch.Tensor:
    """Cosine between each neuron's activation vector and each concept's CLIP-score vector over images."""
    _check_shapes(clip_feats, target_feats)
    concepts = clip_feats.float() / clip_feats.float().norm(dim=0, keepdim=True)
    neurons = target_feats.float() / target_feats.float().norm(dim=0, keepdim=True)
    n_neurons = neurons.shape[1]
    out = torch.empty(n_neurons, concepts.shape[1], dtype=concepts.dtype, device=concepts.device)
    starts, step = _neuron_chunks(n_neurons, concepts.shape[1] * 4, max_chunk_bytes)
    for start in starts:
        out[start : start + step] = neurons[:, start : start + step].T.to(concepts.device) @ concepts
    return out


def rank_reorder_permutations(n_neurons: int, n_top: int, seed: int = 0) -> torch.Tensor:
    """The random orders (neurons x 5 x n_top) rank_reorder's baseline uses; seeded so builds repeat exactly."""
    generator = torch.Generator().manual_seed(seed)
    shape = (n_neurons, RANK_REORDER_BASELINE_PERMUTATIONS, n_top)
    return torch.argsort(torch.rand(shape, generator=generator), dim=-1)


@torch.no_grad()
def rank_reorder(
    clip_feats: torch.Tensor,
    target_feats: torch.Tensor,
    p: float = 3,
    top_fraction: float = 0.05,
    scale_p: float = 0.5,
    seed: int = 0,
    *,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
) -> torch.Tensor:
    """Rank reorder: how little a neuron's top activations change when re-sorted by a concept's CLIP scores.

    The error is normalised by a random-shuffle baseline and divided by mean CLIP score ** scale_p (CLIP
    cosines are positive, as this assumes); the result is the negated error. The reference draws the
    shuffles from the global RNG; here they come from `seed`.
    """
    _check_shapes(clip_feats, target_feats)
    clip_feats = clip_feats.float()
    n_images, n_neurons = target_feats.shape
    n_top = min(n_images, max(2, int(n_images * top_fraction)))
    top_vals, top_idx = torch.topk(target_feats.float(), k=n_top, dim=0)  # descending, n_top x neurons
    ascending = top_vals.flip(0)
    shuffles = rank_reorder_permutations(n_neurons, n_top, seed)
    shuffled = ascending.T.unsqueeze(1).expand(-1, shuffles.shape[1], -1).gather(2, shuffles)  # neurons x 5 x n
    baseline = (ascending.T.unsqueeze(1) - shuffled).abs().pow(p).mean(dim=(1, 2))  # neurons
    n_concepts = clip_feats.shape[1]
    out = torch.empty(n_neurons, n_concepts, dtype=clip_feats.dtype, device=clip_feats.device)
    starts, step = _neuron_chunks(n_neurons, n_top * n_concepts * 8 * 3, max_chunk_bytes)
    for start in starts:
        stop = min(start + step, n_neurons)
        scores = clip_feats[top_idx[:, start:stop]]  # n_top x chunk x concepts
        mean_score = scores.mean(dim=0)  # chunk x concepts
        ranks = scores.argsort(dim=0).argsort(dim=0)  # rank of each top image by CLIP score (0 = lowest)
        reordered = ascending[:, start:stop].unsqueeze(2).expand_as(scores).gather(0, ranks)
        error = (top_vals[:, start:stop].unsqueeze(2) - reordered).abs().pow(p).mean(dim=0)
        out[start:stop] = -(error / baseline[start:stop].unsqueeze(1) / mean_score.pow(scale_p))
    return out


SIMILARITY_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "soft_wpmi": soft_wpmi,
    "wpmi": wpmi,
    "rank_reorder": rank_reorder,
    "cos_similarity": cos_similarity,
}

DEFAULT_PARAMS: dict[str, dict[str, float]] = {
    "soft_wpmi": {"top_k": 100, "a": 10, "lam": 1, "min_prob": 1e-7, "p_start": 0.998, "p_end": 0.97},
    "wpmi": {"top_k": 28, "a": 2, "lam": 0.6, "min_prob": 1e-7},
    "rank_reorder": {"p": 3, "top_fraction": 0.05, "scale_p": 0.5, "seed": 0},
    "cos_similarity": {},
}


def similarity_function(name: str) -> Callable[..., torch.Tensor]:
    """Look a similarity function up by name; a one-line error lists the valid names."""
    from explainers.errors import XaiLensError

    if name not in SIMILARITY_FUNCTIONS:
        raise XaiLensError(f"Unknown similarity function '{name}'; choose one of: {', '.join(SIMILARITY_FUNCTIONS)}.")
    return SIMILARITY_FUNCTIONS[name]
