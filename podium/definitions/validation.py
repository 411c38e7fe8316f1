"""Conductor's definition validation rules, with its messages.

Each check appends ``{"path", "message"}`` to a list; :func:`validate_workflow_def` and
:func:`validate_task_def` raise one :class:`~podium.errors.ValidationError` carrying them all.
Paths are bean-validation style (``tasks[2].loopCondition``).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack

from podium.clone import clone
from podium.definitions.expressions import expressions_in, validate_expression_path
from podium.definitions.shape import (
    children,
    iter_tasks,
    normalize_task_def,
    normalize_workflow_def,
)
from podium.definitions.syntax import check_jq_syntax, check_js_syntax
from podium.definitions.task_types import UNSUPPORTED_TYPES, TaskType
from podium.definitions.waits import parse_duration, parse_until
from podium.errors import ValidationError
from podium.types import JSON

Errors = list[dict[str, str]]
REQUIRED = "{field} field is required for taskType: {type} taskName: {name}"
_SYSTEM_NAMES = frozenset({"workflow", "CPEWF_TASK_ID", "NETFLIX_ENV", "NETFLIX_STACK"})
_TIMEOUT_POLICIES = ("TIME_OUT_WF", "ALERT_ONLY")
_TASK_TIMEOUT_POLICIES = ("RETRY", "TIME_OUT_WF", "ALERT_ONLY")
_RETRY_LOGICS = ("FIXED", "LINEAR_BACKOFF", "EXPONENTIAL_BACKOFF")
_TERMINATION_STATUSES = ("COMPLETED", "FAILED", "TERMINATED")
_NAME_RE = re.compile(r"^[A-Za-z0-9_<>{}#\s-]+$")


class ValidatedDefinitions:
    """Workflow definitions already validated, remembered by content (the last ``size``).

    A running system starts the same few definitions over and over, and validating one costs
    more than deciding; each process that validates keeps one of these.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._valid: OrderedDict[bytes, JSON] = OrderedDict()

    def workflow_def(
        self,
        definition: Mapping[str, Any],
        *,
        owner_email_mandatory: bool = False,
        name_validation: bool = False,
        extra_names: Iterable[str] = (),
    ) -> JSON:
        """:func:`validate_workflow_def`, answered from memory for a definition seen before.
        The result is a fresh copy either way."""
        names = tuple(sorted(extra_names))
        try:
            key = msgpack.packb(
                [definition, owner_email_mandatory, name_validation, names], use_bin_type=True
            )
        except (TypeError, ValueError, OverflowError):
            key = None
        if key is not None and key in self._valid:
            self._valid.move_to_end(key)
            return clone(self._valid[key])
        result = validate_workflow_def(
            definition,
            owner_email_mandatory=owner_email_mandatory,
            name_validation=name_validation,
            extra_names=names,
        )
        if key is not None:
            self._valid[key] = clone(result)
            if len(self._valid) > self._size:
                self._valid.popitem(last=False)
        return result


def validate_workflow_def(
    definition: Mapping[str, Any],
    *,
    owner_email_mandatory: bool = False,
    name_validation: bool = False,
    extra_names: Iterable[str] = (),
) -> JSON:
    """Validate a WorkflowDef and return it normalized (defaults filled in), a fresh copy.

    ``extra_names`` are system names (environment values) an input expression may start with.
    Raises :class:`ValidationError` listing every broken rule.
    """
    return _validate_workflow_def(
        definition,
        owner_email_mandatory=owner_email_mandatory,
        name_validation=name_validation,
        extra_names=tuple(sorted(extra_names)),
    )


def _validate_workflow_def(
    definition: Mapping[str, Any],
    *,
    owner_email_mandatory: bool,
    name_validation: bool,
    extra_names: Iterable[str],
) -> JSON:
    errors: Errors = []
    if not isinstance(definition, Mapping):
        raise ValidationError.of([{"path": "workflowDef", "message": "WorkflowDef is required"}])
    raw_tasks = definition.get("tasks")
    if raw_tasks is not None and not isinstance(raw_tasks, list):
        raise ValidationError.of([{"path": "tasks", "message": "tasks must be a list"}])
    d = normalize_workflow_def(definition)
    name = d.get("name")
    if not isinstance(name, str) or not name:
        errors.append(_e("name", "WorkflowDef name cannot be null or empty"))
    elif name_validation and not _NAME_RE.match(name):
        errors.append(
            _e("name", f"Workflow name cannot contain the following set of characters: {name}")
        )
    if not d["tasks"]:
        errors.append(_e("tasks", "WorkflowTask list cannot be empty"))
    if d["schemaVersion"] != 2:
        errors.append(_e("schemaVersion", "workflowDef schemaVersion: 2 is only supported"))
    if d["timeoutPolicy"] not in _TIMEOUT_POLICIES:
        errors.append(
            _e("timeoutPolicy", _enum_msg("timeoutPolicy", d["timeoutPolicy"], _TIMEOUT_POLICIES))
        )
    if not _is_int(d["timeoutSeconds"]) or d["timeoutSeconds"] < 0:
        errors.append(_e("timeoutSeconds", "timeoutSeconds must be an integer >= 0"))
    if not _is_int(d["version"]):
        errors.append(_e("version", "version must be an integer"))
    if owner_email_mandatory and not d.get("ownerEmail"):
        errors.append(_e("ownerEmail", "ownerEmail cannot be empty"))
    for key in ("outputParameters", "variables", "inputTemplate"):
        if not isinstance(d[key], Mapping):
            errors.append(_e(key, f"{key} must be a map"))
    for i, wt in enumerate(d["tasks"]):
        _check_task(wt, f"tasks[{i}]", errors)
    if not errors:
        _check_unique_refs(d, errors)
        _check_join_refs(d, errors)
        _check_input_refs(d, set(extra_names), errors)
    if errors:
        raise ValidationError.of(errors)
    return d


def validate_task_def(task_def: Mapping[str, Any], path: str = "") -> JSON:
    """Validate a TaskDef and return it normalized; raises :class:`ValidationError`."""
    errors: Errors = []
    d = normalize_task_def(task_def) if isinstance(task_def, Mapping) else {}
    _check_task_def(d, path, errors)
    if errors:
        raise ValidationError.of(errors)
    return d


def _e(path: str, message: str) -> dict[str, str]:
    return {"path": path, "message": message}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _enum_msg(field: str, value: Any, allowed: tuple[str, ...]) -> str:
    return f"{field}: {value} is not a valid value; allowed: {', '.join(allowed)}"


def _check_task_def(d: JSON, path: str, errors: Errors) -> None:
    p = f"{path}." if path else ""
    name = d.get("name")
    if not isinstance(name, str) or not name:
        errors.append(_e(f"{p}name", "TaskDef name cannot be null or empty"))
    ints = (
        "retryCount", "retryDelaySeconds", "timeoutSeconds", "responseTimeoutSeconds",
        "backoffScaleFactor", "maxRetryDelaySeconds", "backoffJitterMs", "totalTimeoutSeconds",
        "rateLimitPerFrequency", "rateLimitFrequencyInSeconds",
    )  # fmt: skip
    bad = [k for k in ints if not _is_int(d.get(k))]
    for k in ("pollTimeoutSeconds", "concurrentExecLimit"):
        if d.get(k) is not None and not _is_int(d.get(k)):
            bad.append(k)
    for k in bad:
        errors.append(_e(f"{p}{k}", f"TaskDef {k}: {d.get(k)} must be an integer"))
    if bad:
        return
    if d["retryCount"] < 0:
        errors.append(_e(f"{p}retryCount", f"TaskDef retryCount: {d['retryCount']} must be >= 0"))
    rt, to, total = d["responseTimeoutSeconds"], d["timeoutSeconds"], d["totalTimeoutSeconds"]
    if rt < 1:
        errors.append(
            _e(
                f"{p}responseTimeoutSeconds",
                f"TaskDef responseTimeoutSeconds: {rt} should be minimum 1 second",
            )
        )
    if to > 0 and rt > to:
        errors.append(
            _e(
                f"{p}responseTimeoutSeconds",
                f"TaskDef: {name} responseTimeoutSeconds: {rt} must be less than timeoutSeconds: "
                f"{to}",
            )
        )
    if total < 0:
        errors.append(
            _e(f"{p}totalTimeoutSeconds", f"TaskDef totalTimeoutSeconds: {total} must be >= 0")
        )
    if total > 0 and to > total:
        errors.append(
            _e(
                f"{p}timeoutSeconds",
                f"TaskDef: {name} timeoutSeconds: {to} must be less than or equal to "
                f"totalTimeoutSeconds: {total}",
            )
        )
    if d["backoffScaleFactor"] < 1:
        errors.append(
            _e(
                f"{p}backoffScaleFactor",
                f"TaskDef backoffScaleFactor: {d['backoffScaleFactor']} must be >= 1",
            )
        )
    for k in ("maxRetryDelaySeconds", "backoffJitterMs", "retryDelaySeconds", "timeoutSeconds"):
        if d[k] < 0:
            errors.append(_e(f"{p}{k}", f"TaskDef {k}: {d[k]} must be >= 0"))
    if d.get("pollTimeoutSeconds") is not None and d["pollTimeoutSeconds"] < 0:
        errors.append(
            _e(
                f"{p}pollTimeoutSeconds",
                f"TaskDef pollTimeoutSeconds: {d['pollTimeoutSeconds']} must be >= 0",
            )
        )
    if d["retryLogic"] not in _RETRY_LOGICS:
        errors.append(_e(f"{p}retryLogic", _enum_msg("retryLogic", d["retryLogic"], _RETRY_LOGICS)))
    if d["timeoutPolicy"] not in _TASK_TIMEOUT_POLICIES:
        errors.append(
            _e(
                f"{p}timeoutPolicy",
                _enum_msg("timeoutPolicy", d["timeoutPolicy"], _TASK_TIMEOUT_POLICIES),
            )
        )


def _check_task(wt: JSON, path: str, errors: Errors) -> None:
    name = wt.get("name")
    if not isinstance(name, str) or not name:
        errors.append(_e(f"{path}.name", "WorkflowTask name cannot be empty or null"))
    ref = wt.get("taskReferenceName")
    if not isinstance(ref, str) or not ref:
        errors.append(
            _e(
                f"{path}.taskReferenceName",
                "WorkflowTask taskReferenceName name cannot be empty or null",
            )
        )
    t = wt.get("type")
    if not isinstance(t, str) or not t:
        errors.append(_e(f"{path}.type", "WorkflowTask type cannot be empty"))
        return
    if not _is_int(wt["startDelay"]) or wt["startDelay"] < 0:
        errors.append(_e(f"{path}.startDelay", "startDelay: must be greater than or equal to 0"))
    if not isinstance(wt["inputParameters"], Mapping):
        errors.append(_e(f"{path}.inputParameters", "inputParameters must be a map"))
        return
    retry_count = wt.get("retryCount")
    if retry_count is not None and (not _is_int(retry_count) or retry_count < 0):
        errors.append(_e(f"{path}.retryCount", "retryCount: must be greater than or equal to 0"))
    if isinstance(wt.get("taskDefinition"), Mapping):
        _check_task_def(wt["taskDefinition"], f"{path}.taskDefinition", errors)
    if t in UNSUPPORTED_TYPES:
        return  # stored as Conductor does; the task fails when it is scheduled (mapping.py)
    checker = _TYPE_CHECKS.get(TaskType(t)) if t in TaskType.__members__ else None
    if checker is not None:
        checker(wt, path, errors)
    for b, branch in enumerate(children(wt)):
        for i, child in enumerate(branch):
            _check_task(child, f"{path}.{_branch_path(wt, b)}[{i}]", errors)


def _branch_path(wt: JSON, index: int) -> str:
    t = wt["type"]
    if t == TaskType.FORK_JOIN:
        return f"forkTasks[{index}]"
    if t == TaskType.DO_WHILE:
        return "loopOver"
    keys = list(wt["decisionCases"])
    return f"decisionCases[{keys[index]}]" if index < len(keys) else "defaultCase"


def _req(wt: JSON, path: str, field: str, errors: Errors) -> bool:
    if wt.get(field) is None or wt.get(field) == "":
        msg = REQUIRED.format(field=field, type=wt["type"], name=wt.get("name"))
        errors.append(_e(f"{path}.{field}", msg))
        return False
    return True


def _check_decision(wt: JSON, path: str, errors: Errors) -> None:
    if wt.get("caseValueParam") is None and wt.get("caseExpression") is None:
        msg = REQUIRED.format(
            field="caseValueParam or caseExpression", type="DECISION", name=wt["name"]
        )
        errors.append(_e(f"{path}.caseValueParam", msg))
    _check_cases(wt, path, errors)
    expr = wt.get("caseExpression")
    if isinstance(expr, str) and expr and check_js_syntax(expr) is not None:
        errors.append(_e(f"{path}.caseExpression", f"Expression is not well formatted: {expr}"))


def _check_cases(wt: JSON, path: str, errors: Errors) -> None:
    if not wt["decisionCases"]:
        msg = (
            f"decisionCases should have atleast one task for taskType: {wt['type']} taskName: "
            f"{wt['name']}"
        )
        errors.append(_e(f"{path}.decisionCases", msg))


def _check_switch(wt: JSON, path: str, errors: Errors) -> None:
    if (
        _req(wt, path, "evaluatorType", errors)
        and _req(wt, path, "expression", errors)
        and wt["evaluatorType"] in ("javascript", "graaljs")
    ):
        problem = check_js_syntax(str(wt["expression"]))
        if problem is not None:
            errors.append(_e(f"{path}.expression", f"Expression is not well formatted: {problem}"))
    _check_cases(wt, path, errors)


def _check_do_while(wt: JSON, path: str, errors: Errors) -> None:
    if wt.get("items") is None and "_items" not in wt["inputParameters"]:
        _req(wt, path, "loopCondition", errors)
    if not wt["loopOver"]:
        errors.append(
            _e(
                f"{path}.loopOver",
                REQUIRED.format(field="loopOver", type="DO_WHILE", name=wt["name"]),
            )
        )
    for inner in iter_tasks(wt["loopOver"]):
        if inner["type"] == TaskType.DO_WHILE:
            errors.append(
                _e(
                    f"{path}.loopOver",
                    f"Nested DO_WHILE task {inner.get('taskReferenceName')} is not supported "
                    f"inside DO_WHILE taskName: {wt['name']}",
                )
            )


def _check_dynamic_fork(wt: JSON, path: str, errors: Errors) -> None:
    if "forkTaskInputs" in wt["inputParameters"]:
        return
    legacy = wt.get("dynamicForkJoinTasksParam")
    tasks_param, input_param = (
        wt.get("dynamicForkTasksParam"),
        wt.get("dynamicForkTasksInputParamName"),
    )
    if legacy is not None and (tasks_param is not None or input_param is not None):
        msg = (
            f"dynamicForkJoinTasksParam or combination of dynamicForkTasksInputParamName and "
            f"dynamicForkTasksParam cam be used for taskType: FORK_JOIN_DYNAMIC taskName: "
            f"{wt['name']}"
        )
        errors.append(_e(f"{path}.dynamicForkJoinTasksParam", msg))
    elif legacy is None:
        _req(wt, path, "dynamicForkTasksParam", errors)
        _req(wt, path, "dynamicForkTasksInputParamName", errors)


def _template(wt: JSON) -> Mapping[str, Any]:
    td = wt.get("taskDefinition")
    return (td.get("inputTemplate") or {}) if isinstance(td, Mapping) else {}


def _check_http(wt: JSON, path: str, errors: Errors) -> None:
    ip = wt["inputParameters"]
    if "http_request" in ip or "uri" in ip or "method" in ip or "http_request" in _template(wt):
        return
    msg = REQUIRED.format(field="inputParameters.http_request", type="HTTP", name=wt["name"])
    errors.append(_e(f"{path}.inputParameters", msg))


def _check_fork(wt: JSON, path: str, errors: Errors) -> None:
    if not wt["forkTasks"] or not any(wt["forkTasks"]):
        msg = (
            f"forkTasks should have atleast one task for taskType: FORK_JOIN taskName: {wt['name']}"
        )
        errors.append(_e(f"{path}.forkTasks", msg))


def _check_terminate(wt: JSON, path: str, errors: Errors) -> None:
    if wt["optional"]:
        errors.append(
            _e(f"{path}.optional", f"terminate task cannot be optional, taskName: {wt['name']}")
        )
    status = wt["inputParameters"].get("terminationStatus")
    if status is None:
        msg = REQUIRED.format(field="terminationStatus", type="TERMINATE", name=wt["name"])
        errors.append(_e(f"{path}.inputParameters.terminationStatus", msg))
    elif status not in _TERMINATION_STATUSES:
        msg = (
            f"terminationStatus field for TERMINATE task: {wt['name']} should be one of COMPLETED, "
            f"FAILED, TERMINATED, found: {status}"
        )
        errors.append(_e(f"{path}.inputParameters.terminationStatus", msg))


def _check_sub_workflow(wt: JSON, path: str, errors: Errors) -> None:
    if not _req(wt, path, "subWorkflowParam", errors):
        return
    params = wt["subWorkflowParam"]
    if not isinstance(params, Mapping):
        errors.append(_e(f"{path}.subWorkflowParam", "subWorkflowParam must be an object"))
    elif not params.get("name") and params.get("workflowDefinition") is None:
        errors.append(
            _e(f"{path}.subWorkflowParam.name", "SubWorkflowParams name cannot be null or empty")
        )


def _check_jq(wt: JSON, path: str, errors: Errors) -> None:
    query = wt["inputParameters"].get("queryExpression", _template(wt).get("queryExpression"))
    if query is None:
        msg = REQUIRED.format(field="queryExpression", type="JSON_JQ_TRANSFORM", name=wt["name"])
        errors.append(_e(f"{path}.inputParameters.queryExpression", msg))
    elif isinstance(query, str) and "${" not in query:
        problem = check_jq_syntax(query)
        if problem is not None:
            errors.append(
                _e(
                    f"{path}.inputParameters.queryExpression",
                    f"queryExpression is not valid jq: {problem}",
                )
            )


def _check_wait(wt: JSON, path: str, errors: Errors) -> None:
    ip = wt["inputParameters"]
    duration, until = ip.get("duration"), ip.get("until")
    if _not_blank(duration) and _not_blank(until):
        errors.append(
            _e(
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
            _e(f"{path}.inputParameters.duration", f"Unable to parse duration {duration}")
        )
    if (
        isinstance(until, str)
        and _not_blank(until)
        and "${" not in until
        and parse_until(until) is None
    ):
        errors.append(_e(f"{path}.inputParameters.until", f"Unable to parse date {until}"))


def _not_blank(v: Any) -> bool:
    return v is not None and str(v).strip() != ""


_TYPE_CHECKS = {
    TaskType.DECISION: _check_decision,
    TaskType.SWITCH: _check_switch,
    TaskType.DO_WHILE: _check_do_while,
    TaskType.DYNAMIC: lambda wt, p, e: _req(wt, p, "dynamicTaskNameParam", e) and None,
    TaskType.FORK_JOIN_DYNAMIC: _check_dynamic_fork,
    TaskType.HTTP: _check_http,
    TaskType.FORK_JOIN: _check_fork,
    TaskType.TERMINATE: _check_terminate,
    TaskType.SUB_WORKFLOW: _check_sub_workflow,
    TaskType.JSON_JQ_TRANSFORM: _check_jq,
    TaskType.WAIT: _check_wait,
}


def _check_unique_refs(d: JSON, errors: Errors) -> None:
    seen: set[str] = set()
    for wt in iter_tasks(d["tasks"]):
        ref = wt["taskReferenceName"]
        if ref in seen:
            msg = (
                f"taskReferenceName: {ref} should be unique across tasks for a given "
                f"workflowDefinition: {d.get('name')}"
            )
            errors.append(_e("tasks", msg))
        seen.add(ref)


def _with_paths(tasks: list[JSON], prefix: str) -> Iterable[tuple[str, JSON]]:
    """Every WorkflowTask with its path, nested ones included (as :func:`_check_task` names
    them)."""
    for i, wt in enumerate(tasks):
        path = f"{prefix}[{i}]"
        yield path, wt
        for b, branch in enumerate(children(wt)):
            yield from _with_paths(branch, f"{path}.{_branch_path(wt, b)}")


def _check_join_refs(d: JSON, errors: Errors) -> None:
    """A JOIN waiting on a reference name no task has would wait forever."""
    refs = {wt["taskReferenceName"] for wt in iter_tasks(d["tasks"])}
    for path, wt in _with_paths(d["tasks"], "tasks"):
        if wt["type"] not in (TaskType.JOIN, TaskType.EXCLUSIVE_JOIN):
            continue
        join_on = wt.get("joinOn") or []
        if not isinstance(join_on, list):
            errors.append(_e(f"{path}.joinOn", "joinOn must be a list of taskReferenceNames"))
            continue
        for ref in join_on:
            if ref not in refs:
                errors.append(
                    _e(
                        f"{path}.joinOn",
                        f"joinOn: {ref} of {wt['type']} task {wt['taskReferenceName']} is not a "
                        f"taskReferenceName in workflow definition: {d.get('name')}",
                    )
                )


def _check_input_refs(d: JSON, extra: set[str], errors: Errors) -> None:
    """Top-level tasks: every ``${...}`` must compile and start with a known name."""
    refs = {wt["taskReferenceName"] for wt in iter_tasks(d["tasks"])}
    known = refs | _SYSTEM_NAMES | extra
    for i, wt in enumerate(d["tasks"]):
        for key, value in wt["inputParameters"].items():
            for path in expressions_in(value):
                if "${" in path:
                    continue  # nested expressions are only known at run time
                if not validate_expression_path(path):
                    errors.append(
                        _e(
                            f"tasks[{i}].inputParameters.{key}",
                            f"key: {key} input parameter value: {path} is not valid",
                        )
                    )
                    continue
                head = re.split(r"[.\[]", path.strip().removeprefix("$."), maxsplit=1)[0]
                if head and head not in known:
                    msg = (
                        f"taskReferenceName: {wt['taskReferenceName']} "
                        f"for given task: {wt['name']} "
                        f"input value: {key} of input parameter: ${{{path}}} is not defined in "
                        f"workflow definition."
                    )
                    errors.append(_e(f"tasks[{i}].inputParameters.{key}", msg))
