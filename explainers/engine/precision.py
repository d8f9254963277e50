"""GPU arithmetic: exact float32 unless TF32 is asked for.

PyTorch lets cuDNN run float32 convolutions in TF32 (a 10-bit mantissa) by default. On an H100
that moved Score-CAM's map by up to 7e-4 and LIME's by 1e-2 against grad-cam and lime on the same
inputs (float32: 5e-7 and 2e-5), so XAI Lens turns TF32 off whenever it loads a model on CUDA.
TF32 is an opt-in (`XAI_LENS_TF32=1`, `--tf32`, or `configure(tf32=True)`): convolutions run about
2.7x faster, and `python -m tools.bench --opt-in` states the maps' error.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

ENV_VAR = "XAI_LENS_TF32"
_choice: bool | None = None  # configure()'s answer; None: the environment decides


def configure(tf32: bool | None) -> None:
    """Choose TF32 (True) or exact float32 (False) for models loaded from now on; None: from XAI_LENS_TF32."""
    global _choice
    _choice = tf32


def tf32_wanted() -> bool:
    if _choice is not None:
        return _choice
    return os.environ.get(ENV_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def apply() -> None:
    """Set PyTorch's process-wide TF32 switches to the chosen arithmetic (called when a CUDA model loads)."""
    set_tf32(tf32_wanted())


def set_tf32(enabled: bool) -> None:
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


def tf32_enabled() -> bool:
    return bool(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)


@contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 on or off inside the block, the previous switches restored after (for the benchmark's variants)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    set_tf32(enabled)
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def describe(device: torch.device) -> str:
    """The arithmetic a model on `device` runs in, for summaries and captions."""
    if device.type == "cuda" and tf32_enabled():
        return "TF32 on the GPU (opt-in; maps differ from float32 by up to ~1e-2)"
    return "float32"
