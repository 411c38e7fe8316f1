"""Schedules and their runs on Cassandra (``cassandra_schema/0006_schedules.cql``).

A run is claimed with ``INSERT ... IF NOT EXISTS`` (a lightweight transaction, once per run)
and updated ``IF EXISTS``. A search walks each schedule's day buckets from the newest.
The statements are prepared on first use, so a store that never touches schedules pays nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cassandra.query import PreparedStatement

from podium.errors import NotFound
from podium.store.api import ScheduleStore
from podium.store.cassandra_backend.session import CassandraSession, gather_limited, retention_ttl_s
from podium.store.cassandra_backend.writes import APPLIED
from podium.store.codec import decode, encode
from podium.store.config import StoreConfig
from podium.store.model import Record

DAY_MS = 86_400_000

# name -> (CQL, idempotent); conditional statements are not idempotent.
_CQL: dict[str, tuple[str, bool]] = {
    "put": ("INSERT INTO {ks}.schedules (name, payload) VALUES (?, ?)", True),
    "get": ("SELECT payload FROM {ks}.schedules WHERE name = ?", True),
    "all": ("SELECT name, payload FROM {ks}.schedules", True),
    "delete": ("DELETE FROM {ks}.schedules WHERE name = ?", True),
    "cursor_get": ("SELECT cursor FROM {ks}.schedule_cursors WHERE name = ?", True),
    "cursor_set": ("INSERT INTO {ks}.schedule_cursors (name, cursor) VALUES (?, ?)", True),
    "cursor_delete": ("DELETE FROM {ks}.schedule_cursors WHERE name = ?", True),
    "run_claim": (
        "INSERT INTO {ks}.schedule_runs (schedule_name, bucket, scheduled_time, payload)"
        " VALUES (?, ?, ?, ?) IF NOT EXISTS USING TTL ?",
        False,
    ),
    "run_update": (
        "UPDATE {ks}.schedule_runs USING TTL ? SET payload = ?"
        " WHERE schedule_name = ? AND bucket = ? AND scheduled_time = ? IF EXISTS",
        False,
    ),
    "run_page": (
        "SELECT payload FROM {ks}.schedule_runs WHERE schedule_name = ? AND bucket = ?"
        " AND scheduled_time >= ? AND scheduled_time <= ? LIMIT ?",
        True,
    ),
    "run_count": (
        "SELECT COUNT(*) AS n FROM {ks}.schedule_runs WHERE schedule_name = ? AND bucket = ?"
        " AND scheduled_time >= ? AND scheduled_time <= ?",
        True,
    ),
}


@dataclass(frozen=True)
class _Statements:
    put: PreparedStatement
    get: PreparedStatement
    all: PreparedStatement
    delete: PreparedStatement
    cursor_get: PreparedStatement
    cursor_set: PreparedStatement
    cursor_delete: PreparedStatement
    run_claim: PreparedStatement
    run_update: PreparedStatement
    run_page: PreparedStatement
    run_count: PreparedStatement


class CassandraSchedules(ScheduleStore):
    """:class:`ScheduleStore` on the ``schedules``, ``schedule_cursors`` and ``schedule_runs``
    tables."""

    def __init__(self, db: CassandraSession, config: StoreConfig) -> None:
        self._db = db
        self._cfg = config
        self._prepared: _Statements | None = None
        self._preparing = asyncio.Lock()

    async def _st(self) -> _Statements:
        if self._prepared is None:
            async with self._preparing:
                if self._prepared is None:
                    self._prepared = await asyncio.to_thread(self._prepare_all)
        return self._prepared

    def _prepare_all(self) -> _Statements:
        ks = self._cfg.cassandra_keyspace
        return _Statements(
            **{
                name: self._db.prepare(cql.replace("{ks}", ks), idempotent=idempotent)
                for name, (cql, idempotent) in _CQL.items()
            }
        )

    async def put_schedule(self, schedule: Record) -> None:
        name = str(schedule["name"])
        blob = encode(schedule, self._cfg.max_record_bytes, f"schedule {name}")
        await self._db.execute((await self._st()).put, (name, blob))

    async def get_schedule(self, name: str) -> Record:
        rows = await self._db.execute((await self._st()).get, (name,))
        if not rows:
            raise NotFound(f"No such schedule: {name}", name=name)
        return decode(rows[0]["payload"])

    async def list_schedules(self) -> list[Record]:
        rows = await self._db.execute((await self._st()).all)
        return [decode(r["payload"]) for r in sorted(rows, key=lambda r: str(r["name"]))]

    async def remove_schedule(self, name: str) -> None:
        st = await self._st()
        if not await self._db.execute(st.get, (name,)):
            raise NotFound(f"No such schedule: {name}", name=name)
        await self._db.execute_all([(st.delete, (name,)), (st.cursor_delete, (name,))])

    async def get_cursor(self, name: str) -> int | None:
        rows = await self._db.execute((await self._st()).cursor_get, (name,))
        return int(rows[0]["cursor"]) if rows and rows[0]["cursor"] is not None else None

    async def set_cursor(self, name: str, time_ms: int) -> None:
        await self._db.execute((await self._st()).cursor_set, (name, time_ms))

    async def claim_run(self, run: Record, *, retention_ms: int) -> bool:
        name, at = str(run["scheduleName"]), int(run["scheduledTime"])
        blob = encode(run, self._cfg.max_record_bytes, f"run of schedule {name}")
        ttl_s = retention_ttl_s(retention_ms)
        rows = await self._db.execute(
            (await self._st()).run_claim, (name, at // DAY_MS, at, blob, ttl_s)
        )
        return bool(rows and rows[0].get(APPLIED))

    async def update_run(self, run: Record, *, retention_ms: int) -> None:
        name, at = str(run["scheduleName"]), int(run["scheduledTime"])
        blob = encode(run, self._cfg.max_record_bytes, f"run of schedule {name}")
        ttl_s = retention_ttl_s(retention_ms)
        await self._db.execute((await self._st()).run_update, (ttl_s, blob, name, at // DAY_MS, at))

    async def search_runs(
        self,
        schedule_names: Sequence[str],
        *,
        from_ms: int,
        to_ms: int,
        start: int = 0,
        size: int = 100,
    ) -> dict[str, Any]:
        st = await self._st()
        want = start + size
        buckets = range(to_ms // DAY_MS, from_ms // DAY_MS - 1, -1)
        pairs = [(name, b) for name in schedule_names for b in buckets]
        params = [(name, b, from_ms, to_ms) for name, b in pairs]
        counts = await gather_limited(self._db.execute(st.run_count, p) for p in params)
        total = sum(int(rows[0]["n"]) if rows else 0 for rows in counts)
        runs: list[Record] = []
        if want > 0:
            # only the buckets that hold runs are read, each for at most the page's end
            full = [(p, rows) for p, rows in zip(params, counts, strict=True)]
            pages = await gather_limited(
                self._db.execute(st.run_page, (*p, want))
                for p, rows in full
                if rows and int(rows[0]["n"]) > 0
            )
            for rows in pages:
                runs.extend(decode(r["payload"]) for r in rows)
        runs.sort(key=lambda r: (-int(r["scheduledTime"]), str(r["scheduleName"])))
        return {"totalHits": total, "results": runs[start : start + size]}
