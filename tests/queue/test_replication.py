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
from dataclasses import dataclass

import pytest
import redis

from podium.errors import PodiumError, Unavailable
from podium.launch.redis import RedisServer, SentinelServer
from queue_service.engine import QueueEngine
from queue_service.model import RawMessage
from queue_service.shards import ShardSpec
from tests.gateway.helpers import poll_until

QUEUE = "replicated"


@dataclass
class ReplicatedShard:
    primary: RedisServer
    replicas: list[RedisServer]
    sentinels: list[SentinelServer]

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        return tuple((s.host, s.port) for s in self.sentinels)

    def spec(self, wait_replicas: int = 1) -> ShardSpec:
        return ShardSpec("s0", "sentinel://s0/0", self.addresses, wait_replicas, 500)

    def master_info(self) -> dict[str, str]:
        with redis.Redis(self.sentinels[0].host, self.sentinels[0].port) as r:
            raw = r.execute_command("SENTINEL", "MASTER", "s0")
        pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=True)
        text = lambda x: x.decode() if isinstance(x, bytes) else str(x)  # noqa: E731
        return {text(k): text(v) for k, v in pairs}


@pytest.fixture
def shard() -> Iterator[ReplicatedShard]:
    primary = RedisServer().start()
    replicas = [RedisServer(replica_of=(primary.host, primary.port)).start() for _ in range(2)]
    sentinels = [
        SentinelServer(monitors=[("s0", primary.host, primary.port)], down_after_ms=500,
                       failover_timeout_ms=2000).start()
        for _ in range(3)
    ]  # fmt: skip
    try:
        yield ReplicatedShard(primary, replicas, sentinels)  # type: ignore[arg-type]
    finally:
        for s in [*sentinels, *replicas, primary]:
            s.cleanup()


@pytest.fixture
async def engine(shard: ReplicatedShard) -> AsyncIterator[QueueEngine]:
    # The Sentinels must know each other and the replica before a failover can be agreed.
    async def topology_known() -> bool:
        info = await asyncio.to_thread(shard.master_info)
        links = []
        for replica in shard.replicas:
            with redis.Redis(replica.host, replica.port) as r:
                links.append(r.info("replication").get("master_link_status"))
        return info["num-other-sentinels"] == "2" and info["num-slaves"] == "2" and links == [
            "up",
            "up",
        ]

    await poll_until(topology_known, timeout_s=20, interval_s=0.1)
    eng = await QueueEngine([shard.spec()]).start()
    yield eng
    await eng.stop()


def _message(i: int) -> RawMessage:
    return RawMessage(f"m{i}", f"body {i}".encode(), 0, 0)


@pytest.mark.timeout(90)
async def test_no_acknowledged_push_is_lost_when_the_primary_is_killed(
    shard: ReplicatedShard, engine: QueueEngine
) -> None:
    acknowledged: set[str] = set()
    for i in range(200):
        await engine.push(QUEUE, [_message(i)])
        acknowledged.add(f"m{i}")

    shard.primary.kill()  # kill -9: whatever it did not hand to the replica is gone
    refused = 0

    async def push_after_failover() -> bool:
        nonlocal refused
        try:
            await engine.push(QUEUE, [_message(1000)])
        except PodiumError:
            refused += 1
            return False
        acknowledged.add("m1000")
        return True

    await poll_until(push_after_failover, timeout_s=30, interval_s=0.1)
    assert refused > 0, "pushes went on although the primary was dead"
    info = await asyncio.to_thread(shard.master_info)
    assert int(info["port"]) in {r.port for r in shard.replicas}, "no replica was promoted"

    popped: set[str] = set()
    while True:
        got = await engine.pop(QUEUE, 100, 60_000)
        if not got:
            break
        popped |= {msg_id for msg_id, _, _ in got}
    assert popped == acknowledged


@pytest.mark.timeout(60)
async def test_a_push_no_replica_confirms_is_refused_not_acknowledged(
    shard: ReplicatedShard, engine: QueueEngine
) -> None:
    await engine.push(QUEUE, [_message(1)])  # the replicas confirm
    for replica in shard.replicas:
        replica.kill()
    with pytest.raises(Unavailable, match="0 of 1 replicas confirmed"):
        await engine.push(QUEUE, [_message(2)])
