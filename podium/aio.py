"""Event-loop helpers."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from podium.errors import DeadlineExceeded, Unavailable

T = TypeVar("T")
log = logging.getLogger("podium")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(main)
    return uvloop.run(main)


class OwnedTasks:
    """Background tasks kept in a set, so none is lost, and none fails in silence.

    A task that ends with an exception (other than its cancellation) is logged with its name and
    traceback on ``log``; :meth:`cancel_all` cancels what is left and waits for it.
    """

    def __init__(self, owner: str, log: logging.Logger | None = None) -> None:
        self._owner = owner
        self._log = log or logging.getLogger(f"podium.{owner}")
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        name: str,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        """Run ``coro`` in a task (in ``context``, or a copy of the current one)."""
        task = asyncio.get_running_loop().create_task(coro, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._log.error("%s: task %r failed", self._owner, task.get_name(), exc_info=exc)

    async def drain(self, grace_s: float) -> None:
        """Let the tasks finish for ``grace_s`` (those they start meanwhile too), then cancel
        what is left and wait for it."""
        deadline = asyncio.get_running_loop().time() + grace_s
        while self._tasks:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            await asyncio.wait(list(self._tasks), timeout=left)
        await self.cancel_all()

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def retrying(call: Callable[[], Awaitable[Any]], attempts: int = 4) -> Any:
    """Run an idempotent call, again after a short pause if a replica was unavailable."""
    for attempt in range(attempts):
        try:
            return await call()
        except (Unavailable, DeadlineExceeded):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 * 2**attempt)
    return None


class Refreshed(Generic[T]):
    """A value read by ``load`` and kept for ``ttl_s``; once older, it is read again in the
    background while callers go on getting the value they had.

    Only the first read, and the first after :meth:`invalidate`, is waited for. Metadata that
    every decision consults (the registered TaskDefs) so never holds decisions up behind a
    slow read: a scan of a Cassandra table waits out its timeout (10 s) when a replica has just
    died and is not yet known to be down, where a single-partition read retries elsewhere.
    A background read that fails keeps the old value and is tried again on the next call.
    """

    def __init__(self, load: Callable[[], Awaitable[T]], ttl_s: float, what: str) -> None:
        self._load = load
        self._ttl_s = ttl_s
        self._what = what
        self._value: T | None = None
        self._loaded_at = -1e9
        self._valid = False  # a value is held and no invalidate() came since
        self._refresh: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> T:
        loop = asyncio.get_running_loop()
        if self._valid and self._value is not None:
            if loop.time() - self._loaded_at >= self._ttl_s and self._refresh is None:
                self._refresh = asyncio.ensure_future(self._in_background())
            return self._value
        async with self._lock:
            if not self._valid or self._value is None:
                await self._read()
        assert self._value is not None
        return self._value

    def invalidate(self) -> None:
        """The next call waits for a fresh read."""
        self._valid = False

    async def _read(self) -> None:
        started = asyncio.get_running_loop().time()
        value = await self._load()
        self._value, self._loaded_at, self._valid = value, started, True

    async def _in_background(self) -> None:
        try:
            async with self._lock:
                await self._read()
        except Exception as exc:
            log.warning("refreshing %s failed, keeping what was read before: %s", self._what, exc)
            self._loaded_at = asyncio.get_running_loop().time()  # not again at once
        finally:
            self._refresh = None


Item = TypeVar("Item")


#: Sends a busy client keeps under way at once (the queue client's batches, the Redis store's
#: commits). Eight against two: at 150 seq3 workflows/s a lower p99 (scheduled→polled 12-14
#: against 16 ms) and 3-4 % less CPU per workflow in four alternated pairs; at saturation no
#: difference beyond the noise (benchmarks/README.md, 2026-12-05). An idle client sends each
#: call at once either way.
MERGED_IN_FLIGHT = 8


_Call = tuple[Item, "asyncio.Future[T]", contextvars.Context]


class Merged(Generic[Item, T]):
    """Calls that arrive while earlier ones are on their way go out together.

    ``send(items)`` makes one round trip for several items and returns one result per item
    (a value, or the exception that item alone raises). A call is sent at once when fewer
    than ``max_in_flight`` sends are under way; otherwise it waits and leaves with every call
    that waited beside it (up to ``max_items``) when one returns. An idle service so pays no
    delay, and a busy one makes one round trip (one write, one read, one reply to parse) for
    many calls. A send runs in a task of its own: a caller that gives up does not take the
    others' calls with it. It runs in the context of the first call it carries (the trace
    that call belongs to), not in that of whatever made an earlier send.
    """

    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[list[T | BaseException]]],
        *,
        max_in_flight: int = 1,
        max_items: int = 256,
        name: str = "merged",
    ) -> None:
        if max_in_flight < 1 or max_items < 1:
            raise ValueError("max_in_flight and max_items must be 1 or more")
        self._send = send
        self.max_in_flight = max_in_flight
        self.max_items = max_items
        #: calls not sent yet: (item, its caller's future, its caller's context)
        self._waiting: list[_Call[Item, T]] = []
        self._in_flight = 0
        self._tasks = OwnedTasks(name, log)
        #: calls made, and sends made for them
        self.calls = 0
        self.sends = 0

    async def __call__(self, item: Item) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, fut, contextvars.copy_context()))
        self.calls += 1
        if self._in_flight < self.max_in_flight:
            self._next()
        return await fut

    def _next(self) -> None:
        group, self._waiting = (
            self._waiting[: self.max_items],
            self._waiting[self.max_items :],
        )
        group = [call for call in group if not call[1].cancelled()]
        if not group:
            return
        self._in_flight += 1
        self.sends += 1
        self._tasks.spawn(self._run(group), "send", context=group[0][2])

    async def _run(self, group: list[_Call[Item, T]]) -> None:
        try:
            results = await self._send([item for item, _, _ in group])
        except asyncio.CancelledError:
            for _, fut, _ in group:
                fut.cancel()
            raise
        except Exception as exc:  # the round trip itself failed: every call with it
            for _, fut, _ in group:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            for (_, fut, _), result in zip(group, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        finally:
            self._in_flight -= 1
            while self._waiting and self._in_flight < self.max_in_flight:
                self._next()

    @property
    def idle(self) -> bool:
        """No call waits and no send is under way."""
        return not self._waiting and not self._in_flight

    async def close(self) -> None:
        await self._tasks.cancel_all()
