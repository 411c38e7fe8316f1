"""Lease recovery: expired leases return to ready, from any replica, atomically."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from podium.errors import PodiumError, Unavailable
from queue_service.long_poll import SCAN_LIMIT, LongPolls
from queue_service.registry import ShardRegistry

log = logging.getLogger("podium.queue")


class LeaseRecovery:
    """A pass over every known queue's leases, and the loop that runs one every interval."""

    def __init__(
        self,
        registry: ShardRegistry,
        polls: LongPolls,
        clock: Callable[[], int],
        interval_s: float,
    ) -> None:
        self._registry = registry
        self._polls = polls
        self._clock = clock
        self._interval_s = interval_s
        self.stopping = False
        self.requeued = 0

    async def requeue_expired(self) -> int:
        """Return every expired lease of every known queue to ready; returns how many moved."""
        moved = 0
        for queue in await self._registry.list_queues():
            try:
                shards = await self._registry.shards_of(queue)
            except PodiumError:
                continue
            for shard in shards:
                k = shard.keys(queue)
                polls = self._polls
                try:
                    while True:
                        n = await shard.run(
                            "requeue",
                            [k.ready, k.leased],
                            [self._clock(), SCAN_LIMIT, polls.channel, polls.note(queue)],
                        )
                        moved += int(n)
                        if n > 0:
                            self._polls.wake(queue, [shard.name])
                        if n < SCAN_LIMIT:
                            break
                except Unavailable:
                    continue
        self.requeued += moved
        return moved

    async def run(self) -> None:
        # A drift-free schedule: ticks at fixed times, a slow pass skips ticks, never piles up.
        loop = asyncio.get_running_loop()
        interval = self._interval_s
        next_tick = loop.time()
        while not self.stopping:
            try:
                await self.requeue_expired()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lease recovery pass failed; retrying next tick")
            next_tick += interval
            now = loop.time()
            if next_tick < now:
                next_tick = now + interval
            await asyncio.sleep(next_tick - now)
