"""A span as plain values: what the export child's frames carry and its exporters read.

``[name, context, parent context | None, kind, start_ns, end_ns, status code, status
description, attributes, events, links]``, a context being ``[trace id (16 bytes), span id,
flags, is remote, trace state items | None]``, a kind and a status code their positions in
:data:`KINDS` and :data:`CODES`, an event ``[name, time_ns, attributes]`` and a link
``[context, attributes]``. :func:`podium.telemetry.export_process.pack_spans` packs them with
msgpack; the JSON lines exporter and :mod:`podium.telemetry.otlp_wire` write from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

KINDS = tuple(SpanKind)
CODES = tuple(StatusCode)


def context_values(ctx: SpanContext) -> list[Any]:
    state = ctx.trace_state
    return [
        ctx.trace_id.to_bytes(16, "big"),
        ctx.span_id,
        int(ctx.trace_flags),
        ctx.is_remote,
        list(state.items()) if state else None,
    ]


def span_values(spans: Sequence[ReadableSpan]) -> list[list[Any]]:
    """The values of each span that has a context (an SDK span always has one)."""
    out: list[list[Any]] = []
    for s in spans:
        ctx = s.get_span_context()
        if ctx is None:
            continue
        status = s.status
        out.append(
            [
                s.name,
                context_values(ctx),
                context_values(s.parent) if s.parent is not None else None,
                KINDS.index(s.kind),
                s.start_time,
                s.end_time,
                CODES.index(status.status_code),
                status.description,
                dict(s.attributes or {}),
                [[e.name, e.timestamp, dict(e.attributes or {})] for e in s.events],
                [[context_values(link.context), dict(link.attributes or {})] for link in s.links],
            ]
        )
    return out
