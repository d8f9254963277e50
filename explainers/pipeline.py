"""One call from an image to every chosen explanation, its masks, agreement and provenance."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explainers.comparison import agreement
from explainers.comparison.masks import DEFAULT_RULE, masks_for, parse_rule
from explainers.engine.cancel import CancelToken
from explainers.engine.models import LoadedModel
from explainers.errors import XaiLensError
from explainers.inputs.images import ImageSource, load_image
from explainers.methods import METHODS, Saliency, SaliencyMethod, Subject, by_cost, create_method, parse_methods
from explainers.outputs import render


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
        """The summary.json contract (explainers.outputs.summary)."""
        from explainers.outputs.summary import summary_of

        return summary_of(self)

    def save(self, out_dir: Path) -> Path:
        """Write this image's files (explainers.outputs.summary.save_explanation); returns its folder."""
        from explainers.outputs.summary import save_explanation

        return save_explanation(self, out_dir)


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
        subject.raise_if_cancelled()  # a request already stopped or past its deadline runs nothing
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

    `cancel` is checked before every method, and inside each between batches (it rides in the Subject every
    method receives), so a stopped or timed-out request frees its worker at the next boundary.
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
