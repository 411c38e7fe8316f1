"""Events end to end: a Redis server, a RabbitMQ broker, the stack, a gateway and a sweeper that
publishes EVENT tasks and runs the event handlers, all shared by the session.

Tests keep apart by data: each draws fresh workflow, handler and event names.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from podium.launch.rabbitmq import RabbitServer
from podium.launch.redis import RedisServer
from sweeper.events import EventSettings
from sweeper.server import Sweeper
from tests.gateway.conftest import RunningGateway, serve_gateway
from tests.stack import Stack, running_stack

#: tries of a failing message before it is parked, in these tests
MAX_ATTEMPTS = 3


@pytest.fixture(scope="session")
def events_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def rabbit() -> Iterator[RabbitServer]:
    with RabbitServer() as server:  # its own ports, node name and folder, removed at the end
        yield server


@pytest.fixture(scope="session")
async def stack(events_redis: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(events_redis, "podium:evtest:") as s:
        yield s


@pytest.fixture(scope="session")
async def gateway(stack: Stack) -> AsyncIterator[RunningGateway]:
    async with serve_gateway(stack.gateway_settings()) as running:
        yield running


def event_settings(rabbit: RabbitServer) -> EventSettings:
    return EventSettings(
        amqp_url=rabbit.url, max_attempts=MAX_ATTEMPTS, retry_delay_ms=50, refresh_s=0.1
    )


@pytest.fixture(scope="session")
async def sweeper(stack: Stack, rabbit: RabbitServer) -> AsyncIterator[Sweeper]:
    running = await Sweeper(stack.sweeper_settings(events=event_settings(rabbit))).start()
    yield running
    await running.stop(grace_s=2.0)


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:10]
