"""Merging concurrent script calls into one, per shard and event-loop tick.

A busy replica receives many small calls at once (one push, one pop, one ack per worker).
Each Redis round trip costs far more Python time than the script's work on one message, so
calls of the same script for the same queue that arrive in the same tick are merged into one
multi-message call, and the results are handed back to each caller. Nothing waits for a timer:
a batch is sent at the end of the tick in which its first call arrived.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from podium.aio import OwnedTasks
from queue_service.shards import Shard

#: Splits a merged result into per-caller results: (result, sizes) -> one result per caller.
Splitter = Callable[[Any, list[int]], list[Any]]

log = logging.getLogger("podium.queue")


#: The arguments before the merged items: a fixed list, or built from the merged item count.
Head = list[Any] | Callable[[int], list[Any]]


@dataclass
class _Pending:
    script: str
    keys: list[str]
    head: Head
    splitter: Splitter
    tail: list[Any] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)


class Coalescer:
    """Per-shard merging of same-script, same-queue calls issued in one tick."""

    def __init__(self, shard: Shard, max_items: int) -> None:
        self.shard = shard
        self.max_items = max_items
        self._pending: dict[Hashable, _Pending] = {}
        self._tasks = OwnedTasks("queue-coalesce", log)
        self.calls = 0
        self.merged = 0

    def call(
        self,
        key: Hashable,
        script: str,
        keys: list[str],
        head: Head,
        tail: list[Any],
        size: int,
        splitter: Splitter,
    ) -> asyncio.Future[Any]:
        """Queue ``tail`` (``size`` items) behind the shared ``head`` args of a merged call.

        ``key`` must identify everything in ``keys`` and ``head``; calls with the same key in
        the same tick are merged (up to ``max_items`` items per script call). A callable
        ``head`` is given the merged item count when the call is sent.
        """
        self.calls += 1
        pending = self._pending.get(key)
        if pending is not None and sum(pending.sizes) + size > self.max_items:
            self._flush(key)
            pending = None
        if pending is None:
            pending = self._pending[key] = _Pending(script, keys, head, splitter)
            asyncio.get_running_loop().call_soon(self._flush, key)
        else:
            self.merged += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending.tail.extend(tail)
        pending.sizes.append(size)
        pending.futures.append(fut)
        return fut

    def _flush(self, key: Hashable) -> None:
        pending = self._pending.pop(key, None)
        if pending is None:
            return
        self._tasks.spawn(self._run(pending), "coalesced-script")

    async def _run(self, pending: _Pending) -> None:
        head = pending.head(sum(pending.sizes)) if callable(pending.head) else pending.head
        try:
            result = await self.shard.run(pending.script, pending.keys, head + pending.tail)
        except BaseException as exc:
            for fut in pending.futures:
                if not fut.done():
                    fut.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        parts = pending.splitter(result, pending.sizes)
        for fut, part in zip(pending.futures, parts, strict=True):
            if not fut.done():
                fut.set_result(part)


def split_flags(result: Any, sizes: list[int]) -> list[Any]:
    """One flag per item: hand each caller its slice."""
    out, pos = [], 0
    for n in sizes:
        out.append(result[pos : pos + n])
        pos += n
    return out


def split_flags_woke(result: Any, sizes: list[int]) -> list[Any]:
    """One flag per item, then whether the script woke the queue's waiting pops: each caller
    gets (its slice, woke); a merged call woke for all of them or for none."""
    woke = bool(result[-1])
    return [(flags, woke) for flags in split_flags(result[:-1], sizes)]


def split_pop(result: Any, sizes: list[int]) -> list[Any]:
    """A merged pop: callers take the leased messages in arrival order, up to their counts.

    Every caller gets the shard's next-due time, so an empty-handed one knows when to retry.
    """
    next_due, flat = result
    out, pos = [], 0
    for n in sizes:
        out.append((next_due, flat[pos : pos + 3 * n]))
        pos += 3 * n
    return out
