"""Workflow commits on Cassandra: one conditional single-partition batch per commit.

The ``workflows`` partition of a workflow holds its row, its task rows and one uniqueness row
per (referenceTaskName, retryCount, iteration). A commit is a LOGGED batch on that partition
whose first statement carries ``IF version = <expected> AND terminal = <as stored>``: Paxos
applies all of it or none. Rows outside the partition (lookups, index entries) are written
before the batch and checked by readers; see footprint.py.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from podium.errors import Conflict, NotFound, Unavailable
from podium.store.cassandra_backend.footprint import Call, Footprints, TaskFoot, WorkflowFoot
from podium.store.cassandra_backend.session import CassandraSession, Row, retention_ttl_s
from podium.store.cassandra_backend.statements import SHARD_ID, Statements
from podium.store.codec import decode
from podium.store.config import StoreConfig
from podium.store.errors import DuplicateTask, VersionConflict
from podium.store.model import Record, task_unique_key
from podium.store.prepare import PreparedCommit, PreparedTask, missing_removed

_MAX_TRIES = 8
#: The column in which Cassandra answers whether a conditional statement applied.
APPLIED = "[applied]"
#: How many uniqueness rows :class:`KeptKeys` holds, over all the workflows it keeps.
KEPT_KEYS = 200_000


class KeptKeys:
    """The uniqueness rows of the workflows this writer committed last: per workflow, the
    version its commit made and every key with the task holding it, least recently used
    dropped first once they hold more than ``max_keys`` keys in all.

    A commit expecting version v may take the keys kept for v instead of reading them: its
    batch applies only if the workflow is still at v, and then its rows are as this writer's
    commit of v left them. Kept only from what this writer knows whole: a workflow it created,
    or rewrote (a commit that reads only the keys it needs keeps nothing).

    Beside the keys, the pending-task entries this writer wrote for the workflow's unfinished
    tasks (task id → task type), where it knows them (from its create and its commits since):
    a task that stays unfinished (claimed, say) needs no new entry.
    """

    def __init__(self, max_keys: int = KEPT_KEYS) -> None:
        self.max_keys = max_keys
        self._kept: OrderedDict[str, tuple[int, dict[str, str], dict[str, str] | None]] = (
            OrderedDict()
        )
        self._size = 0

    def get(self, workflow_id: str, version: int) -> dict[str, str] | None:
        """The keys as of ``version`` (a copy), or None if not kept for that version."""
        found = self._kept.get(workflow_id)
        if found is None or found[0] != version:
            return None
        self._kept.move_to_end(workflow_id)
        return dict(found[1])

    def pending(self, workflow_id: str, version: int) -> dict[str, str] | None:
        """The pending entries as of ``version`` (a copy), or None if not known for it."""
        found = self._kept.get(workflow_id)
        if found is None or found[0] != version or found[2] is None:
            return None
        return dict(found[2])

    def put(
        self,
        workflow_id: str,
        version: int,
        owners: dict[str, str],
        pending: dict[str, str] | None = None,
    ) -> None:
        self.drop(workflow_id)
        size = _size(owners, pending)
        if size > self.max_keys:
            return
        self._kept[workflow_id] = (version, owners, pending)
        self._size += size
        while self._size > self.max_keys:
            _, (_, gone, gone_pending) = self._kept.popitem(last=False)
            self._size -= _size(gone, gone_pending)

    def drop(self, workflow_id: str) -> None:
        found = self._kept.pop(workflow_id, None)
        if found is not None:
            self._size -= _size(found[1], found[2])


def _size(owners: dict[str, str], pending: dict[str, str] | None) -> int:
    return len(owners) + len(pending or ())


class CommitWriter:
    """create / commit / remove of workflows on the ``workflows`` table."""

    def __init__(self, db: CassandraSession, st: Statements, config: StoreConfig) -> None:
        self._db = db
        self._st = st
        self._fp = Footprints(st)
        self.kept = KeptKeys()
        # At least the retention (a CQL TTL of n keeps a row n-1 to n seconds), never "none".
        retained = config.workflow_retention_s > 0
        self._ttl_s = retention_ttl_s(max(1, config.retention_ms)) if retained else 0

    async def _run(self, calls: Sequence[Call]) -> None:
        if calls:
            await self._db.write_many(calls)

    async def _batch(self, statements: Sequence[Call]) -> Row:
        batch = self._db.batch()
        for stmt, params in statements:
            batch.add(stmt, params)
        rows = await self._db.execute(batch)
        return rows[0] if rows else {APPLIED: False}

    def _rows(
        self,
        p: PreparedCommit,
        tasks: Sequence[PreparedTask],
        new: Sequence[PreparedTask],
        ttl: int,
    ) -> list[Call]:
        st, wid = self._st, p.workflow_id
        calls: list[Call] = [(st.wf_row, (wid, SHARD_ID, "workflow", "", p.blob, ttl))]
        calls += [(st.wf_row, (wid, SHARD_ID, "task", t.task_id, t.blob, ttl)) for t in tasks]
        calls += [(st.wf_uniq, (wid, SHARD_ID, t.unique_key, t.task_id, ttl)) for t in new]
        return calls

    # -- create -------------------------------------------------------------------------

    async def create(self, p: PreparedCommit) -> int:
        wf = WorkflowFoot.of_prepared(p)
        feet = [TaskFoot.of_prepared(t) for t in p.tasks]
        ttl = self._ttl_s if p.terminal else 0
        pre = self._fp.task_entries(p.workflow_id, feet, 0) + self._fp.workflow_entries(wf, 0)
        pre += self._fp.pending_puts(p.workflow_id, feet)
        if not p.terminal:
            pre += self._fp.running(wf, present=True)
        await self._run(pre)
        st = self._st
        first: Call = (st.wf_create, (p.workflow_id, SHARD_ID, p.blob, p.terminal, ttl))
        rows = self._rows(p, p.tasks, p.tasks, ttl)[1:]  # the create statement writes the row
        if not (await self._batch([first, *rows])).get(APPLIED):
            raise Conflict(f"workflow {p.workflow_id!r} already exists", workflowId=p.workflow_id)
        self.kept.put(
            p.workflow_id,
            1,
            {t.unique_key: t.task_id for t in p.tasks},
            {f.task_id: f.task_type for f in feet if not f.terminal},
        )
        if ttl:
            await self._expire_outside(wf, feet, ttl)
        return 1

    # -- commit -------------------------------------------------------------------------

    async def commit(self, p: PreparedCommit, expected: int) -> int:
        if p.terminal and self._ttl_s:
            return await self._commit_all(p, expected)
        wid = p.workflow_id
        removed = await self._removed_tasks(p, expected)
        kept = self.kept.get(wid, expected)
        pending = self.kept.pending(wid, expected) if kept is not None else None
        owners = kept if kept is not None else await self._owners(p, removed)
        new = _new_tasks(p, owners, set(p.removed) | await self._gone_owners(p, owners))
        feet = [TaskFoot.of_prepared(t) for t in p.tasks]
        wf = WorkflowFoot.of_prepared(p)
        pre = self._fp.task_entries(wid, [TaskFoot.of_prepared(t) for t in new], 0)
        # An unfinished task whose entry this writer wrote, and that is still unfinished, has
        # its entry already (a claim): only the others get one.
        puts = [f for f in feet if pending is None or pending.get(f.task_id) != f.task_type]
        await self._run(pre + self._fp.pending_puts(wid, puts) + self._fp.correlation(wf))
        fence: Call = (
            self._st.wf_fence,
            (0, expected + 1, p.terminal, wid, SHARD_ID, expected, False),
        )
        batch = [fence, *self._rows(p, p.tasks, new, 0)]
        batch += self._removal_rows(wid, removed, owners, new)
        row = await self._batch(batch)
        if not row.get(APPLIED):
            self.kept.drop(wid)
            _raise_for(wid, expected, row)
            # Same version, but stored as finished: a finished workflow is being resumed.
            return await self._commit_all(p, expected)
        if kept is not None:
            self.kept.put(
                wid,
                expected + 1,
                _after(kept, removed, new),
                None if pending is None else _pending_after(pending, feet, p.removed),
            )
        post = self._fp.pending(wid, [f for f in feet if f.terminal], 0)
        post += self._fp.task_removal(wid, [TaskFoot.of_record(r) for r in removed])
        if p.terminal:
            post += self._fp.running(wf, present=False)
        await self._run(post)
        return expected + 1

    async def _removed_tasks(self, p: PreparedCommit, expected: int) -> list[Record]:
        """The records of the tasks the commit removes; InvalidArgument if one is not there."""
        if not p.removed:
            return []
        wid = p.workflow_id
        rows = await self._db.execute(self._st.wf_read_tasks_in, (wid, SHARD_ID, list(p.removed)))
        found = {r["item_id"]: decode(r["payload"]) for r in rows}
        missing = [tid for tid in p.removed if tid not in found]
        if missing:
            # Gone because the workflow moved on (a conflict), or never there (a bad call).
            head = await self._db.execute(self._st.wf_read_one, (wid, SHARD_ID))
            _raise_for(wid, expected, head[0] if head else {"version": None})
            raise missing_removed(wid, missing)
        return [found[tid] for tid in p.removed]

    async def _owners(self, p: PreparedCommit, removed: list[Record]) -> dict[str, str]:
        """Who holds the uniqueness keys of the commit's tasks (and removed tasks) now.

        Read without a serial level: if the version is still ``expected`` when the batch
        applies, nothing has changed since this read; if not, the batch fails anyway.
        """
        keys = [t.unique_key for t in p.tasks] + [task_unique_key(r) for r in removed]
        if not keys:
            return {}
        rows = await self._db.execute(self._st.wf_read_uniq, (p.workflow_id, SHARD_ID, keys))
        return {r["item_id"]: r["owner"] for r in rows}

    async def _gone_owners(self, p: PreparedCommit, owners: dict[str, str]) -> set[str]:
        """Owners of the commit's keys that are no longer tasks of the workflow.

        A task whose key changed (a DO_WHILE at its next iteration, a retry in place) leaves
        its old key behind, and a removed task frees only its last one: such a key is free.
        Read only when some key of the commit is held by another task (rare).
        """
        others = {
            o for t in p.tasks if (o := owners.get(t.unique_key)) is not None and o != t.task_id
        } - set(p.removed)
        if not others:
            return set()
        rows = await self._db.execute(
            self._st.wf_read_tasks_in, (p.workflow_id, SHARD_ID, list(others))
        )
        return others - {r["item_id"] for r in rows}

    def _removal_rows(
        self,
        wid: str,
        removed: list[Record],
        owners: dict[str, str],
        new: list[PreparedTask],
    ) -> list[Call]:
        """Deletes of removed tasks' rows and of the keys they free (unless reused now).

        A key reused by a new task of the same batch is overwritten, not deleted: in one
        batch every mutation has the same timestamp, and a tombstone wins a tie.
        """
        st, reused = self._st, {t.unique_key for t in new}
        calls: list[Call] = []
        for r in removed:
            tid, key = str(r["taskId"]), task_unique_key(r)
            calls.append((st.wf_delete_row, (wid, SHARD_ID, "task", tid)))
            if key not in reused and owners.get(key) == tid:
                calls.append((st.wf_delete_row, (wid, SHARD_ID, "uniq", key)))
        return calls

    async def _commit_all(self, p: PreparedCommit, expected: int) -> int:
        """Rewrite the whole partition: when a retention TTL starts or a finished one resumes."""
        wid = p.workflow_id
        rows = await self._db.execute(self._st.wf_read_all, (wid, SHARD_ID))
        stored = rows[0] if rows else {"version": None}
        _raise_for(wid, expected, stored)
        was_terminal = bool(stored.get("terminal"))
        owners = {r["item_id"]: r["owner"] for r in rows if r["entity"] == "uniq"}
        blobs = {r["item_id"]: r["payload"] for r in rows if r["entity"] == "task"}
        gone = {o for o in owners.values() if o not in blobs}  # see _gone_owners
        new = _new_tasks(p, owners, set(p.removed) | gone)
        missing = [tid for tid in p.removed if tid not in blobs]
        if missing:
            raise missing_removed(wid, missing)
        removed = [decode(blobs.pop(tid)) for tid in p.removed]
        deletes = self._removal_rows(wid, removed, owners, new)
        for r in removed:
            if owners.get(task_unique_key(r)) == r["taskId"]:
                del owners[task_unique_key(r)]
        feet = {tid: TaskFoot.of_record(decode(b)) for tid, b in blobs.items()}
        for t in p.tasks:
            blobs[t.task_id] = t.blob
            feet[t.task_id] = TaskFoot.of_prepared(t)
        owners.update({t.unique_key: t.task_id for t in new})
        ttl = self._ttl_s if p.terminal and self._ttl_s else 0
        wf = WorkflowFoot.of_prepared(p)
        pre = self._fp.task_entries(wid, [TaskFoot.of_prepared(t) for t in new], 0)
        pre += self._fp.pending_puts(wid, [TaskFoot.of_prepared(t) for t in p.tasks])
        pre += self._fp.correlation(wf)
        resumed = was_terminal and not p.terminal
        if was_terminal:
            pre += await self._restore_outside(wf, list(feet.values()), resumed)
        await self._run(pre)
        st = self._st
        batch: list[Call] = [
            (st.wf_fence, (ttl, expected + 1, p.terminal, wid, SHARD_ID, expected, was_terminal)),
            (st.wf_row, (wid, SHARD_ID, "workflow", "", p.blob, ttl)),
        ]
        batch += [(st.wf_row, (wid, SHARD_ID, "task", tid, b, ttl)) for tid, b in blobs.items()]
        batch += [(st.wf_uniq, (wid, SHARD_ID, k, o, ttl)) for k, o in owners.items()]
        row = await self._batch(batch + deletes)
        if not row.get(APPLIED):
            self.kept.drop(wid)
            _raise_for(wid, expected, row)
            raise VersionConflict(
                f"workflow {wid!r} changed while it was rewritten",
                workflowId=wid,
                expected=expected,
                actual=row.get("version"),
            )
        self.kept.put(wid, expected + 1, owners)
        if ttl:
            await self._expire_outside(wf, list(feet.values()), ttl)
        elif p.terminal:
            await self._run(self._fp.running(wf, present=False))
        if resumed:
            # Again after the batch: a TTL rewrite by the commit that finished the workflow may
            # have landed after our first restore.
            await self._run(await self._restore_outside(wf, list(feet.values()), True))
        post = self._fp.pending(wid, [f for f in feet.values() if f.terminal], 0)
        post += self._fp.task_removal(wid, [TaskFoot.of_record(r) for r in removed])
        await self._run(post)
        return expected + 1

    async def _expire_outside(self, wf: WorkflowFoot, feet: list[TaskFoot], ttl: int) -> None:
        """Give every outside row of a finished workflow the retention TTL."""
        wid = wf.workflow_id
        calls = self._fp.task_entries(wid, feet, ttl) + self._fp.workflow_entries(wf, ttl)
        calls += self._fp.pending(wid, feet, ttl) + self._fp.running(wf, present=False)
        calls += await self._log_rewrites(wid, ttl)
        await self._run(calls)

    async def _restore_outside(
        self, wf: WorkflowFoot, feet: list[TaskFoot], running: bool
    ) -> list[Call]:
        """Rows of a finished workflow written again without TTL (it may have had one)."""
        wid = wf.workflow_id
        calls = self._fp.task_entries(wid, feet, 0) + self._fp.workflow_entries(wf, 0)
        calls += self._fp.pending_puts(wid, feet) + await self._log_rewrites(wid, 0)
        if running:
            calls += self._fp.running(wf, present=True)
        return calls

    async def _log_rewrites(self, wid: str, ttl: int) -> list[Call]:
        rows = await self._db.execute(self._st.log_all, (wid,))
        return [(self._st.log_put, (wid, r["task_id"], r["log_id"], r["entry"], ttl)) for r in rows]

    # -- remove -------------------------------------------------------------------------

    async def remove(self, wid: str) -> None:
        for _ in range(_MAX_TRIES):
            rows = await self._db.execute(self._st.wf_read_all, (wid, SHARD_ID))
            records = [r for r in rows if r["entity"] == "workflow"]
            if not records:
                raise NotFound(f"No such workflow found by id: {wid}", workflowId=wid)
            wf = WorkflowFoot.of_record(decode(records[0]["payload"]))
            feet = [TaskFoot.of_record(decode(r["payload"])) for r in rows if r["entity"] == "task"]
            st = self._st
            batch: list[Call] = [(st.wf_delete, (wid, SHARD_ID, rows[0]["version"]))]
            batch += [(st.wf_delete_row, (wid, SHARD_ID, r["entity"], r["item_id"])) for r in rows]
            if (await self._batch(batch)).get(APPLIED):
                self.kept.drop(wid)
                # The partition is gone first: rows left behind by a crash here are orphans
                # that readers skip, never a workflow missing its lookups.
                await self._run(self._fp.removal(wf, feet))
                return
        raise Unavailable(f"remove of {wid!r} kept racing with writers; try again")

    # -- task logs ----------------------------------------------------------------------

    async def add_logs(self, wid: str, task_id: str, blobs: Sequence[bytes]) -> bool:
        """Append logs of an existing task, with the workflow's remaining TTL; False if none."""
        task, ttl_rows = await self._db.execute_all(
            [
                (self._st.wf_read_task, (wid, SHARD_ID, task_id)),
                (self._st.wf_read_ttl, (wid, SHARD_ID)),
            ]
        )
        if not task or not ttl_rows:
            return False
        ttl = int(ttl_rows[0].get("ttl") or 0)
        await self._run([(self._st.log_put, (wid, task_id, uuid.uuid1(), b, ttl)) for b in blobs])
        return True


def _after(
    owners: dict[str, str], removed: list[Record], new: list[PreparedTask]
) -> dict[str, str]:
    """``owners`` as a commit's batch leaves the rows: the new tasks' keys taken, the keys of
    removed tasks freed (unless a new task took them; see :meth:`CommitWriter._removal_rows`)."""
    reused = {t.unique_key for t in new}
    for r in removed:
        key = task_unique_key(r)
        if key not in reused and owners.get(key) == str(r["taskId"]):
            del owners[key]
    owners.update({t.unique_key: t.task_id for t in new})
    return owners


def _pending_after(
    pending: dict[str, str], feet: Sequence[TaskFoot], removed: Sequence[str]
) -> dict[str, str]:
    """``pending`` as a commit leaves the entries: its unfinished tasks in, its finished and
    removed ones out (their entries are deleted after the batch)."""
    for tid in removed:
        pending.pop(tid, None)
    for f in feet:
        if f.terminal:
            pending.pop(f.task_id, None)
        else:
            pending[f.task_id] = f.task_type
    return pending


def _new_tasks(p: PreparedCommit, owners: dict[str, Any], freed: set[str]) -> list[PreparedTask]:
    """The commit's tasks whose key is free (or held by a task it removes); DuplicateTask if
    another task holds one."""
    new = []
    for t in p.tasks:
        owner = owners.get(t.unique_key)
        if owner is None or owner in freed:
            new.append(t)
        elif owner != t.task_id:
            raise DuplicateTask(
                f"workflow {p.workflow_id!r} already has task {owner!r} for {t.unique_key}",
                workflowId=p.workflow_id,
                uniqueKey=t.unique_key,
                ownerTaskId=owner,
            )
    return new


def _raise_for(wid: str, expected: int, row: Row) -> None:
    """Raise if ``row`` (stored statics) shows a missing workflow or another version."""
    actual = row.get("version")
    if actual is None:
        raise NotFound(f"No such workflow found by id: {wid}", workflowId=wid)
    if actual != expected:
        raise VersionConflict(
            f"workflow {wid!r} is at version {actual}, not {expected}",
            workflowId=wid,
            expected=expected,
            actual=actual,
        )
