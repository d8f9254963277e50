"""The ten-preset comparison: every method on every preset, IoU table, figures and the answer
to the assignment's question (do methods agree more on simple images than on complex ones?)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from skimage.color import rgb2gray
from skimage.feature import canny
from tqdm.auto import tqdm

from dissection_data.provenance import provenance_line
from dissection_data.tables import NeuronTable
from explainers.comparison.masks import DEFAULT_RULE
from explainers.concepts import UNLABELLED, ConceptAttribution, attribute_concepts
from explainers.concepts.attribution import check_table_fits
from explainers.concepts.tables import open_table
from explainers.engine.cancel import CancelToken
from explainers.engine.models import RANDOM_WEIGHTS_WARNING, LoadedModel
from explainers.errors import XaiLensError, first_line
from explainers.faithfulness import measure_explanation
from explainers.faithfulness.figures import metrics_bar_chart
from explainers.faithfulness.randomization import UNCHANGED_SPEARMAN
from explainers.methods import CORE_METHODS, METHODS, create_method
from explainers.outputs import render
from explainers.outputs.summary import write_concepts, write_iou_csv
from explainers.pipeline import Explanation, explain_image

SIMPLE_EXAMPLE, COMPLEX_EXAMPLE = "goldfish", "kite"
TOP_CONCEPTS = 3  # labels per image in the report's concept column


def edge_density(crop: np.ndarray) -> float:
    """Share of edge pixels (Canny) in the crop: a plain, reproducible measure of visual clutter."""
    return float(canny(rgb2gray(crop), sigma=2.0).mean())


@dataclass
class ReportRow:
    key: str
    explanation: Explanation
    true_label: str
    complexity: float
    concepts: ConceptAttribution | None = None
    concepts_note: str = ""  # the concept column's cell when there is no attribution: why not

    @property
    def top_concepts(self) -> str:
        """'fur 31%, water 12%, sky 8%': the labels carrying most of the positive evidence, or why there are none."""
        if self.concepts is None:
            return self.concepts_note
        named = [(name, share) for name, share in self.concepts.by_concept.items() if name != UNLABELLED]
        if not named:
            return f"no unit labelled above similarity {self.concepts.min_similarity:g}"
        return ", ".join(f"{name} {share:.0%}" for name, share in named[:TOP_CONCEPTS])

    @property
    def mean_iou(self) -> float:
        values = list(self.explanation.iou.values())
        return float(np.mean(values)) if values else float("nan")


def answer_simple_vs_complex(rows: Sequence[ReportRow]) -> str:
    """The assignment's question answered from the numbers, with the evidence."""
    by_key = {row.key: row for row in rows}
    lines = []
    if SIMPLE_EXAMPLE in by_key and COMPLEX_EXAMPLE in by_key:
        simple, complex_ = by_key[SIMPLE_EXAMPLE].mean_iou, by_key[COMPLEX_EXAMPLE].mean_iou
        verdict = "higher" if simple > complex_ else "not higher"
        lines.append(
            f"Mean pairwise IoU is {simple:.3f} for the goldfish and {complex_:.3f} for the kite: "
            f"agreement is {verdict} on the simple image."
        )
    if len(rows) >= 3:
        rho, p_value = spearmanr([r.complexity for r in rows], [r.mean_iou for r in rows])
        direction = "fall" if rho < 0 else "rise"
        lines.append(
            f"Across all {len(rows)} images, IoU tends to {direction} as clutter (edge density) grows: "
            f"Spearman rho = {rho:+.2f} (p = {p_value:.2f}, n = {len(rows)}; a small sample, read it as a hint)."
        )
    return " ".join(lines)


def iou_table_markdown(rows: Sequence[ReportRow]) -> str:
    pairs = list(rows[0].explanation.iou) if rows else []
    with_concepts = any(row.top_concepts for row in rows)
    header = ["image", "true class", "top-1", "edge density", *[p.replace("|", " vs ") for p in pairs], "mean IoU"]
    header += [f"top {TOP_CONCEPTS} concepts (share of the positive layer4 evidence)"] if with_concepts else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        e = row.explanation
        cells = [row.key, row.true_label, f"{e.target.label} ({e.target.probability:.2f})", f"{row.complexity:.3f}"]
        cells += [f"{e.iou[p]:.3f}" for p in pairs] + [f"{row.mean_iou:.3f}"]
        cells += [row.top_concepts.replace("|", "/")] if with_concepts else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report_concept_table(
    model: LoadedModel, source: str | Path | NeuronTable | None = None
) -> tuple[NeuronTable | None, str]:
    """The neuron table for the concept column and, when there is none, the cell that says why not.

    `source` as `explain --concepts`: None for the model's own table (never downloaded), 'published', a
    table folder or a CSV, or a table already open. A table computed for another model is refused in one
    line, before any work.
    """
    if isinstance(source, NeuronTable):
        check_table_fits(source, model.name)
        table: NeuronTable | None = source
    else:
        table = open_table(source, model.name)
    if table is None:
        return None, f"no neuron table for {model.name} (python -m dissection_data build makes one)"
    return table, ""


def _row_concepts(
    model: LoadedModel, explanation: Explanation, table: NeuronTable | None, directory: Path
) -> tuple[ConceptAttribution | None, str]:
    """One more forward pass (layer4, no backward): the unit split of the target logit, saved as concepts.json."""
    if table is None:
        return None, ""
    try:
        result = attribute_concepts(model, explanation.crop, explanation.target.index, table)
    except XaiLensError as error:  # e.g. a model without a ResNet head: the cell says so, the report goes on
        return None, f"not available: {first_line(error, limit=160)}"
    write_concepts(result, explanation.crop, directory, picture=False)
    return result, ""


def concepts_note_markdown(table: NeuronTable | None, why_not: str) -> str:
    """Which table named the concepts, and loudly when its labels are demo ones."""
    if table is None:
        return f"Concepts: {why_not}."
    note = (
        f"Concepts: layer4 units named by table `{table.key}`; per image in `<stem>/concepts.json`. "
        f"{provenance_line(table)}"
    )
    return note + (f"\n\n**{table.warning}**" if table.warning else "")


def build_report(
    model: LoadedModel,
    images: Sequence[tuple[Any, Path]],
    out_dir: Path,
    methods: Sequence[str] = CORE_METHODS,
    lime_params: Mapping[str, Mapping[str, Any]] | None = None,
    mask_rule: str = DEFAULT_RULE,
    target_layer: str | None = None,
    on_image: Callable[[int, int, str], None] | None = None,
    metrics: Sequence[str] | None = None,
    metric_options: Mapping[str, Any] | None = None,
    cancel: CancelToken | None = None,
    concept_source: str | Path | NeuronTable | None = None,
) -> list[ReportRow]:
    """Explain each (preset, path), save per-image outputs, iou.csv, figures and report.md.

    `cancel` reaches every image's explanation, so a stopped or timed-out run ends between batches.

    The top concepts per image come from `concept_source` (see report_concept_table: by default the
    model's own table, when this machine has one; else the column says why not).

    With `metrics` (e.g. ["deletion", "insertion", "road", "sanity"]) each image's maps are also
    measured (metric_options: steps, baseline, seed), and metrics.csv / metrics_bar.png are written.
    """
    out_dir = Path(out_dir)
    concept_table, why_not = report_concept_table(model, concept_source)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (preset, path) in enumerate(tqdm(images, desc="presets", unit="image")):
        if on_image:
            on_image(index, len(images), preset.key)
        params = (lime_params or {}).get(preset.key, {})
        explanation = explain_image(
            path,
            model,
            methods,
            lime_params=params,
            mask_rule=mask_rule,
            target_layer=target_layer,
            image_name=Path(path).name,
            cancel=cancel,
        )
        if metrics:
            measure_explanation(
                explanation,
                metrics,
                **dict(metric_options or {}),
                make_method=lambda name, p=params: create_method(name, target_layer=target_layer, lime_params=p),
            )
        directory = explanation.save(out_dir)
        concepts, note = _row_concepts(model, explanation, concept_table, directory)
        true_label = model.categories[preset.class_index] if preset.class_index < len(model.categories) else "?"
        row = ReportRow(preset.key, explanation, true_label, edge_density(explanation.crop), concepts, note or why_not)
        rows.append(row)
    write_report_files(rows, out_dir, model, concepts_note_markdown(concept_table, why_not))
    return rows


def write_report_files(
    rows: Sequence[ReportRow], out_dir: Path, model: LoadedModel, concepts_note: str = ""
) -> dict[str, Path]:
    """iou.csv, iou_bar.png, overlays_grid.png, iou_table.md and report.md (with `concepts_note` under the table)."""
    write_iou_csv([r.explanation for r in rows], out_dir / "iou.csv")
    methods = list(rows[0].explanation.saliency) if rows else []
    titles = {m: METHODS[m].title for m in methods}
    files = {
        "iou_bar": out_dir / "iou_bar.png",
        "overlays_grid": out_dir / "overlays_grid.png",
        "iou_table": out_dir / "iou_table.md",
        "report": out_dir / "report.md",
    }
    bars = render.iou_bar_chart(
        {r.key: r.explanation.iou for r in rows}, titles, title=f"IoU per image ({model.spec.title})"
    )
    files["iou_bar"].write_bytes(render.figure_png(bars))
    grid_rows = [(r.key, r.explanation.crop, r.explanation.overlays()) for r in rows]
    grid = render.overlay_grid(grid_rows, titles, title=f"{model.spec.title}: overlays {render.CROP_CAPTION}")
    files["overlays_grid"].write_bytes(render.figure_png(grid))
    table = iou_table_markdown(rows)
    files["iou_table"].write_text(table + "\n")
    metrics_section = ""
    if any(r.explanation.metrics for r in rows):
        files["metrics_csv"] = out_dir / "metrics.csv"
        files["metrics_bar"] = out_dir / "metrics_bar.png"
        write_metrics_csv(rows, files["metrics_csv"])
        chart = metrics_bar_chart(metric_values(rows), titles, title=f"Faithfulness and sanity ({model.spec.title})")
        files["metrics_bar"].write_bytes(render.figure_png(chart))
        metrics_section = (
            f"\n\n## Which explanation to trust\n\n{metrics_table_markdown(rows)}\n\n"
            f"{answer_agreement_vs_faithfulness(rows)}\n\n![Metrics per method](metrics_bar.png)"
        )
    weights_note = f"\n\n**{RANDOM_WEIGHTS_WARNING}**" if model.is_random else ""
    concepts_section = f"{concepts_note}\n\n" if concepts_note else ""
    rule = rows[0].explanation.mask_rule if rows else ""
    files["report"].write_text(
        f"# XAI Lens report: {model.spec.title}{weights_note}\n\nMask rule: `{rule}`;"
        f" maps and masks {render.CROP_CAPTION}.\n\n{table}\n\n{concepts_section}## Simple vs complex images\n\n"
        f"{answer_simple_vs_complex(rows)}\n\n![IoU per image](iou_bar.png)\n\n![Overlays](overlays_grid.png)"
        f"{metrics_section}\n"
    )
    return files


# The summary.json metric keys, in reading order, and which direction means "more faithful".
METRIC_KEYS = ("deletion_auc", "insertion_auc", "road", "randomization_spearman", "randomization_ssim")
HIGHER_IS_BETTER = {"deletion_auc": False, "insertion_auc": True, "road": True}


def metric_values(rows: Sequence[ReportRow]) -> dict[str, dict[str, list[float]]]:
    """method -> metric key -> one value per image (images where the metric ran)."""
    table: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        for method, result in row.explanation.metrics.items():
            for key in METRIC_KEYS:
                if key in result.values:
                    table.setdefault(method, {}).setdefault(key, []).append(result.values[key])
    return table


def write_metrics_csv(rows: Sequence[ReportRow], path: Path) -> None:
    """DIR/metrics.csv: image, method, then each metric that ran, and the model passes it cost."""
    keys = [k for k in METRIC_KEYS if any(k in r.values for row in rows for r in row.explanation.metrics.values())]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "method", *keys, "passes"])
        for row in rows:
            for method, result in row.explanation.metrics.items():
                cells = [f"{result.values[k]:.6f}" if k in result.values else "" for k in keys]
                writer.writerow([row.key, method, *cells, result.passes])


def metrics_table_markdown(rows: Sequence[ReportRow]) -> str:
    """Mean ± standard deviation over the images, one row per method."""
    table = metric_values(rows)
    keys = [k for k in METRIC_KEYS if any(k in per_method for per_method in table.values())]
    lines = ["| method | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for method, per_method in table.items():
        cells = [f"{np.mean(per_method[k]):.3f} ± {np.std(per_method[k]):.3f}" if k in per_method else "" for k in keys]
        lines.append(f"| {METHODS[method].title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _faithfulness_scores(table: Mapping[str, Mapping[str, list[float]]]) -> tuple[str, dict[str, float]]:
    """One number per method where larger is more faithful: ROAD if measured, else insertion - deletion."""

    def mean(method: str, key: str) -> float:
        return float(np.mean(table[method][key]))

    methods = list(table)
    if all("road" in table[m] for m in methods):
        return "ROAD", {m: mean(m, "road") for m in methods}
    if all("insertion_auc" in table[m] and "deletion_auc" in table[m] for m in methods):
        return "insertion - deletion AUC", {m: mean(m, "insertion_auc") - mean(m, "deletion_auc") for m in methods}
    for key, higher in HIGHER_IS_BETTER.items():
        if all(key in table[m] for m in methods):
            sign = 1.0 if higher else -1.0
            return key if higher else f"-{key}", {m: sign * mean(m, key) for m in methods}
    return "", {}


def answer_agreement_vs_faithfulness(rows: Sequence[ReportRow]) -> str:
    """Do the methods that agree also score as faithful? And does any method ignore the model?"""
    table = metric_values(rows)
    lines = []
    label, scores = _faithfulness_scores(table)
    pair_iou: dict[str, list[float]] = {}
    for row in rows:
        for pair, value in row.explanation.iou.items():
            pair_iou.setdefault(pair, []).append(value)
    if scores and pair_iou:
        ranking = sorted(scores, key=lambda name: scores[name], reverse=True)
        best_pair = max(pair_iou, key=lambda pair: np.mean(pair_iou[pair]))
        a, b = best_pair.split("|")
        if a in scores and b in scores:
            ranks = sorted((ranking.index(a) + 1, ranking.index(b) + 1))
            if len(ranking) <= 2:
                verdict = "With only these two methods measured, there is no third to compare their agreement with."
            elif ranks[1] <= (len(ranking) + 1) // 2:
                verdict = "Here agreement goes with faithfulness."
            else:
                verdict = "Here agreement is not evidence of faithfulness: other methods explain the model better."
            lines.append(
                f"The methods that agree most, {METHODS[a].title} and {METHODS[b].title} "
                f"(mean IoU {np.mean(pair_iou[best_pair]):.3f}), rank {ranks[0]} and {ranks[1]} of {len(ranking)} "
                f"on faithfulness ({label}, mean over {len(rows)} images); the most faithful is "
                f"{METHODS[ranking[0]].title} ({scores[ranking[0]]:+.3f}). {verdict}"
            )
    if any("randomization_spearman" in per_method for per_method in table.values()):
        unchanged = [
            m
            for m, per_method in table.items()
            if np.mean(per_method.get("randomization_spearman", [0])) > UNCHANGED_SPEARMAN
        ]
        if unchanged:
            names = ", ".join(METHODS[m].title for m in unchanged)
            lines.append(
                f"{names} draw nearly the same map after the model's top layers are randomised "
                f"(Spearman > {UNCHANGED_SPEARMAN}): they are not explaining the model."
            )
        else:
            lines.append("Every method's map changes when the model's top layers are randomised (sanity check passed).")
    return " ".join(lines)
