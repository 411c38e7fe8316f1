"""Conductor's rules for one WorkflowTask (by its type) and for a TaskDef, with its messages.

Each check appends ``{"path", "message"}`` to a list of errors;
:mod:`podium.definitions.validation` raises them all at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podium.definitions.shape import children, iter_tasks
from podium.definitions.syntax import check_jq_syntax, check_js_syntax
from podium.definitions.task_types import UNSUPPORTED_TYPES, TaskType
from podium.definitions.waits import parse_duration, parse_until
from podium.types import JSON

Errors = list[dict[str, str]]
REQUIRED = "{field} field is required for taskType: {type} taskName: {name}"
_TASK_TIMEOUT_POLICIES = ("RETRY", "TIME_OUT_WF", "ALERT_ONLY")
_RETRY_LOGICS = ("FIXED", "LINEAR_BACKOFF", "EXPONENTIAL_BACKOFF")
_TERMINATION_STATUSES = ("COMPLETED", "FAILED", "TERMINATED")


def error(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def enum_message(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    return f"{field}: {value} is not a valid value; allowed: {', '.join(allowed)}"


def check_task_def(d: JSON, path: str, errors: Errors) -> None:
    p = f"{path}." if path else ""
    name = d.get("name")
    if not isinstance(name, str) or not name:
        errors.append(error(f"{p}name", "TaskDef name cannot be null or empty"))
    ints = (
        "retryCount", "retryDelaySeconds", "timeoutSeconds", "responseTimeoutSeconds",
        "backoffScaleFactor", "maxRetryDelaySeconds", "backoffJitterMs", "totalTimeoutSeconds",
        "rateLimitPerFrequency", "rateLimitFrequencyInSeconds",
    )  # fmt: skip
    bad = [k for k in ints if not is_int(d.get(k))]
    for k in ("pollTimeoutSeconds", "concurrentExecLimit"):
        if d.get(k) is not None and not is_int(d.get(k)):
            bad.append(k)
    for k in bad:
        errors.append(error(f"{p}{k}", f"TaskDef {k}: {d.get(k)} must be an integer"))
    if bad:
        return
    if d["retryCount"] < 0:
        errors.append(
            error(f"{p}retryCount", f"TaskDef retryCount: {d['retryCount']} must be >= 0")
        )
    rt, to, total = d["responseTimeoutSeconds"], d["timeoutSeconds"], d["totalTimeoutSeconds"]
    if rt < 1:
        errors.append(
            error(
                f"{p}responseTimeoutSeconds",
                f"TaskDef responseTimeoutSeconds: {rt} should be minimum 1 second",
            )
        )
    if to > 0 and rt > to:
        errors.append(
            error(
                f"{p}responseTimeoutSeconds",
                f"TaskDef: {name} responseTimeoutSeconds: {rt} must be less than timeoutSeconds: "
                f"{to}",
            )
        )
    if total < 0:
        errors.append(
            error(f"{p}totalTimeoutSeconds", f"TaskDef totalTimeoutSeconds: {total} must be >= 0")
        )
    if total > 0 and to > total:
        errors.append(
            error(
                f"{p}timeoutSeconds",
                f"TaskDef: {name} timeoutSeconds: {to} must be less than or equal to "
                f"totalTimeoutSeconds: {total}",
            )
        )
    if d["backoffScaleFactor"] < 1:
        errors.append(
            error(
                f"{p}backoffScaleFactor",
                f"TaskDef backoffScaleFactor: {d['backoffScaleFactor']} must be >= 1",
            )
        )
    for k in ("maxRetryDelaySeconds", "backoffJitterMs", "retryDelaySeconds", "timeoutSeconds"):
        if d[k] < 0:
            errors.append(error(f"{p}{k}", f"TaskDef {k}: {d[k]} must be >= 0"))
    if d.get("pollTimeoutSeconds") is not None and d["pollTimeoutSeconds"] < 0:
        errors.append(
            error(
                f"{p}pollTimeoutSeconds",
                f"TaskDef pollTimeoutSeconds: {d['pollTimeoutSeconds']} must be >= 0",
            )
        )
    if d["retryLogic"] not in _RETRY_LOGICS:
        errors.append(
            error(f"{p}retryLogic", enum_message("retryLogic", d["retryLogic"], _RETRY_LOGICS))
        )
    if d["timeoutPolicy"] not in _TASK_TIMEOUT_POLICIES:
        errors.append(
            error(
                f"{p}timeoutPolicy",
                enum_message("timeoutPolicy", d["timeoutPolicy"], _TASK_TIMEOUT_POLICIES),
            )
        )


def check_task(workflow_task: JSON, path: str, errors: Errors) -> None:
    name = workflow_task.get("name")
    if not isinstance(name, str) or not name:
        errors.append(error(f"{path}.name", "WorkflowTask name cannot be empty or null"))
    ref = workflow_task.get("taskReferenceName")
    if not isinstance(ref, str) or not ref:
        errors.append(
            error(
                f"{path}.taskReferenceName",
                "WorkflowTask taskReferenceName name cannot be empty or null",
            )
        )
    t = workflow_task.get("type")
    if not isinstance(t, str) or not t:
        errors.append(error(f"{path}.type", "WorkflowTask type cannot be empty"))
        return
    if not is_int(workflow_task["startDelay"]) or workflow_task["startDelay"] < 0:
        errors.append(error(f"{path}.startDelay", "startDelay: must be greater than or equal to 0"))
    if not isinstance(workflow_task["inputParameters"], Mapping):
        errors.append(error(f"{path}.inputParameters", "inputParameters must be a map"))
        return
    retry_count = workflow_task.get("retryCount")
    if retry_count is not None and (not is_int(retry_count) or retry_count < 0):
        errors.append(error(f"{path}.retryCount", "retryCount: must be greater than or equal to 0"))
    if isinstance(workflow_task.get("taskDefinition"), Mapping):
        check_task_def(workflow_task["taskDefinition"], f"{path}.taskDefinition", errors)
    if t in UNSUPPORTED_TYPES:
        return  # stored as Conductor does; the task fails when it is scheduled (mapping.py)
    checker = _TYPE_CHECKS.get(TaskType(t)) if t in TaskType.__members__ else None
    if checker is not None:
        checker(workflow_task, path, errors)
    for b, branch in enumerate(children(workflow_task)):
        for i, child in enumerate(branch):
            check_task(child, f"{path}.{branch_path(workflow_task, b)}[{i}]", errors)


def branch_path(workflow_task: JSON, index: int) -> str:
    t = workflow_task["type"]
    if t == TaskType.FORK_JOIN:
        return f"forkTasks[{index}]"
    if t == TaskType.DO_WHILE:
        return "loopOver"
    keys = list(workflow_task["decisionCases"])
    return f"decisionCases[{keys[index]}]" if index < len(keys) else "defaultCase"


def _req(workflow_task: JSON, path: str, field: str, errors: Errors) -> bool:
    if workflow_task.get(field) is None or workflow_task.get(field) == "":
        msg = REQUIRED.format(
            field=field, type=workflow_task["type"], name=workflow_task.get("name")
        )
        errors.append(error(f"{path}.{field}", msg))
        return False
    return True


def _check_decision(workflow_task: JSON, path: str, errors: Errors) -> None:
    if workflow_task.get("caseValueParam") is None and workflow_task.get("caseExpression") is None:
        msg = REQUIRED.format(
            field="caseValueParam or caseExpression", type="DECISION", name=workflow_task["name"]
        )
        errors.append(error(f"{path}.caseValueParam", msg))
    _check_cases(workflow_task, path, errors)
    expr = workflow_task.get("caseExpression")
    if isinstance(expr, str) and expr and check_js_syntax(expr) is not None:
        errors.append(error(f"{path}.caseExpression", f"Expression is not well formatted: {expr}"))


def _check_cases(workflow_task: JSON, path: str, errors: Errors) -> None:
    if not workflow_task["decisionCases"]:
        msg = (
            "decisionCases should have atleast one task for taskType: "
            f"{workflow_task['type']} taskName: {workflow_task['name']}"
        )
        errors.append(error(f"{path}.decisionCases", msg))


def _check_switch(workflow_task: JSON, path: str, errors: Errors) -> None:
    if (
        _req(workflow_task, path, "evaluatorType", errors)
        and _req(workflow_task, path, "expression", errors)
        and workflow_task["evaluatorType"] in ("javascript", "graaljs")
    ):
        problem = check_js_syntax(str(workflow_task["expression"]))
        if problem is not None:
            errors.append(
                error(f"{path}.expression", f"Expression is not well formatted: {problem}")
            )
    _check_cases(workflow_task, path, errors)


def _check_do_while(workflow_task: JSON, path: str, errors: Errors) -> None:
    if workflow_task.get("items") is None and "_items" not in workflow_task["inputParameters"]:
        _req(workflow_task, path, "loopCondition", errors)
    if not workflow_task["loopOver"]:
        errors.append(
            error(
                f"{path}.loopOver",
                REQUIRED.format(field="loopOver", type="DO_WHILE", name=workflow_task["name"]),
            )
        )
    for inner in iter_tasks(workflow_task["loopOver"]):
        if inner["type"] == TaskType.DO_WHILE:
            errors.append(
                error(
                    f"{path}.loopOver",
                    f"Nested DO_WHILE task {inner.get('taskReferenceName')} is not supported "
                    f"inside DO_WHILE taskName: {workflow_task['name']}",
                )
            )


def _check_dynamic_fork(workflow_task: JSON, path: str, errors: Errors) -> None:
    if "forkTaskInputs" in workflow_task["inputParameters"]:
        return
    legacy = workflow_task.get("dynamicForkJoinTasksParam")
    tasks_param, input_param = (
        workflow_task.get("dynamicForkTasksParam"),
        workflow_task.get("dynamicForkTasksInputParamName"),
    )
    if legacy is not None and (tasks_param is not None or input_param is not None):
        msg = (
            f"dynamicForkJoinTasksParam or combination of dynamicForkTasksInputParamName and "
            f"dynamicForkTasksParam cam be used for taskType: FORK_JOIN_DYNAMIC taskName: "
            f"{workflow_task['name']}"
        )
        errors.append(error(f"{path}.dynamicForkJoinTasksParam", msg))
    elif legacy is None:
        _req(workflow_task, path, "dynamicForkTasksParam", errors)
        _req(workflow_task, path, "dynamicForkTasksInputParamName", errors)


def _template(workflow_task: JSON) -> Mapping[str, Any]:
    task_def = workflow_task.get("taskDefinition")
    return (task_def.get("inputTemplate") or {}) if isinstance(task_def, Mapping) else {}


def _check_http(workflow_task: JSON, path: str, errors: Errors) -> None:
    ip = workflow_task["inputParameters"]
    if (
        "http_request" in ip
        or "uri" in ip
        or "method" in ip
        or "http_request" in _template(workflow_task)
    ):
        return
    msg = REQUIRED.format(
        field="inputParameters.http_request", type="HTTP", name=workflow_task["name"]
    )
    errors.append(error(f"{path}.inputParameters", msg))


def _check_fork(workflow_task: JSON, path: str, errors: Errors) -> None:
    if not workflow_task["forkTasks"] or not any(workflow_task["forkTasks"]):
        msg = (
            "forkTasks should have atleast one task for taskType: FORK_JOIN taskName: "
            f"{workflow_task['name']}"
        )
        errors.append(error(f"{path}.forkTasks", msg))


def _check_terminate(workflow_task: JSON, path: str, errors: Errors) -> None:
    if workflow_task["optional"]:
        errors.append(
            error(
                f"{path}.optional",
                f"terminate task cannot be optional, taskName: {workflow_task['name']}",
            )
        )
    status = workflow_task["inputParameters"].get("terminationStatus")
    if status is None:
        msg = REQUIRED.format(
            field="terminationStatus", type="TERMINATE", name=workflow_task["name"]
        )
        errors.append(error(f"{path}.inputParameters.terminationStatus", msg))
    elif status not in _TERMINATION_STATUSES:
        msg = (
            f"terminationStatus field for TERMINATE task: {workflow_task['name']} should be one "
            f"of COMPLETED, FAILED, TERMINATED, found: {status}"
        )
        errors.append(error(f"{path}.inputParameters.terminationStatus", msg))


def _check_sub_workflow(workflow_task: JSON, path: str, errors: Errors) -> None:
    if not _req(workflow_task, path, "subWorkflowParam", errors):
        return
    params = workflow_task["subWorkflowParam"]
    if not isinstance(params, Mapping):
        errors.append(error(f"{path}.subWorkflowParam", "subWorkflowParam must be an object"))
    elif not params.get("name") and params.get("workflowDefinition") is None:
        errors.append(
            error(f"{path}.subWorkflowParam.name", "SubWorkflowParams name cannot be null or empty")
        )


def _check_jq(workflow_task: JSON, path: str, errors: Errors) -> None:
    query = workflow_task["inputParameters"].get(
        "queryExpression", _template(workflow_task).get("queryExpression")
    )
    if query is None:
        msg = REQUIRED.format(
            field="queryExpression", type="JSON_JQ_TRANSFORM", name=workflow_task["name"]
        )
        errors.append(error(f"{path}.inputParameters.queryExpression", msg))
    elif isinstance(query, str) and "${" not in query:
        problem = check_jq_syntax(query)
        if problem is not None:
            errors.append(
                error(
                    f"{path}.inputParameters.queryExpression",
                    f"queryExpression is not valid jq: {problem}",
                )
            )


def _check_wait(workflow_task: JSON, path: str, errors: Errors) -> None:
    ip = workflow_task["inputParameters"]
    duration, until = ip.get("duration"), ip.get("until")
    if _not_blank(duration) and _not_blank(until):
        errors.append(
            error(
                f"{path}.inputParameters",
                "Both 'duration' and 'until' specified. Please provide only one input",
            )
        )
        return
    if (
        isinstance(duration, str)
        and _not_blank(duration)
        and "${" not in duration
        and parse_duration(duration) is None
    ):
        errors.append(
            error(f"{path}.inputParameters.duration", f"Unable to parse duration {duration}")
        )
    if (
        isinstance(until, str)
        and _not_blank(until)
        and "${" not in until
        and parse_until(until) is None
    ):
        errors.append(error(f"{path}.inputParameters.until", f"Unable to parse date {until}"))


def _check_event(workflow_task: JSON, path: str, errors: Errors) -> None:
    _req(workflow_task, path, "sink", errors)


def _not_blank(v: Any) -> bool:
    return v is not None and str(v).strip() != ""


_TYPE_CHECKS = {
    TaskType.DECISION: _check_decision,
    TaskType.SWITCH: _check_switch,
    TaskType.DO_WHILE: _check_do_while,
    TaskType.DYNAMIC: lambda workflow_task, p, e: (
        _req(workflow_task, p, "dynamicTaskNameParam", e) and None
    ),
    TaskType.FORK_JOIN_DYNAMIC: _check_dynamic_fork,
    TaskType.HTTP: _check_http,
    TaskType.FORK_JOIN: _check_fork,
    TaskType.TERMINATE: _check_terminate,
    TaskType.SUB_WORKFLOW: _check_sub_workflow,
    TaskType.JSON_JQ_TRANSFORM: _check_jq,
    TaskType.WAIT: _check_wait,
    TaskType.EVENT: _check_event,
}
