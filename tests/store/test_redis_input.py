"""The Redis store keeps a workflow's input apart from its record and writes it only when it
changed: a fan-out whose input lists 10,000 children is not rewritten by each commit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgpack
import pytest
import redis.asyncio as aioredis

from podium.errors import LimitExceeded
from podium.launch.redis import RedisServer
from podium.store import SearchQuery, Store, open_store
from podium.store.redis_backend.keys import Keys

from .builders import task, workflow
from .conftest import redis_config

PREFIX = "podium:store:"


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[Store]:
    s = await open_store(redis_config(redis_server))
    yield s
    await s.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(redis_server.url)
    yield r
    await r.aclose()


async def _stored_input(raw: aioredis.Redis, wid: str) -> object:
    blob = await raw.hget(Keys(PREFIX).workflow(wid), "inp")
    assert blob is not None
    return msgpack.unpackb(blob, raw=False)


async def test_a_commit_with_the_same_input_leaves_the_stored_input_alone(
    store: Store, raw: aioredis.Redis
) -> None:
    children = {"tasks": [{"ref": f"c{i}"} for i in range(1000)]}
    wf = workflow("fan", input=children)
    wid = wf["workflowId"]
    t1 = task(wf, "a")
    version = await store.executions.create_workflow(wf, [t1])
    record = (await raw.hget(Keys(PREFIX).workflow(wid), "rec")) or b""
    assert b"c999" not in record  # the record is written without its input
    assert await _stored_input(raw, wid) == children

    # Mark the stored input: a commit that rewrote it would erase the mark.
    await raw.hset(Keys(PREFIX).workflow(wid), "inp", msgpack.packb({"mark": 1}))
    wf["status"] = "PAUSED"
    version = await store.executions.commit(wf, [t1], version)
    assert await _stored_input(raw, wid) == {"mark": 1}

    # A new input object, even one equal to the old, is written.
    wf["input"] = {"tasks": list(children["tasks"])}
    version = await store.executions.commit(wf, [], version)
    assert await _stored_input(raw, wid) == children
    snap = await store.executions.read_workflow(wid)
    assert snap.version == version and snap.workflow["input"] == children
    assert snap.workflow["status"] == "PAUSED"


async def test_another_writer_writes_the_input_it_holds(
    store: Store, redis_server: RedisServer, raw: aioredis.Redis
) -> None:
    wf = workflow("fan", input={"n": 1})
    wid = wf["workflowId"]
    version = await store.executions.create_workflow(wf, [task(wf, "a")])
    await raw.hset(Keys(PREFIX).workflow(wid), "inp", msgpack.packb({"mark": 1}))
    other = await open_store(redis_config(redis_server))
    try:
        # The other writer did not make the stored version: it writes its input.
        await other.executions.commit(wf, [], version)
    finally:
        await other.close()
    assert await _stored_input(raw, wid) == {"n": 1}


async def test_a_record_that_holds_its_input_reads_as_before(
    store: Store, raw: aioredis.Redis
) -> None:
    wf = workflow("old", input={"kept": "inside"})
    wid = wf["workflowId"]
    version = await store.executions.create_workflow(wf, [task(wf, "a")])
    key = Keys(PREFIX).workflow(wid)
    await raw.hset(key, "rec", msgpack.packb(wf, use_bin_type=True))  # input inside the record
    await raw.hdel(key, "inp")
    snap = await store.executions.read_workflow(wid)
    assert snap.version == version and snap.workflow["input"] == {"kept": "inside"}
    found = await store.executions.search_workflows(SearchQuery(workflow_types=("old",)), full=True)
    assert [w["input"] for w in found["results"]] == [{"kept": "inside"}]


async def test_search_results_carry_the_input_kept_apart(store: Store) -> None:
    wf = workflow("searched", input={"who": "me"})
    await store.executions.create_workflow(wf, [task(wf, "a")])
    found = await store.executions.search_workflows(
        SearchQuery(workflow_types=("searched",)), full=True
    )
    assert [w["input"] for w in found["results"]] == [{"who": "me"}]


async def test_record_and_input_together_stay_within_the_size_limit(
    redis_server: RedisServer,
) -> None:
    small = await open_store(redis_config(redis_server, max_record_bytes=4096))
    try:
        wf = workflow("big", input={"blob": "x" * 3000})
        wf["output"] = {"more": "y" * 2000}
        with pytest.raises(LimitExceeded):
            await small.executions.create_workflow(wf, [task(wf, "a")])
    finally:
        await small.close()
