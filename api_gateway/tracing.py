"""HTTP server spans for the gateway (pure ASGI middleware), and tracing its connections.

Each request gets a SERVER span with the stable HTTP conventions: named ``{method} {route}``
(``POST /api/workflow/{name}``; the route template, never the raw path), with
``http.request.method``, ``url.path``, ``url.scheme``, ``http.route``,
``http.response.status_code``, ``network.protocol.version``, ``server.port``,
``client.address``, ``user_agent.original``, and ``error.type`` on a 5xx. A W3C
``traceparent`` sent by the client is honoured, so a caller's trace continues through Podium;
the answer carries ``traceresponse`` (W3C Trace Context level 2) naming the request's trace.
Path parameters naming a workflow or task become ``conductor.*`` attributes.

Health probes are not traced. With tracing off the middleware is not installed at all.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_gateway.context import Gateway
from podium.telemetry import names as n
from podium.telemetry.propagation import extract, follows_parent, traceparent, unsampled
from podium.telemetry.rpc import client_tracing
from podium.telemetry.store import traced

#: Probes would drown the traces that matter.
UNTRACED_PATHS = frozenset({"/health", "/api/health"})
_PATH_IDS = (("workflowId", n.WORKFLOW_ID), ("taskId", n.TASK_ID), ("tasktype", n.TASK_TYPE))


class HttpTracing:
    """Pure ASGI middleware opening one SERVER span per HTTP request."""

    def __init__(self, app: ASGIApp, tracer: Tracer) -> None:
        self.app = app
        self.tracer = tracer
        self._follows_parent = follows_parent(tracer)
        # Only the propagator's own headers are copied out of the request (usually three).
        self._fields = frozenset(f.encode("latin-1") for f in propagate.get_global_textmap().fields)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self.app(scope, receive, send)
            return
        carrier: dict[str, str] = {}
        agent = ""
        for key, value in scope["headers"]:
            if key in self._fields:
                carrier[key.decode("latin-1")] = value.decode("latin-1")
            elif key == b"user-agent":
                agent = value.decode("latin-1")
        parent = extract(carrier)
        if self._follows_parent and unsampled(parent) is not None:
            # The caller's trace is not sampled: pass its context on, record nothing.
            token = otel_context.attach(parent)
            try:
                await self.app(scope, receive, send)
            finally:
                otel_context.detach(token)
            return
        method = scope["method"]
        span = self.tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=_request(scope, agent)
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        trace_header = traceparent(span.get_span_context())
        status = 500

        async def traced_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                headers.append((b"traceresponse", trace_header.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, traced_send)
        except BaseException as exc:
            if span.is_recording():
                span.set_attribute(n.ERROR_TYPE, type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            if span.is_recording():
                _finish(span, scope, method, status)
            otel_context.detach(token)
            span.end()


def _request(scope: Scope, agent: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "http.request.method": scope["method"],
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    server = scope.get("server")
    if server and len(server) > 1 and server[1] is not None:
        attrs[n.SERVER_PORT] = int(server[1])
    client = scope.get("client")
    if client:
        attrs["client.address"] = str(client[0])
    if agent:
        attrs["user_agent.original"] = agent
    return attrs


def _finish(span: trace.Span, scope: Scope, method: str, status: int) -> None:
    attrs: dict[str, Any] = {"http.response.status_code": status}
    route = getattr(scope.get("route"), "path", None)
    if isinstance(route, str):
        attrs["http.route"] = route
        span.update_name(f"{method} {route}")
    for key, attr in _PATH_IDS:
        value = (scope.get("path_params") or {}).get(key)
        if isinstance(value, str):
            attrs[attr] = value
    if status >= 500:
        attrs[n.ERROR_TYPE] = str(status)
        span.set_status(Status(StatusCode.ERROR))
    span.set_attributes(attrs)


def instrument(gateway: Gateway, tracer: Tracer | None, full: bool = False) -> None:
    """Trace the gateway's RPC clients and store (whatever connector built them): their calls
    pass the request's context on; with ``full`` detail each also gets a client span."""
    if tracer is None:
        return
    gateway.decider.rpc.tracer = client_tracing(tracer, spans=full)
    gateway.queues.rpc.tracer = client_tracing(tracer, spans=full)
    gateway.store = traced(gateway.store, tracer, gateway.settings.store, spans=full)
