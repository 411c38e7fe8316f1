"""The gateway's GroupedRouter chooses what Starlette's router chooses, over the API's own
route table: the same route, the same 405, the same trailing-slash redirect, the same 404."""

from __future__ import annotations

import os
import re

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router
from starlette.types import Message, Scope

from api_gateway.routing import GroupedRouter
from api_gateway.server import create_app
from api_gateway.settings import GatewaySettings

pytestmark = pytest.mark.timeout(60)

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")


def _table() -> list[Route]:
    """The API's routes, each answering with its own index (the handlers need a gateway)."""
    app = create_app(GatewaySettings.from_env(dict(os.environ)))
    routes = []
    for i, route in enumerate(app.router.routes):
        assert isinstance(route, Route)

        async def answer(request: Request, i: int = i) -> Response:
            return PlainTextResponse(str(i))

        routes.append(Route(route.path, answer, methods=sorted(route.methods or ())))
    return routes


def _paths(routes: list[Route]) -> list[str]:
    """Each route's path with sample values, with and without a trailing slash, and paths
    no route has."""
    paths = {"/", "/api", "/api/", "/nowhere", "/api/nowhere/x", "/api/tasks/x/y/z/w"}
    for r in routes:
        for value in ("bench_t1", "poll", "batch", "123"):
            path = re.sub(r"\{[^}]+\}", value, r.path)
            paths.update({path, path + "/", path.rstrip("/")})
    return sorted(p for p in paths if p)


async def _call(router: Router, method: str, path: str) -> tuple[int, str, str]:
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "scheme": "http",
        "server": ("testserver", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await router(scope, receive, send)
    status = sent[0]["status"]
    location = dict(sent[0]["headers"]).get(b"location", b"").decode()
    body = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    return status, location, body


async def test_every_request_reaches_the_route_starlette_would_choose() -> None:
    routes = _table()
    plain, grouped = Router(routes=routes), GroupedRouter(routes)
    assert len(grouped._groups) > 5  # the table is split, or this test would prove nothing
    checked = statuses = 0
    seen: set[int] = set()
    for path in _paths(routes):
        for method in METHODS:
            want = await _call(plain, method, path)
            assert await _call(grouped, method, path) == want, (method, path)
            checked += 1
            seen.add(want[0])
            statuses += want[0] == 200
    assert {200, 307, 404, 405} <= seen, seen
    assert statuses >= len(routes)  # every route was reached at least once
    assert checked > 1000


def _answering(path: str, methods: list[str], i: int) -> Route:
    async def answer(request: Request) -> Response:
        return PlainTextResponse(str(i))

    return Route(path, answer, methods=methods)


async def test_routes_with_a_parameter_up_front_are_asked_for_every_path() -> None:
    table = [
        ("/api/tasks/{taskId}", ["GET"]),
        ("/api/{kind}/x", ["GET", "POST"]),  # before a literal one it shadows
        ("/api/tasks/x", ["GET", "PUT"]),
        ("/{tenant}/tasks/{taskId}", ["DELETE"]),
        ("/api/tasks", ["POST"]),
        ("/short", ["GET"]),
    ]
    routes = [_answering(path, methods, i) for i, (path, methods) in enumerate(table)]
    plain, grouped = Router(routes=routes), GroupedRouter(routes)
    paths = ["/api/tasks/x", "/api/tasks/x/", "/api/tasks/7", "/t1/tasks/7", "/api/tasks"]
    paths += ["/api/tasks/", "/api/other/x", "/short", "/short/", "/api/tasks/7/8"]
    answers = set()
    for path in paths:
        for method in METHODS:
            want = await _call(plain, method, path)
            assert await _call(grouped, method, path) == want, (method, path)
            answers.add(want[2])
    assert {"0", "1", "2", "3", "4", "5"} <= answers
