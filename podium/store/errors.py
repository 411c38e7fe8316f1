"""Errors the store raises beyond the shared tree in :mod:`podium.errors`."""

from __future__ import annotations

from podium.errors import Conflict


class VersionConflict(Conflict):
    """A conditional write found another version than the one it expected.

    ``data`` carries ``workflowId``, ``expected`` and ``actual`` (the stored version). The
    writer lost a race: re-read the workflow, decide again and retry.
    """

    code = "VERSION_CONFLICT"
    retryable = True


class DuplicateTask(Conflict):
    """A new task's uniqueness key already belongs to another task of the workflow.

    The key is (workflowInstanceId, referenceTaskName, retryCount, iteration); ``data``
    carries the key and the task id that owns it. Nothing of the commit was written.
    """

    code = "DUPLICATE_TASK"
