"""Contract: audit records are filed by target, read newest first, capped and expired."""

from __future__ import annotations

import time
import uuid

import pytest

from podium.store import AuditEntry, Store
from podium.store.cassandra_backend.session import retention_ttl_s
from tests.polling import eventually

DAY_MS = 86_400_000


def entry(kind: str, target: str, time_ms: int, **fields: object) -> AuditEntry:
    record_id = uuid.uuid4().hex
    record = {"id": record_id, "time": time_ms, "method": "POST", "status": 200, **fields}
    return AuditEntry(kind, target, time_ms, record_id, record)


async def test_records_come_back_by_target_newest_first(store: Store, ns: str) -> None:
    now = int(time.time() * 1000)
    wf, other = f"wf-{ns}", f"other-{ns}"
    entries = [entry("workflowId", wf, now - 3000 + i, n=i) for i in range(5)]
    entries.append(entry("workflowId", other, now, n=99))
    entries.append(entry("definition", wf, now, n=100))  # same name, another kind
    await store.audit.append(entries, retention_ms=DAY_MS, max_per_target=100)
    found = await store.audit.query("workflowId", wf, limit=10, now_ms=now, retention_ms=DAY_MS)
    assert [r["n"] for r in found] == [4, 3, 2, 1, 0]
    assert found[0]["id"] == entries[4].record_id and found[0]["status"] == 200
    two = await store.audit.query("workflowId", wf, limit=2, now_ms=now, retention_ms=DAY_MS)
    assert [r["n"] for r in two] == [4, 3]
    assert [r["n"] for r in await store.audit.query(
        "definition", wf, limit=10, now_ms=now, retention_ms=DAY_MS)] == [100]  # fmt: skip
    assert await store.audit.query(
        "keyId", wf, limit=10, now_ms=now, retention_ms=DAY_MS) == []  # fmt: skip


async def test_a_read_walks_back_over_days_and_stops_at_the_retention(
    store: Store, ns: str
) -> None:
    now = int(time.time() * 1000)
    key = f"key-{ns}"
    old = [entry("keyId", key, now - d * DAY_MS, days=d) for d in (0, 1, 3)]
    await store.audit.append(old, retention_ms=10 * DAY_MS, max_per_target=100)
    found = await store.audit.query("keyId", key, limit=10, now_ms=now, retention_ms=5 * DAY_MS)
    assert [r["days"] for r in found] == [0, 1, 3]
    found = await store.audit.query("keyId", key, limit=10, now_ms=now, retention_ms=2 * DAY_MS)
    assert [r["days"] for r in found] == [0, 1]


async def test_entries_expire_after_the_retention(store: Store, ns: str) -> None:
    now = int(time.time() * 1000)
    target = f"short-{ns}"
    await store.audit.append([entry("taskDef", target, now)], retention_ms=1000,
                             max_per_target=100)  # fmt: skip
    found = await store.audit.query("taskDef", target, limit=5, now_ms=now, retention_ms=1000)
    assert len(found) == 1
    # A read never returns what is older than the retention it is given...
    assert await store.audit.query(
        "taskDef", target, limit=5, now_ms=now + 1500, retention_ms=1000) == []  # fmt: skip

    # ...and the store drops it by itself (a TTL, an expiring list), whatever a read asks.
    async def dropped() -> bool:
        return not await store.audit.query(
            "taskDef", target, limit=5, now_ms=int(time.time() * 1000), retention_ms=DAY_MS
        )

    await eventually(dropped, timeout_s=10, what="the audit entry expired", interval_s=0.1)


@pytest.mark.parametrize("backend", ["redis"])
async def test_redis_keeps_the_newest_records_of_a_target(store: Store, ns: str) -> None:
    now = int(time.time() * 1000)
    target = f"capped-{ns}"
    entries = [entry("eventHandler", target, now + i, n=i) for i in range(8)]
    await store.audit.append(entries, retention_ms=DAY_MS, max_per_target=3)
    found = await store.audit.query(
        "eventHandler", target, limit=10, now_ms=now + 10, retention_ms=DAY_MS)  # fmt: skip
    assert [r["n"] for r in found] == [7, 6, 5]


def test_a_cassandra_ttl_covers_the_whole_retention() -> None:
    """A CQL TTL of n seconds keeps a row between n-1 and n seconds (it counts from the second
    the write lands in), so the TTL of a retention is rounded up and one second added."""
    assert retention_ttl_s(1) == 2
    assert retention_ttl_s(1000) == 2
    assert retention_ttl_s(1001) == 3
    assert retention_ttl_s(30 * DAY_MS) == 30 * 86_400 + 1
