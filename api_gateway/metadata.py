"""``/api/metadata``: task and workflow definitions (validated here, written to the store)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api_gateway import checks
from api_gateway.context import Gateway
from api_gateway.http import (
    body_json,
    body_object,
    ok_empty,
    ok_json,
    path,
    path_int,
    q_bool,
    q_int,
)
from api_gateway.routing import Endpoint, path_param, query
from podium.errors import NotFound, PodiumError, ValidationError

TAG = "metadata"


def now_ms() -> int:
    return int(time.time() * 1000)


# -- workflow definitions ---------------------------------------------------------------------


async def register_workflow(request: Request, gateway: Gateway) -> Response:
    overwrite = q_bool(request, "overwrite", False)
    definition = checks.workflow_def(await body_object(request, "WorkflowDef"), gateway.definitions)
    definition["createTime"] = now_ms()
    if overwrite:
        await gateway.store.metadata.update_workflow_def(definition)
    else:
        await gateway.store.metadata.create_workflow_def(definition)
    return ok_empty()


async def validate_workflow(request: Request, gateway: Gateway) -> Response:
    checks.workflow_def(await body_object(request, "WorkflowDef"), gateway.definitions)
    return ok_empty()


async def update_workflows(request: Request, gateway: Gateway) -> Response:
    body = await body_json(request)
    if not isinstance(body, list):
        raise ValidationError.of([{"path": "workflowDefs", "message": "must be a JSON array"}])
    if not body:
        raise ValidationError.of([{"path": "workflowDefs", "message": "WorkflowDefList is empty"}])
    defs = [
        checks.workflow_def(d, gateway.definitions, f"workflowDefs[{i}]")
        for i, d in enumerate(body)
    ]
    done: list[str] = []
    failed: dict[str, str] = {}
    now = now_ms()
    for d in defs:
        d["updateTime"] = now
        d.setdefault("createTime", now)
        try:
            await gateway.store.metadata.update_workflow_def(d)
            done.append(str(d["name"]))
        except PodiumError as exc:
            failed[str(d["name"])] = exc.message
    return ok_json({"bulkErrorResults": failed, "bulkSuccessfulResults": done})


async def get_workflow_def(request: Request, gateway: Gateway) -> Response:
    name = path(request, "name")
    version = q_int(request, "version", None)
    try:
        return ok_json(await gateway.store.metadata.get_workflow_def(name, version))
    except NotFound:
        raise NotFound(
            f"No such workflow found by name: {name}, version: {version}", name=name
        ) from None


async def list_workflows(request: Request, gateway: Gateway) -> Response:
    return ok_json(await gateway.store.metadata.list_workflow_defs())


def _summary(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": d.get("name"),
        "version": d.get("version"),
        "createTime": d.get("createTime"),
        "updateTime": d.get("updateTime"),
    }


async def names_and_versions(request: Request, gateway: Gateway) -> Response:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in await gateway.store.metadata.list_workflow_defs():
        out.setdefault(str(d["name"]), []).append(_summary(d))
    return ok_json(out)


async def workflow_names(request: Request, gateway: Gateway) -> Response:
    names = {str(d["name"]) for d in await gateway.store.metadata.list_latest_workflow_defs()}
    return ok_json(sorted(names))


async def workflow_versions(request: Request, gateway: Gateway) -> Response:
    name = path(request, "name")
    out = []
    for version in await gateway.store.metadata.workflow_def_versions(name):
        try:
            out.append(_summary(await gateway.store.metadata.get_workflow_def(name, version)))
        except NotFound:
            continue  # removed meanwhile
    return ok_json(out)


async def latest_versions(request: Request, gateway: Gateway) -> Response:
    return ok_json(await gateway.store.metadata.list_latest_workflow_defs())


async def delete_workflow_def(request: Request, gateway: Gateway) -> Response:
    name, version = path(request, "name"), path_int(request, "version")
    try:
        await gateway.store.metadata.remove_workflow_def(name, version)
    except NotFound:
        raise NotFound(
            f"No such workflow definition: {name} version: {version}", name=name
        ) from None
    return ok_empty()


# -- task definitions -------------------------------------------------------------------------


async def register_task_defs(request: Request, gateway: Gateway) -> Response:
    body = await body_json(request)
    if not isinstance(body, list):
        raise ValidationError.of([{"path": "taskDefinitions", "message": "must be a JSON array"}])
    if not body:
        raise ValidationError.of([{"path": "taskDefinitions", "message": "TaskDefList is empty"}])
    defs = [checks.task_def(d, f"registerTaskDef.taskDefinitions[{i}]") for i, d in enumerate(body)]
    now = now_ms()
    for d in defs:
        d["createTime"] = now
        d.pop("updateTime", None)
        d.pop("updatedBy", None)
        await gateway.store.metadata.create_task_def(d)
    return ok_empty()


async def update_task_def(request: Request, gateway: Gateway) -> Response:
    d = checks.task_def(await body_object(request, "TaskDef"))
    name = str(d["name"])
    try:
        current = await gateway.store.metadata.get_task_def(name)
    except NotFound:
        raise NotFound(f"No such task by name {name}", name=name) from None
    for key in ("createTime", "createdBy"):
        if current.get(key) is not None:
            d[key] = current[key]
    d["updateTime"] = now_ms()
    await gateway.store.metadata.update_task_def(d)
    return ok_empty()


async def list_task_defs(request: Request, gateway: Gateway) -> Response:
    return ok_json(await gateway.store.metadata.list_task_defs())


async def get_task_def(request: Request, gateway: Gateway) -> Response:
    name = path(request, "tasktype")
    try:
        return ok_json(await gateway.store.metadata.get_task_def(name))
    except NotFound:
        raise NotFound(f"No such taskType found by name: {name}", name=name) from None


async def delete_task_def(request: Request, gateway: Gateway) -> Response:
    name = path(request, "tasktype")
    try:
        await gateway.store.metadata.remove_task_def(name)
    except NotFound:
        raise NotFound(f"No such task definition: {name}", name=name) from None
    return ok_empty()


_BASE = "/api/metadata"
_NAME = path_param("name", "workflow name")
_TYPE = path_param("tasktype", "task definition name")
_LIST_WF = {"type": "array", "items": "#WorkflowDef"}

ENDPOINTS = [
    Endpoint("POST", f"{_BASE}/workflow/validate", validate_workflow, "Validate a workflow "
             "definition", TAG, body="#WorkflowDef", ok_kind="empty"),
    Endpoint("POST", f"{_BASE}/workflow", register_workflow, "Register a workflow definition",
             TAG, params=(query("overwrite", "boolean", default=False),), body="#WorkflowDef",
             ok_kind="empty", errors=(400, 409)),
    Endpoint("PUT", f"{_BASE}/workflow", update_workflows, "Create or update workflow "
             "definitions", TAG, body={"type": "array", "items": "#WorkflowDef"},
             ok_schema="#BulkResponse"),
    Endpoint("GET", f"{_BASE}/workflow/names-and-versions", names_and_versions, "Names and "
             "versions of all workflow definitions", TAG,
             ok_schema={"type": "object", "additionalProperties": {
                 "type": "array", "items": "#WorkflowDefSummary"}}, errors=()),
    Endpoint("GET", f"{_BASE}/workflow/names", workflow_names, "Names of all workflow definitions",
             TAG, ok_schema={"type": "array", "items": {"type": "string"}}, errors=()),
    Endpoint("GET", f"{_BASE}/workflow/latest-versions", latest_versions, "Latest version of "
             "every workflow definition", TAG, ok_schema=_LIST_WF, errors=()),
    Endpoint("GET", f"{_BASE}/workflow/{{name}}/versions", workflow_versions, "Versions of a "
             "workflow definition", TAG, params=(_NAME,),
             ok_schema={"type": "array", "items": "#WorkflowDefSummary"}, errors=()),
    Endpoint("GET", f"{_BASE}/workflow/{{name}}", get_workflow_def, "Get a workflow definition "
             "(the latest version unless one is given)", TAG,
             params=(_NAME, query("version", "integer")), ok_schema="#WorkflowDef",
             errors=(400, 404)),
    Endpoint("GET", f"{_BASE}/workflow", list_workflows, "All workflow definitions (every "
             "version)", TAG, params=(query("classifier"),), ok_schema=_LIST_WF, errors=()),
    Endpoint("DELETE", f"{_BASE}/workflow/{{name}}/{{version}}", delete_workflow_def, "Remove "
             "one version of a workflow definition", TAG,
             params=(_NAME, path_param("version", integer=True)), body_required=False,
             ok_kind="empty", errors=(400, 404)),
    Endpoint("POST", f"{_BASE}/taskdefs", register_task_defs, "Create or update task definitions",
             TAG, body={"type": "array", "items": "#TaskDef"}, ok_kind="empty"),
    Endpoint("PUT", f"{_BASE}/taskdefs", update_task_def, "Update an existing task definition",
             TAG, body="#TaskDef", ok_kind="empty", errors=(400, 404)),
    Endpoint("GET", f"{_BASE}/taskdefs", list_task_defs, "All task definitions", TAG,
             ok_schema={"type": "array", "items": "#TaskDef"}, errors=()),
    Endpoint("GET", f"{_BASE}/taskdefs/{{tasktype}}", get_task_def, "Get a task definition", TAG,
             params=(_TYPE,), ok_schema="#TaskDef", errors=(404,)),
    Endpoint("DELETE", f"{_BASE}/taskdefs/{{tasktype}}", delete_task_def, "Remove a task "
             "definition", TAG, params=(_TYPE,), body_required=False, ok_kind="empty",
             errors=(404,)),
]  # fmt: skip
