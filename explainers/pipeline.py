"""One call from an image to every chosen explanation, its masks, agreement and provenance."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explainers import agreement, render
from explainers.engine import precision
from explainers.engine.cancel import CancelToken
from explainers.engine.models import RANDOM_WEIGHTS_WARNING, LoadedModel, weights_label
from explainers.engine.provenance import library_versions
from explainers.errors import XaiLensError
from explainers.inputs.images import ImageSource, load_image
from explainers.masks import DEFAULT_RULE, masks_for, parse_rule
from explainers.methods import METHODS, Saliency, SaliencyMethod, Subject, by_cost, create_method, parse_methods

_VERSIONED = ("torch", "torchvision", "grad-cam", "lime", "numpy", "scikit-image")


@dataclass(frozen=True)
class Prediction:
    index: int
    label: str
    probability: float

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "probability": round(self.probability, 6)}


@dataclass
class Explanation:
    """Everything one image's explanation produced, ready to show, save or compare."""

    image_name: str
    model: LoadedModel
    crop: np.ndarray
    target: Prediction
    top5: list[Prediction]
    mask_rule: str
    saliency: dict[str, Saliency] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    latest: str | None = None  # the method that finished last (iter_explain yields after each)
    # method -> faithfulness/sanity results (explainers.faithfulness.MethodMetrics), filled only when asked for
    metrics: dict[str, Any] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)  # methods still to run, in run order (set at each yield)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def iou(self) -> dict[str, float]:
        return agreement.pairwise(self.masks, agreement.iou)

    @property
    def dice(self) -> dict[str, float]:
        return agreement.pairwise(self.masks, agreement.dice)

    def overlays(self) -> dict[str, np.ndarray]:
        return {name: render.overlay(self.crop, s.map) for name, s in self.saliency.items()}

    def caption(self, method: str) -> str:
        seconds = self.saliency[method].seconds
        return f"{METHODS[method].title} for '{self.target.label}' ({seconds:.2f} s), {render.CROP_CAPTION}"

    def summary(self) -> dict[str, Any]:
        """The summary.json contract (DESIGN.md), plus provenance."""
        summary = {
            "image": self.image_name,
            "model": self.model.name,
            "weights": weights_label(self.model.weights),
            "target": self.target.as_dict(),
            "top5": [p.as_dict() for p in self.top5],
            "timings_s": {name: round(s.seconds, 4) for name, s in self.saliency.items()},
            "iou": {pair: round(value, 6) for pair, value in self.iou.items()},
            "dice": {pair: round(value, 6) for pair, value in self.dice.items()},
            "mask_rule": self.mask_rule,
            "precision": precision.describe(self.model.device),
            "params": {name: _jsonable(s.params) for name, s in self.saliency.items()},
            "maps": f"float32 HxW in [0,1] {render.CROP_CAPTION} ({self.crop.shape[1]}x{self.crop.shape[0]})",
            "created": self.created,
            "versions": library_versions(_VERSIONED),
        }
        if self.metrics:
            summary["metrics"] = {name: result.summary() for name, result in self.metrics.items()}
        if self.model.is_random:
            summary["warning"] = RANDOM_WEIGHTS_WARNING
        return summary

    def save(self, out_dir: Path) -> Path:
        """Write DIR/<stem>/<method>.npy, _mask.png, _overlay.png, crop.png and summary.json."""
        directory = Path(out_dir) / Path(self.image_name).stem
        directory.mkdir(parents=True, exist_ok=True)
        render.save_png(self.crop, directory / "crop.png")
        for name, saliency in self.saliency.items():
            np.save(directory / f"{name}.npy", saliency.map.astype(np.float32))
            render.save_png(render.mask_image(self.masks[name]), directory / f"{name}_mask.png")
            render.save_png(render.overlay(self.crop, saliency.map), directory / f"{name}_overlay.png")
            if "segments" in saliency.extras:
                boundaries = render.superpixel_boundaries(self.crop, saliency.extras["segments"])
                render.save_png(boundaries, directory / f"{name}_superpixels.png")
        (directory / "summary.json").write_text(json.dumps(self.summary(), indent=2))
        return directory


def predict(model: LoadedModel, crop: np.ndarray) -> np.ndarray:
    """Class probabilities for one crop."""
    return model.probabilities(model.to_tensor(crop))[0].float().cpu().numpy()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities from one image's logits, by the same torch op as predict()."""
    return torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32))[None], dim=1)[0].numpy()


def top_predictions(model: LoadedModel, probabilities: np.ndarray, k: int = 5) -> list[Prediction]:
    order = np.argsort(probabilities)[::-1][:k]
    return [Prediction(int(i), model.categories[i], float(probabilities[i])) for i in order]


def prepare(
    image: ImageSource,
    model: LoadedModel,
    target: int | str | None = None,
    image_name: str | None = None,
    mask_rule: str = DEFAULT_RULE,
    classify_with: SaliencyMethod | None = None,
    cancel: CancelToken | None = None,
) -> Explanation:
    """Decode, crop and classify: an Explanation ready for the methods.

    With `classify_with`, a method that shares_prediction (Grad-CAM), that method runs here and its
    forward pass is the classification: the Explanation comes back with its map in, and the model
    ran once instead of twice.
    """
    parse_rule(mask_rule)
    crop = model.crop(load_image(image))
    index = None if target is None else model.class_index(target)
    first = None
    if classify_with is not None and classify_with.shares_prediction:
        subject = Subject(model, crop, index, cancel)
        subject.checkpoint()  # a request already stopped or past its deadline runs nothing
        first = classify_with.explain(subject)
        probabilities = softmax(first.extras["logits"])
        index = first.extras["target"]
    else:
        probabilities = predict(model, crop)
    top5 = top_predictions(model, probabilities)
    index = top5[0].index if index is None else index
    chosen = Prediction(index, model.categories[index], float(probabilities[index]))
    name = image_name or (Path(image).name if isinstance(image, (str, Path)) else "image")
    explanation = Explanation(name, model, crop, chosen, top5, str(mask_rule))
    if first is not None:
        explanation.saliency[first.method] = first
    return explanation


def iter_explain(
    image: ImageSource,
    model: LoadedModel,
    methods: str | Sequence[str] = ("gradcam", "scorecam", "ablationcam", "lime"),
    *,
    target: int | str | None = None,
    lime_params: Mapping[str, Any] | None = None,
    mask_rule: str = DEFAULT_RULE,
    target_layer: str | None = None,
    image_name: str | None = None,
    lime_progress: Callable[[int, int], None] | None = None,
    reference: bool = False,
    cancel: CancelToken | None = None,
) -> Iterator[Explanation]:
    """Yield the growing Explanation after each method, cheapest method first (for streaming UIs).

    `cancel` is checked before every method (and LIME's batches when passed via lime_progress), so a
    stopped or timed-out request frees its worker at the next boundary.
    """
    names = parse_methods(methods)
    rule = parse_rule(mask_rule)
    if rule.kind == "lime-top" and "lime" not in names:
        raise XaiLensError(f"The mask rule {rule} needs LIME among the methods; add lime or use top:0.10.")
    prepared = [
        (
            name,
            create_method(
                name, target_layer=target_layer, lime_params=lime_params, progress=lime_progress, reference=reference
            ),
        )
        for name in names
    ]
    methods_by_name = dict(prepared)
    order = by_cost(names, model.device)
    first = methods_by_name[order[0]]  # the cheapest; Grad-CAM's forward pass doubles as the prediction
    explanation = prepare(image, model, target, image_name, mask_rule, classify_with=first, cancel=cancel)
    subject = Subject(model, explanation.crop, explanation.target.index, cancel)
    if model.device.type != "cpu":  # on a CPU the background work would only compete with the model's threads
        for name in order:
            if name not in explanation.saliency:
                methods_by_name[name].prefetch(subject)
    for name in order:
        if name not in explanation.saliency:
            if cancel is not None:
                cancel.check()
            explanation.saliency[name] = methods_by_name[name].explain(subject)
        explanation.latest = name
        explanation.pending = [n for n in order if n not in explanation.saliency]
        ordered = {n: explanation.saliency[n] for n in names if n in explanation.saliency}
        explanation.saliency = ordered
        if rule.kind != "lime-top" or "lime" in ordered:  # lime-top masks wait for LIME's area
            explanation.masks = masks_for(ordered, mask_rule)
        yield explanation


def explain_image(
    image: ImageSource,
    model: LoadedModel,
    methods: str | Sequence[str] = ("gradcam", "scorecam", "ablationcam", "lime"),
    **options: Any,
) -> Explanation:
    """Run the methods on one image and return the finished Explanation (see iter_explain for options)."""
    *_, finished = iter_explain(image, model, methods, **options)
    return finished


def write_iou_csv(explanations: Sequence[Explanation], path: Path) -> None:
    """DIR/iou.csv: image, method_a, method_b, iou (one row per image and method pair)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "method_a", "method_b", "iou"])
        for explanation in explanations:
            for pair, value in explanation.iou.items():
                a, b = pair.split("|")
                writer.writerow([Path(explanation.image_name).stem, a, b, f"{value:.6f}"])


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
