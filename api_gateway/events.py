"""``/api/event``: event handler definitions, stored and validated here.

The sweepers run the active handlers: they consume each handler's event (Podium's queue
service for ``conductor:`` events, RabbitMQ for ``amqp*:`` ones) and run its actions; see
docs/events.md. A change made here reaches them within ``PODIUM_EVENTS_REFRESH_S``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api_gateway import checks
from api_gateway.context import Gateway
from api_gateway.http import body_json, ok_empty, ok_json, path, q_bool
from api_gateway.routing import Endpoint, path_param, query

TAG = "event"


async def add(request: Request, gateway: Gateway) -> Response:
    await gateway.store.metadata.add_event_handler(checks.event_handler(await body_json(request)))
    return ok_empty()


async def update(request: Request, gateway: Gateway) -> Response:
    await gateway.store.metadata.update_event_handler(
        checks.event_handler(await body_json(request))
    )
    return ok_empty()


async def remove(request: Request, gateway: Gateway) -> Response:
    await gateway.store.metadata.remove_event_handler(path(request, "name"))
    return ok_empty()


async def list_all(request: Request, gateway: Gateway) -> Response:
    return ok_json(await gateway.store.metadata.list_event_handlers())


async def for_event(request: Request, gateway: Gateway) -> Response:
    active_only = q_bool(request, "activeOnly", True)
    found = await gateway.store.metadata.event_handlers_for_event(
        path(request, "event"), active_only
    )
    return ok_json(found)


_BASE = "/api/event"
_LIST = {"type": "array", "items": "#EventHandler"}

ENDPOINTS = [
    Endpoint("POST", _BASE, add, "Add an event handler", TAG, body="#EventHandler",
             ok_kind="empty", errors=(400, 409)),
    Endpoint("PUT", _BASE, update, "Update an event handler", TAG, body="#EventHandler",
             ok_kind="empty", errors=(400, 404)),
    Endpoint("GET", _BASE, list_all, "All event handlers", TAG, ok_schema=_LIST, errors=()),
    Endpoint("DELETE", f"{_BASE}/{{name}}", remove, "Remove an event handler", TAG,
             params=(path_param("name"),), body_required=False, ok_kind="empty",
             errors=(404,)),
    Endpoint("GET", f"{_BASE}/{{event:path}}", for_event, "Event handlers of an event", TAG,
             params=(path_param("event"), query("activeOnly", "boolean")), ok_schema=_LIST),
]  # fmt: skip
