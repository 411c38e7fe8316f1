"""Bringing finished tasks back: retry, rerun and a parent reopened by its retried child."""

from __future__ import annotations

from decider.binding import resolve_params
from decider.decision import RetryWorkflow
from decider.definition_tree import append_iteration, has_ref, strip_iteration
from decider.lifecycle import task_def_for
from decider.mapping import map_task, sub_workflow_id
from decider.statuses import (
    SYNC_SYSTEM_TYPES,
    TaskStatus,
    TaskType,
    task_successful,
    task_terminal,
)
from decider.workflow_run import Run
from podium.types import JSON

_IN_PLACE = (TaskType.DO_WHILE, TaskType.JOIN, TaskType.EXCLUSIVE_JOIN)
_REMAPPED = (TaskType.SWITCH, TaskType.DECISION, TaskType.FORK)


def _reopen_in_place(t: JSON, *, bump: bool = False) -> None:
    t["status"] = TaskStatus.IN_PROGRESS.value
    t["endTime"] = 0
    t["executed"] = False
    t["retried"] = False
    t.pop("reasonForIncompletion", None)
    if bump:
        t["retryCount"] = int(t.get("retryCount") or 0) + 1


def _join_on_failed_permissive(run: Run, join: JSON) -> bool:
    for ref in join["inputData"].get("joinOn") or []:
        t = run.task_by_ref(ref)
        workflow_task = (t or {}).get("workflowTask") or {}
        if (
            t is not None
            and t["status"] == TaskStatus.FAILED
            and workflow_task.get("permissive")
            and not workflow_task.get("optional")
        ):
            return True
    return False


def _copy(run: Run, task: JSON) -> JSON:
    """``taskToBeRescheduled``: a new attempt with a new id, input re-resolved."""
    new_id = run.ctx.ids()
    new = {
        k: v
        for k, v in task.items()
        if k not in ("workerId", "subWorkflowId", "reasonForIncompletion")
    }
    new.update(
        taskId=new_id,
        retriedTaskId=task["taskId"],
        status=TaskStatus.SCHEDULED.value,
        retryCount=int(task.get("retryCount") or 0) + 1,
        retried=False,
        executed=False,
        pollCount=0,
        callbackAfterSeconds=0,
        startDelayInSeconds=0,
        scheduledTime=0,
        startTime=0,
        endTime=0,
        seq=0,
        outputData={},
    )
    workflow_task = task.get("workflowTask") or {}
    fresh = resolve_params(
        workflow_task.get("inputParameters"),
        run.wf,
        new_id,
        task_def_for(run, task),
        run.ctx.env,
        paths=run.ctx.paths,
    )
    new["inputData"] = {**task.get("inputData", {}), **fresh}
    if new["taskType"] == TaskType.SUB_WORKFLOW:
        new["inputData"]["workflowInput"] = fresh
        child = sub_workflow_id(run.wf["workflowId"], new_id, new["retryCount"])
        new["subWorkflowId"] = child
        new["outputData"] = {"subWorkflowId": child}
    elif new["taskType"] in SYNC_SYSTEM_TYPES:
        new["status"] = TaskStatus.IN_PROGRESS.value
    task["retried"] = True
    task["executed"] = True
    return new


def _remap(run: Run, task: JSON) -> list[JSON]:
    """Containers that choose their children when mapped are mapped again."""
    task["retried"] = True
    task["executed"] = True
    mapped = map_task(run, task["workflowTask"], int(task.get("retryCount") or 0) + 1)
    iteration = int(task.get("iteration") or 0)
    if iteration > 0:
        for t in mapped:
            t["referenceTaskName"] = append_iteration(t["referenceTaskName"], iteration)
            t["iteration"] = iteration
    return mapped


def reopen_for_retry(run: Run, resume_subworkflow_tasks: bool) -> bool:
    """Reopen the last failed attempt of each reference name; False if there was none."""
    retriable: dict[str, JSON] = {}
    for t in run.tasks:
        ref, st, typ = t["referenceTaskName"], t["status"], t["taskType"]
        if (
            st == TaskStatus.FAILED
            and typ in (TaskType.JOIN, TaskType.EXCLUSIVE_JOIN)
            and _join_on_failed_permissive(run, t)
        ):
            _reopen_in_place(t)
        elif st in (TaskStatus.FAILED, TaskStatus.FAILED_WITH_TERMINAL_ERROR, TaskStatus.TIMED_OUT):
            retriable[ref] = t
        elif st == TaskStatus.CANCELED:
            if typ in (TaskType.JOIN, TaskType.DO_WHILE):
                _reopen_in_place(t)
            else:
                retriable[ref] = t
        else:
            retriable.pop(ref, None)
    new_tasks: list[JSON] = []
    for t in sorted(retriable.values(), key=lambda x: int(x.get("seq") or 0)):
        typ = t["taskType"]
        if typ in _IN_PLACE:
            _reopen_in_place(t, bump=True)
        elif typ in _REMAPPED:
            new_tasks += _remap(run, t)
        elif typ == TaskType.SUB_WORKFLOW and resume_subworkflow_tasks and t.get("subWorkflowId"):
            _reopen_in_place(t)
            t["outputData"] = {"subWorkflowId": t["subWorkflowId"]}
            run.command(RetryWorkflow(t["subWorkflowId"]))
        else:
            new_tasks.append(_copy(run, t))
    run.schedule(new_tasks)
    return bool(retriable)


def rerun_from_task(run: Run, task: JSON, task_input: dict[str, object] | None) -> None:
    """Drop the tasks after ``task``, run it again, reopen earlier unsuccessful tasks."""
    seq = int(task.get("seq") or 0)
    run.wf["tasks"] = [t for t in run.tasks if int(t.get("seq") or 0) <= seq and t is not task]
    for t in run.tasks:
        if t.get("retried") or not task_terminal(t["status"]) or task_successful(t["status"]):
            continue
        if t["taskType"] in _IN_PLACE or t["taskType"] in SYNC_SYSTEM_TYPES:
            _reopen_in_place(t)
        else:
            _reopen_in_place(t)
            t["status"] = TaskStatus.SCHEDULED.value
            run.push(t, 0)
    if task["taskType"] in _REMAPPED or task["taskType"] == TaskType.DO_WHILE:
        run.schedule(_remap(run, dict(task)))
        return
    task = dict(task)
    for key in ("workerId", "reasonForIncompletion"):
        task.pop(key, None)
    task.update(
        seq=0,
        pollCount=0,
        executed=False,
        retried=False,
        startTime=0,
        endTime=0,
        outputData={},
        callbackAfterSeconds=0,
    )
    if task_input is not None:
        task["inputData"] = dict(task_input)
    task["status"] = (
        TaskStatus.IN_PROGRESS if task["taskType"] in SYNC_SYSTEM_TYPES else TaskStatus.SCHEDULED
    ).value
    if task["taskType"] == TaskType.SUB_WORKFLOW:
        child = run.ctx.ids()
        task["subWorkflowId"] = child
        task["outputData"] = {"subWorkflowId": child}
    # same reference name and retry count as the dropped row: keep its id, re-add it
    run.schedule([task])


def reopen_parent(run: Run, sub_task: JSON) -> None:
    """The child of ``sub_task`` runs again: reopen the task and what the parent's end closed."""
    _reopen_in_place(sub_task)
    sub_task["outputData"] = {"subWorkflowId": sub_task.get("subWorkflowId")}
    ref = strip_iteration(sub_task["referenceTaskName"])
    new_tasks: list[JSON] = []
    for t in run.tasks:
        if t is sub_task or t.get("retried"):
            continue
        typ = t["taskType"]
        waits_on_it = ref in (t["inputData"].get("joinOn") or []) or (
            typ == TaskType.DO_WHILE and has_ref(t["workflowTask"], ref)
        )
        if t["status"] == TaskStatus.CANCELED:
            if typ in _IN_PLACE:
                _reopen_in_place(t)
            else:
                new_tasks.append(_copy(run, t))
        elif t["status"] == TaskStatus.FAILED and typ in _IN_PLACE and waits_on_it:
            _reopen_in_place(t)
    run.schedule(new_tasks)
