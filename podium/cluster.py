"""A whole Podium cluster on this machine, as separate processes (what ``podium up`` runs).

Redis shards are redis-server processes; each service replica is its own Python process,
configured by ``PODIUM_*`` variables exactly as in a deployment. Everything listens on
loopback, and everything is stopped (SIGTERM, then SIGKILL after a bound) when the cluster
stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from podium.errors import Unavailable
from podium.launch.redis import RedisServer, free_port
from podium.rpc import RpcClient

Progress = Callable[[str], None]


@dataclass
class ServiceProcess:
    """One replica of one service."""

    name: str
    module: str
    env: dict[str, str]
    address: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher, which stops us in order
        )
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class ClusterSpec:
    shards: int = 2
    queue_services: int = 1
    work_dir: Path | None = None


@dataclass
class LocalCluster:
    """Starts and stops Redis shards and service replicas."""

    spec: ClusterSpec = field(default_factory=ClusterSpec)
    progress: Progress = print
    redis: list[RedisServer] = field(default_factory=list)
    services: list[ServiceProcess] = field(default_factory=list)
    work_dir: Path = field(default_factory=Path)

    @property
    def queue_addresses(self) -> list[str]:
        return [s.address for s in self.services if s.module == "queue_service.server"]

    @property
    def shard_urls(self) -> str:
        return ",".join(f"s{i}={r.url}" for i, r in enumerate(self.redis))

    async def start(self) -> LocalCluster:
        self.work_dir = self.spec.work_dir or Path(tempfile.mkdtemp(prefix="podium-up-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            for i in range(self.spec.shards):
                server = RedisServer(data_dir=self.work_dir / f"redis-{i}")
                self.redis.append(await asyncio.to_thread(server.start))
                self.progress(f"redis shard s{i} on {server.address}")
            for i in range(self.spec.queue_services):
                port = free_port()
                svc = ServiceProcess(
                    name=f"queue-service-{i}",
                    module="queue_service.server",
                    env={
                        "PODIUM_QUEUE_SHARDS": self.shard_urls,
                        "PODIUM_QUEUE_PORT": str(port),
                    },
                    address=f"127.0.0.1:{port}",
                    log_path=self.work_dir / f"queue-service-{i}.log",
                )
                svc.start()
                self.services.append(svc)
            for svc in self.services:
                await self._wait_ready(svc, "queue.ping")
                self.progress(f"{svc.name} on {svc.address}")
        except BaseException:
            await self.stop()
            raise
        return self

    async def _wait_ready(self, svc: ServiceProcess, method: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        client = RpcClient([svc.address], connect_timeout_s=0.5, timeout_s=1.0)
        try:
            while True:
                if not svc.alive():
                    raise Unavailable(f"{svc.name} exited at start:\n{svc.log_tail()}")
                try:
                    await client.call(method)
                    return
                except Unavailable:
                    if time.monotonic() > deadline:
                        raise Unavailable(
                            f"{svc.name} did not answer within {timeout_s}s:\n{svc.log_tail()}"
                        ) from None
                    await asyncio.sleep(0.05)
        finally:
            await client.close()

    async def stop(self) -> None:
        """Stop services first (they hand back their work), then the shards. Idempotent."""
        for svc in reversed(self.services):
            await asyncio.to_thread(svc.stop)
        for server in self.redis:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.stop)
        self.services.clear()
        self.redis.clear()
