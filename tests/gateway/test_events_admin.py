"""``/api/event`` and ``/api/admin``, plus the health endpoints and the side port."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from podium.queue_client import Message, QueueClient

from .api_calls import assert_envelope, poll_one, register, simple_workflow, start
from .conftest import Names


async def test_event_handlers(client: httpx.AsyncClient, names: Names) -> None:
    name, event = names("h"), f"conductor:{names('wf')}:done"
    handler = {
        "name": name,
        "event": event,
        "actions": [{"action": "start_workflow", "start_workflow": {"name": "x"}}],
    }
    r = await client.post("/api/event", json=handler)
    assert r.status_code == 200, r.text
    assert_envelope(await client.post("/api/event", json=handler), 409, "already exists")
    r = await client.get(f"/api/event/{event}")
    assert [h["name"] for h in r.json()] == [name] and r.json()[0]["active"] is True
    r = await client.put("/api/event", json={**handler, "active": False})
    assert r.status_code == 200
    assert (await client.get(f"/api/event/{event}")).json() == []
    r = await client.get(f"/api/event/{event}", params={"activeOnly": "false"})
    assert len(r.json()) == 1
    assert name in {h["name"] for h in (await client.get("/api/event")).json()}
    r = await client.delete(f"/api/event/{name}")
    assert r.status_code == 200
    assert_envelope(await client.delete(f"/api/event/{name}"), 404)
    assert_envelope(await client.put("/api/event", json=handler), 404)
    body = assert_envelope(await client.post("/api/event", json={"name": name}), 400)
    messages = {e["message"] for e in body["validationErrors"]}
    assert messages == {
        "Missing event location",
        "No actions specified. Please specify at-least one action",
    }


async def test_admin(client: httpx.AsyncClient, names: Names) -> None:
    r = await client.get("/api/admin/config")
    config = r.json()
    assert config["limits.max_poll_timeout_ms"] == 5000 and config["authEnabled"] is False
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    workflow_id = await start(client, wf)
    r = await client.get(f"/api/admin/task/{t}")
    [task] = r.json()
    assert task["workflowInstanceId"] == workflow_id
    r = await client.post(f"/api/admin/sweep/requeue/{workflow_id}")
    assert r.status_code == 200 and r.text == f"true.{workflow_id}"
    r = await client.post(f"/api/admin/consistency/verifyAndRepair/{workflow_id}")
    assert r.text == "true"
    assert_envelope(await client.post("/api/admin/sweep/requeue/nope"), 404)
    # A message lost from its queue comes back with a requeue.
    polled = await poll_one(client, t)
    assert polled["taskId"] == task["taskId"]


async def test_event_queues(client: httpx.AsyncClient, queues: QueueClient, names: Names) -> None:
    event = f"conductor:{names('wf')}:q"
    queue = f"_events:{event}"
    await queues.push(queue, [Message("m1", {"payload": {}, "attempts": 0})])
    assert (await client.get("/api/admin/queues")).json()[event] == queue
    verbose = (await client.get("/api/admin/queues", params={"verbose": "true"})).json()
    assert verbose[event] == {queue: 1}
    assert all(name.startswith("conductor:") for name in verbose)


async def test_health_side_port(make_gateway: Callable[..., Any]) -> None:
    async with make_gateway(health_port=0) as g:
        r = await g.client.get("/health")
        assert r.json()["healthy"] is True
        r = await g.client.get("/api/tasks/poll/batch/health_probe", params={"timeout": 0})
        assert r.status_code == 200
        side = f"http://127.0.0.1:{g.gateway.health_port}"
        async with httpx.AsyncClient(base_url=side) as probe:
            assert (await probe.get("/health")).status_code == 200
            assert (await probe.get("/ready")).status_code == 200
            metrics = (await probe.get("/metrics")).text
        assert 'podium_gateway_polls_total{outcome="empty"} 1.0' in metrics
