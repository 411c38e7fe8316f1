"""The msgpack RPC client: a pool of multiplexed connections over several addresses.

Calls go round-robin over the healthy addresses of one service, or, given a key (a workflow
id), to the healthy address that key ranks first by rendezvous hashing, so that every client
with the same addresses sends one workflow's calls to one replica (its owner), and a replica
that leaves or joins moves only the keys it ranks first. Each address has a few
connections, each carrying many concurrent calls (request ids). A connection that fails
fails only the calls it carried, marks its address down for a back-off, and is re-dialled on
next use, so a replica that disappears is skipped and picked up again when it returns.

With :class:`~podium.rpc_security.RpcSecurity` set, each new connection is made with the
current TLS client context and passes the shared-secret handshake (the server proves it
holds the secret too) before it carries a call; that is one round trip per connection and
nothing per call.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import itertools
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from podium import codec
from podium.codec import CodecLimits
from podium.errors import (
    DeadlineExceeded,
    LimitExceeded,
    PodiumError,
    Unavailable,
    error_from_wire,
)
from podium.rpc_security import (
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

#: Adds headers (e.g. the W3C trace context) to every outgoing request.
HeaderInjector = Callable[[dict[str, str]], None]


class CallSpan(Protocol):
    """The client span of one call, opened by a :class:`CallTracer`."""

    def finish(self, error: BaseException | None) -> None: ...


class CallTracer(Protocol):
    """Opens a span around each call and puts its context into the request's headers.

    :class:`podium.telemetry.rpc.RpcClientTracing` is the OpenTelemetry one; with none set, a
    call costs nothing extra.
    """

    def start(self, method: str, params: Any, headers: dict[str, str]) -> CallSpan: ...


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"address must be host:port, got {address!r}")
    return host.strip("[]"), int(port)


class _ClientProtocol(asyncio.Protocol):
    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._reader = codec.FrameReader(conn.limits)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Set here, not when create_connection returns: the server's hello may arrive first.
        self._conn.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._conn.handshaking:
            data = self._conn.handshake(data)
            if not data:
                return
        for item in self._reader.feed(data):
            if isinstance(item, LimitExceeded):
                self._conn.fail_all(item)
                continue
            try:
                env = codec.unpack(item)
            except PodiumError as exc:
                self._conn.fail_all(exc)
                return
            self._conn.deliver(env)

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn.lost(exc)


class _Connection:
    """One TCP connection carrying many concurrent calls."""

    def __init__(
        self, host: str, port: int, limits: CodecLimits, secret: bytes | None = None
    ) -> None:
        self.host, self.port, self.limits = host, port, limits
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.transport: asyncio.Transport | None = None
        # The shared-secret handshake (with a secret): its bytes so far, and its outcome.
        self.secret = secret
        self.handshaking = secret is not None
        self._handshake_buf = b""
        self._server_nonce: bytes | None = None
        self._client_nonce = b""
        self._ready: asyncio.Future[None] | None = None
        self.closed = False
        self._ids = itertools.count(1)
        self._out: list[bytes] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def open(
        self,
        timeout_s: float,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        """Connect (with TLS when given), and pass the secret handshake when there is one."""
        loop = asyncio.get_running_loop()
        if self.secret is not None:
            self._ready = loop.create_future()
        try:
            async with asyncio.timeout(timeout_s):
                self.transport, _ = await loop.create_connection(
                    lambda: _ClientProtocol(self),
                    self.host,
                    self.port,
                    ssl=tls,
                    server_hostname=server_name if tls is not None else None,
                )
                if self._ready is not None:
                    await self._ready
        except TimeoutError:
            if self.transport is None:
                raise
            self.close()
            raise Unavailable(
                f"{self.address} did not complete the RPC handshake within {timeout_s:.1f}s "
                "(is PODIUM_RPC_SECRET set there?)",
                address=self.address,
            ) from None
        except BaseException:
            self.close()
            raise

    def handshake(self, data: bytes) -> bytes:
        """Answer the server's nonce and check its proof; the bytes after, once it passed."""
        buf = self._handshake_buf + data
        while len(buf) >= codec.HEADER_SIZE:
            (size,) = codec.HEADER.unpack_from(buf)
            end = codec.HEADER_SIZE + size
            if size > MAX_HANDSHAKE_FRAME:
                self._handshake_failed("it does not speak the RPC handshake")
                return b""
            if len(buf) < end:
                break
            try:
                env = codec.unpack(buf[codec.HEADER_SIZE : end])
            except PodiumError:
                env = None
            buf = buf[end:]
            if not isinstance(env, dict) or self.secret is None:
                self._handshake_failed("it does not speak the RPC handshake")
                return b""
            if self._server_nonce is None:
                nonce = env.get("n")
                if (
                    env.get("k") != KIND_HELLO
                    or not isinstance(nonce, bytes)
                    or len(nonce) != NONCE_BYTES
                ):
                    self._handshake_failed("it does not speak the RPC handshake")
                    return b""
                self._server_nonce, self._client_nonce = nonce, new_nonce()
                answer = {
                    "v": codec.ENVELOPE_VERSION,
                    "k": KIND_AUTH,
                    "n": self._client_nonce,
                    "p": client_proof(self.secret, nonce, self._client_nonce),
                }
                if self.transport is not None:
                    self.transport.write(codec.frame(answer, self.limits))
                continue
            expected = server_proof(self.secret, self._server_nonce, self._client_nonce)
            if env.get("k") != KIND_OK or not proof_matches(expected, env.get("p")):
                self._handshake_failed("its proof does not match our secret")
                return b""
            self.handshaking = False
            self._handshake_buf = b""
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            return buf
        self._handshake_buf = buf
        return b""

    def _handshake_failed(self, why: str) -> None:
        self.handshaking = True
        self._handshake_buf = b""
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                Unavailable(f"{self.address} failed the RPC handshake: {why}", address=self.address)
            )
        self.close()

    def send(
        self, method: str, params: Any, headers: dict[str, str], timeout_ms: int
    ) -> asyncio.Future[Any]:
        if self.transport is None or self.closed:
            address = f"{self.host}:{self.port}"
            raise Unavailable(f"connection to {address} is closed", address=address)
        req_id = next(self._ids)
        data = codec.frame(codec.request(req_id, method, params, headers, timeout_ms), self.limits)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[req_id] = fut
        # Requests sent in the same tick leave in one write.
        self._out.append(data)
        if len(self._out) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def deliver(self, env: Any) -> None:
        if not isinstance(env, dict):
            return
        req_id = env.get("i")
        if req_id == 0 and env.get("k") == codec.KIND_ERROR:
            # Not tied to a request (e.g. an oversized frame): nothing to wake.
            log.warning("server %s:%s reported %s", self.host, self.port, env.get("e"))
            return
        fut = self.pending.pop(req_id, None) if isinstance(req_id, int) else None
        if fut is None or fut.done():
            return
        if env.get("k") == codec.KIND_ERROR:
            err = env.get("e")
            fut.set_exception(error_from_wire(err if isinstance(err, dict) else {}))
        else:
            fut.set_result(env.get("r"))

    def fail_all(self, exc: BaseException) -> None:
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)

    def lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                Unavailable(
                    f"{self.address} closed the connection during the RPC handshake "
                    "(a different PODIUM_RPC_SECRET?)",
                    address=self.address,
                )
            )
        self.fail_all(
            Unavailable(
                f"connection to {self.host}:{self.port} lost: {exc or 'closed'}",
                address=f"{self.host}:{self.port}",
            )
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def close_when_idle(self) -> None:
        """Take no new calls; close once the calls in flight have their answers.

        A replica leaving DNS (a pod terminating) still answers what it started, so those
        calls are not failed early.
        """
        self.closed = True
        pending = [f for f in self.pending.values() if not f.done()]
        if not pending:
            self.close()
            return
        remaining = len(pending)

        def one_done(_: asyncio.Future[Any]) -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0 and self.transport is not None:
                self.transport.close()

        for fut in pending:
            fut.add_done_callback(one_done)


@dataclass
class _Endpoint:
    host: str
    port: int
    conns: list[_Connection | None]
    down_until: float = 0.0
    next_conn: int = 0
    dialing: asyncio.Lock | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def rank(self, key: bytes) -> int:
        """This endpoint's rendezvous weight for ``key`` (the same in every process)."""
        digest = hashlib.blake2b(key, digest_size=8, key=self.address.encode()).digest()
        return int.from_bytes(digest, "big")


#: Resolves a host name to its addresses (injectable so tests can fake a DNS name).
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_all(host: str, port: int) -> list[str]:
    """Every address a name resolves to (A and AAAA), deduplicated, in resolver order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


def _is_literal(host: str) -> bool:
    if host == "localhost":
        return True  # resolving it adds ::1, where loopback-bound services do not listen
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class RpcClient:
    """Calls methods of one service, balanced over its addresses.

    An address may be an IP or a DNS name; a name is resolved to all its addresses (a
    Kubernetes headless Service, say) and re-resolved every ``refresh_s`` seconds and whenever
    every replica is down, so replicas that appear are used and those that disappear dropped.
    """

    def __init__(
        self,
        addresses: Sequence[str],
        *,
        connections_per_address: int = 2,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 2.0,
        retry_down_after_s: float = 0.5,
        limits: CodecLimits | None = None,
        header_injector: HeaderInjector | None = None,
        refresh_s: float = 5.0,
        resolver: Resolver = resolve_all,
        tracer: CallTracer | None = None,
        security: RpcSecurity | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("RpcClient needs at least one address")
        self.limits = limits or CodecLimits()
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.retry_down_after_s = retry_down_after_s
        self.header_injector = header_injector
        self.tracer = tracer
        self.security = security or RpcSecurity()
        #: the client's TLS contexts (reloaded as the files change), with TLS on
        self.tls = TlsContexts(self.security.tls, server_side=False) if self.security.tls else None
        self._per_address = connections_per_address
        self._seeds = [parse_address(a) for a in addresses]
        self._names = [(h, p) for h, p in self._seeds if not _is_literal(h)]
        self._endpoints = [self._endpoint(h, p) for h, p in self._seeds if _is_literal(h)]
        self._resolver = resolver
        self._refresh_s = refresh_s
        self._resolved_at = -1e9
        self._resolving: asyncio.Lock | None = None
        self._rr = 0
        self._closed = False

    def _endpoint(self, host: str, port: int) -> _Endpoint:
        return _Endpoint(host, port, conns=[None] * self._per_address)

    @property
    def addresses(self) -> list[str]:
        return [e.address for e in self._endpoints]

    async def _refresh(self, force: bool = False) -> None:
        """Re-resolve the DNS names (if any) and update the endpoint list."""
        if not self._names:
            return
        loop = asyncio.get_running_loop()
        if not force and loop.time() - self._resolved_at < self._refresh_s:
            return
        if self._resolving is None:
            self._resolving = asyncio.Lock()
        async with self._resolving:
            if not force and loop.time() - self._resolved_at < self._refresh_s:
                return
            wanted: list[tuple[str, int]] = [(h, p) for h, p in self._seeds if _is_literal(h)]
            for host, port in self._names:
                try:
                    wanted += [(a, port) for a in await self._resolver(host, port)]
                except OSError as exc:
                    log.warning("cannot resolve %s: %s", host, exc)
            self._resolved_at = loop.time()
            if not wanted:
                return  # keep what we had rather than nothing
            current = {(e.host, e.port): e for e in self._endpoints}
            endpoints = [current.get(w) or self._endpoint(*w) for w in dict.fromkeys(wanted)]
            for key, endpoint in current.items():
                if key not in dict.fromkeys(wanted):
                    for conn in endpoint.conns:
                        if conn is not None:
                            conn.close_when_idle()
            self._endpoints = endpoints

    async def call(
        self,
        method: str,
        params: Any = None,
        *,
        timeout_s: float | None = None,
        headers: dict[str, str] | None = None,
        key: str | None = None,
    ) -> Any:
        """Call ``method``; raises the server's error, Unavailable, or DeadlineExceeded.

        With ``key`` the call goes to the key's owner (:meth:`owner`), or, while the owner is
        down, to the next healthy address in the key's ranking."""
        if self.tracer is None:
            return await self._send(method, params, timeout_s, headers, key)
        hdrs = dict(headers) if headers else {}
        span = self.tracer.start(method, params, hdrs)  # its context goes into the headers
        try:
            result = await self._send(method, params, timeout_s, hdrs, key)
        except BaseException as exc:
            span.finish(exc)
            raise
        span.finish(None)
        return result

    async def _send(
        self,
        method: str,
        params: Any,
        timeout_s: float | None,
        headers: dict[str, str] | None,
        key: str | None = None,
    ) -> Any:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        hdrs = dict(headers) if headers else {}
        if self.header_injector is not None:
            self.header_injector(hdrs)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_error: PodiumError | None = None
        await self._refresh()
        if not self._endpoints or all(e.down_until > loop.time() for e in self._endpoints):
            await self._refresh(force=True)
        if not self._endpoints:
            raise Unavailable(f"no address known for {self._names}", method=method)
        # Try each endpoint at most once: a call is retried elsewhere only when it could not
        # be sent, so a request is never executed twice by this client.
        order = self._ranked(key, loop.time()) if key is not None else None
        for i in range(len(self._endpoints)):
            endpoint = self._pick(loop.time()) if order is None else order[i]
            try:
                conn = await self._connection(endpoint)
            except Unavailable as exc:
                last_error = exc
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            fut = conn.send(method, params, hdrs, max(1, int(remaining * 1000)))
            try:
                return await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                raise DeadlineExceeded(
                    f"{method} on {endpoint.address} timed out after {timeout:.3f}s",
                    method=method,
                    address=endpoint.address,
                ) from None
            except Unavailable:
                endpoint.down_until = loop.time() + self.retry_down_after_s
                raise
        if last_error is not None:
            raise last_error
        raise DeadlineExceeded(f"{method} timed out after {timeout:.3f}s", method=method)

    def _ranked(self, key: str, now: float) -> list[_Endpoint]:
        """The endpoints in ``key``'s rendezvous order, those marked down last."""
        k = key.encode()
        ranked = sorted(self._endpoints, key=lambda e: e.rank(k), reverse=True)
        return [e for e in ranked if e.down_until <= now] + [
            e for e in ranked if e.down_until > now
        ]

    async def owner(self, key: str) -> str:
        """The address a call with ``key`` goes to now (its owner while that is healthy)."""
        await self._refresh()
        if not self._endpoints:
            raise Unavailable(f"no address known for {self._names}")
        return self._ranked(key, asyncio.get_running_loop().time())[0].address

    def _pick(self, now: float) -> _Endpoint:
        n = len(self._endpoints)
        for i in range(n):
            endpoint = self._endpoints[(self._rr + i) % n]
            if endpoint.down_until <= now:
                self._rr = (self._rr + i + 1) % n
                return endpoint
        # Every endpoint is marked down: try the one that has been down longest.
        return min(self._endpoints, key=lambda e: e.down_until)

    async def _connection(self, endpoint: _Endpoint) -> _Connection:
        if self._closed:
            raise Unavailable("client is closed")
        idx = endpoint.next_conn
        endpoint.next_conn = (idx + 1) % len(endpoint.conns)
        conn = endpoint.conns[idx]
        if conn is not None and not conn.closed:
            return conn
        if endpoint.dialing is None:
            endpoint.dialing = asyncio.Lock()
        async with endpoint.dialing:
            conn = endpoint.conns[idx]
            if conn is not None and not conn.closed:
                return conn
            conn = _Connection(endpoint.host, endpoint.port, self.limits, self.security.secret)
            tls = self.tls.get() if self.tls is not None else None
            server_name = self.security.tls.server_name if self.security.tls else None
            try:
                await conn.open(self.connect_timeout_s, tls, server_name)
            except Unavailable:
                endpoint.down_until = asyncio.get_running_loop().time() + self.retry_down_after_s
                raise
            except (OSError, TimeoutError) as exc:
                endpoint.down_until = asyncio.get_running_loop().time() + self.retry_down_after_s
                raise Unavailable(
                    f"cannot connect to {endpoint.address}: {exc or type(exc).__name__}",
                    address=endpoint.address,
                ) from None
            endpoint.conns[idx] = conn
            endpoint.down_until = 0.0
            return conn

    async def close(self) -> None:
        """Close every connection; pending calls fail with Unavailable. Idempotent."""
        self._closed = True
        for endpoint in self._endpoints:
            for conn in endpoint.conns:
                if conn is not None:
                    conn.close()
            endpoint.conns = [None] * len(endpoint.conns)
        await asyncio.sleep(0)

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["CallSpan", "CallTracer", "RpcClient", "parse_address"]
