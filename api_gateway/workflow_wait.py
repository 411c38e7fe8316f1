"""Waiting for a workflow to finish or block, and Conductor's SignalResponse shapes.

Used by ``POST /api/workflow/execute/{name}/{version}`` and ``POST
/api/tasks/{workflowId}/{status}/signal/sync``. The store is polled every ``POLL_S`` until the
workflow is terminal, or a WAIT or HUMAN task without a deadline is pending in it (or in one of
its running sub-workflows), or one of the awaited task references has finished; at the
deadline the current state comes back with ``signalTimeout: true``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass

from api_gateway.context import Gateway
from podium.errors import InvalidArgument, NotFound
from podium.store import TASK_TERMINAL, WORKFLOW_TERMINAL
from podium.types import JSON

POLL_S = 0.05
MAX_SUB_WORKFLOW_DEPTH = 5
RETURN_STRATEGIES = ("TARGET_WORKFLOW", "BLOCKING_WORKFLOW", "BLOCKING_TASK", "BLOCKING_TASK_INPUT")
_BLOCKING_TYPES = frozenset({"WAIT", "HUMAN", "YIELD"})


@dataclass
class Outcome:
    target: JSON
    #: The workflow holding the blocking task and the task, when one blocks.
    blocking_workflow: JSON | None
    blocking_task: JSON | None
    timed_out: bool


def _is_blocking(task: JSON) -> bool:
    if task.get("taskType") not in _BLOCKING_TYPES or task.get("status") in TASK_TERMINAL:
        return False
    data = task.get("inputData") or {}
    return not (data.get("duration") or data.get("until"))


def _base_ref(ref: str) -> str:
    base, sep, tail = ref.rpartition("__")
    return base if sep and tail.isdigit() else ref


async def _find_blocking(
    gateway: Gateway, wf: JSON, skip: Collection[str], depth: int = 0
) -> tuple[JSON, JSON] | None:
    for task in wf.get("tasks") or []:
        if task.get("taskId") in skip:
            continue
        if _is_blocking(task):
            return wf, task
        sub_id = task.get("subWorkflowId")
        if (
            sub_id
            and task.get("taskType") == "SUB_WORKFLOW"
            and task.get("status") not in TASK_TERMINAL
            and depth < MAX_SUB_WORKFLOW_DEPTH
        ):
            try:
                sub = await gateway.store.executions.get_workflow(str(sub_id), include_tasks=True)
            except NotFound:
                continue
            if sub.get("status") not in WORKFLOW_TERMINAL:
                found = await _find_blocking(gateway, sub, skip, depth + 1)
                if found is not None:
                    return found
    return None


def _ref_done(wf: JSON, refs: Collection[str]) -> JSON | None:
    for task in wf.get("tasks") or []:
        ref = str(task.get("referenceTaskName") or "")
        if (ref in refs or _base_ref(ref) in refs) and task.get("status") in TASK_TERMINAL:
            return dict(task)
    return None


async def wait_for(
    gateway: Gateway,
    workflow_id: str,
    timeout_s: float,
    *,
    refs: Collection[str] = (),
    skip_task_ids: Collection[str] = (),
) -> Outcome:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        wf = await gateway.store.executions.get_workflow(workflow_id, include_tasks=True)
        if wf.get("status") in WORKFLOW_TERMINAL:
            return Outcome(wf, None, None, False)
        done = _ref_done(wf, refs) if refs else None
        if done is not None:
            return Outcome(wf, wf, done, False)
        found = await _find_blocking(gateway, wf, skip_task_ids)
        if found is not None:
            return Outcome(wf, found[0], found[1], False)
        if loop.time() >= deadline:
            return Outcome(wf, None, None, True)
        await asyncio.sleep(min(POLL_S, max(0.0, deadline - loop.time())))


def return_strategy(value: str | None) -> str:
    strategy = (value or "TARGET_WORKFLOW").upper()
    if strategy not in RETURN_STRATEGIES:
        raise InvalidArgument(
            f"returnStrategy must be one of {', '.join(RETURN_STRATEGIES)}", field="returnStrategy"
        )
    return strategy


def _workflow_run(
    wf: JSON, target: JSON, strategy: str, timed_out: bool, request_id: str | None
) -> JSON:
    return {
        "responseType": strategy,
        "targetWorkflowId": target.get("workflowId"),
        "targetWorkflowStatus": target.get("status"),
        "requestId": request_id,
        "workflowId": wf.get("workflowId"),
        "correlationId": wf.get("correlationId"),
        "input": wf.get("input"),
        "output": wf.get("output"),
        "signalTimeout": timed_out,
        "priority": wf.get("priority"),
        "variables": wf.get("variables"),
        "tasks": wf.get("tasks") or [],
        "createdBy": wf.get("createdBy"),
        "createTime": wf.get("createTime"),
        "status": wf.get("status"),
        "updateTime": wf.get("updateTime"),
    }


def _task_run(
    wf: JSON, task: JSON, target: JSON, strategy: str, timed_out: bool, request_id: str | None
) -> JSON:
    with_input = strategy == "BLOCKING_TASK_INPUT"
    return {
        "responseType": strategy,
        "targetWorkflowId": target.get("workflowId"),
        "targetWorkflowStatus": target.get("status"),
        "requestId": request_id,
        "workflowId": wf.get("workflowId"),
        "correlationId": wf.get("correlationId"),
        "input": task.get("inputData"),
        "output": None if with_input else task.get("outputData"),
        "signalTimeout": timed_out,
        "taskType": task.get("taskType"),
        "taskId": task.get("taskId"),
        "referenceTaskName": task.get("referenceTaskName"),
        "retryCount": task.get("retryCount"),
        "taskDefName": task.get("taskDefName"),
        "retriedTaskId": task.get("retriedTaskId"),
        "workflowType": task.get("workflowType"),
        "reasonForIncompletion": task.get("reasonForIncompletion"),
        "priority": task.get("workflowPriority"),
        "status": task.get("status"),
        "createTime": task.get("startTime") or task.get("scheduledTime"),
        "updateTime": task.get("updateTime"),
        "createdBy": task.get("workerId"),
    }


def signal_response(outcome: Outcome, strategy: str, request_id: str | None = None) -> JSON:
    target = outcome.target
    if strategy in ("BLOCKING_TASK", "BLOCKING_TASK_INPUT") and outcome.blocking_task:
        wf = outcome.blocking_workflow or target
        return _task_run(wf, outcome.blocking_task, target, strategy, outcome.timed_out, request_id)
    wf = target
    if strategy == "BLOCKING_WORKFLOW" and outcome.blocking_workflow is not None:
        wf = outcome.blocking_workflow
    return _workflow_run(wf, target, strategy, outcome.timed_out, request_id)
