"""Benchmark: our heavy methods against the reference libraries and against the forward-pass floor.

Run `python -m tools.bench` (see --help). Random weights keep it offline; the timings do not
depend on the weights. Speed is judged here, never in the tests: a timed test on a shared
machine only measures the neighbours.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from explainers.engine import precision
from explainers.engine.models import LoadedModel, load_model
from explainers.errors import XaiLensError
from explainers.inputs.images import load_image
from explainers.methods import Saliency, SaliencyMethod, Subject, create_method
from explainers.methods.cam_common import default_batch_size
from explainers.methods.scorecam import ScoreCAMMethod

BENCH_METHODS = ("gradcam", "ablationcam", "scorecam", "lime")


def preset_images(folder: str | None) -> list[Path]:
    """The ten presets in manifest order, checksum-verified (from --examples-dir, the env, or the cache)."""
    from explainers.inputs.presets import ensure_presets

    return [path for _, path in ensure_presets(folder, progress=False)]


@torch.inference_mode()
def forward_floor(model: LoadedModel, crop: np.ndarray, repeats: int | None = None) -> float:
    """Seconds per image of the plain batched forward pass (channels-last, inference mode): the floor.

    The fastest of several timed batches after a warm-up: on a shared machine the minimum is the
    cost of the pass itself, the rest is the neighbours.
    """
    size = default_batch_size(model.device)
    repeats = repeats or (20 if model.device.type == "cuda" else 5)
    batch = model.to_tensor(np.repeat(crop[None], size, axis=0)).contiguous(memory_format=torch.channels_last)
    for _ in range(2):  # warm-up: kernels chosen, caches filled
        model.module(batch)
    _sync(model.device)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        model.module(batch)
        _sync(model.device)
        best = min(best, time.perf_counter() - started)
    return best / size


@torch.inference_mode()
def single_pass(model: LoadedModel, crop: np.ndarray, repeats: int = 10) -> float:
    """Seconds of one forward pass of one image (batch 1): the floor of a method that needs just one."""
    tensor = model.to_tensor(crop)
    model.module(tensor)
    best = float("inf")
    for _ in range(repeats):
        _sync(model.device)
        started = time.perf_counter()
        model.module(tensor)
        _sync(model.device)
        best = min(best, time.perf_counter() - started)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _method(name: str, reference: bool, lime_samples: int) -> SaliencyMethod:
    params = {"num_samples": lime_samples} if name == "lime" else None
    return create_method(name, lime_params=params, reference=reference)


def timed_run(model: LoadedModel, crop: np.ndarray, target: int, method: SaliencyMethod) -> tuple[Saliency, float]:
    """One explanation on a fresh Subject (nothing cached from an earlier run), wall time with the device synced."""
    _sync(model.device)
    started = time.perf_counter()
    saliency = method.explain(Subject(model, crop, target))
    _sync(model.device)
    return saliency, time.perf_counter() - started


def paired_times(
    model: LoadedModel, name: str, crop: np.ndarray, target: int, lime_samples: int, repeats: int, with_reference: bool
) -> tuple[Saliency, float, Saliency | None, float | None]:
    """(ours, ours_s, reference, reference_s): fastest of `repeats` runs each, ours and the reference alternating.

    Alternating keeps a noisy neighbour from landing on one side only; the minimum is what the
    code costs when nothing interrupts it.
    """
    best: dict[bool, tuple[Saliency | None, float]] = {False: (None, float("inf")), True: (None, float("inf"))}
    for _ in range(repeats):
        for reference in (False, True) if with_reference else (False,):
            saliency, seconds = timed_run(model, crop, target, _method(name, reference, lime_samples))
            if seconds < best[reference][1]:
                best[reference] = (saliency, seconds)
    (ours, ours_s), (theirs, theirs_s) = best[False], best[True]
    assert ours is not None
    return ours, ours_s, theirs, (theirs_s if with_reference else None)


def opt_in_variants(
    model: LoadedModel, name: str, crop: np.ndarray, target: int, args: argparse.Namespace, exact: Saliency
) -> dict:
    """The opt-in reduced-precision runs of a method: each one's time and its map's distance from float32."""
    variants: dict[str, Callable[[], SaliencyMethod]] = {}
    if name == "scorecam":
        variants["autocast"] = lambda: ScoreCAMMethod(autocast=True)
    if model.device.type == "cuda" and name in ("scorecam", "lime", "ablationcam"):
        variants["tf32"] = lambda: _method(name, False, args.lime_samples)
    results = {}
    for variant, make in variants.items():
        with precision.tf32(variant == "tf32" or precision.tf32_enabled()):
            runs = [timed_run(model, crop, target, make()) for _ in range(2 if model.device.type == "cuda" else 1)]
        saliency, seconds = min(runs, key=lambda run: run[1])  # on a GPU the first run also picks kernels
        results[variant] = {"s": seconds, "max_abs_diff": float(np.abs(saliency.map - exact.map).max())}
    return results


def warm_up(model: LoadedModel, crop: np.ndarray, methods: Sequence[str], lime_samples: int) -> None:
    """Run methods once untimed, so first-call costs (kernel choice, allocations) land on no one's timing.

    On a GPU every method, ours and the reference (cuDNN picks its kernels on the first batch of each
    shape); on a CPU only Grad-CAM, whichever ran first there paid ~0.1 s, and the rest cost minutes.
    """
    warmed = methods if model.device.type == "cuda" else [name for name in methods if name == "gradcam"]
    for name in warmed:
        for reference in (False, True):
            timed_run(model, crop, 0, _method(name, reference, min(lime_samples, 100)))


def end_to_end(model: LoadedModel, images: Sequence[Path], methods: Sequence[str], lime_samples: int) -> dict:
    """Wall time of the whole pipeline (decode, crop, predict, every method, masks) per image, model warm.

    This is what a visitor or a class presentation waits for; one untimed run on the first image first
    (the app does the same at start-up), so kernel selection and first-use allocations stay out.
    """
    from explainers.pipeline import explain_image

    params = {"num_samples": lime_samples}

    def run(path: Path) -> float:
        _sync(model.device)
        started = time.perf_counter()
        explain_image(path, model, methods, lime_params=params)
        _sync(model.device)
        return time.perf_counter() - started

    warm_up_s = run(images[0])
    per_image = [run(path) for path in tqdm(images, desc=f"{model.name} end to end", unit="image")]
    return {
        "model": model.name,
        "methods": list(methods),
        "images": len(images),
        "lime_samples": lime_samples,
        "precision": precision.describe(model.device),
        "warm_up_s": warm_up_s,
        "per_image_s": per_image,
        "total_s": float(sum(per_image)),
    }


def bench_model(
    model_name: str, images: Sequence[Path], methods: Sequence[str], args: argparse.Namespace
) -> list[dict]:
    model = load_model(model_name, "random", args.device)
    rows: list[dict[str, Any]] = []
    crops = [model.crop(load_image(path)) for path in images]
    floor = forward_floor(model, crops[0])
    one_pass = single_pass(model, crops[0])
    tqdm.write(
        f"{model_name} on {model.device} ({precision.describe(model.device)}): forward floor "
        f"{floor * 1000:.2f} ms/image batched, {one_pass * 1000:.2f} ms for one image alone"
    )
    warm_up(model, crops[0], methods, args.lime_samples)
    work = [(i, name) for i in range(len(images)) for name in methods]
    for index, name in tqdm(work, desc=f"{model_name}", unit="run"):
        crop = crops[index]
        target = int(np.argmax(model.probabilities(model.to_tensor(crop))[0].cpu().numpy()))
        on_reference_image = index < args.reference_images
        referenced = not args.skip_reference and on_reference_image
        repeats = args.repeats if on_reference_image else 1
        ours, ours_s, theirs, theirs_s = paired_times(model, name, crop, target, args.lime_samples, repeats, referenced)
        row: dict[str, Any] = {
            "model": model_name,
            "method": name,
            "image": images[index].name,
            "floor_s": floor,
            "single_pass_s": one_pass,
            "ours_s": ours_s,
            "path": ours.extras.get("path"),
        }
        if name == "ablationcam" and ours.extras.get("closed_form"):
            row["vs_single_pass"] = ours_s / one_pass
        if name == "scorecam":
            row["forward_passes"] = ours.extras["forward_passes"]
            row["per_pass_vs_floor"] = ours_s / ours.extras["forward_passes"] / floor
        if name == "lime":  # the segmentation of this very run, measured inside it
            row["segmentation_s"] = ours.extras["segmentation_s"]
            row["lime_budget_s"] = args.lime_samples * floor + row["segmentation_s"]
            row["vs_budget"] = ours_s / row["lime_budget_s"]
        if args.opt_in and on_reference_image:
            row["opt_in"] = opt_in_variants(model, name, crop, target, args, ours)
        if referenced:
            assert theirs is not None and theirs_s is not None
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


def table_head(columns: str) -> list[str]:
    """'a | b' -> a markdown table's header row and the separator row under it, one '---' per column."""
    return [f"| {columns} |", "|" + "---|" * (columns.count("|") + 1)]


def section(title: str, columns: str, rows: Sequence[str], note: str = "") -> str:
    """A later section of the results file (title, table, optional note), or nothing when it has no rows."""
    if not rows:
        return ""
    return "\n".join(["", "", title, "", *table_head(columns), *rows, *(["", note] if note else [])])


def markdown(rows: Sequence[dict], reference_images: int, skipped: bool) -> str:
    """Per-image table, then one line per model and method (means; reference on its images only)."""
    note = "reference skipped" if skipped else f"reference timed on the first {reference_images} image(s) only"
    lines = [
        f"Per image ({note}); floor = plain batched forward pass per image.",
        "",
        *table_head("model | method | image | floor s | reference s | ours s | speed-up | max abs diff | notes"),
    ]
    for row in rows:
        notes = []
        if "forward_passes" in row:
            notes.append(f"{row['forward_passes']} passes, {row['per_pass_vs_floor']:.2f}x floor/pass")
        if "vs_budget" in row:
            notes.append(f"{row['vs_budget']:.2f}x (samples x floor + segmentation {row['segmentation_s']:.2f} s)")
        if "vs_single_pass" in row:
            notes.append(f"{row['vs_single_pass']:.2f}x one batch-1 pass")
        for variant, result in row.get("opt_in", {}).items():
            notes.append(f"opt-in {variant} {result['s']:.3f} s, max abs diff {result['max_abs_diff']:.2g}")
        if row.get("path"):
            notes.append(row["path"])
        lines.append(
            f"| {row['model']} | {row['method']} | {row['image'][:24]} | {row['floor_s']:.4f} | "
            f"{_fmt(row.get('reference_s'), 3)} | {row['ours_s']:.3f} | {_fmt(row.get('speedup'), 3)} | "
            f"{_fmt(row.get('max_abs_diff'), 2)} | {'; '.join(notes)} |"
        )
    lines += [
        "",
        *table_head("model | method | images | mean ours s | mean reference s | speed-up | worst diff | target metric"),
    ]
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
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,resnet18", help="comma-separated model names")
    parser.add_argument(
        "--methods", default=",".join(BENCH_METHODS), help=f"comma-separated, from {', '.join(BENCH_METHODS)}"
    )
    parser.add_argument("--images", type=int, default=None, help="how many preset images (default: all)")
    parser.add_argument("--reference-images", type=int, default=None, help="time the reference on the first K only")
    parser.add_argument("--lime-samples", type=int, default=1000)
    parser.add_argument(
        "--opt-in",
        action="store_true",
        help="also time the opt-in reduced precisions (Score-CAM autocast; TF32 on a GPU) and state each one's "
        "map error against float32 (on the reference images)",
    )
    parser.add_argument("--tf32", action="store_true", help="run everything with TF32 on the GPU (opt-in arithmetic)")
    parser.add_argument("--skip-reference", action="store_true", help="time only our methods")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="on the reference images, time ours and the reference N times each "
        "(alternating) and keep the fastest: steadier on a shared machine",
    )
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="also time the whole pipeline (all chosen methods, masks, IoU) on every image, model warm",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="also time the faithfulness metrics (deletion+insertion, ROAD, sanity) for the chosen methods on the "
        "first image, with their forward-pass floor",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when present)")
    parser.add_argument("--examples-dir", default=None, help="folder of the preset images (or $XAI_LENS_EXAMPLES_DIR)")
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    precision.configure(args.tf32)
    try:
        images = preset_images(args.examples_dir)[: args.images]
    except XaiLensError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.reference_images = len(images) if args.reference_images is None else args.reference_images
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in BENCH_METHODS]
    if unknown:
        raise SystemExit(f"Unknown method {unknown[0]!r}; choose from {', '.join(BENCH_METHODS)}.")
    rows, pipelines, metric_runs = [], [], []
    for model_name in [m.strip() for m in args.models.split(",") if m.strip()]:
        rows += bench_model(model_name, images, methods, args)
        if args.end_to_end:
            model = load_model(model_name, "random", args.device)
            pipelines.append(end_to_end(model, images, methods, args.lime_samples))
        if args.metrics:
            model = load_model(model_name, "random", args.device)
            metric_runs.append(bench_metrics(model, images[0], methods, args.lime_samples))
    table = markdown(rows, args.reference_images, args.skip_reference) + end_to_end_markdown(pipelines)
    table += metrics_markdown(metric_runs)
    print(table)
    if args.out:
        meta = machine(load_model(rows[0]["model"], "random", args.device).device if rows else None)
        meta["argv"] = list(argv if argv is not None else sys.argv[1:])
        report = {"meta": meta, "rows": rows, "end_to_end": pipelines, "metrics": metric_runs, "markdown": table}
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


def machine(device: torch.device | None) -> dict[str, Any]:
    """What the numbers were measured on, and in which arithmetic."""
    import platform

    meta: dict[str, Any] = {
        "device": str(device),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
    }
    if device is not None and device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
        meta["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
        meta["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    return meta


def bench_metrics(model: LoadedModel, image: Path, methods: Sequence[str], lime_samples: int) -> dict:
    """Wall time of each faithfulness metric for all `methods` on one image, beside its forward-pass floor.

    The maps are computed once, untimed (the metrics reuse them); one untimed warm-up run of the
    cheap metrics first. The floor is the perturbation metrics' passes times the batched per-image
    pass; the sanity check re-runs every method once per cascade stage, so its floor is those runs.
    """
    from explainers.faithfulness import evaluate
    from explainers.pipeline import explain_image

    params = {"num_samples": lime_samples}
    explanation = explain_image(image, model, methods, lime_params=params)
    maps = {name: s.map for name, s in explanation.saliency.items()}
    method_s = sum(s.seconds for s in explanation.saliency.values())
    target, probability = explanation.target.index, explanation.target.probability

    def make_method(name: str) -> SaliencyMethod:
        return _method(name, False, lime_samples)

    def timed(metrics: str) -> tuple[float, int]:
        _sync(model.device)
        started = time.perf_counter()
        results = evaluate(model, explanation.crop, target, probability, maps, metrics, make_method=make_method)
        _sync(model.device)
        return time.perf_counter() - started, sum(r.passes for r in results.values())

    timed("deletion,insertion")  # warm-up
    floor = forward_floor(model, explanation.crop)
    rows = {}
    for metrics in ("deletion,insertion", "road", "sanity"):
        seconds, passes = timed(metrics)
        rows[metrics] = {"s": seconds, "passes": passes, "floor_s": passes * floor}
    stages = len(model_stages(model))
    rows["sanity"]["floor_s"] = stages * method_s  # one run of every method per randomised stage
    return {
        "model": model.name,
        "image": image.name,
        "methods": list(methods),
        "lime_samples": lime_samples,
        "precision": precision.describe(model.device),
        "floor_per_pass_s": floor,
        "methods_s": method_s,
        "sanity_stages": stages,
        "metrics": rows,
        "total_s": sum(row["s"] for row in rows.values()),
    }


def model_stages(model: LoadedModel) -> list[str]:
    from explainers.faithfulness.randomization import default_stages

    return default_stages(model.module)


def metrics_markdown(runs: Sequence[dict]) -> str:
    rows = []
    for run in runs:
        for metric, row in run["metrics"].items():
            rows.append(
                f"| {run['model']} | {','.join(run['methods'])} | {metric} | {row['passes']} | "
                f"{row['s']:.2f} | {row['floor_s']:.2f} |"
            )
        rows.append(f"| {run['model']} | | all four | | {run['total_s']:.2f} | |")
    return section(
        "Faithfulness metrics (explainers.faithfulness, all chosen methods, one image; maps reused, not timed):",
        "model | methods | metric | model passes | s | floor s",
        rows,
        note="Floor: the model passes times the batched forward pass per image (deletion/insertion, ROAD); "
        "for the sanity check, one run of every method per randomised stage. ROAD's extra time is its sparse "
        "imputation solves on the CPU.",
    )


def end_to_end_markdown(pipelines: Sequence[dict]) -> str:
    rows = []
    for run in pipelines:
        methods = ",".join(run["methods"]) + (
            f" (LIME {run['lime_samples']} samples)" if "lime" in run["methods"] else ""
        )
        rows.append(
            f"| {run['model']} | {methods} | {run['precision'].split(' (')[0]} | {run['images']} | "
            f"{run['total_s']:.2f} | {max(run['per_image_s']):.2f} | {run['warm_up_s']:.2f} |"
        )
    return section(
        "End to end (explainers.pipeline.explain_image: decode, crop, predict, every method, masks, IoU; model warm):",
        "model | methods | arithmetic | images | total s | slowest image s | warm-up run s",
        rows,
    )


if __name__ == "__main__":
    raise SystemExit(main())
