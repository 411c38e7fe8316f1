"""Two replicas of every service; one of each is killed (kill -9) in turn while workflows run.

Every workflow must still complete, with no duplicate task, driven by external workers over
HTTP. Clients of each service know both replicas, so they fail over; what a dead replica held
(leases, in-flight claims) comes back through leases and response timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from podium.cluster import ClusterSpec, LocalCluster
from podium.types import JSON
from podium.worker import TaskRunner, Worker
from tests.polling import eventually

WORKFLOWS = 240
TYPES = ("fault_a", "fault_b", "fault_c")


@pytest.fixture
async def cluster() -> AsyncIterator[LocalCluster]:
    spec = ClusterSpec(
        shards=2,
        queue_services=2,
        deciders=2,
        gateways=2,
        sweepers=2,
        gateway_port=0,
        extra_env={"PODIUM_DECIDER_WORKFLOW_OFFSET_S": "2", "PODIUM_SWEEPER_LEASE_MS": "2000"},
    )
    c = await LocalCluster(spec, progress=lambda _: None).start()
    try:
        yield c
    finally:
        await c.stop()


async def _handler(task: JSON) -> JSON:
    return {"done": task["referenceTaskName"]}


async def _post_any(http: httpx.AsyncClient, urls: list[str], path: str, body: Any) -> str:
    """Try each gateway until one answers (a client with two addresses does the same)."""
    for attempt in range(40):
        url = urls[attempt % len(urls)]
        with contextlib.suppress(httpx.HTTPError):
            r = await http.post(f"{url}{path}", json=body)
            if r.status_code == 200:
                return r.text
        await asyncio.sleep(0.1)
    raise AssertionError(f"no gateway accepted POST {path}")


@pytest.mark.timeout(300)
async def test_every_workflow_completes_while_one_replica_of_each_service_is_killed(
    cluster: LocalCluster,
) -> None:
    urls = cluster.gateway_urls
    assert len(urls) == 2
    definition = {
        "name": "faults",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": t, "taskReferenceName": t, "type": "SIMPLE"} for t in TYPES],
    }
    task_defs = [
        {
            "name": t,
            "retryCount": 10,
            "retryDelaySeconds": 0,
            "responseTimeoutSeconds": 3,
            "timeoutSeconds": 0,
        }
        for t in TYPES
    ]
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.post(f"{urls[0]}/metadata/taskdefs", json=task_defs)).status_code == 200
        assert (
            await http.put(f"{urls[0]}/metadata/workflow", json=[definition])
        ).status_code == 200

        runners = [
            TaskRunner(
                url.removesuffix("/api"),
                [Worker(t, _handler, concurrency=10) for t in TYPES],
                worker_id=f"runner-{i}",
                max_update_attempts=3,
            )
            for i, url in enumerate(urls)
        ]
        running = [asyncio.ensure_future(r.run()) for r in runners]

        async def kill_in_turn() -> list[str]:
            killed = []
            for module in (
                "queue_service.server",
                "decider.server",
                "api_gateway.server",
                "sweeper.server",
            ):
                await asyncio.sleep(1.5)
                victim = cluster.of(module)[0]
                victim.kill()
                killed.append(victim.name)
            return killed

        killer = asyncio.ensure_future(kill_in_turn())
        ids = []
        for i in range(WORKFLOWS):
            ids.append(await _post_any(http, urls, "/workflow/faults", {"i": i}))
        killed = await killer
        assert killed == ["queue-service-0", "decider-0", "gateway-0", "sweeper-0"]
        assert all(not s.alive() for s in cluster.services if s.name in killed)

        survivor = urls[1]
        pending = set(ids)
        statuses: Counter[str] = Counter()

        async def unfinished() -> set[str]:
            for wf_id in list(pending):
                r = await http.get(f"{survivor}/workflow/{wf_id}")
                wf = r.json()
                if wf["status"] == "RUNNING":
                    continue
                statuses[wf["status"]] += 1
                keys = [(t["referenceTaskName"], t["retryCount"]) for t in wf["tasks"]]
                assert len(keys) == len(set(keys)), f"duplicate task in {wf_id}: {keys}"
                pending.discard(wf_id)
            return set(pending)

        await eventually(
            unfinished,
            until=lambda left: not left,
            timeout_s=200,
            what="every workflow finished",
            interval_s=0.25,
        )
        for runner in runners:
            runner.stop()
        await asyncio.gather(*running, return_exceptions=True)
    assert statuses == Counter({"COMPLETED": WORKFLOWS})
