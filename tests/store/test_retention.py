"""Contract: finished workflows expire after the configured retention; running ones never."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from podium.errors import NotFound
from podium.store import SearchQuery, Store
from tests.polling import eventually

from .builders import task, workflow
from .conftest import MakeStore

RETENTION_S = 2.0


async def gone(store: Store, workflow_id: str) -> bool:
    try:
        await store.executions.get_workflow(workflow_id)
    except NotFound:
        return True
    return False


async def expired(store: Store, workflow_id: str) -> None:
    """Wait until the store no longer has the workflow (its retention ran out)."""
    await eventually(
        lambda: gone(store, workflow_id),
        timeout_s=20,
        what=f"workflow {workflow_id} expired",
        interval_s=0.1,
    )


@pytest.mark.timeout(90)
async def test_finished_workflow_expires_with_everything(make_store: MakeStore, ns: str) -> None:
    store = await make_store(workflow_retention_s=RETENTION_S)
    ex = store.executions
    name, ttype = f"w_{ns}", f"T_{ns}"
    done = workflow(name, correlation_id=f"c_{ns}")
    a, b = task(done, "a", task_type=ttype), task(done, "b", task_type=ttype, seq=2)
    await ex.create_workflow(done, [a])
    await ex.add_task_logs(a["taskId"], [{"log": "before"}])
    alive = workflow(name, correlation_id=f"c_{ns}")
    await ex.create_workflow(alive, [task(alive, "a", task_type=ttype)])
    finished = {**done, "status": "COMPLETED"}
    began = time.monotonic()
    await ex.commit(finished, [{**a, "status": "COMPLETED"}, {**b, "status": "COMPLETED"}], 1)
    await ex.add_task_logs(b["taskId"], [{"log": "after"}])
    readable = len((await ex.get_workflow(done["workflowId"]))["tasks"]) == 2
    # Finished less than the retention ago: still readable.
    assert readable or time.monotonic() - began > RETENTION_S
    await expired(store, done["workflowId"])
    for t in (a, b):
        with pytest.raises(NotFound):
            await ex.get_task(t["taskId"])
        assert await ex.get_task_logs(t["taskId"]) == []
    assert await ex.workflows_by_correlation_id(name, f"c_{ns}", include_closed=True) == [
        await ex.get_workflow(alive["workflowId"], include_tasks=False)
    ]
    found = await ex.search_workflows(SearchQuery(workflow_types=(name,)))
    assert [r["workflowId"] for r in found["results"]] == [alive["workflowId"]]
    # The running workflow is untouched.
    assert await ex.running_workflow_ids(name) == [alive["workflowId"]]
    assert len(await ex.get_tasks(alive["workflowId"])) == 1
    assert [t["workflowInstanceId"] for t in await ex.pending_tasks_by_type(ttype)] == [
        alive["workflowId"]
    ]


@pytest.mark.timeout(90)
async def test_resumed_workflow_no_longer_expires(make_store: MakeStore, ns: str) -> None:
    store = await make_store(workflow_retention_s=RETENTION_S)
    ex = store.executions
    name = f"w_{ns}"
    wf = workflow(name)
    a = task(wf, "a")
    await ex.create_workflow(wf, [a])
    await ex.add_task_logs(a["taskId"], [{"log": "kept"}])
    await ex.commit({**wf, "status": "FAILED"}, [{**a, "status": "FAILED"}], 1)
    # Retry: the workflow runs again with a new attempt of the task.
    retry = task(wf, "a", retry=1, seq=2)
    await ex.commit({**wf, "status": "RUNNING"}, [retry], 2)
    # A workflow finished after the resume serves as the clock: once it is gone, the
    # retention has passed for the resumed one too.
    clock = workflow(f"clock_{ns}")
    await ex.create_workflow(clock)
    await ex.commit({**clock, "status": "COMPLETED"}, [], 1)
    await expired(store, clock["workflowId"])
    snap = await ex.read_workflow(wf["workflowId"])
    assert snap.version == 3 and len(snap.workflow["tasks"]) == 2
    assert (await ex.get_task(a["taskId"]))["status"] == "FAILED"
    assert [e["log"] for e in await ex.get_task_logs(a["taskId"])] == ["kept"]
    assert await ex.running_workflow_ids(name) == [wf["workflowId"]]
    found = await ex.search_workflows(SearchQuery(workflow_types=(name,)))
    assert found["totalHits"] == 1


@pytest.mark.timeout(60)
async def test_without_retention_nothing_expires(
    store: Store, make_store: MakeStore, ns: str
) -> None:
    ex = store.executions
    keep = workflow(f"w_{ns}")
    await ex.create_workflow(keep)
    await ex.commit({**keep, "status": "COMPLETED"}, [], 1)
    short = await make_store(workflow_retention_s=RETENTION_S)
    clock = workflow(f"clock_{ns}")
    await short.executions.create_workflow(clock)
    await short.executions.commit({**clock, "status": "COMPLETED"}, [], 1)
    await expired(short, clock["workflowId"])
    assert (await ex.get_workflow(keep["workflowId"]))["status"] == "COMPLETED"


@pytest.mark.timeout(60)
async def test_purge_clears_shared_index_entries(make_store: MakeStore, ns: str) -> None:
    store = await make_store(workflow_retention_s=RETENTION_S)
    ex = store.executions
    name, ttype = f"w_{ns}", f"T_{ns}"
    wf = workflow(name, correlation_id=f"c_{ns}")
    # A task left unfinished in a finished workflow keeps a pending entry until the purge.
    a = task(wf, "a", task_type=ttype)
    await ex.create_workflow(wf, [a])
    await ex.commit({**wf, "status": "TERMINATED"}, [], 1)
    await expired(store, wf["workflowId"])

    async def purged() -> bool:
        await ex.purge_expired()
        return await leftovers(store, ns, wf["workflowId"], a["taskId"]) == []

    await eventually(purged, timeout_s=20, what="no leftovers", interval_s=0.1)
    assert await ex.purge_expired() == 0


async def leftovers(store: Store, ns: str, wid: str, tid: str) -> list[str]:
    """Keys still holding this test's entries (Redis; Cassandra's rows carry TTLs)."""
    from podium.store.redis_backend import RedisStore

    if not isinstance(store, RedisStore):
        return []
    r = store._client
    found = [key.decode() async for key in r.scan_iter(match=f"*{ns}*")]
    async for key in r.scan_iter(match="podium:store:idx:*:all:*"):
        # the store's client does not decode responses: members are bytes
        members = {m.decode() for m in cast(list[bytes], await r.zrange(key, 0, -1))}
        found += [key.decode()] if members & {wid, tid} else []
    if await r.zscore("podium:store:expiring", wid) is not None:
        found.append("expiry ledger")
    if await r.hexists("podium:store:expiring:footprints", wid):
        found.append("expiry footprints")
    return found


@pytest.mark.timeout(60)
async def test_removal_in_a_finishing_commit(make_store: MakeStore, ns: str) -> None:
    """keepLastN in the last iteration: a terminal commit with retention that removes tasks."""
    store = await make_store(workflow_retention_s=RETENTION_S)
    ex = store.executions
    wf = workflow(f"w_{ns}")
    old, last = task(wf, "loop", iteration=1), task(wf, "loop", iteration=2, seq=2)
    await ex.create_workflow(wf, [old, last])
    began = time.monotonic()
    await ex.commit(
        {**wf, "status": "COMPLETED"},
        [{**last, "status": "COMPLETED"}],
        1,
        removed_task_ids=[old["taskId"]],
    )
    with pytest.raises(NotFound):
        await ex.get_task(old["taskId"])
    try:
        tasks = await ex.get_tasks(wf["workflowId"])
        assert [t["taskId"] for t in tasks] == [last["taskId"]]
    except NotFound:  # expired already: only once the retention has passed
        assert time.monotonic() - began > RETENTION_S
    await expired(store, wf["workflowId"])


def test_a_cassandra_workflow_ttl_covers_the_whole_retention() -> None:
    """The TTL of a finished workflow's rows keeps them at least the retention: rounded up to
    whole seconds, plus one (a CQL TTL of n keeps a row n-1 to n seconds); never "none"."""
    from podium.store import StoreConfig
    from podium.store.cassandra_backend.writes import CommitWriter

    def ttl(retention_s: float) -> int:
        config = StoreConfig(workflow_retention_s=retention_s)
        return CommitWriter(cast(Any, None), cast(Any, None), config)._ttl_s

    assert ttl(0) == 0
    assert ttl(2.0) == 3
    assert ttl(2.5) == 4
    assert ttl(0.0004) == 2
