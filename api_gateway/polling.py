"""The poll path: queue pop (long poll) → decider claim → tasks, and poll data.

An empty poll costs one queue-service call, plus a poll-data write at most once per second
for each task type, domain and worker (polls with tasks included). Only popped messages go to
the decider, which marks the tasks IN_PROGRESS and acks their messages (Conductor's poll
auto-acks).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from api_gateway.checks import queue_name_problem
from podium import queues
from podium.errors import InvalidArgument, PodiumError
from podium.queue_client import Received
from podium.types import JSON

if TYPE_CHECKING:
    from api_gateway.context import Gateway

log = logging.getLogger("podium.gateway")


def task_queue(
    task_type: str,
    domain: str | None,
    namespace: str | None = None,
    isolation_group: str | None = None,
) -> str:
    """Conductor's worker queue name (``[domain:]taskType[@namespace][-isolationGroup]``),
    each part checked."""
    for what, value in (
        ("task type", task_type),
        ("domain", domain),
        ("execution namespace", namespace),
        ("isolation group", isolation_group),
    ):
        if value is None:
            continue
        problem = queue_name_problem(value)
        if problem or not value:
            raise InvalidArgument(f"Invalid {what} {value!r}: {problem or 'empty'}")
    name = queues.task_queue(task_type, domain, namespace, isolation_group)
    problem = queue_name_problem(name)
    if problem:
        raise InvalidArgument(f"Invalid queue name {name!r}: {problem}")
    return name


async def poll(
    gateway: Gateway,
    task_type: str,
    worker_id: str | None,
    domain: str | None,
    count: int,
    timeout_ms: int,
) -> list[JSON]:
    """Up to ``count`` tasks of ``task_type`` claimed for ``worker_id`` (maybe none)."""
    queue = task_queue(task_type, domain)
    received = await pop_for_claim(gateway, queue, task_type, count, timeout_ms)
    tasks = await claim(gateway, queue, received, worker_id) if received else []
    count_polls(gateway, 1, bool(tasks))
    await record_poll(gateway, task_type, domain, worker_id)
    return tasks


async def claim(
    gateway: Gateway, queue: str, received: list[Received], worker_id: str | None
) -> list[JSON]:
    """The decider's claims of popped messages for ``worker_id``: the tasks it gets."""
    items = [(r.id, _workflow_id(r.payload)) for r in received]
    try:
        tasks = await gateway.decider.claim(queue, items, worker_id, ack=True)
    except BaseException:
        # Nothing was handed out: make the messages visible again now rather than when
        # their lease runs out (a message the decider already acked is simply gone).
        await _release(gateway, queue, [r.id for r in received])
        raise
    gateway.stats.tasks_handed_out += len(tasks)
    return tasks


def count_polls(gateway: Gateway, polls: int, with_tasks: bool) -> None:
    gateway.stats.polls += polls
    if with_tasks:
        gateway.metrics.polls.labels("tasks").inc(polls)
    else:
        gateway.stats.empty_polls += polls
        gateway.metrics.polls.labels("empty").inc(polls)


async def pop_for_claim(
    gateway: Gateway, queue: str, task_type: str, count: int, timeout_ms: int
) -> list[Received]:
    """Pop up to ``count`` messages of ``queue`` for the decider to claim.

    They stay leased for the task type's claim lease (see :class:`~api_gateway.context.
    ClaimLeases`): if this gateway dies before the claim, they come back after that.
    """
    lease_ms = await gateway.claim_leases.lease_ms(task_type)
    return await gateway.queues.pop(queue, count, lease_ms=lease_ms, wait_ms=timeout_ms)


async def _release(gateway: Gateway, queue: str, ids: list[str]) -> None:
    for msg_id in ids:
        try:
            await gateway.queues.nack(queue, msg_id)
        except PodiumError as exc:
            log.warning("could not release %s in %s: %s", msg_id, queue, exc.message)


def _workflow_id(payload: Any) -> str:
    if isinstance(payload, bytes):
        return payload.decode("utf-8", "replace")
    return str(payload)


async def record_poll(
    gateway: Gateway, task_type: str, domain: str | None, worker_id: str | None
) -> None:
    """Write poll data (queueName = the task type), at most once a second per worker."""
    worker = worker_id or ""
    if not gateway.poll_data.due(task_type, domain, worker):
        return
    try:
        await gateway.store.executions.update_poll_data(
            task_type, domain, worker, int(time.time() * 1000)
        )
        gateway.stats.poll_data_writes += 1
    except PodiumError as exc:  # poll data is advisory: a failed write never fails a poll
        log.warning("poll data for %s not recorded: %s", task_type, exc.message)
