"""Following a long-lived workflow: trace context stored on its records, spans linked to it.

A workflow outlives any one trace, so its later work is not made a child of its start (that
trace would stay open for hours). Instead:

* the decide that starts a workflow stores ``traceId`` (its trace, shown by the API) and
  ``traceParent`` (W3C ``traceparent`` of that decide span) on the workflow record;
* every decide that creates tasks stores its own ``traceParent`` on each new task record;
* each later decide (a worker's poll or update, a sweep, a signal) runs in its own trace and
  adds **span links**: to the span that scheduled the task it concerns (``scheduled_by``) and
  to the workflow's start (``workflow_start``).

So from any poll or update one can follow links back to the request that started the workflow.
Nothing is stored for an unsampled trace, since a link into it would lead nowhere.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

from podium.telemetry import names as n
from podium.telemetry.errors import error_code, mark_error
from podium.telemetry.propagation import follows_parent, parse_traceparent, traceparent, unsampled


def link_to(span: Span, record: Mapping[str, Any] | None, kind: str) -> SpanContext | None:
    """Link ``span`` to the span that created ``record`` (its ``traceParent``), if any."""
    ctx = parse_traceparent(record.get(n.TRACE_PARENT_FIELD)) if record else None
    if ctx is not None:
        span.add_link(ctx, {n.LINK_KIND: kind})
    return ctx


def _task(
    workflow: Mapping[str, Any],
    task_id: str,
    find: Callable[[Mapping[str, Any], Iterable[str]], Mapping[str, Any]] | None,
) -> Mapping[str, Any] | None:
    """The workflow's task ``task_id``: through ``find`` if given, else by a scan."""
    if find is not None:
        return find(workflow, (task_id,)).get(task_id)
    return next((t for t in workflow.get("tasks") or () if t["taskId"] == task_id), None)


class DecideSpan:
    """The span of one decider operation on one workflow (a no-op when tracing is off)."""

    __slots__ = ("_linked", "span")

    def __init__(self, span: Span | None) -> None:
        self.span = span
        self._linked = False

    def read(
        self,
        workflow: Mapping[str, Any],
        task_id: str | None,
        find: Callable[[Mapping[str, Any], Iterable[str]], Mapping[str, Any]] | None = None,
    ) -> None:
        """The workflow as read: link to its start and to the task's scheduler (once).
        ``find(workflow, ids)`` gives the record's tasks with these ids (the decider's finds
        them through the record's index); without it the tasks are scanned."""
        span = self.span
        if span is None or self._linked or not span.is_recording():
            return
        self._linked = True
        if task_id is not None:
            scheduler = link_to(span, _task(workflow, task_id, find), "scheduled_by")
        else:
            scheduler = None
        start = parse_traceparent(workflow.get(n.TRACE_PARENT_FIELD))
        if start is not None and (scheduler is None or start.span_id != scheduler.span_id):
            span.add_link(start, {n.LINK_KIND: "workflow_start"})

    def stamp(self, workflow: dict[str, Any], tasks: list[dict[str, Any]], created: Any) -> None:
        """Record this span as the creator of the new tasks (before they are written)."""
        span = self.span
        if span is None or not created:
            return
        ctx = span.get_span_context()
        if not ctx.trace_flags.sampled:
            return
        value = traceparent(ctx)
        new = set(created)
        for task in tasks:
            if task["taskId"] in new:
                task[n.TRACE_PARENT_FIELD] = value

    def started(self, workflow: dict[str, Any], tasks: list[dict[str, Any]], created: Any) -> None:
        """A new workflow: store the start's trace on it, and stamp its first tasks."""
        span = self.span
        if span is None:
            return
        ctx = span.get_span_context()
        if span.is_recording():
            span.set_attribute(n.WORKFLOW_ID, str(workflow.get("workflowId")))
        if ctx.trace_flags.sampled:
            workflow[n.TRACE_ID_FIELD] = f"{ctx.trace_id:032x}"
            workflow[n.TRACE_PARENT_FIELD] = traceparent(ctx)
        self.stamp(workflow, tasks, created)

    def done(self, workflow: Mapping[str, Any], created: int, conflicts: int = 0) -> None:
        span = self.span
        if span is None or not span.is_recording():
            return
        attrs: dict[str, Any] = {
            n.DECIDE_TASKS_SCHEDULED: created,
            n.WORKFLOW_STATUS: str(workflow.get("status")),
        }
        if conflicts:
            attrs[n.DECIDE_CONFLICTS] = conflicts
        span.set_attributes(attrs)


_OFF = DecideSpan(None)


class _BatchDecide(DecideSpan):
    """One decide of a batch call, recorded on the call's SERVER span (see
    :meth:`DecideSpans.decide`): a link to the task's scheduler, nothing per workflow."""

    __slots__ = ()

    def read(
        self,
        workflow: Mapping[str, Any],
        task_id: str | None,
        find: Callable[[Mapping[str, Any], Iterable[str]], Mapping[str, Any]] | None = None,
    ) -> None:
        span = self.span
        if span is None or self._linked or task_id is None or not span.is_recording():
            return
        self._linked = True
        link_to(span, _task(workflow, task_id, find), "scheduled_by")

    def done(self, workflow: Mapping[str, Any], created: int, conflicts: int = 0) -> None:
        return None  # one workflow's status and counts would stand for all of the call's


class DecideSpans:
    """Opens decide spans (``decide {operation}``) with the shell's tracer, or none.

    ``each_in_batch``: the decides of a call that concerns several workflows (a batch of
    claims) get a span each; otherwise (the default ``hops`` detail) they are recorded on the
    call's own span.
    """

    def __init__(self, tracer: Tracer | None, each_in_batch: bool = False) -> None:
        self.tracer = tracer
        self.each_in_batch = each_in_batch
        self._follows_parent = tracer is not None and follows_parent(tracer)

    @staticmethod
    @contextmanager
    def _open(
        tracer: Tracer, operation: str, workflow_id: str | None, task_id: str | None
    ) -> Iterator[DecideSpan]:
        attrs = _decide_attributes(operation, workflow_id, task_id)
        span = tracer.start_span(f"decide {operation}", attributes=attrs)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield DecideSpan(span)
        except BaseException as exc:
            mark_error(span, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def decide(
        self, operation: str, workflow_id: str | None = None, task_id: str | None = None
    ) -> AbstractContextManager[DecideSpan]:
        """A context manager yielding a :class:`DecideSpan`; a shared no-op one when tracing is
        off or the trace is not sampled.

        When the decide is what an RPC call about this one workflow asked for (its SERVER span
        names this workflow, or it is the call that starts one), that span is the decide's
        span: it gets the decide's attributes and links instead of a child span doing the
        same. A decide the call leads to on another workflow (a parent notified, a child
        started) gets a ``decide {operation}`` span of its own. So does one of several in a
        batch call (claims of tasks of several workflows) with ``each_in_batch``; without it
        the call's span records them all: the operation, the ids of the tasks and of their
        workflows (``podium.decide.task_ids``, ``podium.decide.workflow_ids``), a
        ``scheduled_by`` link per task, and an event per decide that failed.
        """
        if self.tracer is None or (self._follows_parent and unsampled() is not None):
            return _NO_DECIDE
        current = trace.get_current_span()
        if _adoptable(current, workflow_id):
            return _adopt(current, operation, workflow_id, task_id)
        if not self.each_in_batch and _batch_call(current):
            return _in_batch(current, operation, workflow_id, task_id)
        return self._open(self.tracer, operation, workflow_id, task_id)


#: RPC methods that start a workflow (the call names no workflow id before it exists).
_STARTS = frozenset({"decider.start_workflow"})
#: RPC methods whose one call may decide on several workflows (a claim per task).
_BATCHES = frozenset({"decider.claim"})


def _adoptable(span: Span, workflow_id: str | None) -> bool:
    if getattr(span, "kind", None) is not SpanKind.SERVER or not span.is_recording():
        return False
    attrs = getattr(span, "attributes", None) or {}
    if n.DECIDE_OPERATION in attrs:
        return False  # it already carries a decide
    call_workflow = attrs.get(n.WORKFLOW_ID)
    if call_workflow is not None:
        return bool(call_workflow == workflow_id)
    return attrs.get(n.RPC_METHOD) in _STARTS


@contextmanager
def _adopt(
    span: Span, operation: str, workflow_id: str | None, task_id: str | None
) -> Iterator[DecideSpan]:
    """The decide on the current SERVER span (which the RPC layer ends and marks on error)."""
    span.set_attributes(_decide_attributes(operation, workflow_id, task_id))
    yield DecideSpan(span)


def _batch_call(span: Span) -> bool:
    """Whether ``span`` is the SERVER span of a call that decides on several workflows (one
    naming a single workflow is adopted instead)."""
    if getattr(span, "kind", None) is not SpanKind.SERVER or not span.is_recording():
        return False
    attrs = getattr(span, "attributes", None) or {}
    return attrs.get(n.RPC_METHOD) in _BATCHES and n.WORKFLOW_ID not in attrs


@contextmanager
def _in_batch(
    span: Span, operation: str, workflow_id: str | None, task_id: str | None
) -> Iterator[DecideSpan]:
    """One decide of a batch call, recorded on the call's span (a failure as an event: the
    other decides of the call go on)."""
    attrs = getattr(span, "attributes", None) or {}
    added: dict[str, Any] = {}
    if n.DECIDE_OPERATION not in attrs:
        added[n.DECIDE_OPERATION] = operation
    for key, value in ((n.DECIDE_TASK_IDS, task_id), (n.DECIDE_WORKFLOW_IDS, workflow_id)):
        if value:
            added[key] = (*attrs.get(key, ()), value)
    span.set_attributes(added)
    try:
        yield _BatchDecide(span)
    except BaseException as exc:
        code = error_code(exc)
        event: dict[str, Any] = {n.DECIDE_OPERATION: operation, n.ERROR_TYPE: code}
        if workflow_id:
            event[n.WORKFLOW_ID] = workflow_id
        if task_id:
            event[n.TASK_ID] = task_id
        span.add_event("decide failed", event)
        raise


def _decide_attributes(
    operation: str, workflow_id: str | None, task_id: str | None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {n.DECIDE_OPERATION: operation}
    if workflow_id:
        attrs[n.WORKFLOW_ID] = workflow_id
    if task_id:
        attrs[n.TASK_ID] = task_id
    return attrs


class _NoSpan(AbstractContextManager[DecideSpan]):
    """What :meth:`DecideSpans.decide` returns when there is nothing to record (stateless)."""

    __slots__ = ()

    def __enter__(self) -> DecideSpan:
        return _OFF

    def __exit__(self, *exc: object) -> None:
        return None


_NO_DECIDE = _NoSpan()


@contextmanager
def untraced() -> Iterator[None]:
    """Run a block in an unsampled trace: background polling that finds nothing is not news.

    The block's spans are not recorded, and its RPC calls carry a not-sampled ``traceparent``,
    so the services they reach (with a parent-based sampler) record nothing either.
    """
    ctx = SpanContext(
        random.getrandbits(128) or 1,
        random.getrandbits(64) or 1,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(ctx)))
    try:
        yield
    finally:
        otel_context.detach(token)


@contextmanager
def consume(
    tracer: Tracer | None,
    queue: str,
    attributes: Mapping[str, Any],
    record: Mapping[str, Any] | None = None,
) -> Iterator[Span | None]:
    """A new trace for work taken from ``queue`` (a CONSUMER ``process {queue}`` span).

    It starts from an empty context (not the poll that found the work) and links to the span
    that created ``record`` when the record carries one.
    """
    if tracer is None:
        yield None
        return
    attrs = {
        n.MSG_SYSTEM: n.QUEUE_SYSTEM,
        n.MSG_OPERATION: "process",
        n.MSG_OPERATION_TYPE: "process",
        n.MSG_DESTINATION: queue,
        **attributes,
    }
    span = tracer.start_span(
        f"process {queue}", context=otel_context.Context(), kind=SpanKind.CONSUMER, attributes=attrs
    )
    link_to(span, record, "scheduled_by")
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except BaseException as exc:
        if span.is_recording():
            code = error_code(exc)
            span.set_attribute(n.ERROR_TYPE, code)
            span.set_status(Status(StatusCode.ERROR, code))
        raise
    finally:
        otel_context.detach(token)
        span.end()
