"""podium.aio.Merged: calls that arrive while others are on their way go out together."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from podium.aio import Merged


class Sender:
    """Answers each item doubled (or the item's own error for negatives); a send waits for
    ``gate`` when one is set, so tests can hold a round trip open."""

    def __init__(self) -> None:
        self.sends: list[list[int]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.sends.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return [ValueError(f"bad {i}") if i < 0 else 2 * i for i in items]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_idle_call_goes_at_once_alone() -> None:
    send = Sender()
    merged = Merged(send, max_in_flight=1)
    assert await merged(1) == 2
    assert await merged(2) == 4
    assert send.sends == [[1], [2]]


async def test_calls_made_during_a_round_trip_leave_together_when_it_returns() -> None:
    send = Sender()
    send.gate = asyncio.Event()
    merged = Merged(send, max_in_flight=1, max_items=3)
    first = asyncio.ensure_future(merged(1))
    await settle()
    rest = [asyncio.ensure_future(merged(i)) for i in range(10, 15)]
    await settle()
    assert send.sends == [[1]]  # the others wait for the one under way
    send.gate.set()
    assert await first == 2
    assert await asyncio.gather(*rest) == [20, 22, 24, 26, 28]
    assert send.sends == [[1], [10, 11, 12], [13, 14]]  # at most max_items a send
    assert (merged.calls, merged.sends) == (6, 3)


async def test_up_to_max_in_flight_sends_run_at_once() -> None:
    send = Sender()
    send.gate = asyncio.Event()
    merged = Merged(send, max_in_flight=2)
    calls = [asyncio.ensure_future(merged(i)) for i in range(4)]
    await settle()
    assert send.sends == [[0], [1]]
    send.gate.set()
    assert await asyncio.gather(*calls) == [0, 2, 4, 6]
    assert send.sends == [[0], [1], [2, 3]]


async def test_an_item_s_error_is_its_caller_s_alone() -> None:
    send = Sender()
    send.gate = asyncio.Event()
    merged = Merged(send, max_in_flight=1)
    first = asyncio.ensure_future(merged(0))
    await settle()
    good, bad = asyncio.ensure_future(merged(5)), asyncio.ensure_future(merged(-1))
    await settle()
    send.gate.set()
    await first
    assert await good == 10
    with pytest.raises(ValueError, match="bad -1"):
        await bad


async def test_a_failed_round_trip_fails_every_call_it_carried_and_not_the_next() -> None:
    send = Sender()
    send.gate = asyncio.Event()
    send.fail = ConnectionError("gone")
    merged = Merged(send, max_in_flight=1)
    carried = [asyncio.ensure_future(merged(i)) for i in range(2)]
    await settle()
    send.gate.set()
    for call in carried:
        with pytest.raises(ConnectionError):
            await call
    send.fail = None
    assert await merged(3) == 6


async def test_a_caller_that_gives_up_does_not_take_the_others_with_it() -> None:
    send = Sender()
    send.gate = asyncio.Event()
    merged = Merged(send, max_in_flight=1)
    first = asyncio.ensure_future(merged(1))
    await settle()
    quitter, stayer = asyncio.ensure_future(merged(2)), asyncio.ensure_future(merged(3))
    await settle()
    quitter.cancel()
    send.gate.set()
    assert await first == 2
    assert await stayer == 6
    assert send.sends == [[1], [3]]  # a call cancelled before its send is not sent
    assert quitter.cancelled()


async def test_a_send_runs_in_the_context_of_the_first_call_it_carries() -> None:
    """A group is sent from the task of the send before it; it must run in its own first
    caller's context (its trace), not in the one of the call that started that earlier send."""
    caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")
    seen: list[tuple[list[int], str]] = []
    gate = asyncio.Event()

    async def send(items: list[int]) -> list[int | BaseException]:
        seen.append((list(items), caller.get()))
        if len(seen) == 1:
            await gate.wait()
        return [2 * i for i in items]

    merged: Merged[int, int] = Merged(send, max_in_flight=1)

    async def call(item: int, name: str) -> int:
        caller.set(name)
        return await merged(item)

    first = asyncio.ensure_future(call(1, "a"))
    await settle()
    later = [asyncio.ensure_future(call(i, n)) for i, n in ((2, "b"), (3, "c"))]
    await settle()
    gate.set()
    assert await asyncio.gather(first, *later) == [2, 4, 6]
    assert seen == [([1], "a"), ([2, 3], "b")]
