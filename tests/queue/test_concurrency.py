"""Many consumers, several replicas, long polls, and a shard that dies and comes back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis

from podium.errors import Unavailable
from podium.launch.redis import RedisServer
from podium.queue_client import Message, QueueClient, RawMessage, encode_payload
from queue_service.engine import QueueEngine
from queue_service.long_poll import _sender
from queue_service.shards import shard_index
from tests.polling import eventually

from .conftest import specs

Q = "busy"


@pytest.mark.timeout(120)
async def test_concurrent_consumers_never_share_a_leased_message(client: QueueClient) -> None:
    total = 3000
    for start in range(0, total, 500):
        await client.push(Q, [Message(f"m{i}", i) for i in range(start, start + 500)])
    received: Counter[str] = Counter()

    async def consumer() -> None:
        idle = 0
        while idle < 3:
            got = await client.pop(Q, count=7, lease_ms=120_000, wait_ms=50)
            if not got:
                idle += 1
                continue
            idle = 0
            received.update(m.id for m in got)
            await client.ack(Q, [m.id for m in got])

    await asyncio.gather(*(consumer() for _ in range(24)))
    duplicates = [i for i, n in received.items() if n > 1]
    assert duplicates == []
    assert len(received) == total
    assert await client.size(Q) == 0


@pytest.mark.timeout(120)
async def test_two_replicas_over_the_same_shards_never_hand_out_a_message_twice(
    redis_shards: list[RedisServer],
) -> None:
    a = await QueueEngine(specs(redis_shards)).start()
    b = await QueueEngine(specs(redis_shards)).start()
    try:
        total = 2000
        msgs = [RawMessage(f"m{i}", encode_payload(i), 0, i % 100) for i in range(total)]
        for start in range(0, total, 500):
            await a.push(Q, msgs[start : start + 500])
        received: Counter[str] = Counter()

        async def consumer(engine: QueueEngine) -> None:
            idle = 0
            while idle < 3:
                got = await engine.pop(Q, 10, 120_000, wait_ms=50)
                if not got:
                    idle += 1
                    continue
                idle = 0
                received.update(m[0] for m in got)

        await asyncio.gather(*(consumer(e) for e in (a, b) for _ in range(8)))
        assert max(received.values()) == 1
        assert len(received) == total
    finally:
        await a.stop()
        await b.stop()


async def _now(value: bool) -> bool:
    """An in-memory state as an awaitable read, for ``eventually``."""
    return value


async def _subscribed(redis: aioredis.Redis, engines: int) -> None:
    """Wait until ``engines`` queue engines listen for pushes on this shard."""

    async def count() -> int:
        return int((await redis.pubsub_numsub("pq:notify"))[0][1])

    await eventually(
        count, until=lambda n: n >= engines, timeout_s=10, what="the subscriptions live",
        interval_s=0.01,
    )  # fmt: skip


async def _wake_latency(popper: QueueEngine, pusher: QueueEngine, queue: str) -> float:
    waiting = asyncio.ensure_future(popper.pop(queue, 1, 10_000, wait_ms=10_000))
    # Once registered, the poll cannot miss the push: a wake-up during its first (empty)
    # pop makes it pop again at once.
    await eventually(
        lambda: _now(queue in popper._waiters),
        timeout_s=10, what="the poll registered", interval_s=0.001,
    )  # fmt: skip
    started = time.monotonic()
    await pusher.push(queue, [RawMessage("wake", encode_payload(None), 0, 0)])
    got = await waiting
    assert [m[0] for m in got] == ["wake"]
    return time.monotonic() - started


async def test_long_poll_is_woken_by_a_push_on_the_same_replica(engine: QueueEngine) -> None:
    latency = await _wake_latency(engine, engine, "lp1")
    # Woken by the push, not by the end of the 10 s wait (timing figures: benchmarks/).
    assert latency < 1.0


async def test_long_poll_is_woken_by_a_push_through_another_replica(
    redis_shards: list[RedisServer],
) -> None:
    a = await QueueEngine(specs(redis_shards[:2]), requeue_interval_s=60).start()
    b = await QueueEngine(specs(redis_shards[:2]), requeue_interval_s=60).start()
    try:
        await a.shards_of("lp2")
        # wait until b's subscriptions are live, so the notification cannot be missed
        for shard in b.shards:
            await _subscribed(shard.redis, 2)
        latency = await _wake_latency(a, b, "lp2")
        assert latency < 0.9  # well under the 1 s safety re-check
    finally:
        await a.stop()
        await b.stop()


async def test_a_push_wakes_one_sleeping_poll_per_message(engine: QueueEngine) -> None:
    queue = "herd"
    polls = [asyncio.ensure_future(engine.pop(queue, 1, 10_000, wait_ms=10_000)) for _ in range(5)]
    await eventually(
        lambda: _now(sum(engine._waiters.get(queue, {}).values()) >= 5),
        timeout_s=10, what="all five polls asleep", interval_s=0.001,
    )  # fmt: skip
    calls = sum(m.calls for m in engine._merge.values())
    await engine.push(queue, [RawMessage("one", encode_payload(1), 0, 0)])
    done, _ = await asyncio.wait(polls, return_when=asyncio.FIRST_COMPLETED)
    assert [m[0] for m in done.pop().result()] == ["one"]
    # One push and one pop reached Redis; the other four polls slept through it.
    assert sum(m.calls for m in engine._merge.values()) == calls + 2
    assert sorted(engine._waiters[queue].values()) == [True] * 4
    await engine.push(queue, [RawMessage(f"m{i}", encode_payload(i), 0, 0) for i in range(4)])
    rest = await asyncio.gather(*(p for p in polls if not p.done()))
    assert sorted(m[0] for got in rest for m in got) == ["m0", "m1", "m2", "m3"]


def _same_shard(prefix: str, shards: int, n: int) -> list[str]:
    """``n`` message ids that all live on shard 0 of ``shards``."""
    ids = (f"{prefix}{i}" for i in range(1000))
    return [i for i in ids if shard_index(i, shards) == 0][:n]


async def test_only_a_message_due_sooner_wakes_a_sleeping_poll(engine: QueueEngine) -> None:
    queue = "timers"
    first, later, timer, sooner = _same_shard("t", len(engine.shards), 4)
    await engine.push(queue, [RawMessage(first, encode_payload(1), 60_000, 0)])
    poll = asyncio.ensure_future(engine.pop(queue, 1, 10_000, wait_ms=10_000))
    await eventually(
        lambda: _now(sum(engine._waiters.get(queue, {}).values()) == 1),
        timeout_s=10, what="the poll asleep", interval_s=0.001,
    )  # fmt: skip
    calls = sum(m.calls for m in engine._merge.values())
    # Due after the earliest delayed message: the poll's wake-up time stands.
    await engine.push(queue, [RawMessage(later, encode_payload(2), 120_000, 0)])
    assert await engine.schedule(queue, timer, 90_000, 1)
    assert engine._waiters[queue] and all(engine._waiters[queue].values())
    assert sum(m.calls for m in engine._merge.values()) == calls + 2  # no pop ran
    # Due sooner than anything before it: the poll looks again and sleeps until then.
    started = time.monotonic()
    await engine.push(queue, [RawMessage(sooner, encode_payload(3), 300, 0)])
    assert [m[0] for m in await poll] == [sooner]
    assert 0.25 < time.monotonic() - started < 0.9  # not the 1 s safety re-check


async def test_only_a_message_due_sooner_is_announced_to_other_replicas(
    redis_shards: list[RedisServer],
) -> None:
    eng = await QueueEngine(specs(redis_shards[:1]), requeue_interval_s=60).start()
    listener = eng.shards[0].redis.pubsub()
    try:
        await listener.subscribe("pq:notify")
        await eng.push("announce", [RawMessage("a", encode_payload(1), 60_000, 0)])  # earliest
        await eng.push("announce", [RawMessage("b", encode_payload(2), 90_000, 0)])
        assert await eng.schedule("announce", "c", 120_000, 1)
        await eng.push("announce", [RawMessage("d", encode_payload(3), 0, 0)])  # due now
        assert await eng.schedule("announce", "e", 0, 1)
        await eng.shards[0].redis.publish("pq:notify", "end")
        notes: list[str] = []
        async with asyncio.timeout(10):
            while not notes or notes[-1] != "end":
                # None for the subscription's own confirmation, which is skipped
                msg = await listener.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is not None:
                    notes.append(msg["data"].decode())
        # One for the earliest delayed message, one for each message due now.
        assert [_sender(n)[1] for n in notes] == ["announce"] * 3 + ["end"]
    finally:
        await listener.aclose()
        await eng.stop()


def test_a_notification_names_its_replica_and_queue() -> None:
    assert _sender("0123456789ab:SIMPLE:a") == ("0123456789ab", "SIMPLE:a")
    assert _sender("SIMPLE_a") == ("", "SIMPLE_a")  # a bare queue name (an older replica)
    assert _sender("not-an-id:q") == ("", "not-an-id:q")


async def test_long_poll_wakes_when_a_delayed_message_falls_due(engine: QueueEngine) -> None:
    await engine.push("lp3", [RawMessage("later", encode_payload(1), 300, 0)])
    started = time.monotonic()
    got = await engine.pop("lp3", 1, 10_000, wait_ms=5_000)
    elapsed = time.monotonic() - started
    assert [m[0] for m in got] == ["later"]
    assert 0.25 < elapsed < 1.5


@pytest.mark.timeout(60)
async def test_a_dead_shard_fails_its_operations_while_the_others_keep_serving(
    redis_shards: list[RedisServer],
) -> None:
    eng = await QueueEngine(specs(redis_shards)).start()
    victim = redis_shards[1]
    try:
        ids = [f"m{i}" for i in range(60)]
        await eng.push(Q, [RawMessage(i, encode_payload(i), 0, 0) for i in ids])
        on_victim = [i for i in ids if shard_index(i, 3) == 1]
        elsewhere = [i for i in ids if shard_index(i, 3) != 1]
        assert on_victim and elsewhere

        victim.kill()
        with pytest.raises(Unavailable, match="queue shard s1"):
            await eng.contains(Q, on_victim[0])
        with pytest.raises(Unavailable, match="s1"):
            await eng.push(Q, [RawMessage(on_victim[0], b"bx", 0, 0)])
        assert await eng.contains(Q, elsewhere[0])
        got = await eng.pop(Q, 100, 60_000)
        assert {m[0] for m in got} == set(elsewhere)  # the live shards still serve
        assert await eng.ack(Q, [elsewhere[0]]) == [True]

        victim.start()  # same port, empty (no persistence): service resumes, no restart
        back = on_victim[0]

        async def pushed() -> bool:
            try:
                assert await eng.push(Q, [RawMessage(back, encode_payload(1), 0, 0)]) == [True]
            except Unavailable:
                return False
            return True

        await eventually(pushed, timeout_s=10, what="the shard back", interval_s=0.05)
        assert await eng.contains(Q, back)
        got = await eng.pop(Q, 10, 60_000, wait_ms=1000)
        assert [m[0] for m in got] == [back]
    finally:
        if not victim.is_running():
            victim.start()
        await eng.stop()


async def test_an_empty_queue_costs_no_redis_call_until_something_is_pushed(
    redis_shards: list[RedisServer],
) -> None:
    a = await QueueEngine(specs(redis_shards[:2]), requeue_interval_s=60).start()
    b = await QueueEngine(specs(redis_shards[:2]), requeue_interval_s=60).start()
    try:
        for shard in a.shards:  # a's subscriptions are live
            await _subscribed(shard.redis, 2)
        assert await a.pop("hint", 1, 1000) == []
        calls = sum(m.calls for m in a._merge.values())
        assert await a.pop("hint", 1, 1000) == []
        assert sum(m.calls for m in a._merge.values()) == calls  # answered from the hint

        await b.push("hint", [RawMessage("x", encode_payload(1), 0, 0)])
        target = (await a.shards_of("hint"))[shard_index("x", 2)].name
        await eventually(  # b's push reaches a through its shard
            lambda: _now(target not in a._empty.get("hint", {})),
            timeout_s=10, what="the push's hint", interval_s=0.001,
        )  # fmt: skip
        calls = sum(m.calls for m in a._merge.values())
        assert [m[0] for m in await a.pop("hint", 1, 1000)] == ["x"]
        # Only the shard pushed to was asked: the other one is still known to be empty.
        assert sum(m.calls for m in a._merge.values()) == calls + 1
        assert set(a._empty["hint"]) == {s.name for s in a.shards} - {target}
    finally:
        await a.stop()
        await b.stop()
