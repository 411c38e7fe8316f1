"""An in-process stack for sweeper tests: Redis, the queue service, the decider, a sweeper.

The sweeper runs its real loops against the real services; tests set up definitions through
the store and drive workflows through the decider's RPC client, as the gateway would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from decider.server import DeciderService, DeciderSettings
from podium.launch.redis import RedisServer
from podium.rpc import RpcClient
from podium.store import Store, StoreConfig, open_store
from queue_service.client import QueueClient
from queue_service.server import QueueService, QueueSettings
from queue_service.shards import ShardSpec
from sweeper.http_task import HttpPolicy
from sweeper.server import Sweeper, SweeperSettings

JSON = dict[str, Any]


@dataclass
class Stack:
    redis: RedisServer
    store_config: StoreConfig
    queue: QueueService
    decider: DeciderService
    store: Store
    queues: QueueClient
    rpc: RpcClient

    def sweeper_settings(self, **kw: Any) -> SweeperSettings:
        return SweeperSettings(
            store=self.store_config,
            queue_addresses=[self.queue.address],
            decider_addresses=[self.decider.address],
            health_port=0,
            **kw,
        )

    async def start(self, definition: JSON, inp: JSON | None = None) -> str:
        await self.store.metadata.update_workflow_def(definition)
        answer = await self.rpc.call(
            "decider.start_workflow",
            {
                "request": {
                    "name": definition["name"],
                    "version": definition.get("version", 1),
                    "input": inp or {},
                }
            },
        )
        return str(answer["workflowId"])

    async def workflow(self, wf_id: str) -> JSON:
        return await self.store.executions.get_workflow(wf_id, include_tasks=True)

    async def until(
        self, wf_id: str, check: Callable[[JSON], bool], timeout_s: float = 15.0
    ) -> JSON:
        """Poll the workflow until ``check`` holds (with a deadline)."""
        deadline = time.monotonic() + timeout_s
        while True:
            wf = await self.workflow(wf_id)
            if check(wf):
                return wf
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout_s}s: {wf}")
            await asyncio.sleep(0.02)


@pytest.fixture(scope="session")
def sweeper_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
async def stack(sweeper_redis: RedisServer) -> AsyncIterator[Stack]:
    config = StoreConfig(backend="redis", redis_url=sweeper_redis.url, key_prefix="podium:swtest:")
    queue = await QueueService(
        QueueSettings(shards=[ShardSpec("s0", sweeper_redis.url)], port=0)
    ).start()
    decider = await DeciderService(
        DeciderSettings(store=config, queue_addresses=[queue.address], port=0)
    ).start()
    store = await open_store(config)
    queues = QueueClient.connect([queue.address])
    rpc = RpcClient([decider.address], timeout_s=30)
    try:
        yield Stack(sweeper_redis, config, queue, decider, store, queues, rpc)
    finally:
        await rpc.close()
        await queues.close()
        await store.close()
        await decider.stop(grace_s=1.0)
        await queue.stop(grace_s=1.0)


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
