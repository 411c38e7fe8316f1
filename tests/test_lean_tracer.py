"""The lean tracer the services make spans with: the same spans and sampling decisions as the
OpenTelemetry SDK's tracer, handed to the SDK's processors and exporters."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)

from podium.telemetry.lean import LeanSpan, LeanTracer
from podium.telemetry.setup import INSTRUMENTATION_NAME, TelemetryConfig, _sampler, start_telemetry

RESOURCE = Resource.create({"service.name": "lean-test"})


def tracers(sampler: Sampler) -> tuple[Tracer, Tracer, InMemorySpanExporter, InMemorySpanExporter]:
    """The SDK's tracer and a lean one with the same sampler, each with its own memory."""
    sdk_memory, lean_memory = InMemorySpanExporter(), InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(sdk_memory))
    lean = LeanTracer(
        sampler,
        RESOURCE,
        InstrumentationScope(INSTRUMENTATION_NAME),
        [SimpleSpanProcessor(lean_memory)],
    )
    return provider.get_tracer(INSTRUMENTATION_NAME), lean, sdk_memory, lean_memory


def remote(sampled: bool) -> otel_context.Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(parent), otel_context.Context())


def workload(tracer: Tracer) -> None:
    """What Podium's instrumentation does with spans: a server span under a remote parent
    with attributes set at start and later, a link, a renamed child, an error."""
    server = tracer.start_span(
        "decider.claim",
        context=remote(True),
        kind=SpanKind.SERVER,
        attributes={"rpc.method": "decider.claim", "conductor.workflow.id": "wf-1"},
    )
    token = otel_context.attach(trace.set_span_in_context(server))
    try:
        server.set_attributes({"podium.decide.tasks_scheduled": 2, "podium.list": ["a", "b"]})
        server.add_link(SpanContext(0x99, 0x98, is_remote=True), {"podium.link.kind": "x"})
        child = tracer.start_span("GET", kind=SpanKind.INTERNAL, attributes={"n": 1})
        child.update_name("GET /api/x")
        child.set_status(Status(StatusCode.ERROR, "boom"))
        child.record_exception(ValueError("bad value"))
        child.end()
    finally:
        otel_context.detach(token)
    server.set_status(StatusCode.OK)
    server.set_status(StatusCode.ERROR, "after OK")  # ignored: OK is final
    server.end()
    server.set_attribute("late", 1)  # ignored: ended


def shape(span: ReadableSpan, ids: dict[int, int]) -> dict[str, Any]:
    """What an exporter sees of a span; span ids, which are random, as positions in ``ids``."""
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind,
        "trace_id": span.context.trace_id,
        "sampled": span.context.trace_flags.sampled,
        "parent": (parent.trace_id, ids.get(parent.span_id, parent.span_id)) if parent else None,
        "attributes": dict(span.attributes or {}),
        "links": [(link.context.span_id, dict(link.attributes or {})) for link in span.links],
        "events": [(e.name, sorted(e.attributes or {})) for e in span.events],
        "status": (span.status.status_code, span.status.description),
        "resource": span.resource.attributes.get("service.name"),
        "scope": span.instrumentation_scope.name if span.instrumentation_scope else None,
    }


def positions(spans: tuple[ReadableSpan, ...]) -> dict[int, int]:
    return {s.context.span_id: i for i, s in enumerate(spans)}


def test_the_lean_spans_are_the_sdk_spans() -> None:
    sdk, lean, sdk_memory, lean_memory = tracers(ParentBased(ALWAYS_ON))
    workload(sdk)
    workload(lean)
    made, expected = lean_memory.get_finished_spans(), sdk_memory.get_finished_spans()
    assert [shape(s, positions(made)) for s in made] == [
        shape(s, positions(expected)) for s in expected
    ]
    child, server = made
    assert child.parent is not None and child.parent.span_id == server.context.span_id
    assert server.parent is not None and server.parent.span_id == 0x5678
    attributes = dict(server.attributes or {})
    assert attributes["podium.list"] == ("a", "b") and "late" not in attributes
    assert child.start_time and child.end_time and child.end_time >= child.start_time


@pytest.mark.parametrize(
    ("sampler", "parent", "sampled"),
    [
        (ParentBased(ALWAYS_ON), None, True),
        (ParentBased(ALWAYS_ON), False, False),  # the parent's flag wins
        (ParentBased(ALWAYS_OFF), True, True),
        (ParentBased(ALWAYS_OFF), None, False),
        (ALWAYS_OFF, True, False),  # not parent-based: the sampler decides
        (ALWAYS_ON, False, True),
    ],
)
def test_sampling_is_the_sdk_samplers(sampler: Sampler, parent: bool | None, sampled: bool) -> None:
    sdk, lean, _, lean_memory = tracers(sampler)
    ctx = None if parent is None else remote(parent)
    made = [t.start_span("s", context=ctx) for t in (sdk, lean)]
    assert [s.get_span_context().trace_flags.sampled for s in made] == [sampled, sampled]
    assert [s.is_recording() for s in made] == [sampled, sampled]
    assert isinstance(made[1], LeanSpan) == sampled
    made[1].end()
    assert len(lean_memory.get_finished_spans()) == (1 if sampled else 0)
    if parent is not None:  # a child stays in its parent's trace either way
        assert made[1].get_span_context().trace_id == 0x1234


def test_a_ratio_sampler_decides_roots_as_the_sdk_does() -> None:
    sampler = _sampler("traceidratio", 0.5)
    _, lean, _, _ = tracers(sampler)
    decisions = [lean.start_span("root").get_span_context() for _ in range(400)]
    for ctx in decisions:
        decision = sampler.should_sample(None, ctx.trace_id, "root").decision
        expected = decision is Decision.RECORD_AND_SAMPLE
        assert ctx.trace_flags.sampled == expected
    assert 100 < sum(c.trace_flags.sampled for c in decisions) < 300


def test_values_opentelemetry_does_not_allow_are_left_out() -> None:
    _, lean, _, memory = tracers(ALWAYS_ON)
    span = lean.start_span("s", attributes={"ok": "x", "none": None, "map": {"a": 1}})
    span.set_attributes({"mixed": [1, "a"], "ints": [1, 2], "flag": True, "f": 1.5})
    span.end()
    (made,) = memory.get_finished_spans()
    assert dict(made.attributes or {}) == {"ok": "x", "ints": (1, 2), "flag": True, "f": 1.5}


def test_the_services_telemetry_uses_the_lean_tracer() -> None:
    telemetry = start_telemetry(TelemetryConfig(service_name="svc", exporters=("discard",)))
    try:
        assert isinstance(telemetry.tracer, LeanTracer)
        assert isinstance(telemetry.tracer.sampler, ParentBased)
        assert telemetry.tracer.resource.attributes["service.name"] == "svc"
    finally:
        telemetry.shutdown()
