"""What every service shares around its start and stop: the RPC limits and credentials, and a
stopping RPC server that waits for its handlers."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from api_gateway.settings import GatewaySettings
from decider.server import DeciderSettings
from podium.aio import OwnedTasks
from podium.rpc import CallContext, RpcClient, RpcServer
from queue_service.server import QueueSettings
from sweeper.server import SweeperSettings
from tests.polling import eventually

LIMITS_ENV = {"PODIUM_RPC_MAX_FRAME_BYTES": "4096", "PODIUM_RPC_MAX_DEPTH": "9"}


@pytest.mark.parametrize(
    "settings",
    [QueueSettings, DeciderSettings, GatewaySettings, SweeperSettings],
    ids=["queue", "decider", "gateway", "sweeper"],
)
def test_every_service_reads_the_rpc_limits(settings: Any) -> None:
    codec = settings.from_env(LIMITS_ENV).codec
    assert (codec.max_frame_bytes, codec.max_depth) == (4096, 9)


@pytest.mark.parametrize(
    "settings",
    [QueueSettings, DeciderSettings, GatewaySettings, SweeperSettings],
    ids=["queue", "decider", "gateway", "sweeper"],
)
def test_every_service_reads_the_rpc_credentials(settings: Any) -> None:
    """The same variables in every service, so one cluster is configured one way."""
    secret = "0123456789abcdef" * 4
    assert settings.from_env({"PODIUM_RPC_SECRET": secret}).rpc.secret == secret.encode()
    assert settings.from_env({}).rpc.is_open


async def test_a_stopping_server_waits_for_the_handlers_it_cancels() -> None:
    finished: list[str] = []

    async def stubborn(params: Any, ctx: CallContext) -> Any:
        try:
            await asyncio.sleep(30)
        finally:
            # A final write, shielded from the cancellation, as the decider's are.
            await asyncio.shield(asyncio.sleep(0.2))
            finished.append("final write")
        return None

    server = await RpcServer({"stubborn": stubborn}).start()
    client = RpcClient([server.address], timeout_s=30)
    call = asyncio.ensure_future(client.call("stubborn", None))
    try:

        async def in_flight() -> bool:
            return any(c.in_flight() for c in server._connections)

        await eventually(in_flight, timeout_s=10, what="the call in flight", interval_s=0.01)
        await server.stop(grace_s=0.05)
        # What the service closes next (its store) is no longer in use by the handler.
        assert finished == ["final write"]
    finally:
        call.cancel()
        with contextlib.suppress(BaseException):
            await call
        await client.close()


async def test_owned_tasks_drain_what_their_tasks_start_meanwhile() -> None:
    tasks = OwnedTasks("test")
    done: list[str] = []

    async def second() -> None:
        await asyncio.sleep(0.05)
        done.append("second")

    async def first() -> None:
        await asyncio.sleep(0.05)
        tasks.spawn(second(), "second")
        done.append("first")

    tasks.spawn(first(), "first")
    await tasks.drain(grace_s=5)
    assert done == ["first", "second"]
    assert len(tasks) == 0
