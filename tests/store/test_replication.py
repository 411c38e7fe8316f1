"""The Redis store on a primary with two replicas and three Sentinels: kill -9 the primary.

A commit acknowledged with ``PODIUM_STORE_REDIS_WAIT_REPLICAS=1`` is on a replica, so after the
failover the workflow reads back at the version the caller was told; a commit no replica
confirms is refused (and its retry is fenced by the version).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from podium.errors import ConfigError, PodiumError, Unavailable
from podium.launch.redis import ReplicatedRedis
from podium.redis_conn import connect
from podium.store import Store, StoreConfig, open_store
from tests.polling import eventually

from .builders import task, workflow


@pytest.fixture
def topology() -> Iterator[ReplicatedRedis]:
    t = ReplicatedRedis(["store"], replicas=2, down_after_ms=500, failover_timeout_ms=2000)
    try:
        yield t.start().wait_ready()
    finally:
        t.cleanup()


def _config(topology: ReplicatedRedis) -> StoreConfig:
    return StoreConfig.from_env({
        "PODIUM_STORE": "redis",
        "PODIUM_STORE_REDIS_URL": "sentinel://store/0",
        "PODIUM_STORE_REDIS_SENTINELS": topology.sentinel_list,
        "PODIUM_STORE_REDIS_WAIT_REPLICAS": "1",
        "PODIUM_STORE_REDIS_WAIT_TIMEOUT_MS": "500",
    })  # fmt: skip


@pytest.fixture
async def store(topology: ReplicatedRedis) -> AsyncIterator[Store]:
    s = await open_store(_config(topology))
    yield s
    await s.close()


def test_a_sentinel_url_needs_the_sentinels() -> None:
    with pytest.raises(ConfigError, match="PODIUM_STORE_REDIS_SENTINELS"):
        StoreConfig.from_env({"PODIUM_STORE_REDIS_URL": "sentinel://store/0"})
    with pytest.raises(ConfigError, match="is not host:port"):
        StoreConfig.from_env({
            "PODIUM_STORE_REDIS_URL": "sentinel://store/0",
            "PODIUM_STORE_REDIS_SENTINELS": "localhost",
        })  # fmt: skip


@pytest.mark.timeout(90)
async def test_acknowledged_commits_survive_a_failover(
    topology: ReplicatedRedis, store: Store
) -> None:
    ex = store.executions
    workflows = []
    for i in range(50):
        wf = workflow("replicated", input={"i": i})
        await ex.create_workflow(wf, [task(wf, "a")])
        assert await ex.commit({**wf, "variables": {"i": i}}, [], expected_version=1) == 2
        workflows.append(wf)

    topology.primaries["store"].kill()

    async def served() -> bool:
        try:
            await ex.read_workflow(workflows[0]["workflowId"])
            last = workflow("replicated", input={"i": "after"})
            await ex.create_workflow(last, [task(last, "a")])
        except PodiumError:
            return False
        return True

    # until the Sentinels have promoted a replica and the client found it
    await eventually(served, timeout_s=30, what="a failover", interval_s=0.1)
    for wf in workflows:
        snap = await ex.read_workflow(wf["workflowId"])
        assert snap.version == 2 and snap.workflow["variables"] == wf["input"]


@pytest.mark.timeout(60)
async def test_a_commit_no_replica_confirms_is_refused(
    topology: ReplicatedRedis, store: Store
) -> None:
    wf = workflow("unconfirmed")
    await store.executions.create_workflow(wf, [task(wf, "a")])
    for replica in topology.replica_servers["store"]:
        replica.kill()
    with pytest.raises(Unavailable, match="0 of 1 replicas confirmed"):
        await store.executions.commit({**wf, "status": "PAUSED"}, [], expected_version=1)


@pytest.mark.timeout(60)
async def test_a_burst_of_calls_that_hold_their_connection_is_served(
    topology: ReplicatedRedis,
) -> None:
    """Calls that keep their connection while they wait (``WAIT`` for a replica) pile up in the
    burst after a failover; more of them at once than redis-py's default pool (100) allows are
    all served, none refused with "Too many connections"."""
    client = connect(
        "sentinel://store/0",
        sentinels=topology.sentinel_addresses,
        variable="PODIUM_STORE_REDIS_URL",
    )
    try:
        replies = await asyncio.gather(
            *(client.blpop([f"burst:{i}"], timeout=0.5) for i in range(150))
        )
    finally:
        await client.aclose()
    assert replies == [None] * 150
