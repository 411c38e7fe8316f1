"""The next task ``POST /api/tasks/update-v2`` hands a worker with its answer.

The official SDKs send every result with update-v2 from many threads, and each answer carries
the worker's next task of the same type and domain, fetched without waiting. Fetched one by
one, each answer costs a queue pop and a decider claim of its own; here the fetches of one
queue that arrive while one is under way go out together (:class:`~podium.aio.Merged`): one
pop of as many messages as callers, then one claim per worker id among them. An idle gateway
so fetches each at once, a busy one makes one pop and one claim for many answers.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING

from api_gateway import polling
from podium.aio import Merged
from podium.types import JSON

if TYPE_CHECKING:
    from api_gateway.context import Gateway

#: Fetches of one queue under way at once; callers that come while they are wait and go
#: together when one returns.
FETCHES_IN_FLIGHT = 1


class NextTasks:
    """Fetches the next task of a (task type, domain) for update-v2, merged per queue."""

    def __init__(self, gateway: Gateway, max_in_flight: int = FETCHES_IN_FLIGHT) -> None:
        self._gateway = gateway
        self._max_in_flight = max_in_flight
        self._queues: dict[tuple[str, str | None], Merged[str | None, JSON | None]] = {}

    async def take(self, task_type: str, domain: str | None, worker_id: str | None) -> JSON | None:
        """A task of ``task_type`` in ``domain`` claimed for ``worker_id``, or None."""
        queue = polling.task_queue(task_type, domain)  # checked before anything is merged
        key = (task_type, domain)
        merged = self._queues.get(key)
        if merged is None:
            merged = Merged(
                partial(self._fetch, queue, task_type, domain),
                max_in_flight=self._max_in_flight,
                name=f"next task {queue}",
            )
            self._queues[key] = merged
        try:
            return await merged(worker_id)
        finally:
            if merged.idle and self._queues.get(key) is merged:
                del self._queues[key]  # kept only while in use: any type may be polled

    async def _fetch(
        self, queue: str, task_type: str, domain: str | None, workers: list[str | None]
    ) -> list[JSON | BaseException | None]:
        """One pop for every caller, then one claim per worker id; a caller left without a
        message, or whose claim was refused, gets None."""
        gateway = self._gateway
        received = await polling.pop_for_claim(gateway, queue, task_type, len(workers), 0)
        slots: dict[str | None, list[int]] = {}
        for i in range(len(received)):
            slots.setdefault(workers[i], []).append(i)
        results: list[JSON | BaseException | None] = [None] * len(workers)
        owners = list(slots)
        answers = await asyncio.gather(
            *(polling.claim(gateway, queue, [received[i] for i in slots[w]], w) for w in owners),
            return_exceptions=True,
        )
        for worker, answer in zip(owners, answers, strict=True):
            if isinstance(answer, BaseException):
                for i in slots[worker]:
                    results[i] = answer
                continue
            # The claimed tasks are the worker's in any order; those refused leave None.
            for i, task in zip(slots[worker], answer, strict=False):
                results[i] = task
        handed = sum(1 for r in results if isinstance(r, dict))
        if handed:
            polling.count_polls(gateway, handed, True)
        if handed < len(workers):
            polling.count_polls(gateway, len(workers) - handed, False)
        for worker in {*workers}:
            await polling.record_poll(gateway, task_type, domain, worker)
        return results

    async def close(self) -> None:
        for merged in list(self._queues.values()):
            await merged.close()
        self._queues.clear()
