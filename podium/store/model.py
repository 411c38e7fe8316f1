"""What the store knows about the records it keeps.

Records are Conductor-shaped dicts with Conductor's camelCase field names. The store reads
only the fields it indexes or keys on, and checks them here before anything is written.
"""

from __future__ import annotations

import json
from typing import Any

from podium.errors import InvalidArgument
from podium.statuses import TASK_TERMINAL, WORKFLOW_TERMINAL, TaskStatus, WorkflowStatus

Record = dict[str, Any]

__all__ = [
    "TASK_TERMINAL",
    "WORKFLOW_TERMINAL",
    "Record",
    "TaskStatus",
    "WorkflowStatus",
]

DAY_MS = 86_400_000


_WORKFLOW_STATUSES = frozenset(s.value for s in WorkflowStatus)
_TASK_STATUSES = frozenset(s.value for s in TaskStatus)


def is_name(value: object) -> bool:
    """A usable name: a string with something other than whitespace in it."""
    return isinstance(value, str) and value.strip() != ""


def _need_name(rec: Record, field: str, what: str) -> str:
    value = rec.get(field)
    if not is_name(value):
        raise InvalidArgument(f"{what}.{field} must be a non-empty string", field=field)
    return str(value)


def _need_int(rec: Record, field: str, what: str, minimum: int, default: int | None = None) -> int:
    value = rec.get(field, default)
    # bool is an int subclass; a True version is a bug in the caller, not a version.
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidArgument(
            f"{what}.{field} must be an integer >= {minimum}, got {value!r}", field=field
        )
    return value


def _need_record(rec: object, what: str) -> Record:
    if not isinstance(rec, dict):
        raise InvalidArgument(f"{what} must be an object, got {type(rec).__name__}")
    return rec


def check_workflow(rec: object) -> Record:
    """Check a workflow record; return a copy without ``tasks`` (they are stored apart)."""
    wf = _need_record(rec, "workflow")
    _need_name(wf, "workflowId", "workflow")
    _need_name(wf, "workflowName", "workflow")
    _need_int(wf, "workflowVersion", "workflow", 1)
    _need_int(wf, "createTime", "workflow", 0)
    if wf.get("status") not in _WORKFLOW_STATUSES:
        raise InvalidArgument(
            f"workflow.status {wf.get('status')!r} is not a workflow status", field="status"
        )
    corr = wf.get("correlationId")
    if corr is not None and not isinstance(corr, str):
        raise InvalidArgument("workflow.correlationId must be a string", field="correlationId")
    return {k: v for k, v in wf.items() if k != "tasks"}


def check_task(rec: object, workflow_id: str) -> Record:
    """Check a task record that belongs to ``workflow_id``."""
    task = _need_record(rec, "task")
    for field in ("taskId", "taskType", "referenceTaskName"):
        _need_name(task, field, "task")
    if task.get("workflowInstanceId") != workflow_id:
        raise InvalidArgument(
            f"task {task['taskId']!r} has workflowInstanceId "
            f"{task.get('workflowInstanceId')!r}, not {workflow_id!r}",
            field="workflowInstanceId",
        )
    if task.get("status") not in _TASK_STATUSES:
        raise InvalidArgument(
            f"task.status {task.get('status')!r} is not a task status", field="status"
        )
    _need_int(task, "retryCount", "task", 0, default=0)
    _need_int(task, "iteration", "task", 0, default=0)
    _need_int(task, "scheduledTime", "task", 0)
    return task


def check_task_def(rec: object) -> Record:
    d = _need_record(rec, "task definition")
    _need_name(d, "name", "taskDef")
    return d


def check_workflow_def(rec: object) -> Record:
    d = _need_record(rec, "workflow definition")
    _need_name(d, "name", "workflowDef")
    _need_int(d, "version", "workflowDef", 1)
    tasks = d.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise InvalidArgument("workflowDef.tasks must be a non-empty list", field="tasks")
    return d


def check_event_handler(rec: object) -> Record:
    d = _need_record(rec, "event handler")
    _need_name(d, "name", "eventHandler")
    _need_name(d, "event", "eventHandler")
    if not isinstance(d.get("actions", []), list):
        raise InvalidArgument("eventHandler.actions must be a list", field="actions")
    return d


def is_terminal_workflow(wf: Record) -> bool:
    return wf.get("status") in WORKFLOW_TERMINAL


def is_terminal_task(task: Record) -> bool:
    return task.get("status") in TASK_TERMINAL


def task_unique_key(task: Record) -> str:
    """The uniqueness key of a task within its workflow: (ref, retryCount, iteration).

    JSON keeps the parts apart whatever characters the reference name holds.
    """
    return json.dumps(
        [task["referenceTaskName"], task.get("retryCount", 0), task.get("iteration", 0)],
        separators=(",", ":"),
    )


def workflow_index_time(wf: Record) -> int:
    """The time a workflow is searched by: its start time, else its create time (ms)."""
    start = wf.get("startTime")
    if isinstance(start, int) and not isinstance(start, bool) and start > 0:
        return start
    return int(wf["createTime"])


def task_index_time(task: Record) -> int:
    """The time a task is searched by: its scheduled time (ms)."""
    return int(task["scheduledTime"])


def day_of(ms: int) -> int:
    """The UTC day bucket (days since the epoch) that holds ``ms``."""
    return ms // DAY_MS
