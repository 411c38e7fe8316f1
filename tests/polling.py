"""Waiting for a state in tests: read it again and again until it holds, with a deadline.

Never sleep for a fixed time instead: a state reached early passes at once, and one never
reached fails at the deadline with what was awaited and the last value read.

``eventually(read, ...)`` returns the first truthy value of ``read()``;
``eventually(read, until=check, ...)`` the first value other than None for which ``check``
holds. A ``read`` or ``check`` that raises ends the wait at once (a test may fail early on a
state that can no longer change). ``eventually_sync`` is the same for blocking reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


def _timed_out(what: str, timeout_s: float, last: object) -> AssertionError:
    return AssertionError(f"{what}: not within {timeout_s}s (last: {last!r})")


@overload
async def eventually(
    read: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.02,
) -> T: ...


@overload
async def eventually(
    read: Callable[[], Awaitable[T | None]],
    *,
    until: Callable[[T], bool],
    timeout_s: float,
    what: str,
    interval_s: float = 0.02,
) -> T: ...


async def eventually(
    read: Callable[[], Awaitable[T | None]],
    *,
    until: Callable[[T], bool] | None = None,
    timeout_s: float,
    what: str,
    interval_s: float = 0.02,
) -> T:
    """Await ``read()`` until its value is truthy (or satisfies ``until``) and return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await read()
        if value is not None and (until(value) if until is not None else value):
            return value
        if loop.time() > deadline:
            raise _timed_out(what, timeout_s, value)
        await asyncio.sleep(interval_s)


@overload
def eventually_sync(
    read: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> T: ...


@overload
def eventually_sync(
    read: Callable[[], T | None],
    *,
    until: Callable[[T], bool],
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> T: ...


def eventually_sync(
    read: Callable[[], T | None],
    *,
    until: Callable[[T], bool] | None = None,
    timeout_s: float,
    what: str,
    interval_s: float = 0.05,
) -> T:
    """``eventually`` for blocking reads (tests outside the event loop)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if value is not None and (until(value) if until is not None else value):
            return value
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout_s, value)
        time.sleep(interval_s)
