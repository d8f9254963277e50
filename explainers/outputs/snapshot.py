"""A plain-data picture of an Explanation, for user interfaces.

An Explanation holds the live model (with a lock), so it cannot cross a process boundary. The app's
GPU functions (ZeroGPU runs them in a forked worker) return this instead: numpy arrays, strings and
numbers only, everything a UI needs to show one explanation, ready to pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from explainers.comparison import agreement
from explainers.methods import METHODS
from explainers.outputs import render
from explainers.pipeline import Explanation


@dataclass
class ExplanationView:
    image_name: str
    model: str
    model_title: str
    is_random: bool
    crop: np.ndarray
    target: dict[str, Any]
    top5: list[dict[str, Any]]
    mask_rule: str
    methods: list[str]
    titles: dict[str, str]
    captions: dict[str, str]
    seconds: dict[str, float]
    overlays: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    iou_names: list[str]
    iou_values: np.ndarray
    superpixels: np.ndarray | None
    latest: str | None
    pending: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return not self.pending

    def side_by_side_figure(self) -> Figure:
        """Row 1: the crop and every finished overlay, titled with each method's time.
        Row 2: each method's mask (the pixels IoU compares) outlined on the crop."""
        titles = {m: f"{self.titles[m]} ({self.seconds[m]:.2f} s)" for m in self.methods}
        title = f"{self.model_title}: '{self.target['label']}', maps {render.CROP_CAPTION}"
        rows = [("overlay", self.crop, self.overlays)]
        if self.masks:
            outlines = {m: render.mask_outline(self.crop, mask) for m, mask in self.masks.items()}
            rows.append((f"mask ({self.mask_rule})", self.crop, outlines))
        return render.overlay_grid(rows, titles, title=title)

    def iou_figure(self) -> Figure | None:
        """The IoU matrix heatmap, or None while fewer than two masks exist."""
        if len(self.iou_names) < 2:
            return None
        return render.iou_heatmap(self.iou_names, self.iou_values, self.titles)


def snapshot(explanation: Explanation, pending: Sequence[str] | None = None) -> ExplanationView:
    """Freeze the explanation as it stands now; the methods still to come are the pipeline's own
    `explanation.pending` unless `pending` overrides them."""
    names, values = agreement.matrix(explanation.masks) if explanation.masks else ([], np.zeros((0, 0)))
    superpixels = None
    for saliency in explanation.saliency.values():
        if "segments" in saliency.extras:
            superpixels = render.superpixel_boundaries(explanation.crop, saliency.extras["segments"])
    return ExplanationView(
        image_name=explanation.image_name,
        model=explanation.model.name,
        model_title=explanation.model.spec.title,
        is_random=explanation.model.is_random,
        crop=explanation.crop,
        target=explanation.target.as_dict(),
        top5=[p.as_dict() for p in explanation.top5],
        mask_rule=explanation.mask_rule,
        methods=list(explanation.saliency),
        titles={name: METHODS[name].title for name in explanation.saliency},
        captions={name: explanation.caption(name) for name in explanation.saliency},
        seconds={name: s.seconds for name, s in explanation.saliency.items()},
        overlays=explanation.overlays(),
        masks={name: mask.copy() for name, mask in explanation.masks.items()},
        iou_names=names,
        iou_values=values,
        superpixels=superpixels,
        latest=explanation.latest,
        pending=list(explanation.pending if pending is None else pending),
        summary=explanation.summary(),
    )
