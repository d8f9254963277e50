"""Benchmark: our heavy methods against the reference libraries and against the forward-pass floor.

Run `python -m explainers.bench` (see --help). Random weights keep it offline; the timings do not
depend on the weights. Speed is judged here, never in the tests: a timed test on a shared
machine only measures the neighbours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lime.wrappers.scikit_image import SegmentationAlgorithm
from tqdm.auto import tqdm

from explainers.errors import XaiLensError
from explainers.images import load_image
from explainers.methods import Subject, create_method
from explainers.methods.cam_common import default_batch_size
from explainers.methods.scorecam import ScoreCAMMethod
from explainers.models import LoadedModel, load_model

METHODS = ("gradcam", "ablationcam", "scorecam", "lime")


def preset_images(folder: str | None) -> list[Path]:
    """The ten presets in manifest order, checksum-verified (from --examples-dir, the env, or the cache)."""
    from examples.presets import ensure_presets

    return [path for _, path in ensure_presets(folder, progress=False)]


@torch.inference_mode()
def forward_floor(model: LoadedModel, crop: np.ndarray, repeats: int = 2) -> float:
    """Seconds per image of the plain batched forward pass (channels-last, inference mode): the floor."""
    size = default_batch_size(model.device)
    batch = model.to_tensor(np.repeat(crop[None], size, axis=0)).contiguous(memory_format=torch.channels_last)
    model.module(batch)  # warm-up
    _sync(model.device)
    started = time.perf_counter()
    for _ in range(repeats):
        model.module(batch)
    _sync(model.device)
    return (time.perf_counter() - started) / (repeats * size)


def segmentation_seconds(crop: np.ndarray) -> float:
    """lime's default segmentation (quickshift, kernel 4, max_dist 200, ratio 0.2) on the crop."""
    segmenter = SegmentationAlgorithm("quickshift", kernel_size=4, max_dist=200, ratio=0.2, random_seed=0)
    started = time.perf_counter()
    segmenter(crop)
    return time.perf_counter() - started


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _method(name: str, reference: bool, lime_samples: int):
    params = {"num_samples": lime_samples} if name == "lime" else None
    return create_method(name, lime_params=params, reference=reference)


def _timed(model: LoadedModel, name: str, subject: Subject, reference: bool, lime_samples: int):
    method = _method(name, reference, lime_samples)
    _sync(model.device)
    started = time.perf_counter()
    saliency = method.explain(subject)
    _sync(model.device)
    return saliency, time.perf_counter() - started


def bench_model(
    model_name: str, images: Sequence[Path], methods: Sequence[str], args: argparse.Namespace
) -> list[dict]:
    model = load_model(model_name, "random", args.device)
    rows: list[dict[str, Any]] = []
    crops = [model.crop(load_image(path)) for path in images]
    floor = forward_floor(model, crops[0])
    tqdm.write(f"{model_name}: forward floor {floor * 1000:.1f} ms/image on {model.device}")
    work = [(i, name) for i in range(len(images)) for name in methods]
    for index, name in tqdm(work, desc=f"{model_name}", unit="run"):
        crop = crops[index]
        target = int(np.argmax(model.probabilities(model.to_tensor(crop))[0].cpu().numpy()))
        subject = Subject(model, crop, target)
        ours, ours_s = _timed(model, name, subject, False, args.lime_samples)
        row: dict[str, Any] = {
            "model": model_name,
            "method": name,
            "image": images[index].name,
            "floor_s": floor,
            "ours_s": ours_s,
            "path": ours.extras.get("path"),
        }
        if name == "scorecam":
            row["forward_passes"] = ours.extras["forward_passes"]
            row["per_pass_vs_floor"] = ours_s / ours.extras["forward_passes"] / floor
            if args.autocast and index < args.reference_images:  # opt-in mixed precision: time and map error
                started = time.perf_counter()
                mixed = ScoreCAMMethod(autocast=True).explain(subject)
                _sync(model.device)
                row["autocast_s"] = time.perf_counter() - started
                row["autocast_max_abs_diff"] = float(np.abs(mixed.map - ours.map).max())
        if name == "lime":
            row["segmentation_s"] = segmentation_seconds(crop)
            row["lime_budget_s"] = args.lime_samples * floor + row["segmentation_s"]
            row["vs_budget"] = ours_s / row["lime_budget_s"]
        if not args.skip_reference and index < args.reference_images:
            theirs, theirs_s = _timed(model, name, subject, True, args.lime_samples)
            row["reference_s"] = theirs_s
            row["speedup"] = theirs_s / ours_s
            row["max_abs_diff"] = float(np.abs(ours.map - theirs.map).max())
        rows.append(row)
    return rows


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 else f"{value:.{digits}f}"
    return str(value)


def markdown(rows: Sequence[dict], reference_images: int, skipped: bool) -> str:
    """Per-image table, then one line per model and method (means; reference on its images only)."""
    note = "reference skipped" if skipped else f"reference timed on the first {reference_images} image(s) only"
    lines = [
        f"Per image ({note}); floor = plain batched forward pass per image.",
        "",
        "| model | method | image | floor s | reference s | ours s | speed-up | max abs diff | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        notes = []
        if "forward_passes" in row:
            notes.append(f"{row['forward_passes']} passes, {row['per_pass_vs_floor']:.2f}x floor/pass")
        if "vs_budget" in row:
            notes.append(f"{row['vs_budget']:.2f}x (samples x floor + segmentation {row['segmentation_s']:.2f} s)")
        if "autocast_s" in row:
            notes.append(f"autocast {row['autocast_s']:.3f} s, max abs diff {row['autocast_max_abs_diff']:.2g}")
        if row.get("path"):
            notes.append(row["path"])
        lines.append(
            f"| {row['model']} | {row['method']} | {row['image'][:24]} | {row['floor_s']:.4f} | "
            f"{_fmt(row.get('reference_s'), 3)} | {row['ours_s']:.3f} | {_fmt(row.get('speedup'), 3)} | "
            f"{_fmt(row.get('max_abs_diff'), 2)} | {'; '.join(notes)} |"
        )
    lines += [
        "",
        "| model | method | images | mean ours s | mean reference s | speed-up | worst diff | target metric |",
    ]
    lines.append("|---|---|---|---|---|---|---|---|")
    for key in dict.fromkeys((r["model"], r["method"]) for r in rows):
        group = [r for r in rows if (r["model"], r["method"]) == key]
        referenced = [r for r in group if "reference_s" in r]
        mean_ref = np.mean([r["reference_s"] for r in referenced]) if referenced else None
        mean_ours_ref = np.mean([r["ours_s"] for r in referenced]) if referenced else None
        metric = ""
        if key[1] == "scorecam":
            metric = f"per pass {np.mean([r['per_pass_vs_floor'] for r in group]):.2f}x floor"
        if key[1] == "lime":
            metric = f"{np.mean([r['vs_budget'] for r in group]):.2f}x of samples x floor + segmentation"
        lines.append(
            f"| {key[0]} | {key[1]} | {len(group)} | {np.mean([r['ours_s'] for r in group]):.3f} | "
            f"{_fmt(float(mean_ref) if referenced else None, 3)} | "
            f"{_fmt(float(mean_ref / mean_ours_ref) if referenced else None, 3)} | "
            f"{_fmt(max((r['max_abs_diff'] for r in referenced), default=None), 2)} | {metric} |"
        )
    total = sum(r["ours_s"] for r in rows)
    lines += ["", f"Total time of our methods over all rows: {total:.1f} s."]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m explainers.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,resnet18", help="comma-separated model names")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--images", type=int, default=None, help="how many preset images (default: all)")
    parser.add_argument("--reference-images", type=int, default=None, help="time the reference on the first K only")
    parser.add_argument("--lime-samples", type=int, default=1000)
    parser.add_argument(
        "--autocast",
        action="store_true",
        help="also time Score-CAM in mixed precision and state its map error (on the reference images)",
    )
    parser.add_argument("--skip-reference", action="store_true", help="time only our methods")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    parser.add_argument("--examples-dir", default=None, help="folder of the preset images (or $XAI_LENS_EXAMPLES_DIR)")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        images = preset_images(args.examples_dir)[: args.images]
    except XaiLensError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.reference_images = len(images) if args.reference_images is None else args.reference_images
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"Unknown method {unknown[0]!r}; choose from {', '.join(METHODS)}.")
    rows = []
    for model_name in [m.strip() for m in args.models.split(",") if m.strip()]:
        rows += bench_model(model_name, images, methods, args)
    table = markdown(rows, args.reference_images, args.skip_reference)
    print(table)
    if args.out:
        device = load_model(rows[0]["model"], "random", args.device).device if rows else args.device
        meta = {"device": str(device), "torch_threads": torch.get_num_threads()}
        meta["argv"] = list(argv if argv is not None else sys.argv[1:])
        Path(args.out).write_text(json.dumps({"meta": meta, "rows": rows, "markdown": table}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
