"""FORK_JOIN_DYNAMIC (``MAP/ForkJoinDynamicTaskMapper``): branches computed from the input.

Three input styles, tried in Conductor's order: ``forkTaskInputs`` (one branch per list item,
all of one task name/type or sub-workflow); ``dynamicForkTasksParam`` plus
``dynamicForkTasksInputParamName`` (a list of WorkflowTask JSON and a map ref → input); the
legacy ``dynamicForkJoinTasksParam`` (``{"dynamicTasks": [...]}``).
"""

from __future__ import annotations

from typing import Any

from decider.binding import java_str, resolve_params
from decider.definition_tree import next_task
from decider.map_call import MapCall, dynamic_fork_wt
from decider.statuses import SYSTEM_TYPES, TaskStatus, TaskType
from decider.workflow_run import TerminateSignal
from podium.types import JSON


def map_dynamic_fork(call: MapCall) -> list[JSON]:
    """FORK (COMPLETED) + the first task of every dynamic branch + the JOIN after it."""
    run, workflow_task = call.run, call.workflow_task
    inp = call.input()
    if "forkTaskInputs" in inp:
        branches = _simple_style(call, inp)
    elif workflow_task.get("dynamicForkJoinTasksParam"):
        branches = _legacy_style(call, inp)
    else:
        branches = _list_style(call, inp)
    refs = [b["taskReferenceName"] for b in branches]
    if len(set(refs)) != len(refs):
        raise TerminateSignal(
            f"No dynamic tasks could be created for the Workflow: {run.wf.get('workflowName')}"
        )
    inp["forkedTasks"] = refs
    inp["forkedTaskDefs"] = branches
    fork = call.create(TaskType.FORK, TaskStatus.COMPLETED, inp, def_name=TaskType.FORK)
    fork["executed"] = True
    out = [fork]
    join_on: list[str] = []
    for branch in branches:
        mapped = call.map_task(run, branch, call.retry_count)
        out += mapped
        join_on.append(mapped[-1]["referenceTaskName"] if mapped else branch["taskReferenceName"])
    join_wt = next_task(run.wf_def, workflow_task["taskReferenceName"])
    if join_wt is None or join_wt.get("type") != TaskType.JOIN:
        raise TerminateSignal(
            "Dynamic join definition is not followed by a join task.  Check the workflow "
            "definition."
        )
    join_call = MapCall(run, join_wt, call.retry_count, None, call.map_task)
    join_input = resolve_params(
        join_wt.get("inputParameters"),
        run.wf,
        join_call.task_id,
        None,
        run.ctx.env,
        paths=run.ctx.paths,
    )
    join_input["joinOn"] = join_on
    join = join_call.create(
        TaskType.JOIN, TaskStatus.IN_PROGRESS, join_input, def_name=TaskType.JOIN
    )
    busy = {t["referenceTaskName"] for t in run.tasks}
    return out + ([join] if join["referenceTaskName"] not in busy else [])


def _simple_style(call: MapCall, inp: JSON) -> list[JSON]:
    items = inp.get("forkTaskInputs")
    if not isinstance(items, list):
        raise TerminateSignal(
            f"Input 'forkTaskInputs' is invalid. Expected a list but found {java_str(items)}"
        )
    task_type = str(inp.get("forkTaskType") or TaskType.SIMPLE)
    sub_wf = inp.get("forkTaskWorkflow")
    name = inp.get("forkTaskName")
    if sub_wf:
        task_type = TaskType.SUB_WORKFLOW
        name = name or sub_wf
    if not name:
        name = task_type if task_type in SYSTEM_TYPES else call.workflow_task["taskReferenceName"]
    prefix = f"_{name}"
    if _other_dynamic_fork_exists(call):
        prefix = f"_{call.workflow_task['taskReferenceName']}_{name}"
    branches = []
    for i, item in enumerate(items):
        params: JSON = dict(item) if isinstance(item, dict) else {"input": item}
        params["__index"] = i
        raw: JSON = {
            "name": name,
            "taskReferenceName": f"{prefix}_{i}",
            "type": task_type,
            "inputParameters": params,
        }
        if sub_wf:
            version = inp.get("forkTaskWorkflowVersion")
            raw["subWorkflowParam"] = {"name": sub_wf, "version": _as_int(version)}
        branches.append(dynamic_fork_wt(call.run, raw, call.workflow_task))
    return branches


def _other_dynamic_fork_exists(call: MapCall) -> bool:
    ref = call.workflow_task["taskReferenceName"]
    return any(
        t["taskType"] == TaskType.FORK
        and t["workflowTask"].get("type") == TaskType.FORK_JOIN_DYNAMIC
        and t["referenceTaskName"] != ref
        for t in call.run.tasks
    )


def _list_style(call: MapCall, inp: JSON) -> list[JSON]:
    tasks_param = call.workflow_task.get("dynamicForkTasksParam") or ""
    input_param = call.workflow_task.get("dynamicForkTasksInputParamName") or ""
    raw_tasks = inp.get(tasks_param)
    if not isinstance(raw_tasks, list) or not all(
        isinstance(t, dict) and t.get("taskReferenceName") for t in raw_tasks
    ):
        raise TerminateSignal(
            f"Input '{tasks_param}' is invalid. Cannot deserialize a list of Workflow Tasks from "
            f"'{java_str(raw_tasks)}'"
        )
    inputs = inp.get(input_param)
    if not isinstance(inputs, dict):
        raise TerminateSignal(
            f"Input to the dynamically forked tasks is not a map -> expecting a map of K,V  but "
            f"found {java_str(inputs)}"
        )
    branches = []
    for raw in raw_tasks:
        workflow_task = dynamic_fork_wt(call.run, raw, call.workflow_task)
        extra = inputs.get(workflow_task["taskReferenceName"])
        if isinstance(extra, dict):
            workflow_task["inputParameters"] = {**workflow_task["inputParameters"], **extra}
        branches.append(workflow_task)
    return branches


def _legacy_style(call: MapCall, inp: JSON) -> list[JSON]:
    param = call.workflow_task["dynamicForkJoinTasksParam"]
    value = inp.get(param)
    dynamic = value.get("dynamicTasks") if isinstance(value, dict) else None
    if not isinstance(dynamic, list):
        raise TerminateSignal(
            f"Input '{param}' is invalid. Cannot deserialize DynamicForkJoinTaskList from "
            f"'{java_str(value)}'"
        )
    branches = []
    for item in dynamic:
        if not isinstance(item, dict) or not item.get("referenceName"):
            raise TerminateSignal(
                f"Input '{param}' is invalid: each dynamic task needs a referenceName"
            )
        raw: JSON = {
            "name": item.get("taskName") or item.get("workflowName"),
            "taskReferenceName": item["referenceName"],
            "type": item.get("type") or TaskType.SIMPLE,
            "inputParameters": item.get("input") or {},
        }
        if item.get("workflowName"):
            raw["type"] = TaskType.SUB_WORKFLOW
            raw["subWorkflowParam"] = {"name": item["workflowName"]}
        branches.append(dynamic_fork_wt(call.run, raw, call.workflow_task))
    return branches


def _as_int(v: Any) -> int | None:
    try:
        return int(v) if v is not None and v != "" else None
    except (TypeError, ValueError):
        return None
