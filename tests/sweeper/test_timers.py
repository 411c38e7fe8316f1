"""Timers, timeouts, callbacks and repair, driven by a real sweeper against real services."""

from __future__ import annotations

import time

import pytest

from podium.queues import DECIDER_QUEUE
from podium.types import JSON
from sweeper.server import Sweeper
from tests.polling import eventually
from tests.stack import Stack


def simple(ref: str, name: str) -> JSON:
    return {"name": name, "taskReferenceName": ref, "type": "SIMPLE"}


async def poll(stack: Stack, task_type: str, worker: str = "w1") -> list[JSON]:
    """What a worker's poll does through the gateway: pop, then claim through the decider."""
    got = await stack.queues.pop(task_type, count=1, lease_ms=30_000)
    if not got:
        return []
    items = [[m.id, m.payload.decode()] for m in got]
    answer = await stack.rpc.call(
        "decider.claim", {"queue": task_type, "items": items, "workerId": worker}
    )
    return list(answer["tasks"])


async def test_a_silent_worker_times_out_by_response_timeout_and_the_task_is_retried(
    stack: Stack, sweeper: Sweeper, name: str
) -> None:
    task_type = f"{name}_t"
    await stack.store.metadata.create_task_def(
        {
            "name": task_type,
            "retryCount": 1,
            "retryDelaySeconds": 0,
            "responseTimeoutSeconds": 1,
            "timeoutSeconds": 60,
            "ownerEmail": "a@b.c",
        }
    )
    wf_id = await stack.start(
        {"name": name, "version": 1, "schemaVersion": 2, "tasks": [simple("t", task_type)]}
    )
    (task,) = await poll(stack, task_type)
    assert task["status"] == "IN_PROGRESS"
    # The worker never answers: the sweeper decides at the response timeout.
    wf = await stack.until(wf_id, lambda w: len(w["tasks"]) == 2)
    first, second = wf["tasks"]
    assert first["status"] == "TIMED_OUT"
    assert second["status"] == "SCHEDULED" and second["retryCount"] == 1
    assert second["retriedTaskId"] == first["taskId"]
    # The retry's queue message is pushed by the decision's effects, which follow its commit.

    async def polled() -> list[JSON]:
        return await poll(stack, task_type)

    retried = await eventually(polled, timeout_s=5, what="the retried task to be pollable")
    assert [t["taskId"] for t in retried] == [second["taskId"]]


async def test_workflow_timeout_applies_its_policy(
    stack: Stack, sweeper: Sweeper, name: str
) -> None:
    wf_id = await stack.start(
        {
            "name": name,
            "version": 1,
            "schemaVersion": 2,
            "timeoutSeconds": 1,
            "timeoutPolicy": "TIME_OUT_WF",
            "tasks": [simple("t", f"{name}_t")],
        }
    )
    wf = await stack.until(wf_id, lambda w: w["status"] != "RUNNING")
    assert wf["status"] == "TIMED_OUT"
    assert "timed out" in wf["reasonForIncompletion"]

    # Finished: no more timer. The entry goes with the decision's queue effects, which follow
    # its commit, so a reader can see the new status a moment before the entry is gone.
    async def timer_gone() -> bool:
        return not await stack.queues.contains(DECIDER_QUEUE, wf_id)

    await eventually(timer_gone, timeout_s=5, what=f"the timer of {wf_id} removed")


async def test_wait_with_a_duration_completes_on_time(
    stack: Stack, sweeper: Sweeper, name: str
) -> None:
    wf_id = await stack.start(
        {
            "name": name,
            "version": 1,
            "schemaVersion": 2,
            "tasks": [
                {
                    "name": "wait",
                    "taskReferenceName": "w",
                    "type": "WAIT",
                    "inputParameters": {"duration": "1 seconds"},
                }
            ],
        }
    )
    wf = await stack.until(wf_id, lambda w: w["status"] == "COMPLETED", timeout_s=10)
    (wait,) = wf["tasks"]
    late_ms = wait["endTime"] - (wait["scheduledTime"] + 1000)
    assert 0 <= late_ms < 1000, late_ms


async def test_callback_after_seconds_delays_the_next_poll(
    stack: Stack, sweeper: Sweeper, name: str
) -> None:
    task_type = f"{name}_t"
    wf_id = await stack.start(
        {"name": name, "version": 1, "schemaVersion": 2, "tasks": [simple("t", task_type)]}
    )
    (task,) = await poll(stack, task_type)
    await stack.rpc.call(
        "decider.update_task",
        {
            "result": {
                "workflowInstanceId": wf_id,
                "taskId": task["taskId"],
                "status": "IN_PROGRESS",
                "callbackAfterSeconds": 1,
            }
        },
    )
    asked = time.monotonic()
    assert await poll(stack, task_type) == []  # not before its callback time
    got = await eventually(
        lambda: poll(stack, task_type), timeout_s=10, what="the task handed out again"
    )
    assert time.monotonic() - asked >= 0.9
    assert got[0]["taskId"] == task["taskId"] and got[0]["pollCount"] == 2


async def test_repair_gives_a_running_workflow_its_lost_decider_entry_back(
    stack: Stack, sweeper: Sweeper, name: str
) -> None:
    # The sweeper's own repair loop makes a pass as it starts, then one a minute: let that first
    # pass end, so that it cannot put the entry back before the pass under test does.
    registered = sweeper.heartbeats.last["repair"]

    async def first_pass_done() -> bool:
        return sweeper.heartbeats.last["repair"] > registered

    await eventually(first_pass_done, timeout_s=20, what="the sweeper's first repair pass")
    wf_id = await stack.start(
        {"name": name, "version": 1, "schemaVersion": 2, "tasks": [simple("t", f"{name}_t")]}
    )
    assert await stack.queues.contains(DECIDER_QUEUE, wf_id)
    await stack.queues.remove(DECIDER_QUEUE, [wf_id])  # the "stuck RUNNING" failure
    repaired = await sweeper.repair_once()
    assert repaired >= 1
    assert await stack.queues.contains(DECIDER_QUEUE, wf_id)
    assert await sweeper.repair_once() == 0  # nothing left to repair


@pytest.mark.timeout(30)
async def test_a_loop_that_throws_is_restarted_and_ready_reflects_dead_loops(
    stack: Stack, sweeper: Sweeper
) -> None:
    assert sweeper.health.failing() == {}
    calls = 0
    original = sweeper._http_once

    async def broken() -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise RuntimeError("boom")
        await original()

    sweeper._http_once = broken  # type: ignore[method-assign]
    # The supervised loop keeps the old bound method; restart the loop with the broken body.
    sweeper._supervise("http-broken", broken, allowance_s=15)

    async def called_thrice() -> bool:
        return calls >= 3

    await eventually(called_thrice, timeout_s=10, what="three loop runs", interval_s=0.01)
    assert sweeper.metrics.loop_errors.labels("http-broken")._value.get() == 2
    sweeper.heartbeats.register("never", 0.0)
    assert "never" in (sweeper.health.failing().get("loops") or "")
