"""Images per second of the dissection build's Ray feature passes against workers: `python -m tools.bench_dissection`.

A benchmark, not a test: the same synthetic probe images go through `build --engine ray`'s extraction
(dissection_data.scale.extract_on_ray: every target model's pooled activations and the CLIP image
feature per image) with 1 and 2 (or --workers ...) actors on one local Ray instance, each count with a
fresh cache so nothing is reused. The rates and efficiency per worker are those of tools.bench_study
(wall: first request to last batch, actors' start included; steady: after the first batch).
CLIP is a random model of ViT-B/16 sizes (the arithmetic of openai/clip-vit-base-patch16) saved to a
folder and loaded by name in each actor, as a cluster node loads the real one; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tools.bench_study import report, run_counts, synthetic_images, throughput

CLIP_SIZES = {"vit-b16": "VIT_B16", "tiny": "TINY"}
LAYERS = ("layer3", "layer4", "fc")


def measure(source, recipe, models, encoder, workers: int, batch_size: int, cache: Path) -> dict[str, float]:
    from dissection_data.cache import FeatureCache
    from dissection_data.scale import extract_on_ray

    arrivals: list[tuple[float, int]] = []
    actors: set[str] = set()

    def arrived(batch) -> None:
        arrivals.append((time.perf_counter(), batch.num_rows))
        actors.update(batch["worker"].to_pylist())

    started = time.perf_counter()
    probe_set = extract_on_ray(
        source, recipe, models, encoder, FeatureCache(cache), workers=workers, batch_size=batch_size, on_batch=arrived
    )
    return {
        "workers": workers,
        "images": len(probe_set),
        "skipped": probe_set.skipped,
        **throughput(arrivals, started),
        "actors_used": len(actors),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_dissection", description=__doc__)
    parser.add_argument("--images", type=int, default=40, help="synthetic images (used when --source is not given)")
    parser.add_argument("--source", default=None, help="a folder of images, imagenet1000 or hf:... instead")
    parser.add_argument("--models", default="resnet18", help="comma list of target models (random weights)")
    parser.add_argument("--clip-size", default="vit-b16", choices=sorted(CLIP_SIZES), help="random CLIP's sizes")
    parser.add_argument("--workers", default="1,2", help="comma list of actor counts to compare")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    from dissection_data import offline_clip
    from dissection_data.clip_encoder import TransformersClip
    from dissection_data.scale import ExtractionRecipe
    from explainers.engine.models import load_model
    from explainers.study.sources import resolve_source

    counts = [int(n) for n in args.workers.split(",")]
    names = tuple(name.strip() for name in args.models.split(",") if name.strip())
    with tempfile.TemporaryDirectory(prefix="bench-dissection-") as scratch:
        folder = args.source or str(synthetic_images(Path(scratch) / "images", args.images))
        source = resolve_source(folder)
        sizes = getattr(offline_clip, CLIP_SIZES[args.clip_size])
        clip_folder = offline_clip.save_random_clip(Path(scratch) / "clip", sizes, ["red", "green", "blue", "dog"])
        models = [load_model(name, "random", "cpu") for name in names]
        encoder = TransformersClip.from_pretrained(str(clip_folder), "cpu")
        recipe = ExtractionRecipe(names, "random", str(clip_folder), LAYERS, "mean")
        runs, machine = run_counts(
            counts,
            lambda n: measure(source, recipe, models, encoder, n, args.batch_size, Path(scratch) / f"cache{n}"),
        )
    clip = f"random CLIP, {args.clip_size} sizes"
    settings = {"models": names, "weights": "random", "clip": clip, "layers": LAYERS, "batch_size": args.batch_size}
    report(args.json, f"{', '.join(names)} + {clip}, layers {', '.join(LAYERS)}", settings, runs, machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
