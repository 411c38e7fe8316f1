"""Definitions as Conductor JSON dicts: their defaults, and the walk over nested tasks.

Definitions enter and leave as plain dicts with Conductor's field names. ``normalize_*`` returns a
deep copy with every defaulted field present, so that the code reading them can index without
``.get`` chains.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from podium.clone import clone
from podium.definitions.task_types import TaskType
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


def children(workflow_task: Mapping[str, Any]) -> list[list[JSON]]:
    """The nested task lists of a container task, in Conductor's order."""
    t = workflow_task.get("type")
    if t in (TaskType.DECISION, TaskType.SWITCH):
        return [
            *list(workflow_task.get("decisionCases", {}).values()),
            workflow_task.get("defaultCase", []),
        ]
    if t == TaskType.FORK_JOIN:
        return list(workflow_task.get("forkTasks", []))
    if t == TaskType.DO_WHILE:
        return [workflow_task.get("loopOver", [])]
    return []


def iter_tasks(tasks: list[JSON]) -> Iterator[JSON]:
    """Every WorkflowTask in ``tasks``, depth first, containers before their children."""
    for workflow_task in tasks:
        yield workflow_task
        for branch in children(workflow_task):
            yield from iter_tasks(branch)
