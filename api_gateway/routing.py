"""Endpoints declared once: the route, its handler and what the OpenAPI document says of it.

Each resource module lists :class:`Endpoint` values; the app builds its routes from them and
:mod:`api_gateway.openapi` builds the document from the same list, so the two cannot drift
apart on paths, methods, parameters, bodies or status codes. Who may call each endpoint is
declared in :mod:`api_gateway.access`, checked before every handler.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from api_gateway.access import Rule, check_policy, refusal, rule_for
from api_gateway.context import Gateway
from api_gateway.errors import from_exception

Handler = Callable[[Request, Gateway], Awaitable[Response]]
BodyKind = Literal["json", "text"]
OkKind = Literal["json", "text", "empty"]


@dataclass(frozen=True)
class Param:
    """A query or path parameter, as the OpenAPI document shows it."""

    name: str
    where: Literal["query", "path"] = "query"
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    description: str = ""
    repeat: bool = False


#: What the document promises a path segment may hold: no ``/`` (it would end the segment)
#: and no leading dot (``.`` and ``..`` are rewritten by clients).
SEGMENT_PATTERN = r"^[^/.][^/]*$"


def path_param(name: str, description: str = "", integer: bool = False) -> Param:
    schema: dict[str, Any] = (
        {"type": "integer"} if integer else {"type": "string", "pattern": SEGMENT_PATTERN}
    )
    return Param(name, "path", schema, required=True, description=description)


def query(name: str, kind: str = "string", description: str = "", **schema: Any) -> Param:
    """A query parameter; ``kind`` is string, integer or boolean."""
    return Param(name, "query", {"type": kind, **schema}, description=description)


def query_list(name: str, description: str = "") -> Param:
    return Param(
        name,
        "query",
        {"type": "array", "items": {"type": "string"}},
        description=description,
        repeat=True,
    )


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    #: A component name (``"#TaskResult"``) or an inline JSON schema of the request body.
    body: str | dict[str, Any] | None = None
    body_kind: BodyKind = "json"
    body_required: bool = True
    ok: int = 200
    ok_kind: OkKind = "json"
    ok_schema: str | dict[str, Any] | None = None
    #: Other successful answers: status -> (kind, schema).
    also: dict[int, tuple[OkKind, str | dict[str, Any] | None]] = field(default_factory=dict)
    #: Error statuses this endpoint may answer with (the envelope).
    errors: tuple[int, ...] = (400,)
    operation_id: str = ""

    @property
    def openapi_path(self) -> str:
        return re.sub(r"\{(\w+):\w+\}", r"{\1}", self.path)


def _wrap(endpoint: Endpoint, rule: Rule) -> Callable[[Request], Awaitable[Response]]:
    """The route's function: the access check (:mod:`api_gateway.access`), then the handler."""
    handler = endpoint.handler

    async def run(request: Request) -> Response:
        gateway: Gateway = request.state.gateway
        try:
            response = await refusal(rule, request, gateway) or await handler(request, gateway)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            response = from_exception(exc, request)
        gateway.metrics.requests.labels(f"{response.status_code // 100}xx").inc()
        return response

    run.__name__ = handler.__name__
    return run


def routes(endpoints: Sequence[Endpoint]) -> list[Route]:
    """Starlette routes; several methods on one path share a route entry each.

    An endpoint without an access rule (or a rule without an endpoint) stops the app from
    being built, so no route is ever served without a declared permission.
    """
    check_policy(endpoints)
    return [Route(e.path, _wrap(e, rule_for(e)), methods=[e.method]) for e in endpoints]


class GroupedRouter(Router):
    """Starlette's router, asking only the routes that can match a request's first two
    path segments.

    Starlette tries every route in order, a regular expression each: with the API's hundred
    routes that is 30-40 µs per request before the handler runs. Routes are grouped here by
    their first two segments (``("api", "tasks")``); a request is handed to Starlette's own
    :meth:`Router.app` over its group, whose routes keep their order, so the chosen route, a
    405 for a known path, the redirect of a trailing slash and the 404 are what the whole
    list gives. A route with a parameter in its first two segments (or anything but a plain
    :class:`Route`) is in every group; a path with fewer than two segments is served by the
    whole list.
    """

    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes=list(routes), **kwargs)
        grouped = [(r, _group_of(r)) for r in self.routes]

        def router(key: tuple[str, str] | None) -> Router:
            return Router(
                routes=[r for r, k in grouped if k in (key, None)],
                redirect_slashes=self.redirect_slashes,
                default=self.default,
            )

        self._groups = {key: router(key) for key in {k for _, k in grouped if k is not None}}
        self._rest = router(None)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await super().app(scope, receive, send)
            return
        parts = get_route_path(scope).split("/", 3)
        if len(parts) < 3 or not parts[1] or not parts[2]:
            await super().app(scope, receive, send)
            return
        scope.setdefault("router", self)  # url_for and friends see every route
        group = self._groups.get((parts[1], parts[2]), self._rest)
        await group.app(scope, receive, send)


def _group_of(route: BaseRoute) -> tuple[str, str] | None:
    """The first two segments of a plain route's path; None if either is a parameter."""
    if not isinstance(route, Route):
        return None
    parts = route.path.split("/", 3)
    if len(parts) < 3 or not parts[1] or not parts[2] or "{" in parts[1] + parts[2]:
        return None
    return parts[1], parts[2]
