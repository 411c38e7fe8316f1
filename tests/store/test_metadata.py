"""Contract: task definitions, workflow definitions and event handlers."""

from __future__ import annotations

from typing import Any

import pytest

from podium.errors import Conflict, InvalidArgument, LimitExceeded, NotFound
from podium.launch.redis import RedisServer
from podium.redis_conn import connect
from podium.store import Store
from podium.store.redis_backend import RedisStore

from .conftest import MakeStore, redis_config


def wf_def(name: str, version: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "schemaVersion": 2,
        "tasks": [{"name": "t", "taskReferenceName": "t", "type": "SIMPLE"}],
        **extra,
    }


def mine(records: list[dict[str, Any]], ns: str) -> list[dict[str, Any]]:
    """The records this test made (the Cassandra keyspace is shared by the session)."""
    return [r for r in records if ns in r["name"]]


async def test_task_definitions(store: Store, ns: str) -> None:
    md = store.metadata
    b, a = f"b_{ns}", f"a_{ns}"
    await md.create_task_def({"name": b, "retryCount": 3})
    await md.create_task_def({"name": a, "retryCount": 1})
    await md.create_task_def({"name": a, "retryCount": 2})  # register is an upsert
    assert await md.get_task_def(a) == {"name": a, "retryCount": 2}
    assert [d["name"] for d in mine(await md.list_task_defs(), ns)] == [a, b]
    await md.update_task_def({"name": b, "retryCount": 5})
    assert (await md.get_task_def(b))["retryCount"] == 5
    with pytest.raises(NotFound):
        await md.update_task_def({"name": f"nope_{ns}"})
    with pytest.raises(NotFound):
        await md.get_task_def(f"nope_{ns}")
    await md.remove_task_def(a)
    with pytest.raises(NotFound):
        await md.get_task_def(a)
    with pytest.raises(NotFound):
        await md.remove_task_def(a)
    assert [d["name"] for d in mine(await md.list_task_defs(), ns)] == [b]


async def test_the_latest_definition_is_found_over_resp2_too(
    redis_server: RedisServer, ns: str
) -> None:
    """A start reads its definition over the pipelined connection, which answers HGETALL in
    the protocol redis-py agreed on: a map (RESP3), or a flat list where it fell back to
    RESP2. Both give the highest version."""
    config = redis_config(redis_server)
    for protocol in (2, 3):
        client = connect(
            config.redis_url, variable="test", decode_responses=False, protocol=protocol
        )
        store = RedisStore(client, config)
        try:
            name = f"resp{protocol}_{ns}"
            for version in (1, 10, 2):
                await store.metadata.create_workflow_def(wf_def(name, version))
            assert (await store.metadata.get_workflow_def(name))["version"] == 10
            assert (await store.metadata.get_workflow_def(name, 2))["version"] == 2
            with pytest.raises(NotFound):
                await store.metadata.get_workflow_def(f"none_{name}")
        finally:
            await store.close()


async def test_workflow_definitions(store: Store, ns: str) -> None:
    md = store.metadata
    x, y = f"x_{ns}", f"y_{ns}"
    await md.create_workflow_def(wf_def(x, 1))
    await md.create_workflow_def(wf_def(x, 2, description="two"))
    await md.create_workflow_def(wf_def(y, 1))
    with pytest.raises(Conflict):
        await md.create_workflow_def(wf_def(x, 2, description="again"))
    assert (await md.get_workflow_def(x, 2))["description"] == "two"
    assert (await md.get_workflow_def(x))["version"] == 2
    await md.update_workflow_def(wf_def(x, 10, description="ten"))  # upsert creates
    await md.update_workflow_def(wf_def(x, 2, description="two again"))
    assert (await md.get_workflow_def(x, 2))["description"] == "two again"
    assert (await md.get_workflow_def(x))["version"] == 10
    assert await md.workflow_def_versions(x) == [1, 2, 10]
    assert await md.workflow_def_versions(f"none_{ns}") == []
    every = mine(await md.list_workflow_defs(), ns)
    assert [(d["name"], d["version"]) for d in every] == [(x, 1), (x, 2), (x, 10), (y, 1)]
    latest = mine(await md.list_latest_workflow_defs(), ns)
    assert [(d["name"], d["version"]) for d in latest] == [(x, 10), (y, 1)]
    await md.remove_workflow_def(x, 10)
    assert (await md.get_workflow_def(x))["version"] == 2
    with pytest.raises(NotFound):
        await md.remove_workflow_def(x, 10)
    with pytest.raises(NotFound):
        await md.get_workflow_def(x, 10)
    await md.remove_workflow_def(y, 1)
    with pytest.raises(NotFound):
        await md.get_workflow_def(y)
    latest = mine(await md.list_latest_workflow_defs(), ns)
    assert [(d["name"], d["version"]) for d in latest] == [(x, 2)]


async def test_event_handlers(store: Store, ns: str) -> None:
    md = store.metadata
    ev1, ev2 = f"sqs:one_{ns}", f"sqs:two_{ns}"
    h1: dict[str, Any] = {"name": f"h1_{ns}", "event": ev1, "active": True, "actions": []}
    h2: dict[str, Any] = {"name": f"h2_{ns}", "event": ev1, "active": False, "actions": []}
    await md.add_event_handler(h1)
    await md.add_event_handler(h2)
    with pytest.raises(Conflict):
        await md.add_event_handler({**h1, "event": ev2})
    assert await md.event_handlers_for_event(ev1) == [h1]
    assert await md.event_handlers_for_event(ev1, active_only=False) == [h1, h2]
    moved = {**h2, "event": ev2, "active": True}
    await md.update_event_handler(moved)
    assert await md.event_handlers_for_event(ev1, active_only=False) == [h1]
    assert await md.event_handlers_for_event(ev2) == [moved]
    with pytest.raises(NotFound):
        await md.update_event_handler({**h1, "name": f"nope_{ns}"})
    assert mine(await md.list_event_handlers(), ns) == [h1, moved]
    await md.remove_event_handler(h1["name"])
    with pytest.raises(NotFound):
        await md.remove_event_handler(h1["name"])
    assert await md.event_handlers_for_event(ev1, active_only=False) == []
    assert mine(await md.list_event_handlers(), ns) == [moved]


async def test_invalid_definitions_write_nothing(store: Store, ns: str) -> None:
    md = store.metadata
    for bad in ({"name": ""}, {"name": "   "}, {"retryCount": 1}, {"name": 7}, ["x"]):
        with pytest.raises(InvalidArgument):
            await md.create_task_def(bad)  # type: ignore[arg-type]
    name = f"w_{ns}"
    for bad_def in (
        {**wf_def(name, 1), "version": 0},
        {**wf_def(name, 1), "version": "1"},
        {**wf_def(name, 1), "tasks": []},
        {k: v for k, v in wf_def(name, 1).items() if k != "tasks"},
        {**wf_def(name, 1), "name": " "},
    ):
        with pytest.raises(InvalidArgument):
            await md.create_workflow_def(bad_def)
        with pytest.raises(InvalidArgument):
            await md.update_workflow_def(bad_def)
    assert await md.workflow_def_versions(name) == []
    for bad_handler in ({"name": f"h_{ns}", "event": ""}, {"name": "", "event": "e"}):
        with pytest.raises(InvalidArgument):
            await md.add_event_handler(bad_handler)
    assert mine(await md.list_event_handlers(), ns) == []
    assert mine(await md.list_task_defs(), ns) == []


async def test_oversized_definitions_write_nothing(make_store: MakeStore, ns: str) -> None:
    md = (await make_store(max_record_bytes=2048)).metadata
    name = f"w_{ns}"
    await md.create_workflow_def(wf_def(name, 1))
    big = wf_def(name, 1, description="x" * 3000)
    with pytest.raises(LimitExceeded):
        await md.update_workflow_def(big)
    with pytest.raises(LimitExceeded):
        await md.create_workflow_def({**big, "version": 2})
    assert "description" not in await md.get_workflow_def(name, 1)
    assert await md.workflow_def_versions(name) == [1]
    with pytest.raises(LimitExceeded):
        await md.create_task_def({"name": f"t_{ns}", "description": "x" * 3000})
    with pytest.raises(NotFound):
        await md.get_task_def(f"t_{ns}")


async def test_access_keys(store: Store, ns: str) -> None:
    md = store.metadata
    a, b = f"a-{ns}", f"b-{ns}"
    key_b = {"keyId": b, "secretHash": "00" * 32, "roles": ["viewer"], "taskTypes": []}
    key_a = {"keyId": a, "secretHash": "11" * 32, "roles": ["worker"], "taskTypes": ["x_*"]}
    await md.create_access_key(key_b)
    await md.create_access_key(key_a)
    with pytest.raises(Conflict):
        await md.create_access_key({**key_a, "roles": ["admin"]})  # never replaced
    assert await md.get_access_key(a) == key_a
    assert [k for k in await md.list_access_keys() if ns in k["keyId"]] == [key_a, key_b]
    await md.remove_access_key(a)
    with pytest.raises(NotFound):
        await md.get_access_key(a)
    with pytest.raises(NotFound):
        await md.remove_access_key(a)
    assert [k["keyId"] for k in await md.list_access_keys() if ns in k["keyId"]] == [b]
