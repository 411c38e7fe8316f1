"""The API gateway: Conductor's HTTP API on Starlette, served by uvicorn.

The app is declared: routes from each resource module's ``ENDPOINTS``, pure ASGI middleware
for authentication and body limits, one error mapping (:mod:`api_gateway.errors`), and a
lifespan that opens the decider and queue-service clients and the store and yields them as
typed state. Configuration comes from ``PODIUM_*`` variables (:mod:`api_gateway.settings`).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypedDict

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from api_gateway import (
    admin,
    admin_ops,
    audit_query,
    bulk,
    events,
    keys,
    metadata,
    monitor,
    schedules,
    tasks,
    workflows,
)
from api_gateway.audit import AuditTrail
from api_gateway.auth import Authenticator, AuthGate, token_endpoint
from api_gateway.context import Gateway
from api_gateway.errors import handle_http_exception
from api_gateway.http import ok_json
from api_gateway.joined_writes import JoinedWritesProtocol
from api_gateway.limits import BodyLimits
from api_gateway.openapi import build
from api_gateway.routing import Endpoint, GroupedRouter, routes
from api_gateway.settings import GatewaySettings
from api_gateway.tracing import HttpTracing, instrument
from api_gateway.webui import WebUi
from podium import logs
from podium.health import HealthServer
from podium.queue_client import QueueClient
from podium.rpc import RpcClient
from podium.service import run_main
from podium.store import open_store
from podium.telemetry import Telemetry

log = logging.getLogger("podium.gateway")

Connector = Callable[[GatewaySettings], Awaitable[Gateway]]


class State(TypedDict):
    gateway: Gateway


async def connect(settings: GatewaySettings) -> Gateway:
    """Clients of the decider and the queue service (they dial lazily) and the store."""
    decider = RpcClient(
        settings.decider_addresses,
        limits=settings.codec,
        timeout_s=settings.rpc_timeout_s,
        security=settings.rpc,
    )
    queues = QueueClient(
        RpcClient(
            settings.queue_addresses,
            limits=settings.codec,
            timeout_s=settings.rpc_timeout_s,
            security=settings.rpc,
        )
    )
    try:
        store = await open_store(settings.store)
    except BaseException:
        await decider.close()
        await queues.close()
        raise
    return Gateway(settings, decider, queues, store)


def endpoints(settings: GatewaySettings, authenticator: Authenticator) -> list[Endpoint]:
    """Every endpoint, in matching order (specific paths before parameterised ones)."""

    async def token(request: Request, gateway: Gateway) -> Response:
        return await token_endpoint(request, authenticator, gateway.store.metadata)

    doc: dict[str, object] = {}

    async def openapi(request: Request, gateway: Gateway) -> Response:
        return ok_json(doc)

    own = [
        Endpoint(
            "POST",
            "/api/token",
            token,
            "Exchange a key id and secret for a token",
            "token",
            body="#TokenRequest",
            ok_schema="#Token",
            errors=(400, 401, 404),
        ),
        Endpoint(
            "GET",
            "/api/openapi.json",
            openapi,
            "This OpenAPI document",
            "meta",
            ok_schema={"type": "object"},
            errors=(),
        ),
    ]
    everything = [
        *admin.HEALTH,
        *own,
        *keys.endpoints(authenticator),
        *metadata.ENDPOINTS,
        *bulk.ENDPOINTS,
        *workflows.ENDPOINTS,
        *tasks.ENDPOINTS,
        *monitor.ENDPOINTS,
        *admin.ENDPOINTS,
        *admin_ops.ENDPOINTS,
        *events.ENDPOINTS,
        *schedules.ENDPOINTS,
        *audit_query.ENDPOINTS,
    ]
    doc.update(
        build(
            everything,
            auth_enabled=settings.auth.enabled,
            limits=settings.limits,
            version=admin.VERSION,
        )
    )
    return everything


def create_app(
    settings: GatewaySettings, connector: Connector = connect, telemetry: Telemetry | None = None
) -> Starlette:
    """The gateway as an ASGI app; connections open in its lifespan."""
    authenticator = Authenticator(settings.auth)
    tracer = telemetry.tracer if telemetry is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        gateway = await connector(settings)
        instrument(gateway, tracer, full=telemetry is not None and telemetry.full)
        health: HealthServer | None = None
        try:
            if settings.health_port is not None:
                health = HealthServer(
                    "gateway",
                    gateway.metrics.registry,
                    host=settings.host,
                    port=settings.health_port,
                )
                await health.start()
                gateway.health_port = health.port
                log.info("gateway health on %s:%d", settings.host, health.port)
            yield {"gateway": gateway}
        finally:
            if health is not None:
                await health.stop()
            await gateway.close()
            if telemetry is not None:
                # uvicorn re-raises SIGTERM once it has stopped, so main's own shutdown of
                # the provider may never run: export the buffered spans here.
                telemetry.flush()

    # Outermost, so that refused requests (auth, body limits) are traced too.
    tracing = [Middleware(HttpTracing, tracer=tracer)] if tracer is not None else []
    app = Starlette(
        routes=routes(endpoints(settings, authenticator)),
        middleware=[
            # The UI's assets (public: the login form is one of them) never reach the API.
            Middleware(WebUi, settings=settings),
            *tracing,
            # Outside authentication and body limits: calls they refuse are audited too.
            Middleware(AuditTrail),
            Middleware(AuthGate, authenticator=authenticator),
            Middleware(BodyLimits, limits=settings.limits),
        ],
        exception_handlers={HTTPException: handle_http_exception},
        lifespan=lifespan,
    )
    app.router = GroupedRouter(app.router.routes, lifespan=lifespan)
    return app


def uvicorn_config(
    app: Starlette, settings: GatewaySettings, **overrides: object
) -> uvicorn.Config:
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop" if _have_uvloop() else "asyncio",
        "lifespan": "on",
        "log_level": "warning",
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        "server_header": False,
        # the head and body of each answer in one write (see joined_writes.py)
        "http": JoinedWritesProtocol,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)  # type: ignore[arg-type]


def _have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


async def _preflight(settings: GatewaySettings) -> None:
    """Reach the store once before serving, so a bad address stops us with one clear line."""
    store = await open_store(settings.store)
    await store.close()


async def serve(settings: GatewaySettings, telemetry: Telemetry) -> None:
    """Serve the API with uvicorn until SIGTERM or SIGINT (uvicorn handles both)."""
    log.info("gateway settings: %r", settings)
    with logs.quiet_start():
        await _preflight(settings)
    server = uvicorn.Server(uvicorn_config(create_app(settings, telemetry=telemetry), settings))
    print(f"podium-gateway listening on {settings.host}:{settings.port}", flush=True)
    await server.serve()


def main(argv: list[str] | None = None) -> int:
    return run_main("podium-gateway", argv, GatewaySettings.from_env, serve)


if __name__ == "__main__":
    sys.exit(main())
