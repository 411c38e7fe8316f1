"""Every queue operation through the real service (RPC) over 1, 2 and 3 Redis shards."""

from __future__ import annotations

import time

import pytest

from podium.errors import InvalidArgument, LimitExceeded
from podium.queue_client import Message, QueueClient
from tests.polling import eventually

Q = "work"


async def test_push_pop_ack_round_trip_keeps_payload_types(client: QueueClient) -> None:
    payloads = {"a": b"\x00raw", "b": {"k": [1, 2.5, None]}, "c": "text", "d": None}
    await client.push(Q, [Message(i, p) for i, p in payloads.items()])
    got = await client.pop(Q, count=10, lease_ms=10_000)
    assert {m.id: m.payload for m in got} == payloads
    assert await client.ack(Q, [m.id for m in got]) == [True] * 4
    assert await client.size(Q) == 0
    assert not await client.contains(Q, "a")


async def test_delayed_messages_come_out_in_due_order(client: QueueClient) -> None:
    await client.push(
        Q,
        [
            Message("late", delay_ms=300),
            Message("early", delay_ms=100),
            Message("mid", delay_ms=200),
        ],
    )
    assert await client.pop(Q, count=3, lease_ms=10_000) == []  # nothing due yet
    order: list[str] = []
    while len(order) < 3:
        got = await client.pop(Q, count=3, lease_ms=10_000, wait_ms=2_000)
        order += [m.id for m in got]
    assert order == ["early", "mid", "late"]


# Priority orders the messages of one shard (see docs/queue.md), so these run on one shard.
@pytest.mark.parametrize("shard_count", [1], indirect=True)
async def test_highest_priority_first_among_due_messages(client: QueueClient) -> None:
    await client.push(Q, [Message(f"p{p}", priority=p) for p in (5, 99, 0, 50, 7)])
    got = await client.pop(Q, count=5, lease_ms=10_000)
    assert [m.id for m in got] == ["p99", "p50", "p7", "p5", "p0"]
    assert [m.priority for m in got] == [99, 50, 7, 5, 0]


@pytest.mark.parametrize("shard_count", [1], indirect=True)
async def test_priority_survives_delay_and_lease_expiry(client: QueueClient) -> None:
    await client.push(Q, [Message("low", priority=1), Message("high", priority=90, delay_ms=50)])
    got = await client.pop(Q, count=1, lease_ms=50)  # "high" is not due yet
    assert [m.id for m in got] == ["low"]
    # Both become ready again ("low" by lease expiry): "high" must come first.
    ids: list[str] = []
    while len(ids) < 2:
        ids += [m.id for m in await client.pop(Q, count=2, lease_ms=10_000, wait_ms=2_000)]
    assert ids == ["high", "low"]


async def test_expired_lease_is_redelivered(client: QueueClient) -> None:
    await client.push(Q, [Message("m1", "x")])
    first = await client.pop(Q, count=1, lease_ms=100)
    assert [m.id for m in first] == ["m1"]
    assert await client.pop(Q, count=1, lease_ms=100) == []  # leased: invisible
    assert await client.contains(Q, "m1")  # but still there
    started = time.monotonic()
    again = await client.pop(Q, count=1, lease_ms=10_000, wait_ms=3_000)
    assert [m.id for m in again] == ["m1"]
    assert time.monotonic() - started < 2.0  # woken at the lease's expiry, not at the wait's end


async def test_background_recovery_returns_expired_leases_within_a_second(
    client: QueueClient,
) -> None:
    await client.push(Q, [Message("m1")])
    assert len(await client.pop(Q, count=1, lease_ms=50)) == 1
    assert await client.size(Q) == 0
    await eventually(lambda: client.size(Q), timeout_s=1.5, what="the expired lease recovered")
    details = await client.details(Q)
    assert sum(d["leased"] for d in details.values()) == 0


async def test_push_is_idempotent_per_id(client: QueueClient) -> None:
    assert await client.push(Q, [Message("a", 1), Message("b", 2)]) == [True, True]
    assert await client.push(Q, [Message("a", 3)]) == [False]  # queued: updated, not duplicated
    assert await client.size(Q) == 2
    got = await client.pop(Q, count=10, lease_ms=10_000)
    assert sorted((m.id, m.payload) for m in got) == [("a", 3), ("b", 2)]
    # Pushing a leased id again must not make a second copy.
    assert await client.push(Q, [Message("a", 4)]) == [False]
    assert await client.pop(Q, count=10, lease_ms=10_000) == []
    assert await client.size(Q) == 0


async def test_push_if_absent_reports_which_were_new(client: QueueClient) -> None:
    await client.push(Q, [Message("a", "first", delay_ms=60_000)])
    flags = await client.push_if_absent(Q, [Message("a", "second"), Message("c", "new")])
    assert flags == [False, True]
    info = await client.get(Q, "a")
    assert info is not None and info.payload == "first" and info.state == "delayed"


async def test_ack_of_unknown_or_queued_ids_is_false_and_harmless(client: QueueClient) -> None:
    await client.push(Q, [Message("queued")])
    assert await client.ack(Q, ["nope", "queued"]) == [False, False]
    assert await client.contains(Q, "queued")
    (m,) = await client.pop(Q, count=1, lease_ms=10_000)
    assert await client.ack(Q, [m.id]) == [True]
    assert await client.ack(Q, [m.id]) == [False]


async def test_set_unack_timeout_extends_or_releases_a_lease(client: QueueClient) -> None:
    await client.push(Q, [Message("m")])
    await client.pop(Q, count=1, lease_ms=100)
    assert await client.set_unack_timeout(Q, "m", 60_000)
    info = await client.get(Q, "m")
    assert info is not None and info.state == "leased"
    assert info.time_ms > time.time() * 1000 + 50_000
    assert await client.nack(Q, "m")  # visible at once
    assert [m.id for m in await client.pop(Q, count=1, lease_ms=10_000)] == ["m"]
    assert not await client.set_unack_timeout(Q, "absent", 1000)


async def test_postpone_reschedules_queued_and_leased_messages(client: QueueClient) -> None:
    await client.push(Q, [Message("m", priority=3)])
    await client.pop(Q, count=1, lease_ms=10_000)
    assert await client.postpone(Q, "m", delay_ms=60_000, priority=9)
    info = await client.get(Q, "m")
    assert info is not None and info.state == "delayed" and info.priority == 9
    assert await client.postpone(Q, "m", delay_ms=0, priority=9)
    assert [m.id for m in await client.pop(Q, count=1, lease_ms=10_000)] == ["m"]
    assert not await client.postpone(Q, "absent", delay_ms=0)


async def test_remove_contains_get_size_details_flush_list(
    client: QueueClient, shard_count: int
) -> None:
    await client.push(
        Q, [Message(f"m{i}", i, delay_ms=(0 if i % 2 else 60_000)) for i in range(20)]
    )
    await client.pop(Q, count=3, lease_ms=60_000)
    details = await client.details(Q)
    assert len(details) == shard_count
    assert sum(d["ready"] for d in details.values()) == 7
    assert sum(d["delayed"] for d in details.values()) == 10
    assert sum(d["leased"] for d in details.values()) == 3
    assert await client.size(Q) == 17
    assert await client.remove(Q, ["m0", "m1", "zzz"]) == [True, True, False]
    assert not await client.contains(Q, "m0")
    assert await client.get(Q, "m0") is None
    assert await client.get(Q, "m2") is not None
    assert Q in await client.list_queues()
    await client.flush(Q)
    assert await client.size(Q) == 0
    assert not await client.contains(Q, "m2")


async def test_bad_requests_get_clear_errors_and_change_nothing(client: QueueClient) -> None:
    await client.push(Q, [Message("keep", "v")])
    with pytest.raises(InvalidArgument, match="priority"):
        await client.push(Q, [Message("x", priority=100)])
    with pytest.raises(InvalidArgument, match="braces or whitespace"):
        await client.push("bad name", [Message("x")])
    with pytest.raises(InvalidArgument, match="non-empty"):
        await client.push(Q, [Message("")])
    with pytest.raises(InvalidArgument, match="count"):
        await client.pop(Q, count=0)
    with pytest.raises(LimitExceeded):
        await client.push(Q, [Message("big", b"x" * (2 * 1024 * 1024))])
    with pytest.raises(InvalidArgument, match="missing parameter"):
        await client.rpc.call("queue.pop", {"queue": Q})
    assert await client.size(Q) == 1
    assert not await client.contains(Q, "x")
    info = await client.get(Q, "keep")
    assert info is not None and info.payload == "v"


async def test_schedule_sets_the_next_due_time_in_any_state_and_ignores_stale_fences(
    client: QueueClient,
) -> None:
    # absent: created
    assert await client.schedule(Q, "wf", delay_ms=60_000, fence=3)
    info = await client.get(Q, "wf")
    assert info is not None and info.state == "delayed" and info.payload == b"3"
    # a stale fence (an older decision finishing late) changes nothing
    assert not await client.schedule(Q, "wf", delay_ms=0, fence=2)
    info = await client.get(Q, "wf")
    assert info is not None and info.state == "delayed"
    # queued: re-timed
    assert await client.schedule(Q, "wf", delay_ms=0, fence=4)
    (m,) = await client.pop(Q, count=1, lease_ms=60_000)
    assert m.id == "wf"
    # leased: the lease is re-timed, so the entry comes back when next due
    assert await client.schedule(Q, "wf", delay_ms=50, fence=5)
    info = await client.get(Q, "wf")
    assert info is not None and info.state == "leased"
    got = await client.pop(Q, count=1, lease_ms=60_000, wait_ms=2_000)
    assert [x.id for x in got] == ["wf"]


async def test_a_batch_runs_several_operations_in_one_call(client: QueueClient) -> None:
    await client.push("other", [Message("old")])
    results = await (
        client.batch()
        .push(Q, [Message("a"), Message("b")])
        .remove("other", ["old", "missing"])
        .schedule("timers", "wf1", 60_000, 1)
        .run()
    )
    assert results == [[True, True], [True, False], True]
    assert await client.size(Q) == 2
    assert not await client.contains("other", "old")
    info = await client.get("timers", "wf1")
    assert info is not None and info.state == "delayed"


async def test_a_batch_reports_the_first_failure_after_running_the_rest(
    client: QueueClient,
) -> None:
    with pytest.raises(InvalidArgument, match="priority"):
        await client.batch().push(Q, [Message("x", priority=500)]).push(Q, [Message("y")]).run()
    assert await client.contains(Q, "y")  # the valid operation still ran
