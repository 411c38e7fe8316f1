"""Span export in a child process: the service packs its spans, the child serialises and sends.

The OTLP exporter spends about 40 µs of CPU per span building and serialising its protobuf
message, and the JSON lines one about 10 µs; in the service's own batch thread that time is
taken from the event loop (one interpreter lock), on the path every request waits on. With
``PODIUM_TRACE_EXPORT_PROCESS`` on (the default), :class:`ExportProcess` is the only exporter
the service's batch processor feeds: it packs each batch with msgpack (about 4 µs per span)
and writes it to the stdin of a child process (``python -m podium.telemetry.export_child``),
which hands the spans to the configured exporters: the JSON lines one and the OTLP/HTTP one
(through :mod:`podium.telemetry.otlp_wire`) take them as the frame holds them, any other is
given the SDK's spans rebuilt from it. The child:

* is told what to do by the first frame (exporters, resolved trace file, OTLP protocol, the
  service's resource and instrumentation scope), so that it exports exactly what the service
  would have;
* exits when its stdin closes, after exporting what it read and shutting its exporters down:
  on the service's shutdown, and on the service's death (kill -9 included), since the pipe's
  only writer is gone. It runs in a session of its own, so that the SIGINT or SIGTERM a
  terminal or a supervisor sends to the service's process group does not cut it off before it
  has sent what the service handed it last;
* runs at a lower scheduling priority than its service (``nice``, 10 by default): exporting
  takes the CPU the service leaves, and when both want a core the service gets it.

A frame is a 4-byte big-endian length and a msgpack payload. If the child dies, the next
batch starts another one; a pipe that stays full (the exporters cannot keep up) blocks the
batch thread, whose bounded queue then drops spans, as the SDK does for a slow exporter.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import msgpack
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, Status, TraceFlags
from opentelemetry.trace.span import TraceState

from podium.telemetry.frame import CODES, KINDS, span_values
from podium.telemetry.jsonl import JsonLinesExporter

log = logging.getLogger("podium.telemetry")

_LENGTH = struct.Struct(">I")
#: How long a shutting-down service waits for its child to send what it holds.
SHUTDOWN_WAIT_S = 15.0


def _unpack_context(raw: Sequence[Any]) -> SpanContext:
    trace_id, span_id, flags, remote, state = raw
    return SpanContext(
        int.from_bytes(trace_id, "big"),
        span_id,
        is_remote=remote,
        trace_flags=TraceFlags(flags),
        trace_state=TraceState(state) if state else None,
    )


def _attributes(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    # msgpack gives lists back; the SDK keeps sequences as tuples.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (raw or {}).items()}


def pack_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """One frame's payload: each span's values (:mod:`podium.telemetry.frame`), packed."""
    out = span_values(spans)
    try:
        payload: bytes = msgpack.packb(out)
    except OverflowError:  # an integer beyond msgpack's 64 bits: that attribute goes, not the batch
        for span in out:
            span[8] = _in_range(span[8])
            for event in span[9]:
                event[2] = _in_range(event[2])
            for link in span[10]:
                link[1] = _in_range(link[1])
        payload = msgpack.packb(out)
    return payload


def _in_range(attributes: dict[str, Any]) -> dict[str, Any]:
    """The attributes without the integers msgpack cannot hold (OTLP's int64 cannot either)."""

    def fits(v: Any) -> bool:
        if isinstance(v, int) and not isinstance(v, bool):
            return bool(-(2**63) <= v < 2**64)
        if isinstance(v, (list, tuple)):
            return all(fits(x) for x in v)
        return True

    kept = {k: v for k, v in attributes.items() if fits(v)}
    if len(kept) < len(attributes):
        log.warning(
            "span attributes not exported (integers beyond 64 bits): %s",
            sorted(set(attributes) - set(kept)),
        )
    return kept


def unpack_spans(
    payload: bytes, resource: Resource, scope: InstrumentationScope
) -> list[ReadableSpan]:
    """The spans of a frame, as the SDK's :class:`ReadableSpan` with ``resource`` and ``scope``."""
    return _rebuild(msgpack.unpackb(payload), resource, scope)


def _rebuild(
    values: Sequence[Sequence[Any]], resource: Resource, scope: InstrumentationScope
) -> list[ReadableSpan]:
    spans = []
    for name, ctx, parent, kind, start, end, code, desc, attrs, events, links in values:
        spans.append(
            ReadableSpan(
                name=name,
                context=_unpack_context(ctx),
                parent=_unpack_context(parent) if parent is not None else None,
                resource=resource,
                attributes=_attributes(attrs),
                events=[Event(n, _attributes(a), t) for n, t, a in events],
                links=[Link(_unpack_context(c), _attributes(a)) for c, a in links],
                kind=KINDS[kind],
                status=Status(CODES[code], desc),
                start_time=start,
                end_time=end,
                instrumentation_scope=scope,
            )
        )
    return spans


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload; None at the end of the stream (a cut-off frame included)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    payload = stream.read(size)
    return payload if len(payload) == size else None


class ExportProcess(SpanExporter):
    """The exporter a service's batch processor feeds: batches go to the child (see module).

    ``spec`` is the child's first frame: ``exporters``, ``service_name``, ``trace_file``
    (resolved), ``otlp_protocol``, ``resource`` (attributes), ``schema_url``, ``scope``,
    ``nice`` (added to the child's niceness).
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._spec = msgpack.packb(dict(spec))
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs (for tests and process listings)."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def _start(self) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [sys.executable, "-m", "podium.telemetry.export_child"],
            stdin=subprocess.PIPE,
            env=os.environ.copy(),
            start_new_session=True,
        )
        assert child.stdin is not None
        _write_frame(child.stdin, self._spec)
        return child

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        payload = pack_spans(spans)
        with self._lock:
            if self._closed:
                return SpanExportResult.FAILURE
            for attempt in range(2):
                try:
                    if self._child is None or self._child.poll() is not None:
                        self._child = self._start()
                    assert self._child.stdin is not None
                    _write_frame(self._child.stdin, payload)
                    return SpanExportResult.SUCCESS
                except OSError as exc:  # the child died (broken pipe), or could not start
                    self._child = None
                    if attempt:
                        log.warning("span export process unavailable: %s", exc)
        return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every batch is in the child's pipe when export returns

    def shutdown(self) -> None:
        """Close the pipe and wait (at most :data:`SHUTDOWN_WAIT_S`) for the child to send
        what it read and exit."""
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
        if child is None:
            return
        try:
            assert child.stdin is not None
            child.stdin.close()
        except OSError:
            pass
        try:
            child.wait(SHUTDOWN_WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _child_exporters(spec: Mapping[str, Any]) -> list[SpanExporter]:
    # Imported here: setup imports this module for ExportProcess.
    from podium.telemetry.setup import TelemetryConfig, exporter

    config = TelemetryConfig(
        service_name=spec["service_name"],
        exporters=tuple(spec["exporters"]),
        otlp_protocol=spec["otlp_protocol"],
        trace_file=spec["trace_file"],
    )
    return [exporter(name, config) for name in config.exporters]


def main() -> int:
    """The child: read frames from stdin and export them until stdin closes."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    stdin = sys.stdin.buffer
    head = _read_frame(stdin)
    if head is None:
        return 0
    spec = msgpack.unpackb(head)
    os.nice(int(spec.get("nice", 0)))
    exporters = _child_exporters(spec)
    resource = Resource(spec["resource"], spec.get("schema_url") or None)
    scope = InstrumentationScope(spec["scope"])
    direct, rest = _direct(exporters, spec)
    sinks = direct + [(exp, None) for exp in rest]
    try:
        while (payload := _read_frame(stdin)) is not None:
            values = msgpack.unpackb(payload)
            spans: list[ReadableSpan] | None = None  # rebuilt once, for the first that needs them
            for exp, export in sinks:
                try:
                    if export is not None:
                        export(values)
                        continue
                    if spans is None:
                        spans = _rebuild(values, resource, scope)
                    exp.export(spans)
                except Exception:  # an exporter's failure must not stop the others
                    log.exception("span exporter %s failed", type(exp).__name__)
    finally:
        for exp in exporters:
            exp.shutdown()
    return 0


def _direct(
    exporters: Sequence[SpanExporter], spec: Mapping[str, Any]
) -> tuple[list[tuple[SpanExporter, Callable[[Any], object]]], list[SpanExporter]]:
    """The exporters that take a frame's values as they are, each with its way to, and the
    exporters that take the SDK's spans. Podium's JSON lines exporter writes its lines from
    the values; the SDK's OTLP/HTTP exporter is sent the request :mod:`otlp_wire` writes from
    them (five times cheaper than rebuilding the spans and the SDK's encoding)."""
    direct: list[tuple[SpanExporter, Callable[[Any], object]]] = []
    rest: list[SpanExporter] = []
    encoder = None
    for exp in exporters:
        if isinstance(exp, JsonLinesExporter):
            direct.append((exp, exp.export_values))
            continue
        if type(exp).__name__ == "OTLPSpanExporter":
            from podium.telemetry import otlp_wire  # needs the ``otlp`` extra's protobuf classes

            if encoder is None:
                envelope = otlp_wire.Envelope(
                    spec["resource"], spec.get("schema_url"), spec["scope"]
                )
                encoder = otlp_wire.Encoder(envelope)
            wire = otlp_wire.wire_exporter(exp, encoder)
            if wire is not None:
                direct.append((exp, wire.export_values))
                continue
        rest.append(exp)
    return direct, rest
