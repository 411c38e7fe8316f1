"""The operation a child workflow's change applies to its parent (``child_status``): the
parent's SUB_WORKFLOW task takes the child's status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from decider.decide import decide_run, finish
from decider.decision import Context, Decision
from decider.operations import reopen_workflow, task_in
from decider.reopen import reopen_parent
from decider.statuses import (
    TaskStatus,
    WorkflowStatus,
    task_terminal,
    workflow_terminal,
)
from decider.workflow_run import Run
from podium.clone import clone
from podium.errors import (
    InvalidArgument,
)

REASON_LIMIT = 500


_CHILD_TO_TASK = {
    WorkflowStatus.RUNNING: TaskStatus.IN_PROGRESS,
    WorkflowStatus.PAUSED: TaskStatus.IN_PROGRESS,
    WorkflowStatus.COMPLETED: TaskStatus.COMPLETED,
    WorkflowStatus.FAILED: TaskStatus.FAILED,
    WorkflowStatus.TERMINATED: TaskStatus.CANCELED,
    WorkflowStatus.TIMED_OUT: TaskStatus.TIMED_OUT,
}


def child_status(
    workflow: Mapping[str, Any],
    task_id: str,
    child_workflow_id: str,
    status: str,
    ctx: Context,
    *,
    output: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> Decision:
    """A sub-workflow's status reaches its parent's SUB_WORKFLOW task, then the parent decides.

    RUNNING/PAUSED → IN_PROGRESS, COMPLETED → COMPLETED, FAILED → FAILED, TERMINATED →
    CANCELED, TIMED_OUT → TIMED_OUT; output = child output + ``subWorkflowId``. A child that
    runs again (retried, restarted) reopens a finished task and, if needed, the parent.
    """
    if status not in _CHILD_TO_TASK:
        raise InvalidArgument(f"Unknown workflow status: {status}")
    run = Run(workflow, ctx)
    task = task_in(run, task_id)
    if task.get("subWorkflowId") not in (None, child_workflow_id):
        return finish(run, accepted=False, note="update from a previous child")
    new_status = _CHILD_TO_TASK[WorkflowStatus(status)]
    if task_terminal(task["status"]) or workflow_terminal(run.status):
        if new_status != TaskStatus.IN_PROGRESS or not task_terminal(task["status"]):
            return finish(run, accepted=False, note="task or workflow already finished")
        reopen_parent(run, task)
        if workflow_terminal(run.status):
            reopen_workflow(run)
        decide_run(run)
        return finish(run)
    task["subWorkflowId"] = child_workflow_id
    if new_status == TaskStatus.IN_PROGRESS:
        if task["status"] == TaskStatus.IN_PROGRESS:
            return finish(run, accepted=False, note="already in progress")
        task["startTime"] = task.get("startTime") or ctx.now_ms
        task["status"] = TaskStatus.IN_PROGRESS.value
        return finish(run)
    task["outputData"] = {**clone(dict(output or {})), "subWorkflowId": child_workflow_id}
    if new_status != TaskStatus.COMPLETED:
        name = task["inputData"].get("subWorkflowName")
        version = task["inputData"].get("subWorkflowVersion")
        task["reasonForIncompletion"] = (
            f"Sub workflow {name}.{version}/{child_workflow_id} failure reason: {reason}"
        )
    run.set_status(task, new_status)
    decide_run(run)
    return finish(run)
