"""Pictures of explanations: overlays, masks, superpixel boundaries, and report figures.

Uses matplotlib's object API (Figure + Agg canvas), never pyplot, so it is safe in the app's
worker threads. Every picture lives on the 224x224 crop the model saw.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from skimage.segmentation import mark_boundaries

CROP_CAPTION = "on the 224x224 crop the model saw"


def overlay(crop: np.ndarray, saliency_map: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Heatmap blended over the crop, uint8 RGB."""
    heat = colormaps[cmap](np.clip(saliency_map, 0, 1))[..., :3]
    blended = (1 - alpha) * crop.astype(np.float32) / 255.0 + alpha * heat
    return (np.clip(blended, 0, 1) * 255).round().astype(np.uint8)


def mask_image(mask: np.ndarray) -> np.ndarray:
    """A boolean mask as a black/white uint8 image."""
    return mask.astype(np.uint8) * 255


def mask_outline(crop: np.ndarray, mask: np.ndarray, colour: tuple[float, float, float] = (1, 1, 0)) -> np.ndarray:
    """The crop with the mask's outline drawn on it, uint8 RGB."""
    return (mark_boundaries(crop, mask.astype(int), color=colour) * 255).round().astype(np.uint8)


def superpixel_boundaries(crop: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """LIME's superpixels drawn over the crop, uint8 RGB."""
    return (mark_boundaries(crop, segments, color=(1, 1, 0)) * 255).round().astype(np.uint8)


def save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG")


def figure_png(figure: Figure) -> bytes:
    """Render a Figure to PNG bytes."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def figure_array(figure: Figure) -> np.ndarray:
    """Render a Figure to a uint8 RGB array (for image components)."""
    return np.asarray(Image.open(io.BytesIO(figure_png(figure))).convert("RGB"))


def overlay_grid(
    rows: Sequence[tuple[str, np.ndarray, dict[str, np.ndarray]]],
    method_titles: dict[str, str],
    title: str = "",
) -> Figure:
    """One row per image (its crop, then each method's overlay), one column per method."""
    methods = list(method_titles)
    figure = Figure(figsize=(2.1 * (len(methods) + 1), 2.1 * len(rows) + 0.5), layout="constrained")
    axes = figure.subplots(len(rows), len(methods) + 1, squeeze=False)
    for row, (name, crop, overlays) in enumerate(rows):
        cells = [("image", crop), *[(method_titles[m], overlays.get(m)) for m in methods]]
        for column, (label, picture) in enumerate(cells):
            axis = axes[row, column]
            axis.axis("off")
            if picture is not None:
                axis.imshow(picture)
            if row == 0:
                axis.set_title(label, fontsize=10)
        axes[row, 0].text(-8, 112, name, rotation=90, ha="right", va="center", fontsize=9)
    heading = title or f"Saliency overlays {CROP_CAPTION}"
    figure.suptitle(textwrap.fill(heading, width=max(32, 26 * (len(methods) + 1))), fontsize=11)
    return figure


def iou_heatmap(
    names: Sequence[str], values: np.ndarray, titles: dict[str, str] | None = None, title: str = ""
) -> Figure:
    """The pairwise IoU matrix as an annotated heatmap."""
    labels = [(titles or {}).get(n, n) for n in names]
    figure = Figure(figsize=(1.2 * len(names) + 2.2, 1.0 * len(names) + 1.6))
    axis = figure.subplots()
    image = axis.imshow(values, vmin=0, vmax=1, cmap="viridis")
    axis.set_xticks(range(len(names)), labels, rotation=30, ha="right")
    axis.set_yticks(range(len(names)), labels)
    for i in range(len(names)):
        for j in range(len(names)):
            colour = "black" if values[i, j] > 0.6 else "white"
            axis.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", color=colour, fontsize=9)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="IoU")
    axis.set_title(title or "Mask agreement (IoU)", fontsize=11)
    figure.tight_layout()
    return figure


def iou_bar_chart(
    per_image: dict[str, dict[str, float]], titles: dict[str, str] | None = None, title: str = ""
) -> Figure:
    """Grouped bars: for each image, the IoU of every method pair (pairs in the order methods ran)."""
    images = list(per_image)
    pairs = list(dict.fromkeys(pair for values in per_image.values() for pair in values))
    titles = titles or {}
    figure = Figure(figsize=(max(7.0, 0.9 * len(images) * max(1, len(pairs)) / 3 + 3), 4.2))
    axis = figure.subplots()
    width = 0.8 / max(1, len(pairs))
    positions = np.arange(len(images))
    for index, pair in enumerate(pairs):
        heights = [per_image[image].get(pair, np.nan) for image in images]
        axis.bar(
            positions + (index - (len(pairs) - 1) / 2) * width,
            heights,
            width,
            label=" vs ".join(titles.get(m, m) for m in pair.split("|")),
        )
    axis.set_xticks(positions, images, rotation=30, ha="right")
    axis.set_ylim(0, 1)
    axis.set_ylabel("IoU of masks")
    axis.legend(fontsize=8, ncols=2 if len(pairs) > 3 else 1)
    axis.set_title(title or "Agreement between methods, per image", fontsize=11)
    figure.tight_layout()
    return figure
