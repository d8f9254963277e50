"""Figures for the metrics: every method's deletion/insertion curves in one plot, a sanity strip per method,
and the report's per-method bars. matplotlib's object API only (no pyplot), so threads may draw at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from explainers.faithfulness.deletion_insertion import Curves
from explainers.faithfulness.randomization import Cascade
from explainers.outputs import render


def curves_figure(curves: Mapping[str, Curves], titles: Mapping[str, str], title: str = "") -> Figure:
    """Deletion (left) and insertion (right) curves of all methods: lower left and higher right is more faithful."""
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    for name, curve in curves.items():
        label = titles.get(name, name)
        if curve.deletion is not None:
            axes[0].plot(curve.fractions, curve.deletion, marker=".", label=f"{label} (AUC {curve.deletion_auc:.3f})")
        if curve.insertion is not None:
            axes[1].plot(curve.fractions, curve.insertion, marker=".", label=f"{label} (AUC {curve.insertion_auc:.3f})")
    for axis, name in zip(axes, ("Deletion (lower is better)", "Insertion (higher is better)"), strict=True):
        axis.set_title(name)
        axis.set_xlabel("fraction of pixels perturbed")
        axis.set_xlim(0, 1)
        if axis.lines:
            axis.legend(fontsize=7)
    axes[0].set_ylabel("target probability")
    if title:
        figure.suptitle(title)
    return figure


def cascade_strip(original: np.ndarray, cascade: Cascade, title: str = "") -> Figure:
    """The original map, then the map after each randomisation stage, each with its Spearman and SSIM."""
    panels = [("original", original, "")] + [
        (f"{stage} random", saliency_map, f"rho {rho:+.2f}, SSIM {ssim:.2f}")
        for stage, saliency_map, rho, ssim in zip(
            cascade.stages, cascade.maps, cascade.spearman, cascade.ssim, strict=True
        )
    ]
    figure = Figure(figsize=(1.7 * len(panels), 2.1), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    for axis, (label, saliency_map, note) in zip(axes, panels, strict=True):
        axis.imshow(saliency_map, cmap="jet", vmin=0, vmax=1)
        axis.set_title(label, fontsize=8)
        axis.set_xlabel(note, fontsize=7)
        axis.set_xticks([])
        axis.set_yticks([])
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def metrics_bar_chart(
    table: Mapping[str, Mapping[str, Sequence[float]]], titles: Mapping[str, str], title: str = ""
) -> Figure:
    """One panel per metric: each method's mean over images with its standard deviation as an error bar."""
    metric_names = list(dict.fromkeys(key for per_method in table.values() for key in per_method))
    figure = Figure(figsize=(2.6 * max(len(metric_names), 1), 3.2), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, max(len(metric_names), 1)))
    methods = list(table)
    for axis, metric in zip(axes, metric_names, strict=False):
        values = [np.asarray(table[m].get(metric, []), dtype=float) for m in methods]
        means = [v.mean() if v.size else np.nan for v in values]
        spreads = [v.std() if v.size else 0.0 for v in values]
        axis.bar(range(len(methods)), means, yerr=spreads, capsize=3, color="tab:blue")
        axis.set_xticks(range(len(methods)), [titles.get(m, m) for m in methods], rotation=30, fontsize=7)
        axis.set_title(metric, fontsize=9)
    if title:
        figure.suptitle(title)
    return figure


def write_figures(
    directory: Path, results: Mapping[str, Any], maps: Mapping[str, np.ndarray], titles: Mapping[str, str]
) -> list[Path]:
    """DIR/metrics_curves.png (when deletion or insertion ran) and DIR/<method>_sanity.png (when sanity ran)."""
    written = []
    curves = {name: result.curves for name, result in results.items() if result.curves is not None}
    if curves:
        path = Path(directory) / "metrics_curves.png"
        path.write_bytes(render.figure_png(curves_figure(curves, titles)))
        written.append(path)
    for name, result in results.items():
        if result.cascade is not None:
            path = Path(directory) / f"{name}_sanity.png"
            strip = cascade_strip(maps[name], result.cascade, f"{titles.get(name, name)}: model randomisation")
            path.write_bytes(render.figure_png(strip))
            written.append(path)
    return written
