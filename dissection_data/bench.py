"""Benchmark: time a full build on this machine without network or weights.

Same work as the real build: both models with random weights, three layers, N probe images
(generated JPEGs, since the sample images cannot be downloaded here), the real 20k concept set, and a
randomly initialised CLIP with ViT-B/16 sizes (identical arithmetic to openai/clip-vit-base-patch16).
Nothing is cached, so every stage is timed. Scale it down with --probes/--words to extrapolate.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from dissection_data.build import DEFAULT_LAYERS, DEFAULT_MODELS, BuildOptions, StageTimer, build_tables
from dissection_data.concepts import WORD_COUNT, default_concept_set
from dissection_data.offline_clip import VIT_B16, random_clip_encoder
from dissection_data.probes import folder_probe_set
from dissection_data.synthetic import write_noise_probe_set


def run_benchmark(
    probes: int = 1000,
    words: int = WORD_COUNT,
    models: Sequence[str] = DEFAULT_MODELS,
    layers: Sequence[str] = DEFAULT_LAYERS,
    device: str = "cpu",
    batch_size: int = 32,
) -> dict[str, Any]:
    """Run one uncached build and return {stage: seconds} plus the setup."""
    timer = StageTimer()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        with timer.stage("generate probe images (benchmark only)"):
            write_noise_probe_set(scratch_dir / "probes", probes)
            probe_set = folder_probe_set(scratch_dir / "probes", name=f"noise{probes}")
        with timer.stage("concept set"):
            concept_set = default_concept_set(words)
        with timer.stage("random ViT-B/16 CLIP + offline tokenizer (benchmark only)"):
            encoder = random_clip_encoder(VIT_B16, concept_set.concepts, device=device)
        options = BuildOptions(
            models=models,
            layers=layers,
            weights="random",
            out=scratch_dir / "tables",
            cache=None,
            device=device,
            batch_size=batch_size,
        )
        build_tables(options, probe_set=probe_set, concept_set=concept_set, encoder=encoder, timer=timer)
    return {
        "setup": {
            "probes": probes,
            "concepts": len(concept_set),
            "models": list(models),
            "layers": list(layers),
            "clip": "random CLIPModel, ViT-B/16 sizes",
            "device": device,
            "torch_threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
        },
        "stages_s": {name: round(seconds, 2) for name, seconds in timer.seconds.items()},
        "total_s": round(time.perf_counter() - started, 2),
    }


def format_report(report: dict[str, Any]) -> str:
    width = max(len(name) for name in report["stages_s"])
    lines = [json.dumps(report["setup"])]
    lines += [f"{name:<{width}}  {seconds:8.2f} s" for name, seconds in report["stages_s"].items()]
    lines.append(f"{'total':<{width}}  {report['total_s']:8.2f} s")
    return "\n".join(lines)
