"""The tracer Podium's services make their spans with: the SDK's data, a fraction of its cost.

A span made by the SDK's tracer costs 15-20 µs of CPU from start to end (sampling through the
configured sampler, a bounded and checked attribute map, a lock, a second object made at the
end), and a workflow makes about twenty. :class:`LeanTracer` makes the same spans for a
quarter of that:

* a child of a valid parent follows the parent's sampled flag, as every ``parentbased_*``
  sampler does, without asking the sampler; a root (or a child under another sampler) asks
  the configured SDK sampler, so sampling decisions are the SDK's;
* a recording span (:class:`LeanSpan`) keeps its attributes in a plain dict and checks their
  types once, when it ends; it is then handed to the span processors as the SDK's own
  :class:`~opentelemetry.sdk.trace.ReadableSpan`, so batching and every exporter are the
  SDK's, unchanged.

What it leaves out: the SDK's span limits (Podium's spans carry a dozen attributes and at
most two links) and ``on_start`` of the processors (the batch processors
:func:`podium.telemetry.setup.start_telemetry` makes do nothing there).
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

_UNSET = Status(StatusCode.UNSET)
_SAMPLED = frozenset({Decision.RECORD_AND_SAMPLE})
_RANDOM = TraceFlags.RANDOM_TRACE_ID
_PRIMITIVE = (str, bool, int, float)


class LeanTracer(Tracer):
    """Spans for the SDK's span processors, sampled by the SDK's sampler (see the module)."""

    def __init__(
        self,
        sampler: Sampler,
        resource: Resource,
        scope: InstrumentationScope,
        processors: Sequence[SpanProcessor],
    ) -> None:
        #: read by :func:`podium.telemetry.propagation.follows_parent`
        self.sampler = sampler
        self.resource = resource
        self.scope = scope
        self.processors = tuple(processors)
        self._follows_parent = isinstance(sampler, ParentBased)

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Span:
        parent: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent is not None and parent.is_valid:
            trace_id, flags = parent.trace_id, parent.trace_flags & _RANDOM
            trace_state = parent.trace_state
            if self._follows_parent:
                sampled = parent.trace_flags.sampled
            else:
                sampled = self._sample(context, trace_id, name, kind, attributes, links)
        else:
            parent = None
            trace_id, flags, trace_state = random.getrandbits(128) or 1, _RANDOM, None
            sampled = self._sample(context, trace_id, name, kind, attributes, links)
        span_id = random.getrandbits(64) or 1
        if not sampled:
            return NonRecordingSpan(
                SpanContext(trace_id, span_id, False, TraceFlags(flags), trace_state)
            )
        span_context = SpanContext(
            trace_id, span_id, False, TraceFlags(flags | TraceFlags.SAMPLED), trace_state
        )
        return LeanSpan(
            self,
            name,
            span_context,
            parent,
            kind,
            dict(attributes) if attributes else {},
            list(links or ()),
            start_time or time_ns(),
        )

    def _sample(
        self,
        context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
        links: Sequence[Link] | None,
    ) -> bool:
        result = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        return result.decision in _SAMPLED

    @contextmanager
    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LeanSpan(Span):
    """A recording span of :class:`LeanTracer`; ended, it goes to the processors as a
    :class:`~opentelemetry.sdk.trace.ReadableSpan`."""

    __slots__ = (
        "_attributes",
        "_context",
        "_end",
        "_events",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_start",
        "_status",
        "_tracer",
    )

    def __init__(
        self,
        tracer: LeanTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: list[Link],
        start: int,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._links = links
        self._events: list[Event] = []
        self._status = _UNSET
        self._start = start
        self._end: int | None = None

    # what Podium's instrumentation reads back (as it would of the SDK's span)
    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> SpanKind:
        return self._kind

    @property
    def attributes(self) -> Mapping[str, Any]:
        return self._attributes

    @property
    def parent(self) -> SpanContext | None:
        return self._parent

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end is None:
            self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end is None:
            self._attributes.update(attributes)

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
        if self._end is None and context.is_valid:
            self._links.append(Link(context, dict(attributes) if attributes else None))

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        if self._end is None:
            self._events.append(Event(name, _valid(attributes or {}), timestamp))

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """As the SDK's span: OK is final, UNSET is ignored."""
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return
        new = status if isinstance(status, Status) else Status(status, description)
        if new.status_code is not StatusCode.UNSET:
            self._status = new

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An ``exception`` event with the attributes the SDK's span gives it."""
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        event: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        event.update(attributes or {})
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end = end_time or time_ns()
        tracer = self._tracer
        readable = ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=tracer.resource,
            attributes=_valid(self._attributes),
            events=self._events,
            links=self._links,
            kind=self._kind,
            status=self._status,
            start_time=self._start,
            end_time=end,
            instrumentation_scope=tracer.scope,
        )
        for processor in tracer.processors:
            processor.on_end(readable)


def _valid(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes whose values OpenTelemetry allows (a primitive, or a list of one type of
    primitive, as a tuple); the others are left out, as the SDK leaves them out."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if isinstance(value, _PRIMITIVE):
            out[key] = value
        elif isinstance(value, list | tuple) and _homogeneous(value):
            out[key] = tuple(value)
    return out


def _homogeneous(values: Sequence[Any]) -> bool:
    kinds = {type(v) for v in values if v is not None}
    return len(kinds) <= 1 and all(issubclass(k, _PRIMITIVE) for k in kinds)
