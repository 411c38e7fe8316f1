"""Long polls: pops that wait until something is due, woken by pushes on any replica.

A pop that finds nothing sleeps until the earliest delayed message or lease falls due, or until
a push wakes its queue: a push on this replica wakes it directly, one on another replica through
the shard's pub/sub channel. Shards a pop found empty are remembered for a moment (a hint) and
skipped by the next pops, until a push to that shard clears the hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping

from redis.asyncio.client import PubSub

from podium.errors import Unavailable
from queue_service.coalesce import Coalescer, split_pop
from queue_service.limits import QueueLimits, check_int
from queue_service.shards import NOTIFY_CHANNEL, Shard

log = logging.getLogger("podium.queue")

#: How many expired leases / due delayed messages one script call moves at most.
SCAN_LIMIT = 1000
#: How long a shard found empty is skipped by pops, at most (unless a push wakes the queue).
EMPTY_HINT_MS = 1000


class LongPolls:
    """The waiting pops of one replica, the empty-shard hints, and the notifications."""

    def __init__(
        self,
        shards_of: Callable[[str], Awaitable[list[Shard]]],
        merge: Mapping[str, Coalescer],
        limits: QueueLimits,
        clock: Callable[[], int],
        *,
        notify: bool,
    ) -> None:
        self._shards_of = shards_of
        self._merge = merge
        self.limits = limits
        self._clock = clock
        self.notify = notify
        self.channel = NOTIFY_CHANNEL if notify else ""
        # Notifications say which replica sent them ("{replica}:{queue}"): a replica has
        # already woken its own pops for what it pushed, and ignores its own notifications.
        self.replica_id = uuid.uuid4().hex[:12]
        # queue -> the events of its waiting pops -> whether that pop is asleep (not popping)
        self.waiters: dict[str, dict[asyncio.Event, bool]] = defaultdict(dict)
        # queue -> shard -> (hint valid until ms, shard's next due ms): shards that a pop found
        # empty. A push to a shard, on any replica, clears that shard's hint (through wake).
        self.empty: dict[str, dict[str, tuple[int, int]]] = {}
        self._generation: dict[str, int] = {}  # bumped by every wake-up of a queue
        self._rr = 0
        self.stopping = False

    def stop_waiting(self) -> None:
        """Make every long poll return now (empty if nothing is due) and refuse to wait again."""
        self.stopping = True
        for events in self.waiters.values():
            for ev in events:
                ev.set()

    async def pop(
        self, queue: str, count: int, lease_ms: int, wait_ms: int = 0
    ) -> list[tuple[str, bytes, int]]:
        """Lease up to ``count`` due messages as (id, body, priority), waiting up to ``wait_ms``.

        A waiting call is woken by a push (from this or another replica) or when the earliest
        delayed message or lease falls due, whichever comes first.
        """
        check_int(count, "count", 1, self.limits.max_batch)
        check_int(lease_ms, "lease_ms", 1, self.limits.max_lease_ms)
        check_int(wait_ms, "wait_ms", 0, self.limits.max_wait_ms)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_ms / 1000.0
        event = asyncio.Event()
        waiters = self.waiters[queue]
        waiters[event] = False
        try:
            while True:
                event.clear()
                got, next_due = await self._pop_once(queue, count, lease_ms)
                remaining = deadline - loop.time()
                if got or remaining <= 0 or self.stopping:
                    return got
                sleep_s = remaining
                if next_due >= 0:
                    sleep_s = min(sleep_s, max(0.0, (next_due - self._clock()) / 1000.0) + 0.001)
                # A safety net in case a notification is lost while a shard reconnects.
                sleep_s = min(sleep_s, 1.0)
                waiters[event] = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), sleep_s)
                waiters[event] = False
        finally:
            waiters.pop(event, None)
            if not waiters:
                self.waiters.pop(queue, None)

    async def _pop_once(
        self, queue: str, count: int, lease_ms: int
    ) -> tuple[list[tuple[str, bytes, int]], int]:
        shards = await self._shards_of(queue)
        n = len(shards)
        start = self._rr % n
        self._rr += 1
        got: list[tuple[str, bytes, int]] = []
        next_due = -1
        failures: list[Unavailable] = []
        hints = self.empty.get(queue) if self.notify else None
        generation = self._generation.get(queue, 0)
        now = self._clock()
        for i in range(n):
            shard = shards[(start + i) % n]
            hint = hints.get(shard.name) if hints else None
            if hint is not None and now < hint[0]:
                # Known empty since its last pop and nothing pushed since: skip the round trip.
                if hint[1] >= 0 and (next_due < 0 or hint[1] < next_due):
                    next_due = hint[1]
                continue
            want = count - len(got)
            try:
                due, flat = await self._merge[shard.name].call(
                    ("pop", queue, lease_ms),
                    "pop",
                    shard.keys(queue).all,
                    lambda total: [self._clock(), total, lease_ms, SCAN_LIMIT],
                    [],
                    want,
                    split_pop,
                )
            except Unavailable as exc:
                # Other shards keep serving; the failure surfaces only if every shard failed.
                failures.append(exc)
                continue
            for j in range(0, len(flat), 3):
                got.append((flat[j].decode(), flat[j + 1], int(flat[j + 2])))
            if due >= 0 and (next_due < 0 or due < next_due):
                next_due = int(due)
            # A hint is only kept if no push woke the queue while this pop was in flight.
            if (
                self.notify
                and len(flat) // 3 < want
                and self._generation.get(queue, 0) == generation
            ):
                until = now + EMPTY_HINT_MS if due < 0 else min(int(due), now + EMPTY_HINT_MS)
                self.empty.setdefault(queue, {})[shard.name] = (until, int(due))
            if len(got) >= count:
                break
        if failures and len(failures) == n:
            raise failures[0]
        return got, next_due

    def note(self, queue: str) -> str:
        """The notification a shard publishes for ``queue`` (see :meth:`listen`)."""
        return f"{self.replica_id}:{queue}"

    def wake(self, queue: str, shards: Iterable[str], count: int | None = None) -> None:
        """Something may be due in ``queue`` on these shards: forget that they were empty, and
        wake the queue's long polls: at most ``count`` sleeping ones when that many messages
        arrived (not every poll for each message), and any that is popping right now (it
        looks again before it sleeps)."""
        hints = self.empty.get(queue)
        if hints:
            for name in shards:
                hints.pop(name, None)
        self._generation[queue] = self._generation.get(queue, 0) + 1
        waiters = self.waiters.get(queue)
        if not waiters:
            return
        budget = len(waiters) if count is None else count
        for ev, asleep in waiters.items():
            if not asleep:
                ev.set()
            elif budget > 0 and not ev.is_set():
                ev.set()
                budget -= 1

    async def listen(self, shard: Shard) -> None:
        """Wake local long polls when another replica pushes (Redis pub/sub per shard)."""
        while not self.stopping:
            pubsub: PubSub = shard.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(NOTIFY_CHANNEL)
                self.empty.clear()  # notifications may have been missed while disconnected
                while not self.stopping:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        sender, queue = _sender(msg["data"].decode())
                        if sender != self.replica_id:
                            self.wake(queue, [shard.name])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("notifications from shard %s interrupted: %s", shard.name, exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


def _sender(note: str) -> tuple[str, str]:
    """(replica id, queue) of a notification; ("", queue) for a bare queue name."""
    sender, sep, queue = note.partition(":")
    if sep and len(sender) == 12 and all(c in "0123456789abcdef" for c in sender):
        return sender, queue
    return "", note
