"""The agreement study's summary in the Ten-presets tab: where the ten presets stand among a study's images.

Ten images give anecdotes; `python -m explainers study` (explainers.study, on Ray) answers the same question over
a data set and writes results.parquet and report.md. This panel reads a finished (or partly finished) study
folder named by --study-dir or XAI_LENS_STUDY_DIR: the library's own distribution figure with the presets
marked, and the report's answer and preset table. It computes nothing the study did not. Without a folder it
shows the command that makes one; without pyarrow (the optional 'scale' extra) it says so in one line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from app.settings import AppConfig
from explainers.errors import XaiLensError, first_line

STUDY_DIR_ENV = "XAI_LENS_STUDY_DIR"
RESULTS_FILE = "results.parquet"  # explainers.study.results.RESULTS_FILE (not imported: that module needs pyarrow)
REPORT_FILE = "report.md"
SETTINGS_FILE = "study.json"
STUDY_COMMAND = (
    "python -m explainers study imagenet1000 --model resnet50 --weights imagenet "
    "--methods gradcam,scorecam,ablationcam,lime --out study/"
)
SECTIONS = ("## Do CAM and LIME agree", "## Where the ten presets stand")


def study_dir(config: AppConfig) -> Path | None:
    """The configured study folder: --study-dir, else $XAI_LENS_STUDY_DIR, else none."""
    chosen = getattr(config, "study_dir", None) or os.environ.get(STUDY_DIR_ENV) or None
    return Path(chosen).expanduser() if chosen else None


def how_to_run() -> str:
    return (
        "**Beyond ten images.** Ask the same question of the 1000 ImageNet sample images (one per class) with the "
        f"agreement study (needs the scale extra, `pip install .[scale]`; hours on a CPU, minutes on a GPU):\n\n"
        f"`{STUDY_COMMAND}`\n\n"
        f"then start the app with `--study-dir study` (or `{STUDY_DIR_ENV}=study`) to see where the ten presets "
        "stand among them."
    )


@dataclass(frozen=True)
class StudySummary:
    """What the panel shows: a headline, the figure (RGB array), and the report's answer and preset table."""

    headline: str
    figure: np.ndarray | None
    report: str


def _methods(folder: Path, columns: list[str]) -> list[str]:
    """The study's methods: from study.json, else from its per-method timing columns."""
    try:
        recorded = json.loads((folder / SETTINGS_FILE).read_text())["methods"]
        if isinstance(recorded, list) and all(isinstance(m, str) for m in recorded):
            return recorded
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return [column.split("__", 1)[1] for column in columns if column.startswith("seconds__")]


def _report_sections(folder: Path) -> str:
    """The report's answer and its preset table, verbatim (report.md is the study's own words)."""
    try:
        text = (folder / REPORT_FILE).read_text(encoding="utf-8")
    except OSError:
        return f"No {REPORT_FILE} in {folder} yet: the study writes it when it finishes (run it again to resume)."
    blocks = text.split("\n## ")
    kept = [f"## {block}" for block in blocks[1:] if any(f"## {block}".startswith(head) for head in SECTIONS)]
    return "\n\n".join(kept).replace("## ", "#### ") or f"{REPORT_FILE} has no answer section yet."


def load_summary(folder: Path) -> StudySummary:
    """Read a study folder; every problem (no pyarrow, no results, an unreadable file) is one XaiLensError line."""
    from explainers.study import require_scale

    require_scale(("pyarrow",))  # "The study needs pyarrow (the 'scale' extra): run `pip install .[scale]` ..."
    import pandas as pd

    from explainers.outputs.render import figure_array
    from explainers.study.report import distribution_figure, preset_ids
    from explainers.study.results import pair_keys

    path = folder / RESULTS_FILE
    if not path.is_file():
        raise XaiLensError(f"No {RESULTS_FILE} in {folder}: run `{STUDY_COMMAND}` with --out {folder} first.")
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as exc:
        raise XaiLensError(f"{path} could not be read ({first_line(exc, limit=100)}).") from None
    if "id" not in table.columns:
        raise XaiLensError(f"{path} is not an agreement study's results table (no id column).")
    frame = table[table["error"].isna()] if "error" in table.columns else table
    pairs = [pair for pair in pair_keys(_methods(folder, list(table.columns))) if f"iou__{pair[0]}__{pair[1]}" in frame]
    presets = preset_ids(frame["id"].astype(str).tolist())
    figure = figure_array(distribution_figure(frame, pairs, presets)) if pairs and len(frame) else None
    found = f"{len(presets)} of the ten presets are among them" if presets else "none of the ten presets is among them"
    headline = f"**Agreement study in `{folder}`**: {len(table)} images, {len(frame)} explained; {found}."
    return StudySummary(headline, figure, _report_sections(folder))


def build_study_panel(config: AppConfig) -> None:
    """Lay out the study summary (api name: study_summary) inside the current block."""
    folder = study_dir(config)
    if folder is None:
        gr.Markdown(how_to_run(), elem_id="study-how-to")
        return

    def show() -> tuple[str, np.ndarray | None, str]:
        """The folder as it is now; a problem with it (no pyarrow, no results yet) is the one line shown."""
        try:
            summary = load_summary(folder)
        except XaiLensError as exc:
            return first_line(exc, limit=1000), None, ""
        return summary.headline, summary.figure, summary.report

    first = show()  # read at start; Reload reads again (a running study adds images)
    headline = gr.Markdown(first[0], elem_id="study-headline")
    figure = gr.Image(
        first[1], label="IoU per pair over the study's images (the presets in red)", show_label=False, type="numpy"
    )  # the figure's own title says it; a label chip would cover that title
    report = gr.Markdown(first[2], elem_id="study-report")
    reload = gr.Button("Reload the study", size="sm")
    reload.click(show, None, [headline, figure, report], api_name="study_summary")
