"""RPC client and server spans for the msgpack RPC, with the trace context in the envelope.

A call gets a CLIENT span named by its method (``decider.claim``, ``queue.pop``: the current
RPC conventions name the span ``{rpc.method}``); its context travels as W3C ``traceparent`` (and
``tracestate``, ``baggage``) in the envelope's ``h`` map, through the global text-map
propagator (``OTEL_PROPAGATORS``); the server extracts it and opens the SERVER span, which is
current while the handler runs. Ids found in the params (workflow, task, queue) become
attributes on both sides, so a call can be found by the workflow it concerns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from podium.errors import PodiumError
from podium.queues import DECIDER_QUEUE
from podium.rpc_server import CallContext, Interceptor
from podium.telemetry import names as n
from podium.telemetry.errors import error_code
from podium.telemetry.propagation import extract, follows_parent, inject, unsampled


def call_attributes(method: str, params: Any) -> dict[str, Any]:
    """The attributes of a call's spans: the RPC ones, plus the ids its params name.

    A call of one queue operation (``queue.push``, ``queue.pop``, ``queue.ack``, ...) is also
    the messaging span of that operation: it carries the messaging attributes (system,
    operation, destination = the queue, message id or batch size) rather than being wrapped in
    one more span. A ``queue.batch`` names its operations in ``podium.queue.operations``
    (``["push SIMPLE_b", "remove SIMPLE_a", "schedule _deciderQueue"]``); its pushes get spans
    of their own in the queue service (:mod:`podium.telemetry.queue`).
    """
    attrs: dict[str, Any] = {n.RPC_SYSTEM_NAME: n.RPC_SYSTEM, n.RPC_METHOD: method}
    if not isinstance(params, dict):
        return attrs
    queue = params.get("queue")
    if isinstance(queue, str):
        attrs[n.MSG_DESTINATION] = queue
        operation = QUEUE_OPERATIONS.get(method)
        if operation is not None:
            attrs[n.MSG_SYSTEM] = n.QUEUE_SYSTEM
            attrs[n.MSG_OPERATION], attrs[n.MSG_OPERATION_TYPE] = operation
            message_ids(
                queue, params.get("id") or params.get("ids") or params.get("messages"), attrs
            )
    ops = params.get("ops")  # queue.batch: [[method, params], ...]
    if isinstance(ops, list):
        attrs[n.QUEUE_OPERATIONS] = batch_operations(ops)
    wf_id = params.get("workflowId")
    if isinstance(wf_id, str):
        attrs[n.WORKFLOW_ID] = wf_id
    result = params.get("result")
    if isinstance(result, dict):
        for key, attr in (("workflowInstanceId", n.WORKFLOW_ID), ("taskId", n.TASK_ID)):
            value = result.get(key)
            if isinstance(value, str):
                attrs[attr] = value
    items = params.get("items")  # decider.claim: [[taskId, workflowId], ...]
    if isinstance(items, list) and len(items) == 1 and isinstance(items[0], list):
        attrs[n.TASK_ID], attrs[n.WORKFLOW_ID] = str(items[0][0]), str(items[0][1])
    return attrs


def batch_operations(ops: list[Any]) -> list[str]:
    """A ``queue.batch``'s operations, ``"{operation} {queue}"`` each, in order; the same one
    several times is named once with its count (``"schedule _deciderQueue x10"``)."""
    counts: dict[str, int] = {}
    for op in ops:
        if isinstance(op, list) and len(op) == 2 and isinstance(op[1], dict):
            key = f"{op[0]} {op[1].get('queue')}"
            counts[key] = counts.get(key, 0) + 1
    return [key if count == 1 else f"{key} x{count}" for key, count in counts.items()]


#: queue RPC method -> (messaging.operation.name, messaging.operation.type)
QUEUE_OPERATIONS: dict[str, tuple[str, str]] = {
    "queue.push": ("push", "send"),
    "queue.push_if_absent": ("push", "send"),
    "queue.schedule": ("schedule", "send"),
    "queue.postpone": ("postpone", "send"),
    "queue.pop": ("pop", "receive"),
    "queue.ack": ("ack", "settle"),
    "queue.remove": ("remove", "settle"),
    "queue.nack": ("nack", "settle"),
    "queue.set_unack_timeout": ("set_unack_timeout", "settle"),
}


def message_ids(queue: str, value: Any, attrs: dict[str, Any]) -> None:
    """The message id (one message) or the batch size (several) named by ``value``.

    On the decider queue a message id is a workflow id; on a task queue, a task id.
    """
    if isinstance(value, str):
        msg_id = value
    elif isinstance(value, list | tuple) and value:
        attrs[n.MSG_BATCH] = len(value)
        if len(value) != 1:
            return
        item = value[0]
        # RawMessage, its wire form [id, body, delay, priority], or a plain id
        msg_id = str(getattr(item, "id", item[0] if isinstance(item, list) else item))
    else:
        return
    attrs[n.MSG_ID] = msg_id
    attrs[n.WORKFLOW_ID if queue == DECIDER_QUEUE else n.TASK_ID] = msg_id


class _ClientSpan:
    __slots__ = ("span",)

    def __init__(self, span: Span) -> None:
        self.span = span

    def finish(self, error: BaseException | None) -> None:
        span = self.span
        if error is not None and span.is_recording():
            code = error_code(error)
            span.set_attributes({n.ERROR_TYPE: code, n.RPC_STATUS: code})
            if not isinstance(error, asyncio.CancelledError):
                span.set_status(Status(StatusCode.ERROR, str(error)[:200]))
        span.end()


class _NoSpan:
    __slots__ = ()

    def finish(self, error: BaseException | None) -> None:
        return None


_NO_SPAN = _NoSpan()


class RpcClientTracing:
    """The ``tracer`` hook of :class:`~podium.rpc_client.RpcClient`: a CLIENT span per call, or
    (``spans=False``) only the caller's context passed on, so that the SERVER span is a child of
    the caller's span."""

    def __init__(self, tracer: Tracer, spans: bool = True) -> None:
        self.tracer = tracer
        self.spans = spans
        self._follows_parent = follows_parent(tracer)

    def start(self, method: str, params: Any, headers: dict[str, str]) -> _ClientSpan | _NoSpan:
        if not self.spans:
            current = trace.get_current_span()
            if current.get_span_context().is_valid:
                inject(current, headers)
            return _NO_SPAN
        if self._follows_parent:
            parent = unsampled()
            if parent is not None:
                inject(parent, headers)  # the not-sampled flag travels on
                return _NO_SPAN
        span = self.tracer.start_span(
            method, kind=SpanKind.CLIENT, attributes=call_attributes(method, params)
        )
        # Injected even when the span is not sampled: the flags tell the server not to sample.
        inject(span, headers)
        return _ClientSpan(span)


def rpc_server_tracing(tracer: Tracer) -> Interceptor:
    """An RPC server interceptor opening a SERVER span per call, child of the caller's span."""

    skip_unsampled = follows_parent(tracer)

    async def intercept(ctx: CallContext, call: Callable[[], Awaitable[Any]]) -> Any:
        parent = extract(ctx.headers)
        if skip_unsampled and unsampled(parent) is not None:
            token = otel_context.attach(parent)  # passed on to calls the handler makes
            try:
                return await call()
            finally:
                otel_context.detach(token)
        span = tracer.start_span(
            ctx.method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=call_attributes(ctx.method, ctx.params),
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            return await call()
        except PodiumError as exc:
            # Answers such as NOT_FOUND are the caller's problem, not a server failure.
            _server_error(span, exc.code, exc.http_status >= 500)
            raise
        except asyncio.CancelledError:
            late = asyncio.get_running_loop().time() >= ctx.deadline
            _server_error(span, "DEADLINE_EXCEEDED" if late else "CANCELLED", late)
            raise
        except Exception as exc:
            _server_error(span, "INTERNAL", True)
            span.record_exception(exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    return intercept


def _server_error(span: Span, code: str, failed: bool) -> None:
    if not span.is_recording():
        return
    span.set_attribute(n.RPC_STATUS, code)
    if failed:
        span.set_attribute(n.ERROR_TYPE, code)
        span.set_status(Status(StatusCode.ERROR, code))


def client_tracing(tracer: Tracer | None, spans: bool = True) -> RpcClientTracing | None:
    """The RpcClient ``tracer`` for a service's tracer (None when tracing is off); with
    ``spans=False`` calls pass the caller's context on without a CLIENT span of their own."""
    return RpcClientTracing(tracer, spans) if tracer is not None else None


def server_tracing(tracer: Tracer | None) -> Interceptor | None:
    """The RPC server interceptor for a service's tracer (None when tracing is off)."""
    return rpc_server_tracing(tracer) if tracer is not None else None
