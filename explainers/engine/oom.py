"""Run batched work so that running out of GPU memory means a smaller batch, not a failed request.

On a shared GPU (a Space with many visitors) the memory free changes from one call to the next;
ScoreCAM and LIME batch their forward passes. Halving the batch and trying again keeps the answer
identical (the batch size only changes how the same forward passes are grouped) at some speed cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from explainers.errors import XaiLensError

T = TypeVar("T")


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA (and MPS/CPU allocator) out-of-memory errors, whatever class torch raised them as."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_cached_memory() -> None:
    """Give the allocator's cached blocks back so the retry can use them."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_with_backoff(
    work: Callable[[int], T],
    batch_size: int,
    *,
    min_batch: int = 1,
    on_retry: Callable[[int], None] | None = None,
) -> T:
    """Call work(batch_size); on out-of-memory halve the batch and call again, down to min_batch.

    `work` must start from scratch on every call (it may have been interrupted half way). `on_retry`
    hears each new, smaller batch size (for a log line or a progress message). Any other error passes
    through untouched; out of memory at min_batch becomes one XaiLensError saying what to do.
    """
    if batch_size < 1 or min_batch < 1:
        raise ValueError(f"batch sizes must be at least 1, got batch_size={batch_size}, min_batch={min_batch}")
    size = max(batch_size, min_batch)
    while True:
        try:
            return work(size)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            del error  # drop the traceback's references to the failed batch's tensors before freeing
            free_cached_memory()
            if size <= min_batch:
                raise XaiLensError(
                    f"Out of GPU memory even with a batch of {size}; try again later, "
                    "use a smaller model, or run on CPU (--device cpu)."
                ) from None
            size = max(size // 2, min_batch)
            if on_retry is not None:
                on_retry(size)
