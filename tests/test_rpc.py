"""The msgpack RPC: framing, multiplexing, deadlines, error frames, limits, balancing."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podium import codec
from podium.codec import CodecLimits
from podium.errors import (
    DeadlineExceeded,
    LimitExceeded,
    NotFound,
    Unavailable,
    UnknownMethod,
)
from podium.rpc import CallContext, RpcClient, RpcServer
from tests.polling import eventually


async def echo(params: Any, ctx: CallContext) -> Any:
    return params


async def slow(params: Any, ctx: CallContext) -> Any:
    await asyncio.sleep(float(params))
    return params


async def whoami(params: Any, ctx: CallContext) -> Any:
    return {"headers": dict(ctx.headers), "method": ctx.method}


async def missing(params: Any, ctx: CallContext) -> Any:
    raise NotFound("no such thing", thing_id=params)


async def broken(params: Any, ctx: CallContext) -> Any:
    raise RuntimeError("boom")


HANDLERS = {"echo": echo, "slow": slow, "whoami": whoami, "missing": missing, "broken": broken}
LIMITS = CodecLimits(max_frame_bytes=64 * 1024, max_depth=8)


@pytest.fixture
async def server() -> AsyncIterator[RpcServer]:
    srv = await RpcServer(HANDLERS, limits=LIMITS).start()
    yield srv
    await srv.stop()


@pytest.fixture
async def client(server: RpcServer) -> AsyncIterator[RpcClient]:
    async with RpcClient([server.address], limits=LIMITS) as c:
        yield c


async def test_round_trip_keeps_types(client: RpcClient) -> None:
    value = {"s": "text", "b": b"\x00\xff", "i": 2**40, "f": 1.5, "l": [1, None, True]}
    assert await client.call("echo", value) == value


async def test_many_concurrent_calls_share_a_connection_and_complete_out_of_order(
    client: RpcClient,
) -> None:
    delays = [0.05, 0.0, 0.03, 0.01] * 50
    results = await asyncio.gather(*(client.call("slow", d) for d in delays))
    assert results == delays


async def test_headers_reach_the_handler(client: RpcClient) -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    out = await client.call("whoami", None, headers={"traceparent": tp})
    assert out == {"headers": {"traceparent": tp}, "method": "whoami"}


async def test_header_injector_adds_to_every_call(server: RpcServer) -> None:
    def inject(h: dict[str, str]) -> None:
        h["x-test"] = "1"

    async with RpcClient([server.address], header_injector=inject) as c:
        assert (await c.call("whoami"))["headers"] == {"x-test": "1"}


async def test_errors_come_back_as_the_same_class_with_data(client: RpcClient) -> None:
    with pytest.raises(NotFound) as info:
        await client.call("missing", "w-1")
    assert info.value.data == {"thing_id": "w-1"}
    with pytest.raises(UnknownMethod):
        await client.call("nope")
    from podium.errors import InternalError

    with pytest.raises(InternalError) as internal:
        await client.call("broken")
    # the caller learns which call failed, not the server's internals
    assert internal.value.message == "internal error in broken"
    assert await client.call("echo", 1) == 1  # the connection survived all of that


async def test_deadline_is_enforced_on_both_sides(server: RpcServer, client: RpcClient) -> None:
    with pytest.raises(DeadlineExceeded):
        await client.call("slow", 1.0, timeout_s=0.05)
    assert await client.call("echo", "still here") == "still here"


async def test_client_refuses_an_oversized_request_before_sending(client: RpcClient) -> None:
    with pytest.raises(LimitExceeded):
        await client.call("echo", b"x" * (70 * 1024))
    assert await client.call("echo", "ok") == "ok"


async def test_deep_nesting_gets_an_error_frame(client: RpcClient) -> None:
    deep: Any = 1
    for _ in range(20):
        deep = [deep]
    with pytest.raises(LimitExceeded, match="nests deeper"):
        await client.call("echo", deep)
    assert await client.call("echo", [[[1]]]) == [[[1]]]


def _raw_call(sock: socket.socket, req_id: int, method: str, params: Any) -> None:
    env = codec.request(req_id, method, params, {}, 1000)
    sock.sendall(codec.frame(env, CodecLimits()))


def _read_frame(sock: socket.socket) -> Any:
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            raise ConnectionError("closed")
        header += chunk
    (size,) = struct.unpack(">I", header)
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return codec.unpack(body)


async def test_oversized_frame_gets_an_error_frame_and_the_connection_keeps_working(
    server: RpcServer,
) -> None:
    def scenario() -> tuple[Any, Any]:
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            size = 100 * 1024
            s.sendall(struct.pack(">I", size) + b"\x00" * size)
            first = _read_frame(s)
            _raw_call(s, 7, "echo", "after")
            return first, _read_frame(s)

    first, second = await asyncio.to_thread(scenario)
    assert first["k"] == "e" and first["i"] == 0 and first["e"]["code"] == "LIMIT_EXCEEDED"
    assert second == {"v": 1, "k": "r", "i": 7, "r": "after"}


async def test_garbage_closes_only_that_connection(server: RpcServer, client: RpcClient) -> None:
    def scenario() -> tuple[Any, bytes]:
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            s.sendall(struct.pack(">I", 3) + b"\xc1\xc1\xc1")  # 0xc1 is never valid msgpack
            err = _read_frame(s)
            return err, s.recv(10)

    err, rest = await asyncio.to_thread(scenario)
    assert err["e"]["code"] == "PROTOCOL_ERROR"
    assert rest == b""  # closed by the server
    assert await client.call("echo", "others unaffected") == "others unaffected"


async def test_envelope_without_method_gets_a_protocol_error(server: RpcServer) -> None:
    def scenario() -> Any:
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            s.sendall(codec.frame({"v": 1, "k": "q", "i": 9}, CodecLimits()))
            return _read_frame(s)

    err = await asyncio.to_thread(scenario)
    assert err["i"] == 9 and err["e"]["code"] == "PROTOCOL_ERROR"


async def test_balances_over_addresses_and_survives_a_replica_going_away() -> None:
    async def name_a(params: Any, ctx: CallContext) -> str:
        return "a"

    async def name_b(params: Any, ctx: CallContext) -> str:
        return "b"

    a = await RpcServer({"name": name_a}).start()
    b = await RpcServer({"name": name_b}).start()
    client = RpcClient([a.address, b.address], retry_down_after_s=0.2)
    try:
        seen = [await client.call("name") for _ in range(10)]
        assert seen.count("a") == 5 and seen.count("b") == 5

        port_b = b.port
        await b.stop()
        # In-flight calls on the lost connection fail; new calls skip the dead replica.
        results = []
        for _ in range(10):
            try:
                results.append(await client.call("name"))
            except Unavailable:
                results.append("unavailable")
        assert results.count("a") >= 8
        assert "b" not in results

        # The replica comes back on the same port and is used again.
        b2 = await RpcServer({"name": name_b}, port=port_b).start()
        try:

            async def answered_by_b() -> bool:
                try:
                    return bool(await client.call("name") == "b")
                except Unavailable:
                    return False

            await eventually(
                answered_by_b, timeout_s=5, what="a call answered by b again", interval_s=0.05
            )
        finally:
            await b2.stop()
    finally:
        await client.close()
        await a.stop()


async def test_all_replicas_down_is_unavailable() -> None:
    from podium.launch.redis import free_port

    client = RpcClient([f"127.0.0.1:{free_port()}"], connect_timeout_s=0.5)
    with pytest.raises(Unavailable, match="cannot connect"):
        await client.call("echo", 1)
    await client.close()


async def test_stop_lets_in_flight_calls_finish(server: RpcServer, client: RpcClient) -> None:
    call = asyncio.ensure_future(client.call("slow", 0.1))

    async def in_flight() -> int:
        return server.stats.in_flight

    # the call has reached the handler
    await eventually(in_flight, timeout_s=10, what="the call in flight", interval_s=0.001)
    await server.stop(grace_s=2.0)
    assert await call == 0.1


async def test_a_dns_name_fans_out_to_every_address_and_follows_changes() -> None:
    """A name resolving to several addresses (a headless Service) is balanced over all."""
    from podium.launch.redis import free_port

    port = free_port()

    def named(tag: str) -> Any:
        async def handler(params: Any, ctx: CallContext) -> str:
            return tag

        return handler

    a = await RpcServer({"who": named("a")}, host="127.0.0.2", port=port).start()
    b = await RpcServer({"who": named("b")}, host="127.0.0.3", port=port).start()
    records = ["127.0.0.2", "127.0.0.3"]
    lookups = 0

    async def resolver(host: str, p: int) -> list[str]:
        nonlocal lookups
        lookups += 1
        assert (host, p) == ("workers.podium.svc", port)
        return list(records)

    client = RpcClient([f"workers.podium.svc:{port}"], resolver=resolver, refresh_s=0.0)
    try:
        seen = [await client.call("who") for _ in range(6)]
        assert sorted(set(seen)) == ["a", "b"] and lookups >= 1
        assert sorted(client.addresses) == [f"127.0.0.2:{port}", f"127.0.0.3:{port}"]
        records[:] = ["127.0.0.3"]  # one replica leaves the Service
        seen = [await client.call("who") for _ in range(4)]
        assert set(seen) == {"b"}
        assert client.addresses == [f"127.0.0.3:{port}"]
    finally:
        await client.close()
        await a.stop()
        await b.stop()


async def test_a_replica_leaving_dns_finishes_the_calls_it_already_has() -> None:
    from podium.launch.redis import free_port

    port = free_port()
    a = await RpcServer({"slow": slow, "echo": echo}, host="127.0.0.2", port=port).start()
    records = ["127.0.0.2"]

    async def resolver(host: str, p: int) -> list[str]:
        return list(records)

    client = RpcClient([f"svc.podium:{port}"], resolver=resolver, refresh_s=0.0)
    try:
        assert await client.call("echo", 1) == 1
        in_flight = asyncio.ensure_future(client.call("slow", 0.3))

        async def a_busy() -> int:
            return a.stats.in_flight

        await eventually(a_busy, timeout_s=10, what="the call in flight", interval_s=0.001)
        records[:] = []  # the name now resolves to nothing: keep what we had
        b = await RpcServer({"echo": echo}, host="127.0.0.3", port=port).start()
        records[:] = ["127.0.0.3"]  # the pod is replaced
        assert await client.call("echo", 2) == 2  # re-resolved: new calls go to the new pod
        assert client.addresses == [f"127.0.0.3:{port}"]
        assert await in_flight == 0.3  # the old pod's call was not cut off
        await b.stop()
    finally:
        await client.close()
        await a.stop()
