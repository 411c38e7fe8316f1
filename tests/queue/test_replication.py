"""A queue shard as a primary, two replicas and three Sentinels: kill -9 the primary.

Every push the engine acknowledged was confirmed by a replica (``WAIT 1``), so after the
Sentinels promote one, every acknowledged message is still there to pop; and the engine, which
knows the shard only by its Sentinel name, finds the new primary by itself. (With one replica
and ``WAIT 1``, pushes are refused from the failover until a second server is back: the
promise holds, progress waits.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from podium.errors import PodiumError, Unavailable
from podium.launch.redis import ReplicatedRedis
from podium.queue_client import RawMessage
from queue_service.engine import QueueEngine
from queue_service.shards import ShardSpec
from tests.polling import eventually

QUEUE = "replicated"


@pytest.fixture
def shard() -> Iterator[ReplicatedRedis]:
    topology = ReplicatedRedis(["s0"], replicas=2, down_after_ms=500, failover_timeout_ms=2000)
    try:
        # The Sentinels must know each other and the replicas before they can agree a failover.
        yield topology.start().wait_ready()
    finally:
        topology.cleanup()


@pytest.fixture
async def engine(shard: ReplicatedRedis) -> AsyncIterator[QueueEngine]:
    spec = ShardSpec("s0", "sentinel://s0/0", shard.sentinel_addresses, 1, 500)
    eng = await QueueEngine([spec]).start()
    yield eng
    await eng.stop()


def _message(i: int) -> RawMessage:
    return RawMessage(f"m{i}", f"body {i}".encode(), 0, 0)


@pytest.mark.timeout(90)
async def test_no_acknowledged_push_is_lost_when_the_primary_is_killed(
    shard: ReplicatedRedis, engine: QueueEngine
) -> None:
    acknowledged = set()
    for i in range(200):
        await engine.push(QUEUE, [_message(i)])
        acknowledged.add(f"m{i}")

    old = shard.primary_address("s0")
    shard.primaries["s0"].kill()  # kill -9: whatever it did not hand to a replica is gone
    refused = 0

    async def pushed() -> bool:
        nonlocal refused
        try:
            await engine.push(QUEUE, [_message(1000)])
        except PodiumError:
            refused += 1
            return False
        return True

    await eventually(pushed, timeout_s=30, what="a failover", interval_s=0.1)
    acknowledged.add("m1000")
    assert refused > 0, "pushes went on although the primary was dead"
    new = await asyncio.to_thread(shard.primary_address, "s0")
    assert new != old and new[1] in {r.port for r in shard.replica_servers["s0"]}

    popped: set[str] = set()
    while got := await engine.pop(QUEUE, 100, 60_000):
        popped |= {msg_id for msg_id, _, _ in got}
    assert popped == acknowledged


@pytest.mark.timeout(60)
async def test_a_push_no_replica_confirms_is_refused_not_acknowledged(
    shard: ReplicatedRedis, engine: QueueEngine
) -> None:
    await engine.push(QUEUE, [_message(1)])  # the replicas confirm
    for replica in shard.replica_servers["s0"]:
        replica.kill()
    with pytest.raises(Unavailable, match="0 of 1 replicas confirmed"):
        await engine.push(QUEUE, [_message(2)])
