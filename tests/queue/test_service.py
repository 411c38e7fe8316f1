"""The queue service as a process: health, readiness, metrics and graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from podium.launch.redis import RedisServer, free_port
from podium.queue_client import Message, QueueClient
from queue_service.server import QueueService, QueueSettings

from .conftest import specs


async def test_health_ready_and_metrics(redis_shards: list[RedisServer]) -> None:
    svc = await QueueService(
        QueueSettings(shards=specs(redis_shards[:2]), port=0, health_port=0)
    ).start()
    client = QueueClient.connect([svc.address])
    try:
        await client.push("m", [Message("a")])
        base = f"http://127.0.0.1:{svc.health.port}"
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{base}/health")).json() == {"status": "UP"}
            ready = await http.get(f"{base}/ready")
            assert ready.status_code == 200 and ready.json()["ready"] is True
            metrics = (await http.get(f"{base}/metrics")).text
            assert 'podium_rpc_requests_total{method="queue.push",service="queue"} 1.0' in metrics
            assert "podium_rpc_seconds_bucket" in metrics
            svc.engine.begin_shutdown()
            not_ready = await http.get(f"{base}/ready")
            assert not_ready.status_code == 503
            assert not_ready.json()["failing"] == {"loops": "stopping"}
    finally:
        await client.close()
        await svc.stop()


@pytest.mark.timeout(60)
def test_sigterm_ends_long_polls_and_exits_within_a_bound(redis_server: RedisServer) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PODIUM_QUEUE_SHARDS": redis_server.url,
        "PODIUM_QUEUE_PORT": str(port),
        "PODIUM_QUEUE_HEALTH_PORT": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "queue_service.server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None and "listening" in proc.stdout.readline()

        async def scenario() -> tuple[list[object], float]:
            client = QueueClient.connect([f"127.0.0.1:{port}"])
            try:
                poll = asyncio.ensure_future(client.pop("idle", 1, 1000, wait_ms=30_000))
                # Let the poll's task send its call first: the ping's answer then shows that
                # the server has read the poll (the calls of one connection are read in order).
                await asyncio.sleep(0)
                await client.ping()  # the connection is up; the poll is parked on the server
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                got = await poll
                return list(got), time.monotonic() - started
            finally:
                await client.close()

        got, elapsed = asyncio.run(scenario())
        assert got == []  # the long poll was answered, not dropped
        assert elapsed < 5
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
