"""The audit trail on Redis: one capped list per target, newest record first.

A batch of entries is one call of ``audit_append.lua`` (one command to build and one reply
to read, however many entries: a pipeline of three commands per entry cost the gateway ten
times more): per entry ``LPUSH`` the record, ``LTRIM`` the list to the newest
``max_per_target`` and ``PEXPIRE`` it by the retention. A list so lives for the retention
after its last write; a read drops the records in it that are older than the retention.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from podium.store.api import AuditEntry, AuditStore
from podium.store.codec import decode, encode
from podium.store.config import StoreConfig
from podium.store.model import Record
from podium.store.redis_backend.keys import Keys
from podium.store.redis_backend.replies import redis_errors
from podium.store.redis_backend.scripts import Scripts


class RedisAudit(AuditStore):
    """:class:`AuditStore` on Redis lists."""

    def __init__(self, client: Redis, keys: Keys, scripts: Scripts, config: StoreConfig) -> None:
        self._r = client
        self._k = keys
        self._s = scripts
        self._cfg = config

    async def append(
        self, entries: Sequence[AuditEntry], *, retention_ms: int, max_per_target: int
    ) -> None:
        if not entries:
            return
        keys, blobs = [], []
        encoded: dict[int, bytes] = {}  # a record filed under several targets is encoded once
        for e in entries:
            blob = encoded.get(id(e.record))
            if blob is None:
                blob = encode(e.record, self._cfg.max_record_bytes, "audit record")
                encoded[id(e.record)] = blob
            keys.append(self._k.audit(e.kind, e.target))
            blobs.append(blob)
        with redis_errors("audit"):
            await self._s.audit_append(keys=keys, args=[max_per_target, retention_ms, *blobs])

    async def query(
        self, kind: str, target: str, *, limit: int, now_ms: int, retention_ms: int
    ) -> list[Record]:
        if limit <= 0:
            return []
        with redis_errors("audit"):
            blobs = await self._r.lrange(self._k.audit(kind, target), 0, limit - 1)
        oldest = now_ms - retention_ms
        records = [r for r in map(decode, blobs) if int(r.get("time", 0)) >= oldest]
        # Gateways file their batches independently: order by time, not by arrival.
        records.sort(key=lambda r: -int(r.get("time", 0)))
        return records
