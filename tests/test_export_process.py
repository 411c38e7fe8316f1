"""Span export in a child process (podium/telemetry/export_process.py): what the child
exports equals what the service made, and the child lives and dies with its service."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, Tracer
from opentelemetry.trace.span import TraceState

from podium.errors import ConfigError
from podium.telemetry.export_process import ExportProcess, _direct, pack_spans, unpack_spans
from podium.telemetry.jsonl import JsonLinesExporter
from podium.telemetry.lean import LeanTracer
from podium.telemetry.setup import Telemetry, TelemetryConfig, start_telemetry

pytestmark = pytest.mark.timeout(60)

RESOURCE = Resource({"service.name": "podium-decider", "service.instance.id": "i-1"})
SCOPE = InstrumentationScope("podium")


def _spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    tracer = LeanTracer(ALWAYS_ON, RESOURCE, SCOPE, [SimpleSpanProcessor(memory)])
    remote = SpanContext(
        0xABC << 64 | 7,
        0x1234,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("vendor", "v1")]),
    )
    from opentelemetry import trace

    parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    span = tracer.start_span(
        "decider.update_task",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"rpc.method": "decider.update_task", "n": 3, "ok": True, "x": 0.5},
    )
    span.set_attribute("podium.queue.operations", ["push a", "remove b"])
    span.add_link(SpanContext(2**127 + 5, 2**63 + 9, True), {"podium.link.kind": "scheduled_by"})
    span.record_exception(ValueError("bad"))
    span.set_status(Status(StatusCode.ERROR, "it failed"))
    span.end()
    root = tracer.start_span("GET /api/tasks/poll/batch/{tasktype}", kind=SpanKind.SERVER)
    root.end()
    return list(memory.get_finished_spans())


def _fields(s: ReadableSpan) -> dict[str, Any]:
    ctx, parent = s.context, s.parent

    def c(x: SpanContext | None) -> Any:
        if x is None:
            return None
        return (x.trace_id, x.span_id, int(x.trace_flags), x.is_remote, dict(x.trace_state or {}))

    return {
        "name": s.name,
        "context": c(ctx),
        "parent": c(parent),
        "kind": s.kind,
        "start": s.start_time,
        "end": s.end_time,
        "status": (s.status.status_code, s.status.description),
        "attributes": dict(s.attributes or {}),
        "events": [(e.name, e.timestamp, dict(e.attributes or {})) for e in s.events],
        "links": [(c(link.context), dict(link.attributes or {})) for link in s.links],
        "resource": dict(s.resource.attributes),
        "scope": s.instrumentation_scope.name if s.instrumentation_scope else None,
    }


def test_spans_come_back_from_a_frame_as_they_were_made() -> None:
    spans = _spans()
    back = unpack_spans(pack_spans(spans), RESOURCE, SCOPE)
    assert [_fields(s) for s in back] == [_fields(s) for s in spans]
    first = _fields(back[0])
    assert first["parent"][4] == {"vendor": "v1"} and first["parent"][3] is True
    assert first["attributes"]["podium.queue.operations"] == ("push a", "remove b")
    assert first["events"][0][0] == "exception" and first["status"][0] is StatusCode.ERROR
    assert first["links"][0][0][0] == 2**127 + 5


def test_the_file_exporter_writes_the_same_lines_from_a_frame(tmp_path: Path) -> None:
    spans = _spans()
    made = JsonLinesExporter(str(tmp_path / "made.jsonl"), "podium-decider")
    framed = JsonLinesExporter(str(tmp_path / "framed.jsonl"), "podium-decider")
    made.export(spans)
    framed.export_values(msgpack.unpackb(pack_spans(spans)))
    made.shutdown()
    framed.shutdown()
    lines = (tmp_path / "framed.jsonl").read_text()
    assert lines == (tmp_path / "made.jsonl").read_text()
    first = json.loads(lines.splitlines()[0])
    assert first["kind"] == "SERVER" and first["status"] == "ERROR"
    assert first["trace_id"] == f"{0xABC << 64 | 7:032x}" and first["parent_id"] == f"{0x1234:016x}"
    assert first["links"][0]["trace_id"] == f"{2**127 + 5:032x}"
    # in the child, this is the way the file exporter is fed
    direct, rest = _direct([framed], {"resource": {}, "scope": "podium"})
    assert direct == [(framed, framed.export_values)] and rest == []


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped) is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _niced(by: int) -> int:
    return min(19, os.getpriority(os.PRIO_PROCESS, 0) + by)


def _wait_until(done: Callable[[], bool], limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while not done():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _wait_gone(pid: int) -> None:
    _wait_until(lambda: not _alive(pid))


def _relayed(env: dict[str, str], service: str) -> tuple[Telemetry, ExportProcess, Tracer]:
    """A service's telemetry whose one exporter is the export process."""
    telemetry = start_telemetry(TelemetryConfig.from_env(env, service))
    (relay,) = telemetry.exporters
    assert isinstance(relay, ExportProcess) and telemetry.tracer is not None
    return telemetry, relay, telemetry.tracer


def test_a_service_file_exporter_runs_in_a_child_and_writes_every_span(tmp_path: Path) -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "file",
        "PODIUM_TRACE_FILE": str(tmp_path / "{service}-{pid}.jsonl"),
    }
    telemetry, relay, tracer = _relayed(env, "podium-decider")
    for i in range(50):
        tracer.start_span(f"op {i}", attributes={"i": i}).end()
    telemetry.flush()
    child = relay.pid
    assert child is not None and child != os.getpid()
    # It lowers its own priority once it has read its first frame.
    _wait_until(lambda: os.getpriority(os.PRIO_PROCESS, child) == _niced(10))
    telemetry.shutdown()
    assert not _alive(child)
    # The file is named by the service's pid, not the child's, and holds every span.
    lines = _read(tmp_path / f"podium-decider-{os.getpid()}.jsonl")
    assert sorted(line["attributes"]["i"] for line in lines) == list(range(50))
    assert {line["service"] for line in lines} == {"podium-decider"}


def test_the_childs_priority_is_set_and_checked(tmp_path: Path) -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "file",
        "PODIUM_TRACE_FILE": str(tmp_path / "t.jsonl"),
        "PODIUM_TRACE_EXPORT_NICE": "3",
    }
    telemetry, relay, tracer = _relayed(env, "podium-queue-service")
    try:
        tracer.start_span("one").end()
        telemetry.flush()
        child = relay.pid
        assert child is not None
        _wait_until(lambda: os.getpriority(os.PRIO_PROCESS, child) == _niced(3))
    finally:
        telemetry.shutdown()
    for bad in ("-1", "20", "low"):
        with pytest.raises(ConfigError, match="PODIUM_TRACE_EXPORT_NICE"):
            TelemetryConfig.from_env({**env, "PODIUM_TRACE_EXPORT_NICE": bad}, "podium-decider")


def test_export_in_the_batch_thread_when_asked(tmp_path: Path) -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "file,discard",
        "PODIUM_TRACE_FILE": str(tmp_path / "t.jsonl"),
        "PODIUM_TRACE_EXPORT_PROCESS": "false",
    }
    telemetry = start_telemetry(TelemetryConfig.from_env(env, "podium-gateway"))
    try:
        assert not any(isinstance(e, ExportProcess) for e in telemetry.exporters)
        assert len(telemetry.exporters) == 2
    finally:
        telemetry.shutdown()
    on = {**env, "PODIUM_TRACE_EXPORT_PROCESS": "true"}
    telemetry = start_telemetry(TelemetryConfig.from_env(on, "podium-gateway"))
    try:  # discard stays in the service: it measures the instrumentation alone
        kinds = sorted(type(e).__name__ for e in telemetry.exporters)
        assert kinds == ["ExportProcess", "_Discard"]
    finally:
        telemetry.shutdown()


def test_a_dead_child_is_replaced_by_the_next_batch(tmp_path: Path) -> None:
    env = {"OTEL_TRACES_EXPORTER": "file", "PODIUM_TRACE_FILE": str(tmp_path / "t.jsonl")}
    telemetry, relay, tracer = _relayed(env, "podium-sweeper")
    try:
        tracer.start_span("before").end()
        telemetry.flush()
        first = relay.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        _wait_gone(first)
        tracer.start_span("after").end()
        telemetry.flush()
        assert relay.pid not in (None, first)
    finally:
        telemetry.shutdown()
    names = [line["name"] for line in _read(tmp_path / "t.jsonl")]
    assert "after" in names


SERVICE = """
import os, sys, time
from podium.telemetry.setup import Telemetry, TelemetryConfig, start_telemetry
t = start_telemetry(TelemetryConfig.from_env(os.environ, "podium-gateway"))
for i in range(20):
    t.tracer.start_span(f"span {i}").end()
t.flush()
print(t.exporters[0].pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_child_sends_what_it_holds_when_its_service_dies(
    tmp_path: Path, sig: signal.Signals
) -> None:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "file",
        "PODIUM_TRACE_FILE": str(tmp_path / "t.jsonl"),
    }
    service = subprocess.Popen(
        [sys.executable, "-c", SERVICE],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert service.stdout is not None
        child = int(service.stdout.readline())
        os.killpg(service.pid, sig)  # as a supervisor signals the service's process group
        service.wait()
        _wait_gone(child)  # its stdin closed with the service: it sent what it had and left
        assert service.stderr is not None
        assert service.stderr.read() == ""  # the child's stderr too: no warning, no traceback
    finally:
        service.kill()
        service.wait()
    names = sorted(line["name"] for line in _read(tmp_path / "t.jsonl"))
    assert names == sorted(f"span {i}" for i in range(20))
