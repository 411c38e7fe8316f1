"""Messaging spans for the pushes of a ``queue.batch`` call, in the queue service.

A call of one queue operation is its own messaging span (see
:func:`podium.telemetry.rpc.call_attributes`). A ``queue.batch`` call (the decider sends all
of a decision's queue effects in one) carries several operations on several queues and lists
them in ``podium.queue.operations``; each **push** in it (a task entering its queue, the
event a worker's poll follows) also gets a PRODUCER span of its own under the batch's SERVER
span: ``push {queue}``, with ``messaging.system=podium_queue``, ``messaging.operation.name``
and ``.type``, ``messaging.destination.name`` = the queue, and the task id (or the batch
size). The batch's removals and timer updates are bookkeeping; a span each would cost more
than they tell (see docs/observability.md, "what tracing costs").

Operations outside a traced batch (single calls, lease recovery, depth sampling) make no span
here: one span per operation is enough.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from podium.telemetry import names as n
from podium.telemetry.errors import error_code
from podium.telemetry.rpc import QUEUE_OPERATIONS, message_ids

BATCH_METHOD = "queue.batch"


class TracedEngine:
    """Proxies a :class:`~queue_service.engine.QueueEngine`, tracing the pushes of batches."""

    def __init__(self, engine: object, tracer: Tracer) -> None:
        self._engine = engine
        self._tracer = tracer
        operation, op_type = QUEUE_OPERATIONS["queue.push"]
        self.push = self._wrap("push", operation, op_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _wrap(
        self, method: str, operation: str, op_type: str
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        inner = getattr(self._engine, method)
        tracer = self._tracer
        base = {
            n.MSG_SYSTEM: n.QUEUE_SYSTEM,
            n.MSG_OPERATION: operation,
            n.MSG_OPERATION_TYPE: op_type,
        }

        async def traced(queue: str, *args: Any, **kwargs: Any) -> Any:
            current = trace.get_current_span()
            # The SDK span's name tells whether this runs inside a batch's SERVER span.
            if getattr(current, "name", None) != BATCH_METHOD or not current.is_recording():
                return await inner(queue, *args, **kwargs)
            attrs = {**base, n.MSG_DESTINATION: queue}
            if args:
                message_ids(queue, args[0], attrs)
            span = tracer.start_span(
                f"{operation} {queue}", kind=SpanKind.PRODUCER, attributes=attrs
            )
            try:
                return await inner(queue, *args, **kwargs)
            except BaseException as exc:
                code = error_code(exc)
                span.set_attribute(n.ERROR_TYPE, code)
                span.set_status(Status(StatusCode.ERROR, code))
                raise
            finally:
                span.end()

        return traced
