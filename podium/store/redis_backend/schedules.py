"""Schedules and their runs on Redis.

Layout (under the store's prefix): ``sched:defs`` (hash: name -> schedule),
``sched:cursors`` (hash: name -> epoch ms), and per schedule ``sched:runs:<name>`` (hash:
scheduled time -> run) with ``sched:runidx:<name>`` (sorted set of scheduled times). A claim
is one call of ``schedule_claim.lua``: HSETNX decides which caller's run it is, and the same
call drops the runs older than the retention.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from podium.errors import NotFound
from podium.store.api import ScheduleStore
from podium.store.codec import decode, encode
from podium.store.config import StoreConfig
from podium.store.model import Record
from podium.store.redis_backend.keys import part
from podium.store.redis_backend.replies import redis_errors
from podium.store.redis_backend.scripts import _source


class RedisSchedules(ScheduleStore):
    """:class:`ScheduleStore` on Redis hashes and sorted sets."""

    def __init__(self, client: Redis, config: StoreConfig) -> None:
        self._r = client
        self._cfg = config
        self._p = config.key_prefix
        self._claim = client.register_script(_source("schedule_claim"))

    def _defs(self) -> str:
        return f"{self._p}sched:defs"

    def _cursors(self) -> str:
        return f"{self._p}sched:cursors"

    def _runs(self, name: str) -> str:
        return f"{self._p}sched:runs:{part(name)}"

    def _index(self, name: str) -> str:
        return f"{self._p}sched:runidx:{part(name)}"

    async def put_schedule(self, schedule: Record) -> None:
        name = str(schedule["name"])
        blob = encode(schedule, self._cfg.max_record_bytes, f"schedule {name}")
        with redis_errors("schedules"):
            await self._r.hset(self._defs(), name, blob)

    async def get_schedule(self, name: str) -> Record:
        with redis_errors("schedules"):
            blob = await self._r.hget(self._defs(), name)
        if blob is None:
            raise NotFound(f"No such schedule: {name}", name=name)
        return decode(blob)

    async def list_schedules(self) -> list[Record]:
        with redis_errors("schedules"):
            found = await self._r.hgetall(self._defs())
        return [decode(found[k]) for k in sorted(found)]

    async def remove_schedule(self, name: str) -> None:
        with redis_errors("schedules"):
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hdel(self._defs(), name)
                pipe.hdel(self._cursors(), name)
                removed, _ = await pipe.execute()
        if not removed:
            raise NotFound(f"No such schedule: {name}", name=name)

    async def get_cursor(self, name: str) -> int | None:
        with redis_errors("schedules"):
            value = await self._r.hget(self._cursors(), name)
        return None if value is None else int(value)

    async def set_cursor(self, name: str, time_ms: int) -> None:
        with redis_errors("schedules"):
            await self._r.hset(self._cursors(), name, str(time_ms))

    async def claim_run(self, run: Record, *, retention_ms: int) -> bool:
        name, at = str(run["scheduleName"]), int(run["scheduledTime"])
        blob = encode(run, self._cfg.max_record_bytes, f"run of schedule {name}")
        with redis_errors("schedules"):
            claimed = await self._claim(
                keys=[self._runs(name), self._index(name)],
                args=[at, blob, at - retention_ms, retention_ms],
            )
        return bool(claimed)

    async def update_run(self, run: Record, *, retention_ms: int) -> None:
        name, at = str(run["scheduleName"]), int(run["scheduledTime"])
        blob = encode(run, self._cfg.max_record_bytes, f"run of schedule {name}")
        with redis_errors("schedules"):
            await self._r.hset(self._runs(name), str(at), blob)

    async def search_runs(
        self,
        schedule_names: Sequence[str],
        *,
        from_ms: int,
        to_ms: int,
        start: int = 0,
        size: int = 100,
    ) -> dict[str, Any]:
        total = 0
        hits: list[tuple[int, str]] = []
        with redis_errors("schedules"):
            for name in schedule_names:
                idx = self._index(name)
                total += await self._r.zcount(idx, from_ms, to_ms)
                times = await self._r.zrevrangebyscore(
                    idx, to_ms, from_ms, start=0, num=start + size
                )
                hits.extend(
                    (int(str(t, "ascii") if isinstance(t, bytes) else str(t)), name) for t in times
                )
            hits.sort(key=lambda h: (-h[0], h[1]))
            page = hits[start : start + size]
            wanted: dict[str, list[str]] = {}
            for at, name in page:
                wanted.setdefault(name, []).append(str(at))
            blobs: dict[tuple[str, str], bytes] = {}
            for name, keys in wanted.items():  # one read per schedule
                found = await self._r.hmget(self._runs(name), keys)
                for at_text, blob in zip(keys, found, strict=True):
                    if isinstance(blob, bytes):
                        blobs[(name, at_text)] = blob
            results = [
                decode(blobs[(name, str(at))]) for at, name in page if (name, str(at)) in blobs
            ]
        return {"totalHits": total, "results": results}
