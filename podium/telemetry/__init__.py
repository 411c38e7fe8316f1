"""Tracing for every Podium service: OpenTelemetry, configured by the ``OTEL_*`` variables.

``telemetry_from_env(env, "podium-decider")`` builds the service's provider (or none: tracing
is off unless an exporter is configured); the modules here put spans on each hop: the RPC
(:mod:`.rpc`), the queue's operations (:mod:`.queue`), the store (:mod:`.store`) and the
workflow itself (:mod:`.workflow`). The gateway's HTTP spans are in :mod:`api_gateway.tracing`.
See docs/observability.md.
"""

from podium.telemetry.setup import Telemetry, TelemetryConfig, start_telemetry, telemetry_from_env

__all__ = ["Telemetry", "TelemetryConfig", "start_telemetry", "telemetry_from_env"]
