"""The output contract of one explanation and of a run: summary.json, the per-method files, and iou.csv.

Other tools read these files (README, "Output contract"), so their names and keys change only together with
the README and the tests. The pipeline computes; this module decides what lands on disk and how.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from explainers.engine import precision
from explainers.engine.models import RANDOM_WEIGHTS_WARNING, weights_label
from explainers.engine.provenance import library_versions
from explainers.outputs import render

if TYPE_CHECKING:
    from explainers.concepts.attribution import ConceptAttribution
    from explainers.pipeline import Explanation

VERSIONED = ("torch", "torchvision", "grad-cam", "lime", "numpy", "scikit-image")


def summary_of(explanation: Explanation) -> dict[str, Any]:
    """The summary.json contract (README), plus provenance."""
    summary = {
        "image": explanation.image_name,
        "model": explanation.model.name,
        "weights": weights_label(explanation.model.weights),
        "target": explanation.target.as_dict(),
        "top5": [p.as_dict() for p in explanation.top5],
        "timings_s": {name: round(s.seconds, 4) for name, s in explanation.saliency.items()},
        "iou": {pair: round(value, 6) for pair, value in explanation.iou.items()},
        "dice": {pair: round(value, 6) for pair, value in explanation.dice.items()},
        "mask_rule": explanation.mask_rule,
        "precision": precision.describe(explanation.model.device),
        "params": {name: jsonable(s.params) for name, s in explanation.saliency.items()},
        "maps": f"float32 HxW in [0,1] {render.CROP_CAPTION} ({explanation.crop.shape[1]}x{explanation.crop.shape[0]})",
        "created": explanation.created,
        "versions": library_versions(VERSIONED),
    }
    if explanation.metrics:
        summary["metrics"] = {name: result.summary() for name, result in explanation.metrics.items()}
    if explanation.model.is_random:
        summary["warning"] = RANDOM_WEIGHTS_WARNING
    return summary


def save_explanation(explanation: Explanation, out_dir: Path) -> Path:
    """Write DIR/<stem>/<method>.npy, _mask.png, _overlay.png, crop.png and summary.json."""
    directory = Path(out_dir) / Path(explanation.image_name).stem
    directory.mkdir(parents=True, exist_ok=True)
    render.save_png(explanation.crop, directory / "crop.png")
    for name, saliency in explanation.saliency.items():
        np.save(directory / f"{name}.npy", saliency.map.astype(np.float32))
        render.save_png(render.mask_image(explanation.masks[name]), directory / f"{name}_mask.png")
        render.save_png(render.overlay(explanation.crop, saliency.map), directory / f"{name}_overlay.png")
        if "segments" in saliency.extras:
            boundaries = render.superpixel_boundaries(explanation.crop, saliency.extras["segments"])
            render.save_png(boundaries, directory / f"{name}_superpixels.png")
    (directory / "summary.json").write_text(json.dumps(summary_of(explanation), indent=2))
    return directory


def write_concepts(
    result: ConceptAttribution, crop: np.ndarray, directory: Path, picture: bool = True
) -> dict[str, Path]:
    """DIR/<stem>/concepts.json (ConceptAttribution.to_json: the README's concepts contract) and concepts.png."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = {"concepts.json": directory / "concepts.json"}
    files["concepts.json"].write_text(json.dumps(jsonable(result.to_json()), indent=2))
    if picture:
        from explainers.concepts.render import concepts_figure

        files["concepts.png"] = directory / "concepts.png"
        files["concepts.png"].write_bytes(render.figure_png(concepts_figure(crop, result)))
    return files


def write_iou_csv(explanations: Sequence[Explanation], path: Path) -> None:
    """DIR/iou.csv: image, method_a, method_b, iou (one row per image and method pair)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "method_a", "method_b", "iou"])
        for explanation in explanations:
            for pair, value in explanation.iou.items():
                a, b = pair.split("|")
                writer.writerow([Path(explanation.image_name).stem, a, b, f"{value:.6f}"])


def jsonable(value: Any) -> Any:
    """Parameters as JSON can hold them: numpy numbers as Python numbers, anything else as its repr."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
