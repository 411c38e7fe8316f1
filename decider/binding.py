"""Parameter binding: Conductor's ``${...}`` expressions (``ParametersUtils``).

The document an expression is read from::

    {"workflow": {input, output, status, workflowId, parentWorkflowId, parentWorkflowTaskId,
                  workflowType, version, correlationId, reasonForIncompletion, schemaVersion,
                  variables},
     "<ref>": {input, output, taskType, status, referenceTaskName, retryCount, ...}}

The last task with a reference name wins (the latest retry); loop-body tasks are keyed by their
reference name without the ``__N`` suffix, so the latest iteration wins. Paths are JSONPath
(python-jsonpath, root-less as in Jayway); a missing path reads as null. A string that is
exactly one expression keeps the value's type; otherwise values are interpolated with Java's
``toString`` formatting. ``$${`` escapes an expression.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import jsonpath

from decider.definition_tree import strip_iteration
from podium.clone import clone
from podium.definitions.expressions import SIMPLE_PATH, JsonPaths, find_expressions

_KEEP = object()  # sentinel: leave the expression text in place
_SEGMENT = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")
_TASK_FIELDS = (
    "taskType",
    "status",
    "referenceTaskName",
    "retryCount",
    "correlationId",
    "pollCount",
    "taskDefName",
    "scheduledTime",
    "startTime",
    "endTime",
    "workflowInstanceId",
    "taskId",
    "reasonForIncompletion",
    "callbackAfterSeconds",
    "workerId",
    "iteration",
)


def java_str(value: Any) -> str:
    """``Objects.toString`` as Java prints JSON values (``{a=1}``, ``[1, 2]``, ``1.0``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{java_str(k)}={java_str(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(java_str(v) for v in value) + "]"
    return str(value)


def _java_double(d: float) -> str:
    if d != d:
        return "NaN"
    if d in (float("inf"), float("-inf")):
        return "Infinity" if d > 0 else "-Infinity"
    if d == 0 or 1e-3 <= abs(d) < 1e7:
        return repr(d)
    sign, digits, exp = Decimal(repr(d)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    e = len("".join(map(str, digits))) - 1 + int(exp)
    return f"{'-' if sign else ''}{ds[0]}.{ds[1:] or '0'}E{e}"


class Document:
    """The resolution document of one workflow, built lazily per top-level key."""

    def __init__(self, workflow: Mapping[str, Any]) -> None:
        self._wf = workflow
        self._by_ref: dict[str, Mapping[str, Any]] = {}
        for task in workflow.get("tasks", []):
            ref = task["referenceTaskName"]
            if task.get("iteration", 0) > 0:
                ref = strip_iteration(ref)
            self._by_ref[ref] = task

    def get(self, key: str) -> Any:
        if key == "workflow":
            return self._workflow_view()
        task = self._by_ref.get(key)
        return None if task is None else _task_view(task)

    def materialize(self) -> dict[str, Any]:
        doc: dict[str, Any] = {ref: _task_view(t) for ref, t in self._by_ref.items()}
        doc["workflow"] = self._workflow_view()
        return doc

    def _workflow_view(self) -> dict[str, Any]:
        wf = self._wf
        wf_def = wf.get("workflowDefinition") or {}
        return {
            "input": wf.get("input", {}),
            "output": wf.get("output", {}),
            "status": wf.get("status"),
            "workflowId": wf.get("workflowId"),
            "parentWorkflowId": wf.get("parentWorkflowId"),
            "parentWorkflowTaskId": wf.get("parentWorkflowTaskId"),
            "workflowType": wf.get("workflowName", wf_def.get("name")),
            "version": wf.get("workflowVersion", wf_def.get("version")),
            "correlationId": wf.get("correlationId"),
            "reasonForIncompletion": wf.get("reasonForIncompletion"),
            "schemaVersion": wf_def.get("schemaVersion", 2),
            "variables": wf.get("variables", {}),
        }


def _task_view(task: Mapping[str, Any]) -> dict[str, Any]:
    view = {f: task.get(f) for f in _TASK_FIELDS}
    view["input"] = task.get("inputData", {})
    view["output"] = task.get("outputData", {})
    return view


class Resolver:
    """Resolves expressions against one workflow; ``env`` holds extra system names."""

    def __init__(
        self,
        workflow: Mapping[str, Any],
        task_id: str | None = None,
        env: Mapping[str, str] | None = None,
        paths: JsonPaths | None = None,
    ) -> None:
        self.doc = Document(workflow)
        self.task_id = task_id
        self.env = env or {}
        self._paths = paths or JsonPaths(1)
        self._full: dict[str, Any] | None = None

    def resolve(self, value: Any) -> Any:
        """Resolve every string inside ``value`` (maps and lists recursively; keys never)."""
        if isinstance(value, str):
            return self.resolve_string(value)
        if isinstance(value, Mapping):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def resolve_string(self, text: str, depth: int = 0) -> Any:
        spans = find_expressions(text)
        if not spans:
            return text.replace("$${", "${")
        parts: list[str] = []
        last = 0
        for start, end in spans:
            path = str(self.resolve_string(text[start + 2 : end - 1], depth + 1))
            value = self.read(path)
            if value is _KEEP:
                piece = text[start:end]
            elif depth == 0 and start == 0 and end == len(text):
                return clone(value)
            else:
                piece = java_str(value)
            parts.append(text[last:start])
            parts.append(piece)
            last = end
        parts.append(text[last:])
        return "".join(parts).replace("$${", "${")

    def read(self, path: str) -> Any:
        """The value at one expression path (no ``${}``), or ``_KEEP`` for literal names."""
        path = path.strip()
        if not path:
            return ""
        if path.startswith("workflow.secrets."):
            return _KEEP  # substituted only in the copy handed to a worker
        if path == "CPEWF_TASK_ID":
            return self.task_id if self.task_id is not None else _KEEP
        if path in self.env:
            return self.env[path]
        if path in ("NETFLIX_ENV", "NETFLIX_STACK"):
            return _KEEP
        if path.endswith((".length()", ".size()")):
            base = self.read(path[: path.rindex(".")])
            return len(base) if isinstance(base, list | dict | str) else None
        if SIMPLE_PATH.match(path):
            return self._walk(path)
        return self._jsonpath(path)

    def _walk(self, path: str) -> Any:
        segments = _SEGMENT.findall(path)
        value: Any = self.doc.get(segments[0][0])
        for name, index in segments[1:]:
            if value is None:
                return None
            if index:
                if not isinstance(value, list):
                    return None
                i = int(index)
                value = value[i] if -len(value) <= i < len(value) else None
            elif isinstance(value, Mapping):
                value = value.get(name)
            else:
                return None
        return value

    def _jsonpath(self, path: str) -> Any:
        expr = path if path.startswith("$") else "$." + path
        try:
            compiled = self._paths.compile(expr)
        except jsonpath.JSONPathError:
            return None
        if self._full is None:
            self._full = self.doc.materialize()
        try:
            found = compiled.findall(self._full)
        except jsonpath.JSONPathError:
            return None
        if compiled.singular_query():
            return found[0] if found else None
        return found


def resolve_params(
    params: Mapping[str, Any] | None,
    workflow: Mapping[str, Any],
    task_id: str | None = None,
    task_def: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    paths: JsonPaths | None = None,
) -> dict[str, Any]:
    """Resolve a task's ``inputParameters`` (``getTaskInputV2``), with the TaskDef template.

    ``paths`` remembers compiled JSONPath expressions (``Context.paths`` while deciding).

    Template keys missing from ``params`` are added before resolution; keys that resolve to
    null fall back to the template's raw value afterwards.
    """
    template: Mapping[str, Any] = (task_def or {}).get("inputTemplate") or {}
    inp: dict[str, Any] = clone(dict(params or {}))
    for key, value in template.items():
        inp.setdefault(key, clone(value))
    resolved: dict[str, Any] = Resolver(workflow, task_id, env, paths).resolve(inp)
    for key, value in template.items():
        if resolved.get(key) is None:
            resolved[key] = clone(value)
    return resolved
