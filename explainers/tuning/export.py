"""What a tuning run leaves behind: the fronts (CSV and picture), the chosen settings, and a parameter file.

One setting per image is chosen from its front. By default it is the knee: the front point nearest the
ideal corner (the front's best IoU at its fastest time), IoU counted in its units and time in decades.
With `min_iou` it is the fastest front setting at or above that IoU. Settings marked unstable are passed
over while a stable one exists. explain_params.pkl holds the chosen settings for the presets that were
tuned and XAI Lens's defaults for the rest, in the assignment's format (save_lime_params).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from explainers.errors import XaiLensError
from explainers.inputs.param_file import PRESET_KEYS, default_lime_params, save_lime_params
from explainers.outputs.render import figure_png
from explainers.tuning.study import ImageResult, TrialRecord, TuningResult

PARETO_COLUMNS = ("image", "trial", "iou", "seconds", "stability", "params", "iou_spread", "chosen")


@dataclass(frozen=True)
class Choice:
    record: TrialRecord
    why: str  # how it was chosen, for the summary


def check_min_iou(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise XaiLensError(f"min_iou is an IoU from 0 to 1, got {value!r:.20}")
    return float(value)


def _candidates(image: ImageResult) -> tuple[list[TrialRecord], str]:
    stable = [r for r in image.front if r.number in image.stability and image.stability[r.number].stable]
    if stable:
        return stable, "stable front settings"
    return list(image.front), "front settings (none was stable across seeds)"


def knee(records: list[TrialRecord]) -> TrialRecord:
    """The record nearest the ideal corner (best IoU of these, at the fastest time of these).

    IoU counts in its own units and time in decades: a tenfold slowdown weighs as much as the whole
    IoU scale. (Scaling each to the front's own span instead would let a two-point front trade any IoU
    gap, however large, for any time gap, however small.) Ties go to the faster, then the earlier trial.
    """
    best_iou = max(r.iou for r in records)
    fastest = min(r.seconds for r in records)

    def distance(record: TrialRecord) -> tuple[float, float, int]:
        decades = math.log10(max(record.seconds, 1e-9) / max(fastest, 1e-9))
        return math.hypot(best_iou - record.iou, decades), record.seconds, record.number

    return min(records, key=distance)


def choose(image: ImageResult, min_iou: float | None = None) -> Choice | None:
    """The setting to export for one image, or None when no trial completed."""
    min_iou = check_min_iou(min_iou)
    candidates, pool = _candidates(image)
    if not candidates:
        return None
    if min_iou is None:
        return Choice(knee(candidates), f"knee of the {pool}")
    good = [r for r in candidates if r.iou >= min_iou]
    if good:
        return Choice(min(good, key=lambda r: (r.seconds, r.number)), f"fastest of the {pool} with IoU >= {min_iou:g}")
    best = max(candidates, key=lambda r: (r.iou, -r.seconds))
    return Choice(best, f"no {pool[:-1]} reached IoU {min_iou:g}: the highest IoU instead")


def choices(result: TuningResult, min_iou: float | None = None) -> dict[str, Choice]:
    chosen = {key: choose(image, min_iou) for key, image in result.images.items()}
    return {key: choice for key, choice in chosen.items() if choice is not None}


def _stability_cells(image: ImageResult, record: TrialRecord) -> tuple[str, str]:
    stability = image.stability.get(record.number)
    if stability is None:
        return "not measured", ""
    return stability.label(), f"{stability.spread:.4f}"


def write_pareto_csv(result: TuningResult, chosen: dict[str, Choice], path: Path) -> Path:
    """One row per front setting of each image, fastest first; params as JSON (explain_instance kwargs)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PARETO_COLUMNS)
        for key, image in result.images.items():
            for record in image.front:
                label, spread = _stability_cells(image, record)
                is_chosen = key in chosen and chosen[key].record.number == record.number
                params = json.dumps(record.entry, sort_keys=True)
                writer.writerow(
                    [key, record.number, f"{record.iou:.6f}", f"{record.seconds:.4f}", label, params, spread, is_chosen]
                )
    return path


def write_trials_csv(result: TuningResult, path: Path) -> Path:
    """Every trial, failed ones with the reason: the cloud the fronts were taken from."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "trial", "iou", "seconds", "on_front", "error", "params"])
        for key, image in result.images.items():
            on_front = {r.number for r in image.front}
            rows = [
                (r.number, f"{r.iou:.6f}", f"{r.seconds:.4f}", r.number in on_front, "", r.entry) for r in image.trials
            ]
            rows += [(f.number, "", "", False, f.error, f.entry) for f in image.failed]
            for number, iou, seconds, front, error, entry in sorted(rows, key=lambda row: row[0]):
                writer.writerow([key, number, iou, seconds, front, error, json.dumps(entry, sort_keys=True)])
    return path


def pareto_figure(result: TuningResult, chosen: dict[str, Choice]) -> Figure:
    """One panel per image: every trial in grey, the front as a line, unstable settings hollow, the choice starred."""
    keys = list(result.images) or ["(no image)"]
    columns = min(5, len(keys))
    rows = math.ceil(len(keys) / columns)
    figure = Figure(figsize=(3.4 * columns, 3.0 * rows + 0.6))
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for axis, key in zip(axes, keys, strict=False):
        image = result.images.get(key)
        axis.set_title(key, fontsize=9)
        axis.set_xlabel("LIME seconds (log)", fontsize=8)
        axis.set_ylabel(f"IoU with {result.reference}", fontsize=8)
        axis.set_ylim(-0.02, 1.02)
        axis.tick_params(labelsize=7)
        if image is None or not image.trials:
            axis.text(0.5, 0.5, "no completed trial", ha="center", va="center", transform=axis.transAxes)
            continue
        axis.set_xscale("log")
        # Fronts often span less than a decade, where matplotlib labels minor ticks too and the labels collide:
        # label only 1-2-5 steps, written plainly.
        axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _position: f"{value:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.scatter([r.seconds for r in image.trials], [r.iou for r in image.trials], s=14, color="0.7", label="trial")
        front = image.front
        axis.plot(
            [r.seconds for r in front], [r.iou for r in front], "-", color="tab:blue", lw=1.2, drawstyle="steps-post"
        )
        for record in front:
            stability = image.stability.get(record.number)
            hollow = stability is not None and not stability.stable
            axis.scatter(
                record.seconds, record.iou, s=36, zorder=3, edgecolors="tab:blue",
                facecolors="none" if hollow else "tab:blue",
            )  # fmt: skip
        if key in chosen:
            pick = chosen[key].record
            axis.scatter(pick.seconds, pick.iou, marker="*", s=180, color="tab:orange", zorder=4, label="chosen")
    for axis in axes[len(keys) :]:
        axis.set_visible(False)
    figure.suptitle(
        f"LIME settings per image: front in blue (hollow = unstable across seeds), chosen starred; "
        f"reference {result.reference}, mask {result.mask_rule}",
        fontsize=9,
    )
    figure.tight_layout()
    return figure


def parameter_file_entries(chosen: dict[str, Choice]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """All ten preset entries (tuned where chosen, XAI Lens's defaults elsewhere) and the keys left at defaults."""
    entries = default_lime_params()
    defaults_kept = [key for key in PRESET_KEYS if key not in chosen]
    for key, choice in chosen.items():
        if key in entries:
            entries[key] = dict(choice.record.entry)
    return entries, defaults_kept


def _settings_text(entry: dict[str, Any]) -> str:
    segmentation = dict(entry.get("segmentation_fn") or {})
    name = segmentation.pop("name", "quickshift (lime's default)")
    shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in segmentation.items())
    regressor = entry.get("model_regressor") or {}
    alpha = regressor.get("alpha")
    parts = [
        f"{name}({shown})",
        f"num_samples={entry.get('num_samples')}",
        f"num_features={entry.get('num_features')}",
        f"hide_color={entry.get('hide_color')}",
        f"distance={entry.get('distance_metric')}",
        f"ridge alpha={alpha:.3g}" if isinstance(alpha, float) else f"regressor={regressor.get('name', 'default')}",
        f"top_labels={entry.get('top_labels')}",
        f"batch_size={entry.get('batch_size')}",
    ]
    return "; ".join(parts)


def summary_markdown(result: TuningResult, chosen: dict[str, Choice], defaults_kept: list[str]) -> str:
    stopped = {None: "finished", "budget": "stopped by the budget", "cancelled": "stopped on request"}[result.stopped]
    lines = [
        "# LIME tuning summary",
        "",
        f"- Reference: **{result.reference}**: {result.reference_description}.",
        f"- IoU of each LIME mask with it under the mask rule `{result.mask_rule}`; seconds are LIME's wall time "
        f"({'lime' if result.implementation == 'lime' else 'XAI Lens batched'} implementation).",
        f"- Model {result.model}; seed {result.seed}; up to {result.trials} trials per image; "
        f"budget {result.budget_s:g} s; run {stopped} after {result.elapsed_s:.0f} s.",
        "- Stability: each front setting re-run with other explainer seeds; IoU spread (max - min) above "
        "0.1 is marked unstable.",
        "",
        "| image | class | trial | IoU | seconds | stability (IoU spread) | chosen as | settings |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for key, image in result.images.items():
        choice = chosen.get(key)
        if choice is None:
            lines.append(f"| {key} | {image.target} | - | - | - | - | no completed trial | XAI Lens defaults |")
            continue
        record = choice.record
        label, spread = _stability_cells(image, record)
        lines.append(
            f"| {key} | {image.target} | {record.number} | {record.iou:.3f} | {record.seconds:.2f} | "
            f"{label} ({spread or '-'}) | {choice.why} | {_settings_text(record.entry)} |"
        )
    lines += [
        "",
        "explain_params.pkl holds the chosen settings in the assignment's format (ten preset keys, explain_instance "
        "keyword arguments); `python -m explainers params check explain_params.pkl` validates it.",
    ]
    if defaults_kept:
        lines += ["", f"explain_params.pkl keeps XAI Lens's default settings for: {', '.join(defaults_kept)}."]
    outside = [key for key in chosen if key not in PRESET_KEYS]
    if outside:
        lines += ["", f"Not preset keys, so not in explain_params.pkl: {', '.join(outside)}."]
    lines += [
        "",
        "How to read the front (pareto.png, pareto.csv): see the README's 'LIME tuner' section. Made by "
        "`python -m explainers tune-lime` (the same as `python -m explainers.tuning`).",
        "",
    ]
    return "\n".join(lines)


def export(result: TuningResult, out_dir: str | Path, min_iou: float | None = None) -> dict[str, Path]:
    """Write pareto.csv, trials.csv, pareto.png, explain_params.pkl and summary.md into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chosen = choices(result, min_iou)
    entries, defaults_kept = parameter_file_entries(chosen)
    paths = {
        "pareto.csv": write_pareto_csv(result, chosen, out / "pareto.csv"),
        "trials.csv": write_trials_csv(result, out / "trials.csv"),
        "explain_params.pkl": save_lime_params(entries, out / "explain_params.pkl"),
    }
    (out / "pareto.png").write_bytes(figure_png(pareto_figure(result, chosen)))
    (out / "summary.md").write_text(summary_markdown(result, chosen, defaults_kept), encoding="utf-8")
    return paths | {"pareto.png": out / "pareto.png", "summary.md": out / "summary.md"}
