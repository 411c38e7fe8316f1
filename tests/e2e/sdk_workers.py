"""Workers written with the official Python SDK (conductor-python), run as their own processes.

    python -m tests.e2e.sdk_workers <server_api_url> <task prefix>

Every function below becomes a worker for the task type ``<prefix><name>`` through the SDK's
``@worker_task`` decorator; ``TaskHandler`` then starts one OS process per worker (the SDK's
default isolation, start method ``spawn``), which polls ``/tasks/poll/batch`` and reports with
``/tasks/update-v2``. The task names depend on the prefix given on the command line, so the
decorator is applied to the module-level functions in :func:`register` instead of with ``@``
syntax: the registered functions stay importable by name, which is what the spawned processes
need to unpickle them.

The workers keep no state: the flaky one decides from the task's ``retryCount`` whether to fail.
Stop the whole group with SIGTERM (the test fixture kills the process group).

No ``from __future__ import annotations`` here: the SDK recognises a parameter typed ``Task``
by comparing the annotation object, which would then be the string ``"Task"``.
"""

import logging
import os
import signal
import sys
import threading
from typing import Any

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.http.models.task import Task
from conductor.client.worker.exception import NonRetryableException
from conductor.client.worker.worker_task import worker_task

#: Idle cadence of each worker's poll loop (the server also holds each poll up to 100 ms).
POLL_INTERVAL_MS = int(os.environ.get("PODIUM_E2E_POLL_INTERVAL_MS", "20"))


def echo(text: object = None, tag: object = None) -> dict[str, Any]:
    """Returns its input, and where it ran."""
    return {"text": text, "tag": tag, "pid": os.getpid()}


def add(a: int = 0, b: int = 0) -> dict[str, Any]:
    return {"sum": int(a) + int(b), "pid": os.getpid()}


def flaky(task: Task) -> dict[str, Any]:
    """Fails while the attempt's ``retryCount`` is below ``inputData.fail_until``."""
    fail_until = int((task.input_data or {}).get("fail_until", 0))
    attempt = int(task.retry_count or 0)
    if attempt < fail_until:
        raise RuntimeError(f"flaky failure on attempt {attempt}")
    return {"attempt": attempt, "value": (task.input_data or {}).get("value")}


def always_fail(reason: str = "always fails") -> dict[str, Any]:
    raise RuntimeError(reason)


def terminal_fail(reason: str = "no retry please") -> dict[str, Any]:
    raise NonRetryableException(reason)


#: (name suffix, function, threads)
WORKERS: list[tuple[str, Any, int]] = [
    ("echo", echo, 4),
    ("add", add, 2),
    ("flaky", flaky, 2),
    ("always_fail", always_fail, 1),
    ("terminal_fail", terminal_fail, 1),
]


def task_names(prefix: str) -> dict[str, str]:
    """Suffix → task type, for a prefix."""
    return {suffix: f"{prefix}{suffix}" for suffix, _, _ in WORKERS}


def register(prefix: str) -> None:
    for suffix, fn, threads in WORKERS:
        worker_task(
            task_definition_name=f"{prefix}{suffix}",
            poll_interval_millis=POLL_INTERVAL_MS,
            thread_count=threads,
        )(fn)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tests.e2e.sdk_workers <server_api_url> <task prefix>")
        return 2
    url, prefix = argv
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(process)d %(message)s")
    register(prefix)
    handler = TaskHandler(configuration=Configuration(server_api_url=url))
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    handler.start_processes()
    print(f"sdk workers started: {sorted(task_names(prefix).values())}", flush=True)
    parent = os.getppid()
    try:
        # Also stop when orphaned (the test run that started us died without stopping us).
        while not stop.wait(1.0) and os.getppid() == parent:
            pass
    finally:
        handler.stop_processes()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
