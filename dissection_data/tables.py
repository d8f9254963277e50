"""The built neuron-concept tables: the folder layout, writing them, and reading them for the app.

Layout (one folder per built model; the demo lives under `demo/`):

    dissection_data/tables/<table>/neurons.csv   one row per neuron
    dissection_data/tables/<table>/meta.json     how it was made (+ "demo": true for the demo)
    dissection_data/tables/<table>/thumbs/<probe image id>.jpg

`<table>` is the model name for real builds (`resnet18`, `resnet18-places365`) and
`demo/<model>` for the offline demo. neurons.csv columns: model, layer, unit, concept, similarity,
top5_concepts, top5_similarities, top_images; the last three hold '|'-separated lists, best first.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dissection_data.labels import NeuronLabel
from dissection_data.paths import TABLES_DIR
from explainers.errors import XaiLensError, first_line

TABLE_FORMAT = "xai-lens-neuron-concepts/1"
CSV_NAME = "neurons.csv"
META_NAME = "meta.json"
THUMBS_DIR = "thumbs"
COLUMNS = (
    "model",
    "layer",
    "unit",
    "concept",
    "similarity",
    "top5_concepts",
    "top5_similarities",
    "top_images",
)
SEPARATOR = "|"
DEMO_WARNING = (
    "DEMO TABLE: built offline from RANDOM model weights, a RANDOMLY INITIALISED CLIP and generated "
    "shape images. Its concept labels are meaningless; it only shows what a real table looks like."
)


@dataclass(frozen=True)
class NeuronRow:
    model: str
    layer: str
    unit: int
    concept: str
    similarity: float
    top_concepts: tuple[tuple[str, float], ...]
    top_images: tuple[str, ...]


@dataclass
class NeuronTable:
    """One built table: its rows, its meta.json, and where its thumbnails are."""

    key: str
    root: Path
    meta: dict[str, Any]
    rows: list[NeuronRow] = field(repr=False)

    @property
    def model(self) -> str:
        return str(self.meta.get("model", self.key))

    @property
    def is_demo(self) -> bool:
        return bool(self.meta.get("demo"))

    @property
    def is_random(self) -> bool:
        return bool(self.meta.get("random_weights")) or bool(self.meta.get("clip", {}).get("random"))

    @property
    def warning(self) -> str | None:
        return self.meta.get("warning")

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys(row.layer for row in self.rows))

    def rows_for(self, layer: str) -> list[NeuronRow]:
        return [row for row in self.rows if row.layer == layer]

    def row(self, layer: str, unit: int) -> NeuronRow:
        for row in self.rows:
            if row.layer == layer and row.unit == unit:
                return row
        raise XaiLensError(f"Table '{self.key}' has no neuron {layer}#{unit}; its layers are {', '.join(self.layers)}.")

    def thumbnail_paths(self, layer: str, unit: int) -> list[Path]:
        """Thumbnails of the neuron's most activating probe images, most activating first (existing files only)."""
        paths = [self.root / THUMBS_DIR / f"{image_id}.jpg" for image_id in self.row(layer, unit).top_images]
        return [path for path in paths if path.is_file()]


def _split(value: str) -> list[str]:
    return value.split(SEPARATOR) if value else []


def read_table(directory: Path, key: str | None = None) -> NeuronTable:
    """Read one table folder (neurons.csv + meta.json)."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / META_NAME).read_text())
        with (directory / CSV_NAME).open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise ValueError(f"columns {reader.fieldnames} are not {list(COLUMNS)}")
            rows = []
            for record in reader:
                names, scores = _split(record["top5_concepts"]), _split(record["top5_similarities"])
                rows.append(
                    NeuronRow(
                        model=record["model"],
                        layer=record["layer"],
                        unit=int(record["unit"]),
                        concept=record["concept"],
                        similarity=float(record["similarity"]),
                        top_concepts=tuple(zip(names, map(float, scores), strict=True)),
                        top_images=tuple(_split(record["top_images"])),
                    )
                )
    except (OSError, ValueError, KeyError) as exc:
        reason = first_line(exc)
        raise XaiLensError(
            f"Table '{directory}' is unreadable ({reason}); rebuild it with python -m dissection_data build."
        ) from None
    return NeuronTable(key=key or directory.name, root=directory, meta=meta, rows=rows)


def load_tables(root: Path | None = None) -> list[NeuronTable]:
    """Every table under `root` (default dissection_data/tables), real tables first, then demos."""
    root = Path(root) if root is not None else TABLES_DIR
    if not root.is_dir():
        return []
    tables = [
        read_table(meta.parent, meta.parent.relative_to(root).as_posix())
        for meta in sorted(root.rglob(META_NAME))
        if (meta.parent / CSV_NAME).is_file()
    ]
    return sorted(tables, key=lambda table: (table.is_demo, table.key))


def thumbnail_paths(model: str, layer: str, unit: int, root: Path | None = None) -> list[Path]:
    """Thumbnails of a neuron's top images; `model` is a table key such as 'resnet18' or 'demo/resnet18'."""
    root = Path(root) if root is not None else TABLES_DIR
    directory = root / model
    if not (directory / CSV_NAME).is_file():
        raise XaiLensError(f"No table '{model}' under {root}; build one with python -m dissection_data build.")
    return read_table(directory, model).thumbnail_paths(layer, unit)


def write_table(
    directory: Path,
    model: str,
    labels: Sequence[NeuronLabel],
    meta: dict[str, Any],
    thumbnails: dict[str, Image.Image],
) -> Path:
    """Write neurons.csv, meta.json and thumbs/ into `directory` (replacing an older table there)."""
    directory = Path(directory)
    thumbs = directory / THUMBS_DIR
    thumbs.mkdir(parents=True, exist_ok=True)
    for stale in thumbs.glob("*.jpg"):
        stale.unlink()
    for image_id, image in thumbnails.items():
        image.save(thumbs / f"{image_id}.jpg", quality=85)
    with (directory / CSV_NAME).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for label in labels:
            writer.writerow(
                [
                    model,
                    label.layer,
                    label.unit,
                    label.concepts[0],
                    f"{label.similarities[0]:.5g}",
                    SEPARATOR.join(label.concepts),
                    SEPARATOR.join(f"{s:.5g}" for s in label.similarities),
                    SEPARATOR.join(label.top_images),
                ]
            )
    (directory / META_NAME).write_text(json.dumps({"format": TABLE_FORMAT, **meta}, indent=2) + "\n")
    return directory
