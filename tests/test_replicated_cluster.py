"""`podium up --shard-replicas 1 --store-replicas 1`: the Redis primaries die, the work goes on.

The cluster runs every service as a process, the queue shard and the store each as a primary
with one replica under three Sentinels, and the supervisor on. While external workers complete
three-task workflows, the shard's primary and then the store's primary are killed with
SIGKILL. Every workflow started must complete, with no task run twice for one attempt: what
was acknowledged was on a replica, the Sentinels promote it, the clients follow, and the
supervisor brings the old primary back as the new replica.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis

from podium.cluster import ClusterSpec, LocalCluster
from podium.worker import TaskRunner, Worker
from tests.polling import eventually

TYPES = ("rep_a", "rep_b", "rep_c")
WORKFLOWS = 90


@pytest.fixture
async def cluster() -> AsyncIterator[LocalCluster]:
    spec = ClusterSpec(
        shards=1, shard_replicas=1, store_replicas=1, supervise=True, gateway_port=0,
        extra_env={"PODIUM_DECIDER_WORKFLOW_OFFSET_S": "2", "PODIUM_SWEEPER_LEASE_MS": "2000"},
    )  # fmt: skip
    c = await LocalCluster(spec, progress=lambda _: None).start()
    try:
        yield c
    finally:
        await c.stop()


async def _done(task: dict[str, Any]) -> dict[str, Any]:
    return {"done": task["referenceTaskName"]}


@pytest.mark.timeout(180)
async def test_workflows_complete_while_the_redis_primaries_are_killed(
    cluster: LocalCluster,
) -> None:
    assert cluster.replicated is not None and cluster.supervisor is not None
    topology, api = cluster.replicated, cluster.gateway_urls[0]
    definition = {
        "name": "replicated", "version": 1, "schemaVersion": 2,
        "tasks": [{"name": t, "taskReferenceName": t, "type": "SIMPLE"} for t in TYPES],
    }  # fmt: skip
    task_defs = [{"name": t, "retryCount": 5, "retryDelaySeconds": 0,
                  "responseTimeoutSeconds": 3, "timeoutSeconds": 0} for t in TYPES]  # fmt: skip
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.post(f"{api}/metadata/taskdefs", json=task_defs)).status_code == 200
        assert (await http.put(f"{api}/metadata/workflow", json=[definition])).status_code == 200
        runner = TaskRunner(
            api.removesuffix("/api"), [Worker(t, _done, concurrency=5) for t in TYPES],
            worker_id="rep", max_update_attempts=10,
        )  # fmt: skip
        running = asyncio.ensure_future(runner.run())

        async def start(i: int) -> str:
            for _ in range(100):  # a client retries a start refused while a primary is down
                r = await http.post(f"{api}/workflow/replicated", json={"i": i})
                if r.status_code == 200:
                    return r.text
                assert r.status_code in (503, 504), r.text
                await asyncio.sleep(0.1)
            raise AssertionError(f"start {i} kept failing")

        ids = [await start(i) for i in range(WORKFLOWS // 3)]
        topology.primaries["s0"].kill()
        ids += [await start(i) for i in range(WORKFLOWS // 3, 2 * WORKFLOWS // 3)]
        topology.primaries["store"].kill()
        ids += [await start(i) for i in range(2 * WORKFLOWS // 3, WORKFLOWS)]

        statuses: Counter[str] = Counter()
        pending = set(ids)

        async def all_finished() -> bool:
            for wf_id in list(pending):
                r = await http.get(f"{api}/workflow/{wf_id}")
                if r.status_code != 200 or r.json()["status"] == "RUNNING":
                    continue
                wf = r.json()
                statuses[wf["status"]] += 1
                keys = [(t["referenceTaskName"], t["retryCount"]) for t in wf["tasks"]]
                assert len(keys) == len(set(keys)), f"duplicate task in {wf_id}: {keys}"
                pending.discard(wf_id)
            return not pending

        await eventually(
            all_finished, timeout_s=120, what="every workflow finished", interval_s=0.25
        )
        runner.stop()
        await asyncio.gather(running, return_exceptions=True)
    assert statuses == Counter({"COMPLETED": WORKFLOWS})
    # both primaries failed over and the old ones came back under the supervisor
    assert cluster.supervisor.record("redis-s0").restarts >= 1
    assert cluster.supervisor.record("redis-store").restarts >= 1
    assert topology.primary_address("s0") != (
        topology.primaries["s0"].host, topology.primaries["s0"].port,
    )  # fmt: skip
    # The old primaries are replicas now, in sync, and eligible for promotion again (they came
    # back unpromotable, replica-priority 0, until their first sync was done).
    for name in ("s0", "store"):
        old = topology.primaries[name]
        with redis.Redis(old.host, old.port) as r:
            info = r.info("replication")
            assert info["role"] == "slave" and info["master_link_status"] == "up"
            assert r.config_get("replica-priority")["replica-priority"] == "100"
