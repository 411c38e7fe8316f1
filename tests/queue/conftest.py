"""Fixtures for the queue service: engines and services over 1, 2 or 3 real Redis shards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from podium.launch.redis import RedisServer
from podium.queue_client import QueueClient
from queue_service.engine import QueueEngine
from queue_service.server import QueueService, QueueSettings
from queue_service.shards import ShardSpec


def specs(servers: list[RedisServer]) -> list[ShardSpec]:
    return [ShardSpec(f"s{i}", s.url) for i, s in enumerate(servers)]


@pytest.fixture(params=[1, 2, 3], ids=lambda n: f"{n}shard")
def shard_count(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
async def engine(redis_shards: list[RedisServer], shard_count: int) -> AsyncIterator[QueueEngine]:
    eng = await QueueEngine(specs(redis_shards[:shard_count])).start()
    yield eng
    await eng.stop()


@pytest.fixture
async def service(redis_shards: list[RedisServer], shard_count: int) -> AsyncIterator[QueueService]:
    svc = await QueueService(
        QueueSettings(shards=specs(redis_shards[:shard_count]), port=0)
    ).start()
    yield svc
    await svc.stop()


@pytest.fixture
async def client(service: QueueService) -> AsyncIterator[QueueClient]:
    c = QueueClient.connect([service.address])
    yield c
    await c.close()
