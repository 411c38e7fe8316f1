# mypy: disable-error-code="import-untyped,untyped-decorator"
"""Workers written with the official Conductor Python SDK (``conductor-python``), as a user would.

Runs in the SDK's own venv (see ``venvs.py``). Three no-op ``@worker_task`` functions, one per
benchmark task type, served by a ``TaskHandler`` (one OS process per task type, the SDK's
default isolation). Thread count and poll interval come from the SDK's own environment
overrides, set by the driver: ``conductor.worker.all.thread_count`` (also the batch-poll size)
and ``conductor.worker.all.poll_interval`` (ms, the idle back-off cap).

    CONDUCTOR_SERVER_URL=http://127.0.0.1:8080/api python -m benchmarks.peers.sdk_worker [SECONDS]
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.worker.worker_task import worker_task

from benchmarks.workflow_worker import TASK_NAMES

assert TASK_NAMES == ("bench_t1", "bench_t2", "bench_t3")


@worker_task(task_definition_name="bench_t1")
def bench_t1() -> dict[str, Any]:
    return {}


@worker_task(task_definition_name="bench_t2")
def bench_t2() -> dict[str, Any]:
    return {}


@worker_task(task_definition_name="bench_t3")
def bench_t3() -> dict[str, Any]:
    return {}


def main(argv: list[str]) -> int:
    seconds = float(argv[0]) if argv else 600.0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    handler = TaskHandler(
        workers=[],
        configuration=Configuration(),  # CONDUCTOR_SERVER_URL from the environment
        scan_for_annotated_workers=True,
        import_modules=["benchmarks.peers.sdk_worker"],
    )
    handler.start_processes()
    try:
        stop.wait(seconds)
    finally:
        handler.stop_processes()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
