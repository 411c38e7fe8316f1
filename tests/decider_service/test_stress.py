"""Two decider replicas deciding the same workflows at once: no duplicate, nothing lost."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from podium.launch.redis import RedisServer
from podium.queues import DECIDER_QUEUE
from podium.rpc import RpcClient
from podium.types import JSON
from tests.stack import Stack, running_stack

WORKFLOWS = 200


@pytest.fixture
async def two_deciders(redis_server: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(redis_server, "podium:stress:", deciders=2) as s:
        yield s


def definition(name: str, task_type: str) -> JSON:
    fork = {
        "name": "fork",
        "taskReferenceName": "fork",
        "type": "FORK_JOIN",
        "forkTasks": [
            [{"name": task_type, "taskReferenceName": f"b{i}", "type": "SIMPLE"}] for i in range(3)
        ],
    }
    join = {
        "name": "join",
        "taskReferenceName": "join",
        "type": "JOIN",
        "joinOn": ["b0", "b1", "b2"],
    }
    last = {"name": task_type, "taskReferenceName": "last", "type": "SIMPLE"}
    return {"name": name, "version": 1, "schemaVersion": 2, "tasks": [fork, join, last]}


@pytest.mark.timeout(180)
async def test_concurrent_deciders_never_duplicate_lose_or_strand_a_workflow(
    two_deciders: Stack,
) -> None:
    stack = two_deciders
    name, task_type = "stress_wf", "stress_task"
    await stack.store.metadata.update_workflow_def(definition(name, task_type))
    a, b = (RpcClient([d.address], timeout_s=60) for d in stack.deciders)
    try:
        starts = [
            (a if i % 2 else b).call(
                "decider.start_workflow", {"request": {"name": name, "input": {"i": i}}}
            )
            for i in range(WORKFLOWS)
        ]
        ids = [r["workflowId"] for r in await asyncio.gather(*starts)]
        stop_noise = asyncio.Event()

        async def noise() -> None:
            # Sweeps racing the updates: both replicas decide random workflows all the time.
            while not stop_noise.is_set():
                wf_id = random.choice(ids)
                await asyncio.gather(
                    a.call("decider.decide", {"workflowId": wf_id}),
                    b.call("decider.decide", {"workflowId": wf_id}),
                )

        async def worker(n: int) -> None:
            idle = 0
            while idle < 20:
                got = await stack.queues.pop(task_type, count=5, lease_ms=60_000, wait_ms=100)
                if not got:
                    idle += 1
                    continue
                idle = 0
                items = [[m.id, m.payload.decode()] for m in got]
                claimed = (
                    await a.call(
                        "decider.claim", {"queue": task_type, "items": items, "workerId": f"w{n}"}
                    )
                )["tasks"]
                for t in claimed:
                    result = {
                        "workflowInstanceId": t["workflowInstanceId"],
                        "taskId": t["taskId"],
                        "status": "COMPLETED",
                        "outputData": {"by": n},
                    }
                    # The same completion sent to both replicas at once: one must win.
                    await asyncio.gather(
                        a.call("decider.update_task", {"result": result}),
                        b.call("decider.update_task", {"result": result}),
                    )

        noise_tasks = [asyncio.ensure_future(noise()) for _ in range(4)]
        await asyncio.gather(*(worker(n) for n in range(8)))
        stop_noise.set()
        await asyncio.gather(*noise_tasks)

        statuses: Counter[str] = Counter()
        for wf_id in ids:
            wf = await stack.store.executions.get_workflow(wf_id, include_tasks=True)
            statuses[wf["status"]] += 1
            keys = [
                (t["referenceTaskName"], t["retryCount"], t.get("iteration", 0))
                for t in wf["tasks"]
            ]
            assert len(keys) == len(set(keys)), f"duplicate task in {wf_id}: {keys}"
            assert sorted(k[0] for k in keys) == ["b0", "b1", "b2", "fork", "join", "last"]
            if wf["status"] == "COMPLETED":
                assert not await stack.queues.contains(DECIDER_QUEUE, wf_id)
        assert statuses == Counter({"COMPLETED": WORKFLOWS})
        conflicts = sum(d.shell.stats.conflicts for d in stack.deciders if d.shell)
        assert conflicts > 0  # the replicas really raced
    finally:
        await a.close()
        await b.close()
