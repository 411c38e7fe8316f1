"""``/api/admin``: configuration, pending tasks of a type, requeue and repair of a workflow."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api_gateway.context import Gateway
from api_gateway.http import ok_json, ok_text, path, q_bool, q_int
from api_gateway.routing import Endpoint, path_param, query
from podium import events
from podium.errors import NotFound

TAG = "admin"
VERSION = "0.1.0"


def config_map(gateway: Gateway) -> dict[str, Any]:
    """The gateway's settings (never a secret) and the version."""
    s = gateway.settings
    return {
        "version": VERSION,
        "buildDate": "",
        "server": "podium-gateway",
        "startTime": int(gateway.started_at * 1000),
        "deciderAddresses": ",".join(s.decider_addresses),
        "queueAddresses": ",".join(s.queue_addresses),
        "store": s.store.backend,
        "authEnabled": s.auth.enabled,
        "authTokenTtlSeconds": s.auth.token_ttl_s,
        **{f"limits.{k}": v for k, v in dataclasses.asdict(s.limits).items()},
    }


async def config(request: Request, gateway: Gateway) -> Response:
    return ok_json(config_map(gateway))


async def pending_tasks(request: Request, gateway: Gateway) -> Response:
    start = q_int(request, "start", 0, minimum=0) or 0
    count = q_int(request, "count", 100, minimum=0) or 0
    tasks = await gateway.store.executions.pending_tasks_by_type(path(request, "tasktype"))
    tasks.sort(key=lambda t: (int(t.get("scheduledTime") or 0), str(t.get("taskId"))))
    return ok_json(tasks[start : start + count])


async def _decide(gateway: Gateway, workflow_id: str) -> None:
    try:
        await gateway.decider.decide(workflow_id)
    except NotFound:
        raise NotFound(
            f"No such workflow found by id: {workflow_id}", workflowId=workflow_id
        ) from None


async def requeue_sweep(request: Request, gateway: Gateway) -> Response:
    """Decide the workflow now, which also puts it back on the decider queue."""
    workflow_id = path(request, "workflowId")
    await _decide(gateway, workflow_id)
    return ok_text(f"true.{workflow_id}")


async def verify_and_repair(request: Request, gateway: Gateway) -> Response:
    """A decide re-pushes every task message of the workflow that went missing."""
    await _decide(gateway, path(request, "workflowId"))
    return ok_text("true")


async def event_queues(request: Request, gateway: Gateway) -> Response:
    """Conductor's map of event queues, ``{event: queue}`` (``verbose``: ``{event: {queue:
    size}}``): the queue-service queues holding ``conductor:`` events (docs/events.md). The
    queues of ``amqp`` events are RabbitMQ's to list."""
    verbose = q_bool(request, "verbose", False)
    found: dict[str, Any] = {}
    for name in sorted(await gateway.queues.list_queues()):
        if name.startswith(events.INTERNAL_PREFIX):
            event = name.removeprefix(events.INTERNAL_PREFIX)
            found[event] = {name: await gateway.queues.size(name)} if verbose else name
    return ok_json(found)


async def health(request: Request, gateway: Gateway) -> Response:
    return ok_json({"healthy": True, "uptimeMs": int((time.time() - gateway.started_at) * 1000)})


_BASE = "/api/admin"

ENDPOINTS = [
    Endpoint("GET", f"{_BASE}/config", config, "Server configuration", TAG,
             ok_schema={"type": "object"}, errors=()),
    Endpoint("GET", f"{_BASE}/task/{{tasktype}}", pending_tasks, "Pending tasks of a type", TAG,
             params=(path_param("tasktype"), query("start", "integer", minimum=0),
                     query("count", "integer", minimum=0)),
             ok_schema={"type": "array", "items": "#Task"}),
    Endpoint("POST", f"{_BASE}/sweep/requeue/{{workflowId}}", requeue_sweep, "Put a workflow back "
             "on the decider queue", TAG, params=(path_param("workflowId"),),
             body_required=False, ok_kind="text", errors=(404,)),
    Endpoint("POST", f"{_BASE}/consistency/verifyAndRepair/{{workflowId}}", verify_and_repair,
             "Re-push missing task messages of a workflow", TAG,
             params=(path_param("workflowId"),), body_required=False, ok_kind="text",
             errors=(404,)),
    Endpoint("GET", f"{_BASE}/queues", event_queues, "Event queues of conductor: events", TAG,
             params=(query("verbose", "boolean"),), ok_schema={"type": "object"}),
]  # fmt: skip

HEALTH = [
    Endpoint("GET", "/health", health, "Health", "health", ok_schema="#Health", errors=()),
    Endpoint("GET", "/api/health", health, "Health", "health", ok_schema="#Health", errors=()),
]
