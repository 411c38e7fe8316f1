"""Which shards each queue spreads over.

A queue records, the first time it is used, the list of shards it spreads over (the registry,
a hash kept on every shard). A message id always maps to the same shard of that list (CRC-32),
so by-id operations are one round trip. Shards added to the configuration later are used by
queues created later; existing queues keep their shards and their messages.
"""

from __future__ import annotations

import contextlib

from podium.errors import Unavailable
from queue_service.limits import QueueLimits, check_queue_name
from queue_service.shards import REGISTRY_KEY, Shard, shard_index


class ShardRegistry:
    """The shards of each queue, read from (or first written to) the shards, then cached."""

    def __init__(self, shards: list[Shard], limits: QueueLimits) -> None:
        self.shards = shards
        self.limits = limits
        self._by_name = {s.name: s for s in shards}
        self._queue_shards: dict[str, list[Shard]] = {}

    async def shards_of(self, queue: str) -> list[Shard]:
        """The shards a queue spreads over, recorded on first use and cached."""
        known = self._queue_shards.get(queue)
        if known is not None:
            return known
        check_queue_name(queue, self.limits)
        names = await self._registered(queue)
        if names is None:
            proposal = ",".join(s.name for s in self.shards)
            for shard in self.shards:
                with contextlib.suppress(Unavailable):
                    await shard.pipeline(lambda p: p.hsetnx(REGISTRY_KEY, queue, proposal))
            names = await self._registered(queue) or proposal.split(",")
        missing = [n for n in names if n not in self._by_name]
        if missing:
            raise Unavailable(
                f"queue {queue!r} lives on shards {missing} that this replica is not configured "
                "with; add them to PODIUM_QUEUE_SHARDS",
                queue=queue,
            )
        shards = [self._by_name[n] for n in names]
        self._queue_shards[queue] = shards
        return shards

    async def _registered(self, queue: str) -> list[str] | None:
        errors = 0
        for shard in self.shards:
            try:
                (raw,) = await shard.pipeline(lambda p: p.hget(REGISTRY_KEY, queue))
            except Unavailable:
                errors += 1
                continue
            if raw is not None:
                return str(raw.decode()).split(",")
        if errors == len(self.shards):
            raise Unavailable("no queue shard is reachable", queue=queue)
        return None

    async def list_queues(self) -> list[str]:
        names: set[str] = set()
        for shard in self.shards:
            with contextlib.suppress(Unavailable):
                (found,) = await shard.pipeline(lambda p: p.hkeys(REGISTRY_KEY))
                names.update(n.decode() for n in found)
        return sorted(names)

    async def shard_for(self, queue: str, msg_id: str) -> Shard:
        shards = await self.shards_of(queue)
        return shards[shard_index(msg_id, len(shards))]
