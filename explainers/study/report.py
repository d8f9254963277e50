"""study/report.md: the assignment's question answered over a whole data set, with how sure the answer is.

The question is whether CAM and LIME agree more on simple images than on complex ones. Over
hundreds of images the answer is a correlation, not an anecdote: Spearman's rho between each image
measure and the IoU, with a bootstrap 95% interval; and the mean IoU of the simpler half against the
more complex half, with the interval of their difference. An interval that spans zero is reported
as "no clear difference", whatever the sign of the point estimate.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import bootstrap, rankdata, spearmanr

from explainers.engine.models import RANDOM_WEIGHTS_WARNING
from explainers.methods import METHODS
from explainers.outputs.render import figure_png
from explainers.study.measures import MEASURES
from explainers.study.results import iou_column, pair_keys

REPORT_FILE = "report.md"
PRIMARY_MEASURE = "edge_density"  # the ten-preset report's measure of clutter, so both reports mean the same
CONFIDENCE = 0.95
RESAMPLES = 2000
BOOTSTRAP_SEED = 0
EXTREMES = 10
MIN_IMAGES = 5
LIME = "lime"  # every other registered method is a CAM


@dataclass(frozen=True)
class Estimate:
    """A statistic with its bootstrap interval (nan when there were too few images)."""

    value: float
    low: float
    high: float
    n: int

    @property
    def has_interval(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))

    def text(self, digits: int = 2) -> str:
        if np.isnan(self.value):
            return f"n/a (n = {self.n})"
        if not self.has_interval:
            return f"{self.value:+.{digits}f} [no interval: too few distinct values] (n = {self.n})"
        return f"{self.value:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}] (n = {self.n})"


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, **options) -> tuple[float, float]:
    """scipy's percentile bootstrap interval; nan when resamples degenerate (tiny or constant samples)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the degenerate case is reported in the text as "no interval"
        result = bootstrap(
            samples,
            statistic,
            vectorized=True,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=np.random.default_rng(BOOTSTRAP_SEED),
            **options,
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _spearman_along(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's rho of paired samples along `axis` (vectorised for scipy's bootstrap)."""
    rx, ry = rankdata(x, axis=axis), rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    denominator = np.sqrt((rx**2).sum(axis=axis) * (ry**2).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=axis) / denominator


def _finite_pairs(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Both as float arrays, keeping only the images where both values are finite."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def spearman_ci(measure: Sequence[float], iou: Sequence[float]) -> Estimate:
    """Spearman's rho (scipy's) with a percentile bootstrap interval over images (paired resampling)."""
    x, y = _finite_pairs(measure, iou)
    if len(x) < MIN_IMAGES or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), len(x))
    rho = float(spearmanr(x, y).statistic)
    low, high = _bootstrap((x, y), _spearman_along, paired=True)
    return Estimate(rho, low, high, len(x))


def half_difference(measure: Sequence[float], iou: Sequence[float]) -> tuple[float, float, Estimate]:
    """Mean IoU of the simpler half (measure below its median) and of the rest, and their difference's interval."""
    x, y = _finite_pairs(measure, iou)
    simple = x < np.median(x) if len(x) else np.zeros(0, dtype=bool)
    if len(x) < MIN_IMAGES or simple.all() or not simple.any():
        return float("nan"), float("nan"), Estimate(float("nan"), float("nan"), float("nan"), len(x))
    simple_iou, complex_iou = y[simple], y[~simple]

    def difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return a.mean(axis=axis) - b.mean(axis=axis)

    low, high = _bootstrap((simple_iou, complex_iou), difference)
    value = float(simple_iou.mean() - complex_iou.mean())
    return float(simple_iou.mean()), float(complex_iou.mean()), Estimate(value, low, high, len(x))


def focus_pairs(methods: Sequence[str]) -> tuple[list[tuple[str, str]], str]:
    """The CAM-vs-LIME pairs when LIME ran (the assignment's question), else every pair; and how to name them."""
    pairs = pair_keys(methods)
    cam_lime = [(a, b) for a, b in pairs if (a == LIME) != (b == LIME)]
    if cam_lime:
        return cam_lime, "CAM vs LIME"
    return pairs, "every pair of methods (LIME was not run, so CAM vs LIME cannot be answered here)"


def preset_ids(ids: Sequence[str]) -> dict[str, str]:
    """Image id -> preset key, for the ten presets found among the study's ids (by their file stems)."""
    from explainers.inputs.presets import PRESETS

    stems = {Path(preset.filename).stem: preset.key for preset in PRESETS}
    found = {}
    for image_id in ids:
        for stem, key in stems.items():
            if image_id == stem or image_id.endswith(f"__{stem}"):
                found[image_id] = key
    return found


def _title(method: str) -> str:
    return METHODS[method].title if method in METHODS else method


def _pair_title(pair: tuple[str, str]) -> str:
    return f"{_title(pair[0])} vs {_title(pair[1])}"


def distribution_figure(frame: pd.DataFrame, pairs: Sequence[tuple[str, str]], presets: dict[str, str]) -> Figure:
    """IoU distribution per pair (box and points), the presets marked and named."""
    figure = Figure(figsize=(8, 1.2 + 0.9 * len(pairs)))
    axes = figure.add_subplot()
    data = [frame[iou_column(*pair)].dropna().to_numpy() for pair in pairs]
    axes.boxplot(data, orientation="horizontal", widths=0.6, showfliers=False)
    rng = np.random.default_rng(0)
    for row, values in enumerate(data, start=1):
        axes.scatter(values, row + rng.uniform(-0.2, 0.2, len(values)), s=4, alpha=0.3, color="tab:blue")
    for row, pair in enumerate(pairs, start=1):
        for image_id, key in presets.items():
            value = frame.loc[frame["id"] == image_id, iou_column(*pair)]
            if len(value) and np.isfinite(value.iloc[0]):
                axes.scatter([value.iloc[0]], [row], s=40, color="tab:red", zorder=3)
                axes.annotate(key, (value.iloc[0], row), textcoords="offset points", xytext=(2, 6), fontsize=7)
    axes.set_yticks(range(1, len(pairs) + 1), [_pair_title(pair) for pair in pairs])
    axes.set_xlabel("IoU of the masks")
    axes.set_xlim(0, 1)
    axes.set_title(f"IoU per pair over {len(frame)} images (presets in red)")
    return figure


def measure_figure(
    frame: pd.DataFrame, measure: str, focus: str, estimate: Estimate, presets: dict[str, str], label: str
) -> Figure:
    """The focus IoU against one image measure, with rho and its interval in the title."""
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    axes.scatter(frame[measure], frame[focus], s=6, alpha=0.4)
    for image_id, key in presets.items():
        row = frame[frame["id"] == image_id]
        if len(row):
            axes.scatter(row[measure], row[focus], s=40, color="tab:red", zorder=3)
            axes.annotate(
                key, (row[measure].iloc[0], row[focus].iloc[0]), fontsize=7, xytext=(2, 4), textcoords="offset points"
            )
    axes.set_xlabel(f"{measure}: {MEASURES[measure]}", fontsize=8)
    axes.set_ylabel(f"mean IoU, {label}", fontsize=8)
    axes.set_title(f"Spearman rho {estimate.text()}", fontsize=9)
    return figure


def class_extremes(frame: pd.DataFrame, focus: str, count: int = EXTREMES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Classes with the highest and lowest mean focus IoU (true class when known, else the predicted one)."""
    classes = frame["true_class"].fillna(frame["target_label"])
    grouped = frame.assign(cls=classes).groupby("cls")[focus].agg(["mean", "count"]).dropna()
    ordered = grouped.sort_values("mean", ascending=False)
    count = min(count, max(1, len(ordered) // 2))  # few classes: the two columns split them, never repeat one
    return ordered.head(count), ordered.tail(count).iloc[::-1]


def _extremes_table(top: pd.DataFrame, bottom: pd.DataFrame) -> str:
    lines = ["| most agreement | IoU | images | least agreement | IoU | images |", "|---|---|---|---|---|---|"]
    for (name_a, a), (name_b, b) in zip(top.iterrows(), bottom.iterrows(), strict=False):
        cells = [name_a, f"{a['mean']:.3f}", f"{a['count']:.0f}", name_b, f"{b['mean']:.3f}", f"{b['count']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(estimate: Estimate, simple: float, complex_: float, difference: Estimate, label: str) -> str:
    """The answer in words, from the primary measure's rho and the halves' difference."""
    if np.isnan(estimate.value) or not estimate.has_interval:
        return (
            f"Too few usable images ({estimate.n}) to answer with any confidence (rho {estimate.text()}); "
            "run the study over more images."
        )
    if estimate.high < 0:
        answer = f"Yes: {label} agree more on simple images; agreement falls as clutter grows"
    elif estimate.low > 0:
        answer = f"No, the opposite: {label} agree more on cluttered images"
    else:
        answer = f"No clear difference: the interval of the correlation between clutter and {label} IoU spans zero"
    halves = (
        f"The simpler half (edge density below the median) has mean IoU {simple:.3f}, the more cluttered half "
        f"{complex_:.3f}: difference {difference.text(3)}."
        if not np.isnan(difference.value)
        else ""
    )
    return (
        f"**{answer}.** Spearman's rho between edge density and IoU is {estimate.text()} "
        f"(95% bootstrap interval, {RESAMPLES} resamples of the images). {halves}"
    )


def write_study_report(
    table: pd.DataFrame, methods: Sequence[str], out_dir: Path, *, model: str = "", weights: str = ""
) -> Path:
    """report.md and its figures in `out_dir` from the results table (errors are counted, then left out)."""
    out_dir = Path(out_dir)
    frame = table[table["error"].isna()].copy()
    failed = table[table["error"].notna()]
    pairs, label = focus_pairs(list(methods))
    focus = "focus_iou"
    frame[focus] = frame[[iou_column(*pair) for pair in pairs]].mean(axis=1) if pairs else np.nan
    presets = preset_ids(frame["id"].tolist())
    sections = [f"# Agreement study: {model} ({weights} weights)"]
    if weights == "random":
        sections.append(f"**{RANDOM_WEIGHTS_WARNING}**")
    sections.append(
        f"{len(table)} images: {len(frame)} explained, {len(failed)} failed (their one-line errors are in "
        f"results.parquet's `error` column). Methods: {', '.join(_title(m) for m in methods)}. "
        f"The question is asked of {label}: each image's IoU is the mean over {len(pairs)} pair(s)."
    )
    if not pairs:
        sections.append("Only one method ran: there is no pair to compare.")
        return _write(out_dir, sections)
    estimates = {measure: spearman_ci(frame[measure], frame[focus]) for measure in MEASURES}
    simple, complex_, difference = half_difference(frame[PRIMARY_MEASURE], frame[focus])
    sections.append("## Do CAM and LIME agree more on simple images than on complex ones?")
    sections.append(verdict(estimates[PRIMARY_MEASURE], simple, complex_, difference, label))
    lines = ["| measure | what it is | Spearman rho [95% interval] |", "|---|---|---|"]
    lines += [f"| {name} | {MEASURES[name]} | {estimates[name].text()} |" for name in MEASURES]
    sections.append("\n".join(lines))
    sections.append(
        "An interval that excludes zero is a finding; one that spans zero means these images cannot tell "
        "a trend from chance. Correlation over images is not causation: clutter, colour and object size move together."
    )
    all_pairs = pair_keys(list(methods))
    (out_dir / "iou_distributions.png").write_bytes(figure_png(distribution_figure(frame, all_pairs, presets)))
    sections.append("## IoU per pair\n\n![IoU per pair](iou_distributions.png)")
    pair_lines = ["| pair | mean | median | 10th-90th percentile |", "|---|---|---|---|"]
    for pair in all_pairs:
        values = frame[iou_column(*pair)].dropna()
        if len(values):
            p10, p90 = np.percentile(values, [10, 90])
            cells = [_pair_title(pair), f"{values.mean():.3f}", f"{values.median():.3f}", f"{p10:.3f}-{p90:.3f}"]
            pair_lines.append("| " + " | ".join(cells) + " |")
    sections.append("\n".join(pair_lines))
    measure_images = []
    for measure in MEASURES:
        name = f"iou_vs_{measure}.png"
        figure = measure_figure(frame, measure, focus, estimates[measure], presets, label)
        (out_dir / name).write_bytes(figure_png(figure))
        measure_images.append(f"![IoU vs {measure}]({name})")
    sections.append("## IoU against each image measure\n\n" + "\n".join(measure_images))
    top, bottom = class_extremes(frame, focus)
    sections.append(f"## Per-class extremes ({label} IoU)\n\n{_extremes_table(top, bottom)}")
    if presets:
        ranks = frame[focus].rank(pct=True)
        lines = ["| preset | IoU | percentile among all images |", "|---|---|---|"]
        for image_id, key in sorted(presets.items(), key=lambda item: item[1]):
            index = frame.index[frame["id"] == image_id][0]
            lines.append(f"| {key} | {frame.at[index, focus]:.3f} | {100 * ranks[index]:.0f} |")
        sections.append("## Where the ten presets stand\n\n" + "\n".join(lines))
    return _write(out_dir, sections)


def _write(out_dir: Path, sections: Sequence[str]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_FILE
    path.write_text("\n\n".join(sections) + "\n")
    return path
