"""Authenticated RPC: the shared-secret handshake and mutual TLS, on real sockets.

A client without the credentials gets no answer to any call and the server logs one line
naming it; a client with them works, with TLS certificates re-read when their files change.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import ssl
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from podium import aio, codec
from podium.config import rpc_security
from podium.devcerts import CertPaths, make_certs
from podium.errors import ConfigError, Unavailable
from podium.rpc import CallContext, RpcClient, RpcServer
from podium.rpc_client import _Connection
from podium.rpc_security import RpcSecurity, TlsFiles
from tests.polling import eventually

SECRET = b"s" * 40
OTHER_SECRET = b"t" * 40


class Calls:
    """Handlers that count what they ran (a refused connection must run nothing)."""

    def __init__(self) -> None:
        self.ran = 0

    def handlers(self) -> dict[str, Any]:
        async def echo(params: Any, ctx: CallContext) -> Any:
            self.ran += 1
            return params

        return {"echo": echo}


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def certs(tmp_path: Path) -> CertPaths:
    return make_certs(tmp_path / "ca")


@pytest.fixture
def other_certs(tmp_path: Path) -> CertPaths:
    return make_certs(tmp_path / "other-ca")


def tls(certs: CertPaths, *, client: bool = False, name: str | None = None) -> TlsFiles:
    if client:
        return TlsFiles(certs.client_cert, certs.client_key, certs.ca, name)
    return TlsFiles(certs.server_cert, certs.server_key, certs.ca, name)


@pytest.fixture
def refusals(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.WARNING, logger="podium.rpc")
    yield caplog


def refused_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("refused RPC connection from 127.0.0.1:")
    ]


async def serving(calls: Calls, security: RpcSecurity) -> RpcServer:
    return await RpcServer(calls.handlers(), security=security).start()


@pytest.fixture
async def secret_server(calls: Calls) -> AsyncIterator[RpcServer]:
    server = await serving(calls, RpcSecurity(secret=SECRET))
    yield server
    await server.stop(grace_s=0.5)


async def call_once(address: str, security: RpcSecurity | None) -> Any:
    async with RpcClient([address], security=security, connect_timeout_s=2.0) as client:
        return await client.call("echo", {"x": 1}, timeout_s=3.0)


async def test_a_client_with_the_secret_is_served(secret_server: RpcServer, calls: Calls) -> None:
    async with RpcClient([secret_server.address], security=RpcSecurity(secret=SECRET)) as client:
        answers = [await client.call("echo", i) for i in range(20)]
    assert answers == list(range(20))
    assert calls.ran == 20
    assert secret_server.stats.refused == 0


@pytest.mark.parametrize(
    "security", [None, RpcSecurity(secret=OTHER_SECRET)], ids=["none", "wrong"]
)
async def test_a_client_without_the_secret_gets_no_answer_and_is_logged(
    secret_server: RpcServer,
    calls: Calls,
    refusals: pytest.LogCaptureFixture,
    security: RpcSecurity | None,
) -> None:
    with pytest.raises(Unavailable):
        await call_once(secret_server.address, security)
    assert calls.ran == 0
    assert secret_server.stats.refused == 1
    lines = refused_lines(refusals)
    assert len(lines) == 1, lines
    assert lines[0].endswith(": bad credentials")


async def test_a_raw_request_before_the_handshake_is_never_served(
    secret_server: RpcServer, calls: Calls
) -> None:
    """A request frame sent straight away (as by a client that knows nothing of the
    handshake) gets the hello, then the connection closes: no response frame."""
    host, port = secret_server.host, secret_server.port
    request = codec.frame(codec.request(1, "echo", "hi", {}, 1000), codec.CodecLimits())
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    received = await asyncio.wait_for(reader.read(), 5.0)  # until the server closes
    writer.close()
    (size,) = struct.unpack(">I", received[:4])
    hello = codec.unpack(received[4 : 4 + size])
    assert hello["k"] == "h" and len(hello["n"]) == 32
    assert received[4 + size :] == b""  # nothing after the hello: no answer, then closed
    assert calls.ran == 0


def test_many_connections_opened_at_once_all_pass_the_handshake() -> None:
    """On uvloop (as the services run) the server's nonce can arrive before the client's
    connect call returns; every connection must still answer it."""

    async def main() -> list[Any]:
        calls = Calls()
        server = await serving(calls, RpcSecurity(secret=SECRET))
        try:
            return await asyncio.gather(
                *(call_once(server.address, RpcSecurity(secret=SECRET)) for _ in range(200)),
                return_exceptions=True,
            )
        finally:
            await server.stop(grace_s=0.5)

    answers = aio.run(main())
    assert [a for a in answers if a != {"x": 1}] == []


async def test_a_client_with_a_secret_refuses_a_server_without_one(calls: Calls) -> None:
    """The handshake is mutual: a server that cannot prove the secret is not used."""
    server = await serving(calls, RpcSecurity())
    try:
        with pytest.raises(Unavailable, match="RPC handshake"):
            await call_once(server.address, RpcSecurity(secret=SECRET))
    finally:
        await server.stop(grace_s=0.5)
    assert calls.ran == 0


@pytest.mark.parametrize("mode", ["secret", "tls"])
async def test_a_port_probe_is_not_logged_as_a_refusal(
    mode: str, certs: CertPaths, calls: Calls, refusals: pytest.LogCaptureFixture
) -> None:
    """A connection closed without a word (a TCP probe, the gateway's monitor page) presented
    no credentials to refuse; a caller that presents wrong ones is logged."""
    security = RpcSecurity(secret=SECRET, tls=tls(certs) if mode == "tls" else None)
    server = await serving(calls, security)
    try:
        for _ in range(3):
            _, writer = await asyncio.open_connection(server.host, server.port)
            writer.close()
            await writer.wait_closed()
        wrong = dataclasses.replace(security, secret=OTHER_SECRET)
        if mode == "tls":
            wrong = dataclasses.replace(wrong, tls=tls(certs, client=True))
        with pytest.raises(Unavailable):
            await call_once(server.address, wrong)
        await eventually(lambda: _lines(refusals, 1), timeout_s=5, what="the refusal line")
    finally:
        await server.stop(grace_s=0.5)
    assert len(refused_lines(refusals)) == 1, refused_lines(refusals)
    assert server.stats.refused == 1


async def test_refusals_are_logged_at_most_ten_a_window(
    secret_server: RpcServer, refusals: pytest.LogCaptureFixture
) -> None:
    for _ in range(15):
        with pytest.raises(Unavailable):
            await call_once(secret_server.address, RpcSecurity(secret=OTHER_SECRET))
    assert secret_server.stats.refused == 15
    assert len(refused_lines(refusals)) == 10


async def test_mutual_tls_serves_a_client_certificate_from_the_ca(
    certs: CertPaths, calls: Calls
) -> None:
    server = await serving(calls, RpcSecurity(tls=tls(certs)))
    try:
        assert await call_once(server.address, RpcSecurity(tls=tls(certs, client=True))) == {"x": 1}
        # The server pair serves both ends (a service calling another).
        assert await call_once(server.address, RpcSecurity(tls=tls(certs))) == {"x": 1}
    finally:
        await server.stop(grace_s=0.5)


async def test_the_server_name_is_checked_when_one_is_set(certs: CertPaths, calls: Calls) -> None:
    server = await serving(calls, RpcSecurity(tls=tls(certs)))
    try:
        named = RpcSecurity(tls=tls(certs, client=True, name="localhost"))
        assert await call_once(server.address, named) == {"x": 1}
        wrong = RpcSecurity(tls=tls(certs, client=True, name="decider.podium.svc"))
        with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await call_once(server.address, wrong)
    finally:
        await server.stop(grace_s=0.5)


async def test_mutual_tls_refuses_no_certificate_and_another_ca(
    certs: CertPaths,
    other_certs: CertPaths,
    calls: Calls,
    refusals: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    server = await serving(calls, RpcSecurity(tls=tls(certs)))
    try:
        # A client that trusts the server's CA but presents no certificate: TLS 1.3 lets
        # its handshake finish, so the failure shows on the call.
        bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        bare.check_hostname = False
        bare.load_verify_locations(cafile=str(certs.ca))
        conn = _Connection(server.host, server.port, codec.CodecLimits())
        with pytest.raises((Unavailable, OSError)):
            await conn.open(3.0, bare)
            await conn.send("echo", 1, {}, 3000)
        # A client certificate from another CA, trusting the server's CA (which is public).
        mixed = TlsFiles(other_certs.client_cert, other_certs.client_key, certs.ca)
        with pytest.raises(Unavailable):
            await call_once(server.address, RpcSecurity(tls=mixed))
        lines = await eventually(lambda: _lines(refusals, 2), timeout_s=5, what="two refusal lines")
        # A client of another cluster (its CA only) refuses the server itself.
        with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await call_once(server.address, RpcSecurity(tls=tls(other_certs, client=True)))
    finally:
        await server.stop(grace_s=0.5)
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in lines[0], lines
    assert all("TLS handshake failed" in line for line in lines), lines
    assert calls.ran == 0


async def _lines(caplog: pytest.LogCaptureFixture, n: int) -> list[str] | None:
    lines = refused_lines(caplog)
    return lines if len(lines) >= n else None


async def test_changed_certificates_are_used_for_new_connections(
    certs: CertPaths, other_certs: CertPaths, calls: Calls, tmp_path: Path
) -> None:
    """The server's files are replaced by ones from a new CA: new connections use them,
    the open one keeps going."""
    live = tmp_path / "live"
    live.mkdir()
    for name in ("server.crt", "server.key", "ca.crt"):
        shutil.copy(certs.ca.parent / name, live / name)
    files = TlsFiles(live / "server.crt", live / "server.key", live / "ca.crt")
    server = await serving(calls, RpcSecurity(tls=files))
    old = RpcClient(
        [server.address],
        security=RpcSecurity(tls=tls(certs, client=True)),
        connections_per_address=1,
    )
    try:
        assert await old.call("echo", 1) == 1
        for name in ("server.crt", "server.key", "ca.crt"):
            staged = live / f".{name}.new"
            shutil.copy(other_certs.ca.parent / name, staged)
            staged.replace(live / name)  # atomically, as a Secret update does
        new = RpcSecurity(tls=tls(other_certs, client=True))
        assert await call_once(server.address, new) == {"x": 1}
        assert server.tls is not None and server.tls.loads == 2
        assert await old.call("echo", 2) == 2  # the open connection is untouched
        with pytest.raises(Unavailable):
            await call_once(server.address, RpcSecurity(tls=tls(certs, client=True)))
    finally:
        await old.close()
        await server.stop(grace_s=0.5)


async def test_the_secret_and_mutual_tls_together(certs: CertPaths, calls: Calls) -> None:
    server = await serving(calls, RpcSecurity(secret=SECRET, tls=tls(certs)))
    try:
        both = RpcSecurity(secret=SECRET, tls=tls(certs, client=True))
        assert await call_once(server.address, both) == {"x": 1}
        with pytest.raises(Unavailable):
            await call_once(server.address, RpcSecurity(tls=tls(certs, client=True)))
        with pytest.raises(Unavailable):
            await call_once(server.address, RpcSecurity(secret=SECRET))
    finally:
        await server.stop(grace_s=0.5)
    assert calls.ran == 1


def test_settings_from_the_environment(tmp_path: Path, certs: CertPaths) -> None:
    assert rpc_security({}).is_open
    secret = "x" * 40
    security = rpc_security({"PODIUM_RPC_SECRET": secret})
    assert security.secret == secret.encode()
    assert secret not in repr(security)
    file = tmp_path / "secret"
    file.write_text(secret + "\n")
    assert rpc_security({"PODIUM_RPC_SECRET_FILE": str(file)}).secret == secret.encode()
    with pytest.raises(ConfigError, match="PODIUM_RPC_SECRET is too short") as short:
        rpc_security({"PODIUM_RPC_SECRET": "short-secret"})
    assert "short-secret" not in short.value.message
    with pytest.raises(ConfigError, match="not both"):
        rpc_security({"PODIUM_RPC_SECRET": secret, "PODIUM_RPC_SECRET_FILE": str(file)})
    with pytest.raises(ConfigError, match="PODIUM_RPC_SECRET_FILE"):
        rpc_security({"PODIUM_RPC_SECRET_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="PODIUM_RPC_TLS_CA is missing"):
        rpc_security(
            {"PODIUM_RPC_TLS_CERT": str(certs.server_cert), "PODIUM_RPC_TLS_KEY": str(certs.ca)}
        )
    full = rpc_security(
        {
            "PODIUM_RPC_TLS_CERT": str(certs.server_cert),
            "PODIUM_RPC_TLS_KEY": str(certs.server_key),
            "PODIUM_RPC_TLS_CA": str(certs.ca),
        }
    )
    assert full.tls == TlsFiles(certs.server_cert, certs.server_key, certs.ca)
