"""Questions a reader asks of the neuron-concept tables: filter, count, compare.

Kept apart from tables.py (reading/writing) so the app's neuron tab stays a thin layer: every
number it shows comes from here and can be reproduced in a notebook.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

from dissection_data.tables import NeuronRow, NeuronTable

BUILD_COMMAND = "python -m dissection_data build"
DEMO_COMMAND = "python -m dissection_data demo"
RECORD_COLUMNS = ("model", "layer", "unit", "concept", "similarity", "runner-up concepts")


def filter_rows(
    rows: Sequence[NeuronRow], layer: str | None = None, query: str = "", min_similarity: float | None = None
) -> list[NeuronRow]:
    """Rows of one layer (None: all) whose label or runner-ups contain `query` (case-insensitive)."""
    wanted = query.strip().lower()
    kept = []
    for row in rows:
        if layer and row.layer != layer:
            continue
        if min_similarity is not None and row.similarity < min_similarity:
            continue
        if wanted and not any(wanted in name.lower() for name, _ in ((row.concept, 0), *row.top_concepts)):
            continue
        kept.append(row)
    return kept


def row_records(rows: Sequence[NeuronRow]) -> list[list]:
    """One list per row in RECORD_COLUMNS order; runner-ups as 'name (score)' text."""
    records = []
    for row in rows:
        runners = ", ".join(f"{name} ({score:.3g})" for name, score in row.top_concepts[1:])
        records.append([row.model, row.layer, row.unit, row.concept, round(row.similarity, 4), runners])
    return records


def concept_counts(rows: Sequence[NeuronRow], top: int = 15) -> list[tuple[str, int]]:
    """The most frequent labels among the rows, most frequent first (ties alphabetical)."""
    counts = Counter(row.concept for row in rows)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]


def concept_histogram(counts: Sequence[tuple[str, int]], title: str) -> Figure:
    """Horizontal bars of concept frequencies, most frequent at the top."""
    figure = Figure(figsize=(6.4, 0.32 * max(len(counts), 3) + 1.2))
    axis = figure.subplots()
    names = [name for name, _ in counts][::-1]
    values = [value for _, value in counts][::-1]
    axis.barh(range(len(names)), values, color="#4c72b0")
    axis.set_yticks(range(len(names)), names, fontsize=9)
    axis.set_xlabel("neurons labelled with the concept")
    axis.set_title(title, fontsize=11)
    if not counts:
        axis.text(0.5, 0.5, "no neurons match the filters", ha="center", va="center", transform=axis.transAxes)
    figure.tight_layout()
    return figure


@dataclass(frozen=True)
class ConceptComparison:
    """Which labels two tables share, per layer and over all layers."""

    first: str
    second: str
    shared: list[str]
    only_first: list[str]
    only_second: list[str]
    per_layer: list[tuple[str, int, int, int]]  # layer, shared, only first, only second


def _concepts(rows: Sequence[NeuronRow]) -> set[str]:
    return {row.concept for row in rows}


def compare_tables(first: NeuronTable, second: NeuronTable) -> ConceptComparison:
    """Shared and distinct neuron labels of two tables (e.g. an ImageNet and a Places365 model)."""
    a, b = _concepts(first.rows), _concepts(second.rows)
    per_layer = []
    for layer in dict.fromkeys([*first.layers, *second.layers]):
        la, lb = _concepts(first.rows_for(layer)), _concepts(second.rows_for(layer))
        per_layer.append((layer, len(la & lb), len(la - lb), len(lb - la)))
    return ConceptComparison(first.key, second.key, sorted(a & b), sorted(a - b), sorted(b - a), per_layer)


def dataset_pair(tables: Sequence[NeuronTable]) -> tuple[NeuronTable, NeuronTable] | None:
    """An ImageNet table and a Places365 table to compare, preferring real tables over demos."""
    for want_demo in (False, True):
        candidates = [t for t in tables if t.is_demo == want_demo]
        places = [t for t in candidates if "places" in t.model.lower()]
        imagenet = [t for t in candidates if "places" not in t.model.lower()]
        if places and imagenet:
            return imagenet[0], places[0]
    return None
