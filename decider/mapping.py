"""Task mappers: a WorkflowTask becomes one or more runtime task records (``MAP/*TaskMapper``).

:func:`map_task` is ``DeciderService.getTasksToBeScheduled``: it resolves inputs, builds the
records for the task's type (a fork brings its branches' first tasks and its join; a switch
its selected case's first task) and drops those whose reference name already has an
IN_PROGRESS or finished task.
"""

from __future__ import annotations

import uuid
from typing import Any

from decider import scripting
from decider.binding import java_str, resolve_params
from decider.definition_tree import next_task
from decider.dynamic_fork import map_dynamic_fork
from decider.map_call import MapCall, Mapper
from decider.statuses import UNSUPPORTED_TYPES, TaskStatus, TaskType, task_terminal
from decider.workflow_run import Run, TerminateSignal
from podium import events
from podium.clone import clone
from podium.definitions.shape import normalize_task_def
from podium.definitions.waits import parse_duration, parse_until
from podium.types import JSON

JS_EVALUATORS = ("javascript", "graaljs")


def map_task(
    run: Run, workflow_task: JSON, retry_count: int = 0, retried_task_id: str | None = None
) -> list[JSON]:
    """Runtime tasks for ``workflow_task`` that are not already in progress or done in the
    workflow."""
    busy = {
        t["referenceTaskName"]
        for t in run.tasks
        if t["status"] == TaskStatus.IN_PROGRESS or task_terminal(t["status"])
    }
    mapper = MAPPERS.get(workflow_task.get("type", TaskType.SIMPLE), _user_defined)
    mapped = mapper(MapCall(run, workflow_task, retry_count, retried_task_id, map_task))
    return [t for t in mapped if t["referenceTaskName"] not in busy]


def _worker_task(call: MapCall, task_type: str, task_def: JSON, input_data: JSON) -> list[JSON]:
    task = call.create(task_type, TaskStatus.SCHEDULED, input_data)
    delay = int(call.workflow_task.get("startDelay") or 0)
    task["startDelayInSeconds"] = task["callbackAfterSeconds"] = delay
    return [task]


def _simple(call: MapCall) -> list[JSON]:
    task_def = call.task_def or normalize_task_def({"name": call.workflow_task["name"]})
    call.task_def = task_def
    return _worker_task(call, call.workflow_task["name"], task_def, call.input())


def _user_defined(call: MapCall) -> list[JSON]:
    if call.task_def is None:
        raise TerminateSignal(
            "Invalid task specified.  Cannot find task by name "
            f"{call.workflow_task['name']} in the task definitions"
        )
    return _worker_task(call, call.workflow_task["type"], call.task_def, call.input())


def _dynamic(call: MapCall) -> list[JSON]:
    param = call.workflow_task["dynamicTaskNameParam"]
    inp = call.input()
    name = inp.get(param)
    if name is None or name == "":
        raise TerminateSignal(
            f"Cannot map a dynamic task based on the parameter and input. Parameter= {param}, "
            f"input= {java_str(inp)}"
        )
    name = str(name)
    task_def = call.task_def
    if task_def is None:
        registered = call.run.ctx.task_defs.get(name)
        if registered is None:
            raise TerminateSignal(
                f"Invalid task specified.  Cannot find task by name {name} in the task definitions"
            )
        task_def = normalize_task_def(registered)
    workflow_task = clone(call.workflow_task)
    workflow_task["name"], workflow_task["taskDefinition"] = name, task_def
    call.workflow_task, call.task_def = workflow_task, task_def
    return _worker_task(call, name, task_def, call.input())


def _http(call: MapCall) -> list[JSON]:
    inp = call.input()
    task = call.create(TaskType.HTTP, TaskStatus.SCHEDULED, inp)
    if call.workflow_task.get("asyncComplete") or inp.get("asyncComplete"):
        inp["asyncComplete"] = True
    delay = int(call.workflow_task.get("startDelay") or 0)
    task["startDelayInSeconds"] = task["callbackAfterSeconds"] = delay
    return [task]


def _event(call: MapCall) -> list[JSON]:
    """EVENT (Conductor's ``EventTaskMapper`` and ``Event.start``): the task is queued for a
    sweeper, which publishes its output to the sink's event and completes it.

    The output (the message's payload) is set here: the input, the workflow's identity and
    ``event_produced``, the event's name. A sink no transport carries fails the task at once.
    """
    inp = call.input()
    sink = resolve_params(
        {"sink": call.workflow_task.get("sink")},
        call.run.wf,
        call.task_id,
        None,
        call.run.ctx.env,
        paths=call.run.ctx.paths,
    )["sink"]
    inp["sink"] = sink
    if call.workflow_task.get("asyncComplete") or inp.get("asyncComplete"):
        inp["asyncComplete"] = True
    task = call.create(TaskType.EVENT, TaskStatus.SCHEDULED, inp)
    wf = call.run.wf
    try:
        event = events.event_of_sink(
            sink, str(wf.get("workflowName")), call.workflow_task["taskReferenceName"]
        )
    except events.SinkError as exc:
        return [_failed(call, task, str(exc))]
    task["outputData"] = {
        **clone(inp),
        "workflowInstanceId": wf["workflowId"],
        "workflowType": wf.get("workflowName"),
        "workflowVersion": wf.get("workflowVersion"),
        "correlationId": wf.get("correlationId"),
        "taskToDomain": clone(wf.get("taskToDomain") or {}),
        "taskId": task["taskId"],
        "event_produced": event.name,
    }
    return [task]


def _fork_join(call: MapCall) -> list[JSON]:
    fork = call.create(TaskType.FORK, TaskStatus.COMPLETED, call.input(), def_name=TaskType.FORK)
    out = [fork]
    for branch in call.workflow_task["forkTasks"]:
        if branch:
            out += map_task(call.run, branch[0], call.retry_count)
    join_wt = next_task(call.run.wf_def, call.workflow_task["taskReferenceName"])
    if join_wt is None or join_wt.get("type") != TaskType.JOIN:
        raise TerminateSignal(
            "Fork task definition is not followed by a join task.  Check the blueprint"
        )
    return out + map_task(call.run, join_wt, call.retry_count)


def _join(call: MapCall) -> list[JSON]:
    inp = call.input()
    inp["joinOn"] = list(call.workflow_task.get("joinOn") or [])
    return [call.create(TaskType.JOIN, TaskStatus.IN_PROGRESS, inp, def_name=TaskType.JOIN)]


def _exclusive_join(call: MapCall) -> list[JSON]:
    inp = call.input()
    inp["joinOn"] = list(call.workflow_task.get("joinOn") or [])
    inp["defaultExclusiveJoinTask"] = list(call.workflow_task.get("defaultExclusiveJoinTask") or [])
    return [call.create(TaskType.EXCLUSIVE_JOIN, TaskStatus.IN_PROGRESS, inp)]


def _in_progress(task_type: str) -> Mapper:
    def mapper(call: MapCall) -> list[JSON]:
        return [call.create(task_type, TaskStatus.IN_PROGRESS, call.input())]

    return mapper


def _select_case(call: MapCall, task: JSON, case: str, selected: list[JSON] | None) -> list[JSON]:
    out = [task]
    if selected:
        out += map_task(call.run, selected[0], call.retry_count)
        task["inputData"]["hasChildren"] = "true"
    return out


def _switch(call: MapCall) -> list[JSON]:
    workflow_task, inp = call.workflow_task, call.input()
    evaluator = workflow_task.get("evaluatorType")
    if evaluator != "value-param" and evaluator not in JS_EVALUATORS:
        raise TerminateSignal(f"No evaluator registered for type: {evaluator}")
    try:
        result = evaluate(call.run, str(evaluator), str(workflow_task.get("expression")), inp)
    except (scripting.ScriptError, scripting.ScriptTimeout) as exc:
        task = call.create(TaskType.SWITCH, TaskStatus.FAILED, inp, def_name=TaskType.SWITCH)
        task["reasonForIncompletion"] = str(exc)
        return [task]
    case = java_str(result)
    inp["case"] = case
    task = call.create(TaskType.SWITCH, TaskStatus.IN_PROGRESS, inp, def_name=TaskType.SWITCH)
    task["outputData"] = {"evaluationResult": [case], "selectedCase": case}
    selected = workflow_task["decisionCases"].get(case)
    return _select_case(
        call, task, case, workflow_task.get("defaultCase") if selected is None else selected
    )


def _decision(call: MapCall) -> list[JSON]:
    workflow_task, inp = call.workflow_task, call.input()
    expr = workflow_task.get("caseExpression")
    if expr:
        try:
            value = evaluate(call.run, "javascript", str(expr), inp)
        except (scripting.ScriptError, scripting.ScriptTimeout) as exc:
            raise TerminateSignal(f"Error while evaluating script: {expr}") from exc
        case = "null" if value is None else java_str(value)
    else:
        case = java_str(inp.get(workflow_task.get("caseValueParam") or ""))
    inp["case"] = case
    task = call.create(TaskType.DECISION, TaskStatus.IN_PROGRESS, inp, def_name=TaskType.DECISION)
    task["outputData"] = {"caseOutput": [case]}
    return _select_case(
        call,
        task,
        case,
        workflow_task["decisionCases"].get(case) or workflow_task.get("defaultCase"),
    )


def evaluate(run: Run, evaluator: str, expression: str, inp: Any) -> Any:
    """A SWITCH/INLINE evaluator: ``value-param`` reads the input key, JS runs sandboxed."""
    if evaluator == "value-param":
        return inp.get(expression) if isinstance(inp, dict) else None
    cfg = run.ctx.config
    return run.ctx.scripts.eval_js(
        expression,
        inp,
        timeout_s=cfg.script_timeout_s,
        max_memory_bytes=cfg.script_max_memory_bytes,
    )


def _do_while(call: MapCall) -> list[JSON]:
    existing = call.run.task_by_ref(call.workflow_task["taskReferenceName"])
    if existing is not None and task_terminal(existing["status"]):
        return []
    return [call.create(TaskType.DO_WHILE, TaskStatus.IN_PROGRESS, call.input())]


def sub_workflow_id(parent_id: str, task_id: str, retry_count: int) -> str:
    """Conductor's deterministic child id: UUIDv3 of ``subworkflow:parent:taskId:retryCount``."""
    name = f"subworkflow:{parent_id}:{task_id}:{retry_count}".encode()
    return str(uuid.UUID(bytes=_md5(name), version=3))


def _md5(data: bytes) -> bytes:
    import hashlib

    return hashlib.md5(data, usedforsecurity=False).digest()


def _sub_workflow(call: MapCall) -> list[JSON]:
    run, workflow_task = call.run, call.workflow_task
    params = clone(workflow_task.get("subWorkflowParam") or {})
    definition = params.get("workflowDefinition")
    if isinstance(definition, str):
        definition = resolve_params(
            {"d": definition}, run.wf, call.task_id, None, run.ctx.env, paths=run.ctx.paths
        )["d"]
    if isinstance(definition, dict):
        name, version = definition.get("name"), definition.get("version")
    else:
        definition = None
        name, version = params.get("name"), params.get("version")
    workflow_input = call.input()
    inp: JSON = {
        "subWorkflowName": name,
        "subWorkflowVersion": version,
        "subWorkflowTaskToDomain": params.get("taskToDomain"),
        "subWorkflowDefinition": definition,
        "workflowInput": workflow_input,
    }
    priority = params.get("priority")
    if isinstance(priority, str):
        priority = resolve_params(
            {"p": priority}, run.wf, call.task_id, None, run.ctx.env, paths=run.ctx.paths
        )["p"]
    if priority is not None:
        inp["priority"] = priority
    task = call.create(TaskType.SUB_WORKFLOW, TaskStatus.SCHEDULED, inp)
    if isinstance(priority, int | float) and not isinstance(priority, bool):
        task["workflowPriority"] = int(priority)
    limit = run.ctx.config.max_subworkflow_depth
    depth = run.wf.get("subWorkflowDepth")
    if isinstance(depth, int) and not isinstance(depth, bool) and depth >= limit:
        return [_failed(call, task, depth_limit_reason(name, limit))]
    delay = int(workflow_task.get("startDelay") or 0)
    task["startDelayInSeconds"] = task["callbackAfterSeconds"] = delay
    task["subWorkflowId"] = sub_workflow_id(run.wf["workflowId"], call.task_id, call.retry_count)
    task["outputData"] = {"subWorkflowId": task["subWorkflowId"]}
    return [task]


def depth_limit_reason(name: Any, limit: int) -> str:
    return (
        f"Sub workflow {name} not started: sub-workflows may nest {limit} deep "
        f"(PODIUM_DECIDER_MAX_SUBWORKFLOW_DEPTH)"
    )


def _start_workflow(call: MapCall) -> list[JSON]:
    inp = call.input()
    task = call.create(TaskType.START_WORKFLOW, TaskStatus.SCHEDULED, inp)
    request = inp.get("startWorkflow")
    if request is None:
        return [_failed(call, task, "Missing 'startWorkflow' in input data.", TaskStatus.FAILED)]
    if not isinstance(request, dict) or not request.get("name"):
        reason = (
            "startWorkflow validation failed. 'name' -> Workflow name cannot be null or empty. "
        )
        return [_failed(call, task, reason, TaskStatus.FAILED)]
    return [task]


def blank(v: Any) -> bool:
    return v is None or str(v).strip() == ""


def _wait(call: MapCall) -> list[JSON]:
    inp = call.input()
    task = call.create(TaskType.WAIT, TaskStatus.IN_PROGRESS, inp)
    duration, until = inp.get("duration"), inp.get("until")
    if not blank(duration) and not blank(until):
        return [
            _failed(
                call, task, "Both 'duration' and 'until' specified. Please provide only one input"
            )
        ]
    now = call.run.now
    if not blank(duration):
        seconds = parse_duration(str(duration))
        if seconds is None:
            return [_failed(call, task, f"Unable to parse duration {duration}")]
        task["waitTimeout"] = now + seconds * 1000
        task["callbackAfterSeconds"] = seconds
    elif not blank(until):
        at = parse_until(str(until))
        if at is None:
            return [
                _failed(call, task, f"Invalid/Unsupported Wait Until format.  Provided: {until}")
            ]
        task["waitTimeout"] = at
        task["callbackAfterSeconds"] = max(0, (at - now) // 1000)
    else:
        task["waitTimeout"] = 0
        task["callbackAfterSeconds"] = 2**31 - 1
    return [task]


def _unsupported(call: MapCall) -> list[JSON]:
    """A Conductor type Podium does not run: the definition is accepted (as Conductor stores
    it), and the task fails terminally when it is reached, saying why."""
    task_type = str(call.workflow_task["type"])
    task = call.create(task_type, TaskStatus.SCHEDULED, call.input())
    reason = f"task type {task_type} is not supported by Podium"
    return [_failed(call, task, reason)]


def _failed(
    call: MapCall, task: JSON, reason: str, status: str = TaskStatus.FAILED_WITH_TERMINAL_ERROR
) -> JSON:
    task["status"] = str(status)
    task["reasonForIncompletion"] = reason
    task["endTime"] = call.run.now
    return task


MAPPERS: dict[str, Mapper] = {
    TaskType.SIMPLE: _simple,
    TaskType.DYNAMIC: _dynamic,
    TaskType.HTTP: _http,
    TaskType.EVENT: _event,
    TaskType.FORK_JOIN: _fork_join,
    TaskType.JOIN: _join,
    TaskType.EXCLUSIVE_JOIN: _exclusive_join,
    TaskType.DECISION: _decision,
    TaskType.SWITCH: _switch,
    TaskType.DO_WHILE: _do_while,
    TaskType.SUB_WORKFLOW: _sub_workflow,
    TaskType.START_WORKFLOW: _start_workflow,
    TaskType.WAIT: _wait,
    TaskType.HUMAN: _in_progress(TaskType.HUMAN),
    TaskType.TERMINATE: _in_progress(TaskType.TERMINATE),
    TaskType.SET_VARIABLE: _in_progress(TaskType.SET_VARIABLE),
    TaskType.INLINE: _in_progress(TaskType.INLINE),
    TaskType.LAMBDA: _in_progress(TaskType.LAMBDA),
    TaskType.JSON_JQ_TRANSFORM: _in_progress(TaskType.JSON_JQ_TRANSFORM),
    TaskType.NOOP: _in_progress(TaskType.NOOP),
    TaskType.FORK_JOIN_DYNAMIC: map_dynamic_fork,
    **dict.fromkeys(UNSUPPORTED_TYPES, _unsupported),
}
