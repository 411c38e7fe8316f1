"""The OpenAPI 3.0 document, built from the same Endpoint list as the routes.

Object schemas name the fields the gateway guarantees (their types and Conductor's enums) and
leave the rest open: Conductor objects carry many optional fields, and clients ignore the ones
they do not know. Every operation lists the statuses it can answer with; errors use the
``ErrorResponse`` envelope. Every operation states the roles that may call it
(``x-podium-roles`` and its description), from :mod:`api_gateway.access`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from api_gateway.access import rule_for
from api_gateway.auth import PUBLIC_PATHS
from api_gateway.routing import Endpoint, Param
from api_gateway.settings import Limits
from podium.types import JSON

WORKFLOW_STATUSES = ["RUNNING", "COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED", "PAUSED"]
TASK_STATUSES = [
    "IN_PROGRESS", "CANCELED", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "COMPLETED",
    "COMPLETED_WITH_ERRORS", "SCHEDULED", "TIMED_OUT", "SKIPPED",
]  # fmt: skip
_S: JSON = {"type": "string"}
_I: JSON = {"type": "integer", "format": "int64"}
_B: JSON = {"type": "boolean"}
_O: JSON = {"type": "object"}
_SA: JSON = {"type": "array", "items": {"type": "string"}}


def _obj(required: Sequence[str] = (), **props: Any) -> JSON:
    out: JSON = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def _search(item: str) -> JSON:
    return _obj(["totalHits", "results"], totalHits=_I, results={"type": "array", "items": item})


SCHEMAS: dict[str, JSON] = {
    "ErrorResponse": _obj(
        ["status", "message"],
        status={"type": "integer"}, message=_S, instance=_S, retryable=_B, error=_S,
        validationErrors={"type": "array", "items": _obj(path=_S, message=_S)},
    ),
    "Health": _obj(["healthy"], healthy=_B),
    "TokenRequest": _obj(["keyId", "keySecret"], keyId=_S, keySecret=_S),
    "Token": _obj(["token"], token=_S),
    "TaskDef": _obj(
        ["name"],
        name={"type": "string", "minLength": 1}, description=_S, retryCount=_I,
        timeoutSeconds=_I, responseTimeoutSeconds=_I, retryDelaySeconds=_I,
        timeoutPolicy={"type": "string", "enum": ["RETRY", "TIME_OUT_WF", "ALERT_ONLY"]},
        retryLogic={"type": "string",
                    "enum": ["FIXED", "EXPONENTIAL_BACKOFF", "LINEAR_BACKOFF"]},
        concurrentExecLimit=_I, rateLimitPerFrequency=_I, rateLimitFrequencyInSeconds=_I,
        inputKeys=_SA, outputKeys=_SA, ownerEmail=_S, createTime=_I, updateTime=_I,
    ),
    "WorkflowTask": _obj(
        ["name", "taskReferenceName"],
        name=_S, taskReferenceName=_S, type=_S, inputParameters=_O, optional=_B,
    ),
    "WorkflowDef": _obj(
        ["name", "tasks"],
        name={"type": "string", "minLength": 1}, description=_S, version=_I,
        tasks={"type": "array", "items": "#WorkflowTask"}, inputParameters=_SA,
        outputParameters=_O, schemaVersion=_I, restartable=_B, ownerEmail=_S,
        timeoutPolicy={"type": "string", "enum": ["TIME_OUT_WF", "ALERT_ONLY"]},
        timeoutSeconds=_I, variables=_O, inputTemplate=_O, failureWorkflow=_S,
        createTime=_I, updateTime=_I,
    ),
    "WorkflowDefSummary": _obj(["name", "version"], name=_S, version=_I, createTime=_I,
                               updateTime=_I),
    "Task": _obj(
        ["taskId", "status"],
        taskId=_S, taskType=_S, taskDefName=_S, referenceTaskName=_S,
        status={"type": "string", "enum": TASK_STATUSES}, inputData=_O, outputData=_O,
        workflowInstanceId=_S, workflowType=_S, retryCount=_I, pollCount=_I, seq=_I,
        scheduledTime=_I, startTime=_I, endTime=_I, updateTime=_I, workerId=_S,
        callbackAfterSeconds=_I, responseTimeoutSeconds=_I, workflowTask=_O, domain=_S,
    ),
    "TaskResult": _obj(
        ["workflowInstanceId", "taskId"],
        workflowInstanceId=_S, taskId=_S, reasonForIncompletion=_S, callbackAfterSeconds=_I,
        workerId=_S, outputData=_O, extendLease=_B,
        status={"type": "string", "enum": ["IN_PROGRESS", "FAILED",
                                           "FAILED_WITH_TERMINAL_ERROR", "COMPLETED"]},
        logs={"type": "array", "items": "#TaskExecLog"},
    ),
    "TaskExecLog": _obj(["log"], log=_S, taskId=_S, createdTime=_I),
    "Workflow": _obj(
        ["workflowId", "status"],
        workflowId=_S, workflowName=_S, workflowVersion=_I, correlationId=_S,
        status={"type": "string", "enum": WORKFLOW_STATUSES}, input=_O, output=_O,
        variables=_O, tasks={"type": "array", "items": "#Task"}, createTime=_I,
        startTime=_I, endTime=_I, updateTime=_I, priority=_I, reasonForIncompletion=_S,
        workflowDefinition=_O, taskToDomain=_O, parentWorkflowId=_S,
    ),
    "WorkflowStatus": _obj(
        ["workflowId", "status"], workflowId=_S, correlationId=_S, output=_O, variables=_O,
        status={"type": "string", "enum": WORKFLOW_STATUSES},
    ),
    "WorkflowSummary": _obj(
        ["workflowId"], workflowId=_S, workflowType=_S, version=_I, correlationId=_S,
        startTime=_S, updateTime=_S, endTime=_S, input=_S, output=_S, executionTime=_I,
        status={"type": "string", "enum": WORKFLOW_STATUSES}, priority=_I,
    ),
    "TaskSummary": _obj(
        ["taskId"], taskId=_S, workflowId=_S, workflowType=_S, taskType=_S, taskDefName=_S,
        scheduledTime=_S, startTime=_S, endTime=_S, executionTime=_I, queueWaitTime=_I,
        status={"type": "string", "enum": TASK_STATUSES},
    ),
    "StartWorkflowRequest": _obj(
        ["name"],
        name={"type": "string", "minLength": 1}, version=_I, correlationId=_S, input=_O,
        taskToDomain={"type": "object", "additionalProperties": _S},
        priority={"type": "integer", "minimum": 0, "maximum": 99},
        workflowDef="#WorkflowDef", idempotencyKey=_S,
        idempotencyStrategy={"type": "string",
                             "enum": ["FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"]},
    ),
    "WorkflowTestRequest": _obj(
        name=_S, version=_I, correlationId=_S, input=_O,
        taskToDomain={"type": "object", "additionalProperties": _S},
        priority={"type": "integer", "minimum": 0, "maximum": 99},
        workflowDef="#WorkflowDef",
        taskRefToMockOutput={"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "object", "properties": {
                "status": {"type": "string", "enum": ["COMPLETED", "FAILED",
                                                      "FAILED_WITH_TERMINAL_ERROR"]},
                "output": _O}}}},
    ),
    "RerunWorkflowRequest": _obj(
        reRunFromWorkflowId=_S, reRunFromTaskId=_S, workflowInput=_O, taskInput=_O,
        correlationId=_S,
    ),
    "SkipTaskRequest": _obj(taskInput=_O, taskOutput=_O),
    "SignalResponse": _obj(
        ["responseType", "signalTimeout"],
        responseType=_S, targetWorkflowId=_S, targetWorkflowStatus=_S, requestId=_S,
        workflowId=_S, correlationId=_S, input=_O, output=_O, signalTimeout=_B, status=_S,
        tasks={"type": "array", "items": "#Task"}, taskId=_S, taskType=_S,
    ),
    "BulkResponse": _obj(
        ["bulkErrorResults", "bulkSuccessfulResults"],
        bulkErrorResults={"type": "object", "additionalProperties": _S},
        bulkSuccessfulResults={"type": "array"}, message=_S,
    ),
    "PollData": _obj(["queueName"], queueName=_S, domain=_S, workerId=_S, lastPollTime=_I),
    "EventHandler": _obj(
        ["name", "event", "actions"],
        name={"type": "string", "minLength": 1}, event={"type": "string", "minLength": 1},
        condition=_S, active=_B, evaluatorType=_S,
        actions={"type": "array", "minItems": 1,
                 "items": _obj(["action"], action=_S, expandInlineJSON=_B)},
    ),
    "SearchResultTask": _search("#Task"),
    "SearchResultTaskSummary": _search("#TaskSummary"),
    "SearchResultWorkflow": _search("#Workflow"),
    "SearchResultWorkflowSummary": _search("#WorkflowSummary"),
}  # fmt: skip

_ERROR_TEXT = {
    400: "Invalid request (validation errors listed)",
    401: "Missing, invalid or expired token",
    403: "The key's role (or, for a worker key, its task types) does not allow this",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Request body too large",
    500: "Operation not allowed in the current state, or an internal error",
    503: "A service the gateway depends on is unavailable (retryable)",
}


def _ref(schema: Any) -> Any:
    """Turn ``"#Name"`` shorthands into ``$ref`` objects, recursively."""
    if isinstance(schema, str) and schema.startswith("#"):
        return {"$ref": f"#/components/schemas/{schema[1:]}"}
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key in ("items", "additionalProperties"):
                out[key] = _ref(value)
            elif key == "properties":
                out[key] = {k: _ref(v) for k, v in value.items()}
            else:
                out[key] = value
        return out
    return schema


def _content(kind: str, schema: Any) -> JSON | None:
    if kind == "empty":
        return None
    if kind == "text":
        return {"text/plain": {"schema": {"type": "string"}}}
    return {"application/json": {"schema": _ref(schema) if schema is not None else {}}}


def _operation_id(e: Endpoint) -> str:
    if e.operation_id:
        return e.operation_id
    slug = re.sub(r"[^A-Za-z0-9]+", "_", e.openapi_path).strip("_")
    return f"{e.method.lower()}_{slug}"


def _param_schema(e: Endpoint, p: Param, limits: Limits) -> JSON:
    """The parameter's schema, with the configured limits where they apply."""
    schema = dict(p.schema)
    if e.path.startswith("/api/tasks/poll/"):
        if p.name == "timeout":
            schema["maximum"] = limits.max_poll_timeout_ms
        elif p.name == "count":
            schema["maximum"] = limits.max_poll_count
    return schema


def _operation(e: Endpoint, auth_enabled: bool, limits: Limits) -> JSON:
    rule = rule_for(e)
    op: JSON = {
        "tags": [e.tag],
        "summary": e.summary,
        "operationId": _operation_id(e),
        "description": rule.describe(),
        # Who may call it (api_gateway.access): [] for a public operation.
        "x-podium-roles": list(rule.roles),
    }
    if rule.task_types is not None:
        op["x-podium-task-type"] = rule.task_types.describe()
    if e.params:
        params = []
        for p in e.params:
            entry: JSON = {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "schema": _param_schema(e, p, limits),
            }
            if p.description:
                entry["description"] = p.description
            if p.repeat:
                entry["style"], entry["explode"] = "form", True
            params.append(entry)
        op["parameters"] = params
    if e.body is not None:
        body_content = (
            {"text/plain": {"schema": {"type": "string"}}}
            if e.body_kind == "text"
            else {"application/json": {"schema": _ref(e.body)}}
        )
        op["requestBody"] = {"required": e.body_required, "content": body_content}
    responses: JSON = {}
    for status, (kind, schema) in {e.ok: (e.ok_kind, e.ok_schema), **e.also}.items():
        entry = {"description": "OK" if status < 300 else "No content"}
        content = _content(kind, schema)
        if content is not None:
            entry["content"] = content
        responses[str(status)] = entry
    statuses = set(e.errors) | {500, 503}
    if e.params or e.body is not None:
        statuses.add(400)
    if e.body is not None:
        statuses.add(413)
    public = e.path.rstrip("/") in PUBLIC_PATHS
    if auth_enabled and not public:
        statuses.update((401, 403))
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": _ref("#ErrorResponse")}},
        }
    op["responses"] = responses
    if auth_enabled and public:
        op["security"] = []
    return op


def build(
    endpoints: Sequence[Endpoint], *, auth_enabled: bool, limits: Limits, version: str
) -> JSON:
    paths: dict[str, JSON] = {}
    for e in endpoints:
        paths.setdefault(e.openapi_path, {})[e.method.lower()] = _operation(e, auth_enabled, limits)
    doc: JSON = {
        "openapi": "3.0.3",
        "info": {
            "title": "Podium API (Conductor-compatible)",
            "version": version,
            "description": (
                "Netflix Conductor's REST API, served by Podium's gateway. With "
                "authentication on, each operation needs one of the key roles in its "
                "x-podium-roles (admin, operator, viewer, worker); a worker key only for its "
                "own task types."
            ),
        },
        "paths": paths,
        "components": {"schemas": {name: _ref(s) for name, s in SCHEMAS.items()}},
    }
    if auth_enabled:
        doc["components"]["securitySchemes"] = {
            "token": {"type": "apiKey", "in": "header", "name": "X-Authorization"}
        }
        doc["security"] = [{"token": []}]
    return doc
