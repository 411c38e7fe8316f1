"""Workflow operations as pure transitions: ``op(workflow, ..., ctx) -> Decision``.

Each operation copies the record, applies Conductor's rules for that call, runs the decide
loop where Conductor does, and returns a :class:`~decider.decision.Decision`. Preconditions
raise Podium errors with Conductor's messages (Conflict → 409, NotFound → 404, IllegalState →
500, InvalidArgument/ValidationError → 400). Repeated or late calls that Conductor ignores
return a Decision with ``accepted=False`` and no changes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from decider.decide import decide_run, finish
from decider.decision import Context, Decision
from decider.definition_tree import find_task, populate_task_defs
from decider.lifecycle import notify_parent, terminate_workflow
from decider.reopen import reopen_for_retry, rerun_from_task
from decider.statuses import (
    TASK_RESULT_STATUSES,
    TaskStatus,
    WorkflowStatus,
    is_system_type,
    task_terminal,
    workflow_terminal,
)
from decider.task_index import tasks_by_id
from decider.workflow_run import Run
from podium.clone import clone
from podium.errors import (
    Conflict,
    IllegalState,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    PodiumError,
    ValidationError,
)
from podium.types import JSON

REASON_LIMIT = 500


def is_priority(value: Any) -> bool:
    """Whether ``value`` is a workflow priority a start accepts (an int from 0 to 99)."""
    return isinstance(value, int) and 0 <= value <= 99


def start_workflow(
    definition: Mapping[str, Any], request: Mapping[str, Any], ctx: Context
) -> Decision:
    """Create a workflow from a (registered or inline) WorkflowDef and decide it once.

    ``request`` is Conductor's StartWorkflowRequest (``input``, ``correlationId``,
    ``priority``, ``taskToDomain``, ``createdBy``, ``idempotencyKey``) plus Podium's
    ``workflowId`` (sub-workflows, failure workflows), ``parentWorkflowId`` and
    ``parentWorkflowTaskId``. The definition is validated and given its TaskDefs from
    ``ctx.task_defs`` (unregistered SIMPLE tasks get the default one).
    """
    wf_def = ctx.definitions.workflow_def(
        definition, owner_email_mandatory=ctx.config.owner_email_mandatory
    )
    if "input" in request and request["input"] is None:
        raise InvalidArgument("NULL input passed when starting workflow")
    priority = request.get("priority") or 0
    if not is_priority(priority):
        raise ValidationError.of(
            [{"path": "priority", "message": "priority: must be between 0 and 99"}]
        )
    wf_def = populate_task_defs(wf_def, ctx.task_defs)
    workflow_input = clone(dict(request.get("input") or {}))
    for key, value in (wf_def.get("inputTemplate") or {}).items():
        workflow_input.setdefault(key, clone(value))
    now = ctx.now_ms
    wf: JSON = {
        "workflowId": request.get("workflowId") or ctx.ids(),
        "workflowName": wf_def["name"],
        "workflowVersion": wf_def["version"],
        "status": WorkflowStatus.RUNNING.value,
        "createTime": now,
        "startTime": now,
        "updateTime": now,
        "endTime": 0,
        "input": workflow_input,
        "output": {},
        "tasks": [],
        "taskToDomain": dict(request.get("taskToDomain") or {}),
        "failedReferenceTaskNames": [],
        "failedTaskNames": [],
        "workflowDefinition": wf_def,
        "priority": priority,
        "variables": clone(wf_def.get("variables") or {}),
        "lastRetriedTime": 0,
    }
    for src, dst in (
        ("correlationId", "correlationId"),
        ("parentWorkflowId", "parentWorkflowId"),
        ("parentWorkflowTaskId", "parentWorkflowTaskId"),
        ("createdBy", "createdBy"),
        ("idempotencyKey", "idempotencyKey"),
        ("event", "event"),
        ("subWorkflowDepth", "subWorkflowDepth"),
    ):
        if request.get(src) is not None:
            wf[dst] = request[src]
    run = Run({}, ctx)
    run.wf = wf
    decide_run(run)
    if run.status == WorkflowStatus.RUNNING:
        notify_parent(run)
    return finish(run)


def decide(workflow: Mapping[str, Any], ctx: Context) -> Decision:
    """Re-evaluate a workflow now (sweeper, ``PUT /workflow/decide/{id}``)."""
    run = Run(workflow, ctx, share_settled=True)
    decide_run(run)
    return finish(run)


def no_such_task(task_id: str) -> NotFound:
    return NotFound(f"No such task found by id: {task_id}", taskId=task_id)


def task_in(run: Run, task_id: str) -> JSON:
    task = run.task_by_id(task_id)
    if task is None:
        raise no_such_task(task_id)
    return task


def claim(
    workflow: Mapping[str, Any], task_id: str, worker_id: str | None, ctx: Context
) -> Decision:
    """A task popped from its queue goes to a worker: IN_PROGRESS, pollCount+1, startTime.

    A task already finished is not handed out (``accepted=False``, its message removed).
    Limits are checked before, with :func:`decider.decision.check_claim_limits`.
    """
    if task_id not in tasks_by_id(workflow, (task_id,)):  # through the record's index
        raise no_such_task(task_id)
    return claim_all(workflow, [task_id], worker_id, ctx)


def claim_all(
    workflow: Mapping[str, Any], task_ids: Sequence[str], worker_id: str | None, ctx: Context
) -> Decision:
    """:func:`claim` for several popped tasks of one workflow, in one decision (a poll of a
    fan-out's branches): the ones not finished go to the worker; ``accepted`` if any did.
    Ids that are not tasks of the workflow are skipped (their messages are the caller's)."""
    run = Run(workflow, ctx, share_all=True)  # only the claimed tasks change
    by_id = run.own(task_ids)
    handed = 0
    for task_id in task_ids:
        task = by_id.get(task_id)
        if task is None:
            continue
        if task_terminal(task["status"]) or workflow_terminal(run.status):
            run.remove_message(task)
            continue
        task["status"] = TaskStatus.IN_PROGRESS.value
        if not task.get("startTime"):
            task["startTime"] = ctx.now_ms
        task["callbackAfterSeconds"] = 0
        task["pollCount"] = int(task.get("pollCount") or 0) + 1
        task["updateTime"] = ctx.now_ms
        if worker_id is not None:
            task["workerId"] = worker_id
        handed += 1
    if not handed:
        return finish(run, accepted=False, note="task or workflow already finished")
    return finish(run)


def _validate_result(result: Mapping[str, Any]) -> None:
    errors = []
    if not result.get("workflowInstanceId"):
        errors.append(
            {"path": "workflowInstanceId", "message": "Workflow Id cannot be null or empty"}
        )
    if not result.get("taskId"):
        errors.append({"path": "taskId", "message": "Task ID cannot be null or empty"})
    status = result.get("status")
    if status is not None and status not in TASK_RESULT_STATUSES:
        errors.append(
            {"path": "status", "message": f"status: {status} is not a valid TaskResult status"}
        )
    callback = result.get("callbackAfterSeconds")
    if callback is not None and (
        not isinstance(callback, int) or isinstance(callback, bool) or callback < 0
    ):
        errors.append(
            {
                "path": "callbackAfterSeconds",
                "message": "callbackAfterSeconds must be an integer >= 0",
            }
        )
    logs = result.get("logs")
    if logs is not None and (
        not isinstance(logs, list) or not all(isinstance(x, Mapping | str) for x in logs)
    ):
        errors.append({"path": "logs", "message": "logs must be a list of TaskExecLog objects"})
    for key in ("outputData", "inputData"):
        value = result.get(key)
        if value is not None and not isinstance(value, Mapping):
            errors.append({"path": key, "message": f"{key} must be an object"})
    if errors:
        raise ValidationError.of(errors)


def update_task(
    workflow: Mapping[str, Any],
    result: Mapping[str, Any],
    ctx: Context,
    *,
    merge_output: bool = False,
) -> Decision:
    """Apply a worker's TaskResult (``POST /api/tasks``), then decide.

    Updates of finished tasks, or of tasks of finished workflows, change nothing (idempotent).
    IN_PROGRESS from a worker puts the task back to SCHEDULED, re-queued after
    ``callbackAfterSeconds``. ``extendLease`` only refreshes ``updateTime``.
    """
    _validate_result(result)
    run = Run(workflow, ctx, share_settled=True)
    task_id = str(result["taskId"])
    task = run.own([task_id]).get(task_id)
    if task is None:
        raise no_such_task(task_id)
    applied = _apply_result(run, task, result, merge_output)
    if applied.decide:
        decide_run(run)
    return finish(run, accepted=applied.accepted, note=applied.note)


@dataclass(frozen=True)
class Applied:
    """What applying one TaskResult did: whether it was accepted, and whether the workflow
    must be decided after it (not for a late result or a lease extension)."""

    accepted: bool
    note: str | None = None
    decide: bool = False


def update_tasks(
    workflow: Mapping[str, Any], results: Sequence[Mapping[str, Any]], ctx: Context
) -> tuple[Decision, list[Applied | PodiumError]]:
    """Several TaskResults of one workflow (a fan-out's branches finishing together) applied
    in one run, then one decide: what :func:`update_task` does for each, as if they had
    arrived at the same instant. One copy of the record and one decide for all of them, where
    one ``update_task`` each would copy and decide the whole workflow once per result.

    Returns the decision and, per result, what it did or the error that refused it alone
    (an unknown task id, an invalid result); the others still apply.
    """
    run = Run(workflow, ctx, share_settled=True)
    by_id = run.own(str(r.get("taskId")) for r in results if isinstance(r, Mapping))
    outcomes: list[Applied | PodiumError] = []
    for result in results:
        try:
            _validate_result(result)
            task_id = str(result["taskId"])
            task = by_id.get(task_id)
            if task is None:
                raise no_such_task(task_id)
            outcomes.append(_apply_result(run, task, result, False))
        except PodiumError as exc:
            outcomes.append(exc)
    if any(isinstance(o, Applied) and o.decide for o in outcomes):
        decide_run(run)
    return finish(run), outcomes


def _apply_result(run: Run, task: JSON, result: Mapping[str, Any], merge_output: bool) -> Applied:
    """Apply one TaskResult to its task in ``run`` (deciding is the caller's)."""
    ctx = run.ctx
    if task_terminal(task["status"]) or workflow_terminal(run.status):
        run.remove_message(task)
        return Applied(False, "task or workflow already finished")
    if result.get("extendLease"):
        task["updateTime"] = ctx.now_ms
        return Applied(True)
    status = str(result.get("status") or TaskStatus.IN_PROGRESS)
    if status == TaskStatus.IN_PROGRESS and not is_system_type(task["taskType"]):
        status = TaskStatus.SCHEDULED
    reason = result.get("reasonForIncompletion")
    if reason is not None:
        task["reasonForIncompletion"] = str(reason)[:REASON_LIMIT]
    if result.get("workerId") is not None:
        task["workerId"] = result["workerId"]
    task["callbackAfterSeconds"] = int(result.get("callbackAfterSeconds") or 0)
    output = clone(dict(result.get("outputData") or {}))
    task["outputData"] = {**task.get("outputData", {}), **output} if merge_output else output
    if result.get("subWorkflowId"):
        task["subWorkflowId"] = result["subWorkflowId"]
    for log in result.get("logs") or []:
        run.logs.append(
            {
                "log": log.get("log"),
                "taskId": task["taskId"],
                "createdTime": log.get("createdTime") or ctx.now_ms,
            }
        )
    run.set_status(task, status)
    task["updateTime"] = ctx.now_ms
    if status == TaskStatus.SCHEDULED:
        run.push(task, 1000 * task["callbackAfterSeconds"])
    return Applied(True, decide=True)


def update_task_by_ref(
    workflow: Mapping[str, Any],
    ref: str,
    status: str,
    output: Mapping[str, Any],
    ctx: Context,
    worker_id: str | None = None,
) -> Decision:
    """``POST /tasks/{wf}/{ref}/{status}``: the first unfinished task with that reference name
    (``__N`` suffix ignored) gets ``status``; ``output`` is merged into its output."""
    for t in workflow.get("tasks", []):
        r = t["referenceTaskName"]
        if not task_terminal(t["status"]) and (r == ref or r.rpartition("__")[0] == ref):
            result = {
                "workflowInstanceId": workflow["workflowId"],
                "taskId": t["taskId"],
                "status": status,
                "outputData": output,
                "workerId": worker_id,
            }
            return update_task(workflow, result, ctx, merge_output=True)
    return finish(Run(workflow, ctx), accepted=False, note=f"no pending task {ref}")


def signal(
    workflow: Mapping[str, Any], status: str, output: Mapping[str, Any], ctx: Context
) -> Decision:
    """``POST /tasks/{wf}/{status}/signal``: complete the first unfinished WAIT task."""
    for t in workflow.get("tasks", []):
        if t["taskType"] == "WAIT" and not task_terminal(t["status"]):
            result = {
                "workflowInstanceId": workflow["workflowId"],
                "taskId": t["taskId"],
                "status": status,
                "outputData": output,
            }
            return update_task(workflow, result, ctx, merge_output=True)
    return finish(Run(workflow, ctx), accepted=False, note="no blocked task to signal")


def terminate(workflow: Mapping[str, Any], reason: str | None, ctx: Context) -> Decision:
    """``DELETE /workflow/{id}``: TERMINATED, tasks canceled; no failureWorkflow."""
    run = Run(workflow, ctx)
    if run.status == WorkflowStatus.COMPLETED:
        raise Conflict("Cannot terminate a COMPLETED workflow.", workflowId=run.wf["workflowId"])
    if run.status == WorkflowStatus.TERMINATED:
        return finish(run, accepted=False, note="already terminated")
    run.wf["status"] = WorkflowStatus.TERMINATED.value
    terminate_workflow(run, WorkflowStatus.TERMINATED, reason, failure_workflow=False)
    return finish(run)


def pause(workflow: Mapping[str, Any], ctx: Context) -> Decision:
    """``PUT /workflow/{id}/pause``: nothing new is scheduled until resume."""
    run = Run(workflow, ctx)
    if workflow_terminal(run.status):
        raise Conflict(f"Workflow {run.wf['workflowId']} has ended, status cannot be updated.")
    if run.status == WorkflowStatus.PAUSED:
        return finish(run, accepted=False, note="already paused")
    run.wf["status"] = WorkflowStatus.PAUSED.value
    return finish(run)


def resume(workflow: Mapping[str, Any], ctx: Context) -> Decision:
    """``PUT /workflow/{id}/resume``: RUNNING again (``lastRetriedTime`` = now), then decide."""
    run = Run(workflow, ctx)
    if run.status != WorkflowStatus.PAUSED:
        raise IllegalState(
            f"The workflow {run.wf['workflowId']} is not PAUSED so cannot resume. "
            f"Current status is {run.status}"
        )
    run.wf["status"] = WorkflowStatus.RUNNING.value
    run.wf["lastRetriedTime"] = ctx.now_ms
    decide_run(run)
    return finish(run)


def retry(
    workflow: Mapping[str, Any], ctx: Context, *, resume_subworkflow_tasks: bool = False
) -> Decision:
    """``POST /workflow/{id}/retry``: new attempts of the last failed tasks, then decide."""
    run = Run(workflow, ctx)
    if not workflow_terminal(run.status):
        raise NotFound(f"Workflow is still running.  status={run.status}")
    if not run.tasks:
        raise Conflict("Workflow has not started yet")
    if (
        not reopen_for_retry(run, resume_subworkflow_tasks)
        and run.status != WorkflowStatus.TIMED_OUT
    ):
        raise Conflict(
            "There are no retryable tasks! Use restart if you want to attempt entire workflow "
            "execution again."
        )
    reopen_workflow(run)
    decide_run(run)
    return finish(run)


def reopen_workflow(run: Run) -> None:
    run.wf["status"] = WorkflowStatus.RUNNING.value
    run.wf["lastRetriedTime"] = run.now
    run.wf.pop("reasonForIncompletion", None)
    run.wf["endTime"] = 0
    notify_parent(run)


def restart(
    workflow: Mapping[str, Any], ctx: Context, *, latest_definition: Mapping[str, Any] | None = None
) -> Decision:
    """``POST /workflow/{id}/restart``: same id, all tasks dropped, started over.

    With ``latest_definition`` (``useLatestDefinitions``) that definition replaces the stored
    one (TaskDefs from ``ctx.task_defs``).
    """
    run = Run(workflow, ctx)
    _require_terminal(run)
    wf_def = run.wf_def
    if not wf_def.get("restartable", True) and run.status == WorkflowStatus.COMPLETED:
        raise NotFound(f"Workflow: {run.wf['workflowId']} is non-restartable")
    if latest_definition is not None:
        new_def = ctx.definitions.workflow_def(
            latest_definition, owner_email_mandatory=ctx.config.owner_email_mandatory
        )
        run.wf["workflowDefinition"] = populate_task_defs(new_def, ctx.task_defs)
        run.wf["workflowVersion"] = new_def["version"]
    _reset(run)
    run.wf["createTime"] = ctx.now_ms
    run.wf["lastRetriedTime"] = 0
    decide_run(run)
    return finish(run)


def _require_terminal(run: Run) -> None:
    if not workflow_terminal(run.status):
        raise Conflict(
            f"Workflow is still running.  status={run.status}", workflowId=run.wf["workflowId"]
        )


def _reset(run: Run) -> None:
    for t in run.tasks:
        run.remove_message(t)
    run.wf["tasks"] = []
    run.wf["status"] = WorkflowStatus.RUNNING.value
    run.wf.pop("reasonForIncompletion", None)
    run.wf["endTime"] = 0
    run.wf["output"] = {}
    if run.wf.get("parentWorkflowId"):
        notify_parent(run)


def rerun(workflow: Mapping[str, Any], request: Mapping[str, Any], ctx: Context) -> Decision:
    """``POST /workflow/{id}/rerun``: from the start, or from ``reRunFromTaskId`` (tasks after it
    are dropped, it runs again); optional new ``workflowInput``/``correlationId``/``taskInput``."""
    run = Run(workflow, ctx)
    _require_terminal(run)
    if request.get("workflowInput") is not None:
        run.wf["input"] = clone(dict(request["workflowInput"]))
    if request.get("correlationId") is not None:
        run.wf["correlationId"] = request["correlationId"]
    task_id = request.get("reRunFromTaskId")
    if task_id is None:
        _reset(run)
    else:
        task = run.task_by_id(str(task_id))
        if task is None:
            raise InvalidArgument(f"Task {task_id} not found")
        rerun_from_task(run, task, request.get("taskInput"))
        run.wf["status"] = WorkflowStatus.RUNNING.value
        run.wf.pop("reasonForIncompletion", None)
        run.wf["endTime"] = 0
        run.wf["output"] = {}
        notify_parent(run)
    decide_run(run)
    return finish(run)


def skip_task(
    workflow: Mapping[str, Any],
    ref: str,
    ctx: Context,
    *,
    task_input: Mapping[str, Any] | None = None,
    task_output: Mapping[str, Any] | None = None,
) -> Decision:
    """``PUT /workflow/{id}/skiptask/{ref}``: a not-yet-scheduled task is recorded SKIPPED."""
    run = Run(workflow, ctx)
    wf_id = run.wf["workflowId"]
    if run.status != WorkflowStatus.RUNNING:
        raise IllegalState(
            f"The workflow {wf_id} is not running so the task referenced by {ref} cannot be skipped"
        )
    workflow_task = find_task(run.wf_def, ref)
    if workflow_task is None:
        raise IllegalState(
            f"The task referenced by {ref} does not exist in the WorkflowDefinition "
            f"{run.wf.get('workflowName')}"
        )
    if run.task_by_ref(ref) is not None:
        raise IllegalState(
            f"The task referenced by {ref} has already been processed, cannot be skipped"
        )
    task: JSON = {
        "taskId": ctx.ids(),
        "taskType": workflow_task["name"],
        "taskDefName": workflow_task["name"],
        "referenceTaskName": ref,
        "status": TaskStatus.SKIPPED.value,
        "inputData": clone(dict(task_input or {})),
        "outputData": clone(dict(task_output or {})),
        "workflowInstanceId": wf_id,
        "workflowType": run.wf.get("workflowName"),
        "workflowPriority": int(run.wf.get("priority") or 0),
        "seq": 0,
        "retryCount": 0,
        "retried": False,
        "executed": False,
        "pollCount": 0,
        "scheduledTime": 0,
        "startTime": 0,
        "endTime": ctx.now_ms,
        "workflowTask": workflow_task,
        "iteration": 0,
    }
    if run.wf.get("correlationId") is not None:
        task["correlationId"] = run.wf["correlationId"]
    run.tasks.append(task)
    decide_run(run)
    return finish(run)


def set_variables(
    workflow: Mapping[str, Any], variables: Mapping[str, Any], ctx: Context
) -> Decision:
    """Merge ``variables`` into ``workflow.variables`` (within the size limit)."""
    run = Run(workflow, ctx)
    if workflow_terminal(run.status):
        raise Conflict(f"Workflow {run.wf['workflowId']} has ended, variables cannot be updated.")
    merged = {**run.wf.get("variables", {}), **clone(dict(variables))}
    size = len(json.dumps(merged, default=str).encode())
    if size > ctx.config.max_variables_bytes:
        raise LimitExceeded(
            f"The variables payload size: {size} of workflow: {run.wf['workflowId']} is greater "
            f"than "
            f"the permissible limit: {ctx.config.max_variables_bytes // 1024} kilobytes"
        )
    run.wf["variables"] = merged
    return finish(run)
