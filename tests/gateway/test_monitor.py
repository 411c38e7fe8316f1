"""``/api/admin/cluster`` and ``/api/admin/queue-stats`` (api_gateway/monitor.py)."""

from __future__ import annotations

import socket

from api_gateway.monitor import probe
from api_gateway.settings import AuthSettings

from .api_calls import poll_one, register, simple_workflow, start
from .conftest import Names, RunningGateway


async def test_cluster_lists_the_replicas_and_whether_each_is_reachable(
    running_gateway: RunningGateway,
) -> None:
    r = await running_gateway.client.get("/api/admin/cluster")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["gateway"]["store"] == "redis"
    services = {(x["service"], x["address"]): x for x in body["replicas"]}
    settings = running_gateway.gateway.settings
    assert set(services) == {
        *(("decider", a) for a in settings.decider_addresses),
        *(("queue-service", a) for a in settings.queue_addresses),
    }
    assert all(x["reachable"] and x["latencyMs"] >= 0 for x in services.values())


async def test_a_replica_that_does_not_listen_is_reported_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        answer = await probe(f"127.0.0.1:{port}", timeout_s=0.5)
    assert answer["reachable"] is False and answer["error"]
    assert (await probe("not-an-address", timeout_s=0.5))["reachable"] is False


async def test_queue_stats_count_ready_and_in_progress_tasks(
    running_gateway: RunningGateway, names: Names
) -> None:
    client = running_gateway.client
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    for i in range(3):
        await start(client, wf, {"x": i})
    await poll_one(client, t)  # claimed: IN_PROGRESS, its message acknowledged
    r = await client.get("/api/admin/queue-stats")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] is True
    [row] = [q for q in body["queues"] if q["queue"] == t]
    assert row["ready"] == 2 and row["leased"] == 0
    assert row["scheduled"] == 2 and row["inProgress"] == 1
    assert sum(s["ready"] for s in row["shards"].values()) == 2
    internal = [q for q in body["queues"] if q["queue"].startswith("_")]
    assert all("inProgress" not in q for q in internal)


async def test_both_need_a_token_when_authentication_is_on(make_gateway: object) -> None:
    async with make_gateway(auth=AuthSettings(enabled=True, keys={"k": "secret-123"})) as g:  # type: ignore[operator]
        for path in ("/api/admin/cluster", "/api/admin/queue-stats"):
            assert (await g.client.get(path)).status_code == 401
