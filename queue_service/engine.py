"""The queue engine: every queue operation over the shards, long polls, and lease recovery.

The engine talks to Redis directly; :mod:`queue_service.server` exposes it over RPC and a
process may also embed it. Any number of engines (replicas) may serve the same shards at once:
every state change is one atomic script, so they never need to coordinate.

Shard choice: a queue records, the first time it is used, the list of shards it spreads over
(the registry, kept on every shard). A message id always maps to the same shard of that list
(CRC-32), so by-id operations are one round trip. Shards added to the configuration later are
used by queues created later; existing queues keep their shards and their messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from redis.asyncio.client import PubSub

from podium.aio import OwnedTasks
from podium.errors import InvalidArgument, PodiumError, Unavailable
from podium.queue_client import MessageInfo, RawMessage
from queue_service.coalesce import Coalescer, split_flags, split_pop
from queue_service.limits import (
    QueueLimits,
    check_id,
    check_ids,
    check_int,
    check_queue_name,
)
from queue_service.shards import NOTIFY_CHANNEL, REGISTRY_KEY, Shard, ShardSpec, shard_index

log = logging.getLogger("podium.queue")

#: How many expired leases / due delayed messages one script call moves at most.
SCAN_LIMIT = 1000
#: How long a shard found empty is skipped by pops, at most (unless a push wakes the queue).
EMPTY_HINT_MS = 1000


def now_ms() -> int:
    return int(time.time() * 1000)


class QueueEngine:
    """Operations on named delay queues spread over Redis shards."""

    def __init__(
        self,
        shards: Sequence[ShardSpec],
        *,
        limits: QueueLimits | None = None,
        requeue_interval_s: float = 0.25,
        notify: bool = True,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if not shards:
            raise InvalidArgument("at least one shard is needed")
        self.limits = limits or QueueLimits()
        self._clock = clock  # milliseconds; injectable so tests can move time
        self.shards = [Shard(s) for s in shards]
        self._merge = {s.name: Coalescer(s, self.limits.max_batch) for s in self.shards}
        self._by_name = {s.name: s for s in self.shards}
        self._queue_shards: dict[str, list[Shard]] = {}
        # queue -> the events of its waiting pops -> whether that pop is asleep (not popping)
        self._waiters: dict[str, dict[asyncio.Event, bool]] = defaultdict(dict)
        # queue -> shard -> (hint valid until ms, shard's next due ms): shards that a pop found
        # empty. A push to a shard, on any replica, clears that shard's hint (through _wake).
        self._empty: dict[str, dict[str, tuple[int, int]]] = {}
        self._generation: dict[str, int] = {}  # bumped by every wake-up of a queue
        self._requeue_interval_s = requeue_interval_s
        self._notify = notify
        self._channel = NOTIFY_CHANNEL if notify else ""
        # Notifications say which replica sent them ("{replica}:{queue}"): a replica has
        # already woken its own pops for what it pushed, and ignores its own notifications.
        self.replica_id = uuid.uuid4().hex[:12]
        self._tasks = OwnedTasks("queue", log)
        self._rr = 0
        self._stopping = False
        self.requeued = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def check_shards(self) -> dict[str, str | None]:
        """Ping every shard: name -> None if it answered, else the error.

        Raises Unavailable if none answers: a replica that can reach no shard cannot serve.
        """
        out: dict[str, str | None] = {}
        for shard in self.shards:
            try:
                await shard.pipeline(lambda p: p.ping())
                out[shard.name] = None
            except PodiumError as exc:
                out[shard.name] = exc.message
        if all(v is not None for v in out.values()):
            raise Unavailable(
                "no queue shard is reachable: " + "; ".join(f"{v}" for v in out.values())
            )
        return out

    async def start(self) -> QueueEngine:
        """Start the background loops (lease recovery; notifications from other replicas)."""
        self._spawn(self._requeue_loop(), "requeue")
        if self._notify:
            for shard in self.shards:
                self._spawn(self._listen(shard), f"notify-{shard.name}")
        return self

    @property
    def stopping(self) -> bool:
        return self._stopping

    def loops_failing(self) -> str | None:
        """For /ready: None while the background loops run, else which one stopped."""
        if self._stopping:
            return "stopping"
        expected = 1 + (len(self.shards) if self._notify else 0)
        if len(self._tasks) < expected:
            return f"{expected - len(self._tasks)} background loop(s) stopped"
        return None

    def begin_shutdown(self) -> None:
        """Make every long poll return now (empty if nothing is due) and refuse to wait again."""
        self._stopping = True
        for events in self._waiters.values():
            for ev in events:
                ev.set()

    async def stop(self) -> None:
        """Wake every long poll, stop the loops, close connections. Idempotent."""
        self.begin_shutdown()
        await self._tasks.cancel_all()
        for shard in self.shards:
            with contextlib.suppress(Exception):
                await shard.close()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.spawn(coro, f"queue-{name}")

    # -- registry -----------------------------------------------------------------------------

    async def shards_of(self, queue: str) -> list[Shard]:
        """The shards a queue spreads over, recorded on first use and cached."""
        known = self._queue_shards.get(queue)
        if known is not None:
            return known
        check_queue_name(queue, self.limits)
        names = await self._registered(queue)
        if names is None:
            proposal = ",".join(s.name for s in self.shards)
            for shard in self.shards:
                with contextlib.suppress(Unavailable):
                    await shard.pipeline(lambda p: p.hsetnx(REGISTRY_KEY, queue, proposal))
            names = await self._registered(queue) or proposal.split(",")
        missing = [n for n in names if n not in self._by_name]
        if missing:
            raise Unavailable(
                f"queue {queue!r} lives on shards {missing} that this replica is not configured "
                "with; add them to PODIUM_QUEUE_SHARDS",
                queue=queue,
            )
        shards = [self._by_name[n] for n in names]
        self._queue_shards[queue] = shards
        return shards

    async def _registered(self, queue: str) -> list[str] | None:
        errors = 0
        for shard in self.shards:
            try:
                (raw,) = await shard.pipeline(lambda p: p.hget(REGISTRY_KEY, queue))
            except Unavailable:
                errors += 1
                continue
            if raw is not None:
                return str(raw.decode()).split(",")
        if errors == len(self.shards):
            raise Unavailable("no queue shard is reachable", queue=queue)
        return None

    async def list_queues(self) -> list[str]:
        names: set[str] = set()
        for shard in self.shards:
            with contextlib.suppress(Unavailable):
                (found,) = await shard.pipeline(lambda p: p.hkeys(REGISTRY_KEY))
                names.update(n.decode() for n in found)
        return sorted(names)

    async def _shard_for(self, queue: str, msg_id: str) -> Shard:
        shards = await self.shards_of(queue)
        return shards[shard_index(msg_id, len(shards))]

    # -- writes -------------------------------------------------------------------------------

    async def push(
        self, queue: str, messages: Sequence[RawMessage], *, if_absent: bool = False
    ) -> list[bool]:
        """Add messages; returns, per message, whether its id was new.

        An id already queued is re-scheduled (unless ``if_absent``); a leased id is left alone.
        """
        if len(messages) > self.limits.max_batch:
            raise InvalidArgument(
                f"at most {self.limits.max_batch} messages per push", field="messages"
            )
        shards = await self.shards_of(queue)
        groups: dict[int, list[int]] = defaultdict(list)
        for pos, m in enumerate(messages):
            groups[shard_index(m.id, len(shards))].append(pos)
        mode = "absent" if if_absent else "push"
        now = self._clock()

        async def one(idx: int, positions: list[int]) -> tuple[list[int], list[int]]:
            shard = shards[idx]
            tail: list[Any] = []
            for pos in positions:
                m = messages[pos]
                tail += [m.id, m.delay_ms, m.priority, m.body]
            head = [now, mode, self._channel, self._note(queue)]
            flags = await self._merge[shard.name].call(
                ("push", queue, mode),
                "push",
                shard.keys(queue).all,
                head,
                tail,
                len(positions),
                split_flags,
            )
            return positions, flags

        out = [False] * len(messages)
        for positions, flags in await _gather(one(i, p) for i, p in groups.items()):
            for pos, flag in zip(positions, flags, strict=True):
                out[pos] = flag == 1
        self._wake(queue, [shards[i].name for i in groups], len(messages))
        return out

    async def ack(self, queue: str, ids: Sequence[str]) -> list[bool]:
        """Finish leased messages; per id, whether it was leased (and is now gone)."""
        return await self._by_id(
            queue, check_ids(list(ids), self.limits), "ack", leased_bodies=True
        )

    async def remove(self, queue: str, ids: Sequence[str]) -> list[bool]:
        """Delete messages wherever they are; per id, whether it existed."""
        return await self._by_id(queue, check_ids(list(ids), self.limits), "remove")

    async def _by_id(
        self, queue: str, ids: list[str], script: str, leased_bodies: bool = False
    ) -> list[bool]:
        shards = await self.shards_of(queue)
        groups: dict[int, list[int]] = defaultdict(list)
        for pos, msg_id in enumerate(ids):
            groups[shard_index(msg_id, len(shards))].append(pos)

        async def one(idx: int, positions: list[int]) -> tuple[list[int], list[int]]:
            shard = shards[idx]
            k = shard.keys(queue)
            keys = [k.leased, k.bodies] if leased_bodies else k.all
            flags = await self._merge[shard.name].call(
                (script, queue),
                script,
                keys,
                [],
                [ids[p] for p in positions],
                len(positions),
                split_flags,
            )
            return positions, flags

        out = [False] * len(ids)
        for positions, flags in await _gather(one(i, p) for i, p in groups.items()):
            for pos, flag in zip(positions, flags, strict=True):
                out[pos] = flag == 1
        return out

    async def set_unack_timeout(self, queue: str, msg_id: str, lease_ms: int) -> bool:
        """Set a leased message's lease to ``lease_ms`` from now; 0 makes it visible at once."""
        check_id(msg_id, self.limits)
        check_int(lease_ms, "lease_ms", 0, self.limits.max_lease_ms)
        shard = await self._shard_for(queue, msg_id)
        k = shard.keys(queue)
        args = [self._clock(), msg_id, lease_ms, self._channel, self._note(queue)]
        found = bool(await shard.run("unack", [k.ready, k.leased], args) == 1)
        if found:
            # Visible now, or the lease may now end before the hint's due time.
            self._wake(queue, [shard.name])
        return found

    async def postpone(self, queue: str, msg_id: str, delay_ms: int, priority: int) -> bool:
        """Re-schedule a queued or leased message; False if it does not exist."""
        check_id(msg_id, self.limits)
        check_int(delay_ms, "delay_ms", 0, self.limits.max_delay_ms)
        check_int(priority, "priority", 0, 99)
        shard = await self._shard_for(queue, msg_id)
        args = [self._clock(), msg_id, delay_ms, priority, self._channel, self._note(queue)]
        found = bool(await shard.run("postpone", shard.keys(queue).all, args) == 1)
        if found:
            self._wake(queue, [shard.name])
        return found

    async def schedule(
        self, queue: str, msg_id: str, delay_ms: int, fence: int, priority: int = 0
    ) -> bool:
        """Make ``msg_id`` due in ``delay_ms``, whether it is absent, queued or leased.

        ``fence`` orders schedules that race: one with a lower fence than the stored one is
        ignored (returns False). The decider uses it for its per-workflow timer, with the
        workflow's version as the fence.
        """
        check_id(msg_id, self.limits)
        check_int(delay_ms, "delay_ms", 0, self.limits.max_delay_ms)
        check_int(priority, "priority", 0, 99)
        check_int(fence, "fence", 0, 2**53)
        shard = await self._shard_for(queue, msg_id)
        (flag,) = await self._merge[shard.name].call(
            ("schedule", queue),
            "schedule",
            shard.keys(queue).all,
            [self._clock(), self._channel, self._note(queue)],
            [msg_id, delay_ms, priority, fence],
            1,
            split_flags,
        )
        applied = bool(flag == 1)
        if applied:
            self._wake(queue, [shard.name])
        return applied

    async def flush(self, queue: str) -> None:
        for shard in await self.shards_of(queue):
            await shard.pipeline(lambda p, s=shard: p.delete(*s.keys(queue).all))

    # -- reads --------------------------------------------------------------------------------

    async def contains(self, queue: str, msg_id: str) -> bool:
        """Whether the id is queued (ready or delayed) or leased."""
        check_id(msg_id, self.limits)
        shard = await self._shard_for(queue, msg_id)
        (found,) = await shard.pipeline(lambda p: p.hexists(shard.keys(queue).bodies, msg_id))
        return bool(found)

    async def get(self, queue: str, msg_id: str) -> MessageInfo | None:
        check_id(msg_id, self.limits)
        shard = await self._shard_for(queue, msg_id)
        found = await shard.run("get", shard.keys(queue).all, [msg_id])
        if not found:
            return None
        state, priority, time_ms, body = found
        return MessageInfo(msg_id, state.decode(), int(priority), int(time_ms), body)

    async def details(self, queue: str) -> dict[str, dict[str, int]]:
        """Per shard: ready, delayed and leased counts."""
        shards = await self.shards_of(queue)

        async def one(shard: Shard) -> tuple[str, dict[str, int]]:
            k = shard.keys(queue)
            r, d, le = await shard.pipeline(
                lambda p: (p.zcard(k.ready), p.zcard(k.delayed), p.zcard(k.leased))
            )
            return shard.name, {"ready": int(r), "delayed": int(d), "leased": int(le)}

        return dict(await _gather(one(s) for s in shards))

    async def size(self, queue: str) -> int:
        """Messages waiting (ready or delayed); leased messages are not counted."""
        return sum(d["ready"] + d["delayed"] for d in (await self.details(queue)).values())

    # -- pop and long poll --------------------------------------------------------------------

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
        waiters = self._waiters[queue]
        waiters[event] = False
        try:
            while True:
                event.clear()
                got, next_due = await self._pop_once(queue, count, lease_ms)
                remaining = deadline - loop.time()
                if got or remaining <= 0 or self._stopping:
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
                self._waiters.pop(queue, None)

    async def _pop_once(
        self, queue: str, count: int, lease_ms: int
    ) -> tuple[list[tuple[str, bytes, int]], int]:
        shards = await self.shards_of(queue)
        n = len(shards)
        start = self._rr % n
        self._rr += 1
        got: list[tuple[str, bytes, int]] = []
        next_due = -1
        failures: list[Unavailable] = []
        hints = self._empty.get(queue) if self._notify else None
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
                self._notify
                and len(flat) // 3 < want
                and self._generation.get(queue, 0) == generation
            ):
                until = now + EMPTY_HINT_MS if due < 0 else min(int(due), now + EMPTY_HINT_MS)
                self._empty.setdefault(queue, {})[shard.name] = (until, int(due))
            if len(got) >= count:
                break
        if failures and len(failures) == n:
            raise failures[0]
        return got, next_due

    def _note(self, queue: str) -> str:
        """The notification a shard publishes for ``queue`` (see ``_listen``)."""
        return f"{self.replica_id}:{queue}"

    def _wake(self, queue: str, shards: Iterable[str], count: int | None = None) -> None:
        """Something may be due in ``queue`` on these shards: forget that they were empty, and
        wake the queue's long polls: at most ``count`` sleeping ones when that many messages
        arrived (not every poll for each message), and any that is popping right now (it
        looks again before it sleeps)."""
        hints = self._empty.get(queue)
        if hints:
            for name in shards:
                hints.pop(name, None)
        self._generation[queue] = self._generation.get(queue, 0) + 1
        waiters = self._waiters.get(queue)
        if not waiters:
            return
        budget = len(waiters) if count is None else count
        for ev, asleep in waiters.items():
            if not asleep:
                ev.set()
            elif budget > 0 and not ev.is_set():
                ev.set()
                budget -= 1

    async def _listen(self, shard: Shard) -> None:
        """Wake local long polls when another replica pushes (Redis pub/sub per shard)."""
        while not self._stopping:
            pubsub: PubSub = shard.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(NOTIFY_CHANNEL)
                self._empty.clear()  # notifications may have been missed while disconnected
                while not self._stopping:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        sender, queue = _sender(msg["data"].decode())
                        if sender != self.replica_id:
                            self._wake(queue, [shard.name])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("notifications from shard %s interrupted: %s", shard.name, exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    # -- lease recovery ------------------------------------------------------------------------

    async def requeue_expired(self) -> int:
        """Return every expired lease of every known queue to ready; returns how many moved."""
        moved = 0
        for queue in await self.list_queues():
            try:
                shards = await self.shards_of(queue)
            except PodiumError:
                continue
            for shard in shards:
                k = shard.keys(queue)
                try:
                    while True:
                        n = await shard.run(
                            "requeue",
                            [k.ready, k.leased],
                            [self._clock(), SCAN_LIMIT, self._channel, self._note(queue)],
                        )
                        moved += int(n)
                        if n > 0:
                            self._wake(queue, [shard.name])
                        if n < SCAN_LIMIT:
                            break
                except Unavailable:
                    continue
        self.requeued += moved
        return moved

    async def _requeue_loop(self) -> None:
        # A drift-free schedule: ticks at fixed times, a slow pass skips ticks, never piles up.
        loop = asyncio.get_running_loop()
        interval = self._requeue_interval_s
        next_tick = loop.time()
        while not self._stopping:
            try:
                await self.requeue_expired()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lease recovery pass failed; retrying next tick")
            next_tick += interval
            now = loop.time()
            if next_tick < now:
                next_tick = now + interval
            await asyncio.sleep(next_tick - now)


async def _gather(coros: Any) -> list[Any]:
    items = list(coros)
    if len(items) == 1:  # the common case: no tasks to create
        return [await items[0]]
    return list(await asyncio.gather(*items))


def _sender(note: str) -> tuple[str, str]:
    """(replica id, queue) of a notification; ("", queue) for a bare queue name."""
    sender, sep, queue = note.partition(":")
    if sep and len(sender) == 12 and all(c in "0123456789abcdef" for c in sender):
        return sender, queue
    return "", note
