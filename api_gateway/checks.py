"""Checks of request objects before they reach the decider or the store.

Definitions are validated with :mod:`podium.definitions.validation` (Conductor's rules and
messages); on top of that, the names that become queue names (SIMPLE task names, task
definition names, domains) must be usable as queue names, and the plugins installed here check
the inputs of their task types (:mod:`podium.plugins`). Worker results, start, rerun and skip
requests are checked for the types of their fields, so a malformed request is a 400 with a
message here, never a failure deeper down.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from podium import plugins
from podium.definitions.validation import ValidatedDefinitions, validate_task_def
from podium.errors import InvalidArgument, PodiumError, ValidationError
from podium.types import JSON

log = logging.getLogger("podium.gateway")


MAX_NAME_CHARS = 200
TASK_RESULT_STATUSES = frozenset(
    {"IN_PROGRESS", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "COMPLETED", "CANCELED"}
)
_QUEUED_TYPES = frozenset({"SIMPLE", "HTTP"})
#: For a definition whose shape a check did not expect (the exception itself goes to the log:
#: its text speaks of Python, not of the definition).
_MALFORMED = (
    "Malformed {what} definition: a field holds a value of the wrong type or shape "
    "(objects, lists, strings and numbers where Conductor's schema has them)"
)


def queue_name_problem(name: str) -> str | None:
    if len(name) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    if any(c.isspace() for c in name) or "{" in name or "}" in name:
        return "must not contain whitespace or braces (it names a task queue)"
    return None


def _walk(tasks: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(tasks, list):
        return
    for i, workflow_task in enumerate(tasks):
        if not isinstance(workflow_task, Mapping):
            continue
        here = f"{path}[{i}]"
        yield here, workflow_task
        for key in ("defaultCase", "loopOver"):
            yield from _walk(workflow_task.get(key), f"{here}.{key}")
        cases = workflow_task.get("decisionCases")
        if isinstance(cases, Mapping):
            for case, branch in cases.items():
                yield from _walk(branch, f"{here}.decisionCases[{case}]")
        forks = workflow_task.get("forkTasks")
        if isinstance(forks, list):
            for b, branch in enumerate(forks):
                yield from _walk(branch, f"{here}.forkTasks[{b}]")


def workflow_def(definition: Any, validated: ValidatedDefinitions, path: str = "") -> JSON:
    """A validated, normalized WorkflowDef; ValidationError (400) listing what is wrong."""
    if not isinstance(definition, dict):
        raise ValidationError.of([{"path": path or "workflowDef", "message": "must be an object"}])
    try:
        checked = validated.workflow_def(definition)
    except PodiumError:
        raise
    except Exception as exc:  # a shape the validator did not expect: still the client's error
        log.info("workflow definition rejected by a failing check: %r", exc)
        raise ValidationError.of(
            [{"path": path or "workflowDef", "message": _MALFORMED.format(what="workflow")}]
        ) from None
    errors = []
    prefix = f"{path}." if path else ""
    for where, workflow_task in _walk(checked.get("tasks"), f"{prefix}tasks"):
        if workflow_task.get("type", "SIMPLE") in _QUEUED_TYPES and isinstance(
            workflow_task.get("name"), str
        ):
            problem = queue_name_problem(workflow_task["name"])
            if problem:
                errors.append({"path": f"{where}.name", "message": f"Task name {problem}"})
        errors += _plugin_input_errors(workflow_task, where)
    if errors:
        raise ValidationError.of(errors)
    return checked


def _plugin_input_errors(workflow_task: Mapping[str, Any], where: str) -> list[JSON]:
    """What the plugin of a task's type, if this gateway has it installed, finds wrong with the
    task's inputParameters. A type the gateway does not know passes: by Conductor's rule it is
    a user-defined task, which a sweeper with the plugin may still run (docs/plugins.md)."""
    plugin = plugins.installed().get(str(workflow_task.get("type")))
    inputs = workflow_task.get("inputParameters")
    if plugin is None or not isinstance(inputs, Mapping):
        return []
    path = f"{where}.inputParameters"
    return [{"path": path, "message": m} for m in plugins.validate_input(plugin, inputs)]


def task_def(definition: Any, path: str = "") -> JSON:
    """A validated, normalized TaskDef; ValidationError (400) listing what is wrong."""
    if not isinstance(definition, dict):
        raise ValidationError.of([{"path": path or "taskDef", "message": "must be an object"}])
    try:
        checked = validate_task_def(definition, path)
    except PodiumError:
        raise
    except Exception as exc:
        log.info("task definition rejected by a failing check: %r", exc)
        raise ValidationError.of(
            [{"path": path or "taskDef", "message": _MALFORMED.format(what="task")}]
        ) from None
    problem = queue_name_problem(str(checked["name"]))
    if problem:
        prefix = f"{path}." if path else ""
        raise ValidationError.of([{"path": f"{prefix}name", "message": f"TaskDef name {problem}"}])
    return checked


def domain_map(value: Any, what: str = "taskToDomain") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"{what} must map task names to domain names", field=what)
    for domain in value.values():
        problem = queue_name_problem(domain)
        if problem:
            raise InvalidArgument(f"{what}: domain {domain!r} {problem}", field=what)
    return value


def _type_errors(
    body: Mapping[str, Any], spec: Mapping[str, type | tuple[type, ...]]
) -> list[JSON]:
    errors = []
    for key, kind in spec.items():
        value = body.get(key)
        if value is None:
            continue
        bad_bool = isinstance(value, bool) and kind is int
        if bad_bool or not isinstance(value, kind):
            name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            errors.append({"path": key, "message": f"{key} must be of type {_json_type(name)}"})
    return errors


def _json_type(py: str) -> str:
    return {"str": "string", "int": "integer", "dict": "object", "list": "array"}.get(py, py)


_TASK_RESULT_TYPES: dict[str, type | tuple[type, ...]] = {
    "workflowInstanceId": str,
    "taskId": str,
    "reasonForIncompletion": str,
    "callbackAfterSeconds": int,
    "workerId": str,
    "status": str,
    "outputData": dict,
    "logs": list,
    "externalOutputPayloadStoragePath": str,
    "subWorkflowId": str,
    "extendLease": bool,
}


def task_result(body: Any) -> JSON:
    """A checked TaskResult: Conductor's messages for the missing ids, types for the rest."""
    if not isinstance(body, dict):
        raise InvalidArgument("TaskResult must be a JSON object")
    errors = []
    if not body.get("workflowInstanceId"):
        errors.append(
            {"path": "workflowInstanceId", "message": "Workflow Id cannot be null or empty"}
        )
    if not body.get("taskId"):
        errors.append({"path": "taskId", "message": "Task ID cannot be null or empty"})
    errors += _type_errors(body, _TASK_RESULT_TYPES)
    status = body.get("status")
    if isinstance(status, str) and status not in TASK_RESULT_STATUSES:
        errors.append(
            {"path": "status", "message": f"status: {status} is not a valid TaskResult status"}
        )
    seconds = body.get("callbackAfterSeconds")
    if isinstance(seconds, int) and seconds < 0:
        errors.append({"path": "callbackAfterSeconds", "message": "must be >= 0"})
    for i, entry in enumerate(body.get("logs") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("log"), str):
            errors.append({"path": f"logs[{i}]", "message": "a log is an object with a 'log'"})
        elif entry.get("createdTime") is not None and (
            not isinstance(entry["createdTime"], int) or isinstance(entry["createdTime"], bool)
        ):
            errors.append({"path": f"logs[{i}].createdTime", "message": "must be an integer"})
    if errors:
        raise ValidationError.of(errors)
    return body


_START_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "version": int,
    "correlationId": str,
    "priority": int,
    "input": dict,
    "taskToDomain": dict,
    "workflowDef": dict,
    "externalInputPayloadStoragePath": str,
    "createdBy": str,
    "idempotencyKey": str,
    "idempotencyStrategy": str,
}
_IDEMPOTENCY_STRATEGIES = ("FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING")


def start_request(body: Any, validated: ValidatedDefinitions) -> JSON:
    """A checked StartWorkflowRequest, with an inline definition validated."""
    if not isinstance(body, dict):
        raise InvalidArgument("StartWorkflowRequest must be a JSON object")
    if "input" in body and body["input"] is None:
        raise InvalidArgument("NULL input passed when starting workflow")
    errors = _type_errors(body, _START_TYPES)
    priority = body.get("priority")
    if isinstance(priority, int) and not 0 <= priority <= 99:
        errors.append({"path": "priority", "message": "priority: must be between 0 and 99"})
    if body.get("workflowDef") is None and not body.get("name"):
        errors.append({"path": "name", "message": "Workflow name cannot be null or empty"})
    strategy = body.get("idempotencyStrategy")
    if isinstance(strategy, str) and strategy not in _IDEMPOTENCY_STRATEGIES:
        errors.append(
            {
                "path": "idempotencyStrategy",
                "message": "idempotencyStrategy must be one of "
                + ", ".join(_IDEMPOTENCY_STRATEGIES),
            }
        )
    if errors:
        raise ValidationError.of(errors)
    domain_map(body.get("taskToDomain"))
    out = dict(body)
    if body.get("workflowDef") is not None:
        out["workflowDef"] = workflow_def(body["workflowDef"], validated, "workflowDef")
        out.setdefault("name", out["workflowDef"]["name"])
    if out.get("version") == 0:
        out["version"] = None  # 0 means the latest, as in Conductor's execute endpoint
    return {k: v for k, v in out.items() if v is not None or k == "version"}


_MOCK_STATUSES = ("COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR")


def task_mocks(value: Any) -> dict[str, list[JSON]]:
    """``taskRefToMockOutput`` of a test run: ``{ref: [{status, output}, ...]}``."""
    if value is None:
        return {}
    path = "taskRefToMockOutput"
    if not isinstance(value, dict):
        message = "must map task reference names to lists of mocks"
        raise ValidationError.of([{"path": path, "message": message}])
    errors: list[dict[str, str]] = []
    out: dict[str, list[JSON]] = {}
    for ref, mocks in value.items():
        if not isinstance(mocks, list):
            errors.append({"path": f"{path}.{ref}", "message": "must be a list of mocks"})
            continue
        out[ref] = []
        for i, mock in enumerate(mocks):
            where = f"{path}.{ref}[{i}]"
            if not isinstance(mock, dict):
                errors.append({"path": where, "message": "must be an object"})
                continue
            # conductor-python's TaskMock arrives as "_status"/"_output" (a property object's
            # text when unset): taken when "status"/"output" are absent and the value fits.
            status = mock.get("status")
            if status is None and mock.get("_status") in _MOCK_STATUSES:
                status = mock["_status"]
            status = status or "COMPLETED"
            if status not in _MOCK_STATUSES:
                message = f"status: {status} is not one of {', '.join(_MOCK_STATUSES)}"
                errors.append({"path": f"{where}.status", "message": message})
            output = mock.get("output")
            if output is None and isinstance(mock.get("_output"), dict):
                output = mock["_output"]
            if output is not None and not isinstance(output, dict):
                errors.append({"path": f"{where}.output", "message": "must be an object"})
            out[ref].append({"status": status, "output": output or {}})
    if errors:
        raise ValidationError.of(errors)
    return out


def rerun_request(body: Any) -> JSON:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InvalidArgument("RerunWorkflowRequest must be a JSON object")
    spec: dict[str, type | tuple[type, ...]] = {
        "reRunFromWorkflowId": str,
        "reRunFromTaskId": str,
        "correlationId": str,
        "workflowInput": dict,
        "taskInput": dict,
    }
    errors = _type_errors(body, spec)
    if errors:
        raise ValidationError.of(errors)
    return body


def id_list(body: Any, limit: int, what: str = "workflowIds") -> list[str]:
    if not isinstance(body, list) or not all(isinstance(i, str) for i in body):
        raise InvalidArgument(f"{what} must be a JSON array of strings")
    if len(body) > limit:
        raise InvalidArgument(
            f"Cannot process more than {limit} workflows. Please use multiple requests.",
            field=what,
        )
    return body


def event_handler(body: Any) -> JSON:
    """Conductor's EventHandler rules (name, event, non-empty actions)."""
    if not isinstance(body, dict):
        raise InvalidArgument("EventHandler must be a JSON object")
    errors = _type_errors(
        body,
        {
            "name": str,
            "event": str,
            "condition": str,
            "actions": list,
            "active": bool,
            "evaluatorType": str,
        },
    )
    if not body.get("name"):
        errors.append({"path": "name", "message": "Missing event handler name"})
    if not body.get("event"):
        errors.append({"path": "event", "message": "Missing event location"})
    actions = body.get("actions")
    if not actions:
        errors.append(
            {
                "path": "actions",
                "message": "No actions specified. Please specify at-least one action",
            }
        )
    elif isinstance(actions, list):
        for i, action in enumerate(actions):
            if not isinstance(action, dict) or not isinstance(action.get("action"), str):
                errors.append({"path": f"actions[{i}]", "message": "an action needs 'action'"})
    if errors:
        raise ValidationError.of(errors)
    out = dict(body)
    out.setdefault("active", True)
    return out
