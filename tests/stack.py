"""The services of one Podium cluster, in-process on free ports, for tests.

Redis holds the queue shard and, unless another store is given (Cassandra, say), the store
too (under its own key prefix); the queue service and the decider service run as real RPC
servers in the test's event loop. Tests drive workflows through the decider's RPC client, as
the gateway does, or through gateways and sweepers configured by ``gateway_settings`` and
``sweeper_settings``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from api_gateway.settings import GatewaySettings
from decider.decision import DeciderConfig
from decider.server import DeciderService, DeciderSettings
from podium.errors import NotFound
from podium.launch.redis import RedisServer
from podium.queue_client import QueueClient
from podium.rpc import RpcClient
from podium.store import Store, StoreConfig, open_store
from podium.types import JSON
from queue_service.server import QueueService, QueueSettings
from queue_service.shards import ShardSpec, shard_index
from sweeper.server import SweeperSettings
from tests.polling import eventually


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
    #: the Redis servers of the queue shards s0, s1, ...
    shards: list[RedisServer]

    def gateway_settings(self, **overrides: Any) -> GatewaySettings:
        """A gateway's settings on a free port (auth off and default limits unless given)."""
        base = GatewaySettings(
            store=self.store_config,
            decider_addresses=[d.address for d in self.deciders],
            queue_addresses=[self.queue.address],
            port=0,
        )
        return dataclasses.replace(base, **overrides)

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

    async def register_simple(self, prefix: str) -> str:
        """Register a workflow of one SIMPLE task (``{name}_t``, reference ``t``) under a
        fresh name beginning with ``prefix``; its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        await self.store.metadata.update_workflow_def(
            {
                "name": name,
                "version": 1,
                "schemaVersion": 2,
                "tasks": [{"name": f"{name}_t", "taskReferenceName": "t", "type": "SIMPLE"}],
            }
        )
        return name

    async def workflow(self, wf_id: str) -> JSON:
        return await self.store.executions.get_workflow(wf_id, include_tasks=True)

    async def until(
        self,
        wf_id: str,
        check: Callable[[JSON], bool],
        timeout_s: float = 15.0,
        *,
        missing_ok: bool = False,
    ) -> JSON:
        """Read the workflow until ``check`` holds (with a deadline). With ``missing_ok``, a
        workflow not written yet (a child started apart from its parent) counts as not yet."""

        async def read() -> JSON | None:
            try:
                return await self.workflow(wf_id)
            except NotFound:
                if missing_ok:
                    return None
                raise

        return await eventually(
            read, until=check, timeout_s=timeout_s, what=f"workflow {wf_id}: the condition"
        )


def id_on_shard(shard: int, shards: int = 2) -> str:
    """A fresh id that the queue service keeps on ``shard`` (of ``shards``)."""
    while True:
        candidate = str(uuid.uuid4())
        if shard_index(candidate, shards) == shard:
            return candidate


@contextlib.asynccontextmanager
async def running_stack(
    redis: RedisServer,
    prefix: str,
    deciders: int = 1,
    store_config: StoreConfig | None = None,
    *,
    shards: list[RedisServer] | None = None,
    decider_config: DeciderConfig | None = None,
) -> AsyncIterator[Stack]:
    """Start the queue service and ``deciders`` decider replicas over one Redis server.

    The store is ``store_config`` when given (a Cassandra keyspace, say), else the same Redis
    server under the key prefix ``prefix``; the queue shards are ``shards`` when given, else
    that server alone.
    """
    config = store_config or StoreConfig(backend="redis", redis_url=redis.url, key_prefix=prefix)
    shard_servers = shards or [redis]
    specs = [ShardSpec(f"s{i}", s.url) for i, s in enumerate(shard_servers)]
    queue = await QueueService(QueueSettings(shards=specs, port=0)).start()
    replicas = [
        await DeciderService(
            DeciderSettings(
                store=config,
                queue_addresses=[queue.address],
                port=0,
                config=decider_config or DeciderConfig(),
            )
        ).start()
        for _ in range(deciders)
    ]
    store = await open_store(config)
    queues = QueueClient.connect([queue.address])
    rpc = RpcClient([d.address for d in replicas], timeout_s=30)
    try:
        yield Stack(redis, config, queue, replicas[0], store, queues, rpc, replicas, shard_servers)
    finally:
        await rpc.close()
        await queues.close()
        await store.close()
        for d in replicas:
            await d.stop(grace_s=1.0)
        await queue.stop(grace_s=1.0)
