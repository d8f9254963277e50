"""Run the study on Ray Data: the source streamed in blocks, one model per actor, results written in parts.

The Ray setup (local or cluster, the streaming read, the actor pool) is explainers.study.ray_engine,
shared with the dissection build. Resuming: the driver writes every batch that comes back as one
Parquet part (atomically). A run reads the ids in the parts first and sends only the others to Ray,
so a killed run, started again with the same command, finishes with each image exactly once.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from explainers.comparison.masks import DEFAULT_RULE
from explainers.errors import XaiLensError, first_line
from explainers.study.ray_engine import actor_batches, ray_session, save_as_they_come, source_total
from explainers.study.results import (
    RESULTS_FILE,
    StudyColumns,
    combine_parts,
    dice_column,
    finished_ids,
    iou_column,
    metric_column,
    seconds_column,
)
from explainers.study.sources import StudyRecord, StudySource

SETTINGS_FILE = "study.json"
DEFAULT_BATCH_SIZE = 4  # images per actor call and per Parquet part: small, so a killed run loses little


@dataclass(frozen=True)
class StudySettings:
    """What every image is put through; saved as study.json so a resumed run cannot mix two settings."""

    model: str
    weights: str
    methods: tuple[str, ...]
    metrics: tuple[str, ...] = ()
    mask_rule: str = DEFAULT_RULE
    target_layer: str | None = None
    steps: int = 20
    baseline: str = "zeros"

    @property
    def columns(self) -> StudyColumns:
        return StudyColumns(self.methods, self.metrics)

    def as_json(self) -> dict[str, Any]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


@dataclass
class StudyOutcome:
    """What a run did: images run now, skipped as finished earlier, failed (rows with an error), wall time."""

    out_dir: Path
    table: pa.Table
    ran: int
    skipped: int
    errors: int
    seconds: float
    workers: int
    device: str
    per_worker: dict[str, int] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.ran / self.seconds if self.seconds > 0 else float("nan")


# --- one image ----------------------------------------------------------------------------------


def study_row(record: StudyRecord, model: Any, settings: StudySettings) -> dict[str, Any]:
    """One image through every method: the row of results.parquet, or its one-line error (never raises)."""
    started = time.perf_counter()
    row: dict[str, Any] = {
        "id": record.id,
        "true_class": record.true_class,
        "class_index": record.class_index,
        "path": record.path,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
    }
    try:
        row.update(_explain_row(record, model, settings))
    except Exception as exc:  # any failure of one image becomes its row's error; the study goes on
        row["error"] = first_line(exc)
    row["seconds_total"] = time.perf_counter() - started
    return row


def _explain_row(record: StudyRecord, model: Any, settings: StudySettings) -> dict[str, Any]:
    from explainers.methods import Subject, create_method
    from explainers.pipeline import explain_image
    from explainers.study.measures import image_measures

    image = record.data if record.data is not None else record.path
    if image is None:
        raise XaiLensError(f"{record.id} has neither bytes nor a path")
    explanation = explain_image(
        image,
        model,
        list(settings.methods),
        mask_rule=settings.mask_rule,
        target_layer=settings.target_layer,
        image_name=record.id,
    )
    target = explanation.target
    row: dict[str, Any] = {
        "target": target.index,
        "target_label": target.label,
        "probability": target.probability,
        "top5": [{"index": p.index, "label": p.label, "probability": p.probability} for p in explanation.top5],
    }
    row.update({seconds_column(name): s.seconds for name, s in explanation.saliency.items()})
    for pair, value in explanation.iou.items():
        row[iou_column(*pair.split("|"))] = value
    for pair, value in explanation.dice.items():
        row[dice_column(*pair.split("|"))] = value
    if settings.metrics:
        row.update(_metric_values(explanation, settings))
    if "gradcam" in explanation.saliency:
        gradcam_map = explanation.saliency["gradcam"].map
    else:  # the measures read the object from Grad-CAM's map: one extra pass when it was not asked for
        gradcam_map = create_method("gradcam").explain(Subject(model, explanation.crop, target.index)).map
    row.update(image_measures(explanation.crop, gradcam_map))
    return row


def _metric_values(explanation: Any, settings: StudySettings) -> dict[str, float]:
    from explainers.faithfulness import measure_explanation
    from explainers.methods import create_method

    results = measure_explanation(
        explanation,
        list(settings.metrics),
        steps=settings.steps,
        baseline=settings.baseline,
        make_method=lambda name: create_method(name, target_layer=settings.target_layer),
    )
    return {metric_column(key, name): value for name, result in results.items() for key, value in result.values.items()}


class ExplainActor:
    """A Ray Data actor: loads the model once, then explains each batch of records it is handed."""

    def __init__(self, settings: StudySettings, threads: int) -> None:
        import torch

        from explainers.engine.models import load_model

        torch.set_num_threads(max(1, threads))
        self.settings = settings
        self.model = load_model(settings.model, settings.weights, "cuda" if torch.cuda.is_available() else "cpu")

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = [study_row(StudyRecord.from_row(record), self.model, self.settings) for record in batch.to_pylist()]
        return self.settings.columns.table(rows)


def _save_settings(out_dir: Path, source: StudySource, settings: StudySettings) -> None:
    """study.json; an existing one must match, so one results.parquet never mixes two studies."""
    path = out_dir / SETTINGS_FILE
    wanted = {"source": source.name, **settings.as_json()}
    if path.is_file():
        earlier = json.loads(path.read_text())
        recorded = {key: earlier.get(key) for key in wanted}
        if recorded != wanted:
            changed = ", ".join(key for key in wanted if recorded[key] != wanted[key])
            raise XaiLensError(
                f"{out_dir} holds a study with other settings ({changed}); resume with the same settings "
                "or choose another --out folder."
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**wanted, "fingerprint": source.fingerprint, "description": source.description}))


def run_study(
    source: StudySource,
    settings: StudySettings,
    out_dir: Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: int = 1,
    limit: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    on_batch: Callable[[pa.Table], None] | None = None,
) -> StudyOutcome:
    """Run every pending image of `source` through `settings` on Ray and combine all parts into results.parquet.

    `on_batch` sees each batch of result rows once it is saved (a benchmark's clock, a UI's progress).
    """

    out_dir = Path(out_dir)
    _save_settings(out_dir, source, settings)
    done = finished_ids(out_dir)
    with ray_session(address, workers, cpus_per_worker) as plan:
        batches = actor_batches(
            source,
            done,
            plan,
            ExplainActor,
            {"settings": settings, "threads": cpus_per_worker},
            limit=limit,
            batch_size=batch_size,
            what="study",
        )
        ran = errors = 0
        per_worker: dict[str, int] = {}
        begun = time.perf_counter()
        description = f"study ({plan.workers} {plan.device} workers)"
        total = source_total(source, limit)
        for saved in save_as_they_come(batches, done, out_dir, total, description, progress=progress):
            for worker in saved.column("worker").to_pylist():
                per_worker[worker] = per_worker.get(worker, 0) + 1
            ran, errors = ran + saved.num_rows, errors + saved.num_rows - saved.column("error").null_count
            if on_batch is not None:
                on_batch(saved)
        seconds = time.perf_counter() - begun
    table = combine_parts(out_dir, settings.columns)
    skipped = table.num_rows - ran
    return StudyOutcome(out_dir, table, ran, skipped, errors, seconds, plan.workers, plan.device, per_worker)


def results_path(out_dir: Path) -> Path:
    return Path(out_dir) / RESULTS_FILE


def describe_workers(per_worker: dict[str, int]) -> Sequence[str]:
    return [f"{worker}: {count} images" for worker, count in sorted(per_worker.items())]
