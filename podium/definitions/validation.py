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
from podium.definitions.task_checks import (
    Errors,
    branch_path,
    check_task,
    check_task_def,
    enum_message,
    error,
    is_int,
)
from podium.definitions.task_types import TaskType
from podium.errors import ValidationError
from podium.types import JSON

_SYSTEM_NAMES = frozenset({"workflow", "CPEWF_TASK_ID", "NETFLIX_ENV", "NETFLIX_STACK"})
_TIMEOUT_POLICIES = ("TIME_OUT_WF", "ALERT_ONLY")
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
        errors.append(error("name", "WorkflowDef name cannot be null or empty"))
    elif name_validation and not _NAME_RE.match(name):
        errors.append(
            error("name", f"Workflow name cannot contain the following set of characters: {name}")
        )
    if not d["tasks"]:
        errors.append(error("tasks", "WorkflowTask list cannot be empty"))
    if d["schemaVersion"] != 2:
        errors.append(error("schemaVersion", "workflowDef schemaVersion: 2 is only supported"))
    if d["timeoutPolicy"] not in _TIMEOUT_POLICIES:
        errors.append(
            error(
                "timeoutPolicy",
                enum_message("timeoutPolicy", d["timeoutPolicy"], _TIMEOUT_POLICIES),
            )
        )
    if not is_int(d["timeoutSeconds"]) or d["timeoutSeconds"] < 0:
        errors.append(error("timeoutSeconds", "timeoutSeconds must be an integer >= 0"))
    if not is_int(d["version"]):
        errors.append(error("version", "version must be an integer"))
    if owner_email_mandatory and not d.get("ownerEmail"):
        errors.append(error("ownerEmail", "ownerEmail cannot be empty"))
    for key in ("outputParameters", "variables", "inputTemplate"):
        if not isinstance(d[key], Mapping):
            errors.append(error(key, f"{key} must be a map"))
    for i, workflow_task in enumerate(d["tasks"]):
        check_task(workflow_task, f"tasks[{i}]", errors)
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
    check_task_def(d, path, errors)
    if errors:
        raise ValidationError.of(errors)
    return d


def _check_unique_refs(d: JSON, errors: Errors) -> None:
    seen: set[str] = set()
    for workflow_task in iter_tasks(d["tasks"]):
        ref = workflow_task["taskReferenceName"]
        if ref in seen:
            msg = (
                f"taskReferenceName: {ref} should be unique across tasks for a given "
                f"workflowDefinition: {d.get('name')}"
            )
            errors.append(error("tasks", msg))
        seen.add(ref)


def _with_paths(tasks: list[JSON], prefix: str) -> Iterable[tuple[str, JSON]]:
    """Every WorkflowTask with its path, nested ones included (the paths
    :func:`~podium.definitions.task_checks.check_task` names)."""
    for i, workflow_task in enumerate(tasks):
        path = f"{prefix}[{i}]"
        yield path, workflow_task
        for b, branch in enumerate(children(workflow_task)):
            yield from _with_paths(branch, f"{path}.{branch_path(workflow_task, b)}")


def _check_join_refs(d: JSON, errors: Errors) -> None:
    """A JOIN waiting on a reference name no task has would wait forever."""
    refs = {workflow_task["taskReferenceName"] for workflow_task in iter_tasks(d["tasks"])}
    for path, workflow_task in _with_paths(d["tasks"], "tasks"):
        if workflow_task["type"] not in (TaskType.JOIN, TaskType.EXCLUSIVE_JOIN):
            continue
        join_on = workflow_task.get("joinOn") or []
        if not isinstance(join_on, list):
            errors.append(error(f"{path}.joinOn", "joinOn must be a list of taskReferenceNames"))
            continue
        for ref in join_on:
            if ref not in refs:
                errors.append(
                    error(
                        f"{path}.joinOn",
                        f"joinOn: {ref} of {workflow_task['type']} task "
                        f"{workflow_task['taskReferenceName']} is not a taskReferenceName in "
                        f"workflow definition: {d.get('name')}",
                    )
                )


def _check_input_refs(d: JSON, extra: set[str], errors: Errors) -> None:
    """Top-level tasks: every ``${...}`` must compile and start with a known name."""
    refs = {workflow_task["taskReferenceName"] for workflow_task in iter_tasks(d["tasks"])}
    known = refs | _SYSTEM_NAMES | extra
    for i, workflow_task in enumerate(d["tasks"]):
        for key, value in workflow_task["inputParameters"].items():
            for path in expressions_in(value):
                if "${" in path:
                    continue  # nested expressions are only known at run time
                if not validate_expression_path(path):
                    errors.append(
                        error(
                            f"tasks[{i}].inputParameters.{key}",
                            f"key: {key} input parameter value: {path} is not valid",
                        )
                    )
                    continue
                head = re.split(r"[.\[]", path.strip().removeprefix("$."), maxsplit=1)[0]
                if head and head not in known:
                    msg = (
                        f"taskReferenceName: {workflow_task['taskReferenceName']} "
                        f"for given task: {workflow_task['name']} "
                        f"input value: {key} of input parameter: ${{{path}}} is not defined in "
                        f"workflow definition."
                    )
                    errors.append(error(f"tasks[{i}].inputParameters.{key}", msg))
