"""The whole stack for gateway tests, in-process on free ports, shared by the session.

One redis-server (its own, so other suites' flushes never touch it), the queue service, the
decider service and, per test or per module, gateways served by a real uvicorn. Tests keep
apart by data: every test draws fresh task types and workflow names (``names``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from api_gateway.context import Gateway
from api_gateway.server import create_app, uvicorn_config
from api_gateway.settings import AuthSettings, GatewaySettings, Limits
from podium.launch.redis import RedisServer
from podium.queue_client import QueueClient
from tests.polling import eventually
from tests.stack import Stack, running_stack


@dataclass
class RunningGateway:
    url: str
    server: uvicorn.Server
    gateway: Gateway
    client: httpx.AsyncClient


@pytest.fixture(scope="session")
def gateway_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:  # started, and removed with its files at the end
        yield server


@pytest.fixture(scope="session")
async def stack(gateway_redis: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(gateway_redis, "podium:gwtest:") as running:
        yield running


@contextlib.asynccontextmanager
async def serve_gateway(settings: GatewaySettings) -> AsyncIterator[RunningGateway]:
    """A gateway on a free port, served by uvicorn in this event loop."""
    captured: dict[str, Gateway] = {}

    async def connector(s: GatewaySettings) -> Gateway:
        from api_gateway.server import connect

        gateway = await connect(s)
        captured["gateway"] = gateway
        return gateway

    app = create_app(settings, connector)
    server = uvicorn.Server(
        uvicorn_config(app, settings, loop="none", port=0, timeout_graceful_shutdown=2)
    )
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
            raise RuntimeError("gateway stopped while starting")
        return server.started

    await eventually(started, timeout_s=10, what="the gateway started", interval_s=0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = httpx.AsyncClient(base_url=url, timeout=30)
    try:
        yield RunningGateway(url, server, captured["gateway"], client)
    finally:
        await client.aclose()
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest.fixture(scope="session")
async def running_gateway(stack: Stack) -> AsyncIterator[RunningGateway]:
    """The default gateway (auth off, default limits)."""
    async with serve_gateway(stack.gateway_settings()) as running:
        yield running


@pytest.fixture
def client(running_gateway: RunningGateway) -> httpx.AsyncClient:
    return running_gateway.client


@pytest.fixture
def make_gateway(
    stack: Stack,
) -> Callable[..., contextlib.AbstractAsyncContextManager[RunningGateway]]:
    """``async with make_gateway(limits=Limits(...), auth=AuthSettings(...)) as g: ...``"""

    def make(**overrides: Any) -> contextlib.AbstractAsyncContextManager[RunningGateway]:
        return serve_gateway(stack.gateway_settings(**overrides))

    return make


@pytest.fixture
async def queues(stack: Stack) -> AsyncIterator[QueueClient]:
    c = QueueClient.connect([stack.queue.address])
    yield c
    await c.close()


class Names:
    """Fresh names for one test."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:10]

    def __call__(self, base: str) -> str:
        return f"{base}_{self.tag}"


@pytest.fixture
def names() -> Names:
    return Names()


__all__ = ["AuthSettings", "Limits", "Names", "RunningGateway"]
