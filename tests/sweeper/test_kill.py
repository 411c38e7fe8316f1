"""kill -9 of a sweeper replica in the middle of a run loses no workflow."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest

from podium.cluster import ClusterSpec, LocalCluster
from podium.store import StoreConfig, open_store
from tests.polling import eventually

WORKFLOWS = 300


@pytest.fixture
async def cluster() -> AsyncIterator[LocalCluster]:
    spec = ClusterSpec(
        shards=1,
        gateways=0,
        sweepers=2,
        gateway_port=0,
        extra_env={"PODIUM_SWEEPER_LEASE_MS": "2000"},
    )
    c = await LocalCluster(spec, progress=lambda _: None).start()
    try:
        yield c
    finally:
        await c.stop()


@pytest.mark.timeout(180)
async def test_killing_a_sweeper_mid_run_loses_and_duplicates_nothing(
    cluster: LocalCluster,
) -> None:
    definition = {
        "name": "kill_sweeper",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": "w1",
                "taskReferenceName": "w1",
                "type": "WAIT",
                "inputParameters": {"duration": "1 seconds"},
            },
            {
                "name": "set",
                "taskReferenceName": "set",
                "type": "SET_VARIABLE",
                "inputParameters": {"step": 2},
            },
            {
                "name": "w2",
                "taskReferenceName": "w2",
                "type": "WAIT",
                "inputParameters": {"duration": "1 seconds"},
            },
        ],
    }
    store = await open_store(StoreConfig.from_env(cluster.store_env))
    rpc = cluster.rpc_client(cluster.decider_addresses, timeout_s=60)
    try:
        await store.metadata.update_workflow_def(definition)
        ids = []
        for i in range(WORKFLOWS):
            answer = await rpc.call(
                "decider.start_workflow", {"request": {"name": "kill_sweeper", "input": {"i": i}}}
            )
            ids.append(answer["workflowId"])
            if i == WORKFLOWS // 2:
                cluster.of("sweeper.server")[0].kill()  # kill -9 while timers are firing
        statuses: Counter[str] = Counter()
        pending = set(ids)

        async def unfinished() -> set[str]:
            for wf_id in list(pending):
                wf = await store.executions.get_workflow(wf_id, include_tasks=True)
                if wf["status"] != "RUNNING":
                    statuses[wf["status"]] += 1
                    refs = [(t["referenceTaskName"], t["retryCount"]) for t in wf["tasks"]]
                    assert len(refs) == len(set(refs)), f"duplicate task in {wf_id}: {refs}"
                    assert sorted(r for r, _ in refs) == ["set", "w1", "w2"]
                    pending.discard(wf_id)
            return set(pending)

        await eventually(
            unfinished,
            until=lambda left: not left,
            timeout_s=120,
            what="every workflow finished",
            interval_s=0.2,
        )
        assert statuses == Counter({"COMPLETED": WORKFLOWS})
    finally:
        await rpc.close()
        await store.close()
