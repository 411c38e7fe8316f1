"""Starts with an idempotencyKey: each strategy, concurrent starts, and failed starts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from decider import idempotency
from podium.errors import Conflict, InvalidArgument, NotFound, PodiumError
from podium.launch.redis import RedisServer
from podium.queues import DECIDER_QUEUE
from podium.types import JSON
from tests.local_cassandra import cassandra_store_config
from tests.stack import Stack, running_stack

BACKENDS = ["redis", "cassandra"]

pytestmark = pytest.mark.timeout(30, func_only=True)


@pytest.fixture(scope="module")
def queue_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:  # started, and removed with its files at the end
        yield server


@pytest.fixture(scope="module", params=BACKENDS)
async def stack(request: pytest.FixtureRequest, queue_redis: RedisServer) -> AsyncIterator[Stack]:
    tag = uuid.uuid4().hex[:10]
    store_config = None
    if request.param == "cassandra":
        node = request.getfixturevalue("cassandra_node")
        store_config = cassandra_store_config(node, f"podium_idem_{tag}")
    async with running_stack(queue_redis, f"podium:idem:{tag}:", store_config=store_config) as s:
        yield s


@pytest.fixture
async def name(stack: Stack) -> str:
    """A registered workflow (one SIMPLE task) of a fresh name."""
    return await stack.register_simple("idem")


async def start(stack: Stack, name: str, key: str | None, strategy: str | None = None) -> str:
    request: JSON = {"name": name, "version": 1, "input": {}, "correlationId": name}
    if key is not None:
        request["idempotencyKey"] = key
    if strategy is not None:
        request["idempotencyStrategy"] = strategy
    answer = await stack.rpc.call("decider.start_workflow", {"request": request})
    return str(answer["workflowId"])


async def workflows_of(stack: Stack, name: str) -> list[JSON]:
    return await stack.store.executions.workflows_by_correlation_id(name, name, include_closed=True)


async def test_fail_is_the_default_and_answers_conflict(stack: Stack, name: str) -> None:
    first = await start(stack, name, "k")
    with pytest.raises(Conflict, match="idempotencyKey k") as err:
        await start(stack, name, "k")
    assert err.value.data["workflowId"] == first
    with pytest.raises(Conflict):
        await start(stack, name, "k", "FAIL")
    assert [w["workflowId"] for w in await workflows_of(stack, name)] == [first]
    assert (await stack.workflow(first))["idempotencyKey"] == "k"


async def test_return_existing_gives_the_first_id_even_after_it_ended(
    stack: Stack, name: str
) -> None:
    first = await start(stack, name, "k", "RETURN_EXISTING")
    assert await start(stack, name, "k", "RETURN_EXISTING") == first
    await stack.rpc.call("decider.terminate", {"workflowId": first, "reason": "done"})
    assert await start(stack, name, "k", "RETURN_EXISTING") == first
    assert len(await workflows_of(stack, name)) == 1
    # Without a key, every start is a new workflow.
    assert await start(stack, name, None) != await start(stack, name, None)


async def test_fail_on_running_refuses_while_running_or_paused_then_starts_anew(
    stack: Stack, name: str
) -> None:
    first = await start(stack, name, "k", "FAIL_ON_RUNNING")
    with pytest.raises(Conflict, match="RUNNING"):
        await start(stack, name, "k", "FAIL_ON_RUNNING")
    await stack.rpc.call("decider.pause", {"workflowId": first})
    with pytest.raises(Conflict, match="PAUSED"):
        await start(stack, name, "k", "FAIL_ON_RUNNING")
    await stack.rpc.call("decider.terminate", {"workflowId": first, "reason": "done"})
    second = await start(stack, name, "k", "FAIL_ON_RUNNING")
    assert second != first
    # The key is bound to the new workflow now.
    assert await start(stack, name, "k", "RETURN_EXISTING") == second


async def test_keys_are_scoped_by_workflow_name(stack: Stack, name: str) -> None:
    other = f"{name}_b"
    await stack.store.metadata.update_workflow_def(
        {**await stack.store.metadata.get_workflow_def(name), "name": other}
    )
    assert await start(stack, name, "k") != await start(stack, other, "k")


async def test_concurrent_starts_with_one_key_create_one_workflow(stack: Stack, name: str) -> None:
    ids = await asyncio.gather(*(start(stack, name, "k", "RETURN_EXISTING") for _ in range(8)))
    assert len(set(ids)) == 1
    assert [w["workflowId"] for w in await workflows_of(stack, name)] == [ids[0]]

    results = await asyncio.gather(
        *(start(stack, name, "k2", "FAIL") for _ in range(8)), return_exceptions=True
    )
    started = [r for r in results if isinstance(r, str)]
    assert len(started) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, str)), results
    assert len(await workflows_of(stack, name)) == 2


async def test_a_start_that_fails_before_writing_frees_its_key(stack: Stack, name: str) -> None:
    with pytest.raises(InvalidArgument, match="NULL input"):
        await stack.rpc.call(
            "decider.start_workflow",
            {"request": {"name": name, "input": None, "idempotencyKey": "k"}},
        )
    with pytest.raises(NotFound):
        await start(stack, f"{name}_missing", "k")
    wf_id = await start(stack, name, "k")  # neither failed start kept the key
    assert (await stack.workflow(wf_id))["status"] == "RUNNING"


async def test_a_key_bound_to_a_start_that_never_happened_is_taken_over(
    stack: Stack, name: str
) -> None:
    # What a start that died between binding the key and writing the workflow leaves.
    await stack.store.executions.bind_idempotency_key(name, "k", "lost-start")
    # Still recent: it may be under way, so the answer is "try again".
    with pytest.raises(PodiumError, match="in progress") as err:
        await start(stack, name, "k", "RETURN_EXISTING")
    assert err.value.retryable
    # Once older than a start can take, the binding is taken over.
    await stack.store.executions.release_idempotency_key(name, "k", "lost-start")
    stale = await stack.store.executions.bind_idempotency_key(name, "k", "lost-start")
    assert stale.workflow_id == "lost-start"
    assert stack.decider.shell is not None
    clock = stack.decider.shell.clock
    stack.decider.shell.clock = lambda: clock() + idempotency.PENDING_START_MS
    try:
        wf_id = await start(stack, name, "k", "RETURN_EXISTING")
    finally:
        stack.decider.shell.clock = clock
    assert wf_id != "lost-start"
    assert await start(stack, name, "k", "RETURN_EXISTING") == wf_id


async def test_an_unknown_strategy_is_refused(stack: Stack, name: str) -> None:
    with pytest.raises(InvalidArgument, match="idempotencyStrategy"):
        await start(stack, name, "k", "SOMETIMES")


async def test_a_start_with_the_id_of_an_existing_workflow_leaves_its_timer(
    stack: Stack, name: str
) -> None:
    request = {"name": name, "version": 1, "input": {}, "workflowId": str(uuid.uuid4())}
    await stack.rpc.call("decider.start_workflow", {"request": request})
    with pytest.raises(Conflict):
        await stack.rpc.call("decider.start_workflow", {"request": request})
    assert await stack.queues.contains(DECIDER_QUEUE, str(request["workflowId"]))
