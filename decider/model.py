"""Definitions as Conductor JSON dicts: defaults, tree navigation, task-definition population.

Definitions enter and leave as plain dicts with Conductor's field names. ``normalize_*`` returns a
deep copy with every defaulted field present, so the rest of the decider can index without
``.get`` chains. Validation lives in :mod:`decider.validation`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from decider.clone import clone
from decider.state import TaskType
from podium.types import JSON

WORKFLOW_DEF_DEFAULTS: JSON = {
    "version": 1,
    "tasks": [],
    "inputParameters": [],
    "outputParameters": {},
    "schemaVersion": 2,
    "restartable": True,
    "workflowStatusListenerEnabled": False,
    "timeoutPolicy": "ALERT_ONLY",
    "timeoutSeconds": 0,
    "variables": {},
    "inputTemplate": {},
}

WORKFLOW_TASK_DEFAULTS: JSON = {
    "type": TaskType.SIMPLE.value,
    "inputParameters": {},
    "optional": False,
    "permissive": False,
    "startDelay": 0,
    "asyncComplete": False,
    "decisionCases": {},
    "defaultCase": [],
    "forkTasks": [],
    "joinOn": [],
    "loopOver": [],
    "defaultExclusiveJoinTask": [],
}

TASK_DEF_DEFAULTS: JSON = {
    "retryCount": 3,
    "retryLogic": "FIXED",
    "retryDelaySeconds": 60,
    "timeoutSeconds": 0,
    "timeoutPolicy": "TIME_OUT_WF",
    "responseTimeoutSeconds": 3600,
    "backoffScaleFactor": 1,
    "maxRetryDelaySeconds": 0,
    "backoffJitterMs": 0,
    "totalTimeoutSeconds": 0,
    "inputKeys": [],
    "outputKeys": [],
    "inputTemplate": {},
    "rateLimitPerFrequency": 0,
    "rateLimitFrequencyInSeconds": 1,
}


def _with_defaults(d: Mapping[str, Any], defaults: Mapping[str, Any]) -> JSON:
    out = clone(dict(d))
    for key, value in defaults.items():
        if out.get(key) is None:
            out[key] = clone(value)
    return out


def normalize_task_def(d: Mapping[str, Any]) -> JSON:
    """A TaskDef with Conductor's defaults filled in (null counts as absent)."""
    return _with_defaults(d, TASK_DEF_DEFAULTS)


def default_task_def(name: str) -> JSON:
    """The ad-hoc definition Conductor attaches to an unregistered SIMPLE task."""
    return normalize_task_def({"name": name})


def normalize_workflow_task(d: Mapping[str, Any]) -> JSON:
    """A WorkflowTask with defaults filled in, recursively through nested task lists."""
    out = _with_defaults(d, WORKFLOW_TASK_DEFAULTS)
    out["decisionCases"] = {
        k: [normalize_workflow_task(t) for t in v or []] for k, v in out["decisionCases"].items()
    }
    out["defaultCase"] = [normalize_workflow_task(t) for t in out["defaultCase"]]
    out["forkTasks"] = [[normalize_workflow_task(t) for t in b or []] for b in out["forkTasks"]]
    out["loopOver"] = [normalize_workflow_task(t) for t in out["loopOver"]]
    if isinstance(out.get("taskDefinition"), Mapping):
        out["taskDefinition"] = normalize_task_def(out["taskDefinition"])
        if not out["taskDefinition"].get("name") and out.get("name"):
            # Conductor accepts an inline TaskDef without a name: it is the task's.
            out["taskDefinition"]["name"] = out["name"]
    return out


def normalize_workflow_def(d: Mapping[str, Any]) -> JSON:
    """A WorkflowDef with defaults filled in, tasks included."""
    out = _with_defaults(d, WORKFLOW_DEF_DEFAULTS)
    out["tasks"] = [normalize_workflow_task(t) for t in out["tasks"] if isinstance(t, Mapping)]
    return out


# --- tree navigation (WorkflowDef.getNextTask / WorkflowTask.next / has / children) -----------


def children(wt: Mapping[str, Any]) -> list[list[JSON]]:
    """The nested task lists of a container task, in Conductor's order."""
    t = wt.get("type")
    if t in (TaskType.DECISION, TaskType.SWITCH):
        return [*list(wt.get("decisionCases", {}).values()), wt.get("defaultCase", [])]
    if t == TaskType.FORK_JOIN:
        return list(wt.get("forkTasks", []))
    if t == TaskType.DO_WHILE:
        return [wt.get("loopOver", [])]
    return []


def iter_tasks(tasks: list[JSON]) -> Iterator[JSON]:
    """Every WorkflowTask in ``tasks``, depth first, containers before their children."""
    for wt in tasks:
        yield wt
        for branch in children(wt):
            yield from iter_tasks(branch)


def has_ref(wt: Mapping[str, Any], ref: str) -> bool:
    """Whether ``wt`` is, or (recursively) contains, the task with reference name ``ref``."""
    if wt.get("taskReferenceName") == ref:
        return True
    return any(has_ref(c, ref) for branch in children(wt) for c in branch)


def find_task(wf_def: Mapping[str, Any], ref: str) -> JSON | None:
    """The WorkflowTask with this reference name anywhere in the definition."""
    for wt in iter_tasks(wf_def.get("tasks", [])):
        if wt.get("taskReferenceName") == ref:
            return wt
    return None


def collect_tasks(wt: Mapping[str, Any]) -> list[JSON]:
    """The tasks nested inside a container (not the container itself)."""
    return [t for branch in children(wt) for t in iter_tasks(branch)]


def _next_in(wt: JSON, ref: str, parent: JSON | None) -> JSON | None:
    """``WorkflowTask.next``: the task after ``ref`` inside container ``wt``, if any."""
    t = wt.get("type")
    if t not in (TaskType.DO_WHILE, TaskType.DECISION, TaskType.SWITCH, TaskType.FORK_JOIN):
        return None
    for branch in children(wt):
        found = False
        stop = len(branch)
        for i, task in enumerate(branch):
            if task.get("taskReferenceName") == ref:
                found, stop = True, i
                break
            nxt = _next_in(task, ref, wt)
            if nxt is not None:
                return nxt
            if has_ref(task, ref):
                stop = i
                break
        if stop + 1 < len(branch):
            return branch[stop + 1]
        if t == TaskType.FORK_JOIN and found and parent is not None:
            # last task of a fork branch nested in a container: what follows the fork there
            return _next_in(parent, wt["taskReferenceName"], parent)
    if t == TaskType.DO_WHILE and has_ref(wt, ref):
        # the loop itself decides whether another iteration follows
        return wt
    return None


def next_task(wf_def: Mapping[str, Any], ref: str) -> JSON | None:
    """``WorkflowDef.getNextTask``: the task to schedule after the one named ``ref``."""
    current = find_task(wf_def, ref)
    if current is not None and current.get("type") == TaskType.TERMINATE:
        return None
    tasks: list[JSON] = wf_def.get("tasks", [])
    for i, wt in enumerate(tasks):
        if wt.get("taskReferenceName") == ref:
            return tasks[i + 1] if i + 1 < len(tasks) else None
        nxt = _next_in(wt, ref, None)
        if nxt is not None:
            return nxt
        if wt.get("type") == TaskType.DO_WHILE and has_ref(wt, ref):
            return None
        if has_ref(wt, ref):
            return tasks[i + 1] if i + 1 < len(tasks) else None
    return None


# --- task definitions -----------------------------------------------------------------------


def populate_task_defs(wf_def: JSON, task_defs: Mapping[str, Mapping[str, Any]]) -> JSON:
    """Attach registered (or ad-hoc) TaskDefs to every WorkflowTask (MetadataMapperService).

    An inline ``taskDefinition`` wins; else the registered definition of ``name``; else, for
    SIMPLE tasks only, Conductor's default ``TaskDef(name)``. Works on a copy.
    """
    out = clone(wf_def)
    for wt in iter_tasks(out["tasks"]):
        populate_one(wt, task_defs)
    return out


def populate_one(wt: JSON, task_defs: Mapping[str, Mapping[str, Any]]) -> None:
    """Attach a TaskDef to one WorkflowTask in place (see :func:`populate_task_defs`)."""
    if wt.get("taskDefinition") is not None or not wt.get("name"):
        return
    registered = task_defs.get(wt["name"])
    if registered is not None:
        wt["taskDefinition"] = normalize_task_def(registered)
    elif wt.get("type", TaskType.SIMPLE) == TaskType.SIMPLE:
        wt["taskDefinition"] = default_task_def(wt["name"])


def strip_iteration(ref: str) -> str:
    """``t__3`` → ``t`` (TaskUtils.removeIterationFromTaskRefName)."""
    head, sep, _ = ref.rpartition("__")
    return head if sep else ref


def append_iteration(ref: str, iteration: int) -> str:
    return f"{ref}__{iteration}"
