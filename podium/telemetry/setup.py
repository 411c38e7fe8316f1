"""One OpenTelemetry tracer provider per service process, configured by ``OTEL_*`` variables.

* ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` (the default): no provider at
  all. Every instrumentation point then takes a ``tracer is None`` branch, so tracing off costs
  one attribute test per call, not a no-op span.
* ``OTEL_TRACES_EXPORTER``: a comma list of ``otlp`` (the ``otlp`` extra; the protocol from
  ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` / ``OTEL_EXPORTER_OTLP_PROTOCOL``, ``http/protobuf``
  by default, ``grpc`` if that exporter is installed; endpoint, headers and timeouts are read by
  the exporter itself), ``console`` (JSON on stdout) and ``file`` (JSON lines in
  ``PODIUM_TRACE_FILE``; ``{service}`` and ``{pid}`` in the path are filled in), and
  ``discard`` (spans are made and batched, then dropped: what the instrumentation alone costs).
* ``PODIUM_TRACE_DETAIL``: ``hops`` (the default) makes one span per hop a request takes: the
  gateway's HTTP request, each RPC call where it is handled (the SERVER span, a child of the
  caller's span), each push into a task queue, each decide that is not its call's own. ``full``
  adds a CLIENT span around each RPC call and a database span around each store call: about
  twice the spans, for when the time between services or in the store is in question.
* ``OTEL_SERVICE_NAME`` (default: the service's own name), ``OTEL_RESOURCE_ATTRIBUTES``,
  ``OTEL_TRACES_SAMPLER`` and ``OTEL_TRACES_SAMPLER_ARG`` as the specification defines them;
  the ``OTEL_BSP_*`` batch settings are read by the SDK.
* ``PODIUM_TRACE_EXPORT_PROCESS`` (default ``true``): the ``otlp``, ``console`` and ``file``
  exporters run in a child process of the service, which the service's batch thread sends
  its spans to, packed (:mod:`podium.telemetry.export_process`); ``false`` runs them in the
  batch thread itself. ``discard`` always stays in the service.
* ``PODIUM_TRACE_EXPORT_NICE`` (0-19, default 10): how much lower the child's scheduling
  priority is than its service's (``nice``), so that exporting takes the CPU the service does
  not use rather than the service's own.

Podium's default differs from the specification's (``otlp``) on purpose: the OTLP exporter is
an optional extra, and a service must start without a collector.

The provider is passed explicitly to whatever makes spans; the global provider is never set,
so several services (and tests) can share one process.
"""

from __future__ import annotations

import importlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Tracer

from podium.config import Environ, env_bool, env_int, env_list, env_str
from podium.errors import ConfigError
from podium.telemetry.export_process import ExportProcess
from podium.telemetry.jsonl import JsonLinesExporter
from podium.telemetry.lean import LeanTracer

DETAILS = ("hops", "full")
EXPORTERS = ("otlp", "console", "file", "discard", "none")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
INSTRUMENTATION_NAME = "podium"


@dataclass(frozen=True)
class TelemetryConfig:
    """What ``OTEL_*`` (and ``PODIUM_TRACE_FILE``) ask for, validated once at start."""

    service_name: str
    exporters: tuple[str, ...] = ()
    resource_attributes: tuple[tuple[str, str], ...] = ()
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0
    otlp_protocol: str = "http/protobuf"
    trace_file: str = ""
    detail: str = "hops"
    export_process: bool = True
    export_nice: int = 10

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)

    @classmethod
    def from_env(cls, env: Environ, default_service: str) -> TelemetryConfig:
        attributes = _resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
        service = env_str(env, "OTEL_SERVICE_NAME", attributes.get("service.name", default_service))
        if env_bool(env, "OTEL_SDK_DISABLED", False):
            return cls(service_name=service)
        names = [n.lower() for n in env_list(env, "OTEL_TRACES_EXPORTER", ["none"])]
        for name in names:
            if name not in EXPORTERS:
                raise ConfigError(
                    f"OTEL_TRACES_EXPORTER={name!r} is not one of {', '.join(EXPORTERS)}",
                    variable="OTEL_TRACES_EXPORTER",
                )
        exporters = tuple(dict.fromkeys(n for n in names if n != "none"))
        sampler = env_str(env, "OTEL_TRACES_SAMPLER", "parentbased_always_on").lower()
        if sampler not in SAMPLERS:
            raise ConfigError(
                f"OTEL_TRACES_SAMPLER={sampler!r} is not one of {', '.join(SAMPLERS)}",
                variable="OTEL_TRACES_SAMPLER",
            )
        trace_file = env_str(env, "PODIUM_TRACE_FILE", "")
        if "file" in exporters and not trace_file:
            raise ConfigError(
                "OTEL_TRACES_EXPORTER=file needs PODIUM_TRACE_FILE (a path; {service} and "
                "{pid} in it are filled in)",
                variable="PODIUM_TRACE_FILE",
            )
        detail = env_str(env, "PODIUM_TRACE_DETAIL", "hops").lower()
        if detail not in DETAILS:
            raise ConfigError(
                f"PODIUM_TRACE_DETAIL={detail!r} is not one of {', '.join(DETAILS)}",
                variable="PODIUM_TRACE_DETAIL",
            )
        protocol = env_str(env, "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        protocol = env_str(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", protocol)
        if protocol not in ("http/protobuf", "grpc"):
            raise ConfigError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use http/protobuf or grpc",
                variable="OTEL_EXPORTER_OTLP_PROTOCOL",
            )
        return cls(
            service_name=service,
            exporters=exporters,
            resource_attributes=tuple(attributes.items()),
            sampler=sampler,
            sampler_arg=_ratio(env),
            otlp_protocol=protocol,
            trace_file=trace_file,
            detail=detail,
            export_process=env_bool(env, "PODIUM_TRACE_EXPORT_PROCESS", True),
            export_nice=env_int(env, "PODIUM_TRACE_EXPORT_NICE", 10, minimum=0, maximum=19),
        )


class Telemetry:
    """A service's tracer provider (or none), and the tracer its instrumentation uses.

    ``tracer`` is None when tracing is off: callers test for that and skip all span work.
    ``full`` is whether RPC calls and store calls get client spans (``PODIUM_TRACE_DETAIL``).
    """

    def __init__(
        self,
        provider: TracerProvider | None,
        service_name: str,
        full: bool = False,
        processors: Sequence[SpanProcessor] | None = None,
        exporters: Sequence[SpanExporter] = (),
    ) -> None:
        """With ``processors`` (the provider's own, as :func:`start_telemetry` passes them),
        spans are made by a :class:`~podium.telemetry.lean.LeanTracer` feeding them; without,
        by the provider's SDK tracer. ``exporters`` are those the processors feed."""
        self.provider = provider
        self.service_name = service_name
        self.full = full
        self.exporters = tuple(exporters)
        self.tracer: Tracer | None = None
        if provider is not None:
            if processors is None:
                self.tracer = provider.get_tracer(INSTRUMENTATION_NAME)
            else:
                scope = InstrumentationScope(INSTRUMENTATION_NAME)
                self.tracer = LeanTracer(provider.sampler, provider.resource, scope, processors)

    @classmethod
    def off(cls, service_name: str = "podium") -> Telemetry:
        return cls(None, service_name)

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def flush(self) -> None:
        """Export what is buffered now (a server about to be stopped by a signal calls this)."""
        if self.provider is not None:
            self.provider.force_flush()

    def shutdown(self) -> None:
        """Export what is buffered and close the exporters (on graceful stop). Idempotent."""
        provider, self.provider = self.provider, None
        if provider is not None:
            provider.shutdown()


def start_telemetry(config: TelemetryConfig) -> Telemetry:
    """Build the provider ``config`` describes (no provider when no exporter is configured)."""
    if not config.enabled:
        return Telemetry.off(config.service_name)
    config = replace(config, trace_file=_trace_path(config))
    moved = [n for n in config.exporters if n != "discard"] if config.export_process else []
    exporters = [exporter(name, config) for name in config.exporters if name not in moved]
    if "otlp" in moved:
        _otlp_module(config.otlp_protocol)  # a missing extra fails here, not in the child
    attributes: dict[str, str] = dict(config.resource_attributes)
    attributes["service.name"] = config.service_name
    attributes.setdefault("service.instance.id", str(uuid.uuid4()))
    provider = TracerProvider(
        resource=Resource.create(attributes), sampler=_sampler(config.sampler, config.sampler_arg)
    )
    if moved:
        exporters.append(
            ExportProcess(
                {
                    "exporters": moved,
                    "service_name": config.service_name,
                    "trace_file": config.trace_file,
                    "otlp_protocol": config.otlp_protocol,
                    "resource": dict(provider.resource.attributes),
                    "schema_url": provider.resource.schema_url,
                    "scope": INSTRUMENTATION_NAME,
                    "nice": config.export_nice,
                }
            )
        )
    processors: list[SpanProcessor] = []
    for exp in exporters:
        # Batching moves serialisation and I/O off the request path, onto the SDK's thread.
        processors.append(BatchSpanProcessor(exp))
        provider.add_span_processor(processors[-1])
    return Telemetry(
        provider,
        config.service_name,
        full=config.detail == "full",
        processors=processors,
        exporters=exporters,
    )


def telemetry_from_env(env: Environ, default_service: str) -> Telemetry:
    """``start_telemetry(TelemetryConfig.from_env(...))``: what each service's main calls."""
    return start_telemetry(TelemetryConfig.from_env(env, default_service))


def _trace_path(config: TelemetryConfig) -> str:
    """The trace file with ``{service}`` and ``{pid}`` (the service's) filled in."""
    return config.trace_file.replace("{service}", config.service_name).replace(
        "{pid}", str(os.getpid())
    )


def exporter(name: str, config: TelemetryConfig) -> SpanExporter:
    """The exporter ``name`` (one of :data:`EXPORTERS` but ``none``) as ``config`` sets it."""
    if name == "console":
        return ConsoleSpanExporter(service_name=config.service_name)
    if name == "discard":
        return _Discard()
    if name == "file":  # config.trace_file as start_telemetry resolved it
        return JsonLinesExporter(config.trace_file, config.service_name)
    module = _otlp_module(config.otlp_protocol)
    otlp: SpanExporter = importlib.import_module(f"{module}.trace_exporter").OTLPSpanExporter()
    return otlp


def _otlp_module(protocol: str) -> str:
    """The OTLP exporter package for ``protocol``; ConfigError if it is not installed."""
    transport = "grpc" if protocol == "grpc" else "http"
    try:
        # Imported by name: the exporters are optional (the ``otlp`` extra).
        module = importlib.import_module(f"opentelemetry.exporter.otlp.proto.{transport}")
    except ImportError:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-{transport} "
            "(pip install 'podium[otlp]')",
            variable="OTEL_TRACES_EXPORTER",
        ) from None
    return module.__name__


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _sampler(name: str, ratio: float) -> Sampler:
    base: Sampler
    if name.endswith("always_off"):
        base = ALWAYS_OFF
    elif name.endswith("traceidratio"):
        base = TraceIdRatioBased(ratio)
    else:
        base = ALWAYS_ON
    return ParentBased(base) if name.startswith("parentbased_") else base


def _ratio(env: Environ) -> float:
    raw = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ConfigError(
            f"OTEL_TRACES_SAMPLER_ARG={raw!r} is not a ratio between 0 and 1",
            variable="OTEL_TRACES_SAMPLER_ARG",
        )
    return value


def _resource_attributes(raw: str) -> dict[str, str]:
    """``key=value,key2=value2`` (values percent-encoded), as the specification defines it."""
    out: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            if item.strip():
                raise ConfigError(
                    f"OTEL_RESOURCE_ATTRIBUTES has {item.strip()!r}, which is not key=value",
                    variable="OTEL_RESOURCE_ATTRIBUTES",
                )
            continue
        out[key.strip()] = unquote(value.strip())
    return out


__all__: Sequence[str] = [
    "Telemetry",
    "TelemetryConfig",
    "start_telemetry",
    "telemetry_from_env",
]
