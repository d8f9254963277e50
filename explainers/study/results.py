"""The study's table: one Parquet row per image, its schema, and the parts a run writes as it goes.

The schema is fixed by the study's settings before any image runs (methods -> timing columns and
IoU/Dice pairs, metrics -> one column per metric and method), so every part a run writes, and every
run that resumes it, has the same columns. A part is written under a temporary name and renamed,
so a killed run leaves whole parts only: the ids in them are finished, every other image runs again.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from explainers.study.measures import MEASURES

PARTS_DIR = "parts"
RESULTS_FILE = "results.parquet"
# metric name (explainers.faithfulness) -> the value keys it writes per method
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "deletion": ("deletion_auc",),
    "insertion": ("insertion_auc",),
    "road": ("road",),
    "sanity": ("randomization_spearman", "randomization_ssim"),
}
TOP5_TYPE = pa.list_(pa.struct([("index", pa.int32()), ("label", pa.string()), ("probability", pa.float64())]))


def pair_keys(methods: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of methods, in the order agreement.pairwise reports them."""
    return list(combinations(methods, 2))


def iou_column(a: str, b: str) -> str:
    return f"iou__{a}__{b}"


def dice_column(a: str, b: str) -> str:
    return f"dice__{a}__{b}"


def seconds_column(method: str) -> str:
    return f"seconds__{method}"


def metric_column(key: str, method: str) -> str:
    return f"{key}__{method}"


def metric_value_keys(metrics: Sequence[str]) -> list[str]:
    """The value keys the asked-for metrics write (deletion -> deletion_auc ...), each once."""
    return list(dict.fromkeys(key for metric in metrics for key in METRIC_KEYS.get(metric, (metric,))))


@dataclass(frozen=True)
class StudyColumns:
    """Which columns a study with these methods and metrics has, and their Arrow types."""

    methods: tuple[str, ...]
    metrics: tuple[str, ...] = ()

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return pair_keys(self.methods)

    @property
    def iou_columns(self) -> list[str]:
        return [iou_column(a, b) for a, b in self.pairs]

    def schema(self) -> pa.Schema:
        fields = [
            ("id", pa.string()),
            ("true_class", pa.string()),
            ("class_index", pa.int32()),
            ("path", pa.string()),
            ("target", pa.int32()),
            ("target_label", pa.string()),
            ("probability", pa.float64()),
            ("top5", TOP5_TYPE),
        ]
        fields += [(seconds_column(m), pa.float64()) for m in self.methods]
        fields += [(iou_column(a, b), pa.float64()) for a, b in self.pairs]
        fields += [(dice_column(a, b), pa.float64()) for a, b in self.pairs]
        fields += [(metric_column(k, m), pa.float64()) for k in metric_value_keys(self.metrics) for m in self.methods]
        fields += [(name, pa.float64()) for name in MEASURES]
        fields += [("seconds_total", pa.float64()), ("worker", pa.string()), ("error", pa.string())]
        return pa.schema(fields)

    def table(self, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
        """Rows (dicts; missing columns are null) as a table with exactly this schema."""
        schema = self.schema()
        rows = list(rows)
        return pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in schema.names}, schema=schema)


def write_part(table: pa.Table, out_dir: Path) -> Path:
    """Write one part atomically (temporary name, then rename): a killed run never leaves half a part."""
    parts = Path(out_dir) / PARTS_DIR
    parts.mkdir(parents=True, exist_ok=True)
    name = f"part-{uuid.uuid4().hex}.parquet"
    partial = parts / f".{name}.tmp"
    pq.write_table(table, partial)
    os.replace(partial, parts / name)
    return parts / name


def part_files(out_dir: Path) -> list[Path]:
    folder = Path(out_dir) / PARTS_DIR
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def finished_ids(out_dir: Path) -> set[str]:
    """Ids already written by earlier runs (their parts only: half-written temporary files are ignored)."""
    done: set[str] = set()
    for part in part_files(out_dir):
        done.update(pq.read_table(part, columns=["id"]).column("id").to_pylist())
    return done


def combine_parts(out_dir: Path, columns: StudyColumns) -> pa.Table:
    """Every part in one table, one row per id (the first written wins), sorted by id; saved as results.parquet."""
    schema = columns.schema()
    tables = [pq.read_table(part).select(schema.names).cast(schema) for part in part_files(out_dir)]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    table = first_of_each_id(table).sort_by("id")
    pq.write_table(table, Path(out_dir) / RESULTS_FILE)
    return table


def first_of_each_id(table: pa.Table) -> pa.Table:
    """One row per id, the first (parts written twice for one image, e.g. by two runs at once, keep their first)."""
    seen: set[str] = set()
    keep = []
    for index, image_id in enumerate(table.column("id").to_pylist()):
        if image_id not in seen:
            seen.add(image_id)
            keep.append(index)
    return table.take(keep)
