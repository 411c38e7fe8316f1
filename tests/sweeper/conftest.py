"""Fixtures for sweeper tests: the in-process stack plus real sweepers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from podium.launch.redis import RedisServer
from sweeper.http_task import HttpPolicy
from sweeper.server import Sweeper
from tests.stack import Stack, running_stack


@pytest.fixture(scope="session")
def sweeper_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:  # started, and removed with its files at the end
        yield server


@pytest.fixture(scope="session")
async def stack(sweeper_redis: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(sweeper_redis, "podium:swtest:") as s:
        yield s


SweeperFactory = Callable[..., Awaitable[Sweeper]]


@pytest.fixture
async def make_sweeper(stack: Stack) -> AsyncIterator[SweeperFactory]:
    started: list[Sweeper] = []

    async def make(**kw: Any) -> Sweeper:
        sweeper = await Sweeper(stack.sweeper_settings(**kw)).start()
        started.append(sweeper)
        return sweeper

    yield make
    for s in started:
        await s.stop(grace_s=2.0)


@pytest.fixture
async def sweeper(make_sweeper: SweeperFactory) -> Sweeper:
    return await make_sweeper(http=HttpPolicy.build(allow=["127.0.0.1"]))


@pytest.fixture
def name() -> str:
    return f"wf_{uuid.uuid4().hex[:10]}"
