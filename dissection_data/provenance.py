"""Where a neuron table came from, in one line, and which tables a public app may present.

Three kinds exist: a table built by XAI Lens (meta.json written by dissection_data.build), a table
published by CLIP-dissect's authors (read by explainers.concepts.published; meta has "published": true),
and the offline demo (meta has "demo": true; random weights, random CLIP). A visitor must be able to
tell them apart at a glance, so the app shows `provenance_line(table)` above every table, and
`served_tables` keeps the demo out of sight whenever a real table is there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dissection_data.tables import NeuronTable, load_tables

BUILT = "built"
PUBLISHED = "published"
DEMO = "demo"
SPACE_BUILD_COMMAND = "python -m tools.deploy --space OWNER/NAME --build-tables"
LOCAL_BUILD_COMMAND = "python -m dissection_data build"


def table_kind(table: NeuronTable) -> str:
    """'demo', 'published' (CLIP-dissect's authors) or 'built' (by XAI Lens)."""
    if table.is_demo:
        return DEMO
    if table.meta.get("published"):
        return PUBLISHED
    return BUILT


def _percent(value: Any) -> str:
    return f"{float(value):.1%}" if isinstance(value, (int, float)) else "not measured"


def self_check_text(meta: dict[str, Any]) -> str:
    """'fc self-check top-1 87.3% / top-5 95.0% (1000 neurons)' from a built table's meta."""
    check = meta.get("self_check") or {}
    if not check:
        return "fc self-check not recorded"
    return (
        f"fc self-check top-1 {_percent(check.get('top1'))} / top-5 {_percent(check.get('top5'))} "
        f"({check.get('neurons', '?')} neurons)"
    )


def _built_line(meta: dict[str, Any]) -> str:
    probe = meta.get("probe") or {}
    clip = meta.get("clip") or {}
    parts = [
        f"CLIP {clip.get('id', 'unknown')}",
        f"probe set {probe.get('name', 'unknown')} ({probe.get('images', '?')} images)",
        self_check_text(meta),
        f"built {str(meta.get('created', 'on an unknown date'))[:10]}",
    ]
    line = f"Built by XAI Lens with CLIP-dissect's method: {', '.join(parts)}."
    if meta.get("random_weights") or clip.get("random"):
        line += " RANDOM weights or CLIP: its labels are meaningless."
    return line


def _published_line(meta: dict[str, Any]) -> str:
    commit = str(meta.get("commit", ""))[:7]
    where = f" (their repository at commit {commit})" if commit else ""
    probe = meta.get("probe")
    return f"Published by CLIP-dissect's authors{where}" + (f", probe set {probe}." if probe else ".")


def _demo_line() -> str:
    return (
        "Demo table: random model weights and a random CLIP, so its labels are meaningless. "
        f"Real tables: {SPACE_BUILD_COMMAND} (or {LOCAL_BUILD_COMMAND} on your machine)."
    )


def provenance_line(table: NeuronTable) -> str:
    """One line naming what `table` is and how it was made: the line the app shows above a table."""
    kind = table_kind(table)
    if kind == DEMO:
        return _demo_line()
    if kind == PUBLISHED:
        return _published_line(table.meta)
    return _built_line(table.meta)


def select_served(tables: Sequence[NeuronTable]) -> list[NeuronTable]:
    """The tables a public app presents: every table, except that demo tables appear only when no other
    table is there at all. Hiding the demo of one model while another has a real table keeps a visitor
    from comparing a real table with a meaningless one (the tab's ImageNet vs Places365 comparison)."""
    real = [table for table in tables if table_kind(table) != DEMO]
    return list(real) if real else list(tables)


def served_tables(root: Path | None = None) -> list[NeuronTable]:
    """`select_served(load_tables(root))`: what the Neuron concepts tab lists, real tables first."""
    return select_served(load_tables(root))
