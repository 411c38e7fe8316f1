"""What a store acknowledged survives a restart of its server (Redis with AOF, Cassandra)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from podium.errors import Unavailable
from podium.launch.redis import RedisServer, free_port
from podium.store import SearchQuery, Store, StoreConfig, open_store
from tests.local_cassandra import HAVE_JVM, cassandra_store_config, secured_node
from tests.polling import eventually

from .builders import task, workflow


async def write_everything(store: Store, ns: str) -> dict[str, Any]:
    md, ex = store.metadata, store.executions
    await md.create_task_def({"name": f"T_{ns}", "retryCount": 2})
    await md.create_workflow_def(
        {"name": f"w_{ns}", "version": 1, "tasks": [{"name": f"T_{ns}", "type": "SIMPLE"}]}
    )
    await md.add_event_handler({"name": f"h_{ns}", "event": f"e_{ns}", "active": True})
    wf = workflow(f"w_{ns}", correlation_id=f"c_{ns}")
    a = task(wf, "a", task_type=f"T_{ns}")
    b = task(wf, "b", task_type=f"T_{ns}", seq=2)
    await ex.create_workflow(wf, [a])
    version = await ex.commit(
        {**wf, "variables": {"x": 1}}, [{**a, "status": "COMPLETED"}, b], expected_version=1
    )
    await ex.add_task_logs(a["taskId"], [{"log": "done"}])
    await ex.update_poll_data(f"T_{ns}", None, "worker-1", 1234)
    return {"wf": wf, "a": a, "b": b, "version": version}


async def check_everything(store: Store, ns: str, w: dict[str, Any]) -> None:
    md, ex = store.metadata, store.executions
    assert (await md.get_task_def(f"T_{ns}"))["retryCount"] == 2
    assert (await md.get_workflow_def(f"w_{ns}"))["version"] == 1
    assert [h["name"] for h in await md.event_handlers_for_event(f"e_{ns}")] == [f"h_{ns}"]
    snap = await ex.read_workflow(w["wf"]["workflowId"])
    assert snap.version == w["version"] == 2
    assert snap.workflow["variables"] == {"x": 1}
    assert [t["taskId"] for t in snap.workflow["tasks"]] == [w["a"]["taskId"], w["b"]["taskId"]]
    assert (await ex.get_task(w["b"]["taskId"]))["status"] == "SCHEDULED"
    assert [e["log"] for e in await ex.get_task_logs(w["a"]["taskId"])] == ["done"]
    assert [p["workerId"] for p in await ex.get_poll_data(f"T_{ns}")] == ["worker-1"]
    assert [t["taskId"] for t in await ex.pending_tasks_by_type(f"T_{ns}")] == [w["b"]["taskId"]]
    assert await ex.running_workflow_ids(f"w_{ns}") == [w["wf"]["workflowId"]]
    found = await ex.search_workflows(SearchQuery(workflow_types=(f"w_{ns}",)))
    assert found["totalHits"] == 1
    # And the store still writes: the version goes on from where it was.
    assert await ex.commit(snap.workflow, [], expected_version=2) == 3


async def reconnected(store: Store, workflow_id: str, timeout_s: float = 60.0) -> None:
    """Wait until the old connection works again after the server came back."""

    async def read() -> bool | None:
        try:
            await store.executions.get_workflow(workflow_id, include_tasks=False)
        except Unavailable:
            return None
        return True

    await eventually(read, timeout_s=timeout_s, what="the store reconnected", interval_s=0.2)


@pytest.mark.timeout(60)
async def test_redis_restart_keeps_acknowledged_writes(tmp_path: Path, ns: str) -> None:
    server = RedisServer(port=free_port(), appendonly=True, data_dir=tmp_path / "redis")
    server.start()
    try:
        config = StoreConfig(backend="redis", redis_url=server.url)
        store = await open_store(config)
        written = await write_everything(store, ns)
        server.stop()
        server.start()
        await reconnected(store, written["wf"]["workflowId"])
        fresh = await open_store(config)
        await check_everything(fresh, ns, written)
        await fresh.close()
        # The store opened before the restart works too (scripts are loaded again).
        assert (await store.executions.read_workflow(written["wf"]["workflowId"])).version == 3
        await store.close()
    finally:
        server.cleanup()


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not HAVE_JVM, reason="Cassandra needs java and mvn")
async def test_cassandra_restart_keeps_acknowledged_writes(tmp_path: Path, ns: str) -> None:
    node = secured_node(tmp_path, data_dir=tmp_path / "cassandra")
    await asyncio.to_thread(node.start)
    try:
        config = cassandra_store_config(node, "podium_restart")
        store = await open_store(config)
        written = await write_everything(store, ns)
        await asyncio.to_thread(node.restart)
        await reconnected(store, written["wf"]["workflowId"])
        fresh = await open_store(config)
        await check_everything(fresh, ns, written)
        await fresh.close()
        assert (await store.executions.read_workflow(written["wf"]["workflowId"])).version == 3
        await store.close()
    finally:
        await asyncio.to_thread(node.cleanup)
