"""The decide loop: what runs next, as a pure function (``WorkflowExecutorOps.decide``).

One pass (:func:`_decide_once`, Conductor's ``DeciderService.decide``) looks at every task not
yet processed: re-runs sync system tasks, applies timeouts, retries failures, and for each
newly finished task schedules what follows it in the definition. The loop repeats passes while
sync system tasks (SWITCH, JOIN, DO_WHILE, INLINE, ...) keep changing state, then reports the
decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter, methodcaller, not_, or_
from typing import Any

from decider.decision import Context, Decision
from decider.definition_tree import append_iteration, next_task, strip_iteration
from decider.lifecycle import (
    cancel_non_terminal,
    check_task_timeouts,
    check_workflow_timeout,
    complete_workflow,
    end_by_signal,
    next_check_ms,
    retry,
    task_def_for,
    terminate_workflow,
)
from decider.mapping import map_task
from decider.start_commands import emit_start_commands
from decider.statuses import (
    SYNC_SYSTEM_TYPES,
    TaskStatus,
    TaskType,
    WorkflowStatus,
    is_system_type,
    task_successful,
    task_terminal,
    workflow_terminal,
)
from decider.systasks import execute
from decider.workflow_run import Run, TerminateSignal
from podium.types import JSON

_status = itemgetter("status")


_is_skipped_status = TaskStatus.SKIPPED.value.__eq__
_is_terminate_type = TaskType.TERMINATE.value.__eq__


_task_type = itemgetter("taskType")
_ref = itemgetter("referenceTaskName")
_executed = methodcaller("get", "executed")
_retried = methodcaller("get", "retried")


@dataclass
class _Outcome:
    to_schedule: list[JSON] = field(default_factory=list)
    complete: bool = False
    terminate_task: JSON | None = None
    #: ``id()`` of the tasks the pass processed (any of them may be offered again)
    pending_ids: set[int] = field(default_factory=set)


def decide(workflow: Mapping[str, Any], ctx: Context) -> Decision:
    """Decide a workflow now: schedule what is due, run sync system tasks, end it if done."""
    run = Run(workflow, ctx, share_settled=True)
    decide_run(run)
    return finish(run)


def finish(run: Run, *, accepted: bool = True, note: str | None = None) -> Decision:
    """Close a run into a Decision, with the next check time computed on the final record."""
    decision = run.finish(None, accepted=accepted, note=note)
    next_check = next_check_ms(
        decision.workflow,
        run.ctx,
        before=run.before,
        changed=decision.changed_tasks,
        removed=decision.removed_task_ids,
    )
    return dataclasses.replace(decision, next_check_ms=next_check)


def decide_run(run: Run) -> None:
    """The decide loop on a run in progress (used by every operation that decides)."""
    if workflow_terminal(run.status):
        if run.status != WorkflowStatus.COMPLETED:
            cancel_non_terminal(run)
        return
    for _ in range(run.ctx.config.max_decide_passes):
        try:
            outcome = _decide_once(run)
            if outcome.complete:
                _end_execution(run, outcome.terminate_task)
                return
            if not _apply(run, outcome):
                break
        except TerminateSignal as sig:
            end_by_signal(run, sig)
            return
    emit_start_commands(run)


def _apply(run: Run, outcome: _Outcome) -> bool:
    """Schedule the outcome's new tasks and execute its sync system tasks; True if changed."""
    added = run.schedule(outcome.to_schedule)
    # a task born finished (FORK, a failed mapping) or a sync one needs another pass
    changed = any(t["taskType"] in SYNC_SYSTEM_TYPES or task_terminal(t["status"]) for t in added)
    # What is offered is a new task (present if scheduled) or a pending one (present).
    present = set(map(id, added)) | outcome.pending_ids
    for task in outcome.to_schedule:
        if id(task) in present and task["taskType"] in SYNC_SYSTEM_TYPES and execute(run, task):
            changed = True
    return changed


class _ExecutedRefs:
    """The reference names of the tasks processed (``executed``) when a pass began, less those
    the pass takes back; looked up per name, through the index, for the few names a pass asks
    about (an indexed run), instead of collected from every task."""

    __slots__ = ("_now", "_run", "dropped")

    def __init__(self, run: Run, executed_now: set[int]) -> None:
        self._run = run
        self._now = executed_now  # id() of the tasks this pass marks executed
        self.dropped: set[str] = set()

    def discard(self, ref: str) -> None:
        self.dropped.add(ref)

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, str) or ref in self.dropped:
            return False
        tasks = self._run.tasks
        return any(
            tasks[i].get("executed") and id(tasks[i]) not in self._now
            for i in self._run.positions(ref)
        )


def _decide_once(run: Run) -> _Outcome:
    # The scans over every task are done in C (a fan-out has thousands): flags per task, then
    # the tasks picked out with them. An indexed run looks only at its candidates: the other
    # tasks are settled (processed) or quiet (waiting, nothing due), see Run.
    indexed = run.indexed()
    tasks = run.candidates() if indexed else run.tasks
    pre: list[JSON] = []
    if all(
        map(or_, map(_is_skipped_status, map(_status, tasks)), map(bool, map(_executed, tasks)))
    ) and not (indexed and run.quiet_left):
        pre = _first_tasks(run)
    check_workflow_timeout(run)
    if run.status == WorkflowStatus.PAUSED:
        return _Outcome()
    skipped = map(_is_skipped_status, map(_status, tasks))
    executed = list(map(bool, map(_executed, tasks)))
    done = map(or_, map(or_, map(bool, map(_retried, tasks)), skipped), executed)
    pending = list(compress(tasks, map(not_, done)))
    executed_now: set[int] = set()
    executed_refs: set[str] | _ExecutedRefs
    if indexed:
        executed_refs = _ExecutedRefs(run, executed_now)
        typed = run.system_tasks()
    else:
        executed_refs = set(map(_ref, compress(tasks, executed)))
        typed = tasks
    terminate_task = next(
        (
            t
            for t in compress(typed, map(_is_terminate_type, map(_task_type, typed)))
            if t["status"] == TaskStatus.COMPLETED
        ),
        None,
    )
    to_schedule: dict[str, JSON] = {t["referenceTaskName"]: t for t in pre}
    for task in pending:
        _process_pending(run, task, to_schedule, executed_refs, executed_now)
    unscheduled = [t for ref, t in to_schedule.items() if ref not in executed_refs]
    complete = terminate_task is not None or (not unscheduled and _check_completion(run))
    return _Outcome(unscheduled, complete, terminate_task, set(map(id, pending)))


def _process_pending(
    run: Run,
    task: JSON,
    to_schedule: dict[str, JSON],
    executed_refs: set[str] | _ExecutedRefs,
    executed_now: set[int],
) -> None:
    ref = task["referenceTaskName"]
    if is_system_type(task["taskType"]) and not task_terminal(task["status"]):
        to_schedule.setdefault(ref, task)
        executed_refs.discard(ref)
    task_def = task_def_for(run, task)
    if task_def is not None:
        check_task_timeouts(run, task_def, task)
    if not task_successful(task["status"]):
        again = retry(run, task_def, task)
        if again is not None:
            to_schedule[ref] = again
            executed_refs.discard(ref)
        else:
            workflow_task = task.get("workflowTask") or {}
            if not (workflow_task.get("permissive") and not workflow_task.get("optional")):
                task["status"] = TaskStatus.COMPLETED_WITH_ERRORS.value
    if not task.get("executed") and not task.get("retried") and task_terminal(task["status"]):
        task["executed"] = True
        executed_now.add(id(task))
        for nxt in _next_tasks(run, task):
            to_schedule.setdefault(nxt["referenceTaskName"], nxt)


def _is_skipped(run: Run, workflow_task: JSON | None) -> bool:
    if workflow_task is None:
        return False
    tasks = run.tasks
    return any(
        tasks[i]["status"] == TaskStatus.SKIPPED
        for i in run.positions(workflow_task["taskReferenceName"])
    )


def _first_tasks(run: Run) -> list[JSON]:
    """A new workflow (or one whose tasks are all processed): the first non-skipped task."""
    tasks = run.wf_def.get("tasks") or []
    if not tasks:
        raise TerminateSignal("No tasks found to be executed", WorkflowStatus.COMPLETED)
    workflow_task: JSON | None = tasks[0]
    while workflow_task is not None and _is_skipped(run, workflow_task):
        workflow_task = next_task(run.wf_def, workflow_task["taskReferenceName"])
    if workflow_task is None or run.task_by_ref(workflow_task["taskReferenceName"]) is not None:
        return []
    return map_task(run, workflow_task)


def _next_tasks(run: Run, task: JSON) -> list[JSON]:
    """``DeciderService.getNextTask``: the mapped successors of a finished task."""
    if (
        task["taskType"] in (TaskType.DECISION, TaskType.SWITCH)
        and task["inputData"].get("hasChildren") is not None
    ):
        return []
    in_loop = int(task.get("iteration") or 0) > 0
    ref = strip_iteration(task["referenceTaskName"]) if in_loop else task["referenceTaskName"]
    workflow_task = next_task(run.wf_def, ref)
    while workflow_task is not None and _is_skipped(run, workflow_task):
        workflow_task = next_task(run.wf_def, workflow_task["taskReferenceName"])
    if workflow_task is None:
        return []
    if (
        workflow_task.get("type") == TaskType.DO_WHILE
        and run.task_by_ref(workflow_task["taskReferenceName"]) is not None
    ):
        return []
    mapped = map_task(run, workflow_task)
    if in_loop and task["taskType"] != TaskType.DO_WHILE and mapped:
        mapped = _in_iteration(run, mapped, int(task["iteration"]))
    return mapped


def _in_iteration(run: Run, mapped: list[JSON], iteration: int) -> list[JSON]:
    """``filterNextLoopOverTasks``: give loop-body successors this iteration's suffix."""
    for t in mapped:
        t["referenceTaskName"] = append_iteration(t["referenceTaskName"], iteration)
        t["iteration"] = iteration
    busy = {
        t["referenceTaskName"]
        for t in run.tasks
        if t["status"] == TaskStatus.IN_PROGRESS or task_terminal(t["status"])
    }
    return [t for t in mapped if t["referenceTaskName"] not in busy]


def _check_completion(run: Run) -> bool:
    """``checkForWorkflowCompletion``; a failed permissive task then fails the workflow."""
    status_by_ref: dict[str, str] = {}
    unprocessed: list[JSON] = []
    for t in run.tasks:
        status_by_ref[t["referenceTaskName"]] = t["status"]
        if not task_terminal(t["status"]):
            return False
        if t["taskType"] == TaskType.TERMINATE and task_successful(t["status"]):
            return True
        if not t.get("retried") or not t.get("executed"):
            unprocessed.append(t)
    if not status_by_ref:
        return False
    for workflow_task in run.wf_def.get("tasks", []):
        status = status_by_ref.get(workflow_task["taskReferenceName"])
        if status is None or not task_terminal(status):
            return False
        if not task_successful(status) and not workflow_task.get("permissive"):
            return False
    for t in unprocessed:
        nxt = next_task(run.wf_def, t["referenceTaskName"])
        while nxt is not None and _is_skipped(run, nxt):
            nxt = next_task(run.wf_def, nxt["taskReferenceName"])
        if nxt is not None and nxt["taskReferenceName"] not in status_by_ref:
            return False
    _fail_on_permissive(run)
    return True


def _fail_on_permissive(run: Run) -> None:
    latest: dict[str, JSON] = {}
    for t in run.tasks:
        latest[t["referenceTaskName"]] = t
    failed = [
        t
        for t in latest.values()
        if (t.get("workflowTask") or {}).get("permissive")
        and not (t.get("workflowTask") or {}).get("optional")
        and not task_successful(t["status"])
    ]
    if failed:
        reason = ". ".join(
            f"Task {t['taskId']} failed with status: {t['status']} and reason: "
            f"'{t.get('reasonForIncompletion')}'"
            for t in failed
        )
        raise TerminateSignal(reason, WorkflowStatus.FAILED, failed[0])


def _end_execution(run: Run, terminate_task: JSON | None) -> None:
    if terminate_task is None:
        complete_workflow(run)
        return
    inp = terminate_task["inputData"]
    status = str(inp.get("terminationStatus"))
    reason = (
        inp.get("terminationReason")
        or f"Workflow is {status} by TERMINATE task: {terminate_task['taskId']}"
    )
    if status in (WorkflowStatus.FAILED, WorkflowStatus.TERMINATED):
        terminate_workflow(run, status, reason, failure_workflow=True, failed_task=terminate_task)
    else:
        run.wf["reasonForIncompletion"] = reason
        complete_workflow(run)
