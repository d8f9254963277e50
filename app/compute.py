"""The heavy work, behind the GPU decorator: plain-data arguments in, plain-data results out.

ZeroGPU runs these in a forked worker, so nothing here takes or returns a live model, a figure
or a gradio object; the tabs turn the results into components.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from app import settings
from app.gpu import gpu
from examples.presets import ensure_presets
from explainers.cancel import CancelToken, cancellable_progress
from explainers.exports import zip_folder
from explainers.methods import by_cost, parse_methods
from explainers.models import load_model
from explainers.pipeline import iter_explain
from explainers.report import answer_simple_vs_complex, build_report, iou_table_markdown
from explainers.snapshot import ExplanationView, snapshot


@gpu(duration=settings.GPU_SECONDS_EXPLAIN)
def explain_views(
    image_path: str,
    model_name: str,
    weights: str,
    methods: Sequence[str],
    target: int | None,
    lime_params: Mapping[str, Any],
    mask_rule: str,
    image_name: str | None = None,
    lime_progress: Callable[[int, int], None] | None = None,
    deadline_s: float | None = None,
) -> Iterator[ExplanationView]:
    """Yield a picklable view after each method, cheapest first; past `deadline_s` the work stops."""
    token = CancelToken(deadline_s)  # made here, inside the (possibly forked) worker that does the work
    model = load_model(model_name, weights)
    order = by_cost(parse_methods(methods), model.device)
    for explanation in iter_explain(
        image_path,
        model,
        methods,
        target=target,
        lime_params=lime_params,
        mask_rule=mask_rule,
        image_name=image_name,
        lime_progress=cancellable_progress(token, lime_progress),
        cancel=token,
    ):
        done = order.index(explanation.latest) + 1
        yield snapshot(explanation, pending=order[done:])


@gpu(duration=settings.GPU_SECONDS_PRESETS)
def run_presets(
    model_name: str,
    weights: str,
    methods: Sequence[str],
    lime_params: Mapping[str, Mapping[str, Any]],
    mask_rule: str,
    out_dir: str,
    examples_dir: str | None = None,
    on_image: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """The ten-preset report into out_dir; returns the table, the answer and the file paths."""
    model = load_model(model_name, weights)
    images = ensure_presets(examples_dir, progress=False)
    out = Path(out_dir)
    rows = build_report(model, images, out, methods, lime_params, mask_rule, on_image=on_image)
    zip_path = zip_folder(out, out / "xai_lens_presets.zip")
    return {
        "table": iou_table_markdown(rows),
        "answer": answer_simple_vs_complex(rows),
        "iou": {row.key: row.explanation.iou for row in rows},
        "files": {
            "csv": str(out / "iou.csv"),
            "bar": str(out / "iou_bar.png"),
            "grid": str(out / "overlays_grid.png"),
            "report": str(out / "report.md"),
            "zip": str(zip_path),
        },
    }
