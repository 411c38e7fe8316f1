"""The services of one Podium cluster, in-process on free ports, for tests.

Redis holds the queue shard and, unless another store is given (Cassandra, say), the store
too (under its own key prefix); the queue service and the decider service run as real RPC
servers in the test's event loop. Tests drive workflows through the decider's RPC client, as
the gateway does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from decider.server import DeciderService, DeciderSettings
from podium.launch.redis import RedisServer
from podium.queue_client import QueueClient
from podium.rpc import RpcClient
from podium.store import Store, StoreConfig, open_store
from queue_service.server import QueueService, QueueSettings
from queue_service.shards import ShardSpec
from sweeper.server import SweeperSettings

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
    deciders: list[DeciderService]

    def sweeper_settings(self, **kw: Any) -> SweeperSettings:
        return SweeperSettings(
            store=self.store_config,
            queue_addresses=[self.queue.address],
            decider_addresses=[d.address for d in self.deciders],
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


@contextlib.asynccontextmanager
async def running_stack(
    redis: RedisServer,
    prefix: str,
    deciders: int = 1,
    store_config: StoreConfig | None = None,
) -> AsyncIterator[Stack]:
    """Start the queue service and ``deciders`` decider replicas over one Redis server.

    The store is ``store_config`` when given (a Cassandra keyspace, say), else the same Redis
    server under the key prefix ``prefix``.
    """
    config = store_config or StoreConfig(backend="redis", redis_url=redis.url, key_prefix=prefix)
    queue = await QueueService(QueueSettings(shards=[ShardSpec("s0", redis.url)], port=0)).start()
    replicas = [
        await DeciderService(
            DeciderSettings(store=config, queue_addresses=[queue.address], port=0)
        ).start()
        for _ in range(deciders)
    ]
    store = await open_store(config)
    queues = QueueClient.connect([queue.address])
    rpc = RpcClient([d.address for d in replicas], timeout_s=30)
    try:
        yield Stack(redis, config, queue, replicas[0], store, queues, rpc, replicas)
    finally:
        await rpc.close()
        await queues.close()
        await store.close()
        for d in replicas:
            await d.stop(grace_s=1.0)
        await queue.stop(grace_s=1.0)
