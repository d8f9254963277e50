"""Limits and options of the app in one place, so a public demo and a laptop differ only here."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from explainers import limits
from explainers.inputs.lime_kwargs import LIME_DEFAULT_SAMPLES  # noqa: F401 (read by the LIME form)

ON_SPACES = bool(os.environ.get("SPACE_ID"))
# Work-scaling caps live in explainers.limits, the one place every entry point reads them from; the
# sliders show them, and the library's validation enforces them on every call however it arrives.
# The public LIME cap depends on XAI_LENS_LIME_MAX_SAMPLES, so it is read when asked for (the
# LIME_MAX_SAMPLES attribute below is computed on access), never frozen at import.
LIME_MAX_BATCH = limits.MAX_BATCH_SIZE
LIME_MAX_FEATURES = limits.MAX_NUM_FEATURES
LIME_MAX_LABELS = limits.MAX_LABELS


def lime_max_samples() -> int:
    """num_samples allowed per image now (XAI_LENS_LIME_MAX_SAMPLES read at this call)."""
    return limits.lime_max_samples()


def __getattr__(name: str) -> int:
    """`settings.LIME_MAX_SAMPLES` reads the cap in force when it is used, not when this module was imported."""
    if name == "LIME_MAX_SAMPLES":
        return limits.lime_max_samples()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Public-demo queue: one heavy job at a time, a bounded waiting line, bounded uploads.
HEAVY_CONCURRENCY_ID = "heavy"
QUEUE_MAX_SIZE = int(os.environ.get("XAI_LENS_QUEUE_MAX", 16))
MAX_UPLOAD = os.environ.get("XAI_LENS_MAX_UPLOAD", "20mb")  # explainers.inputs.images refuses > 20 MB anyway
DELETE_CACHE = (3600, 3600)  # every hour, delete gradio's temporary files older than an hour
RUN_DIR_MAX_AGE_S = 3600
# ZeroGPU slots, seconds: one explanation, and the ten-preset run.
GPU_SECONDS_EXPLAIN = 120
# Off Spaces no GPU quota bounds a request, so each explanation carries its own deadline.
EXPLAIN_DEADLINE_S = float(os.environ.get("XAI_LENS_EXPLAIN_DEADLINE_S", 600))
GPU_SECONDS_PRESETS = 300
# Off Spaces the ten-preset run carries its own deadline too (ResNet50, all four methods, on a CPU: ~30 min).
PRESETS_DEADLINE_S = float(os.environ.get("XAI_LENS_PRESETS_DEADLINE_S", 3600))
MASK_RULES = ("top:0.10", "top:0.20", "thresh:0.5", "otsu", "lime-top:5")


@dataclass(frozen=True)
class AppConfig:
    """What `python -m app` was started with."""

    weights: str = "imagenet"
    examples_dir: Path | None = None
    tables_root: Path | None = None
    study_dir: Path | None = None  # an agreement study's folder (app/panel_study.py; else XAI_LENS_STUDY_DIR)
    work_root: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "xai-lens-app")

    @property
    def is_random(self) -> bool:
        return self.weights == "random"

    def new_run_dir(self, prefix: str) -> Path:
        """A fresh folder for one run's downloads; folders older than RUN_DIR_MAX_AGE_S are removed."""
        self.work_root.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - RUN_DIR_MAX_AGE_S
        for old in self.work_root.iterdir():
            if old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.work_root))
