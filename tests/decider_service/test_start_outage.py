"""A start during a queue-shard outage: once the workflow is committed, the start succeeds.

The decider sets the workflow's timer (on the decider queue) before it writes the workflow,
then pushes the first task messages. Here the shard that holds the task message is down while
the timer's shard is up: the workflow is committed, so the start answers its id, and the decide
its timer triggers (once the shard is back) pushes the missing message.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from decider import idempotency
from decider.records import DeciderConfig
from decider.server import DeciderService, DeciderSettings
from podium.errors import PodiumError
from podium.launch.redis import RedisServer
from podium.queue_client import QueueClient
from podium.queues import DECIDER_QUEUE
from podium.rpc import RpcClient
from podium.store import Store, StoreConfig, open_store
from queue_service.server import QueueService, QueueSettings
from queue_service.shards import ShardSpec, shard_index
from sweeper.server import Sweeper, SweeperSettings
from tests.stack import cassandra_store_config

JSON = dict[str, Any]
BACKENDS = ["redis", "cassandra"]

pytestmark = pytest.mark.timeout(60, func_only=True)


@dataclass
class Outage:
    shards: list[RedisServer]
    store_config: StoreConfig
    queue: QueueService
    decider: DeciderService
    store: Store
    queues: QueueClient
    rpc: RpcClient


@pytest.fixture(params=BACKENDS)
async def outage(
    request: pytest.FixtureRequest, redis_shards: list[RedisServer]
) -> AsyncIterator[Outage]:
    """Two queue shards (s0, s1) and the store on a third server (or on Cassandra)."""
    shards = redis_shards[:2]
    if request.param == "cassandra":
        keyspace = f"podium_outage_{uuid.uuid4().hex[:10]}"
        config = cassandra_store_config(request.getfixturevalue("cassandra_node"), keyspace)
    else:
        config = StoreConfig(backend="redis", redis_url=redis_shards[2].url, key_prefix="outage:")
    specs = [ShardSpec(f"s{i}", s.url) for i, s in enumerate(shards)]
    queue = await QueueService(QueueSettings(shards=specs, port=0)).start()
    # A short offset: the first timer of a new workflow fires a second after its start.
    decider = await DeciderService(
        DeciderSettings(
            store=config,
            queue_addresses=[queue.address],
            port=0,
            config=DeciderConfig(workflow_offset_s=1),
        )
    ).start()
    store = await open_store(config)
    queues = QueueClient.connect([queue.address])
    rpc = RpcClient([decider.address], timeout_s=30)
    try:
        yield Outage(shards, config, queue, decider, store, queues, rpc)
    finally:
        for s in shards:
            s.start()
        await rpc.close()
        await queues.close()
        await store.close()
        await decider.stop(grace_s=1.0)
        await queue.stop(grace_s=1.0)


def id_on_shard(shard: int) -> str:
    """A fresh id that the queue service keeps on ``shard`` (of two)."""
    while True:
        candidate = str(uuid.uuid4())
        if shard_index(candidate, 2) == shard:
            return candidate


async def poll_until(o: Outage, task_type: str, timeout_s: float) -> list[JSON]:
    """Pop and claim, as the gateway does, until a task comes (with a deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = await o.queues.pop(task_type, count=1, lease_ms=30_000, wait_ms=200)
        if got:
            items = [[m.id, m.payload.decode()] for m in got]
            answer = await o.rpc.call(
                "decider.claim", {"queue": task_type, "items": items, "workerId": "w"}
            )
            return list(answer["tasks"])
        assert time.monotonic() < deadline, f"no {task_type} task within {timeout_s}s"


async def test_a_start_whose_task_push_fails_returns_the_id_and_the_workflow_completes(
    outage: Outage,
) -> None:
    o = outage
    name = f"outage_{uuid.uuid4().hex[:8]}"
    task_type = f"{name}_t"
    await o.store.metadata.update_workflow_def(
        {
            "name": name,
            "version": 1,
            "schemaVersion": 2,
            "tasks": [{"name": task_type, "taskReferenceName": "t", "type": "SIMPLE"}],
        }
    )
    # The workflow's timer lives on s0, its first task's message on s1, and s1 is down.
    wf_id = id_on_shard(0)
    assert o.decider.shell is not None
    o.decider.shell.ids = lambda: id_on_shard(1)
    o.shards[1].kill()

    answer = await o.rpc.call(
        "decider.start_workflow",
        {"request": {"name": name, "version": 1, "input": {}, "workflowId": wf_id}},
    )

    assert answer == {"workflowId": wf_id}
    wf = await o.store.executions.get_workflow(wf_id)
    assert wf["status"] == "RUNNING"
    [task] = wf["tasks"]
    assert task["status"] == "SCHEDULED"
    assert await o.queues.contains(DECIDER_QUEUE, wf_id)

    o.shards[1].start()  # back, empty: the task's message was never written
    sweeper = await Sweeper(
        SweeperSettings(
            store=o.store_config,
            queue_addresses=[o.queue.address],
            decider_addresses=[o.decider.address],
            health_port=0,
        )
    ).start()
    try:
        [claimed] = await poll_until(o, task_type, timeout_s=20)
        assert claimed["taskId"] == task["taskId"]
        await o.rpc.call(
            "decider.update_task",
            {
                "result": {
                    "workflowInstanceId": wf_id,
                    "taskId": claimed["taskId"],
                    "status": "COMPLETED",
                    "outputData": {"done": True},
                }
            },
        )
        deadline = time.monotonic() + 10
        while (await o.store.executions.get_workflow(wf_id))["status"] != "COMPLETED":
            assert time.monotonic() < deadline, "the workflow did not complete"
            await asyncio.sleep(0.05)
    finally:
        await sweeper.stop(grace_s=2.0)


async def test_a_lost_task_message_is_pushed_within_the_offset_when_the_next_check_is_far(
    outage: Outage,
) -> None:
    """A WAIT of an hour beside the task: the first decide's timer is an hour away, yet the
    task message the start could not push is pushed by a decide within the start offset."""
    o = outage
    name = f"outage_far_{uuid.uuid4().hex[:8]}"
    task_type = f"{name}_t"
    wait = {
        "name": "w",
        "taskReferenceName": "w",
        "type": "WAIT",
        "inputParameters": {"duration": "1 hours"},
    }
    simple = {"name": task_type, "taskReferenceName": "t", "type": "SIMPLE"}
    await o.store.metadata.update_workflow_def(
        {
            "name": name,
            "version": 1,
            "schemaVersion": 2,
            "tasks": [
                {"name": "f", "taskReferenceName": "f", "type": "FORK_JOIN",
                 "forkTasks": [[wait], [simple]]},
                {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["w", "t"]},
            ],
        }
    )  # fmt: skip
    wf_id = id_on_shard(0)
    assert o.decider.shell is not None
    o.decider.shell.ids = lambda: id_on_shard(1)
    o.shards[1].kill()
    answer = await o.rpc.call(
        "decider.start_workflow",
        {"request": {"name": name, "version": 1, "input": {}, "workflowId": wf_id}},
    )
    assert answer == {"workflowId": wf_id}
    o.shards[1].start()
    sweeper = await Sweeper(
        SweeperSettings(
            store=o.store_config,
            queue_addresses=[o.queue.address],
            decider_addresses=[o.decider.address],
            health_port=0,
        )
    ).start()
    try:
        [claimed] = await poll_until(o, task_type, timeout_s=20)
        assert claimed["referenceTaskName"] == "t" and claimed["workflowInstanceId"] == wf_id
    finally:
        await sweeper.stop(grace_s=2.0)


async def test_a_start_whose_timer_could_not_be_set_frees_its_idempotency_key(
    outage: Outage,
) -> None:
    """The timer's shard is down: the start fails before it writes anything, and frees its key,
    so the client's retry once the shard is back starts the workflow at once instead of being
    told "in progress" until the binding is stale (30 s)."""
    o = outage
    name = f"outage_key_{uuid.uuid4().hex[:8]}"
    await o.store.metadata.update_workflow_def(
        {
            "name": name,
            "version": 1,
            "schemaVersion": 2,
            "tasks": [{"name": f"{name}_t", "taskReferenceName": "t", "type": "SIMPLE"}],
        }
    )
    assert o.decider.shell is not None
    o.decider.shell.ids = lambda: id_on_shard(0)  # the workflow's timer goes to s0
    request = {
        "name": name,
        "version": 1,
        "input": {},
        "idempotencyKey": "k",
        "idempotencyStrategy": "RETURN_EXISTING",
    }
    o.shards[0].kill()
    with pytest.raises(PodiumError) as err:
        await o.rpc.call("decider.start_workflow", {"request": request})
    assert err.value.retryable
    o.shards[0].start()

    began = time.monotonic()
    answer = await o.rpc.call("decider.start_workflow", {"request": request})
    assert time.monotonic() - began < idempotency.WAIT_FOR_PENDING_S  # not waited on as pending
    wf = await o.store.executions.get_workflow(answer["workflowId"])
    assert wf["status"] == "RUNNING"
    assert await o.rpc.call("decider.start_workflow", {"request": request}) == answer
