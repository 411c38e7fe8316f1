"""The index entries, lookups and other rows outside its partition that a workflow owns.

A commit writes these before its conditional batch (new entries, without TTL) and after it
(deletes, and TTLs once the workflow is finished). Readers check every such entry against the
workflow partition, so an entry written for a commit that then lost is never seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from podium.store.cassandra_backend.session import shard_of
from podium.store.cassandra_backend.statements import (
    INDEX_SHARDS,
    PENDING_SHARDS,
    RUNNING_SHARDS,
    Statements,
)
from podium.store.model import (
    Record,
    day_of,
    is_terminal_task,
    is_terminal_workflow,
    task_index_time,
    workflow_index_time,
)
from podium.store.prepare import PreparedCommit, PreparedTask

Call = tuple[Any, tuple[Any, ...]]


@dataclass(frozen=True)
class WorkflowFoot:
    workflow_id: str
    name: str
    def_version: int
    correlation_id: str | None
    index_time: int
    terminal: bool

    @classmethod
    def of_prepared(cls, p: PreparedCommit) -> WorkflowFoot:
        return cls(p.workflow_id, p.name, p.def_version, p.correlation_id, p.index_time, p.terminal)

    @classmethod
    def of_record(cls, wf: Record) -> WorkflowFoot:
        return cls(
            str(wf["workflowId"]),
            str(wf["workflowName"]),
            int(wf["workflowVersion"]),
            wf.get("correlationId") or None,
            workflow_index_time(wf),
            is_terminal_workflow(wf),
        )


@dataclass(frozen=True)
class TaskFoot:
    task_id: str
    task_type: str
    index_time: int
    terminal: bool

    @classmethod
    def of_prepared(cls, t: PreparedTask) -> TaskFoot:
        return cls(t.task_id, t.task_type, t.index_time, t.terminal)

    @classmethod
    def of_record(cls, task: Record) -> TaskFoot:
        return cls(
            str(task["taskId"]),
            str(task["taskType"]),
            task_index_time(task),
            is_terminal_task(task),
        )


class Footprints:
    """Builds the (statement, parameters) calls for a workflow's outside rows."""

    def __init__(self, st: Statements) -> None:
        self._st = st

    def task_entries(self, wid: str, tasks: Iterable[TaskFoot], ttl: int) -> list[Call]:
        """Lookup and the two search entries of each task."""
        st = self._st
        calls: list[Call] = []
        for t in tasks:
            day, shard = day_of(t.index_time), shard_of(t.task_id, INDEX_SHARDS)
            calls.append((st.lookup_put, (t.task_id, wid, ttl)))
            for name in ("", t.task_type):
                calls.append(
                    (st.index_put, ("task", name, day, shard, t.index_time, t.task_id, wid, ttl))
                )
        return calls

    def workflow_entries(self, wf: WorkflowFoot, ttl: int) -> list[Call]:
        """The two search entries of the workflow and its correlation entry."""
        st = self._st
        day, shard = day_of(wf.index_time), shard_of(wf.workflow_id, INDEX_SHARDS)
        calls: list[Call] = [
            (
                st.index_put,
                ("workflow", name, day, shard, wf.index_time, wf.workflow_id, wf.workflow_id, ttl),
            )
            for name in ("", wf.name)
        ]
        if wf.correlation_id:
            calls.append((st.corr_put, (wf.name, wf.correlation_id, wf.workflow_id, ttl)))
        return calls

    def correlation(self, wf: WorkflowFoot) -> list[Call]:
        if not wf.correlation_id:
            return []
        return [(self._st.corr_put, (wf.name, wf.correlation_id, wf.workflow_id, 0))]

    def running(self, wf: WorkflowFoot, present: bool) -> list[Call]:
        shard = shard_of(wf.workflow_id, RUNNING_SHARDS)
        if present:
            return [(self._st.running_put, (wf.name, shard, wf.workflow_id, wf.def_version))]
        return [(self._st.running_delete, (wf.name, shard, wf.workflow_id))]

    def pending(self, wid: str, tasks: Iterable[TaskFoot], ttl: int) -> list[Call]:
        """Pending entries in step with each task's status: put if running, else delete."""
        st = self._st
        calls: list[Call] = []
        for t in tasks:
            shard = shard_of(t.task_id, PENDING_SHARDS)
            if t.terminal:
                calls.append((st.pending_delete, (t.task_type, shard, t.task_id)))
            else:
                calls.append((st.pending_put, (t.task_type, shard, t.task_id, wid, ttl)))
        return calls

    def pending_puts(self, wid: str, tasks: Iterable[TaskFoot]) -> list[Call]:
        return self.pending(wid, (t for t in tasks if not t.terminal), 0)

    def task_removal(self, wid: str, tasks: Iterable[TaskFoot]) -> list[Call]:
        """Every outside row of tasks removed from a workflow that stays."""
        st = self._st
        calls: list[Call] = []
        for t in tasks:
            calls.append((st.log_delete_task, (wid, t.task_id)))
            calls += self._task_rows_deleted(t)
        return calls

    def _task_rows_deleted(self, t: TaskFoot) -> list[Call]:
        st = self._st
        day, shard = day_of(t.index_time), shard_of(t.task_id, INDEX_SHARDS)
        calls: list[Call] = [
            (st.lookup_delete, (t.task_id,)),
            (st.pending_delete, (t.task_type, shard_of(t.task_id, PENDING_SHARDS), t.task_id)),
        ]
        for name in ("", t.task_type):
            calls.append((st.index_delete, ("task", name, day, shard, t.index_time, t.task_id)))
        return calls

    def removal(self, wf: WorkflowFoot, tasks: Iterable[TaskFoot]) -> list[Call]:
        """Every outside row of a removed workflow."""
        st = self._st
        wday, wshard = day_of(wf.index_time), shard_of(wf.workflow_id, INDEX_SHARDS)
        calls: list[Call] = [
            (st.index_delete, ("workflow", name, wday, wshard, wf.index_time, wf.workflow_id))
            for name in ("", wf.name)
        ]
        calls += self.running(wf, present=False)
        calls.append((st.log_delete_all, (wf.workflow_id,)))
        if wf.correlation_id:
            calls.append((st.corr_delete, (wf.name, wf.correlation_id, wf.workflow_id)))
        for t in tasks:
            calls += self._task_rows_deleted(t)
        return calls
