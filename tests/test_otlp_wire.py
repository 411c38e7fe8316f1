"""OTLP written from the export child's frames (podium/telemetry/otlp_wire.py): the bytes parse
to the message the SDK's own encoder makes of the same spans, and a service's spans reach an
OTLP/HTTP collector through the child."""

from __future__ import annotations

import gzip
import http.server
import logging
import threading
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from podium.telemetry import otlp_wire
from podium.telemetry.export_process import _direct, pack_spans, unpack_spans
from podium.telemetry.lean import LeanTracer
from podium.telemetry.setup import TelemetryConfig, start_telemetry

pytestmark = pytest.mark.timeout(60)

RESOURCE_ATTRS: dict[str, Any] = {
    "service.name": "podium-decider",
    "service.instance.id": "i-1",
    "host.ids": ("a", "b"),
    "process.pid": 4242,
}
SCHEMA = "https://opentelemetry.io/schemas/1.21.0"
RESOURCE = Resource(RESOURCE_ATTRS, SCHEMA)
SCOPE = InstrumentationScope("podium")

#: Every kind of attribute value a span may carry, edge values included.
VALUES: dict[str, Any] = {
    "s": "decider.update_task",
    "empty": "",
    "unicode": "wörkflow ✓",
    "long": "x" * 300,
    "zero": 0,
    "one": 1,
    "negative": -5,
    "big": 2**63 - 1,
    "smallest": -(2**63),
    "varint edge": 300,
    "t": True,
    "f": False,
    "half": 0.5,
    "neg float": -1e300,
    "strs": ["push a", "remove b", ""],
    "ints": [1, -2, 2**40],
    "bools": [True, False],
    "floats": [0.25],
    "no items": [],
}


def _spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    tracer = LeanTracer(ALWAYS_ON, RESOURCE, SCOPE, [SimpleSpanProcessor(memory)])
    remote = SpanContext(
        0xABC << 64 | 7,
        0x1234,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "v1"), ("other", "x")]),
    )
    parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    for i, kind in enumerate(SpanKind):
        span = tracer.start_span(f"op {kind.name}", context=parent, kind=kind, attributes=VALUES)
        span.add_link(SpanContext(2**127 + i, 2**63 + 9, True), {"podium.link.kind": "x"})
        span.add_link(SpanContext(5, 6 + i, False))
        span.add_event("decide failed", {"error.type": "Conflict", "n": i})
        span.add_event("")
        span.record_exception(ValueError("bad"))
        span.set_status(Status(StatusCode.ERROR, "it failed") if i % 2 else Status(StatusCode.OK))
        span.end()
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        child = tracer.start_span("local child")  # a parent that is not remote
        child.end()
        root.set_attribute("podium.workflow.id", "3f2a" * 9)
    unnamed = tracer.start_span("")
    unnamed.end()
    return list(memory.get_finished_spans())


def _sdk(spans: list[ReadableSpan]) -> ExportTraceServiceRequest:
    request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(
        encode_spans(spans).SerializeToString()
    )
    return request


def _encoder() -> otlp_wire.Encoder:
    return otlp_wire.Encoder(otlp_wire.Envelope(RESOURCE_ATTRS, SCHEMA, SCOPE.name))


def test_the_wire_bytes_are_the_message_the_sdk_encodes() -> None:
    spans = _spans()
    payload = pack_spans(spans)
    wire = ExportTraceServiceRequest.FromString(_encoder().encode_spans(msgpack.unpackb(payload)))
    # the spans as made, and as the child rebuilt them before (unpack_spans)
    assert wire == _sdk(spans)
    assert wire == _sdk(unpack_spans(payload, RESOURCE, SCOPE))
    (resource_spans,) = wire.resource_spans
    assert resource_spans.schema_url == SCHEMA
    (scope_spans,) = resource_spans.scope_spans
    assert scope_spans.scope.name == "podium"
    assert len(scope_spans.spans) == len(spans) == 8
    first = scope_spans.spans[0]
    assert first.trace_state == "vendor=v1,other=x" and first.flags == 0x300
    assert {a.key for a in first.attributes} == set(VALUES)
    assert scope_spans.spans[-2].flags == 0x100  # the local child


def test_the_cache_changes_no_byte_when_it_fills_and_starts_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payload = pack_spans(_spans())
    first = _encoder().encode_spans(msgpack.unpackb(payload))
    monkeypatch.setattr(otlp_wire, "CACHE_LIMIT", 3)
    small = _encoder()
    assert small.encode_spans(msgpack.unpackb(payload)) == first
    # now from a cache that started over
    assert small.encode_spans(msgpack.unpackb(payload)) == first
    assert len(small._cache) <= 3


def test_an_integer_beyond_int64_is_left_out_as_the_sdk_leaves_it_and_the_rest_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = InMemorySpanExporter()
    tracer = LeanTracer(ALWAYS_ON, RESOURCE, SCOPE, [SimpleSpanProcessor(memory)])
    # beyond int64 (OTLP drops it), and beyond msgpack's 64 bits (the frame drops it)
    tracer.start_span("op", attributes={"huge": 2**63, "kept": 1, "bigger": 2**64}).end()
    spans = list(memory.get_finished_spans())
    with caplog.at_level(logging.WARNING):
        values = msgpack.unpackb(pack_spans(spans))
        wire = ExportTraceServiceRequest.FromString(_encoder().encode_spans(values))
        sdk = _sdk(spans)
    assert wire == sdk
    assert [a.key for a in wire.resource_spans[0].scope_spans[0].spans[0].attributes] == ["kept"]
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "huge" in logged and "bigger" in logged


def _spec() -> dict[str, Any]:
    return {"resource": RESOURCE_ATTRS, "schema_url": SCHEMA, "scope": "podium"}


def test_the_sdks_http_exporter_is_fed_wire_bytes_unless_its_own_metrics_are_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = OTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces")
    direct, rest = _direct([exporter], _spec())
    assert [e for e, _ in direct] == [exporter] and rest == []
    ((_, export),) = direct
    assert isinstance(export.__self__, otlp_wire.WireExporter)  # type: ignore[attr-defined]
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    direct, rest = _direct([exporter], _spec())
    assert direct == [] and rest == [exporter]


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_services_spans_reach_the_collector_through_the_child(
    collector: tuple[str, list[tuple[dict[str, str], bytes]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = collector
    # The child reads the exporter's settings from its environment, as the SDK does.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=podium")
    config = TelemetryConfig.from_env({"OTEL_TRACES_EXPORTER": "otlp"}, "podium-decider")
    telemetry = start_telemetry(config)
    assert telemetry.tracer is not None
    for i in range(50):
        telemetry.tracer.start_span(f"op {i}", attributes={"i": i}).end()
    telemetry.flush()
    telemetry.shutdown()  # the child sends what it read, then exits
    spans = []
    for headers, body in received:
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["content-encoding"] == "gzip" and headers["x-tenant"] == "podium"
        request = ExportTraceServiceRequest.FromString(gzip.decompress(body))
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            assert service["service.name"] == "podium-decider"
            for scope_spans in resource_spans.scope_spans:
                spans.extend(scope_spans.spans)
    assert sorted(s.attributes[0].value.int_value for s in spans) == list(range(50))
    assert {s.name for s in spans} == {f"op {i}" for i in range(50)}
