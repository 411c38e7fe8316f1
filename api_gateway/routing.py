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

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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
