"""What every perturbation metric shares: rank pixels by a map, and score perturbed inputs in batches.

Deletion, insertion and ROAD all ask the same question many times: "what probability does the
model give the target class on this altered image?" The altered images are built on the model's
device and run through the BatchNorm-folded copy (the fast, hook-free one), a batch at a time,
checking the request's cancel token between batches and halving the batch on out-of-memory.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from explainers.engine.cancel import CancelToken
from explainers.engine.models import LoadedModel
from explainers.engine.oom import run_with_backoff

# On a 2-core CPU larger batches gain nothing; on a GPU one batch holds every pass of a metric.
_BATCH = {"cpu": 8}
_GPU_BATCH = 64


def default_batch_size(device: torch.device) -> int:
    return _BATCH.get(device.type, _GPU_BATCH)


def pixel_ranks(saliency_map: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """Each pixel's place when the map is sorted from most to least relevant (0 = most), flattened.

    Ties keep reading order (a stable sort), as torchcam does, so equal values are removed row by row.
    """
    values = torch.as_tensor(np.asarray(saliency_map, dtype=np.float32), device=device).flatten()
    order = torch.argsort(values, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel(), device=order.device)
    return ranks


def target_probabilities(
    model: LoadedModel,
    build_batch: Callable[[int, int], torch.Tensor],
    count: int,
    target: int,
    *,
    cancel: CancelToken | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Softmax probability of `target` for inputs 0..count-1, where build_batch(start, stop) makes inputs start..stop-1.

    Inputs are built lazily per batch so only one batch of perturbed images is ever in memory.
    Returns a float32 CPU tensor of length `count`.
    """
    module = model.inference_module

    def work(size: int) -> torch.Tensor:
        scores = []
        for start in range(0, count, size):
            if cancel is not None:
                cancel.check()
            batch = build_batch(start, min(start + size, count))
            with torch.inference_mode():
                logits = module(batch.contiguous(memory_format=torch.channels_last))
                scores.append(torch.softmax(logits.float(), dim=1)[:, target].cpu())
            del batch, logits
        return torch.cat(scores) if scores else torch.empty(0)

    return run_with_backoff(work, batch_size or default_batch_size(model.device))
