"""One pipelined connection to a Redis server, for the calls on a hot path.

A command through redis-py's asyncio client costs about 100 µs of Python (a pool checkout, the
retry wrapper, a stream reader per reply) beside a round trip of about 50 µs; at a queue
shard's rate of calls that overhead is most of a replica's CPU. :class:`RedisPipe` sends the
commands of every coroutine over one connection: those issued in one event-loop tick leave in
one write, and hiredis parses the replies in C and hands them out in order. Measured on the
2-core machine of benchmarks/README.md: 53 µs of client CPU per sequential ``EVALSHA`` against
125 µs, and 4 µs against 65 µs when 50 run at once.

The connection itself is made by redis-py, from the same client as every other call: the same
URL, TLS files, ACL login, database number and, behind a ``sentinel://`` URL, the primary the
Sentinels name. Only then does this module drive its socket. A lost connection fails the calls
waiting on it with redis-py's ``ConnectionError``; the next call opens a new one (and so finds a
new primary after a failover). A server that answers ``READONLY`` (a primary demoted under us),
a call not answered within the socket timeout, and a reply that cannot be parsed also end the
connection, as redis-py does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: Error replies that mean "this server cannot serve us now": the connection is dropped, so
#: that the next call connects again (to the new primary, after a failover).
_DROP: dict[str, type[RedisError]] = {"READONLY": ReadOnlyError, "LOADING": BusyLoadingError}


def _error(reply: hiredis.ReplyError) -> RedisError:
    """The exception redis-py raises for this error reply."""
    message = str(reply)
    code = message.split(" ", 1)[0]
    cls = _DROP.get(code) or (NoScriptError if code == "NOSCRIPT" else ResponseError)
    return cls(message)


class _Protocol(asyncio.Protocol):
    """Replies in order to the futures of the commands sent, one write per tick."""

    def __init__(self, transport: asyncio.Transport, owner: object) -> None:
        self.transport = transport
        #: the redis-py connection that opened the socket: its stream objects must live as long
        self.owner = owner
        self.reader = hiredis.Reader()
        self.pending: deque[asyncio.Future[Any]] = deque()
        self.out: list[bytes] = []
        self.lost: BaseException | None = None

    def send(self, args: Sequence[Any]) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.lost is not None:
            fut.set_exception(self.lost)
            return fut
        self.pending.append(fut)
        self.out.append(hiredis.pack_command(tuple(args)))
        if len(self.out) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        out, self.out = self.out, []
        if out and self.lost is None:
            self.transport.write(b"".join(out))

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.abort(RedisConnectionError(f"unreadable reply from Redis: {exc}"))
                return
            if reply is False:
                return
            fut = self.pending.popleft()
            if isinstance(reply, hiredis.ReplyError):
                error = _error(reply)
                if not fut.done():
                    fut.set_exception(error)
                if isinstance(error, tuple(_DROP.values())):
                    self.abort(RedisConnectionError(f"Redis answered {error}"))
                    return
            elif not fut.done():
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def abort(self, exc: BaseException) -> None:
        self._fail(exc)
        self.transport.abort()

    def _fail(self, exc: BaseException) -> None:
        if self.lost is None:
            self.lost = exc
        pending, self.pending = self.pending, deque()
        for fut in pending:
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # a caller that gave up must not leave it "never retrieved"


class RedisPipe:
    """Pipelined commands over one connection that ``client`` opens (see the module doc)."""

    def __init__(self, client: aioredis.Redis, *, timeout_s: float) -> None:
        self._client = client
        self._timeout_s = timeout_s
        self._protocol: _Protocol | None = None
        self._opening: asyncio.Task[_Protocol] | None = None
        self._closed = False

    async def execute(self, *args: Any) -> Any:
        """One command's reply (bytes, int, list, None); errors as redis-py raises them."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            protocol = await self._connect()
        fut = protocol.send(args)
        try:
            async with asyncio.timeout(self._timeout_s):
                return await fut
        except TimeoutError:
            protocol.abort(RedisTimeoutError(f"no reply from Redis in {self._timeout_s} s"))
            raise RedisTimeoutError(f"no reply from Redis in {self._timeout_s} s") from None

    async def evalsha(self, sha: str, source: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a script by its digest, loading it first if the server does not know it (a
        restarted or new primary)."""
        try:
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", source)
            return await self.execute("EVALSHA", sha, len(keys), *keys, *args)

    async def _connect(self) -> _Protocol:
        if self._closed:
            raise RedisConnectionError("the Redis connection is closed")
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self._open())
        opening = self._opening
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None

    async def _open(self) -> _Protocol:
        # redis-py makes the connection: its TLS handshake, AUTH, SELECT and, for a Sentinel
        # pool, the primary's address. Its socket is then ours.
        conn = self._client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        await conn.connect()
        writer = getattr(conn, "_writer", None)
        if writer is None:  # pragma: no cover - a redis-py without a stream writer
            raise RedisConnectionError("redis-py's connection has no stream to take over")
        transport = writer.transport
        protocol = _Protocol(transport, conn)
        transport.set_protocol(protocol)
        if transport.is_closing():
            protocol.lost = RedisConnectionError("connection to Redis closed while opening")
        self._protocol = protocol
        return protocol

    async def aclose(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
            with contextlib.suppress(BaseException):
                await self._opening
        if self._protocol is not None:
            self._protocol.abort(RedisConnectionError("the Redis connection is closed"))
            self._protocol = None


class PipedScript:
    """A Lua script called by its digest through a :class:`RedisPipe`, or through redis-py
    when given a pipeline of its own (``client=``: a script followed by ``WAIT``)."""

    def __init__(self, client: aioredis.Redis, pipe: RedisPipe, source: str) -> None:
        self._script = client.register_script(source)
        self._pipe = pipe
        self.sha: str = self._script.sha
        self.source = source

    async def __call__(
        self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None
    ) -> Any:
        if client is not None:
            return await self._script(keys=list(keys), args=list(args), client=client)
        return await self._pipe.evalsha(self.sha, self.source, keys, args)
