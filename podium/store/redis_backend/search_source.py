"""The Redis side of search: per-day sorted sets of ids scored by time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from redis.asyncio import Redis

from podium.store.codec import decode, with_input
from podium.store.model import Record
from podium.store.redis_backend.keys import Keys
from podium.store.redis_backend.replies import redis_errors, text
from podium.store.search import NOT_INDEXED, Candidate, Kind


class RedisSearchSource:
    """Implements :class:`podium.store.search.SearchSource` over the store's keys."""

    def __init__(self, client: Redis, keys: Keys, max_scan: int) -> None:
        self._r = client
        self._k = keys
        self._max_scan = max_scan

    async def index_entries(
        self, kind: Kind, name: str | None, day: int, from_ms: int, to_ms: int
    ) -> list[Candidate]:
        with redis_errors("search"):
            rows = await self._r.zrevrangebyscore(
                self._k.index(kind, name, day),
                to_ms,
                from_ms,
                start=0,
                num=self._max_scan,
                withscores=True,
            )
        return [
            Candidate(int(score), text(member), None, name, day)
            for member, score in cast(list[tuple[bytes, float]], rows)
        ]

    async def load(self, kind: Kind, candidates: Sequence[Candidate]) -> list[Record | None]:
        if kind == "workflow":
            return await self.load_workflows([c.entity_id for c in candidates])
        owners = [c.workflow_id for c in candidates]
        missing = [i for i, w in enumerate(owners) if w is None]
        if missing:
            with redis_errors("search"):
                async with self._r.pipeline(transaction=False) as pipe:
                    for i in missing:
                        pipe.get(self._k.task_lookup(candidates[i].entity_id))
                    found = await pipe.execute()
            for i, wid in zip(missing, found, strict=True):
                owners[i] = text(wid) if wid is not None else None
        with redis_errors("search"):
            async with self._r.pipeline(transaction=False) as pipe:
                for c, wid in zip(candidates, owners, strict=True):
                    # An unknown owner reads a key that never exists: the slot stays None.
                    pipe.hget(self._k.workflow_tasks(wid or ""), c.entity_id)
                blobs = await pipe.execute()
        return [decode(b) if b is not None else None for b in blobs]

    async def load_workflows(self, ids: Sequence[str]) -> list[Record | None]:
        with redis_errors("read"):
            async with self._r.pipeline(transaction=False) as pipe:
                for wid in ids:
                    pipe.hmget(self._k.workflow(wid), ["rec", "inp"])
                replies = await pipe.execute()
        return [with_input(decode(rec), inp) if rec is not None else None for rec, inp in replies]

    async def drop_entries(self, kind: Kind, candidates: Sequence[Candidate]) -> None:
        with redis_errors("search"):
            async with self._r.pipeline(transaction=False) as pipe:
                for c in candidates:
                    pipe.zrem(self._k.index(kind, c.index_name, c.day), c.entity_id)
                await pipe.execute()

    async def correlation_candidates(self, name: str, correlation_id: str) -> list[Candidate]:
        with redis_errors("search"):
            members = await self._r.smembers(self._k.correlation(name, correlation_id))
        return [Candidate(0, text(m), text(m), None, NOT_INDEXED) for m in members]

    async def workflow_task_candidates(self, workflow_id: str) -> list[Candidate]:
        with redis_errors("search"):
            tids = await self._r.hkeys(self._k.workflow_tasks(workflow_id))
        return [Candidate(0, text(t), workflow_id, None, NOT_INDEXED) for t in tids]
