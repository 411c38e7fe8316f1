"""Commands for tasks done outside the decide loop: the starts of SUB_WORKFLOW and
START_WORKFLOW tasks, which the shell carries out (:mod:`decider.commands`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from itertools import compress
from operator import itemgetter
from typing import Any

from decider.decision import (
    StartSubWorkflow,
    StartWorkflow,
)
from decider.statuses import (
    TaskStatus,
    TaskType,
    WorkflowStatus,
)
from decider.workflow_run import Run
from podium.clone import clone
from podium.types import JSON


def start_workflow_id(workflow_id: str, task_id: str) -> str:
    """Deterministic id of the workflow a START_WORKFLOW task starts (idempotent start)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"startworkflow:{workflow_id}:{task_id}"))


_STARTERS = frozenset({TaskType.SUB_WORKFLOW, TaskType.START_WORKFLOW})
_task_type = itemgetter("taskType")


def emit_start_commands(run: Run) -> None:
    """Sub-workflows and START_WORKFLOW tasks still SCHEDULED: (re)issue their start."""
    if run.status != WorkflowStatus.RUNNING:
        return
    tasks = run.system_tasks()  # a fan-out's thousand SIMPLE branches are not among them
    for t in compress(tasks, map(_STARTERS.__contains__, map(_task_type, tasks))):
        if t["status"] != TaskStatus.SCHEDULED:
            continue
        if run.now < int(t.get("scheduledTime") or 0) + 1000 * int(
            t.get("startDelayInSeconds") or 0
        ):
            continue
        if t["taskType"] == TaskType.SUB_WORKFLOW:
            run.command(_sub_workflow_command(run, t))
        elif t["taskType"] == TaskType.START_WORKFLOW:
            run.command(_start_workflow_command(run, t))


def _sub_workflow_command(run: Run, t: JSON) -> StartSubWorkflow:
    inp = t["inputData"]
    child_input = inp.get("workflowInput") or {k: v for k, v in inp.items()}
    priority = inp.get("priority")
    return StartSubWorkflow(
        workflow_id=t["subWorkflowId"],
        name=inp.get("subWorkflowName"),
        version=inp.get("subWorkflowVersion"),
        definition=inp.get("subWorkflowDefinition"),
        input=clone(child_input),
        correlation_id=run.wf.get("correlationId"),
        task_to_domain=dict(inp.get("subWorkflowTaskToDomain") or run.wf.get("taskToDomain") or {}),
        priority=int(priority)
        if isinstance(priority, int | float) and not isinstance(priority, bool)
        else 0,
        parent_workflow_id=run.wf["workflowId"],
        parent_workflow_task_id=t["taskId"],
        depth=subworkflow_depth(run.wf) + 1,
    )


def subworkflow_depth(workflow: Mapping[str, Any]) -> int:
    """How deep a workflow is nested: 0 at the top, its parent's depth plus one below."""
    depth = workflow.get("subWorkflowDepth")
    return depth if isinstance(depth, int) and not isinstance(depth, bool) else 0


def _start_workflow_command(run: Run, t: JSON) -> StartWorkflow:
    req: dict[str, Any] = t["inputData"].get("startWorkflow") or {}
    return StartWorkflow(
        workflow_id=start_workflow_id(run.wf["workflowId"], t["taskId"]),
        name=req.get("name"),
        version=req.get("version"),
        definition=req.get("workflowDef"),
        input=clone(req.get("input") or {}),
        correlation_id=req.get("correlationId", run.wf.get("correlationId")),
        task_to_domain=dict(req.get("taskToDomain") or run.wf.get("taskToDomain") or {}),
        priority=int(req.get("priority") or 0),
        reply_workflow_id=run.wf["workflowId"],
        reply_task_id=t["taskId"],
    )
