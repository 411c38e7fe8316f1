"""A start during a queue-shard outage: once the workflow is committed, the start succeeds.

The decider sets the workflow's timer (on the decider queue) before it writes the workflow,
then pushes the first task messages. Here the shard that holds the task message is down while
the timer's shard is up: the workflow is committed, so the start answers its id, and the decide
its timer triggers (once the shard is back) pushes the missing message. A start that fails
before writing anything frees its idempotency key; a sub-workflow whose start fails that way is
started by its parent's next decide; and a parent whose child's end was never told to it (a
decider killed in between) learns it from its next decide.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from decider import idempotency
from decider.decision import DeciderConfig
from podium.errors import PodiumError
from podium.launch.redis import RedisServer
from podium.queues import DECIDER_QUEUE
from podium.types import JSON
from sweeper.server import Sweeper, SweeperSettings
from tests.local_cassandra import cassandra_store_config
from tests.polling import eventually
from tests.stack import Stack, id_on_shard, running_stack

BACKENDS = ["redis", "cassandra"]

pytestmark = pytest.mark.timeout(60, func_only=True)


@pytest.fixture(params=BACKENDS)
async def outage(
    request: pytest.FixtureRequest, redis_shards: list[RedisServer]
) -> AsyncIterator[Stack]:
    """Two queue shards (s0, s1) and the store on a third server (or on Cassandra)."""
    shards = redis_shards[:2]
    config = None
    if request.param == "cassandra":
        keyspace = f"podium_outage_{uuid.uuid4().hex[:10]}"
        config = cassandra_store_config(request.getfixturevalue("cassandra_node"), keyspace)
    async with running_stack(
        redis_shards[2],
        "outage:",
        store_config=config,
        shards=shards,
        # A short offset: the first timer of a new workflow fires a second after its start.
        decider_config=DeciderConfig(workflow_offset_s=1),
    ) as running:
        try:
            yield running
        finally:
            for s in shards:
                s.start()


async def claim_next(outage: Stack, task_type: str, timeout_s: float) -> list[JSON]:
    """Pop and claim, as the gateway does, until a message comes (with a deadline); the tasks
    its claim answers."""

    async def pop_and_claim() -> list[JSON] | None:
        got = await outage.queues.pop(task_type, count=1, lease_ms=30_000, wait_ms=200)
        if not got:
            return None
        items = [[m.id, m.payload.decode()] for m in got]
        answer = await outage.rpc.call(
            "decider.claim", {"queue": task_type, "items": items, "workerId": "w"}
        )
        return list(answer["tasks"])

    # the pop itself waits up to 200 ms: no pause between pops
    return await eventually(
        pop_and_claim,
        until=lambda _tasks: True,  # an empty claim counts: the test then fails on it
        timeout_s=timeout_s,
        what=f"a {task_type} message",
        interval_s=0,
    )


async def test_a_start_whose_task_push_fails_returns_the_id_and_the_workflow_completes(
    outage: Stack,
) -> None:
    name = f"outage_{uuid.uuid4().hex[:8]}"
    task_type = f"{name}_t"
    await outage.store.metadata.update_workflow_def(
        {
            "name": name,
            "version": 1,
            "schemaVersion": 2,
            "tasks": [{"name": task_type, "taskReferenceName": "t", "type": "SIMPLE"}],
        }
    )
    # The workflow's timer lives on s0, its first task's message on s1, and s1 is down.
    wf_id = id_on_shard(0)
    assert outage.decider.shell is not None
    outage.decider.shell.ids = lambda: id_on_shard(1)
    outage.shards[1].kill()

    answer = await outage.rpc.call(
        "decider.start_workflow",
        {"request": {"name": name, "version": 1, "input": {}, "workflowId": wf_id}},
    )

    assert answer == {"workflowId": wf_id}
    wf = await outage.store.executions.get_workflow(wf_id)
    assert wf["status"] == "RUNNING"
    [task] = wf["tasks"]
    assert task["status"] == "SCHEDULED"
    assert await outage.queues.contains(DECIDER_QUEUE, wf_id)

    outage.shards[1].start()  # back, empty: the task's message was never written
    sweeper = await Sweeper(
        SweeperSettings(
            store=outage.store_config,
            queue_addresses=[outage.queue.address],
            decider_addresses=[outage.decider.address],
            health_port=0,
        )
    ).start()
    try:
        [claimed] = await claim_next(outage, task_type, timeout_s=20)
        assert claimed["taskId"] == task["taskId"]
        await outage.rpc.call(
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
        await eventually(
            lambda: outage.store.executions.get_workflow(wf_id),
            until=lambda wf: wf["status"] == "COMPLETED",
            timeout_s=10,
            what="the workflow completed",
            interval_s=0.05,
        )
    finally:
        await sweeper.stop(grace_s=2.0)


async def test_a_lost_task_message_is_pushed_within_the_offset_when_the_next_check_is_far(
    outage: Stack,
) -> None:
    """A WAIT of an hour beside the task: the first decide's timer is an hour away, yet the
    task message the start could not push is pushed by a decide within the start offset."""
    name = f"outage_far_{uuid.uuid4().hex[:8]}"
    task_type = f"{name}_t"
    wait = {
        "name": "w",
        "taskReferenceName": "w",
        "type": "WAIT",
        "inputParameters": {"duration": "1 hours"},
    }
    simple = {"name": task_type, "taskReferenceName": "t", "type": "SIMPLE"}
    await outage.store.metadata.update_workflow_def(
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
    assert outage.decider.shell is not None
    outage.decider.shell.ids = lambda: id_on_shard(1)
    outage.shards[1].kill()
    answer = await outage.rpc.call(
        "decider.start_workflow",
        {"request": {"name": name, "version": 1, "input": {}, "workflowId": wf_id}},
    )
    assert answer == {"workflowId": wf_id}
    outage.shards[1].start()
    sweeper = await Sweeper(
        SweeperSettings(
            store=outage.store_config,
            queue_addresses=[outage.queue.address],
            decider_addresses=[outage.decider.address],
            health_port=0,
        )
    ).start()
    try:
        [claimed] = await claim_next(outage, task_type, timeout_s=20)
        assert claimed["referenceTaskName"] == "t" and claimed["workflowInstanceId"] == wf_id
    finally:
        await sweeper.stop(grace_s=2.0)


async def test_a_start_whose_timer_could_not_be_set_frees_its_idempotency_key(
    outage: Stack,
) -> None:
    """The timer's shard is down: the start fails before it writes anything, and frees its key,
    so the client's retry once the shard is back starts the workflow at once instead of being
    told "in progress" until the binding is stale (30 s)."""
    name = await outage.register_simple("outage_key")
    assert outage.decider.shell is not None
    outage.decider.shell.ids = lambda: id_on_shard(0)  # the workflow's timer goes to s0
    request = {
        "name": name,
        "version": 1,
        "input": {},
        "idempotencyKey": "k",
        "idempotencyStrategy": "RETURN_EXISTING",
    }
    outage.shards[0].kill()
    with pytest.raises(PodiumError) as err:
        await outage.rpc.call("decider.start_workflow", {"request": request})
    assert err.value.retryable
    outage.shards[0].start()

    began = time.monotonic()
    answer = await outage.rpc.call("decider.start_workflow", {"request": request})
    assert time.monotonic() - began < idempotency.WAIT_FOR_PENDING_S  # not waited on as pending
    wf = await outage.store.executions.get_workflow(answer["workflowId"])
    assert wf["status"] == "RUNNING"
    assert await outage.rpc.call("decider.start_workflow", {"request": request}) == answer


async def _register_parent_and_child(outage: Stack, name: str) -> None:
    """``{name}``: a SIMPLE task, then a SUB_WORKFLOW of ``{name}_child`` (one SIMPLE task)."""
    for wf_name, tasks in (
        (f"{name}_child", [{"name": f"{name}_c", "taskReferenceName": "c", "type": "SIMPLE"}]),
        (
            name,
            [
                {"name": f"{name}_t", "taskReferenceName": "t", "type": "SIMPLE"},
                {"name": "sub", "taskReferenceName": "s", "type": "SUB_WORKFLOW",
                 "subWorkflowParam": {"name": f"{name}_child", "version": 1}},
            ],
        ),
    ):  # fmt: skip
        await outage.store.metadata.update_workflow_def(
            {"name": wf_name, "version": 1, "schemaVersion": 2, "tasks": tasks}
        )


async def _complete(outage: Stack, task: JSON) -> None:
    await outage.rpc.call(
        "decider.update_task",
        {"result": {"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"],
                    "status": "COMPLETED", "outputData": {}}},
    )  # fmt: skip


async def _sub_task(outage: Stack, wf_id: str, *, until: str, timeout_s: float = 10) -> JSON:
    """The parent's SUB_WORKFLOW task, once its status is ``until``."""

    async def read() -> JSON:
        wf = await outage.store.executions.get_workflow(wf_id)
        sub: JSON = next(t for t in wf["tasks"] if t["referenceTaskName"] == "s")
        return sub

    return await eventually(
        read,
        until=lambda sub: sub["status"] == until,
        timeout_s=timeout_s,
        what=f"the sub-workflow task {until}",
        interval_s=0.05,
    )


async def test_a_sub_workflow_whose_start_meets_an_outage_is_started_once_the_queues_are_back(
    outage: Stack,
) -> None:
    """The child's start fails retryably (no queue shard to hold its timer): the parent's
    SUB_WORKFLOW task stays SCHEDULED, not FAILED, and the parent's next decide starts it."""
    name = f"outage_sub_{uuid.uuid4().hex[:8]}"
    await _register_parent_and_child(outage, name)
    answer = await outage.rpc.call(
        "decider.start_workflow", {"request": {"name": name, "input": {}}}
    )
    wf_id = answer["workflowId"]
    [task] = await claim_next(outage, f"{name}_t", timeout_s=10)
    for shard in outage.shards:
        shard.kill()
    with contextlib.suppress(PodiumError):  # the completion's queue effects fail too
        await _complete(outage, task)
    wf = await outage.store.executions.get_workflow(wf_id)
    assert wf["status"] == "RUNNING"
    sub = next(t for t in wf["tasks"] if t["referenceTaskName"] == "s")
    assert sub["status"] == "SCHEDULED", sub.get("reasonForIncompletion")

    for shard in outage.shards:
        shard.start()
    await outage.rpc.call("decider.decide", {"workflowId": wf_id})
    sub = await _sub_task(outage, wf_id, until="IN_PROGRESS")
    child = await outage.store.executions.get_workflow(sub["subWorkflowId"])
    assert child["status"] == "RUNNING"


async def test_a_parent_learns_of_a_sub_workflow_end_whose_notice_was_lost(
    outage: Stack,
) -> None:
    """What a decider killed between committing a child's end and telling its parent leaves: the
    child COMPLETED, the parent's task IN_PROGRESS. The parent's next decide completes it."""
    name = f"lost_notice_{uuid.uuid4().hex[:8]}"
    await _register_parent_and_child(outage, name)
    answer = await outage.rpc.call(
        "decider.start_workflow", {"request": {"name": name, "input": {}}}
    )
    wf_id = answer["workflowId"]
    [task] = await claim_next(outage, f"{name}_t", timeout_s=10)
    await _complete(outage, task)
    sub = await _sub_task(outage, wf_id, until="IN_PROGRESS")
    # The child's end committed by hand, with no decider to send the notice.
    snap = await outage.store.executions.read_workflow(sub["subWorkflowId"], include_tasks=True)
    child = dict(snap.workflow)
    child_tasks = [{**t, "status": "COMPLETED"} for t in child.pop("tasks")]
    child.update(status="COMPLETED", output={"done": 1}, endTime=int(time.time() * 1000))
    await outage.store.executions.commit(child, child_tasks, snap.version)

    await outage.rpc.call("decider.decide", {"workflowId": wf_id})
    sub = await _sub_task(outage, wf_id, until="COMPLETED")
    assert sub["outputData"]["done"] == 1
    assert (await outage.store.executions.get_workflow(wf_id))["status"] == "COMPLETED"
