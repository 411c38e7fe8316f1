"""A start sets the workflow's timer before its first decision, and a refused start keeps none.

The first tasks' ``scheduledTime`` is the decision's clock, so the time a task waits for a
worker (scheduled → polled) does not include the queue call that sets the timer. An invalid
request still answers its own error (not the timer's), and leaves no timer behind.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podium.errors import PodiumError
from podium.launch.redis import RedisServer
from podium.queues import DECIDER_QUEUE
from tests.stack import Stack, id_on_shard, running_stack

pytestmark = pytest.mark.timeout(60, func_only=True)


@pytest.fixture
async def stack(redis_shards: list[RedisServer]) -> AsyncIterator[Stack]:
    """Two queue shards (s0, s1); the store on a third server."""
    shards = redis_shards[:2]
    async with running_stack(redis_shards[2], "start-timer:", shards=shards) as running:
        try:
            yield running
        finally:
            for s in shards:
                s.start()


async def test_the_first_tasks_are_scheduled_after_the_timer_is_set(stack: Stack) -> None:
    shell = stack.decider.shell
    assert shell is not None
    # A clock that moves on at every reading: what is read after another reads more.
    ticks = itertools.count(shell.clock())
    shell.clock = lambda: next(ticks)
    timer_set_at: list[int] = []
    schedule = shell.queues.schedule

    async def recording_schedule(*args: Any, **kwargs: Any) -> Any:
        answer = await schedule(*args, **kwargs)
        if args[0] == DECIDER_QUEUE and not timer_set_at:
            timer_set_at.append(shell.clock())
        return answer

    shell.queues.schedule = recording_schedule  # type: ignore[method-assign]
    name = await stack.register_simple("start_timer")
    answer = await stack.rpc.call(
        "decider.start_workflow", {"request": {"name": name, "input": {}}}
    )

    wf = await stack.store.executions.get_workflow(answer["workflowId"])
    [task] = wf["tasks"]
    assert timer_set_at, "no timer was set"
    assert task["scheduledTime"] > timer_set_at[0]
    assert wf["createTime"] > timer_set_at[0]


async def test_an_invalid_start_answers_its_own_error_when_the_timer_fails_too(
    stack: Stack,
) -> None:
    shell = stack.decider.shell
    assert shell is not None
    shell.ids = lambda: id_on_shard(0)  # the workflow's timer goes to s0, which is down
    name = await stack.register_simple("start_timer")
    stack.shards[0].kill()
    request = {"name": name, "input": {}, "priority": 500}
    with pytest.raises(PodiumError) as err:
        await stack.rpc.call("decider.start_workflow", {"request": request})
    assert not err.value.retryable
    assert [e["path"] for e in err.value.data["validationErrors"]] == ["priority"]

    # A valid start meanwhile fails retryably: its timer could not be set.
    with pytest.raises(PodiumError) as err:
        await stack.rpc.call("decider.start_workflow", {"request": {"name": name, "input": {}}})
    assert err.value.retryable


async def test_a_refused_start_leaves_no_timer(stack: Stack) -> None:
    shell = stack.decider.shell
    assert shell is not None
    made: list[str] = []

    def ids() -> str:
        made.append(str(uuid.uuid4()))
        return made[-1]

    shell.ids = ids
    name = await stack.register_simple("start_timer")
    with pytest.raises(PodiumError) as err:
        await stack.rpc.call(
            "decider.start_workflow", {"request": {"name": name, "input": {}, "priority": 500}}
        )
    assert not err.value.retryable
    [wf_id] = made
    assert not await stack.queues.contains(DECIDER_QUEUE, wf_id)
    with pytest.raises(PodiumError):
        await stack.store.executions.get_workflow(wf_id)
