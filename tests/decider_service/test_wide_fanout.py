"""A fan-out wider than one queue call takes (1,000 messages): every child reaches its queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from podium.launch.redis import RedisServer
from podium.queue_client import MAX_PER_OPERATION
from tests.stack import Stack, running_stack

PREFIX = "podium:wide:"
TYPE = "wide_child"
CHILDREN = 2 * MAX_PER_OPERATION + 500
DEFINITION = {
    "name": "wf_wide",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        {
            "name": "fan",
            "taskReferenceName": "fan",
            "type": "FORK_JOIN_DYNAMIC",
            "dynamicForkTasksParam": "tasks",
            "dynamicForkTasksInputParamName": "inputs",
            "inputParameters": {
                "tasks": "${workflow.input.tasks}",
                "inputs": "${workflow.input.inputs}",
            },
        },
        {"name": "join", "taskReferenceName": "join", "type": "JOIN"},
    ],
}


@pytest.fixture
async def stack(redis_server: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(redis_server, PREFIX) as s:
        yield s


async def test_every_child_of_a_wide_fork_is_queued(stack: Stack) -> None:
    refs = [f"c{i}" for i in range(CHILDREN)]
    wf_id = await stack.start(
        DEFINITION,
        {
            "tasks": [{"name": TYPE, "taskReferenceName": r, "type": "SIMPLE"} for r in refs],
            "inputs": {r: {"i": i} for i, r in enumerate(refs)},
        },
    )
    wf = await stack.workflow(wf_id)
    children = [t for t in wf["tasks"] if t["taskType"] == TYPE]
    assert len(children) == CHILDREN
    assert await stack.queues.size(TYPE) == CHILDREN
    # and the sweep's re-push of a workflow's scheduled tasks also goes in several calls
    await stack.queues.flush(TYPE)
    await stack.rpc.call("decider.decide", {"workflowId": wf_id})
    assert await stack.queues.size(TYPE) == CHILDREN
