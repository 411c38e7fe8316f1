"""A span exporter writing one JSON object per line: for tests, benchmarks and a quick look.

The SDK's console exporter prints indented JSON for people; this one writes compact lines that
a test (or ``jq``) reads back, one file per process so that nothing interleaves. A line:

    {"service": "podium-decider", "name": "decider.claim", "kind": "SERVER",
     "trace_id": "<32 hex>", "span_id": "<16 hex>", "parent_id": "<16 hex>" | null,
     "start_ns": 0, "end_ns": 0, "status": "UNSET" | "OK" | "ERROR",
     "attributes": {...}, "links": [{"trace_id", "span_id", "attributes"}]}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from podium.telemetry.frame import CODES, KINDS, span_values

#: The names of the kinds and status codes by their position in a span's values.
_KIND_NAMES = tuple(k.name for k in KINDS)
_STATUS_NAMES = tuple(c.name for c in CODES)


class JsonLinesExporter(SpanExporter):
    """Appends finished spans to ``path`` (created if missing), one compact JSON per line."""

    def __init__(self, path: str, service_name: str) -> None:
        self.path = path
        self.service_name = service_name
        self._fd: int | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.export_values(span_values(spans))

    def export_values(self, spans: Sequence[Sequence[Any]]) -> SpanExportResult:
        """Append spans given as their values (:mod:`podium.telemetry.frame`), as the export
        child's frames carry them: no SDK spans are rebuilt for the lines."""
        lines = [self._line(s) for s in spans]
        if not lines:
            return SpanExportResult.SUCCESS
        try:
            if self._fd is None:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            data = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
            view = memoryview(data.encode("utf-8"))
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _line(self, values: Sequence[Any]) -> dict[str, Any]:
        name, ctx, parent, kind, start, end, code, _desc, attrs, _events, links = values
        return {
            "service": self.service_name,
            "name": name,
            "kind": _KIND_NAMES[kind],
            "trace_id": ctx[0].hex(),
            "span_id": f"{ctx[1]:016x}",
            "parent_id": f"{parent[1]:016x}" if parent is not None else None,
            "start_ns": start,
            "end_ns": end,
            "status": _STATUS_NAMES[code],
            "attributes": attrs or {},
            "links": [
                {
                    "trace_id": link_ctx[0].hex(),
                    "span_id": f"{link_ctx[1]:016x}",
                    "attributes": link_attrs or {},
                }
                for link_ctx, link_attrs in links
            ],
        }

    def shutdown(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def read_spans(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every span line of the given files (tests and tools read traces back with this)."""
    spans: list[dict[str, Any]] = []
    for path in paths:
        with path.open(encoding="utf-8") as f:
            spans.extend(json.loads(line) for line in f if line.strip())
    return spans
