"""The queue engine: every queue operation over the shards.

The engine talks to Redis directly; :mod:`queue_service.server` exposes it over RPC and a
process may also embed it. Any number of engines (replicas) may serve the same shards at once:
every state change is one atomic script, so they never need to coordinate.

Shard choice is :mod:`queue_service.registry`, long polls :mod:`queue_service.long_poll`,
the return of expired leases :mod:`queue_service.lease_recovery`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from podium.aio import OwnedTasks
from podium.errors import InvalidArgument, PodiumError, Unavailable
from podium.queue_client import MessageInfo, RawMessage
from queue_service.coalesce import Coalescer, split_flags, split_flags_woke
from queue_service.lease_recovery import LeaseRecovery
from queue_service.limits import (
    QueueLimits,
    check_id,
    check_ids,
    check_int,
)
from queue_service.long_poll import LongPolls
from queue_service.registry import ShardRegistry
from queue_service.shards import Shard, ShardSpec, shard_index

log = logging.getLogger("podium.queue")


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
        self.registry = ShardRegistry(self.shards, self.limits)
        self.polls = LongPolls(self.shards_of, self._merge, self.limits, clock, notify=notify)
        self.recovery = LeaseRecovery(self.registry, self.polls, clock, requeue_interval_s)
        self._notify = notify
        self._tasks = OwnedTasks("queue", log)

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
        self._spawn(self.recovery.run(), "requeue")
        if self._notify:
            for shard in self.shards:
                self._spawn(self.polls.listen(shard), f"notify-{shard.name}")
        return self

    @property
    def stopping(self) -> bool:
        return self.polls.stopping

    def loops_failing(self) -> str | None:
        """For /ready: None while the background loops run, else which one stopped."""
        if self.stopping:
            return "stopping"
        expected = 1 + (len(self.shards) if self._notify else 0)
        if len(self._tasks) < expected:
            return f"{expected - len(self._tasks)} background loop(s) stopped"
        return None

    def begin_shutdown(self) -> None:
        """Make every long poll return now (empty if nothing is due) and refuse to wait again."""
        self.polls.stop_waiting()
        self.recovery.stopping = True

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
        return await self.registry.shards_of(queue)

    async def list_queues(self) -> list[str]:
        return await self.registry.list_queues()

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

        async def one(idx: int, positions: list[int]) -> tuple[int, list[int], list[int], bool]:
            shard = shards[idx]
            tail: list[Any] = []
            for pos in positions:
                m = messages[pos]
                tail += [m.id, m.delay_ms, m.priority, m.body]
            head = [now, mode, self.polls.channel, self.polls.note(queue)]
            flags, woke = await self._merge[shard.name].call(
                ("push", queue, mode),
                "push",
                shard.keys(queue).all,
                head,
                tail,
                len(positions),
                split_flags_woke,
            )
            return idx, positions, flags, woke

        out = [False] * len(messages)
        woken: list[str] = []
        for idx, positions, flags, woke in await _gather(one(i, p) for i, p in groups.items()):
            for pos, flag in zip(positions, flags, strict=True):
                out[pos] = flag == 1
            if woke:
                woken.append(shards[idx].name)
        # Only a message due now, or due before everything delayed so far, changes when a
        # waiting pop must look again (the script says which); others leave the polls asleep.
        if woken:
            self.polls.wake(queue, woken, len(messages))
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
        shard = await self.registry.shard_for(queue, msg_id)
        k = shard.keys(queue)
        args = [self._clock(), msg_id, lease_ms, self.polls.channel, self.polls.note(queue)]
        found = bool(await shard.run("unack", [k.ready, k.leased], args) == 1)
        if found:
            # Visible now, or the lease may now end before the hint's due time.
            self.polls.wake(queue, [shard.name])
        return found

    async def postpone(self, queue: str, msg_id: str, delay_ms: int, priority: int) -> bool:
        """Re-schedule a queued or leased message; False if it does not exist."""
        check_id(msg_id, self.limits)
        check_int(delay_ms, "delay_ms", 0, self.limits.max_delay_ms)
        check_int(priority, "priority", 0, 99)
        shard = await self.registry.shard_for(queue, msg_id)
        args = [
            self._clock(),
            msg_id,
            delay_ms,
            priority,
            self.polls.channel,
            self.polls.note(queue),
        ]
        found = bool(await shard.run("postpone", shard.keys(queue).all, args) == 1)
        if found:
            self.polls.wake(queue, [shard.name])
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
        shard = await self.registry.shard_for(queue, msg_id)
        (flag,), woke = await self._merge[shard.name].call(
            ("schedule", queue),
            "schedule",
            shard.keys(queue).all,
            [self._clock(), self.polls.channel, self.polls.note(queue)],
            [msg_id, delay_ms, priority, fence],
            1,
            split_flags_woke,
        )
        if woke:  # due now, or before every other delayed entry: waiting pops look again
            self.polls.wake(queue, [shard.name])
        return bool(flag == 1)

    async def flush(self, queue: str) -> None:
        for shard in await self.shards_of(queue):
            await shard.pipeline(lambda p, s=shard: p.delete(*s.keys(queue).all))

    # -- reads --------------------------------------------------------------------------------

    async def contains(self, queue: str, msg_id: str) -> bool:
        """Whether the id is queued (ready or delayed) or leased."""
        check_id(msg_id, self.limits)
        shard = await self.registry.shard_for(queue, msg_id)
        (found,) = await shard.pipeline(lambda p: p.hexists(shard.keys(queue).bodies, msg_id))
        return bool(found)

    async def get(self, queue: str, msg_id: str) -> MessageInfo | None:
        check_id(msg_id, self.limits)
        shard = await self.registry.shard_for(queue, msg_id)
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
        """Lease up to ``count`` due messages as (id, body, priority), waiting up to ``wait_ms``
        (see :mod:`queue_service.long_poll`)."""
        return await self.polls.pop(queue, count, lease_ms, wait_ms)

    # -- lease recovery ------------------------------------------------------------------------

    async def requeue_expired(self) -> int:
        """Return every expired lease of every known queue to ready; returns how many moved."""
        return await self.recovery.requeue_expired()

    @property
    def requeued(self) -> int:
        return self.recovery.requeued

    # The waiting pops and the empty-shard hints, by queue (tests look at them).
    @property
    def _waiters(self) -> dict[str, dict[asyncio.Event, bool]]:
        return self.polls.waiters

    @property
    def _empty(self) -> dict[str, dict[str, tuple[int, int]]]:
        return self.polls.empty


async def _gather(coros: Any) -> list[Any]:
    items = list(coros)
    if len(items) == 1:  # the common case: no tasks to create
        return [await items[0]]
    return list(await asyncio.gather(*items))
