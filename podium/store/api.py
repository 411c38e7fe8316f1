"""The store's interfaces: metadata, executions, the audit trail, and the Store that bundles them.

Both backends (Redis and Cassandra) implement these and pass one contract test suite
(``tests/store``). Every method is a coroutine. Records are Conductor-shaped dicts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from podium.store.model import Record
from podium.store.search import SearchQuery


@dataclass(frozen=True)
class WorkflowSnapshot:
    """A workflow as read, with the version to pass to :meth:`ExecutionStore.commit`."""

    workflow: Record
    version: int


@dataclass(frozen=True)
class IdempotencyBinding:
    """Which workflow an idempotency key is bound to (``""``: none), and since when (ms)."""

    workflow_id: str
    bound_at_ms: int


class MetadataStore(ABC):
    """Task definitions, workflow definitions, event handlers and access keys."""

    @abstractmethod
    async def create_task_def(self, task_def: Record) -> None:
        """Create or replace a task definition (Conductor's register is an upsert)."""

    @abstractmethod
    async def update_task_def(self, task_def: Record) -> None:
        """Replace an existing task definition; NotFound if there is none by that name."""

    @abstractmethod
    async def get_task_def(self, name: str) -> Record:
        """The task definition called ``name``; NotFound if none."""

    @abstractmethod
    async def list_task_defs(self) -> list[Record]:
        """All task definitions, sorted by name."""

    @abstractmethod
    async def remove_task_def(self, name: str) -> None:
        """Delete a task definition; NotFound if none."""

    @abstractmethod
    async def create_workflow_def(self, workflow_def: Record) -> None:
        """Store a new workflow definition; Conflict if that name and version exist."""

    @abstractmethod
    async def update_workflow_def(self, workflow_def: Record) -> None:
        """Create or replace the workflow definition with that name and version."""

    @abstractmethod
    async def get_workflow_def(self, name: str, version: int | None = None) -> Record:
        """One version of a workflow definition, the latest when ``version`` is None."""

    @abstractmethod
    async def list_workflow_defs(self) -> list[Record]:
        """Every version of every workflow definition, sorted by name then version."""

    @abstractmethod
    async def list_latest_workflow_defs(self) -> list[Record]:
        """The latest version of each workflow definition, sorted by name."""

    @abstractmethod
    async def workflow_def_versions(self, name: str) -> list[int]:
        """The stored versions of ``name``, ascending (empty if none)."""

    @abstractmethod
    async def remove_workflow_def(self, name: str, version: int) -> None:
        """Delete one version; NotFound if it does not exist."""

    @abstractmethod
    async def add_event_handler(self, handler: Record) -> None:
        """Store a new event handler; Conflict if one has that name."""

    @abstractmethod
    async def update_event_handler(self, handler: Record) -> None:
        """Replace an event handler; NotFound if none has that name."""

    @abstractmethod
    async def remove_event_handler(self, name: str) -> None:
        """Delete an event handler; NotFound if none."""

    @abstractmethod
    async def list_event_handlers(self) -> list[Record]:
        """All event handlers, sorted by name."""

    @abstractmethod
    async def event_handlers_for_event(self, event: str, active_only: bool = True) -> list[Record]:
        """The handlers listening to ``event`` (only active ones unless asked), by name."""

    # Access keys made at run time (the gateway's ``/api/admin/keys``): every gateway replica
    # reads them from here. A record holds the key id, a hash of its secret and its roles.

    @abstractmethod
    async def create_access_key(self, key: Record) -> None:
        """Store a new key (``key["keyId"]`` names it); Conflict if the id is taken."""

    @abstractmethod
    async def get_access_key(self, key_id: str) -> Record:
        """One key; NotFound if none."""

    @abstractmethod
    async def list_access_keys(self) -> list[Record]:
        """Every stored key, sorted by id."""

    @abstractmethod
    async def remove_access_key(self, key_id: str) -> None:
        """Delete a key; NotFound if none."""


class ExecutionStore(ABC):
    """Workflow and task executions, their indexes, poll data and task logs."""

    @abstractmethod
    async def create_workflow(self, workflow: Record, tasks: Sequence[Record] = ()) -> int:
        """Write a new workflow and its first tasks; return version 1.

        Conflict if a workflow with that id exists. ``workflow["tasks"]`` is ignored.
        """

    @abstractmethod
    async def commit(
        self,
        workflow: Record,
        tasks: Sequence[Record],
        expected_version: int,
        *,
        removed_task_ids: Sequence[str] = (),
    ) -> int:
        """Atomically write the workflow and the given (new or changed) tasks of it.

        Applies only if the stored version equals ``expected_version``; returns the new
        version. Raises VersionConflict if another writer got there first, NotFound if the
        workflow does not exist, DuplicateTask if a task's (referenceTaskName, retryCount,
        iteration) already belongs to another task id. Nothing is written on any error.
        ``removed_task_ids`` (restart, rerun, a loop's keepLastN) are deleted in the same
        commit with their lookups, logs and index entries; their keys are free for the new
        tasks of this commit. InvalidArgument if one is not a task of the workflow.
        A terminal status with a retention configured makes the workflow, its tasks, logs and
        index entries expire after the retention.
        """

    @abstractmethod
    async def read_workflow(self, workflow_id: str, include_tasks: bool = True) -> WorkflowSnapshot:
        """The workflow (tasks sorted by ``seq`` under ``tasks``) and its version."""

    async def get_workflow(self, workflow_id: str, include_tasks: bool = True) -> Record:
        """The workflow record (NotFound if none); with ``tasks`` sorted by seq if asked."""
        return (await self.read_workflow(workflow_id, include_tasks)).workflow

    @abstractmethod
    async def get_task(self, task_id: str) -> Record:
        """One task by id; NotFound if none."""

    @abstractmethod
    async def get_tasks(self, workflow_id: str) -> list[Record]:
        """The tasks of a workflow sorted by seq; NotFound if the workflow does not exist."""

    @abstractmethod
    async def remove_workflow(self, workflow_id: str) -> None:
        """Delete a workflow, its tasks, task logs, lookups and index entries; NotFound if none."""

    @abstractmethod
    async def purge_expired(self, limit: int = 1000) -> int:
        """Remove what is left of up to ``limit`` workflows whose retention ran out.

        Their records expire by themselves; this clears their entries in shared indexes
        (Redis sorted sets and hashes). A sweeper may call it periodically; terminal commits
        also do a little of it on the side. Cassandra needs none (TTLs): it returns 0.
        """

    @abstractmethod
    async def pending_tasks_by_type(self, task_type: str) -> list[Record]:
        """The non-terminal tasks of a type, in no particular order."""

    @abstractmethod
    async def running_workflow_ids(
        self, workflow_name: str, version: int | None = None
    ) -> list[str]:
        """Ids of the non-terminal workflows of a name (and version, if given), sorted."""

    @abstractmethod
    async def workflows_by_correlation_id(
        self,
        workflow_name: str,
        correlation_id: str,
        include_closed: bool = False,
        include_tasks: bool = False,
    ) -> list[Record]:
        """Workflows of a name with that correlation id, newest first."""

    @abstractmethod
    async def bind_idempotency_key(
        self, workflow_name: str, key: str, workflow_id: str, *, replacing: str = ""
    ) -> IdempotencyBinding:
        """Bind ``key`` (scoped by ``workflow_name``) to ``workflow_id``, atomically.

        Applies only if the key is bound to ``replacing`` now (``""``: to nothing), so that of
        concurrent callers exactly one wins. Returns the binding after the call: the caller's
        if it applied, else the one that stood in its way.
        """

    @abstractmethod
    async def release_idempotency_key(self, workflow_name: str, key: str, workflow_id: str) -> None:
        """Unbind ``key`` if it is still bound to ``workflow_id`` (a start that never happened)."""

    @abstractmethod
    async def update_poll_data(
        self, queue_name: str, domain: str | None, worker_id: str, last_poll_time_ms: int
    ) -> None:
        """Record that ``worker_id`` polled ``queue_name`` (in ``domain``) at that time."""

    @abstractmethod
    async def get_poll_data(self, task_type: str) -> list[Record]:
        """PollData dicts {queueName, domain, workerId, lastPollTime} of a task type."""

    @abstractmethod
    async def add_task_logs(self, task_id: str, logs: Sequence[Record]) -> None:
        """Append TaskExecLogs {log, taskId, createdTime}; NotFound if the task does not exist."""

    @abstractmethod
    async def get_task_logs(self, task_id: str) -> list[Record]:
        """The logs of a task in the order they were added (empty if none)."""

    @abstractmethod
    async def search_workflows(self, query: SearchQuery, *, full: bool = False) -> dict[str, Any]:
        """``{"totalHits": n, "results": [...]}``: WorkflowSummary dicts, or records if full."""

    @abstractmethod
    async def search_tasks(self, query: SearchQuery, *, full: bool = False) -> dict[str, Any]:
        """``{"totalHits": n, "results": [...]}``: TaskSummary dicts, or records if full."""


#: What an audit record can be looked up by (the gateway's ``GET /api/audit`` filters).
AUDIT_KINDS = ("workflowId", "definition", "taskDef", "eventHandler", "keyId")


@dataclass(frozen=True)
class AuditEntry:
    """One audit record filed under one target: ``kind`` (of AUDIT_KINDS) and ``target``.

    A record that names several targets is filed once per target; ``record_id`` is the same
    for each copy, and ``time_ms`` (epoch ms) orders the copies of one target.
    """

    kind: str
    target: str
    time_ms: int
    record_id: str
    record: Record


class AuditStore(ABC):
    """The audit trail of state-changing API calls, filed by target, kept for a retention."""

    @abstractmethod
    async def append(
        self, entries: Sequence[AuditEntry], *, retention_ms: int, max_per_target: int
    ) -> None:
        """File the entries; each expires ``retention_ms`` after it was written.

        ``max_per_target`` bounds how many of the newest entries a backend without per-entry
        expiry (Redis) keeps for one target; Cassandra keeps every entry for the retention.
        """

    @abstractmethod
    async def query(
        self, kind: str, target: str, *, limit: int, now_ms: int, retention_ms: int
    ) -> list[Record]:
        """Up to ``limit`` records filed under (``kind``, ``target``), newest first.

        Records older than ``retention_ms`` before ``now_ms`` are never returned.
        """


class ScheduleStore(ABC):
    """Workflow schedules and the record of each of their runs.

    A schedule is a Conductor ``WorkflowSchedule`` dict keyed by ``name``. A run is a
    ``WorkflowScheduleExecutionModel`` dict keyed by (``scheduleName``, ``scheduledTime``):
    :meth:`claim_run` creates it only if absent, so that of several sweepers trying to start
    one run, exactly one does. Runs expire ``retention_ms`` after they were claimed.
    """

    @abstractmethod
    async def put_schedule(self, schedule: Record) -> None:
        """Create or replace the schedule named ``schedule["name"]``."""

    @abstractmethod
    async def get_schedule(self, name: str) -> Record:
        """One schedule; NotFound if none."""

    @abstractmethod
    async def list_schedules(self) -> list[Record]:
        """Every schedule, sorted by name."""

    @abstractmethod
    async def remove_schedule(self, name: str) -> None:
        """Delete a schedule and its cursor (its runs stay until they expire); NotFound if none."""

    @abstractmethod
    async def get_cursor(self, name: str) -> int | None:
        """The latest scheduled time (epoch ms) the sweepers have dealt with, None if unset."""

    @abstractmethod
    async def set_cursor(self, name: str, time_ms: int) -> None:
        """Set the schedule's cursor (forward or back: a resume moves it to now)."""

    @abstractmethod
    async def claim_run(self, run: Record, *, retention_ms: int) -> bool:
        """Store the run if none has its (scheduleName, scheduledTime); True if this call did."""

    @abstractmethod
    async def update_run(self, run: Record, *, retention_ms: int) -> None:
        """Replace a claimed run's record (its state, workflow id, reason)."""

    @abstractmethod
    async def search_runs(
        self,
        schedule_names: Sequence[str],
        *,
        from_ms: int,
        to_ms: int,
        start: int = 0,
        size: int = 100,
    ) -> dict[str, Any]:
        """``{"totalHits": n, "results": [...]}``: the runs of those schedules whose scheduled
        time is in [from_ms, to_ms], newest first, ``size`` of them from ``start``."""


class Store(ABC):
    """A connected store: ``metadata``, ``executions``, ``audit`` and ``schedules``;
    ``close()`` when done."""

    metadata: MetadataStore
    executions: ExecutionStore
    audit: AuditStore
    schedules: ScheduleStore

    @abstractmethod
    async def close(self) -> None:
        """Release the connections; idempotent."""

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
