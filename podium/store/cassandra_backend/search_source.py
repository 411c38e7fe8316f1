"""The Cassandra side of search: ``search_index`` partitions per (kind, name, day, shard)."""

from __future__ import annotations

from collections.abc import Sequence

from podium.store.cassandra_backend.session import (
    CassandraSession,
    chunks,
    gather_limited,
    shard_of,
)
from podium.store.cassandra_backend.statements import (
    INDEX_SHARDS,
    RECORD_GROUP,
    SHARD_ID,
    TASK_GROUP,
    Statements,
)
from podium.store.codec import decode
from podium.store.model import Record
from podium.store.search import NOT_INDEXED, Candidate, Kind


class CassandraSearchSource:
    """Implements :class:`podium.store.search.SearchSource` over the Cassandra tables."""

    def __init__(self, db: CassandraSession, st: Statements, max_scan: int) -> None:
        self._db = db
        self._st = st
        self._max_scan = max_scan

    async def index_entries(
        self, kind: Kind, name: str | None, day: int, from_ms: int, to_ms: int
    ) -> list[Candidate]:
        pages = await self._db.execute_all(
            (self._st.index_range, (kind, name or "", day, shard, from_ms, to_ms, self._max_scan))
            for shard in range(INDEX_SHARDS)
        )
        return [
            Candidate(r["index_time"], r["entity_id"], r["workflow_id"], name, day)
            for rows in pages
            for r in rows
        ]

    async def load(self, kind: Kind, candidates: Sequence[Candidate]) -> list[Record | None]:
        if kind == "workflow":
            return await self.load_workflows([c.entity_id for c in candidates])
        return await self._load_tasks([(c.entity_id, c.workflow_id) for c in candidates])

    async def load_workflows(self, ids: Sequence[str]) -> list[Record | None]:
        """The records of ``ids`` in their order (None where gone), ``RECORD_GROUP`` a request."""
        groups = chunks(list(dict.fromkeys(ids)), RECORD_GROUP)
        pages = await self._db.execute_all((self._st.wf_read_many, (g, SHARD_ID)) for g in groups)
        blobs = {r["workflow_id"]: r["payload"] for rows in pages for r in rows}
        return [decode(blobs[wid]) if wid in blobs else None for wid in ids]

    async def _load_tasks(self, wanted: Sequence[tuple[str, str | None]]) -> list[Record | None]:
        """Task records by (task id, workflow id or None), in order; ``TASK_GROUP`` a request,
        after a lookup of each task whose workflow is not known."""
        unknown = [tid for tid, wid in wanted if wid is None]
        looked = await gather_limited(self._workflow_of(tid) for tid in unknown)
        owner = dict(zip(unknown, looked, strict=True))
        known = {tid: wid or owner[tid] for tid, wid in wanted}
        blobs = await self.task_blobs([(tid, wid) for tid, wid in known.items() if wid])
        return [decode(blobs[tid]) if tid in blobs else None for tid, _ in wanted]

    async def task_blobs(self, pairs: Sequence[tuple[str, str]]) -> dict[str, bytes]:
        """The stored task rows of (task id, workflow id) pairs, by task id (those found),
        ``TASK_GROUP`` pairs a request."""
        pages = await self._db.execute_all(
            (
                self._st.wf_read_tasks_many,
                (list({wid for _, wid in group}), SHARD_ID, [tid for tid, _ in group]),
            )
            for group in chunks(pairs, TASK_GROUP)
        )
        return {r["item_id"]: r["payload"] for rows in pages for r in rows}

    async def _workflow_of(self, task_id: str) -> str | None:
        found = await self._db.execute(self._st.lookup_get, (task_id,))
        return str(found[0]["workflow_id"]) if found else None

    async def drop_entries(self, kind: Kind, candidates: Sequence[Candidate]) -> None:
        await self._db.execute_all(
            (
                self._st.index_delete,
                (
                    kind,
                    c.index_name or "",
                    c.day,
                    shard_of(c.entity_id, INDEX_SHARDS),
                    c.index_time,
                    c.entity_id,
                ),
            )
            for c in candidates
        )

    async def correlation_candidates(self, name: str, correlation_id: str) -> list[Candidate]:
        rows = await self._db.execute(self._st.corr_get, (name, correlation_id))
        return [Candidate(0, r["workflow_id"], r["workflow_id"], None, NOT_INDEXED) for r in rows]

    async def workflow_task_candidates(self, workflow_id: str) -> list[Candidate]:
        rows = await self._db.execute(self._st.wf_read_tasks, (workflow_id, SHARD_ID))
        return [
            Candidate(0, r["item_id"], workflow_id, None, NOT_INDEXED)
            for r in rows
            if r["entity"] == "task"
        ]
