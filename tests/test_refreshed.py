"""podium.aio.Refreshed: metadata read again in the background, never waited for twice."""

from __future__ import annotations

import asyncio

import pytest

from podium.aio import Refreshed
from podium.errors import Unavailable


class Source:
    """A load that returns 1, 2, 3, ... and that a test can hold up or make fail."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def load(self) -> int:
        await self.gate.wait()
        if self.fail:
            raise Unavailable("the store is down")
        self.reads += 1
        return self.reads


async def settle(value: Refreshed[int]) -> None:
    """Let a background read started by the last get() run to its end."""
    task = value._refresh
    if task is not None:
        await task


async def test_only_the_first_read_is_waited_for() -> None:
    source = Source()
    value = Refreshed(source.load, ttl_s=0.0, what="numbers")
    assert await value.get() == 1

    source.gate.clear()  # the next read hangs, as a scan waiting on a dead replica does
    assert await value.get() == 1  # stale, answered at once; a read started behind it
    assert await value.get() == 1  # one read at a time
    assert source.reads == 1
    source.gate.set()
    await settle(value)
    assert await value.get() == 2


async def test_a_failed_background_read_keeps_the_value() -> None:
    source = Source()
    value = Refreshed(source.load, ttl_s=0.0, what="numbers")
    assert await value.get() == 1
    source.fail = True
    assert await value.get() == 1
    await settle(value)
    assert await value.get() == 1
    await settle(value)
    source.fail = False
    assert await value.get() == 1
    await settle(value)
    assert await value.get() == 2


async def test_fresh_values_are_not_read_again() -> None:
    source = Source()
    value = Refreshed(source.load, ttl_s=3600.0, what="numbers")
    assert [await value.get() for _ in range(5)] == [1] * 5
    assert value._refresh is None and source.reads == 1


async def test_after_invalidate_the_next_read_is_waited_for() -> None:
    source = Source()
    value = Refreshed(source.load, ttl_s=3600.0, what="numbers")
    assert await value.get() == 1
    value.invalidate()
    assert await value.get() == 2


async def test_a_first_read_that_fails_raises() -> None:
    source = Source()
    source.fail = True
    value = Refreshed(source.load, ttl_s=0.0, what="numbers")
    with pytest.raises(Unavailable):
        await value.get()
    source.fail = False
    assert await value.get() == 1
