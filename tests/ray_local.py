"""The Ray tests' shared pieces: whether the scale extra is missing, and one private local Ray instance per module.

Use: `if SCALE_MISSING: pytest.skip(SCALE_MISSING, allow_module_level=True)` before importing pyarrow, and
`@pytest.mark.usefixtures("local_ray")` on each test that runs Ray.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# Checked without importing ray: importing it would fix its loopback setting before the engine's own init_ray.
SCALE_MISSING = (
    "needs the scale extra: pip install .[scale]"
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("pyarrow") is None
    else ""
)


@pytest.fixture(scope="module")
def local_ray():
    """One private Ray instance for the module: 2 CPU workers plus one CPU for the read task."""
    from explainers.study.ray_engine import init_ray

    started = init_ray(None, local_cpus=3)  # before any `import ray`: it reads its loopback setting on import
    import ray
    from ray.data import DataContext

    # Dispatch only once every actor is up: otherwise, on a busy machine, the first actor ready can take every
    # batch of a small test set, and "both actors took images" would depend on start order.
    DataContext.get_current().wait_for_min_actors_s = 600

    yield
    if started:
        ray.shutdown()


def kill_after_first_part(command: list[str], cwd: Path, has_part: Callable[[], bool], bound_s: float) -> None:
    """Start `command` in its own session, wait until `has_part()` (its first saved part), then SIGKILL the whole
    session: the run and the Ray processes it started, as a power cut or an OOM killer would."""
    process = subprocess.Popen(
        command, cwd=cwd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + bound_s
        while not has_part() and time.monotonic() < deadline:
            assert process.poll() is None, "the run ended before writing its first part"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
