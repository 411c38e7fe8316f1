"""Statuses and task-type families, as Conductor names them.

Statuses are ``str`` enums so that a record's ``"status"`` field compares equal to the member.
"""

from __future__ import annotations

from podium.definitions.task_types import ASYNC_SYSTEM_TYPES as ASYNC_SYSTEM_TYPES
from podium.definitions.task_types import BUILT_IN_TYPES as BUILT_IN_TYPES
from podium.definitions.task_types import SYNC_SYSTEM_TYPES as SYNC_SYSTEM_TYPES
from podium.definitions.task_types import SYSTEM_TYPES as SYSTEM_TYPES
from podium.definitions.task_types import UNSUPPORTED_TYPES as UNSUPPORTED_TYPES

# Task types are part of definitions, shared with the gateway; re-exported here.
from podium.definitions.task_types import TaskType as TaskType
from podium.definitions.task_types import is_system_type as is_system_type

# The statuses live in the kernel (the store indexes them too); re-exported here.
from podium.statuses import TASK_TERMINAL as TASK_TERMINAL
from podium.statuses import WORKFLOW_TERMINAL as WORKFLOW_TERMINAL
from podium.statuses import TaskStatus as TaskStatus
from podium.statuses import WorkflowStatus as WorkflowStatus

WORKFLOW_SUCCESSFUL: frozenset[str] = frozenset({WorkflowStatus.COMPLETED, WorkflowStatus.PAUSED})

TASK_SUCCESSFUL: frozenset[str] = frozenset(
    {
        TaskStatus.SCHEDULED,
        TaskStatus.IN_PROGRESS,
        TaskStatus.COMPLETED,
        TaskStatus.COMPLETED_WITH_ERRORS,
        TaskStatus.SKIPPED,
    }
)
#: Statuses the decider may retry (CANCELED, FAILED_WITH_TERMINAL_ERROR and SKIPPED never are).
TASK_RETRIABLE: frozenset[str] = frozenset(
    {
        TaskStatus.SCHEDULED,
        TaskStatus.IN_PROGRESS,
        TaskStatus.COMPLETED,
        TaskStatus.COMPLETED_WITH_ERRORS,
        TaskStatus.FAILED,
        TaskStatus.TIMED_OUT,
    }
)
#: What a worker may report in a TaskResult.
TASK_RESULT_STATUSES: frozenset[str] = frozenset(
    {
        TaskStatus.IN_PROGRESS,
        TaskStatus.FAILED,
        TaskStatus.FAILED_WITH_TERMINAL_ERROR,
        TaskStatus.COMPLETED,
        TaskStatus.CANCELED,
    }
)


def task_terminal(status: str) -> bool:
    return status in TASK_TERMINAL


def task_successful(status: str) -> bool:
    return status in TASK_SUCCESSFUL


def workflow_terminal(status: str) -> bool:
    return status in WORKFLOW_TERMINAL
