"""Executions on Cassandra: commits in writes.py, reads, poll data, logs and search here."""

from __future__ import annotations

import time
from collections.abc import Sequence

from podium.errors import NotFound
from podium.store.api import ExecutionStore, IdempotencyBinding, WorkflowSnapshot
from podium.store.cassandra_backend.search_source import CassandraSearchSource
from podium.store.cassandra_backend.session import CassandraSession, chunks, gather_limited
from podium.store.cassandra_backend.statements import (
    PENDING_SHARDS,
    RUNNING_SHARDS,
    SHARD_ID,
    STATUS_GROUP,
    Statements,
)
from podium.store.cassandra_backend.writes import APPLIED, CommitWriter
from podium.store.codec import decode, encode
from podium.store.config import StoreConfig
from podium.store.model import Record, is_terminal_task, workflow_index_time
from podium.store.prepare import check_expected_version, prepare_commit, sort_tasks
from podium.store.search import IndexedSearch
from podium.store.tasklogs import check_logs


class CassandraExecutions(IndexedSearch, ExecutionStore):
    """:class:`ExecutionStore` on Cassandra (see docs/persistence.md for the tables)."""

    def __init__(self, db: CassandraSession, st: Statements, config: StoreConfig) -> None:
        self._db = db
        self._st = st
        self._cfg = config
        self._writer = CommitWriter(db, st, config)
        self._search: CassandraSearchSource = CassandraSearchSource(db, st, config.search_max_scan)

    # -- writes -------------------------------------------------------------------------

    async def create_workflow(self, workflow: Record, tasks: Sequence[Record] = ()) -> int:
        return await self._writer.create(
            prepare_commit(workflow, tasks, self._cfg.max_record_bytes)
        )

    async def commit(
        self,
        workflow: Record,
        tasks: Sequence[Record],
        expected_version: int,
        *,
        removed_task_ids: Sequence[str] = (),
    ) -> int:
        check_expected_version(expected_version)
        prep = prepare_commit(workflow, tasks, self._cfg.max_record_bytes, removed_task_ids)
        return await self._writer.commit(prep, expected_version)

    async def remove_workflow(self, workflow_id: str) -> None:
        await self._writer.remove(workflow_id)

    async def purge_expired(self, limit: int = 1000) -> int:
        return 0  # every row of a finished workflow carries the retention TTL

    # -- reads --------------------------------------------------------------------------

    async def read_workflow(self, workflow_id: str, include_tasks: bool = True) -> WorkflowSnapshot:
        st = self._st.wf_read_tasks if include_tasks else self._st.wf_read_one
        rows = await self._db.execute(st, (workflow_id, SHARD_ID))
        head = [r for r in rows if r.get("entity", "workflow") == "workflow"]
        if not head:
            raise NotFound(f"No such workflow found by id: {workflow_id}", workflowId=workflow_id)
        wf = decode(head[0]["payload"])
        if include_tasks:
            wf["tasks"] = sort_tasks([decode(r["payload"]) for r in rows if r["entity"] == "task"])
        return WorkflowSnapshot(wf, int(head[0]["version"]))

    async def get_task(self, task_id: str) -> Record:
        found = await self._db.execute(self._st.lookup_get, (task_id,))
        rows = []
        if found:
            wid = found[0]["workflow_id"]
            rows = await self._db.execute(self._st.wf_read_task, (wid, SHARD_ID, task_id))
        if not rows:
            raise NotFound(f"No such task found by id: {task_id}", taskId=task_id)
        return decode(rows[0]["payload"])

    async def get_tasks(self, workflow_id: str) -> list[Record]:
        return list((await self.read_workflow(workflow_id)).workflow["tasks"])

    async def pending_tasks_by_type(self, task_type: str) -> list[Record]:
        pages = await self._db.execute_all(
            (self._st.pending_get, (task_type, shard)) for shard in range(PENDING_SHARDS)
        )
        entries = [(shard, r) for shard, rows in enumerate(pages) for r in rows]
        pairs = [(r["task_id"], r["workflow_id"]) for _, r in entries]
        blobs = await self._search.task_blobs(pairs)
        out, gone = [], []
        for shard, entry in entries:
            blob = blobs.get(entry["task_id"])
            if blob is None:
                # Written for a commit that lost, or its workflow was removed or expired.
                gone.append((self._st.pending_delete, (task_type, shard, entry["task_id"])))
                continue
            task = decode(blob)
            if not is_terminal_task(task):
                out.append(task)
        if gone:
            await self._db.execute_all(gone)
        return out

    async def running_workflow_ids(
        self, workflow_name: str, version: int | None = None
    ) -> list[str]:
        pages = await self._db.execute_all(
            (self._st.running_get, (workflow_name, shard)) for shard in range(RUNNING_SHARDS)
        )
        entries = [
            r for rows in pages for r in rows if version is None or r["workflow_version"] == version
        ]
        ids = sorted({r["workflow_id"] for r in entries})
        pages = await self._db.execute_all(
            (self._st.wf_read_statuses, (group, SHARD_ID)) for group in chunks(ids, STATUS_GROUP)
        )
        # An entry whose workflow is gone or finished is skipped: entries are candidates.
        running = {r["workflow_id"] for rows in pages for r in rows if r["terminal"] is False}
        return [wid for wid in ids if wid in running]

    async def workflows_by_correlation_id(
        self,
        workflow_name: str,
        correlation_id: str,
        include_closed: bool = False,
        include_tasks: bool = False,
    ) -> list[Record]:
        rows = await self._db.execute(self._st.corr_get, (workflow_name, correlation_id))
        ids = [r["workflow_id"] for r in rows]
        records = await self._search.load_workflows(ids)
        out = [
            wf
            for wf in records
            if wf is not None
            and wf.get("correlationId") == correlation_id
            and wf.get("workflowName") == workflow_name
            and (include_closed or wf.get("status") in ("RUNNING", "PAUSED"))
        ]
        if include_tasks:
            out = await gather_limited(self.get_workflow(str(wf["workflowId"])) for wf in out)
        return sorted(out, key=workflow_index_time, reverse=True)

    # -- idempotency keys ---------------------------------------------------------------

    async def bind_idempotency_key(
        self, workflow_name: str, key: str, workflow_id: str, *, replacing: str = ""
    ) -> IdempotencyBinding:
        now = int(time.time() * 1000)
        if replacing:
            st = self._st.idem_replace
            params: tuple[object, ...] = (workflow_id, now, workflow_name, key, replacing)
        else:
            st = self._st.idem_insert
            params = (workflow_name, key, workflow_id, now)
        rows = await self._db.execute(st, params)
        row = rows[0] if rows else {}
        if row.get(APPLIED):
            return IdempotencyBinding(workflow_id, now)
        # Not applied: the row as it stands comes back (nothing but the flag if there is none).
        return IdempotencyBinding(str(row.get("workflow_id") or ""), int(row.get("bound_at") or 0))

    async def release_idempotency_key(self, workflow_name: str, key: str, workflow_id: str) -> None:
        await self._db.execute(self._st.idem_delete, (workflow_name, key, workflow_id))

    # -- poll data and logs -------------------------------------------------------------

    async def update_poll_data(
        self, queue_name: str, domain: str | None, worker_id: str, last_poll_time_ms: int
    ) -> None:
        await self._db.execute(
            self._st.poll_put, (queue_name, domain or "", worker_id, int(last_poll_time_ms))
        )

    async def get_poll_data(self, task_type: str) -> list[Record]:
        rows = await self._db.execute(self._st.poll_get, (task_type,))
        return [
            {
                "queueName": task_type,
                "domain": r["domain"] or None,
                "workerId": r["worker_id"],
                "lastPollTime": r["last_poll_time"],
            }
            for r in rows
        ]

    async def add_task_logs(self, task_id: str, logs: Sequence[Record]) -> None:
        entries = check_logs(task_id, logs, int(time.time() * 1000))
        blobs = [encode(e, self._cfg.max_record_bytes, "task log") for e in entries]
        if not blobs:
            return
        found = await self._db.execute(self._st.lookup_get, (task_id,))
        if not found or not await self._writer.add_logs(found[0]["workflow_id"], task_id, blobs):
            raise NotFound(f"No such task found by id: {task_id}", taskId=task_id)

    async def get_task_logs(self, task_id: str) -> list[Record]:
        found = await self._db.execute(self._st.lookup_get, (task_id,))
        if not found:
            return []
        wid = found[0]["workflow_id"]
        # Checked against the partition like every outside row: a finished workflow's logs
        # take its TTL after the commit and may outlive its partition by a second.
        task, rows = await self._db.execute_all(
            [(self._st.wf_read_task, (wid, SHARD_ID, task_id)), (self._st.log_get, (wid, task_id))]
        )
        return [decode(r["entry"]) for r in rows] if task else []
