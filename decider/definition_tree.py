"""Reading definitions while deciding: the next task, nested references, task-definition
population. Defaults and validation live in :mod:`podium.definitions`, shared with the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from decider.statuses import TaskType
from podium.clone import clone
from podium.definitions.shape import children, default_task_def, iter_tasks, normalize_task_def
from podium.types import JSON


def has_ref(workflow_task: Mapping[str, Any], ref: str) -> bool:
    """Whether ``workflow_task`` is, or (recursively) contains, the task with reference name
    ``ref``."""
    if workflow_task.get("taskReferenceName") == ref:
        return True
    return any(has_ref(c, ref) for branch in children(workflow_task) for c in branch)


def find_task(wf_def: Mapping[str, Any], ref: str) -> JSON | None:
    """The WorkflowTask with this reference name anywhere in the definition."""
    for workflow_task in iter_tasks(wf_def.get("tasks", [])):
        if workflow_task.get("taskReferenceName") == ref:
            return workflow_task
    return None


def collect_tasks(workflow_task: Mapping[str, Any]) -> list[JSON]:
    """The tasks nested inside a container (not the container itself)."""
    return [t for branch in children(workflow_task) for t in iter_tasks(branch)]


def _next_in(workflow_task: JSON, ref: str, parent: JSON | None) -> JSON | None:
    """``WorkflowTask.next``: the task after ``ref`` inside container ``workflow_task``, if any."""
    t = workflow_task.get("type")
    if t not in (TaskType.DO_WHILE, TaskType.DECISION, TaskType.SWITCH, TaskType.FORK_JOIN):
        return None
    for branch in children(workflow_task):
        found = False
        stop = len(branch)
        for i, task in enumerate(branch):
            if task.get("taskReferenceName") == ref:
                found, stop = True, i
                break
            nxt = _next_in(task, ref, workflow_task)
            if nxt is not None:
                return nxt
            if has_ref(task, ref):
                stop = i
                break
        if stop + 1 < len(branch):
            return branch[stop + 1]
        if t == TaskType.FORK_JOIN and found and parent is not None:
            # last task of a fork branch nested in a container: what follows the fork there
            return _next_in(parent, workflow_task["taskReferenceName"], parent)
    if t == TaskType.DO_WHILE and has_ref(workflow_task, ref):
        # the loop itself decides whether another iteration follows
        return workflow_task
    return None


def next_task(wf_def: Mapping[str, Any], ref: str) -> JSON | None:
    """``WorkflowDef.getNextTask``: the task to schedule after the one named ``ref``."""
    current = find_task(wf_def, ref)
    if current is not None and current.get("type") == TaskType.TERMINATE:
        return None
    tasks: list[JSON] = wf_def.get("tasks", [])
    for i, workflow_task in enumerate(tasks):
        if workflow_task.get("taskReferenceName") == ref:
            return tasks[i + 1] if i + 1 < len(tasks) else None
        nxt = _next_in(workflow_task, ref, None)
        if nxt is not None:
            return nxt
        if workflow_task.get("type") == TaskType.DO_WHILE and has_ref(workflow_task, ref):
            return None
        if has_ref(workflow_task, ref):
            return tasks[i + 1] if i + 1 < len(tasks) else None
    return None


# --- task definitions -----------------------------------------------------------------------


def populate_task_defs(wf_def: JSON, task_defs: Mapping[str, Mapping[str, Any]]) -> JSON:
    """Attach registered (or ad-hoc) TaskDefs to every WorkflowTask (MetadataMapperService).

    An inline ``taskDefinition`` wins; else the registered definition of ``name``; else, for
    SIMPLE tasks only, Conductor's default ``TaskDef(name)``. Works on a copy.
    """
    out = clone(wf_def)
    for workflow_task in iter_tasks(out["tasks"]):
        populate_one(workflow_task, task_defs)
    return out


def populate_one(workflow_task: JSON, task_defs: Mapping[str, Mapping[str, Any]]) -> None:
    """Attach a TaskDef to one WorkflowTask in place (see :func:`populate_task_defs`)."""
    if workflow_task.get("taskDefinition") is not None or not workflow_task.get("name"):
        return
    registered = task_defs.get(workflow_task["name"])
    if registered is not None:
        workflow_task["taskDefinition"] = normalize_task_def(registered)
    elif workflow_task.get("type", TaskType.SIMPLE) == TaskType.SIMPLE:
        workflow_task["taskDefinition"] = default_task_def(workflow_task["name"])


def strip_iteration(ref: str) -> str:
    """``t__3`` → ``t`` (TaskUtils.removeIterationFromTaskRefName)."""
    head, sep, _ = ref.rpartition("__")
    return head if sep else ref


def append_iteration(ref: str, iteration: int) -> str:
    return f"{ref}__{iteration}"
