"""``/health``, ``/ready`` and ``/metrics`` on a small HTTP port of every service.

* ``/health``: the process is up (200 ``{"status": "UP"}``).
* ``/ready``: every readiness check passes (200), else 503 with the failing checks; a service
  registers checks such as "its background loops have beaten recently".
* ``/metrics``: the service's Prometheus registry in the text format.

A tiny HTTP/1.1 responder on asyncio: these endpoints are polled by probes and scrapers, not
by users, so no framework is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("podium.health")

Check = Callable[[], str | None]  # None when healthy, else the reason


@dataclass
class Heartbeats:
    """Loops beat here; a loop that has not beaten within its allowance is reported dead."""

    allowance_s: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)

    def register(self, name: str, allowance_s: float) -> None:
        self.allowance_s[name] = allowance_s
        self.last.setdefault(name, time.monotonic())

    def beat(self, name: str) -> None:
        self.last[name] = time.monotonic()

    def check(self) -> str | None:
        now = time.monotonic()
        dead = [
            f"{n} silent for {now - self.last.get(n, 0):.1f}s"
            for n, allowance in self.allowance_s.items()
            if now - self.last.get(n, 0) > allowance
        ]
        return "; ".join(dead) or None


class HealthServer:
    """Serves the three endpoints for one service."""

    def __init__(
        self,
        service: str,
        registry: CollectorRegistry,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.service = service
        self.registry = registry
        self.host = host
        self.port = port
        self.checks: dict[str, Check] = {}
        self._server: asyncio.Server | None = None

    def add_check(self, name: str, check: Check) -> None:
        self.checks[name] = check

    async def start(self) -> HealthServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    def failing(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                reason = check()
            except Exception as exc:  # a broken check is a failing check
                reason = f"check raised {type(exc).__name__}: {exc}"
            if reason:
                out[name] = reason
        return out

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            status, ctype, body = self._route(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def _route(self, path: str) -> tuple[str, str, bytes]:
        if path == "/health":
            return "200 OK", "application/json", json.dumps({"status": "UP"}).encode()
        if path == "/ready":
            failing = self.failing()
            body = json.dumps({"ready": not failing, "failing": failing}).encode()
            return ("503 Service Unavailable" if failing else "200 OK"), "application/json", body
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return "404 Not Found", "application/json", b'{"status":404,"message":"not found"}'
