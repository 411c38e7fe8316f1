"""TaskDef limits at claim time: concurrentExecLimit and rateLimitPerFrequency."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from podium.launch.redis import RedisServer
from podium.types import JSON
from tests.stack import Stack, running_stack


@pytest.fixture
async def stack(redis_server: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(redis_server, "podium:limits:") as s:
        yield s


async def start_two(stack: Stack, task_type: str, task_def: JSON) -> None:
    await stack.store.metadata.create_task_def({"name": task_type, **task_def})
    definition = {
        "name": f"wf_{task_type}",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": task_type, "taskReferenceName": "t", "type": "SIMPLE"}],
    }
    for _ in range(2):
        await stack.start(definition)


async def claim_all(stack: Stack, task_type: str) -> list[JSON]:
    got = await stack.queues.pop(task_type, count=10, lease_ms=30_000)
    items = [[m.id, m.payload.decode()] for m in got]
    answer = await stack.rpc.call(
        "decider.claim", {"queue": task_type, "items": items, "workerId": "w"}
    )
    return list(answer["tasks"])


async def test_concurrent_exec_limit_hands_out_one_and_postpones_the_other(stack: Stack) -> None:
    await start_two(stack, "limited_conc", {"concurrentExecLimit": 1})
    first = await claim_all(stack, "limited_conc")
    assert len(first) == 1
    # the refused one went back into its queue for later (not lost, not handed out)
    details = await stack.queues.details("limited_conc")
    assert sum(d["delayed"] for d in details.values()) == 1
    assert await claim_all(stack, "limited_conc") == []


async def test_rate_limit_per_frequency(stack: Stack) -> None:
    await start_two(
        stack, "limited_rate", {"rateLimitPerFrequency": 1, "rateLimitFrequencyInSeconds": 60}
    )
    first = await claim_all(stack, "limited_rate")
    assert len(first) == 1
    details = await stack.queues.details("limited_rate")
    assert sum(d["delayed"] for d in details.values()) == 1
