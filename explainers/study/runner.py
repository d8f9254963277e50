"""Run the study on Ray Data: the source streamed in blocks, one model per actor, results written in parts.

Why Ray Data and not a process pool: the same code runs embedded on a laptop (ray.init() starts a
private local instance, nothing to install or start) and on a cluster given its address, with GPU
actors where there are GPUs; it streams blocks with backpressure, so memory stays bounded however
large the source; and a crashed actor is restarted by Ray instead of losing the run.

Resuming: the driver writes every batch that comes back as one Parquet part (atomically). A run
reads the ids in the parts first and sends only the others to Ray, so a killed run, started again
with the same command, finishes with each image exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from explainers.comparison.masks import DEFAULT_RULE
from explainers.errors import XaiLensError, first_line
from explainers.study.results import (
    RESULTS_FILE,
    StudyColumns,
    combine_parts,
    dice_column,
    finished_ids,
    iou_column,
    metric_column,
    seconds_column,
    write_part,
)
from explainers.study.sources import StudyRecord, StudySource

SETTINGS_FILE = "study.json"
DEFAULT_BATCH_SIZE = 4  # images per actor call and per Parquet part: small, so a killed run loses little
OBJECT_STORE_BYTES = 256 * 2**20  # the local instance's shared memory: blocks are a few images each
LOCAL_HOST = "127.0.0.1"
LOCAL_INSTANCE = "local"  # ray.init's word for "start a new instance here"; no address would join a running one
ADDRESS_ENV = "RAY_ADDRESS"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a single-machine instance, services on 127.0.0.1 only


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
        rows = [study_row(StudyRecord(**record), self.model, self.settings) for record in batch.to_pylist()]
        return self.settings.columns.table(rows)


# --- the source as a Ray datasource ---------------------------------------------------------------

RECORD_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("true_class", pa.string()),
        ("class_index", pa.int32()),
        ("path", pa.string()),
        ("data", pa.binary()),
    ]
)


def pending_records(source: StudySource, done: set[str], limit: int | None, block_rows: int) -> Iterator[pa.Table]:
    """The source's first `limit` records minus the finished ones, as Arrow blocks of `block_rows` rows."""
    block: list[dict[str, Any]] = []
    seen: set[str] = set()
    for position, record in enumerate(source.records()):
        if limit is not None and position >= limit:
            break
        if record.id in done or record.id in seen:
            continue
        seen.add(record.id)
        block.append(record.as_row())
        if len(block) == block_rows:
            yield pa.Table.from_pylist(block, schema=RECORD_SCHEMA)
            block = []
    if block:
        yield pa.Table.from_pylist(block, schema=RECORD_SCHEMA)


def _datasource(source: StudySource, done: set[str], limit: int | None, block_rows: int) -> Any:
    """One streaming read task over the source (listing order matters for --limit; the work is downstream)."""
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class StudyDatasource(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_name(self) -> str:
            return "StudySource"

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None):
            metadata = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            return [ReadTask(lambda: pending_records(source, done, limit, block_rows), metadata)]

    return StudyDatasource()


# --- Ray ----------------------------------------------------------------------------------------


def quiet_ray_environment() -> None:
    """No usage statistics, no dashboard: the study runs offline, reports to nobody, and prints only its own bar."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray's C++ core logs harmless notes at error level (e.g. about restartable actors' arguments).
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")


def init_ray(address: str | None, local_cpus: int) -> bool:
    """Connect to `address` (or $RAY_ADDRESS), else start a small private instance on 127.0.0.1.

    Returns True when this call started Ray (and so should shut it down). An instance already
    initialised in this process (a test's, a notebook's) is used as it is.
    """
    quiet_ray_environment()
    address = address or os.environ.get(ADDRESS_ENV) or None
    if not address:
        # Ray binds its local services to the machine's address unless told it is not a cluster node, which
        # it reads once, when first imported: a process that imported ray earlier keeps Ray's default.
        os.environ.setdefault(LOOPBACK_ENV, "0")
    import ray

    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(
                address=LOCAL_INSTANCE,  # a private instance, even where `ray start` left one running
                num_cpus=local_cpus,
                object_store_memory=OBJECT_STORE_BYTES,
                _node_ip_address=LOCAL_HOST,
                **options,
            )
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError ... from ray.init: one line for all
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise XaiLensError(f"Could not start or reach {where}: {first_line(exc)}") from None
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False  # the study shows its own single bar
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes ("execution finished", "bars disabled")
    return True


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


def default_workers(gpus: float, cpus: float, cpus_per_worker: int) -> int:
    """One actor per GPU; on CPUs, as many single-model actors as fit beside one CPU for the read task."""
    if gpus >= 1:
        return int(gpus)
    return max(1, int(cpus) // cpus_per_worker - 1)


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
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    _save_settings(out_dir, source, settings)
    done = finished_ids(out_dir)
    local_cpus = (workers or max(1, (os.cpu_count() or 2) - 1)) * cpus_per_worker + 1
    started_ray = init_ray(address, local_cpus)
    import ray

    try:
        resources = ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
        workers = workers or default_workers(gpus, cpus, cpus_per_worker)
        device = "gpu" if gpus >= 1 else "cpu"
        dataset = ray.data.read_datasource(_datasource(source, done, limit, batch_size)).map_batches(
            ExplainActor,
            fn_constructor_kwargs={"settings": settings, "threads": cpus_per_worker},
            batch_size=batch_size,
            batch_format="pyarrow",
            concurrency=workers,
            num_cpus=cpus_per_worker if device == "cpu" else 1,
            num_gpus=1 if device == "gpu" else 0,
        )
        total = None if limit is None and source.size is None else min(x for x in (limit, source.size) if x is not None)
        pending_total = None if total is None else max(0, total - len(done))
        ran = errors = 0
        per_worker: dict[str, int] = {}
        begun = time.perf_counter()
        description = f"study ({workers} {device} workers)"
        with tqdm(total=pending_total, desc=description, unit="image", disable=not progress) as bar:
            for batch in _batches(dataset):
                ids = batch.column("id").to_pylist()
                fresh = [index for index, image_id in enumerate(ids) if image_id not in done]
                if not fresh:
                    continue
                batch = batch.take(fresh)
                write_part(batch, out_dir)
                done.update(batch.column("id").to_pylist())
                failed = sum(error is not None for error in batch.column("error").to_pylist())
                for worker in batch.column("worker").to_pylist():
                    per_worker[worker] = per_worker.get(worker, 0) + 1
                ran, errors = ran + batch.num_rows, errors + failed
                bar.update(batch.num_rows)
                bar.set_postfix(errors=errors)
                if on_batch is not None:
                    on_batch(batch)
        seconds = time.perf_counter() - begun
    finally:
        if started_ray:
            ray.shutdown()
    table = combine_parts(out_dir, settings.columns)
    skipped = table.num_rows - ran
    return StudyOutcome(out_dir, table, ran, skipped, errors, seconds, workers, device, per_worker)


def _batches(dataset: Any) -> Iterator[pa.Table]:
    """The results as Ray produces them; a failure of Ray itself (not of an image) ends the run in one line."""
    try:
        yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")
    except XaiLensError:
        raise
    except Exception as exc:  # an actor that cannot start (e.g. weights missing on a node), a lost cluster
        raise XaiLensError(
            f"The study stopped: {first_line(root_cause(exc))}; finished images are saved, "
            "run the same command to resume."
        ) from None


def root_cause(exc: BaseException) -> BaseException:
    """The exception inside Ray's wrappers (task error -> user-code error -> the real one), for a useful line."""
    seen = {id(exc)}
    while True:
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def results_path(out_dir: Path) -> Path:
    return Path(out_dir) / RESULTS_FILE


def describe_workers(per_worker: dict[str, int]) -> Sequence[str]:
    return [f"{worker}: {count} images" for worker, count in sorted(per_worker.items())]
