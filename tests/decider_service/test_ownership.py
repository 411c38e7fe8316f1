"""Workflow ownership: calls about a workflow go to one decider replica, which keeps its record
in memory. A replica that dies, one that joins, and two that both take themselves for the
owner leave every task result accepted once and every workflow finished as it would be."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection

import pytest
from redis.asyncio import Redis

from decider.server import DeciderService, DeciderSettings
from podium.decider_client import DeciderClient
from podium.launch.redis import RedisServer
from podium.rpc_client import RpcClient, parse_address
from podium.store.redis_backend.keys import Keys
from podium.types import JSON
from tests.local_cassandra import cassandra_store_config
from tests.polling import eventually
from tests.shapes import fork_join
from tests.stack import Stack, running_stack

PREFIX = "podium:own:"
TYPE = "own_step"
SEQ3: JSON = {
    "name": "wf_own_seq3",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [{"name": TYPE, "taskReferenceName": f"s{i}", "type": "SIMPLE"} for i in range(3)],
}
WAITING: JSON = {
    "name": "wf_own_wait",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [{"name": "hold", "taskReferenceName": "hold", "type": "WAIT"}],
}
FAN = fork_join("wf_own_fan", TYPE, 4, {"name": TYPE, "taskReferenceName": "after"})
SWITCHED: JSON = {
    "name": "wf_own_switch",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        {
            "name": "pick",
            "taskReferenceName": "pick",
            "type": "SWITCH",
            "evaluatorType": "value-param",
            "expression": "which",
            "inputParameters": {"which": "${workflow.input.which}"},
            "decisionCases": {
                "a": [{"name": TYPE, "taskReferenceName": "a1", "type": "SIMPLE"}],
            },
            "defaultCase": [{"name": TYPE, "taskReferenceName": "d1", "type": "SIMPLE"}],
        },
        {
            "name": "vars",
            "taskReferenceName": "vars",
            "type": "SET_VARIABLE",
            "inputParameters": {"done": True},
        },
    ],
}


@pytest.fixture
async def stack(redis_server: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(redis_server, PREFIX) as s:
        yield s


@pytest.fixture(params=["redis", "cassandra"])
async def either_stack(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[Stack]:
    """A stack whose store is Redis, or a fresh Cassandra keyspace."""
    store_config = None
    if request.param == "cassandra":
        keyspace = f"podium_own_{uuid.uuid4().hex[:10]}"
        store_config = cassandra_store_config(request.getfixturevalue("cassandra_node"), keyspace)
    async with running_stack(redis_server, PREFIX, store_config=store_config) as s:
        yield s


async def replica_beside(stack: Stack, host: str) -> DeciderService:
    """Another decider replica on the first one's port, at another loopback address."""
    _, port = parse_address(stack.decider.address)
    return await DeciderService(
        DeciderSettings(store=stack.store_config, queue_addresses=[stack.queue.address],
                        host=host, port=port)
    ).start()  # fmt: skip


class Worker:
    """Polls the queue and reports each task it claims once: COMPLETED, or first FAILED for
    the references in ``fail_once`` (a retry follows)."""

    def __init__(self, stack: Stack, client: DeciderClient, fail_once: Collection[str] = ()):
        self.stack = stack
        self.client = client
        self.fail_once = set(fail_once)
        #: accepted results by task id
        self.accepted: Counter[str] = Counter()

    async def step(self) -> int:
        got = await self.stack.queues.pop(TYPE, count=20, lease_ms=30_000)
        if not got:
            return 0
        items = [(m.id, m.payload.decode()) for m in got]
        tasks = await self.client.claim(TYPE, items, "w", ack=True)
        for task in tasks:
            failing = task["referenceTaskName"] in self.fail_once
            self.fail_once.discard(task["referenceTaskName"])
            answer = await self.client.update_task(
                {
                    "taskId": task["taskId"],
                    "workflowInstanceId": task["workflowInstanceId"],
                    "status": "FAILED" if failing else "COMPLETED",
                    "outputData": {"by": "w"},
                }
            )
            if answer["accepted"]:
                self.accepted[task["taskId"]] += 1
        return len(tasks)

    async def until(self, done: Callable[[], object], what: str) -> None:
        """Work until ``done()`` (a bool, or an awaitable of one) holds."""

        async def turn() -> bool:
            await self.step()
            verdict = done()
            return bool(await verdict if inspect.isawaitable(verdict) else verdict)

        await eventually(turn, until=bool, timeout_s=20, what=what)


async def all_completed(stack: Stack, ids: list[str]) -> bool:
    for wf_id in ids:
        if (await stack.workflow(wf_id))["status"] != "COMPLETED":
            return False
    return True


async def start(client: DeciderClient, stack: Stack, definition: JSON, inp: JSON) -> str:
    await stack.store.metadata.update_workflow_def(definition)
    return await client.start_workflow({"name": definition["name"], "version": 1, "input": inp})


async def test_kept_records_are_what_the_store_holds(either_stack: Stack) -> None:
    stack = either_stack
    client = DeciderClient(RpcClient([stack.decider.address]))
    shell = stack.decider.shell
    assert shell is not None
    try:
        await stack.store.metadata.create_task_def(
            {"name": TYPE, "retryCount": 2, "retryLogic": "FIXED", "retryDelaySeconds": 0,
             "timeoutSeconds": 0, "responseTimeoutSeconds": 3600}
        )  # fmt: skip
        ids = [await start(client, stack, SEQ3, {}) for _ in range(3)]
        ids += [await start(client, stack, FAN, {}) for _ in range(2)]
        ids += [await start(client, stack, SWITCHED, {"which": w}) for w in ("a", "z")]
        running = await start(client, stack, WAITING, {})
        worker = Worker(stack, client, fail_once={"s1", "b2"})
        await worker.until(lambda: all_completed(stack, ids), "every workflow completed")
        await client.pause(running)
        # Every decision after a start began on the record it kept, with no read.
        assert shell.records.misses == 0
        assert shell.records.hits > 0
        assert shell.stats.conflicts == 0
        # Finished workflows are not kept; the running one is, exactly as stored.
        assert len(shell.records) == 1
        kept = shell.records.get(running)
        assert kept is not None
        stored = await stack.store.executions.read_workflow(running)
        assert kept.version == stored.version
        assert kept.workflow == stored.workflow
        assert all(n == 1 for n in worker.accepted.values())
    finally:
        await client.close()


async def test_two_replicas_that_both_take_a_workflow_for_theirs(stack: Stack) -> None:
    """Both keep the same version; the first to commit wins, the other's commit loses on the
    version and its decision is made again on what the winner wrote."""
    other = await replica_beside(stack, "127.0.0.2")
    one = DeciderClient(RpcClient([stack.decider.address]))
    two = DeciderClient(RpcClient([other.address]))
    try:
        wf_id = await start(one, stack, FAN, {})
        assert other.shell is not None and stack.decider.shell is not None
        await two.decide(wf_id)  # the other replica reads it and keeps it too
        assert other.shell.records.get(wf_id) is not None
        got = await stack.queues.pop(TYPE, count=10, lease_ms=30_000)
        items = [(m.id, m.payload.decode()) for m in got]
        assert len(items) == 4
        # each replica claims two branches, on the version both keep
        first = await one.claim(TYPE, items[:2], "w1", ack=True)
        second = await two.claim(TYPE, items[2:], "w2", ack=True)
        assert len(first) == 2 and len(second) == 2
        assert other.shell.stats.conflicts == 1
        # the same result reported to both replicas at once: accepted once
        t = first[0]
        result = {"taskId": t["taskId"], "workflowInstanceId": wf_id, "status": "COMPLETED"}
        answers = await asyncio.gather(one.update_task(result), two.update_task(result))
        assert sorted(a["accepted"] for a in answers) == [False, True]
        # the others, to the replica that did not claim them
        for t in [first[1], *second]:
            to = two if t in first else one
            answer = await to.update_task({**result, "taskId": t["taskId"]})
            assert answer["accepted"]
        wf = await stack.workflow(wf_id)
        branches = [x for x in wf["tasks"] if x["referenceTaskName"].startswith("b")]
        assert sorted(x["status"] for x in branches) == ["COMPLETED"] * 4
        assert [x["referenceTaskName"] for x in wf["tasks"] if x["status"] == "SCHEDULED"] == [
            "after"
        ]
    finally:
        await one.close()
        await two.close()
        await other.stop(grace_s=0.5)


async def test_a_replica_killed_while_owning_workflows(stack: Stack) -> None:
    other = await replica_beside(stack, "127.0.0.2")
    rpc = RpcClient([stack.decider.address, other.address])
    client = DeciderClient(rpc)
    try:
        ids = [await start(client, stack, SEQ3, {}) for _ in range(24)]
        owners = Counter([await rpc.owner(wf_id) for wf_id in ids])
        assert set(owners) == {stack.decider.address, other.address}  # both own some
        worker = Worker(stack, client)
        await worker.until(lambda: sum(worker.accepted.values()) >= len(ids), "first steps")
        assert other.shell is not None
        before = other.shell.records.misses
        await stack.decider.stop(grace_s=0)  # the first replica goes, with what it kept
        await worker.until(lambda: all_completed(stack, ids), "every workflow completed")
        # The survivor took over the workflows the first one owned, reading each once.
        taken = other.shell.records.misses - before
        assert taken == owners[stack.decider.address]
        assert sum(worker.accepted.values()) == 3 * len(ids)
        assert all(n == 1 for n in worker.accepted.values())
    finally:
        await client.close()
        await other.stop(grace_s=0.5)


async def test_a_replica_added_under_load(stack: Stack) -> None:
    _, port = parse_address(stack.decider.address)
    hosts = ["127.0.0.1"]

    async def resolve(host: str, port: int) -> list[str]:
        return list(hosts)

    rpc = RpcClient([f"deciders.podium.test:{port}"], resolver=resolve, refresh_s=0)
    client = DeciderClient(rpc)
    added: DeciderService | None = None
    try:
        ids = [await start(client, stack, SEQ3, {}) for _ in range(24)]
        worker = Worker(stack, client)
        await worker.until(lambda: sum(worker.accepted.values()) >= len(ids), "first steps")
        added = await replica_beside(stack, "127.0.0.2")
        hosts.append("127.0.0.2")
        moved = [wf_id for wf_id in ids if await rpc.owner(wf_id) == added.address]
        assert moved  # the new replica owns some of the running workflows now
        await worker.until(lambda: all_completed(stack, ids), "every workflow completed")
        assert added.shell is not None
        # It read each workflow it took once and decided the rest on what it kept.
        assert added.shell.records.misses == len(moved)
        assert added.shell.records.hits > 0
        assert sum(worker.accepted.values()) == 3 * len(ids)
        assert all(n == 1 for n in worker.accepted.values())
    finally:
        await client.close()
        if added is not None:
            await added.stop(grace_s=0.5)


async def test_a_poll_whose_claims_span_two_owners_keeps_what_one_of_them_claimed(
    stack: Stack,
) -> None:
    """One owner's claim call fails whole (each of its workflows is unreadable): the tasks the
    other owner claimed still reach the worker, and the failed ones stay leased."""
    other = await replica_beside(stack, "127.0.0.2")
    rpc = RpcClient([stack.decider.address, other.address])
    client = DeciderClient(rpc)
    try:
        ids = [await start(client, stack, SEQ3, {}) for _ in range(12)]
        broken = [w for w in ids if await rpc.owner(w) == stack.decider.address]
        fine = [w for w in ids if w not in broken]
        assert broken and fine
        redis = Redis.from_url(stack.redis.url)
        try:
            for wf_id in broken:
                await redis.hset(Keys(PREFIX).workflow(wf_id), "rec", b"\xc1")  # not msgpack
        finally:
            await redis.aclose()
        assert stack.decider.shell is not None
        stack.decider.shell.records.clear()  # so that it reads what is stored
        got = await stack.queues.pop(TYPE, count=20, lease_ms=30_000)
        tasks = await client.claim(TYPE, [(m.id, m.payload.decode()) for m in got], "w", ack=True)
        assert sorted(t["workflowInstanceId"] for t in tasks) == sorted(fine)
        leased = sum(d["leased"] for d in (await stack.queues.details(TYPE)).values())
        assert leased == len(broken)
    finally:
        await client.close()
        await other.stop(grace_s=0.5)
