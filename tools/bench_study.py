"""Images per second of the agreement study against Ray workers: `python -m tools.bench_study`.

A benchmark, not a test: it runs the same images with 1 and 2 (or --workers ...) actors on one local
Ray instance and reports throughput and the efficiency per worker, speed-up / workers (1.0 = linear).
Two rates are given: wall (from the first request to the last row, actors' start and model load
included) and steady (after the first batch came back, when every actor is warm), the one that
says how the study scales over thousands of images.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def synthetic_images(folder: Path, count: int, seed: int = 0) -> Path:
    """Distinct photo-sized images (gradients and blobs), so the run needs nothing downloaded."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:375, 0:500] / 375.0
    for index in range(count):
        image = np.stack([x * rng.uniform(0.2, 1), y * rng.uniform(0.2, 1), np.full_like(x, rng.uniform())], axis=2)
        for _ in range(4):
            cy, cx, r = rng.uniform(40, 335), rng.uniform(40, 460), rng.uniform(20, 90)
            image[(y * 375 - cy) ** 2 + (x * 375 - cx) ** 2 < r**2] = rng.uniform(0, 1, 3)
        Image.fromarray((image * 255).astype(np.uint8)).save(folder / f"bench_{index:04d}.jpg", quality=90)
    return folder


def measure(source, settings, workers: int, batch_size: int, out: Path) -> dict[str, float]:
    from explainers.study.runner import run_study

    arrivals: list[tuple[float, int]] = []
    started = time.perf_counter()
    outcome = run_study(
        source,
        settings,
        out,
        workers=workers,
        batch_size=batch_size,
        progress=False,
        on_batch=lambda batch: arrivals.append((time.perf_counter(), batch.num_rows)),
    )
    return {
        "workers": workers,
        "images": outcome.ran,
        "errors": outcome.errors,
        **throughput(arrivals, started),
        "actors_used": len(outcome.per_worker),
    }


def throughput(arrivals: list[tuple[float, int]], started: float) -> dict[str, float]:
    """Wall and steady rates from (time, rows) of each batch that came back after `started`."""
    images = sum(rows for _, rows in arrivals)
    wall = arrivals[-1][0] - started
    after_first = sum(rows for _, rows in arrivals[1:])
    steady_seconds = arrivals[-1][0] - arrivals[0][0]
    return {
        "wall_s": round(wall, 2),
        "wall_images_per_s": round(images / wall, 3),
        "steady_images_per_s": round(after_first / steady_seconds, 3) if steady_seconds > 0 else float("nan"),
    }


def add_efficiency(runs: list[dict]) -> None:
    """Efficiency per worker against the first run: speed-up / (workers / first run's workers); 1.0 = linear."""
    base = runs[0]
    for run in runs:
        scale = run["workers"] / base["workers"]
        for kind in ("wall", "steady"):
            speedup = run[f"{kind}_images_per_s"] / base[f"{kind}_images_per_s"]
            run[f"{kind}_efficiency_per_worker"] = round(speedup / scale, 3)


def print_runs(runs: list[dict]) -> None:
    print("workers  images  wall s  wall img/s  steady img/s  efficiency/worker (wall, steady)")
    for run in runs:
        print(
            f"{run['workers']:>7}  {run['images']:>6}  {run['wall_s']:>6}  {run['wall_images_per_s']:>10}  "
            f"{run['steady_images_per_s']:>12}  {run['wall_efficiency_per_worker']:.2f}, "
            f"{run['steady_efficiency_per_worker']:.2f}"
        )


def run_counts(counts: list[int], measure_one) -> tuple[list[dict], dict[str, object]]:
    """`measure_one(workers)` for each actor count on one local Ray instance (its start is not measured), with the
    efficiency per worker added; and the machine it ran on, with how busy it was (the machine may be shared)."""
    import torch

    from explainers.study.ray_engine import init_ray

    load_at_start = os.getloadavg()
    device = f"{torch.cuda.get_device_name()} GPU actors" if torch.cuda.is_available() else "CPU actors"
    init_ray(None, local_cpus=max(counts) + 1)  # before `import ray` here: Ray reads its loopback setting on import
    import ray

    try:
        runs = [measure_one(workers) for workers in counts]
    finally:
        ray.shutdown()
    add_efficiency(runs)
    machine = {
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, {device}",
        "load_average_at_start": [round(v, 2) for v in load_at_start],
    }
    return runs, machine


def report(path: Path | None, title: str, settings: dict, runs: list[dict], machine: dict) -> None:
    """Print the runs under the machine and `title`; write machine, settings and runs to `path` as JSON if given."""
    print(f"{machine['machine']}; {title}")
    print_runs(runs)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**machine, **settings, "runs": runs}, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_study", description=__doc__)
    parser.add_argument("--images", type=int, default=20, help="synthetic images (used when --source is not given)")
    parser.add_argument("--source", default=None, help="a folder of images, imagenet1000 or hf:... instead")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--methods", default="gradcam,ablationcam")
    parser.add_argument("--workers", default="1,2", help="comma list of actor counts to compare")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    from explainers.methods import parse_methods
    from explainers.study.runner import StudySettings
    from explainers.study.sources import resolve_source

    counts = [int(n) for n in args.workers.split(",")]
    settings = StudySettings(args.model, args.weights, tuple(parse_methods(args.methods)))
    with tempfile.TemporaryDirectory(prefix="bench-study-") as scratch:
        folder = args.source or str(synthetic_images(Path(scratch) / "images", args.images))
        source = resolve_source(folder)
        runs, machine = run_counts(
            counts, lambda n: measure(source, settings, n, args.batch_size, Path(scratch) / f"out{n}")
        )
    settings_record = {
        "model": args.model,
        "weights": args.weights,
        "methods": settings.methods,
        "batch_size": args.batch_size,
    }
    report(args.json, f"{args.model} ({args.weights}), {', '.join(settings.methods)}", settings_record, runs, machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
