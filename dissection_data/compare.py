"""How far our labels agree with CLIP-dissect's published ones, per layer (`python -m dissection_data compare`).

For every unit both tables label: does our top-1 label equal the published top-1, and is the
published top-1 among our top-5? Here it only runs on synthetic tables; on a networked machine,
with a real build of resnet50-v1 or resnet18-places365, it is the real check of our pipeline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from dissection_data.tables import NeuronRow, NeuronTable
from explainers.errors import XaiLensError


@dataclass(frozen=True)
class LayerAgreement:
    layer: str
    units: int  # labelled in both tables
    top1: float  # share whose top-1 labels are equal
    top5: float  # share whose published top-1 is among our top-5 (includes top1)


def _same(a: str, b: str) -> bool:
    return a.strip().lower() == b.strip().lower()


def _our_top5(row: NeuronRow) -> list[str]:
    return [name for name, _ in row.top_concepts[:5]] or [row.concept]


def compare_tables(ours: NeuronTable, published: NeuronTable) -> list[LayerAgreement]:
    """Per layer the two tables share (in our layer order), the top-1 and top-5 agreement shares."""
    if ours.model != published.model:
        raise XaiLensError(
            f"Table '{ours.key}' labels {ours.model} but '{published.key}' labels {published.model}; compare tables "
            "of the same model (build ours with --models " + published.model + ")."
        )
    theirs = {(row.layer, row.unit): row for row in published.rows}
    results = []
    for layer in ours.layers:
        pairs = [(row, theirs[(layer, row.unit)]) for row in ours.rows_for(layer) if (layer, row.unit) in theirs]
        if not pairs:
            continue
        top1 = sum(_same(mine.concept, other.concept) for mine, other in pairs)
        top5 = sum(any(_same(name, other.concept) for name in _our_top5(mine)) for mine, other in pairs)
        results.append(LayerAgreement(layer, len(pairs), round(top1 / len(pairs), 4), round(top5 / len(pairs), 4)))
    if not results:
        raise XaiLensError(
            f"'{ours.key}' (layers {', '.join(ours.layers)}) and '{published.key}' (layers "
            f"{', '.join(published.layers)}) label no unit in common."
        )
    return results


def open_published(source: str) -> NeuronTable:
    """A published table by model name (downloaded on demand) or a CSV in the published layout."""
    from explainers.concepts.published import (
        PUBLISHED_TABLES,
        load_published_table,
        read_published_csv,
        spec_for_file,
    )

    if source in PUBLISHED_TABLES:
        return load_published_table(source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise XaiLensError(
            f"'{source}' is neither a published model ({', '.join(PUBLISHED_TABLES)}) nor a CSV file; give one."
        )
    return read_published_csv(path, spec_for_file(path))


def format_agreement(results: list[LayerAgreement], ours: NeuronTable, published: NeuronTable) -> str:
    lines = [
        f"{ours.key} vs {published.key} ({published.model}): share of units whose published top-1 label is",
        f"{'layer':<10}{'units':>7}{'our top-1':>11}{'in our top-5':>14}",
    ]
    lines += [f"{r.layer:<10}{r.units:>7}{r.top1:>11.1%}{r.top5:>14.1%}" for r in results]
    return "\n".join(lines)


def agreement_json(results: list[LayerAgreement], ours: NeuronTable, published: NeuronTable) -> dict:
    return {
        "ours": ours.key,
        "published": published.key,
        "model": ours.model,
        "layers": [asdict(result) for result in results],
    }
