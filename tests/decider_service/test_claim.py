"""A poll's claims: one that fails does not take the others down with it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from podium.errors import PodiumError
from podium.launch.redis import RedisServer
from podium.store.redis_backend.keys import Keys
from tests.polling import eventually
from tests.shapes import fork_join
from tests.stack import Stack, running_stack

PREFIX = "podium:claim:"
TYPE = "claim_partial"
DEFINITION = {
    "name": "wf_claim_partial",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [{"name": TYPE, "taskReferenceName": "t", "type": "SIMPLE"}],
}


@pytest.fixture
async def stack(redis_server: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(redis_server, PREFIX) as s:
        yield s


async def leased(stack: Stack) -> int:
    return sum(d["leased"] for d in (await stack.queues.details(TYPE)).values())


async def test_a_failed_claim_stays_leased_while_the_others_reach_the_worker(stack: Stack) -> None:
    ids = [await stack.start(DEFINITION) for _ in range(3)]
    # One workflow's stored record is unreadable: its claim fails (not with NOT_FOUND).
    broken = ids[0]
    redis = Redis.from_url(stack.redis.url)
    try:
        await redis.hset(Keys(PREFIX).workflow(broken), "rec", b"\xc1")  # never valid msgpack
    finally:
        await redis.aclose()
    assert stack.decider.shell is not None
    stack.decider.shell.records.clear()  # read the store, as a replica that did not start them

    got = await stack.queues.pop(TYPE, count=10, lease_ms=30_000)
    items = [[m.id, m.payload.decode()] for m in got]
    assert len(items) == 3
    answer = await stack.rpc.call("decider.claim", {"queue": TYPE, "items": items, "workerId": "w"})
    assert sorted(t["workflowInstanceId"] for t in answer["tasks"]) == sorted(ids[1:])
    # The two claimed tasks are acked; the failed one is still leased, to come back later.
    assert await leased(stack) == 1
    for wf_id in ids[1:]:
        assert (await stack.workflow(wf_id))["tasks"][0]["status"] == "IN_PROGRESS"

    # A poll whose every claim fails answers with the error.
    [unclaimed] = [i for i in items if i[1] == broken]
    with pytest.raises(PodiumError, match="cannot be decoded"):
        await stack.rpc.call("decider.claim", {"queue": TYPE, "items": [unclaimed]})


FAN_TYPE = "claim_fan"
FAN = fork_join("wf_claim_fan", FAN_TYPE, 10)


async def test_a_poll_of_a_forks_branches_claims_them_in_one_decision(stack: Stack) -> None:
    wf_id = await stack.start(FAN)
    popped: list[list[str]] = []

    async def pop_all() -> bool:
        got = await stack.queues.pop(FAN_TYPE, count=10, lease_ms=30_000)
        popped.extend([m.id, m.payload.decode()] for m in got)
        return len(popped) == 10

    await eventually(pop_all, timeout_s=10, what="the ten branches' messages")
    shell = stack.decider.shell
    assert shell is not None
    stats = shell.stats
    commits, conflicts = stats.commits, stats.conflicts

    answer = await stack.rpc.call(
        "decider.claim", {"queue": FAN_TYPE, "items": popped, "workerId": "w"}
    )

    assert sorted(t["taskId"] for t in answer["tasks"]) == sorted(i for i, _ in popped)
    # One read, one commit for the ten: no claim raced another on the workflow's version.
    assert (stats.commits - commits, stats.conflicts - conflicts) == (1, 0)
    branches = [t for t in (await stack.workflow(wf_id))["tasks"] if t["taskType"] == FAN_TYPE]
    assert len(branches) == 10
    assert {(t["status"], t["pollCount"], t["workerId"]) for t in branches} == {
        ("IN_PROGRESS", 1, "w")
    }
    assert await leased(stack) == 0  # all ten acked
