"""Operations on one workflow that arrive together are decided together: one read, one
commit, one round of effects, no race on the workflow's version."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from decider.shell import DeciderShell
from podium.errors import NotFound
from podium.launch.redis import RedisServer
from tests.polling import eventually
from tests.shapes import fork_join
from tests.stack import Stack, running_stack

PREFIX = "podium:coalesce:"
TYPE = "coalesce_branch"
BRANCHES = 20
FAN = fork_join("wf_coalesce_fan", TYPE, BRANCHES)


@pytest.fixture
async def stack(redis_server: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(redis_server, PREFIX) as s:
        yield s


async def claimed_branches(stack: Stack) -> tuple[str, list[str]]:
    """A started fan-out whose branches are all claimed: its id and the branch task ids."""
    wf_id = await stack.start(FAN)
    popped: list[list[str]] = []

    async def pop_all() -> bool:
        got = await stack.queues.pop(TYPE, count=BRANCHES, lease_ms=30_000)
        popped.extend([m.id, m.payload.decode()] for m in got)
        return len(popped) == BRANCHES

    await eventually(pop_all, timeout_s=10, what="the branches' messages")
    await stack.rpc.call("decider.claim", {"queue": TYPE, "items": popped, "workerId": "w"})
    return wf_id, [task_id for task_id, _ in popped]


def completed(wf_id: str, task_id: str) -> dict[str, Any]:
    return {
        "workflowInstanceId": wf_id,
        "taskId": task_id,
        "status": "COMPLETED",
        "outputData": {"id": task_id},
    }


def shell_of(stack: Stack) -> DeciderShell:
    shell = stack.decider.shell
    assert shell is not None
    return shell


async def test_results_arriving_together_are_committed_together(stack: Stack) -> None:
    wf_id, task_ids = await claimed_branches(stack)
    shell = shell_of(stack)
    stats = shell.stats
    commits, conflicts = stats.commits, stats.conflicts

    decisions = await asyncio.gather(*(shell.update_task(completed(wf_id, t)) for t in task_ids))

    assert all(d.accepted for d in decisions)
    # The first result is decided alone; the nineteen that came while it was, together.
    assert (stats.commits - commits, stats.conflicts - conflicts) == (2, 0)
    wf = await stack.workflow(wf_id)
    assert wf["status"] == "COMPLETED"
    join = next(t for t in wf["tasks"] if t["referenceTaskName"] == "join")
    by_task = {t["taskId"]: t["referenceTaskName"] for t in wf["tasks"]}
    assert join["outputData"] == {by_task[t]: {"id": t} for t in task_ids}
    assert not shell._waiting  # nothing left waiting on the workflow


async def test_a_refused_result_is_refused_alone(stack: Stack) -> None:
    wf_id, task_ids = await claimed_branches(stack)
    shell = shell_of(stack)
    first, *rest = task_ids
    bad = {**completed(wf_id, first), "taskId": "no-such-task"}

    outcomes = await asyncio.gather(
        shell.update_task(completed(wf_id, first)),
        shell.update_task(bad),
        shell.update_task(completed(wf_id, first)),  # a repeat: not accepted
        *(shell.update_task(completed(wf_id, t)) for t in rest),
        return_exceptions=True,
    )

    ok, refused, repeat, *others = outcomes
    assert not isinstance(ok, BaseException) and ok.accepted
    assert isinstance(refused, NotFound)
    assert not isinstance(repeat, BaseException) and not repeat.accepted
    assert all(not isinstance(o, BaseException) and o.accepted for o in others)
    assert (await stack.workflow(wf_id))["status"] == "COMPLETED"


async def test_a_caller_that_gives_up_does_not_stop_the_others(stack: Stack) -> None:
    wf_id, task_ids = await claimed_branches(stack)
    shell = shell_of(stack)
    first, leader, *rest = (
        asyncio.ensure_future(shell.update_task(completed(wf_id, t))) for t in task_ids[:4]
    )
    await asyncio.sleep(0)  # each runs to its first wait: the first alone, three behind it
    assert len(shell._waiting[wf_id]) == 3

    await first  # then the next leads the two others, as a group of three
    assert not shell._waiting[wf_id] and not leader.done()
    leader.cancel()

    decisions = await asyncio.gather(*rest)
    assert all(d.accepted for d in decisions)
    with pytest.raises(asyncio.CancelledError):
        await leader
    status = {t["taskId"]: t["status"] for t in (await stack.workflow(wf_id))["tasks"]}
    # the group was decided whole, the leader's own result too, like a request whose client
    # went away after sending it
    assert [status[t] for t in task_ids[:4]] == ["COMPLETED"] * 4
    assert not shell._waiting
    # and the workflow goes on being decided: the rest of the branches complete it
    await asyncio.gather(*(shell.update_task(completed(wf_id, t)) for t in task_ids[4:]))
    assert (await stack.workflow(wf_id))["status"] == "COMPLETED"
