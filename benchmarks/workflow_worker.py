"""A small asyncio worker for Conductor-compatible servers (one of the driver's worker kinds).

Per task type it runs ``pollers`` loops; each batch-polls
``GET /tasks/poll/batch/{type}?count=&timeout=`` (a long poll) and completes every task it got
with ``POST /tasks`` (TaskResult COMPLETED, empty output) in the background, polling again at
once; at most ``batch x pollers`` tasks per type are in hand (polled, not yet updated).
It stops on SIGTERM/SIGINT or after ``--seconds``.

HTTP goes through ``http_lite`` (keep-alive HTTP/1.1 with h11): httpx's async pool cost
~2 ms of CPU per task here, CPU that on two cores would be taken from the server under test.
uvloop is used if present.

    python -m benchmarks.workflow_worker --url http://127.0.0.1:8080/api [--batch 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from typing import Any
from urllib.parse import urlencode

from benchmarks.http_lite import ERRORS, Pool

# The task types of the benchmark workflows (the SDK worker module uses the same names).
TASK_NAMES = ("bench_t1", "bench_t2", "bench_t3")


async def _poll_loop(
    pool: Pool,
    task_type: str,
    batch: int,
    timeout_ms: int,
    worker_id: str,
    stop: asyncio.Event,
    counts: dict[str, int],
    slots: asyncio.Semaphore,
) -> None:
    """Poll, hand the tasks to update coroutines, poll again without waiting for the updates
    (``slots`` bounds the tasks in hand)."""
    errors = 0
    updates: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        await slots.acquire()  # at least one free slot; take up to `batch`
        free = 1
        while free < batch and not slots.locked():
            await slots.acquire()
            free += 1
        query = urlencode({"count": free, "timeout": timeout_ms, "workerid": worker_id})
        tasks: list[dict[str, Any]] = []
        try:
            status, body = await pool.request("GET", f"/tasks/poll/batch/{task_type}?{query}")
            tasks = json.loads(body) if status == 200 and body else []
            errors = 0
        except (*ERRORS, ValueError):
            errors += 1
            counts["errors"] += 1
            await asyncio.sleep(min(2.0, 0.05 * 2**errors))
        for _ in range(free - len(tasks)):
            slots.release()
        for task in tasks:
            update = asyncio.ensure_future(_complete(pool, task, worker_id, counts, slots))
            updates.add(update)
            update.add_done_callback(updates.discard)
    if updates:
        await asyncio.wait(updates, timeout=10)


async def _complete(
    pool: Pool,
    task: dict[str, Any],
    worker_id: str,
    counts: dict[str, int],
    slots: asyncio.Semaphore,
) -> None:
    result = {
        "workflowInstanceId": task["workflowInstanceId"],
        "taskId": task["taskId"],
        "workerId": worker_id,
        "status": "COMPLETED",
        "outputData": {},
    }
    try:
        for attempt in range(3):
            status, _ = await pool.request("POST", "/tasks", result)
            if status < 500:
                break
            await asyncio.sleep(0.05 * (attempt + 1))
        counts["done"] += 1
    except ERRORS:
        counts["errors"] += 1
    finally:
        slots.release()


async def serve(
    url: str,
    task_types: tuple[str, ...] = TASK_NAMES,
    batch: int = 10,
    timeout_ms: int = 100,
    pollers: int = 2,
    seconds: float = 600.0,
) -> dict[str, int]:
    """Serve until stopped. ``url`` may list several servers (comma-separated, e.g. gateway
    replicas): each gets ``pollers`` loops per task type, as one more worker instance would."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(seconds, stop.set)
    worker_id = f"{socket.gethostname()}-{os.getpid()}"
    counts = {"done": 0, "errors": 0}
    pools = [Pool(u) for u in url.split(",") if u]
    slots = {t: asyncio.Semaphore(batch * pollers * len(pools)) for t in task_types}
    try:
        await asyncio.gather(
            *(
                _poll_loop(pool, t, batch, timeout_ms, worker_id, stop, counts, slots[t])
                for t in task_types
                for pool in pools
                for _ in range(pollers)
            )
        )
    finally:
        for pool in pools:
            pool.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--url", required=True, help="API base URL(s), comma-separated, e.g. http://h:8080/api"
    )
    parser.add_argument("--types", default=",".join(TASK_NAMES))
    parser.add_argument("--batch", type=int, default=10, help="tasks per poll")
    parser.add_argument("--poll-timeout-ms", type=int, default=100, help="long-poll wait")
    parser.add_argument("--pollers", type=int, default=2, help="poll loops per task type")
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long")
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    started = time.monotonic()
    counts = asyncio.run(
        serve(
            args.url,
            tuple(args.types.split(",")),
            args.batch,
            args.poll_timeout_ms,
            args.pollers,
            args.seconds,
        )
    )
    print(f"worker {os.getpid()}: {counts} in {time.monotonic() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
