"""The msgpack RPC server.

Handlers are ``async def handler(params, ctx) -> result``, registered by method name. Many
requests share one connection: each runs as its own task, and responses go back as they finish,
tagged with the request id. Every failure becomes an error frame; only undecodable bytes close
the connection, and never another client's.

With :class:`~podium.rpc_security.RpcSecurity` set, a connection must first pass mutual TLS
(the listener then accepts sockets itself, so that each new connection gets the current
certificates and a failed handshake is logged) and the shared-secret handshake; until it has,
no request frame is read as a request. A refused connection is closed without an answer and
logged as one line naming the peer (at most ``_REFUSALS_PER_WINDOW`` lines per window, the
rest counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
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
from podium.rpc_security import (
    HANDSHAKE_TIMEOUT_S,
    KIND_AUTH,
    KIND_HELLO,
    KIND_OK,
    MAX_HANDSHAKE_FRAME,
    NONCE_BYTES,
    RpcSecurity,
    TlsContexts,
    client_proof,
    new_nonce,
    proof_matches,
    server_proof,
)

log = logging.getLogger("podium.rpc")

#: How long a stopping server waits for the handlers it cancelled (their final writes are
#: shielded from cancellation, so they may still take a moment).
_CANCEL_WAIT_S = 5.0
#: Refusal lines logged per window; past that they are counted and the count is logged next.
_REFUSALS_PER_WINDOW = 10
_REFUSAL_WINDOW_S = 10.0


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
    #: connections refused for bad or missing credentials (secret or TLS)
    refused: int = 0
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
        # The shared-secret handshake: until it passes, bytes collect in _pending.
        self._authenticated = server.security.secret is None
        self._nonce = b""
        self._pending = b""
        self._expiry: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check here.
        self._transport = cast(asyncio.Transport, transport)
        self._peer = _peer_of(transport.get_extra_info("peername"))
        self._server._connections.add(self)
        if not self._authenticated:
            self._nonce = new_nonce()
            hello = {"v": codec.ENVELOPE_VERSION, "k": KIND_HELLO, "n": self._nonce}
            self._transport.write(codec.frame(hello, self._server.limits))
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(HANDSHAKE_TIMEOUT_S, self._handshake_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server._connections.discard(self)
        if self._expiry is not None:
            self._expiry.cancel()
        for task in self._tasks:
            task.cancel()

    def _handshake_expired(self) -> None:
        if not self._authenticated and not self._closed:
            log.debug("closing RPC connection from %s: no handshake in time", self._peer)
            self.close()

    def _authenticate(self, data: bytes) -> bytes:
        """Take the client's answer to the nonce; the bytes after it, once it is right.

        Returns b"" while the answer is incomplete, and after refusing the connection.
        """
        buf = self._pending = self._pending + data
        if len(buf) < codec.HEADER_SIZE:
            return b""
        (size,) = codec.HEADER.unpack_from(buf)
        if size > MAX_HANDSHAKE_FRAME:
            self._refuse("bad credentials")
            return b""
        end = codec.HEADER_SIZE + size
        if len(buf) < end:
            return b""
        try:
            env = codec.unpack(buf[codec.HEADER_SIZE : end])
        except ProtocolError:
            env = None
        secret = self._server.security.secret
        nonce = env.get("n") if isinstance(env, dict) else None
        if (
            secret is None
            or not isinstance(env, dict)
            or env.get("k") != KIND_AUTH
            or not isinstance(nonce, bytes)
            or len(nonce) != NONCE_BYTES
            or not proof_matches(client_proof(secret, self._nonce, nonce), env.get("p"))
        ):
            self._refuse("bad credentials")
            return b""
        self._authenticated = True
        if self._expiry is not None:
            self._expiry.cancel()
        ok = {
            "v": codec.ENVELOPE_VERSION,
            "k": KIND_OK,
            "p": server_proof(secret, self._nonce, nonce),
        }
        if self._transport is not None:
            self._transport.write(codec.frame(ok, self._server.limits))
        rest, self._pending = buf[end:], b""
        return rest

    def _refuse(self, reason: str) -> None:
        self._server.refusals.note(self._peer, reason)
        self._server.stats.refused += 1
        self._pending = b""
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        if not self._authenticated:
            if self._closed:
                return
            data = self._authenticate(data)
            if not data:
                return
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


def _peer_of(peer: object) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class _RefusalLog:
    """One warning line per refused connection, at most ``limit`` a window; the rest counted."""

    def __init__(self, limit: int = _REFUSALS_PER_WINDOW, window_s: float = _REFUSAL_WINDOW_S):
        self.limit, self.window_s = limit, window_s
        self._window_start = -1e18
        self._logged = 0
        self._unlogged = 0

    def note(self, peer: str, reason: str) -> None:
        now = time.monotonic()
        if now - self._window_start >= self.window_s:
            self._window_start, self._logged = now, 0
        if self._logged >= self.limit:
            self._unlogged += 1
            return
        self._logged += 1
        more = ""
        if self._unlogged:
            more = f" ({self._unlogged} more refused and not logged before this one)"
            self._unlogged = 0
        log.warning("refused RPC connection from %s: %s%s", peer, reason, more)


def _tls_reason(exc: BaseException) -> str:
    """A short reason for a failed TLS handshake (what OpenSSL said, without the file names)."""
    verify = getattr(exc, "verify_message", None)
    if verify:
        return f"TLS handshake failed: {verify}"
    reason = getattr(exc, "reason", None)
    return f"TLS handshake failed: {reason or str(exc) or type(exc).__name__}"


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
        security: RpcSecurity | None = None,
    ) -> None:
        self.handlers: dict[str, Handler] = dict(handlers)
        self.host = host
        self.port = port
        self.limits = limits or CodecLimits()
        self.default_timeout_ms = default_timeout_ms
        self.interceptor = interceptor
        self.stats = ServerStats()
        self.security = security or RpcSecurity()
        self.refusals = _RefusalLog()
        #: the server's TLS contexts (reloaded as the files change), with TLS on
        self.tls: TlsContexts | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_ServerProtocol] = set()
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> RpcServer:
        loop = asyncio.get_running_loop()
        if self.security.tls is not None:
            self.tls = TlsContexts(self.security.tls, server_side=True)
            self.tls.get()  # files that do not load stop the start, not the first connection
            self._listener = _listen(self.host, self.port)
            self.port = int(self._listener.getsockname()[1])
            self._accepting = loop.create_task(
                self._accept(self._listener, self.tls), name="rpc-accept"
            )
            return self
        self._server = await loop.create_server(
            lambda: _ServerProtocol(self), self.host, self.port, reuse_address=True
        )
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self

    async def _accept(self, listener: socket.socket, tls: TlsContexts) -> None:
        """Accept connections and hand each to its own TLS handshake (with TLS on)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, addr = await loop.sock_accept(listener)
            except OSError as exc:  # out of file descriptors, say: try again shortly
                log.warning("cannot accept RPC connections: %s", exc)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(self._handshake(sock, _peer_of(addr), tls))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, sock: socket.socket, peer: str, tls: TlsContexts) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                lambda: _ServerProtocol(self),
                sock,
                ssl=tls.get(),
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S,
            )
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            sock.close()
            if isinstance(exc, ssl.SSLError) and not isinstance(exc, _TLS_CLOSED):
                self.stats.refused += 1
                self.refusals.note(peer, _tls_reason(exc))
            else:  # closed before a handshake (a port probe): nothing was presented
                log.debug("RPC connection from %s closed during TLS handshake: %r", peer, exc)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, let in-flight calls finish for ``grace_s``, then close. Idempotent."""
        server, self._server = self._server, None
        accepting, self._accepting = self._accepting, None
        listener, self._listener = self._listener, None
        if server is None and accepting is None:
            return
        if server is not None:
            server.close()
        if accepting is not None:
            accepting.cancel()
            for task in list(self._handshakes):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await accepting
        if listener is not None:
            listener.close()
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
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)


#: A peer that closed during the TLS handshake presented nothing: not logged as a refusal.
_TLS_CLOSED = (ssl.SSLEOFError, ssl.SSLZeroReturnError)


def _listen(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (IPv4 or IPv6)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
