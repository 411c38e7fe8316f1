"""The msgpack RPC server.

Handlers are ``async def handler(params, ctx) -> result``, registered by method name. Many
requests share one connection: each runs as its own task, and responses go back as they finish,
tagged with the request id. Every failure becomes an error frame; only undecodable bytes close
the connection, and never another client's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from podium import codec
from podium.codec import CodecLimits
from podium.errors import (
    DeadlineExceeded,
    InternalError,
    LimitExceeded,
    PodiumError,
    ProtocolError,
    UnknownMethod,
)

log = logging.getLogger("podium.rpc")

#: How long a stopping server waits for the handlers it cancelled (their final writes are
#: shielded from cancellation, so they may still take a moment).
_CANCEL_WAIT_S = 5.0


@dataclass(frozen=True)
class CallContext:
    """What a handler knows about the call besides its params."""

    method: str
    headers: Mapping[str, str]
    deadline: float  # loop.time() by which the caller stops waiting
    peer: str
    #: The request's params, for interceptors that label what they record (ids, queue names).
    params: Any = None


Handler = Callable[[Any, CallContext], Awaitable[Any]]
#: Wraps each dispatch (for tracing and metrics); receives the context and the handler call.
Interceptor = Callable[[CallContext, Callable[[], Awaitable[Any]]], Awaitable[Any]]


def chain(*interceptors: Interceptor | None) -> Interceptor | None:
    """One interceptor running the given ones outermost first (None entries are skipped)."""
    active = [i for i in interceptors if i is not None]
    if not active:
        return None
    combined = active[-1]
    for outer in reversed(active[:-1]):
        combined = _nest(outer, combined)
    return combined


def _nest(outer: Interceptor, inner: Interceptor) -> Interceptor:
    async def run(ctx: CallContext, call: Callable[[], Awaitable[Any]]) -> Any:
        return await outer(ctx, lambda: inner(ctx, call))

    return run


@dataclass
class ServerStats:
    requests: int = 0
    errors: int = 0
    protocol_errors: int = 0
    in_flight: int = 0
    by_method: dict[str, list[float]] = field(default_factory=dict)  # count, total seconds


class _ServerProtocol(asyncio.Protocol):
    def __init__(self, server: RpcServer) -> None:
        self._server = server
        self._reader = codec.FrameReader(server.limits)
        self._transport: asyncio.Transport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._peer = "?"
        self._closed = False
        self._out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check here.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server._connections.discard(self)
        for task in self._tasks:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        for item in self._reader.feed(data):
            if isinstance(item, LimitExceeded):
                self._server.stats.protocol_errors += 1
                self._send(codec.error(0, item.to_wire()))
                continue
            try:
                env = codec.unpack(item, self._server.limits)
            except ProtocolError as exc:
                # Bytes that are not msgpack: the stream cannot be trusted any more.
                self._server.stats.protocol_errors += 1
                self._send(codec.error(0, exc.to_wire()))
                self.close()
                return
            except LimitExceeded as exc:
                self._server.stats.protocol_errors += 1
                self._send(codec.error(_request_id(item), exc.to_wire()))
                continue
            self._dispatch(env)

    def _dispatch(self, env: Any) -> None:
        req_id = env.get("i") if isinstance(env, dict) else None
        if (
            not isinstance(env, dict)
            or env.get("k") != codec.KIND_REQUEST
            or not isinstance(req_id, int)
            or req_id <= 0
            or not isinstance(env.get("m"), str)
        ):
            self._server.stats.protocol_errors += 1
            err = ProtocolError("not a request envelope (need v, k='q', i>0, m)")
            self._send(codec.error(req_id if isinstance(req_id, int) else 0, err.to_wire()))
            return
        headers = env.get("h") or {}
        if not isinstance(headers, dict):
            headers = {}
        timeout_ms = env.get("t")
        if not isinstance(timeout_ms, int) or timeout_ms <= 0:
            timeout_ms = self._server.default_timeout_ms
        loop = asyncio.get_running_loop()
        params = env.get("p")
        ctx = CallContext(env["m"], headers, loop.time() + timeout_ms / 1000.0, self._peer, params)
        task = loop.create_task(self._run(req_id, ctx, params))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, req_id: int, ctx: CallContext, params: Any) -> None:
        server = self._server
        server.stats.requests += 1
        server.stats.in_flight += 1
        started = time.perf_counter()
        try:
            handler = server.handlers.get(ctx.method)
            if handler is None:
                raise UnknownMethod(f"unknown method {ctx.method!r}", method=ctx.method)
            remaining = ctx.deadline - asyncio.get_running_loop().time()
            try:
                async with asyncio.timeout(max(remaining, 0.0)):
                    if server.interceptor is not None:
                        result = await server.interceptor(ctx, lambda: handler(params, ctx))
                    else:
                        result = await handler(params, ctx)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"{ctx.method} did not finish before its deadline", method=ctx.method
                ) from None
            out = codec.response(req_id, result)
        except PodiumError as exc:
            server.stats.errors += 1
            out = codec.error(req_id, exc.to_wire())
        except asyncio.CancelledError:
            raise
        except Exception:
            server.stats.errors += 1
            log.exception("handler %s failed", ctx.method)
            # The traceback is in this log; the caller (maybe relaying to a client) gets no
            # internals.
            out = codec.error(req_id, InternalError(f"internal error in {ctx.method}").to_wire())
        finally:
            server.stats.in_flight -= 1
            entry = server.stats.by_method.setdefault(ctx.method, [0.0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started
        self._send(out)

    def _send(self, envelope: dict[str, Any]) -> None:
        if self._closed or self._transport is None:
            return
        try:
            data = codec.frame(envelope, self._server.limits)
        except LimitExceeded as exc:
            data = codec.frame(
                codec.error(int(envelope.get("i", 0)), exc.to_wire()), self._server.limits
            )
        except Exception:  # a result msgpack cannot encode
            log.exception("a result could not be encoded")
            err = InternalError("internal error: the result could not be encoded")
            data = codec.frame(
                codec.error(int(envelope.get("i", 0)), err.to_wire()), self._server.limits
            )
        # Responses finished in the same tick leave in one write (one syscall, not one each).
        self._out.append(data)
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(out))

    def close(self) -> None:
        if not self._closed and self._transport is not None:
            self._flush()
            self._closed = True
            self._transport.close()

    def in_flight(self) -> int:
        return len(self._tasks)

    def handler_tasks(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)


def _request_id(body: bytes) -> int:
    """Best-effort request id of a frame whose payload broke a limit."""
    try:
        env = codec.unpack(body)
    except PodiumError:
        return 0
    rid = env.get("i") if isinstance(env, dict) else 0
    return rid if isinstance(rid, int) else 0


class RpcServer:
    """Serves registered handlers on one TCP address."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: CodecLimits | None = None,
        default_timeout_ms: int = 30_000,
        interceptor: Interceptor | None = None,
    ) -> None:
        self.handlers: dict[str, Handler] = dict(handlers)
        self.host = host
        self.port = port
        self.limits = limits or CodecLimits()
        self.default_timeout_ms = default_timeout_ms
        self.interceptor = interceptor
        self.stats = ServerStats()
        self._server: asyncio.Server | None = None
        self._connections: set[_ServerProtocol] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> RpcServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerProtocol(self), self.host, self.port, reuse_address=True
        )
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, let in-flight calls finish for ``grace_s``, then close. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        deadline = asyncio.get_running_loop().time() + grace_s
        while any(c.in_flight() for c in self._connections):
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.01)
        # Handlers still running past the grace period are cancelled with their connection;
        # they are awaited here, so that nothing the service closes next (its store) is
        # still in use by one of them.
        handlers = [t for c in self._connections for t in c.handler_tasks()]
        for conn in list(self._connections):
            conn.close()
        if handlers:
            for task in handlers:
                task.cancel()
            _, pending = await asyncio.wait(handlers, timeout=_CANCEL_WAIT_S)
            if pending:
                log.warning("%d RPC handlers still running after their cancellation", len(pending))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)
