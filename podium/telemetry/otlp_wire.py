"""OTLP's protobuf wire format, written straight from the export child's frames.

The SDK's OTLP exporter turns each span into a tree of protobuf objects (one per attribute,
value, event and link) and serialises it: about 32 µs of CPU per span on the reference
machine, on top of the 8 µs it takes the child to rebuild the SDK's span objects from a frame.
:meth:`Encoder.encode_spans` writes the same ``ExportTraceServiceRequest`` bytes from the frame's
plain values (see :mod:`podium.telemetry.frame`), keeping the encoded
attributes that recur (a service's operation names, statuses, queue names) in a bounded cache.

It encodes what the SDK's encoder does, field for field (the tests parse both with the
generated protobuf classes and compare): span and link flags that tell whether the parent (or
linked) context is remote, an empty status message when the status is unset, no trace state
on links. Resource and instrumentation scope are the same for every span of a child, so their
part of the message is built once, by the generated classes (:class:`Envelope`).
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans

log = logging.getLogger("podium.telemetry")

_FIXED64 = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")
_FIXED32 = struct.Struct("<I")

#: ``SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK``, and with ``SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK``.
_LOCAL_FLAGS = b"\x85\x01" + _FIXED32.pack(0x100)
_REMOTE_FLAGS = b"\x85\x01" + _FIXED32.pack(0x300)
_LINK_LOCAL_FLAGS = b"\x35" + _FIXED32.pack(0x100)
_LINK_REMOTE_FLAGS = b"\x35" + _FIXED32.pack(0x300)
#: Span.kind is the SDK's SpanKind position plus one (0 is SPAN_KIND_UNSPECIFIED).
_KINDS = tuple(b"\x30" + bytes([i + 1]) for i in range(5))

#: How many encoded attributes the cache keeps before it starts over.
CACHE_LIMIT = 8192
#: Strings longer than this are encoded each time (ids, messages), not cached.
CACHE_MAX_LEN = 64


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field: its tag, the body's length, the body."""
    n = len(body)
    return tag + (bytes((n,)) if n < 0x80 else _varint(n)) + body


def _string(tag: bytes, text: str) -> bytes:
    return _field(tag, text.encode("utf-8", "surrogatepass"))


def _value(value: Any) -> bytes:
    """An ``AnyValue`` message's body (the oneof is set even to an empty or zero value)."""
    if isinstance(value, str):
        return _string(b"\x0a", value)
    if value is True:
        return b"\x10\x01"
    if value is False:
        return b"\x10\x00"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"integer attribute beyond int64: {value}")
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int64: two's complement
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if value is None:
        return b""
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _value(v)) for v in value))
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    raise TypeError(f"attribute value of type {type(value).__name__}: {value!r}")


def _key_value(key: str, value: Any) -> bytes:
    return _string(b"\x0a", key) + _field(b"\x12", _value(value))


class Encoder:
    """Encodes frames; keeps the encoded attributes that recur (see :data:`CACHE_LIMIT`)."""

    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope
        self._cache: dict[tuple[str, Any], bytes] = {}

    def _attributes(self, tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        if not attributes:
            return b""
        cache = self._cache
        parts = []
        for key, value in attributes.items():
            kind = type(value)
            cached = kind is not list and (kind is not str or len(value) <= CACHE_MAX_LEN)
            item = ((key, value) if kind is str else (key, (kind, value))) if cached else None
            encoded = cache.get(item) if item is not None else None
            if encoded is None:
                try:
                    encoded = _field(tag, _key_value(key, value))
                except (TypeError, ValueError) as exc:  # dropped, as the SDK's encoder does
                    log.warning("span attribute %s not exported: %s", key, exc)
                    continue
                if item is not None:
                    if len(cache) >= CACHE_LIMIT:
                        cache.clear()
                    cache[item] = encoded
            parts.append(encoded)
        return b"".join(parts)

    def _span(self, raw: Sequence[Any]) -> bytes:
        name, ctx, parent, kind, start, end, code, desc, attrs, events, links = raw
        trace_id, span_id, _flags, _remote, state = ctx
        out = [b"\x0a\x10", trace_id, b"\x12\x08", span_id.to_bytes(8, "big")]
        if state:
            out.append(_string(b"\x1a", ",".join(f"{k}={v}" for k, v in state)))
        if parent is not None:
            out += (b"\x22\x08", parent[1].to_bytes(8, "big"))
        if name:
            out.append(_string(b"\x2a", name))
        out += (_KINDS[kind], b"\x39", _FIXED64.pack(start), b"\x41", _FIXED64.pack(end))
        out.append(self._attributes(b"\x4a", attrs))
        for ev_name, ev_time, ev_attrs in events:
            body = (
                b"\x09" + _FIXED64.pack(ev_time) + (_string(b"\x12", ev_name) if ev_name else b"")
            )
            out.append(_field(b"\x5a", body + self._attributes(b"\x1a", ev_attrs)))
        for link_ctx, link_attrs in links:
            body = b"\x0a\x10" + link_ctx[0] + b"\x12\x08" + link_ctx[1].to_bytes(8, "big")
            body += self._attributes(b"\x22", link_attrs)
            body += _LINK_REMOTE_FLAGS if link_ctx[3] else _LINK_LOCAL_FLAGS
            out.append(_field(b"\x6a", body))
        status = (_string(b"\x12", desc) if desc else b"") + (
            b"\x18" + bytes((code,)) if code else b""
        )
        out.append(_field(b"\x7a", status))
        out.append(_REMOTE_FLAGS if parent is not None and parent[3] else _LOCAL_FLAGS)
        return b"".join(out)

    def encode_spans(self, spans: Sequence[Sequence[Any]]) -> bytes:
        """An ``ExportTraceServiceRequest`` of the spans (a frame's unpacked values)."""
        return self._envelope.wrap(b"".join(_field(b"\x12", self._span(s)) for s in spans))


class Envelope:
    """The resource and instrumentation scope around a child's spans, encoded once."""

    def __init__(
        self,
        resource: Mapping[str, Any],
        resource_schema_url: str | None,
        scope_name: str,
        scope_version: str | None = None,
        scope_schema_url: str | None = None,
    ) -> None:
        attributes = [
            KeyValue(key=k, value=AnyValue.FromString(_value(v))) for k, v in resource.items()
        ]
        self._resource = ResourceSpans(
            resource=Resource(attributes=attributes), schema_url=resource_schema_url or ""
        ).SerializeToString()
        self._scope = ScopeSpans(
            scope=InstrumentationScope(name=scope_name, version=scope_version or ""),
            schema_url=scope_schema_url or "",
        ).SerializeToString()

    def wrap(self, spans: bytes) -> bytes:
        """The request around ``spans`` (their ``ScopeSpans.spans`` fields, encoded)."""
        # Fields may come in any order on the wire: the spans follow the scope's own fields.
        resource_spans = self._resource + _field(b"\x12", self._scope + spans)
        return _field(b"\x0a", resource_spans)


class WireExporter:
    """The SDK's OTLP/HTTP exporter, sent what :class:`Encoder` wrote.

    It goes through the exporter's own HTTP client, so the endpoint, headers, compression,
    certificates, timeout and retries are the ones the ``OTEL_EXPORTER_OTLP_*`` variables set
    for it. :func:`wire_exporter` gives one only where that client is there to use (the
    locked SDK version has it); elsewhere the child hands spans to the exporter itself.
    """

    def __init__(self, exporter: Any, encoder: Encoder) -> None:
        self._client = exporter._client
        self._max = int(getattr(exporter, "_max_request_size", 0) or 0)
        self._encoder = encoder

    def export_values(self, spans: Sequence[Sequence[Any]]) -> bool:
        """Encode and send a frame's spans (its values); whether the collector took them."""
        data = self._encoder.encode_spans(spans)
        if 0 < self._max < len(data):
            log.warning(
                "span batch of %d bytes dropped: over the exporter's request limit of %d",
                len(data),
                self._max,
            )
            return False
        return bool(self._client.export(data).success)


def wire_exporter(exporter: Any, encoder: Encoder) -> WireExporter | None:
    """A :class:`WireExporter` around ``exporter`` if it is the SDK's OTLP/HTTP exporter with
    its HTTP client, and its own metrics are off (they are counted in its ``export``)."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        return None
    client = getattr(exporter, "_client", None)
    metrics_on = os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower()
    if type(exporter) is not OTLPSpanExporter or not callable(getattr(client, "export", None)):
        return None
    if metrics_on == "true":
        return None
    return WireExporter(exporter, encoder)
