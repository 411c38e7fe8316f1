"""The repair pass counts only workflows that really lost their decider-queue entry.

Its listing of RUNNING workflows is out of date by the time each is checked: a workflow that
finished in between has no entry because it needs none. The races are made deterministic by
handing the repair step a listing taken before the workflow finished.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from podium.launch.redis import RedisServer
from podium.queues import DECIDER_QUEUE
from podium.store import SearchQuery
from sweeper.server import Sweeper
from tests.local_cassandra import cassandra_store_config
from tests.stack import Stack, running_stack

BACKENDS = ["redis", "cassandra"]

pytestmark = pytest.mark.timeout(30, func_only=True)


@pytest.fixture(params=BACKENDS)
async def stack(request: pytest.FixtureRequest, sweeper_redis: RedisServer) -> AsyncIterator[Stack]:
    tag = uuid.uuid4().hex[:10]
    store_config = None
    if request.param == "cassandra":
        node = request.getfixturevalue("cassandra_node")
        store_config = cassandra_store_config(node, f"podium_repair_{tag}")
    async with running_stack(
        sweeper_redis, f"podium:repair:{tag}:", store_config=store_config
    ) as s:
        yield s


@pytest.fixture
async def sweepers(stack: Stack) -> AsyncIterator[list[Sweeper]]:
    """Two sweepers whose repair loops wait an hour: the tests call the repair step."""
    started = [await Sweeper(stack.sweeper_settings(repair_interval_s=3600)).start()]
    started.append(await Sweeper(stack.sweeper_settings(repair_interval_s=3600)).start())
    yield started
    for s in started:
        await s.stop(grace_s=2.0)


async def start_one(stack: Stack) -> tuple[str, str]:
    """A RUNNING workflow (one SIMPLE task, no worker); its id and the task's type."""
    name = f"wf_{uuid.uuid4().hex[:10]}"
    task_type = f"{name}_t"
    wf_id = await stack.start(
        {
            "name": name,
            "version": 1,
            "schemaVersion": 2,
            "tasks": [{"name": task_type, "taskReferenceName": "t", "type": "SIMPLE"}],
        }
    )
    return wf_id, task_type


async def running_listing(stack: Stack, wf_id: str) -> list[str]:
    """What the repair scan lists: the RUNNING workflows of the search (this one among them)."""
    page = await stack.store.executions.search_workflows(
        SearchQuery(statuses=("RUNNING",), workflow_id=wf_id)
    )
    return [str(s["workflowId"]) for s in page["results"]]


def repaired_total(sweeper: Sweeper) -> float:
    return float(sweeper.metrics.repaired._value.get())


async def test_a_workflow_that_finished_after_the_listing_is_not_repaired(
    stack: Stack, sweepers: list[Sweeper]
) -> None:
    wf_id, _ = await start_one(stack)
    listing = await running_listing(stack, wf_id)
    assert listing == [wf_id]
    await stack.rpc.call("decider.terminate", {"workflowId": wf_id, "reason": "done"})
    assert not await stack.queues.contains(DECIDER_QUEUE, wf_id)  # finished: no timer

    assert await sweepers[0].repair(listing) == 0

    assert repaired_total(sweepers[0]) == 0
    assert not await stack.queues.contains(DECIDER_QUEUE, wf_id)


async def test_a_lost_entry_is_repaired_once_by_two_sweepers(
    stack: Stack, sweepers: list[Sweeper]
) -> None:
    wf_id, _ = await start_one(stack)
    listing = await running_listing(stack, wf_id)
    await stack.queues.remove(DECIDER_QUEUE, [wf_id])  # the "stuck RUNNING" failure

    counts = await asyncio.gather(*(s.repair(listing) for s in sweepers))

    assert sorted(counts) == [0, 1]
    assert sum(repaired_total(s) for s in sweepers) == 1
    assert await stack.queues.contains(DECIDER_QUEUE, wf_id)
