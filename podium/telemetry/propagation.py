"""The W3C trace context in RPC headers and on records, with a fast path for the usual case.

``OTEL_PROPAGATORS`` (default ``tracecontext,baggage``) is honoured through the global
text-map propagator. When it is the default and a context carries no ``tracestate`` and no
baggage (nearly always), the ``traceparent`` header is written and read directly: the generic
path costs ~10 µs to inject and ~20 µs to extract per call, on a hop that happens a dozen
times per workflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import ParentBased
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags, Tracer

_DEFAULT_FIELDS = frozenset({"traceparent", "tracestate", "baggage"})
_HEX = frozenset("0123456789abcdef")


def _default_propagators() -> bool:
    # OTEL_PROPAGATORS is read once, when opentelemetry.propagate is imported.
    return set(propagate.get_global_textmap().fields) == _DEFAULT_FIELDS


FAST = _default_propagators()


def traceparent(ctx: SpanContext) -> str:
    """The W3C ``traceparent`` header value of a span context."""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def parse_traceparent(value: Any) -> SpanContext | None:
    """The (remote) span context in a ``traceparent`` value; None if absent or malformed.

    Any flags byte is accepted (``03`` = sampled plus the level-2 "random" bit).
    """
    if not isinstance(value, str) or len(value) < 55 or value[2] != "-" or value[35] != "-":
        return None
    if value[52] != "-" or (value[:2] == "00" and len(value) != 55):
        return None
    trace_hex, span_hex, flags_hex = value[3:35], value[36:52], value[53:55]
    if not _HEX.issuperset(trace_hex) or not _HEX.issuperset(span_hex):
        return None
    try:
        trace_id, span_id, flags = int(trace_hex, 16), int(span_hex, 16), int(flags_hex, 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def follows_parent(tracer: Tracer) -> bool:
    """Whether ``tracer`` samples a child as its parent was sampled (the ``parentbased_*``).

    With such a sampler a span under a not-sampled parent would be dropped anyway, so the
    instrumentation does not ask for one: it only passes the context on. Making (and
    dropping) a span per hop would cost about as much as recording it.
    """
    return isinstance(getattr(tracer, "sampler", None), ParentBased)


def unsampled(ctx: Context | None = None) -> Span | None:
    """The current span (or ``ctx``'s) if it belongs to a trace that is not sampled."""
    span = trace.get_current_span(ctx)
    span_ctx = span.get_span_context()
    return span if span_ctx.is_valid and not span_ctx.trace_flags.sampled else None


def inject(span: Span, headers: dict[str, str]) -> None:
    """Put ``span``'s context into ``headers`` (sampled or not: the flags say which)."""
    ctx = span.get_span_context()
    if FAST and not ctx.trace_state and not baggage.get_all():
        headers["traceparent"] = traceparent(ctx)
    else:
        propagate.inject(headers, context=trace.set_span_in_context(span))


def extract(headers: Mapping[str, str]) -> Context:
    """The context a caller sent in ``headers`` (an empty one if none)."""
    if not headers:
        return Context()
    if FAST and len(headers) == 1:
        ctx = parse_traceparent(headers.get("traceparent"))
        if ctx is not None:
            return trace.set_span_in_context(NonRecordingSpan(ctx), Context())
    return propagate.extract(headers, context=Context())
