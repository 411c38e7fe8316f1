"""The audit trail on Cassandra: ``audit_log`` rows with a TTL, one partition per target and
time bucket (see ``cassandra_schema/0005_audit_log.cql``).

A read walks the target's buckets back from now, a few at a time, until it has ``limit``
records or has passed the retention. A day bucket (an hour for a key id, whose records come
by the thousand a second) keeps partitions small and a sparse target's read short: 30 days of
retention are at most 30 reads, or 720 small ones for a key that filed nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from podium.store.api import AuditEntry, AuditStore
from podium.store.cassandra_backend.session import CassandraSession, gather_limited, retention_ttl_s
from podium.store.cassandra_backend.statements import Statements
from podium.store.codec import decode, encode
from podium.store.config import StoreConfig
from podium.store.model import Record

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: Buckets read at once while walking back in time.
BUCKETS_PER_ROUND = 8


def bucket_ms(kind: str) -> int:
    """How much time one partition of ``kind`` covers."""
    return HOUR_MS if kind == "keyId" else DAY_MS


class CassandraAudit(AuditStore):
    """:class:`AuditStore` on the ``audit_log`` table."""

    def __init__(self, db: CassandraSession, st: Statements, config: StoreConfig) -> None:
        self._db = db
        self._st = st
        self._cfg = config

    async def append(
        self, entries: Sequence[AuditEntry], *, retention_ms: int, max_per_target: int
    ) -> None:
        ttl_s = retention_ttl_s(retention_ms)  # reads leave out what is older anyway
        calls = []
        for e in entries:
            blob = encode(e.record, self._cfg.max_record_bytes, "audit record")
            bucket = e.time_ms // bucket_ms(e.kind)
            params = (e.kind, e.target, bucket, e.time_ms, e.record_id, blob, ttl_s)
            calls.append((self._st.audit_put, params))
        await self._db.write_many(calls)

    async def query(
        self, kind: str, target: str, *, limit: int, now_ms: int, retention_ms: int
    ) -> list[Record]:
        size = bucket_ms(kind)
        oldest_ms = now_ms - retention_ms
        newest, last = now_ms // size, oldest_ms // size
        records: list[Record] = []
        bucket = newest
        while bucket >= last and len(records) < limit:
            round_ = list(range(bucket, max(last, bucket - BUCKETS_PER_ROUND + 1) - 1, -1))
            want = limit - len(records)
            pages = await gather_limited(
                self._db.execute(self._st.audit_get, (kind, target, b, want)) for b in round_
            )
            for rows in pages:  # newest bucket first, each newest first
                records.extend(decode(row["record"]) for row in rows)
            bucket = round_[-1] - 1
        fresh = [r for r in records if int(r.get("time", 0)) >= oldest_ms]
        return fresh[:limit]
