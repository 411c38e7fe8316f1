# mypy: disable-error-code="import-not-found,untyped-decorator"
"""Celery side of the job-queue comparison (runs in the Celery venv, see ``venvs.py``).

    BENCH_REDIS_URL=... celery -A benchmarks.peers.celery_peer:app worker --pool=solo ...
    BENCH_REDIS_URL=... python -m benchmarks.peers.celery_peer produce N   # prints one JSON line

Redis broker, no result backend (``task_ignore_result``), otherwise Celery's defaults
(prefetch multiplier 4, early ack). The worker command line is built by ``task_queues.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from celery import Celery
from celery.signals import worker_ready

from benchmarks.peers.progress import Progress, mark_ready

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PROGRESS = Progress(REDIS_URL)

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    task_ignore_result=True,
    result_backend=None,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop() -> None:
    PROGRESS.done()


@worker_ready.connect
def _ready(**_: Any) -> None:
    mark_ready(REDIS_URL)


def produce(n: int) -> dict[str, float]:
    cpu0 = time.process_time()
    first = time.time()
    for _ in range(n):
        noop.apply_async()
    enqueued = time.time()
    return {"first": first, "enqueued": enqueued, "cpu": time.process_time() - cpu0}


def main(argv: list[str]) -> int:
    if argv[0] != "produce":
        raise SystemExit(f"unknown command {argv[0]!r}")
    with app.producer_or_acquire() as producer:  # connect before the clock starts
        producer.connection.ensure_connection(max_retries=3)
    print(json.dumps(produce(int(argv[1]))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
