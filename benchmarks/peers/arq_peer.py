# mypy: disable-error-code="import-not-found"
"""arq side of the job-queue comparison (runs in the arq venv, see ``venvs.py``).

    BENCH_REDIS_URL=... python -m benchmarks.peers.arq_peer worker
    BENCH_REDIS_URL=... python -m benchmarks.peers.arq_peer produce N     # prints one JSON line

Worker settings: arq's defaults (``max_jobs=10``) except ``keep_result=0`` (no result is stored,
as Celery runs without a result backend) and ``poll_delay=0.05`` s (default 0.5 s, which only
delays the first pick-up after an idle spell).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from benchmarks.peers.progress import Progress, mark_ready, redis_address

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PROGRESS = Progress(REDIS_URL)
ENQUEUE_CONCURRENCY = 50


async def noop(ctx: dict[str, Any]) -> None:
    PROGRESS.done()


async def _startup(ctx: dict[str, Any]) -> None:
    await asyncio.to_thread(mark_ready, REDIS_URL)


def _settings() -> Any:
    from arq.connections import RedisSettings

    host, port = redis_address(REDIS_URL)
    return RedisSettings(host=host, port=port)


def worker() -> None:
    from arq.worker import Worker

    Worker(
        functions=[noop],
        redis_settings=_settings(),
        on_startup=_startup,
        keep_result=0,
        poll_delay=0.05,
        handle_signals=True,
    ).run()


async def produce(n: int) -> dict[str, float]:
    from arq.connections import create_pool

    pool = await create_pool(_settings())
    cpu0 = time.process_time()
    first = time.time()
    try:
        for start in range(0, n, ENQUEUE_CONCURRENCY):
            stop = min(n, start + ENQUEUE_CONCURRENCY)
            await asyncio.gather(*(pool.enqueue_job("noop") for _ in range(start, stop)))
        enqueued = time.time()
    finally:
        await pool.aclose()
    return {"first": first, "enqueued": enqueued, "cpu": time.process_time() - cpu0}


def main(argv: list[str]) -> int:
    command = argv[0]
    if command == "worker":
        worker()
    elif command == "produce":
        print(json.dumps(asyncio.run(produce(int(argv[1])))), flush=True)
    else:
        raise SystemExit(f"unknown command {command!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
