"""``/api/workflow/bulk``: one operation over a list of workflow ids.

Each id is processed on its own; a failure lands in ``bulkErrorResults`` and never fails the
request (Conductor's BulkResponse).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api_gateway import checks
from api_gateway.context import Gateway
from api_gateway.http import body_json, ok_json, q_bool, q_str
from api_gateway.routing import Endpoint, query
from api_gateway.workflows import read_workflow, remove_one, terminate_remove_one
from podium.errors import PodiumError
from podium.types import JSON

TAG = "workflow-bulk"

Action = Callable[[str], Awaitable[Any]]


async def _each(request: Request, gateway: Gateway, action: Action) -> Response:
    ids = checks.id_list(await body_json(request), gateway.limits.max_bulk_ids)
    done: list[Any] = []
    failed: dict[str, str] = {}
    for workflow_id in ids:
        try:
            result = await action(workflow_id)
        except PodiumError as exc:
            failed[workflow_id] = exc.message
            continue
        done.append(result if result is not None else workflow_id)
    return ok_json(
        {
            "bulkErrorResults": failed,
            "bulkSuccessfulResults": done,
            "message": "Bulk Request has been processed.",
        }
    )


def _by_id(call: Callable[[str], Awaitable[Any]]) -> Action:
    """A decider call as a bulk action: the result lists the id, not the decider's answer."""

    async def act(workflow_id: str) -> None:
        await call(workflow_id)

    return act


async def pause(request: Request, gateway: Gateway) -> Response:
    return await _each(request, gateway, _by_id(gateway.decider.pause))


async def resume(request: Request, gateway: Gateway) -> Response:
    return await _each(request, gateway, _by_id(gateway.decider.resume))


async def restart(request: Request, gateway: Gateway) -> Response:
    latest = q_bool(request, "useLatestDefinitions", False)
    action = functools.partial(gateway.decider.restart, use_latest_definitions=latest)
    return await _each(request, gateway, _by_id(action))


async def retry(request: Request, gateway: Gateway) -> Response:
    return await _each(request, gateway, _by_id(gateway.decider.retry))


async def terminate(request: Request, gateway: Gateway) -> Response:
    reason = q_str(request, "reason")
    return await _each(
        request, gateway, _by_id(functools.partial(gateway.decider.terminate, reason=reason))
    )


async def remove(request: Request, gateway: Gateway) -> Response:
    archive = q_bool(request, "archiveWorkflow", True)

    async def act(workflow_id: str) -> None:
        await remove_one(gateway, workflow_id, archive)

    return await _each(request, gateway, act)


async def terminate_remove(request: Request, gateway: Gateway) -> Response:
    archive = q_bool(request, "archiveWorkflow", True)
    reason = q_str(request, "reason")

    async def act(workflow_id: str) -> None:
        await terminate_remove_one(gateway, workflow_id, reason, archive)

    return await _each(request, gateway, act)


async def search(request: Request, gateway: Gateway) -> Response:
    include_tasks = q_bool(request, "includeTasks", True)

    async def act(workflow_id: str) -> JSON:
        return await read_workflow(gateway, workflow_id, include_tasks)

    return await _each(request, gateway, act)


_BASE = "/api/workflow/bulk"
_IDS = {"type": "array", "items": {"type": "string"}, "maxItems": 1000}
_OK = "#BulkResponse"

ENDPOINTS = [
    Endpoint("PUT", f"{_BASE}/pause", pause, "Pause workflows", TAG, body=_IDS, ok_schema=_OK),
    Endpoint("PUT", f"{_BASE}/resume", resume, "Resume workflows", TAG, body=_IDS, ok_schema=_OK),
    Endpoint("POST", f"{_BASE}/restart", restart, "Restart workflows", TAG,
             params=(query("useLatestDefinitions", "boolean"),), body=_IDS, ok_schema=_OK),
    Endpoint("POST", f"{_BASE}/retry", retry, "Retry workflows", TAG, body=_IDS, ok_schema=_OK),
    Endpoint("POST", f"{_BASE}/terminate", terminate, "Terminate workflows", TAG,
             params=(query("reason"),), body=_IDS, ok_schema=_OK),
    Endpoint("DELETE", f"{_BASE}/remove", remove, "Remove workflows", TAG,
             params=(query("archiveWorkflow", "boolean"),), body=_IDS, ok_schema=_OK),
    Endpoint("DELETE", f"{_BASE}/terminate-remove", terminate_remove, "Terminate and remove "
             "workflows", TAG, params=(query("reason"), query("archiveWorkflow", "boolean")),
             body=_IDS, ok_schema=_OK),
    Endpoint("POST", f"{_BASE}/search", search, "Get workflows by id", TAG,
             params=(query("includeTasks", "boolean"),), body=_IDS, ok_schema=_OK),
]  # fmt: skip
