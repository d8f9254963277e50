"""The one Ray setup the study and the dissection build share: start or join Ray, stream a source through actors.

Why Ray Data and not a process pool: the same code runs embedded on a laptop (ray.init() starts a
private local instance, nothing to install or start) and on a cluster given its address, with GPU
actors where there are GPUs; it streams blocks with backpressure, so memory stays bounded however
large the source; and a crashed actor is restarted by Ray instead of losing the run.

Resuming is the callers' part, with one shared rule: the driver saves every batch that comes back as
one Parquet part (explainers.study.results.write_part) and a run sends Ray only the ids no part holds.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from explainers.errors import XaiLensError, first_line
from explainers.study.results import write_part
from explainers.study.sources import StudySource

OBJECT_STORE_BYTES = 256 * 2**20  # the local instance's shared memory: blocks are a few images each
LOCAL_HOST = "127.0.0.1"
LOCAL_INSTANCE = "local"  # ray.init's word for "start a new instance here"; no address would join a running one
ADDRESS_ENV = "RAY_ADDRESS"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": a single-machine instance, services on 127.0.0.1 only

RECORD_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("true_class", pa.string()),
        ("class_index", pa.int32()),
        ("path", pa.string()),
        ("data", pa.binary()),
        ("position", pa.int64()),  # the record's place in the source's listing: results are put back in that order
    ]
)


def quiet_ray_environment() -> None:
    """No usage statistics, no dashboard: runs are offline, report to nobody, and print only their own bar."""
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
        # What a new local instance does by default (token authentication on), said explicitly: Ray then keeps
        # quiet instead of printing a note about that default at every start. Only before Ray is imported: a
        # process that imported it already (a notebook, a script) has read its settings, and the GCS it would
        # start then fails to come up with the setting changed under it.
        if "ray" not in sys.modules:
            os.environ.setdefault(AUTH_MODE_ENV, "token")
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
    context.enable_progress_bars = False  # callers show their own single bar
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes ("execution finished", "bars disabled")
    return True


def default_workers(gpus: float, cpus: float, cpus_per_worker: int) -> int:
    """One actor per GPU; on CPUs, as many single-model actors as fit beside one CPU for the read task."""
    if gpus >= 1:
        return int(gpus)
    return max(1, int(cpus) // cpus_per_worker - 1)


@dataclass(frozen=True)
class RayPlan:
    """How many model actors run, on which kind of device, with how many CPU threads each."""

    workers: int
    device: str  # "gpu" or "cpu"
    cpus_per_worker: int = 1


@contextmanager
def ray_session(address: str | None, workers: int | None, cpus_per_worker: int = 1) -> Iterator[RayPlan]:
    """Ray started (locally, sized for `workers`) or joined, the actor plan read from its resources, then shut down
    again if this call started it."""
    local_cpus = (workers or max(1, (os.cpu_count() or 2) - 1)) * cpus_per_worker + 1
    started = init_ray(address, local_cpus)
    import ray

    try:
        resources = ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
        workers = workers or default_workers(gpus, cpus, cpus_per_worker)
        yield RayPlan(workers, "gpu" if gpus >= 1 else "cpu", cpus_per_worker)
    finally:
        if started:
            ray.shutdown()


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
        block.append({**record.as_row(), "position": position})
        if len(block) == block_rows:
            yield pa.Table.from_pylist(block, schema=RECORD_SCHEMA)
            block = []
    if block:
        yield pa.Table.from_pylist(block, schema=RECORD_SCHEMA)


def _datasource(source: StudySource, done: set[str], limit: int | None, block_rows: int) -> Any:
    """One streaming read task over the source (listing order matters for a limit; the work is downstream)."""
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class RecordDatasource(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_name(self) -> str:
            return "ImageSource"

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None):
            metadata = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            return [ReadTask(lambda: pending_records(source, done, limit, block_rows), metadata)]

    return RecordDatasource()


def actor_batches(
    source: StudySource,
    done: set[str],
    plan: RayPlan,
    actor: type,
    actor_kwargs: dict[str, Any],
    *,
    limit: int | None,
    batch_size: int,
    what: str,
) -> Iterator[pa.Table]:
    """Every pending record through a pool of `plan.workers` actors of class `actor` (built once each with
    `actor_kwargs`, called with an Arrow batch of RECORD_SCHEMA rows); their tables as they come back.

    A failure of Ray itself (not of one image: actors turn those into rows) ends the run in one line.
    """
    import ray

    dataset = ray.data.read_datasource(_datasource(source, done, limit, batch_size)).map_batches(
        actor,
        fn_constructor_kwargs=actor_kwargs,
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=plan.workers,
        num_cpus=plan.cpus_per_worker if plan.device == "cpu" else 1,
        num_gpus=1 if plan.device == "gpu" else 0,
    )
    try:
        yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")
    except XaiLensError:
        raise
    except Exception as exc:  # an actor that cannot start (e.g. weights missing on a node), a lost cluster
        raise XaiLensError(
            f"The {what} stopped: {first_line(root_cause(exc))}; finished images are saved, "
            "run the same command to resume."
        ) from None


def save_fresh(batch: pa.Table, done: set[str], out_dir: Path) -> pa.Table | None:
    """Write the rows of `batch` no part holds yet as one part and mark them done; None when all were done."""
    ids = batch.column("id").to_pylist()
    fresh = [index for index, image_id in enumerate(ids) if image_id not in done]
    if not fresh:
        return None
    batch = batch.take(fresh)
    write_part(batch, out_dir)
    done.update(batch.column("id").to_pylist())
    return batch


def save_as_they_come(
    batches: Iterator[pa.Table],
    done: set[str],
    out_dir: Path,
    total: int | None,
    description: str,
    *,
    progress: bool = True,
    on_returned: Callable[[pa.Table], None] | None = None,
) -> Iterator[pa.Table]:
    """Each batch's fresh rows saved as a part (save_fresh) and yielded, under one progress bar over the images
    still pending with the errors so far; `on_returned` sees every batch as the actors returned it."""
    from tqdm.auto import tqdm

    pending = None if total is None else max(0, total - len(done))
    errors = 0
    with tqdm(total=pending, desc=description, unit="image", disable=not progress) as bar:
        for batch in batches:
            if on_returned is not None:
                on_returned(batch)
            saved = save_fresh(batch, done, out_dir)
            if saved is None:
                continue
            errors += saved.num_rows - saved.column("error").null_count
            bar.update(saved.num_rows)
            bar.set_postfix(errors=errors)
            yield saved


def source_total(source: StudySource, limit: int | None) -> int | None:
    """Images the run will see (for the progress bar), None for a stream of unknown length without a limit."""
    known = [value for value in (limit, source.size) if value is not None]
    return min(known) if known else None


def root_cause(exc: BaseException) -> BaseException:
    """The exception inside Ray's wrappers (task error -> user-code error -> the real one), for a useful line."""
    seen = {id(exc)}
    while True:
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner
