"""Retries, timeouts and how a workflow ends (``DeciderService`` / ``WorkflowExecutorOps``)."""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Mapping, Sequence
from itertools import compress
from operator import itemgetter, not_
from typing import Any

from decider.binding import resolve_params
from decider.decision import (
    Context,
    NotifyParent,
    StartWorkflow,
    TerminateWorkflow,
)
from decider.definition_tree import find_task
from decider.mapping import sub_workflow_id
from decider.statuses import (
    BUILT_IN_TYPES,
    SYNC_SYSTEM_TYPES,
    TASK_RETRIABLE,
    TASK_TERMINAL,
    TaskStatus,
    TaskType,
    WorkflowStatus,
    task_terminal,
    workflow_terminal,
)
from decider.task_index import quiet_kind
from decider.workflow_run import Run, TerminateSignal, WorkflowRecord
from podium.clone import clone
from podium.types import JSON

INT_MAX = 2**31 - 1


def task_def_for(run: Run, task: JSON) -> JSON | None:
    """The TaskDef governing a runtime task (its WorkflowTask's, else by reference name)."""
    workflow_task = task.get("workflowTask")
    if isinstance(workflow_task, Mapping) and isinstance(workflow_task.get("taskDefinition"), dict):
        task_def: JSON = workflow_task["taskDefinition"]
        return task_def
    found = find_task(run.wf_def, task["referenceTaskName"])
    if found is not None and isinstance(found.get("taskDefinition"), dict):
        task_def = found["taskDefinition"]
        return task_def
    return None


# --- timeouts ---------------------------------------------------------------------------


def check_workflow_timeout(run: Run) -> None:
    """Raise TIMED_OUT when the workflow's ``timeoutSeconds`` (TIME_OUT_WF) has passed."""
    wf_def = run.wf_def
    timeout_s = int(wf_def.get("timeoutSeconds") or 0)
    if workflow_terminal(run.status) or timeout_s <= 0:
        return
    base = run.wf.get("lastRetriedTime") or run.wf.get("createTime") or 0
    elapsed = run.now - int(base)
    if elapsed < timeout_s * 1000:
        return
    policy = wf_def.get("timeoutPolicy", "ALERT_ONLY")
    if policy == "TIME_OUT_WF":
        reason = (
            f"Workflow timed out after {elapsed // 1000} seconds. Timeout configured as "
            f"{timeout_s} seconds. Timeout policy configured to {policy}"
        )
        raise TerminateSignal(reason, WorkflowStatus.TIMED_OUT)


def _apply_timeout_policy(run: Run, task_def: JSON, task: JSON, reason: str) -> None:
    policy = task_def.get("timeoutPolicy", "TIME_OUT_WF")
    if policy == "ALERT_ONLY":
        return
    run.set_status(task, TaskStatus.TIMED_OUT, reason)
    if policy == "TIME_OUT_WF":
        raise TerminateSignal(reason, WorkflowStatus.TIMED_OUT, task)


def response_timeout_applies(task: Mapping[str, Any]) -> bool:
    """Response timeouts watch worker tasks and HTTP, not tasks completed by other means."""
    if task["taskType"] in SYNC_SYSTEM_TYPES or task["taskType"] == TaskType.SUB_WORKFLOW:
        return False
    workflow_task = task.get("workflowTask") or {}
    return not (
        workflow_task.get("asyncComplete") or task["inputData"].get("asyncComplete") is True
    )


def check_task_timeouts(run: Run, task_def: JSON, task: JSON) -> None:
    """Total, task, poll and response timeouts of one non-terminal task (in that order)."""
    if task_terminal(task["status"]):
        return
    now = run.now
    total = int(task_def.get("totalTimeoutSeconds") or 0)
    first = int(task.get("firstScheduledTime") or 0)
    if total > 0 and first > 0 and now - first >= total * 1000:
        reason = (
            f"Task total timeout of {total} seconds exceeded (first scheduled "
            f"{(now - first) // 1000} seconds ago)"
        )
        _apply_timeout_policy(run, task_def, task, reason)
    timeout = int(task_def.get("timeoutSeconds") or 0)
    start = int(task.get("startTime") or 0)
    if not task_terminal(task["status"]) and timeout > 0 and start > 0:
        elapsed = now - (start + int(task.get("startDelayInSeconds") or 0) * 1000)
        if elapsed >= timeout * 1000:
            reason = (
                f"Task timed out after {elapsed // 1000} seconds. Timeout configured as {timeout} "
                f"seconds. Timeout policy configured to {task_def.get('timeoutPolicy')}"
            )
            _apply_timeout_policy(run, task_def, task, reason)
    poll = int(task_def.get("pollTimeoutSeconds") or 0)
    if task["status"] == TaskStatus.SCHEDULED and poll > 0:
        elapsed = now - (
            int(task["scheduledTime"]) + int(task.get("startDelayInSeconds") or 0) * 1000
        )
        if elapsed >= (poll + int(task.get("callbackAfterSeconds") or 0)) * 1000:
            reason = (
                f"Task poll timed out after {elapsed // 1000} seconds. Poll timeout configured as "
                f"{poll} seconds. Timeout policy configured to {task_def.get('timeoutPolicy')}"
            )
            _apply_timeout_policy(run, task_def, task, reason)
    rt = int(task_def.get("responseTimeoutSeconds") or 0)
    if task["status"] == TaskStatus.IN_PROGRESS and rt > 0 and response_timeout_applies(task):
        quiet = now - int(task.get("updateTime") or 0)
        if quiet >= (rt + int(task.get("callbackAfterSeconds") or 0)) * 1000:
            reason = (
                f"responseTimeout: {rt} exceeded for the taskId: {task['taskId']} with Task "
                f"Definition: {task['taskDefName']}"
            )
            run.set_status(task, TaskStatus.TIMED_OUT, reason)


# --- retries ------------------------------------------------------------------------------


def retry_delay_ms(task_def: JSON, retry_count: int, task_id: str) -> tuple[int, int]:
    """(seconds, milliseconds) before attempt ``retry_count + 1``; jitter from the task id."""
    base = int(task_def.get("retryDelaySeconds") or 0)
    logic = task_def.get("retryLogic", "FIXED")
    if logic == "LINEAR_BACKOFF":
        delay = base * int(task_def.get("backoffScaleFactor") or 1) * (retry_count + 1)
    elif logic == "EXPONENTIAL_BACKOFF":
        delay = base * (2**retry_count)
    else:
        delay = base
    cap = int(task_def.get("maxRetryDelaySeconds") or 0)
    if cap > 0:
        delay = min(delay, cap)
    delay = min(delay, INT_MAX)
    jitter_max = int(task_def.get("backoffJitterMs") or 0)
    jitter = 0
    if jitter_max > 0:
        # deterministic "uniform" jitter keeps the decision a pure function of its inputs
        jitter = int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:8], "big") % (
            jitter_max + 1
        )
    return delay, delay * 1000 + jitter


def retry(run: Run, task_def: JSON | None, task: JSON) -> JSON | None:
    """A new attempt of a failed task, None when optional/permissive; raises otherwise."""
    workflow_task = task.get("workflowTask") or {}
    expected = 0
    if task_def is not None:
        expected = (
            int(workflow_task["retryCount"])
            if workflow_task.get("retryCount") is not None
            else int(task_def.get("retryCount") or 0)
        )
    total = int((task_def or {}).get("totalTimeoutSeconds") or 0)
    budget_gone = (
        total > 0 and run.now - int(task.get("firstScheduledTime") or run.now) >= total * 1000
    )
    status = task["status"]
    if (
        status not in TASK_RETRIABLE
        or task["taskType"] in BUILT_IN_TYPES
        or expected <= int(task.get("retryCount") or 0)
        or budget_gone
    ):
        if workflow_task.get("optional") or workflow_task.get("permissive"):
            return None
        wf_status = {
            TaskStatus.CANCELED: WorkflowStatus.TERMINATED,
            TaskStatus.TIMED_OUT: WorkflowStatus.TIMED_OUT,
        }.get(status, WorkflowStatus.FAILED)
        reason = (
            f"Task {task['taskId']} failed with status: {wf_status} and reason: "
            f"'{task.get('reasonForIncompletion')}'"
        )
        raise TerminateSignal(reason, wf_status, task)
    if task_def is None:  # unreachable: without a TaskDef no retry is expected
        return None
    return _retry_copy(run, task_def, task)


def _retry_copy(run: Run, task_def: JSON, task: JSON) -> JSON:
    new_id = run.ctx.ids()
    seconds, ms = retry_delay_ms(task_def, int(task.get("retryCount") or 0), new_id)
    task["retried"] = True
    new = clone(task)
    new.update(
        taskId=new_id,
        retriedTaskId=task["taskId"],
        retryCount=int(task.get("retryCount") or 0) + 1,
        retried=False,
        executed=False,
        status=TaskStatus.SCHEDULED.value,
        pollCount=0,
        seq=0,
        scheduledTime=0,
        startTime=0,
        endTime=0,
        outputData={},
        startDelayInSeconds=seconds,
        callbackAfterSeconds=seconds,
    )
    for key in ("workerId", "subWorkflowId"):
        new.pop(key, None)
    workflow_task = task.get("workflowTask") or {}
    fresh = resolve_params(
        workflow_task.get("inputParameters"),
        run.wf,
        new_id,
        task_def,
        run.ctx.env,
        paths=run.ctx.paths,
    )
    new["inputData"] = {**task.get("inputData", {}), **fresh}
    if new["taskType"] == TaskType.SUB_WORKFLOW:
        new["inputData"]["workflowInput"] = fresh
        child = sub_workflow_id(run.wf["workflowId"], new_id, new["retryCount"])
        new["subWorkflowId"] = child
        new["outputData"] = {"subWorkflowId": child}
    run.delay_ms[new_id] = ms
    return new


# --- output and ending ---------------------------------------------------------------


def update_workflow_output(run: Run, task: JSON | None = None) -> None:
    """Set the workflow output.

    A successful TERMINATE's output wins, else the resolved outputParameters, else the output of
    ``task`` (or of the last task).
    """
    tasks = run.tasks
    if not tasks:
        return
    terminate = next(
        (
            t
            for t in tasks
            if t["taskType"] == TaskType.TERMINATE and t["status"] == TaskStatus.COMPLETED
        ),
        None,
    )
    if terminate is not None:
        output = clone(terminate.get("outputData", {}))
    elif run.wf_def.get("outputParameters"):
        output = resolve_params(
            run.wf_def["outputParameters"], run.wf, None, None, run.ctx.env, paths=run.ctx.paths
        )
    else:
        output = clone((task or tasks[-1]).get("outputData", {}))
    run.wf["output"] = output


def _record_failed_tasks(run: Run) -> None:
    refs: list[str] = run.wf.setdefault("failedReferenceTaskNames", [])
    names: list[str] = run.wf.setdefault("failedTaskNames", [])
    for t in run.tasks:
        if t["status"] in (TaskStatus.FAILED, TaskStatus.FAILED_WITH_TERMINAL_ERROR):
            if t["referenceTaskName"] not in refs:
                refs.append(t["referenceTaskName"])
            if t["taskDefName"] not in names:
                names.append(t["taskDefName"])


def cancel_non_terminal(run: Run) -> None:
    """CANCEL every unfinished task; running sub-workflows are told to terminate."""
    for i, t in enumerate(run.tasks):
        if task_terminal(t["status"]):
            continue
        t = run.own_at(i)
        run.set_status(t, TaskStatus.CANCELED)
        if t["taskType"] == TaskType.SUB_WORKFLOW and t.get("subWorkflowId"):
            reason = run.wf.get("reasonForIncompletion")
            text = (
                f"Parent workflow has been terminated with reason: {reason}"
                if reason
                else f"Parent workflow has been terminated with status {run.status}"
            )
            run.command(TerminateWorkflow(t["subWorkflowId"], text))


def notify_parent(run: Run) -> None:
    """A sub-workflow tells its parent about its (new) status."""
    parent = run.wf.get("parentWorkflowId")
    if not parent:
        return
    run.command(
        NotifyParent(
            parent_workflow_id=parent,
            parent_workflow_task_id=run.wf.get("parentWorkflowTaskId") or "",
            workflow_id=run.wf["workflowId"],
            status=run.status,
            output=clone(run.wf.get("output") or {}),
            reason=run.wf.get("reasonForIncompletion"),
        )
    )


def complete_workflow(run: Run) -> None:
    if run.status == WorkflowStatus.COMPLETED:
        return
    update_workflow_output(run)
    run.wf["status"] = WorkflowStatus.COMPLETED.value
    run.wf["endTime"] = run.now
    _record_failed_tasks(run)
    cancel_non_terminal(run)
    notify_parent(run)


def terminate_workflow(
    run: Run,
    status: str,
    reason: str | None,
    *,
    failure_workflow: bool,
    failed_task: JSON | None = None,
) -> None:
    """End the workflow unsuccessfully; ``failure_workflow`` starts the def's failureWorkflow."""
    if not workflow_terminal(run.status):
        run.wf["status"] = str(status)
    update_workflow_output(run)
    if reason is not None:
        run.wf["reasonForIncompletion"] = reason
    run.wf["endTime"] = run.now
    _record_failed_tasks(run)
    cancel_non_terminal(run)
    if failure_workflow:
        _start_failure_workflow(run, reason, failed_task)
    notify_parent(run)


def _start_failure_workflow(run: Run, reason: str | None, failed_task: JSON | None) -> None:
    name = run.wf_def.get("failureWorkflow")
    if not name:
        return
    if name.startswith("$"):
        parts = name.split(".")
        name = run.wf.get("input", {}).get(parts[2]) if len(parts) > 2 else None
        if not name:
            return
    new_id = run.ctx.ids()
    inp = clone(run.wf.get("input") or {})
    inp.update(workflowId=run.wf["workflowId"], reason=reason, failureStatus=run.status)
    if failed_task is not None:
        inp["failureTaskId"] = failed_task["taskId"]
    run.wf.setdefault("output", {})["conductor.failure_workflow"] = new_id
    inp["failedWorkflow"] = clone(run.wf)
    run.command(
        StartWorkflow(
            workflow_id=new_id,
            name=str(name),
            version=run.wf_def.get("failureWorkflowVersion"),
            definition=None,
            input=inp,
            correlation_id=run.wf.get("correlationId"),
            task_to_domain=dict(run.wf.get("taskToDomain") or {}),
            priority=int(run.wf.get("priority") or 0),
        )
    )


def end_by_signal(run: Run, sig: TerminateSignal) -> None:
    """A TerminateSignal raised while deciding ends the workflow (failureWorkflow included)."""
    if sig.status == WorkflowStatus.COMPLETED:
        run.wf["reasonForIncompletion"] = sig.reason
        complete_workflow(run)
        return
    terminate_workflow(run, sig.status, sig.reason, failure_workflow=True, failed_task=sig.task)


# --- when to look again -------------------------------------------------------------------


def next_check_ms(
    workflow: Mapping[str, Any],
    ctx: Context,
    *,
    before: Mapping[str, Any] | None = None,
    changed: Sequence[Mapping[str, Any]] = (),
    removed: Sequence[str] = (),
) -> int | None:
    """When the workflow must be decided again: its earliest deadline, capped; None if ended.

    Deadlines: workflow timeout (TIME_OUT_WF), task timeouts and total timeouts (not
    ALERT_ONLY), poll timeouts, response timeouts, WAIT ends. A running workflow with none is
    looked at again after ``workflow_offset_s``; no delay exceeds ``max_postpone_s``.

    The deadline of each unfinished task is kept on ``workflow`` (a
    :class:`~decider.workflow_run.WorkflowRecord`). Given the decision's input record
    ``before`` with its deadlines kept, and the tasks the decision ``changed`` (or added) and
    ``removed``, only those are worked out again: the others are the same tasks with the
    same deadlines. So a fan-out's claim or update costs a few tasks' deadlines, not a
    thousand.
    """
    status = workflow.get("status")
    if status is None or workflow_terminal(str(status)):
        return None
    now, cfg = ctx.now_ms, ctx.config
    wf_def = workflow.get("workflowDefinition") or {}
    earliest = _NONE
    timeout_s = int(wf_def.get("timeoutSeconds") or 0)
    if timeout_s > 0 and wf_def.get("timeoutPolicy") == "TIME_OUT_WF":
        retried = int(workflow.get("lastRetriedTime") or 0)
        base = retried if retried > 0 else int(workflow.get("createTime") or 0)
        earliest = base + timeout_s * 1000
    if status == WorkflowStatus.PAUSED:
        return earliest if earliest != _NONE else None
    offset_s = cfg.workflow_offset_s
    known = getattr(before, "deadlines", None)
    if isinstance(known, TaskDeadlines) and isinstance(before, WorkflowRecord):
        before.deadlines = None  # moved to ``workflow``, brought up to date
        deadlines = known.advance(changed, removed)
    else:
        deadlines = TaskDeadlines.of(workflow.get("tasks") or [])
    if isinstance(workflow, WorkflowRecord):
        workflow.deadlines = deadlines
    earliest = min(earliest, deadlines.earliest(now, offset_s))
    if earliest == _NONE:
        earliest = now + offset_s * 1000
    return max(now, min(earliest, now + cfg.max_postpone_s * 1000))


class TaskDeadlines:
    """The deadline of each unfinished task of a record, by task id.

    Most deadlines follow from the task's own fields (``fixed``); those of a SUB_WORKFLOW or
    START_WORKFLOW still SCHEDULED, and of a task IN_PROGRESS without ``updateTime``, move
    with the clock and are worked out at each use (``moving``: the tasks themselves).

    ``quiet`` holds the fixed deadlines of the quiet tasks
    (:func:`decider.task_index.quiet_kind`: worker tasks waiting, whose TaskDef is their own
    ``workflowTask.taskDefinition``, the one :func:`check_task_timeouts` applies). Until its
    deadline such a task gives a decide nothing to do: no timeout is due, it has not failed,
    it has not ended. So a decision on this record shares it uncopied and passes it over
    (:meth:`due_quiet`), and a fan-out's waiting branches cost a decision nothing each.

    The earliest deadlines are found with heaps, whose entries a change leaves behind and a
    look at the top drops when they no longer match (a pass over every deadline at each
    decision would make a fan-out quadratic).
    """

    __slots__ = ("_heap", "_quiet_heap", "fixed", "moving", "quiet")

    def __init__(
        self,
        fixed: dict[str, int],
        moving: dict[str, Mapping[str, Any]],
        quiet: dict[str, int] | None = None,
    ) -> None:
        self.fixed = fixed
        self.moving = moving
        self.quiet: dict[str, int] = {} if quiet is None else quiet
        self._heap = _heap_of(fixed)
        self._quiet_heap = _heap_of(self.quiet)

    @classmethod
    def of(cls, tasks: Sequence[Mapping[str, Any]]) -> TaskDeadlines:
        """The deadlines of every unfinished task among ``tasks`` (picked out in C: a
        fan-out's finished branches are most of its tasks by the end)."""
        deadlines = cls({}, {})
        open_tasks = compress(
            tasks, map(not_, map(TASK_TERMINAL.__contains__, map(_status, tasks)))
        )
        for t in open_tasks:
            deadlines._add(t)
        return deadlines

    def advance(
        self, changed: Sequence[Mapping[str, Any]], removed: Sequence[str]
    ) -> TaskDeadlines:
        """These deadlines made those after a decision that changed (or added) ``changed``
        and removed the tasks ``removed``; the others are unchanged tasks. Changed in place
        and returned: they move from the decision's input record to its output record (see
        decider.task_index), where a copy would cost a pass over all tasks."""
        for task_id in removed:
            self._drop(task_id)
        for t in changed:
            self._drop(t["taskId"])
            if not task_terminal(t["status"]):
                self._add(t)
        if len(self._heap) > 2 * len(self.fixed) + 1024:  # mostly entries left behind
            self._heap = _heap_of(self.fixed)
        if len(self._quiet_heap) > 2 * len(self.quiet) + 1024:
            self._quiet_heap = _heap_of(self.quiet)
        return self

    def due_quiet(self, now: int) -> set[str]:
        """The ids of the quiet tasks whose deadline has come at ``now`` (usually none)."""
        if _top(self._quiet_heap, self.quiet) > now:
            return set()
        return {task_id for task_id, due in self.quiet.items() if due <= now}

    def _drop(self, task_id: str) -> None:
        self.fixed.pop(task_id, None)
        self.moving.pop(task_id, None)
        self.quiet.pop(task_id, None)

    def _add(self, t: Mapping[str, Any]) -> None:
        status = t["status"]
        task_id = t["taskId"]
        if (
            t["taskType"] in (TaskType.SUB_WORKFLOW, TaskType.START_WORKFLOW)
            and status == TaskStatus.SCHEDULED
        ) or (status == TaskStatus.IN_PROGRESS and not t.get("updateTime")):
            self.moving[task_id] = t
            return
        due = self.fixed[task_id] = _task_deadline(t, 0, 0)  # the clock plays no part
        if due < _NONE:
            heapq.heappush(self._heap, (due, task_id))
        if quiet_kind(t):
            self.quiet[task_id] = due
            if due < _NONE:
                heapq.heappush(self._quiet_heap, (due, task_id))

    def earliest(self, now: int, offset_s: int) -> int:
        """The earliest of them (``_NONE`` if there is none)."""
        earliest = _top(self._heap, self.fixed)
        for t in self.moving.values():
            earliest = min(earliest, _task_deadline(t, now, offset_s))
        return earliest


def _heap_of(deadlines: Mapping[str, int]) -> list[tuple[int, str]]:
    """A heap of the deadlines that are set (``_NONE`` is none)."""
    heap = [(due, task_id) for task_id, due in deadlines.items() if due < _NONE]
    heapq.heapify(heap)
    return heap


def _top(heap: list[tuple[int, str]], current: Mapping[str, int]) -> int:
    """The smallest deadline in ``heap`` that is still ``current``'s (entries left behind by a
    change are dropped on the way); ``_NONE`` if none."""
    while heap:
        due, task_id = heap[0]
        if current.get(task_id) == due:
            return due
        heapq.heappop(heap)
    return _NONE


#: "no deadline": later than any time in milliseconds
_NONE = 1 << 62
_status = itemgetter("status")


def _task_deadline(t: Mapping[str, Any], now: int, offset_s: int) -> int:
    """The earliest deadline of one unfinished task (``_NONE`` if it has none). It runs for
    every unfinished task of a workflow on every decision (a fan-out's thousand branches each
    time), so it reads each field once, converts only what is set and allocates nothing."""
    earliest = _NONE
    task_type = t["taskType"]
    status = t["status"]
    if task_type == TaskType.WAIT and int(t.get("waitTimeout") or 0) > 0:
        earliest = int(t["waitTimeout"])
    if (
        task_type in (TaskType.SUB_WORKFLOW, TaskType.START_WORKFLOW)
        and status == TaskStatus.SCHEDULED
    ):
        earliest = min(earliest, now + offset_s * 1000)
    # Records are plain dicts (decoded msgpack); the ABC check of Mapping costs more here
    workflow_task = t.get("workflowTask")
    if not isinstance(workflow_task, dict):
        return earliest
    task_def = workflow_task.get("taskDefinition")
    if not isinstance(task_def, dict):
        return earliest
    if task_def.get("timeoutPolicy") != "ALERT_ONLY":
        timeout_s = int(task_def.get("timeoutSeconds") or 0)
        total_s = int(task_def.get("totalTimeoutSeconds") or 0)
        poll_s = (
            int(task_def.get("pollTimeoutSeconds") or 0) if status == TaskStatus.SCHEDULED else 0
        )
        if timeout_s > 0 or total_s > 0 or poll_s > 0:
            delay_ms = int(t.get("startDelayInSeconds") or 0) * 1000
            if timeout_s > 0 and int(t.get("startTime") or 0) > 0:
                earliest = min(earliest, int(t["startTime"]) + delay_ms + timeout_s * 1000)
            if total_s > 0 and int(t.get("firstScheduledTime") or 0) > 0:
                earliest = min(earliest, int(t["firstScheduledTime"]) + total_s * 1000)
            if poll_s > 0:
                callback_ms = int(t.get("callbackAfterSeconds") or 0) * 1000
                due = int(t["scheduledTime"]) + delay_ms + poll_s * 1000 + callback_ms
                earliest = min(earliest, due)
    if status == TaskStatus.IN_PROGRESS:
        rt = int(task_def.get("responseTimeoutSeconds") or 0)
        if rt > 0 and response_timeout_applies(t):
            callback_ms = int(t.get("callbackAfterSeconds") or 0) * 1000
            earliest = min(earliest, int(t.get("updateTime") or now) + rt * 1000 + callback_ms)
    return earliest
