"""Pictures of a concept attribution: the unit bar chart, the strip of unit maps, the by-concept summary.

matplotlib's object API only (no pyplot), like explainers.outputs.render, so the app's worker threads can draw.
Positive evidence is drawn in red, negative in blue, in every picture.
"""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure

from explainers.concepts.attribution import ConceptAttribution
from explainers.outputs.render import overlay

POSITIVE_COLOUR = "#c44e52"
NEGATIVE_COLOUR = "#4c72b0"
OTHER_LABELS = "other labels"
SUMMARY_TOP = 8


def _headline(result: ConceptAttribution) -> str:
    how = "exact" if result.exact else "first order, not exact"
    return (
        f"'{result.target_label}': logit {result.logit:.3g} = {result.total_contribution:.3g} from {result.layer} "
        f"units + bias {result.bias:.3g} ({how})"
    )


def draw_contributions(axis, result: ConceptAttribution) -> None:
    """Bars of the listed units' contributions, strongest positive at the top, coloured by sign."""
    units = result.units[::-1]
    values = [unit.contribution for unit in units]
    axis.barh(
        range(len(units)), values, color=[POSITIVE_COLOUR if v > 0 else NEGATIVE_COLOUR for v in values], height=0.7
    )
    axis.set_yticks(range(len(units)), [unit.caption for unit in units], fontsize=8)
    axis.axvline(0, color="black", linewidth=0.6)
    axis.set_xlabel("contribution to the target logit", fontsize=9)
    axis.set_title(f"Top {result.layer} units", fontsize=10)
    if not units:
        axis.text(0.5, 0.5, "every unit contributes 0", ha="center", va="center", transform=axis.transAxes)


def contribution_chart(result: ConceptAttribution) -> Figure:
    """The bar chart alone, 'unit 1234: fur (0.21)' per bar (for the app's panel)."""
    figure = Figure(figsize=(6.4, 0.3 * max(len(result.units), 3) + 1.4))
    draw_contributions(figure.subplots(), result)
    figure.suptitle(textwrap.fill(_headline(result), 90), fontsize=9)
    figure.tight_layout()
    return figure


def summary_items(
    result: ConceptAttribution, top: int = SUMMARY_TOP, negative: bool = False
) -> list[tuple[str, float]]:
    """The `top` labels by share of the positive (or negative) evidence, the rest summed as 'other labels'."""
    shares = list((result.by_concept_negative if negative else result.by_concept).items())
    head, rest = shares[:top], shares[top:]
    return [*head, (OTHER_LABELS, sum(share for _, share in rest))] if rest else head


def summary_lines(result: ConceptAttribution, top: int = SUMMARY_TOP) -> list[str]:
    """'fur: 31% of the positive evidence' lines, for text outputs and the app's markdown."""
    lines = [f"{name}: {share:.0%} of the positive evidence" for name, share in summary_items(result, top)]
    return lines or ["no unit gives positive evidence for this class"]


def draw_summary(axis, result: ConceptAttribution, top: int = SUMMARY_TOP) -> None:
    items = summary_items(result, top)[::-1]
    axis.barh(range(len(items)), [share * 100 for _, share in items], color=POSITIVE_COLOUR, height=0.7)
    axis.set_yticks(range(len(items)), [name for name, _ in items], fontsize=8)
    axis.set_xlabel("% of the positive evidence", fontsize=9)
    axis.set_title(f"By concept (labels below similarity {result.min_similarity:g}: unlabelled)", fontsize=9)
    if not items:
        axis.text(0.5, 0.5, "no positive evidence", ha="center", va="center", transform=axis.transAxes)


def concept_summary(result: ConceptAttribution, top: int = SUMMARY_TOP) -> Figure:
    figure = Figure(figsize=(5.2, 0.3 * max(min(len(result.by_concept), top + 1), 3) + 1.2))
    draw_summary(figure.subplots(), result, top)
    figure.tight_layout()
    return figure


def unit_overlays(crop: np.ndarray, result: ConceptAttribution) -> list[np.ndarray]:
    """Each listed unit's activation on the crop, scaled by that unit's own peak (shape, not strength)."""
    images = []
    for unit_map in result.maps:
        peak = float(unit_map.max())
        images.append(overlay(crop, unit_map / peak if peak > 0 else np.zeros_like(unit_map)))
    return images


def draw_strip(axes, crop: np.ndarray, result: ConceptAttribution) -> None:
    for axis, unit, image in zip(axes, result.units, unit_overlays(crop, result), strict=False):
        axis.imshow(image)
        axis.set_title(textwrap.fill(unit.caption, 22), fontsize=7, color=_sign_colour(unit.contribution))
    for axis in axes:
        axis.axis("off")


def unit_strip(crop: np.ndarray, result: ConceptAttribution) -> Figure:
    """The listed units' maps side by side, captioned in their bar's colour."""
    count = max(len(result.units), 1)
    figure = Figure(figsize=(1.6 * count, 2.0))
    draw_strip(np.atleast_1d(figure.subplots(1, count)), crop, result)
    figure.tight_layout()
    return figure


def _sign_colour(value: float) -> str:
    return POSITIVE_COLOUR if value > 0 else NEGATIVE_COLOUR


def concepts_figure(crop: np.ndarray, result: ConceptAttribution) -> Figure:
    """Everything in one picture (concepts.png): warnings, bar chart, by-concept summary, unit maps."""
    count = max(len(result.units), 2)
    width = max(11.0, 1.6 * count)
    strip_height = width / count + 0.4
    bars_height = max(len(result.units), 4) * 0.3 + 0.6
    figure = Figure(figsize=(width, bars_height + strip_height + 1.6))
    grid = figure.add_gridspec(2, count, height_ratios=[bars_height, strip_height])
    draw_contributions(figure.add_subplot(grid[0, : count // 2]), result)
    draw_summary(figure.add_subplot(grid[0, count // 2 :]), result)
    draw_strip([figure.add_subplot(grid[1, i]) for i in range(count)], crop, result)
    title = _headline(result)
    if result.warnings:
        title = "\n".join(textwrap.fill(w, 150) for w in result.warnings) + "\n" + title
    figure.suptitle(title, fontsize=8, color="#b00000" if result.warnings else "black")
    figure.tight_layout()
    return figure
